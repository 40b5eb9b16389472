"""kmsim's object store in the OBS dialect of Open Telekom Cloud / Huawei Cloud, through Huawei's own
Python SDK ``esdk-obs-python`` (``ObsClient``), beside boto3 on the same server.

The SDK is used in its two modes:

* ``obs_client``: a host-name endpoint (``http://localhost:<port>``), virtual-host style. The SDK
  asks ``HEAD /?apiversion`` (unauthenticated), sees ``x-obs-api: 3.0`` and then signs
  ``Authorization: OBS AK:sig`` and speaks the ``x-obs-*`` header family.
* ``v2_client``: path style on the IP (``http://127.0.0.1:<port>``): no negotiation, AWS V2
  signatures (``Authorization: AWS AK:sig``) and ``x-amz-*`` headers.

``bucket.localhost`` names resolve to the loopback address (RFC 6761) through a patched
``socket.getaddrinfo``, as systemd-resolved and browsers do, since glibc alone does not.
What the SDK really sends is recorded at ``http.client`` level (``wire``). Raw requests signed here
(``obs_request``) check the response headers on the wire and the refusals of bad signatures.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import http.client
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from botocore.exceptions import ClientError
from obs import (
    CompleteMultipartUploadRequest,
    CompletePart,
    CopyObjectHeader,
    GetObjectHeader,
    ObsClient,
    PutObjectHeader,
    SseCHeader,
    SseKmsHeader,
)

from conftest import DEFAULT_ACCOUNT, DEFAULT_REGION

DOMAIN_ID = "0" * 32
MIB = 1024 * 1024


# ---- fixtures ------------------------------------------------------------------------------------

# esdk-obs-python addresses buckets as virtual hosts on a hostname endpoint.
pytestmark = pytest.mark.usefixtures("localhost_subdomains")


@pytest.fixture(scope="module")
def port(kmsim: dict[str, Any]) -> int:
    return int(urllib.parse.urlsplit(kmsim["endpoint"]).port)


@pytest.fixture(scope="module")
def obs_client(port: int) -> Iterator[ObsClient]:
    """Host-name endpoint: negotiates the OBS signature and header family."""
    client = ObsClient(access_key_id="test", secret_access_key="test", server=f"http://localhost:{port}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def v2_client(port: int) -> Iterator[ObsClient]:
    """Path style on the IP: AWS V2 signatures and ``x-amz-*`` headers."""
    client = ObsClient(access_key_id="test", secret_access_key="test", server=f"http://127.0.0.1:{port}",
                       path_style=True)
    yield client
    client.close()


@pytest.fixture(params=["obs", "v2"])
def any_client(request: pytest.FixtureRequest, obs_client: ObsClient, v2_client: ObsClient) -> ObsClient:
    return obs_client if request.param == "obs" else v2_client


class Wire:
    """The requests ``http.client`` sent while recording: ``(method, url, {header: value})``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def authorizations(self) -> list[str]:
        return [h.get("authorization", "") for _, _, h in self.requests]

    def header_names(self) -> set[str]:
        return {name for _, _, h in self.requests for name in h}


@pytest.fixture
def wire() -> Iterator[Wire]:
    recorder = Wire()
    original_putrequest = http.client.HTTPConnection.putrequest
    original_putheader = http.client.HTTPConnection.putheader

    def putrequest(self, method, url, *args, **kwargs):
        recorder.requests.append((method, url, {}))
        return original_putrequest(self, method, url, *args, **kwargs)

    def putheader(self, header, *values):
        if recorder.requests:
            name = header.decode() if isinstance(header, bytes) else str(header)
            text = ",".join(v.decode() if isinstance(v, bytes) else str(v) for v in values)
            recorder.requests[-1][2][name.lower()] = text
        return original_putheader(self, header, *values)

    http.client.HTTPConnection.putrequest = putrequest
    http.client.HTTPConnection.putheader = putheader
    yield recorder
    http.client.HTTPConnection.putrequest = original_putrequest
    http.client.HTTPConnection.putheader = original_putheader


# ---- helpers -------------------------------------------------------------------------------------


