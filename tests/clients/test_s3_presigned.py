"""Presigned URLs of every kind, as clients make them by default, against kmsim's S3 and OBS dialects.

* boto3's ``generate_presigned_url`` with no signature configured: Signature V2 query
  authentication (``AWSAccessKeyId`` / ``Signature`` / ``Expires``), with every ``x-amz-*`` header
  and ``Content-Type`` moved into the query by botocore's ``HmacV1QueryAuth``.
* ``aws s3 presign`` (the aws CLI's default, also V2).
* boto3 with ``signature_version="s3"``: V2 in the ``Authorization`` header, whose bucket-level
  requests sign the resource as ``/bucket/``.
* A SigV4 presigned URL with S3's refusals of malformed query parameters.
* esdk-obs-python ``createSignedUrl``: OBS temporary URLs (``AccessKeyId`` / ``Signature`` /
  ``Expires``) for GET and for a PUT with SSE-KMS headers.

Each is used as a user would, with ``urllib`` (no SDK in the request path), and each has its bad
variants: expired, tampered, signed by a wrong secret or an unknown key.
"""

from __future__ import annotations

import http.client
import os
import urllib.parse
import uuid
from typing import Any

import pytest
from obs import ObsClient

from conftest import make_s3_client


def fetch(url: str, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Sends one request to a URL as curl would: only the headers given (urllib would add a form
    Content-Type to every body, which a V2 signature covers)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, lower_keys(response.headers), response.read()
    finally:
        connection.close()


def lower_keys(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def error_code(body: bytes) -> str:
    text = body.decode(errors="replace")
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else text


def with_param(url: str, name: str, value: str) -> str:
    """The URL with one query parameter replaced."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, value if k == name else v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    return s3_bucket


@pytest.fixture(scope="module")
def default_client(kmsim: dict[str, Any]):
    """boto3 exactly as a user makes it: nothing about signatures configured."""
    return make_s3_client(kmsim["endpoint"])


# ---- boto3's default presigned URL: Signature V2 ----------------------------------------------


def test_boto3_default_presigned_get_is_signature_v2(s3, default_client, bucket):
    body = os.urandom(70_000)
    s3.put_object(Bucket=bucket, Key="doc.bin", Body=body, ServerSideEncryption="aws:kms")
    url = default_client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "doc.bin"},
                                                ExpiresIn=600)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert set(query) == {"AWSAccessKeyId", "Signature", "Expires"}, url
    status, headers, got = fetch(url)
    assert (status, got) == (200, body)
    assert headers["x-amz-server-side-encryption"] == "aws:kms"

    # With a response override, which the signature covers.
    url = default_client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "doc.bin", "ResponseContentType": "text/x-demo"})
    status, headers, got = fetch(url)
    assert (status, headers["content-type"], got) == (200, "text/x-demo", body)
    status, _, got = fetch(url.replace("text%2Fx-demo", "text%2Fhtml"))
    assert (status, error_code(got)) == (403, "SignatureDoesNotMatch")


def test_boto3_default_presigned_put_carries_sse_kms_in_the_query(s3, default_client, kms, bucket):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    url = default_client.generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": "upload.txt", "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_id,
                "Metadata": {"origin": "presigned"}},
        ExpiresIn=600)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["x-amz-server-side-encryption"] == ["aws:kms"], url
    status, headers, got = fetch(url, "PUT", b"uploaded through a V2 URL")
    assert status == 200, got
    assert headers["x-amz-server-side-encryption"] == "aws:kms"
    head = s3.head_object(Bucket=bucket, Key="upload.txt")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key_id)
    assert head["Metadata"] == {"origin": "presigned"}
    assert s3.get_object(Bucket=bucket, Key="upload.txt")["Body"].read() == b"uploaded through a V2 URL"

    # The holder of the URL cannot choose another key: the parameter is signed.
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    status, _, got = fetch(with_param(url, "x-amz-server-side-encryption-aws-kms-key-id", other), "PUT", b"x")
    assert (status, error_code(got)) == (403, "SignatureDoesNotMatch")
    assert s3.get_object(Bucket=bucket, Key="upload.txt")["Body"].read() == b"uploaded through a V2 URL"


def test_v2_urls_refused_as_s3_refuses_them(s3, default_client, kmsim, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret")
    params = {"Bucket": bucket, "Key": "k"}
    # Expired: botocore computes Expires as now + ExpiresIn.
    expired = default_client.generate_presigned_url("get_object", Params=params, ExpiresIn=-60)
    status, _, got = fetch(expired)
    assert (status, error_code(got)) == (403, "AccessDenied")
    assert b"<Message>Request has expired</Message>" in got and b"<Expires>" in got and b"<ServerTime>" in got
    # Tampered signature, a wrong secret, an unknown key, another object.
    url = default_client.generate_presigned_url("get_object", Params=params)
    signature = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["Signature"][0]
    tampered = with_param(url, "Signature", ("A" if signature[0] != "A" else "B") + signature[1:])
    assert (fetch(tampered)[0], error_code(fetch(tampered)[2])) == (403, "SignatureDoesNotMatch")
    wrong_secret = make_s3_client(kmsim["endpoint"], secret="not-the-secret")
    url_wrong = wrong_secret.generate_presigned_url("get_object", Params=params)
    status, _, got = fetch(url_wrong)
    assert (status, error_code(got)) == (403, "SignatureDoesNotMatch")
    assert b"<StringToSign>GET\n\n\n" in got
    unknown = make_s3_client(kmsim["endpoint"], access_key="AKIANOBODY")
    status, _, got = fetch(unknown.generate_presigned_url("get_object", Params=params))
    assert (status, error_code(got)) == (403, "InvalidAccessKeyId")
    status, _, got = fetch(url.replace("/k?", "/other?"))
    assert status == 403 and b"secret" not in got
    # A partial set of parameters, and two signatures at once.
    partial = url.split("&Signature=")[0] if "&Signature=" in url else with_param(url, "Signature", "")
    status, _, got = fetch(partial)
    assert status == 403 and error_code(got) in ("AccessDenied", "SignatureDoesNotMatch"), got
    status, _, got = fetch(url, headers={"Authorization": "AWS test:abc"})
    assert (status, error_code(got)) == (400, "InvalidArgument")
    assert b"Only one auth mechanism allowed" in got


def test_v2_presigned_bucket_listing(s3, default_client, bucket):
    s3.put_object(Bucket=bucket, Key="a/1", Body=b"1")
    s3.put_object(Bucket=bucket, Key="b", Body=b"2")
    url = default_client.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket, "Prefix": "a/"})
    status, _, got = fetch(url)
    assert status == 200, got
    assert b"<Key>a/1</Key>" in got and b"<Key>b</Key>" not in got


def test_aws_cli_presign(aws_s3_cli, s3, bucket):
    s3.put_object(Bucket=bucket, Key="cli.txt", Body=b"from the CLI", ServerSideEncryption="aws:kms")
    result = aws_s3_cli("s3", "presign", f"s3://{bucket}/cli.txt", "--expires-in", "300")
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert "Signature=" in url
    status, _, got = fetch(url)
    assert (status, got) == (200, b"from the CLI")


# ---- V2 in the Authorization header: bucket-level requests --------------------------------------


def test_sigv2_header_bucket_level_requests(kmsim, s3):
    v2 = make_s3_client(kmsim["endpoint"], signature_version="s3")
    name = f"v2-{uuid.uuid4().hex[:12]}"
    v2.create_bucket(Bucket=name)
    v2.head_bucket(Bucket=name)
    assert "LocationConstraint" in v2.get_bucket_location(Bucket=name)
    # A sub-resource S3's V2 does not sign (botocore signs `/bucket/` for `?encryption`).
    v2.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    rules = v2.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    v2.put_object(Bucket=name, Key="x/y", Body=b"v2 body")
    assert v2.head_object(Bucket=name, Key="x/y")["ServerSideEncryption"] == "aws:kms"
    v2.delete_bucket_encryption(Bucket=name)
    listed = v2.list_objects(Bucket=name, Prefix="x/")
    assert [o["Key"] for o in listed["Contents"]] == ["x/y"]
    assert [o["Key"] for o in v2.list_objects_v2(Bucket=name)["Contents"]] == ["x/y"]
    upload = v2.create_multipart_upload(Bucket=name, Key="mp")
    assert [u["UploadId"] for u in v2.list_multipart_uploads(Bucket=name)["Uploads"]] == [upload["UploadId"]]
    v2.abort_multipart_upload(Bucket=name, Key="mp", UploadId=upload["UploadId"])
    v2.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "x/y"}]})
    v2.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


# ---- SigV4 presigned URLs: S3's refusals of its query parameters ----------------------------------


def test_sigv4_query_parameter_errors(kmsim, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v4")
    v4 = make_s3_client(kmsim["endpoint"], signature_version="s3v4")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=600)
    assert fetch(url)[2] == b"v4"
    for name, value, message in [
        ("X-Amz-Expires", "604801", b"X-Amz-Expires must be less than a week"),
        ("X-Amz-Expires", "-1", b"X-Amz-Expires must be non-negative"),
        ("X-Amz-Credential", "test/20240101/us-east-1/s3", b"Error parsing the X-Amz-Credential parameter"),
        ("X-Amz-Date", "yesterday", b"X-Amz-Date must be in the ISO8601 Long Format"),
    ]:
        status, _, got = fetch(with_param(url, name, value))
        assert (status, error_code(got)) == (400, "AuthorizationQueryParametersError"), (name, got)
        assert message in got, got
    without_date = "&".join(p for p in url.split("&") if not p.startswith("X-Amz-Date="))
    status, _, got = fetch(without_date)
    assert (status, error_code(got)) == (400, "AuthorizationQueryParametersError")
    status, _, got = fetch(with_param(url, "X-Amz-Signature", "0" * 64))
    assert (status, error_code(got)) == (403, "SignatureDoesNotMatch")


# ---- OBS temporary URLs (esdk-obs-python createSignedUrl) ------------------------------------------


@pytest.fixture(scope="module")
def obs_client(kmsim: dict[str, Any], localhost_subdomains: None):
    port = urllib.parse.urlsplit(kmsim["endpoint"]).port
    client = ObsClient(access_key_id="test", secret_access_key="test", server=f"http://localhost:{port}")
    yield client
    client.close()


def test_obs_temporary_urls_get_and_put_with_sse_kms(obs_client, kms, bucket):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    put = obs_client.createSignedUrl("PUT", bucket, "obs.txt", expires=300,
                                     headers={"x-obs-server-side-encryption": "kms",
                                              "x-obs-server-side-encryption-kms-key-id": key_id,
                                              "Content-Type": "text/plain"})
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(put.signedUrl).query)
    assert set(query) == {"AccessKeyId", "Signature", "Expires"}, put.signedUrl
    status, headers, got = fetch(put.signedUrl, "PUT", b"through an OBS temporary URL", put.actualSignedRequestHeaders)
    assert status == 200, got
    assert headers["x-obs-server-side-encryption"] == "kms"
    assert "x-obs-request-id" in headers

    get = obs_client.createSignedUrl("GET", bucket, "obs.txt", expires=300)
    status, headers, got = fetch(get.signedUrl, headers=get.actualSignedRequestHeaders)
    assert (status, got) == (200, b"through an OBS temporary URL")
    assert headers["x-obs-server-side-encryption"] == "kms"
    assert headers["x-obs-server-side-encryption-kms-key-id"].endswith(key_id)

    # Headers the URL was signed for must be sent as signed.
    stripped = {k: v for k, v in put.actualSignedRequestHeaders.items() if k != "x-obs-server-side-encryption"}
    status, _, got = fetch(put.signedUrl, "PUT", b"x", stripped)
    assert (status, error_code(got)) == (403, "SignatureDoesNotMatch")
    expired = obs_client.createSignedUrl("GET", bucket, "obs.txt", expires=-60)
    status, _, got = fetch(expired.signedUrl, headers=expired.actualSignedRequestHeaders)
    assert (status, error_code(got)) == (403, "AccessDenied")
    assert b"Request has expired" in got
