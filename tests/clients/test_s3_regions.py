"""Buckets live in a region, as in S3: a request signed for another region is refused with the
bucket's region (``400 AuthorizationHeaderMalformed`` with ``<Region>`` and ``x-amz-bucket-region``),
so that SDKs redirect on their own, and an SSE-KMS object always decrypts with the key recorded with
it, whatever region a user's shell names.

The SDK clients here use boto3's default configuration (its standard retry mode redirects), as a
user's shell with another ``AWS_DEFAULT_REGION`` would.
"""

from __future__ import annotations

import http.client
import os
import urllib.parse
import uuid
from typing import Any
from xml.etree import ElementTree

import boto3
import pytest
from botocore.config import Config

from conftest import RawS3

REGIONS = ["us-east-1", "eu-central-1", "ap-southeast-2"]


def user_client(endpoint: str, region: str):
    """boto3 as a user makes it: only the endpoint, credentials and region, every default kept."""
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)
    return session.client("s3", endpoint_url=endpoint)


def field(body: bytes, name: str) -> str | None:
    return ElementTree.fromstring(body).findtext(name)


@pytest.fixture
def name() -> str:
    return f"region-{uuid.uuid4().hex[:12]}"


def test_request_for_another_region_names_the_bucket_region(kmsim, s3, raw_s3, name):
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    frankfurt = RawS3(kmsim["endpoint"], region="eu-central-1")
    for method, path in [("GET", f"/{name}/k"), ("PUT", f"/{name}/k2"), ("GET", f"/{name}"),
                         ("DELETE", f"/{name}/k")]:
        response = frankfurt.send(method, path, body=b"y" if method == "PUT" else b"")
        assert response.status == 400, (method, path, response.body)
        assert field(response.body, "Code") == "AuthorizationHeaderMalformed"
        assert field(response.body, "Region") == "us-east-1"
        assert field(response.body, "Message") == \
            "The authorization header is malformed; the region 'eu-central-1' is wrong; expecting 'us-east-1'"
        assert response.headers["x-amz-bucket-region"] == "us-east-1"
    # Nothing changed; GetBucketLocation answers from any region.
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"x"
    assert "k2" not in [o["Key"] for o in s3.list_objects_v2(Bucket=name).get("Contents", [])]
    response = frankfurt.send("GET", f"/{name}", query="location")
    assert response.status == 200 and field(response.body, "{http://s3.amazonaws.com/doc/2006-03-01/}"
                                                          "LocationConstraint") is None


@pytest.mark.parametrize("bucket_region", ["us-east-1", "eu-central-1"])
def test_sse_kms_objects_read_from_every_region(kmsim, name, bucket_region):
    owner = user_client(kmsim["endpoint"], bucket_region)
    config = {} if bucket_region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": bucket_region}}
    owner.create_bucket(Bucket=name, **config)
    assert owner.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == bucket_region
    body = os.urandom(200_000)
    put = owner.put_object(Bucket=name, Key="doc", Body=body, ServerSideEncryption="aws:kms")
    assert f":kms:{bucket_region}:" in put["SSEKMSKeyId"]
    for region in REGIONS:
        visitor = user_client(kmsim["endpoint"], region)
        got = visitor.get_object(Bucket=name, Key="doc")
        assert got["Body"].read() == body, region
        assert got["SSEKMSKeyId"] == put["SSEKMSKeyId"]
        location = visitor.get_bucket_location(Bucket=name)["LocationConstraint"]
        assert location == (None if bucket_region == "us-east-1" else bucket_region)
        # Writes from a shell in another region land in the bucket's region, under its region's keys.
        written = visitor.put_object(Bucket=name, Key=f"from-{region}", Body=b"w", ServerSideEncryption="aws:kms")
        assert f":kms:{bucket_region}:" in written["SSEKMSKeyId"], region
        assert owner.get_object(Bucket=name, Key=f"from-{region}")["Body"].read() == b"w"


def test_aws_cli_in_another_region(kmsim, aws_s3_cli, s3, name, tmp_path):
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="note.txt", Body=b"read from Sydney", ServerSideEncryption="aws:kms")
    target = tmp_path / "note.txt"
    result = aws_s3_cli("s3", "cp", f"s3://{name}/note.txt", str(target), AWS_DEFAULT_REGION="ap-southeast-2",
                        AWS_MAX_ATTEMPTS="3")
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == b"read from Sydney"
    result = aws_s3_cli("s3", "ls", f"s3://{name}/", AWS_DEFAULT_REGION="ap-southeast-2", AWS_MAX_ATTEMPTS="3")
    assert result.returncode == 0 and "note.txt" in result.stdout, result.stderr


def test_presigned_urls_and_regions(kmsim, s3, name):
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"presigned", ServerSideEncryption="aws:kms")
    def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection.request("GET", f"{parts.path}?{parts.query}")
        response = connection.getresponse()
        result = response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        connection.close()
        return result

    # A SigV4 URL signed for another region: S3's query-parameter error, naming the region.
    signer = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                   region_name="eu-central-1").client(
        "s3", endpoint_url=kmsim["endpoint"], config=Config(signature_version="s3v4"))
    status, headers, body = fetch(signer.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "k"}))
    assert status == 400 and field(body, "Code") == "AuthorizationQueryParametersError"
    assert field(body, "Region") == "us-east-1" and headers["x-amz-bucket-region"] == "us-east-1"
    # A V2 URL names no region: it acts in the bucket's, from a shell in any (boto3 presigns V2 by
    # default where the region still takes V2; eu-central-1 takes SigV4 only).
    default_signer = user_client(kmsim["endpoint"], "eu-west-1")
    url = default_signer.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "k"})
    assert "AWSAccessKeyId=" in url
    status, _, body = fetch(url)
    assert (status, body) == (200, b"presigned")


def test_head_bucket_in_another_region_redirects(kmsim, name):
    tokyo = user_client(kmsim["endpoint"], "ap-northeast-1")
    tokyo.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-1"})
    raw = RawS3(kmsim["endpoint"], region="us-east-1")
    response = raw.send("HEAD", f"/{name}")
    assert response.status == 400 and response.headers["x-amz-bucket-region"] == "ap-northeast-1"
    assert response.body == b""
    # boto3 follows it.
    visitor = user_client(kmsim["endpoint"], "us-east-1")
    headers: dict[str, Any] = visitor.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amz-bucket-region"] == "ap-northeast-1"