def bucket_name(prefix: str = "obs") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def ok(response: Any) -> Any:
    """Asserts an SDK response succeeded and returns it."""
    assert response.status < 300, (response.status, response.errorCode, response.errorMessage)
    return response


def new_bucket(client: ObsClient) -> str:
    name = bucket_name()
    ok(client.createBucket(name))
    return name


def kms_key(kms: Any) -> str:
    return kms.create_key(Description="esdk-obs test key")["KeyMetadata"]["KeyId"]


def obs_key_id(key_id: str) -> str:
    return f"{DEFAULT_REGION}:{DOMAIN_ID}:key/{key_id}"


def key_arn(key_id: str) -> str:
    return f"arn:aws:kms:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:key/{key_id}"


def read(client: ObsClient, bucket: str, key: str, **kwargs: Any) -> Any:
    response = ok(client.getObject(bucket, key, loadStreamInMemory=True, **kwargs))
    return response


def headers_of(response: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in response.header}


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def code(self) -> str:
        text = self.body.decode(errors="replace")
        return text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else ""


def obs_request(port: int, method: str, path: str, *, query: str = "", body: bytes = b"",
                headers: dict[str, str] | None = None, access_key: str = "test", secret: str = "test",
                scheme: str = "OBS", date: str | None = None, signature: str | None = None) -> RawResponse:
    """One path-style request signed by hand the V2 way (``OBS`` or ``AWS``), following the OBS API
    reference: VERB, Content-MD5, Content-Type, Date, sorted ``x-obs-*``/``x-amz-*`` headers, resource."""
    headers = dict(headers or {})
    headers["Date"] = date or email.utils.formatdate(usegmt=True)
    prefix = "x-obs-" if scheme == "OBS" else "x-amz-"
    canonical = sorted((k.lower(), v.strip()) for k, v in headers.items() if k.lower().startswith(prefix))
    lower = {k.lower(): v for k, v in headers.items()}
    resource = path + (f"?{query}" if query else "")
    string_to_sign = "\n".join([method, lower.get("content-md5", ""), lower.get("content-type", ""),
                                lower["date"]]) + "\n"
    string_to_sign += "".join(f"{k}:{v}\n" for k, v in canonical) + resource
    if signature is None:
        digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
        signature = base64.b64encode(digest).decode()
    headers["Authorization"] = f"{scheme} {access_key}:{signature}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, resource, body=body, headers=headers)
        response = connection.getresponse()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


# ---- negotiation and signatures ------------------------------------------------------------------


def test_apiversion_answers_unauthenticated(port: int, s3: Any) -> None:
    bucket = bucket_name()
    s3.create_bucket(Bucket=bucket)
    for path in ["/?apiversion", f"/{bucket}?apiversion", "/no-such-bucket-here?apiversion"]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("HEAD", path)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, path
            assert response.getheader("x-obs-api") == "3.0", path
        finally:
            connection.close()


def test_negotiated_client_signs_the_obs_way(obs_client: ObsClient, kms: Any, wire: Wire) -> None:
    key_id = kms_key(kms)
    wire.requests.clear()  # boto3's KMS call
    bucket = new_bucket(obs_client)
    put = ok(obs_client.putContent(bucket, "hello.txt", "hello, OBS", metadata={"colour": "blue"},
                                   headers=PutObjectHeader(sseHeader=SseKmsHeader.getInstance(key=key_id))))
    assert put.body.sseKms == "kms"
    assert put.body.sseKmsKey == obs_key_id(key_id)
    assert any(method == "HEAD" and "apiversion" in url for method, url, _ in wire.requests)
    signed = [a for a in wire.authorizations() if a]
    assert signed and all(a.startswith("OBS test:") for a in signed), signed
    assert "x-obs-server-side-encryption" in wire.header_names()
    assert "x-obs-server-side-encryption-kms-key-id" in wire.header_names()
    assert "x-obs-meta-colour" in wire.header_names()
    assert not any(name.startswith("x-amz-") for name in wire.header_names())

    got = read(obs_client, bucket, "hello.txt")
    assert got.body.buffer == b"hello, OBS"
    meta = ok(obs_client.getObjectMetadata(bucket, "hello.txt"))
    assert meta.body.sseKms == "kms"
    assert meta.body.sseKmsKey == obs_key_id(key_id)
    assert headers_of(meta)["colour"] == "blue"


def test_ip_client_falls_back_to_aws_v2(v2_client: ObsClient, kms: Any, wire: Wire) -> None:
    key_id = kms_key(kms)
    wire.requests.clear()  # boto3's KMS call
    bucket = new_bucket(v2_client)
    put = ok(v2_client.putContent(bucket, "v2.txt", b"signed the V2 way", metadata={"colour": "green"},
                                  headers=PutObjectHeader(sseHeader=SseKmsHeader.getInstance(key=key_id))))
    assert put.body.sseKms == "aws:kms"
    assert put.body.sseKmsKey == key_arn(key_id)
    assert not any("apiversion" in url for _, url, _ in wire.requests)
    signed = [a for a in wire.authorizations() if a]
    assert signed and all(a.startswith("AWS test:") for a in signed), signed
    assert "x-amz-server-side-encryption" in wire.header_names()
    assert not any(name.startswith("x-obs-") for name in wire.header_names())
    got = read(v2_client, bucket, "v2.txt")
    assert got.body.buffer == b"signed the V2 way"
    assert headers_of(got)["colour"] == "green"


# ---- SSE-KMS -------------------------------------------------------------------------------------


def test_default_key_is_obs_default(obs_client: ObsClient, kms: Any, admin: Any) -> None:
    bucket = new_bucket(obs_client)
    put = ok(obs_client.putContent(bucket, "default.bin", b"\x00\x01" * 1000,
                                   headers=PutObjectHeader(sseHeader=SseKmsHeader.getInstance())))
    default_key = kms.describe_key(KeyId="alias/obs/default")["KeyMetadata"]
    assert default_key["KeyManager"] == "AWS"
    assert put.body.sseKmsKey == obs_key_id(default_key["KeyId"])
    assert read(obs_client, bucket, "default.bin").body.buffer == b"\x00\x01" * 1000
    events = admin.audit(operation="GenerateDataKey", key=default_key["Arn"])
    assert events and events[-1]["outcome"] == "Success"


@pytest.mark.parametrize("size", [0, 1, 65536, 200_001])
def test_put_file_and_download(obs_client: ObsClient, kms: Any, tmp_path: Path, size: int) -> None:
    bucket = new_bucket(obs_client)
    key_id = kms_key(kms)
    data = hashlib.shake_256(str(size).encode()).digest(size) if size else b""
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    put = ok(obs_client.putFile(bucket, "file.bin", str(source),
                                headers=PutObjectHeader(sseHeader=SseKmsHeader.getInstance(key=obs_key_id(key_id)))))
    assert put.body.sseKmsKey == obs_key_id(key_id)
    target = tmp_path / "downloaded.bin"
    got = ok(obs_client.getObject(bucket, "file.bin", downloadPath=str(target)))
    assert target.read_bytes() == data
    assert got.body.sseKms == "kms"


def test_key_of_another_domain_is_refused(obs_client: ObsClient, kms: Any) -> None:
    bucket = new_bucket(obs_client)
    other = f"{DEFAULT_REGION}:{'1' * 32}:key/{kms_key(kms)}"
    put = obs_client.putContent(bucket, "x", b"x", headers=PutObjectHeader(sseHeader=SseKmsHeader.getInstance(key=other)))
    assert put.status == 403 and put.errorCode == "AccessDenied"
    assert obs_client.getObjectMetadata(bucket, "x").status == 404


def test_multipart_upload_with_sse_kms(any_client: ObsClient, kms: Any) -> None:
    bucket = new_bucket(any_client)
    key_id = kms_key(kms)
    init = ok(any_client.initiateMultipartUpload(bucket, "big.bin", sseHeader=SseKmsHeader.getInstance(key=key_id)))
    upload_id = init.body.uploadId
    parts = [b"a" * (5 * MIB), b"tail of the object"]
    etags = []
    for number, content in enumerate(parts, start=1):
        part = ok(any_client.uploadPart(bucket, "big.bin", number, upload_id, object=content))
        etags.append(CompletePart(partNum=number, etag=part.body.etag))
    done = ok(any_client.completeMultipartUpload(bucket, "big.bin", upload_id,
                                                 CompleteMultipartUploadRequest(parts=etags)))
    expected_key = obs_key_id(key_id) if any_client.signature == "obs" else key_arn(key_id)
    assert done.body.sseKmsKey == expected_key
    got = read(any_client, bucket, "big.bin")
    assert got.body.buffer == b"".join(parts)
    assert got.body.sseKmsKey == expected_key


def test_copy_object_to_sse_kms(any_client: ObsClient, kms: Any) -> None:
    bucket = new_bucket(any_client)
    key_id = kms_key(kms)
    ok(any_client.putContent(bucket, "source.txt", "copy me", metadata={"origin": "source"}))
    copy = ok(any_client.copyObject(bucket, "source.txt", bucket, "copy.txt", metadata={"origin": "copy"},
                                    headers=CopyObjectHeader(directive="REPLACE",
                                                             destSseHeader=SseKmsHeader.getInstance(key=key_id))))
    expected_key = obs_key_id(key_id) if any_client.signature == "obs" else key_arn(key_id)
    assert copy.body.sseKmsKey == expected_key
    got = read(any_client, bucket, "copy.txt")
    assert got.body.buffer == b"copy me"
    assert got.body.sseKmsKey == expected_key
    assert headers_of(got)["origin"] == "copy"
    # The source is untouched: stored as sent in the OBS dialect, with S3's default encryption
    # (SSE-S3) in the S3 dialect that the SDK's V2 mode speaks.
    source = read(any_client, bucket, "source.txt")
    default = None if any_client.signature == "obs" else "AES256"
    assert (source.body.sseKms, headers_of(source)["origin"]) == (default, "source")


# ---- bucket encryption ---------------------------------------------------------------------------


def test_bucket_encryption(obs_client: ObsClient, v2_client: ObsClient, kms: Any, s3: Any) -> None:
    bucket = new_bucket(obs_client)
    key_id = kms_key(kms)
    missing = obs_client.getBucketEncryption(bucket)
    assert missing.status == 404 and missing.errorCode == "ServerSideEncryptionConfigurationNotFoundError"
    ok(obs_client.setBucketEncryption(bucket, "kms", key=obs_key_id(key_id)))
    got = ok(obs_client.getBucketEncryption(bucket))
    assert (got.body.encryption, got.body.key) == ("kms", obs_key_id(key_id))
    # The same configuration in the S3 dialect.
    config = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert config["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn(key_id)}
    # Objects written without SSE headers take the default.
    put = ok(obs_client.putContent(bucket, "plain.txt", "by default"))
    assert put.body.sseKmsKey == obs_key_id(key_id)
    assert read(obs_client, bucket, "plain.txt").body.sseKms == "kms"
    # Without a key: OBS's service-managed key.
    ok(obs_client.setBucketEncryption(bucket, "kms"))
    assert ok(obs_client.getBucketEncryption(bucket)).body.encryption == "kms"
    put = ok(obs_client.putContent(bucket, "managed.txt", "managed"))
    default_key = kms.describe_key(KeyId="alias/obs/default")["KeyMetadata"]["KeyId"]
    assert put.body.sseKmsKey == obs_key_id(default_key)
    ok(obs_client.deleteBucketEncryption(bucket))
    assert obs_client.getBucketEncryption(bucket).status == 404
    put = ok(obs_client.putContent(bucket, "none.txt", "no encryption"))
    assert put.body.sseKms is None
    # The V2 mode sends aws:kms; the IP client sees the S3 form.
    ok(v2_client.setBucketEncryption(bucket, "kms", key=key_id))
    got = ok(v2_client.getBucketEncryption(bucket))
    assert (got.body.encryption, got.body.key) == ("kms", key_id)


# ---- SSE-C ---------------------------------------------------------------------------------------


def test_sse_c(any_client: ObsClient) -> None:
    bucket = new_bucket(any_client)
    customer = SseCHeader.getInstance(key="0123456789abcdef0123456789abcdef")
    ok(any_client.putContent(bucket, "secret.txt", "only with the key", headers=PutObjectHeader(sseHeader=customer)))
    without = any_client.getObject(bucket, "secret.txt", loadStreamInMemory=True)
    assert without.status == 400 and without.errorCode == "InvalidRequest", (without.status, without.errorCode)
    got = read(any_client, bucket, "secret.txt", headers=GetObjectHeader(sseHeader=customer))
    assert got.body.buffer == b"only with the key"
    wrong = SseCHeader.getInstance(key="fedcba9876543210fedcba9876543210")
    refused = any_client.getObject(bucket, "secret.txt", loadStreamInMemory=True,
                                   headers=GetObjectHeader(sseHeader=wrong))
    assert refused.status == 403, (refused.status, refused.errorCode)


# ---- key state -----------------------------------------------------------------------------------


def test_disabled_key_makes_objects_unreadable(obs_client: ObsClient, kms: Any) -> None:
    bucket = new_bucket(obs_client)
    key_id = kms_key(kms)
    ok(obs_client.putContent(bucket, "locked.txt", "soon unreadable",
                             headers=PutObjectHeader(sseHeader=SseKmsHeader.getInstance(key=key_id))))
    kms.disable_key(KeyId=key_id)
    try:
        refused = obs_client.getObject(bucket, "locked.txt", loadStreamInMemory=True)
        assert (refused.status, refused.errorCode) == (400, "KMS.DisabledException")
        put = obs_client.putContent(bucket, "new.txt", "x",
                                    headers=PutObjectHeader(sseHeader=SseKmsHeader.getInstance(key=key_id)))
        assert (put.status, put.errorCode) == (400, "KMS.DisabledException")
    finally:
        kms.enable_key(KeyId=key_id)
    assert read(obs_client, bucket, "locked.txt").body.buffer == b"soon unreadable"


# ---- one object, two header families -------------------------------------------------------------


def test_written_through_obs_read_through_s3(obs_client: ObsClient, s3: Any, kms: Any) -> None:
    bucket = new_bucket(obs_client)
    key_id = kms_key(kms)
    ok(obs_client.putContent(bucket, "cross.txt", "one object", metadata={"team": "blue"},
                             headers=PutObjectHeader(sseHeader=SseKmsHeader.getInstance(key=key_id))))
    head = s3.head_object(Bucket=bucket, Key="cross.txt")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_arn(key_id)
    assert head["Metadata"] == {"team": "blue"}
    assert s3.get_object(Bucket=bucket, Key="cross.txt")["Body"].read() == b"one object"


def test_written_through_s3_read_through_obs(obs_client: ObsClient, s3: Any, kms: Any, port: int) -> None:
    bucket = bucket_name()
    s3.create_bucket(Bucket=bucket)
    key_id = kms_key(kms)
    s3.put_object(Bucket=bucket, Key="cross.bin", Body=b"from boto3", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key_id, Metadata={"team": "red"})
    got = read(obs_client, bucket, "cross.bin")
    assert got.body.buffer == b"from boto3"
    assert (got.body.sseKms, got.body.sseKmsKey) == ("kms", obs_key_id(key_id))
    assert headers_of(got)["team"] == "red"
    # On the wire: the x-obs-* family only.
    raw = obs_request(port, "HEAD", f"/{bucket}/cross.bin")
    assert raw.status == 200
    assert raw.headers["x-obs-server-side-encryption"] == "kms"
    assert raw.headers["x-obs-server-side-encryption-kms-key-id"] == obs_key_id(key_id)
    assert raw.headers["x-obs-meta-team"] == "red"
    assert "x-obs-request-id" in raw.headers and "x-obs-id-2" in raw.headers
    assert not any(name.startswith("x-amz-") for name in raw.headers)
    # And the S3 family to an AWS V2 request for the same object.
    raw = obs_request(port, "HEAD", f"/{bucket}/cross.bin", scheme="AWS")
    assert raw.status == 200
    assert raw.headers["x-amz-server-side-encryption"] == "aws:kms"
    assert raw.headers["x-amz-server-side-encryption-aws-kms-key-id"] == key_arn(key_id)
    assert not any(name.startswith("x-obs-") for name in raw.headers)


# ---- bad input over raw HTTP ---------------------------------------------------------------------


def test_raw_obs_put_signed_here_is_accepted(port: int, s3: Any, kms: Any) -> None:
    bucket = bucket_name()
    s3.create_bucket(Bucket=bucket)
    key_id = kms_key(kms)
    put = obs_request(port, "PUT", f"/{bucket}/raw.txt", body=b"raw bytes",
                      headers={"Content-Type": "text/plain", "x-obs-server-side-encryption": "kms",
                               "x-obs-server-side-encryption-kms-key-id": obs_key_id(key_id)})
    assert put.status == 200, put.body
    assert put.headers["x-obs-server-side-encryption-kms-key-id"] == obs_key_id(key_id)
    assert s3.get_object(Bucket=bucket, Key="raw.txt")["Body"].read() == b"raw bytes"


@pytest.mark.parametrize("scheme", ["OBS", "AWS"])
def test_wrong_signature_is_refused_and_nothing_changes(port: int, s3: Any, scheme: str) -> None:
    bucket = bucket_name()
    s3.create_bucket(Bucket=bucket)
    response = obs_request(port, "PUT", f"/{bucket}/forged.txt", body=b"forged", secret="not-the-secret",
                           scheme=scheme)
    assert (response.status, response.code()) == (403, "SignatureDoesNotMatch")
    response = obs_request(port, "PUT", f"/{bucket}/forged.txt", body=b"forged", scheme=scheme,
                           signature="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert (response.status, response.code()) == (403, "SignatureDoesNotMatch")
    with pytest.raises(ClientError) as info:
        s3.head_object(Bucket=bucket, Key="forged.txt")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_skewed_date_is_refused(port: int, s3: Any) -> None:
    bucket = bucket_name()
    s3.create_bucket(Bucket=bucket)
    for skew in (-20 * 60, 20 * 60):
        date = email.utils.formatdate(time.time() + skew, usegmt=True)
        response = obs_request(port, "PUT", f"/{bucket}/late.txt", body=b"late", date=date)
        assert (response.status, response.code()) == (403, "RequestTimeTooSkewed")
    # Within the window is fine.
    date = email.utils.formatdate(time.time() - 10 * 60, usegmt=True)
    assert obs_request(port, "GET", f"/{bucket}", date=date).status == 200
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_unknown_access_key_is_refused(port: int) -> None:
    response = obs_request(port, "GET", "/", access_key="NOSUCHKEY")
    assert (response.status, response.code()) == (403, "InvalidAccessKeyId")
    response = obs_request(port, "GET", "/", access_key="NOSUCHKEY", scheme="AWS")
    assert (response.status, response.code()) == (403, "InvalidAccessKeyId")


# ---- versioning ------------------------------------------------------------------------------------


def test_versioning_through_the_sdk(any_client: ObsClient, kms: Any) -> None:
    from obs import GetObjectRequest, Versions

    bucket = new_bucket(any_client)
    ok(any_client.setBucketVersioning(bucket, "Enabled"))
    assert any_client.getBucketVersioning(bucket).body == "Enabled"
    key_id = kms_key(kms)
    first = ok(any_client.putContent(bucket, "v.txt", "first",
                                     headers=PutObjectHeader(sseHeader=SseKmsHeader.getInstance(key=key_id))))
    second = ok(any_client.putContent(bucket, "v.txt", "second"))
    v1, v2 = first.body.versionId, second.body.versionId
    assert v1 and v2 and v1 != v2
    old = ok(any_client.getObject(bucket, "v.txt", getObjectRequest=GetObjectRequest(versionId=v1),
                                  loadStreamInMemory=True))
    assert old.body.buffer == b"first"
    deleted = ok(any_client.deleteObject(bucket, "v.txt"))
    assert deleted.body.deleteMarker is True
    missing = any_client.getObject(bucket, "v.txt", loadStreamInMemory=True)
    assert (missing.status, missing.errorCode) == (404, "NoSuchKey")
    listed = ok(any_client.listVersions(bucket, Versions(prefix="v"))).body
    assert [v.versionId for v in listed.versions] == [v2, v1]
    assert [m.versionId for m in listed.markers] == [deleted.body.versionId]
    ok(any_client.deleteObject(bucket, "v.txt", versionId=deleted.body.versionId))
    assert read(any_client, bucket, "v.txt").body.buffer == b"second"
