"""kmsim's S3 API (the object store, OBS) through boto3, checked against the behaviour of real S3.

Most tests share the one in-memory server of the session (fixture ``s3``) and use buckets and KMS
keys of their own, so they do not depend on each other. Tests that need a second account start a
server of their own. Object sizes are chosen around the 64 KiB frames of the stored AWS Encryption
SDK messages (0, 1, one frame - 1, one frame, one frame + 1, several frames).

What the KMS sees of the object service is read from the admin API's audit log: every call S3
makes on a customer's behalf is recorded with ``via_service`` ``s3.amazonaws.com``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import socket
import time
import uuid
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError

from conftest import DEFAULT_ACCOUNT, DEFAULT_REGION, RawS3, http_get, make_s3_client

FRAME = 65536
SIZES = [0, 1, FRAME - 1, FRAME, FRAME + 1, 300_000]
S3_SERVICE = "s3.amazonaws.com"
OTHER_ACCOUNT = "111122223333"
SECOND_ACCOUNT_CONFIG = """
[[accounts]]
id = "111122223333"
access_keys = [{ access_key_id = "AKIDOTHER", secret_access_key = "other-secret" }]
"""


# ---- helpers -------------------------------------------------------------------------------------


def bucket_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def expect_error(code: str, status: int, call: Callable[..., Any], /, **params: Any) -> dict:
    """Calls ``call(**params)`` and asserts that it fails with the S3 error ``code`` and HTTP
    ``status``; returns the error response."""
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    assert response["Error"]["Code"] == code, f"expected {code}, got {response['Error']} for {params}"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status, response["ResponseMetadata"]
    return response


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def key_arn(key_id: str, account: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def s3_arn_context(bucket: str, key: str) -> dict[str, str]:
    return {"aws:s3:arn": f"arn:aws:s3:::{bucket}/{key}"}


def read(s3, bucket: str, key: str, **params: Any) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **params)["Body"].read()


def missing(s3, bucket: str, key: str) -> bool:
    """True when HEAD says 404 (a failed write left nothing behind)."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e.response
        return True
    return False


def assert_serving(s3, bucket: str) -> None:
    """The server still answers a full SSE-KMS write and read."""
    key = f"alive-{uuid.uuid4().hex[:8]}"
    data = os.urandom(FRAME + 7)
    s3.put_object(Bucket=bucket, Key=key, Body=data, ServerSideEncryption="aws:kms")
    assert read(s3, bucket, key) == data


def _crc_table(poly: int) -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc_table(0x82F63B78)
_CRC64NVME = _crc_table(0x9A6C9329AC4BC9B5)


def crc32c(data: bytes) -> bytes:
    c = 0xFFFFFFFF
    for byte in data:
        c = _CRC32C[(c ^ byte) & 0xFF] ^ (c >> 8)
    return (c ^ 0xFFFFFFFF).to_bytes(4, "big")


def crc64nvme(data: bytes) -> bytes:
    mask = (1 << 64) - 1
    c = mask
    for byte in data:
        c = _CRC64NVME[(c ^ byte) & 0xFF] ^ (c >> 8)
    return (c ^ mask).to_bytes(8, "big")


def test_checksum_helpers_match_the_published_check_values():
    assert crc32c(b"123456789").hex() == "e3069283"
    assert crc64nvme(b"123456789").hex() == "ae8b14860a799888"


def s3_audit(admin, key: str, **filters: Any) -> list[dict]:
    return admin.audit(via_service=S3_SERVICE, key=key, **filters)


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def bucket(s3) -> str:
    name = bucket_name()
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def shared_bucket(s3) -> str:
    name = bucket_name("shared")
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def customer_key(kms) -> dict:
    return kms.create_key(Description="customer key of the S3 tests")["KeyMetadata"]


@pytest.fixture
def fresh_key(kms) -> dict:
    return kms.create_key(Description="a key of one S3 test")["KeyMetadata"]


@pytest.fixture(scope="module")
def s3_managed_key_arn(s3, kms, shared_bucket) -> str:
    """The ARN of alias/aws/s3 (created by the first SSE-KMS write that names no key)."""
    s3.put_object(Bucket=shared_bucket, Key="make-aws-s3-key", Body=b"x", ServerSideEncryption="aws:kms")
    return kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["Arn"]


# ---- buckets -------------------------------------------------------------------------------------


def test_bucket_lifecycle(s3):
    name = bucket_name()
    created = s3.create_bucket(Bucket=name)
    assert created["Location"] == f"/{name}"
    head = s3.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    assert name in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    # us-east-1 is the empty LocationConstraint.
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0

    deleted = s3.delete_bucket(Bucket=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as info:
        s3.head_bucket(Bucket=name)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    expect_error("NoSuchBucket", 404, s3.delete_bucket, Bucket=name)
    # The name is free again.
    s3.create_bucket(Bucket=name)
    s3.head_bucket(Bucket=name)


def test_bucket_with_location_constraint(s3):
    name = bucket_name()
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    head = s3.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "eu-west-1"
    listed = {b["Name"]: b for b in s3.list_buckets()["Buckets"]}
    assert listed[name].get("BucketRegion") == "eu-west-1"


def test_bucket_errors(s3, bucket, kmsim):
    # Re-creating one's own bucket: 200 in us-east-1, as S3 answers there; elsewhere 409.
    assert s3.create_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    elsewhere = make_s3_client(kmsim["endpoint"], region="eu-west-1")
    ireland = bucket_name("ie")
    config = {"LocationConstraint": "eu-west-1"}
    elsewhere.create_bucket(Bucket=ireland, CreateBucketConfiguration=config)
    expect_error("BucketAlreadyOwnedByYou", 409, elsewhere.create_bucket, Bucket=ireland,
                 CreateBucketConfiguration=config)
    elsewhere.delete_bucket(Bucket=ireland)

    nobody = bucket_name("missing")
    with pytest.raises(ClientError) as info:
        s3.head_bucket(Bucket=nobody)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    for call, params in [
        (s3.get_object, {"Key": "k"}),
        (s3.put_object, {"Key": "k", "Body": b"data"}),
        (s3.list_objects_v2, {}),
        (s3.list_objects, {}),
        (s3.delete_bucket, {}),
        (s3.get_bucket_encryption, {}),
        (s3.get_bucket_location, {}),
    ]:
        response = expect_error("NoSuchBucket", 404, call, Bucket=nobody, **params)
        assert response["Error"].get("BucketName") == nobody
    assert nobody not in {b["Name"] for b in s3.list_buckets()["Buckets"]}

    s3.put_object(Bucket=bucket, Key="keep/me", Body=b"still here", ServerSideEncryption="aws:kms")
    expect_error("BucketNotEmpty", 409, s3.delete_bucket, Bucket=bucket)
    assert read(s3, bucket, "keep/me") == b"still here"
    s3.delete_object(Bucket=bucket, Key="keep/me")
    s3.delete_bucket(Bucket=bucket)


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "Upper-case", "under_score", "-leading-dash", "trailing-dash-", "two..dots", "192.168.5.4"],
)
def test_invalid_bucket_names(s3, name):
    response = expect_error("InvalidBucketName", 400, s3.create_bucket, Bucket=name)
    assert response["Error"].get("BucketName") == name
    assert name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


# ---- objects: round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("sse", ["none", "aws:kms", "aws:kms+customer-key"])
def test_object_round_trip(s3, kms, shared_bucket, customer_key, s3_managed_key_arn, sse, size):
    key = f"round-trip/{sse}/{size}"
    data = os.urandom(size)
    params: dict[str, Any] = {}
    expected_key = None
    if sse != "none":
        params["ServerSideEncryption"] = "aws:kms"
        expected_key = s3_managed_key_arn
    if sse == "aws:kms+customer-key":
        params["SSEKMSKeyId"] = customer_key["KeyId"]
        expected_key = customer_key["Arn"]

    put = s3.put_object(Bucket=shared_bucket, Key=key, Body=data, **params)
    # Without SSE headers S3 encrypts with SSE-S3 (since January 2023), whose ETag is the data's MD5.
    expected_sse = "AES256" if expected_key is None else "aws:kms"
    if expected_key is None:
        assert put["ETag"] == md5_etag(data)
        assert put["ServerSideEncryption"] == "AES256"
    else:
        assert put["ServerSideEncryption"] == "aws:kms"
        assert put["SSEKMSKeyId"] == expected_key
        # S3: the ETag of an SSE-KMS object is not the MD5 of its data.
        assert put["ETag"] != md5_etag(data)

    got = s3.get_object(Bucket=shared_bucket, Key=key)
    assert got["Body"].read() == data
    assert got["ContentLength"] == size
    assert got["ETag"] == put["ETag"]
    assert got.get("ServerSideEncryption") == expected_sse
    assert got.get("SSEKMSKeyId") == expected_key

    head = s3.head_object(Bucket=shared_bucket, Key=key)
    assert head["ContentLength"] == size
    assert head["ETag"] == put["ETag"]
    assert head.get("ServerSideEncryption") == expected_sse
    assert head.get("SSEKMSKeyId") == expected_key

    # An overwrite replaces the object whole, encryption included.
    replacement = os.urandom(size // 2 + 1)
    s3.put_object(Bucket=shared_bucket, Key=key, Body=replacement)
    assert read(s3, shared_bucket, key) == replacement
    head = s3.head_object(Bucket=shared_bucket, Key=key)
    assert (head["ServerSideEncryption"], head.get("SSEKMSKeyId")) == ("AES256", None)


def test_service_managed_key_is_alias_aws_s3(s3, kms, s3_managed_key_arn):
    described = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert described["Arn"] == s3_managed_key_arn
    assert described["KeyManager"] == "AWS"
    assert described["KeyState"] == "Enabled"


def test_sse_kms_key_in_every_form(s3, kms, bucket):
    key = kms.create_key()["KeyMetadata"]
    alias = f"alias/s3-forms-{uuid.uuid4().hex[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    alias_arn = f"arn:aws:kms:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:{alias}"
    for form in [key["KeyId"], key["Arn"], alias, alias_arn]:
        object_key = f"form/{uuid.uuid4().hex[:6]}"
        data = os.urandom(1000)
        put = s3.put_object(Bucket=bucket, Key=object_key, Body=data, ServerSideEncryption="aws:kms",
                            SSEKMSKeyId=form)
        assert put["SSEKMSKeyId"] == key["Arn"], form
        got = s3.get_object(Bucket=bucket, Key=object_key)
        assert got["SSEKMSKeyId"] == key["Arn"], form
        assert got["Body"].read() == data


def test_encryption_context_header(s3, admin, bucket, fresh_key):
    context = {"team": "storage", "purpose": "kmsim test"}
    encoded = b64(json.dumps(context).encode())
    data = os.urandom(FRAME * 2 + 3)
    put = s3.put_object(Bucket=bucket, Key="ctx/object", Body=data, ServerSideEncryption="aws:kms",
                        SSEKMSKeyId=fresh_key["Arn"], SSEKMSEncryptionContext=encoded)
    assert put["SSEKMSEncryptionContext"] == encoded
    # (GetObject and HeadObject responses carry no context in S3's model.)
    assert read(s3, bucket, "ctx/object") == data

    # S3 adds aws:s3:arn to the user's context, for the data key and for every decryption of it.
    expected = {**context, **s3_arn_context(bucket, "ctx/object")}
    events = s3_audit(admin, fresh_key["Arn"])
    assert [e["operation"] for e in events] == ["GenerateDataKey", "Decrypt"]
    assert all(e["encryption_context"] == expected for e in events), events

    for bad in ["not base64!", b64(b"[1, 2]"), b64(b'{"a": 1}'), b64(b"{not json")]:
        expect_error("InvalidArgument", 400, s3.put_object, Bucket=bucket, Key="ctx/bad", Body=b"x",
                     ServerSideEncryption="aws:kms", SSEKMSEncryptionContext=bad)
    assert missing(s3, bucket, "ctx/bad")


# ---- ranges --------------------------------------------------------------------------------------


RANGE_SIZE = 300_000
RANGES = [
    ("bytes=0-0", 0, 0),
    ("bytes=0-99", 0, 99),
    ("bytes=1000-1999", 1000, 1999),
    ("bytes=65535-65536", FRAME - 1, FRAME),  # the last byte of frame 1 and the first of frame 2
    ("bytes=65536-131071", FRAME, 2 * FRAME - 1),  # exactly frame 2
    ("bytes=65530-131080", 65530, 131080),  # three frames
    ("bytes=262143-262144", 4 * FRAME - 1, 4 * FRAME),  # into the final frame
    ("bytes=0-", 0, RANGE_SIZE - 1),
    ("bytes=299990-", 299_990, RANGE_SIZE - 1),
    ("bytes=-1", RANGE_SIZE - 1, RANGE_SIZE - 1),
    ("bytes=-100", RANGE_SIZE - 100, RANGE_SIZE - 1),
    ("bytes=-70000", RANGE_SIZE - 70_000, RANGE_SIZE - 1),
    ("bytes=-400000", 0, RANGE_SIZE - 1),  # a suffix longer than the object: all of it
    ("bytes=299000-400000", 299_000, RANGE_SIZE - 1),  # an end past the object is cut
]


@pytest.mark.parametrize("sse", ["none", "aws:kms"])
def test_ranges(s3, bucket, sse):
    data = os.urandom(RANGE_SIZE)
    params = {"ServerSideEncryption": "aws:kms"} if sse == "aws:kms" else {}
    s3.put_object(Bucket=bucket, Key="ranged", Body=data, **params)
    for header, first, last in RANGES:
        got = s3.get_object(Bucket=bucket, Key="ranged", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert got["ContentRange"] == f"bytes {first}-{last}/{RANGE_SIZE}", header
        assert got["ContentLength"] == last - first + 1, header
        assert got["Body"].read() == data[first:last + 1], header

    # A syntactically invalid range is ignored: the whole object, 200.
    got = s3.get_object(Bucket=bucket, Key="ranged", Range="bytes=20-10")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["Body"].read() == data

    for header in ["bytes=300000-", "bytes=400000-500000", "bytes=300000-300001"]:
        response = expect_error("InvalidRange", 416, s3.get_object, Bucket=bucket, Key="ranged", Range=header)
        assert response["Error"].get("ActualObjectSize") == str(RANGE_SIZE)

    s3.put_object(Bucket=bucket, Key="empty", Body=b"", **params)
    expect_error("InvalidRange", 416, s3.get_object, Bucket=bucket, Key="empty", Range="bytes=0-0")
    assert read(s3, bucket, "empty") == b""
    assert read(s3, bucket, "ranged") == data


# ---- conditional requests ------------------------------------------------------------------------


@pytest.mark.parametrize("sse", ["none", "aws:kms"])
def test_conditional_get_and_head(s3, bucket, sse):
    data = os.urandom(5000)
    params = {"ServerSideEncryption": "aws:kms"} if sse == "aws:kms" else {}
    etag = s3.put_object(Bucket=bucket, Key="cond", Body=data, **params)["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="cond")["LastModified"]
    before, after = modified - dt.timedelta(days=1), modified + dt.timedelta(days=1)

    def ok(**conditions: Any) -> None:
        got = s3.get_object(Bucket=bucket, Key="cond", **conditions)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 200, conditions
        assert got["Body"].read() == data, conditions

    def status_of(call: Callable[..., Any], **conditions: Any) -> tuple[str, int]:
        with pytest.raises(ClientError) as info:
            call(Bucket=bucket, Key="cond", **conditions)
        return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]

    ok(IfMatch=etag)
    ok(IfMatch="*")
    ok(IfNoneMatch='"00000000000000000000000000000000"')
    ok(IfModifiedSince=before)
    ok(IfUnmodifiedSince=after)
    ok(IfUnmodifiedSince=modified)
    # S3: If-Match true and If-Unmodified-Since false → 200.
    ok(IfMatch=etag, IfUnmodifiedSince=before)

    assert status_of(s3.get_object, IfMatch='"00000000000000000000000000000000"') == ("PreconditionFailed", 412)
    assert status_of(s3.get_object, IfUnmodifiedSince=before) == ("PreconditionFailed", 412)
    assert status_of(s3.get_object, IfNoneMatch=etag) == ("304", 304)
    assert status_of(s3.get_object, IfNoneMatch="*") == ("304", 304)
    assert status_of(s3.get_object, IfModifiedSince=modified) == ("304", 304)
    # S3: If-None-Match false and If-Modified-Since true → 304.
    assert status_of(s3.get_object, IfNoneMatch=etag, IfModifiedSince=before) == ("304", 304)

    assert status_of(s3.head_object, IfNoneMatch=etag) == ("304", 304)
    assert status_of(s3.head_object, IfMatch='"0"') == ("412", 412)
    assert s3.head_object(Bucket=bucket, Key="cond", IfMatch=etag)["ETag"] == etag


# ---- metadata and stored headers -----------------------------------------------------------------


def test_metadata_and_headers_round_trip(s3, bucket):
    expires = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    headers = {
        "ContentType": "text/plain; charset=utf-8",
        "CacheControl": "max-age=60, private",
        "ContentDisposition": 'attachment; filename="report.txt"',
        "ContentEncoding": "identity",
        "ContentLanguage": "de-DE",
    }
    data = b"plain text\n" * 1000
    s3.put_object(Bucket=bucket, Key="meta", Body=data, Metadata={"Color": "Blue", "owner-id": "a b c"},
                  Expires=expires, ServerSideEncryption="aws:kms", **headers)
    for response in [s3.head_object(Bucket=bucket, Key="meta"), s3.get_object(Bucket=bucket, Key="meta")]:
        # S3 keeps metadata names in lower case.
        assert response["Metadata"] == {"color": "Blue", "owner-id": "a b c"}
        for field, value in headers.items():
            assert response[field] == value, field
        raw = response["ResponseMetadata"]["HTTPHeaders"]
        assert raw["expires"] == "Wed, 02 Jan 2030 03:04:05 GMT"
        assert raw["content-type"] == headers["ContentType"]
    assert read(s3, bucket, "meta") == data

    overridden = s3.get_object(
        Bucket=bucket, Key="meta", ResponseContentType="application/json", ResponseCacheControl="no-cache",
        ResponseContentDisposition="inline", ResponseContentLanguage="fr", ResponseContentEncoding="identity",
        ResponseExpires=dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc))
    assert overridden["ContentType"] == "application/json"
    assert overridden["CacheControl"] == "no-cache"
    assert overridden["ContentDisposition"] == "inline"
    assert overridden["ContentLanguage"] == "fr"
    assert overridden["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Tue, 06 May 2031 07:08:09 GMT"
    assert overridden["Body"].read() == data
    # The overrides change that one response only.
    assert s3.head_object(Bucket=bucket, Key="meta")["ContentType"] == headers["ContentType"]

    # Without a Content-Type, S3 answers binary/octet-stream; an overwrite drops the old metadata.
    s3.put_object(Bucket=bucket, Key="meta", Body=b"new")
    head = s3.head_object(Bucket=bucket, Key="meta")
    assert head["ContentType"] == "binary/octet-stream"
    assert head["Metadata"] == {}
    assert "CacheControl" not in head and "ContentDisposition" not in head


# ---- listing -------------------------------------------------------------------------------------


LISTED_KEYS = ["a/1", "a/2", "a/b/3", "a/b/4", "b/1", "c", "d e+f&g", "z%2Fencoded", "\u00fc/\u00f6"]


def s3_order(keys: list[str]) -> list[str]:
    """S3 lists keys in the binary order of their UTF-8 bytes."""
    return sorted(keys, key=lambda k: k.encode())


@pytest.fixture(scope="module")
def listed_bucket(s3) -> str:
    name = bucket_name("list")
    s3.create_bucket(Bucket=name)
    for key in LISTED_KEYS:
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    return name


def test_list_objects_v2_prefix_and_delimiter(s3, listed_bucket):
    page = s3.list_objects_v2(Bucket=listed_bucket)
    assert [o["Key"] for o in page["Contents"]] == s3_order(LISTED_KEYS)
    assert page["KeyCount"] == len(LISTED_KEYS)
    assert page["IsTruncated"] is False
    sizes = {o["Key"]: o["Size"] for o in page["Contents"]}
    assert sizes == {k: len(k.encode()) for k in LISTED_KEYS}

    page = s3.list_objects_v2(Bucket=listed_bucket, Prefix="a/")
    assert [o["Key"] for o in page["Contents"]] == ["a/1", "a/2", "a/b/3", "a/b/4"]

    page = s3.list_objects_v2(Bucket=listed_bucket, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/", "b/", "\u00fc/"]
    assert [o["Key"] for o in page["Contents"]] == ["c", "d e+f&g", "z%2Fencoded"]
    assert page["KeyCount"] == 6

    page = s3.list_objects_v2(Bucket=listed_bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in page["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/b/"]

    page = s3.list_objects_v2(Bucket=listed_bucket, StartAfter="b/1")
    assert [o["Key"] for o in page["Contents"]] == s3_order([k for k in LISTED_KEYS if k.encode() > b"b/1"])

    page = s3.list_objects_v2(Bucket=listed_bucket, Prefix="nothing-here")
    assert page["KeyCount"] == 0 and "Contents" not in page


def test_list_objects_v2_pagination(s3, listed_bucket):
    seen, token, pages = [], None, 0
    while True:
        params = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=listed_bucket, MaxKeys=2, **params)
        pages += 1
        assert page["MaxKeys"] == 2
        assert 1 <= page["KeyCount"] <= 2
        seen += [o["Key"] for o in page["Contents"]]
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        token = page["NextContinuationToken"]
        assert pages < 20
    assert seen == s3_order(LISTED_KEYS)
    assert pages == 5

    # With a delimiter, one entry (key or common prefix) per page, each once, in order.
    entries, token = [], None
    for _ in range(20):
        params = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=listed_bucket, MaxKeys=1, Delimiter="/", **params)
        page_entries = [o["Key"] for o in page.get("Contents", [])]
        page_entries += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert len(page_entries) <= 1
        entries += page_entries
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert entries == ["a/", "b/", "c", "d e+f&g", "z%2Fencoded", "\u00fc/"]

    paginator = s3.get_paginator("list_objects_v2")
    keys = [o["Key"] for p in paginator.paginate(Bucket=listed_bucket, PaginationConfig={"PageSize": 4})
            for o in p.get("Contents", [])]
    assert keys == s3_order(LISTED_KEYS)


def test_list_objects_v1_pagination(s3, listed_bucket):
    seen, marker = [], ""
    for _ in range(20):
        page = s3.list_objects(Bucket=listed_bucket, MaxKeys=3, Marker=marker)
        assert page["Marker"] == marker
        keys = [o["Key"] for o in page["Contents"]]
        assert 1 <= len(keys) <= 3
        assert all(o["Owner"]["ID"] for o in page["Contents"])
        seen += keys
        if not page["IsTruncated"]:
            break
        # Without a delimiter S3 sends no NextMarker: the next marker is the last key.
        assert "NextMarker" not in page
        marker = keys[-1]
    assert seen == s3_order(LISTED_KEYS)

    page = s3.list_objects(Bucket=listed_bucket, Delimiter="/", MaxKeys=2)
    assert page["IsTruncated"] is True
    assert page["NextMarker"] == "b/"
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/", "b/"]
    page = s3.list_objects(Bucket=listed_bucket, Delimiter="/", Marker=page["NextMarker"])
    assert [o["Key"] for o in page["Contents"]] == ["c", "d e+f&g", "z%2Fencoded"]
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["\u00fc/"]


def test_list_encoding_type_url(raw_s3, listed_bucket):
    """boto3 asks for encoding-type=url and decodes the keys with unquote_plus: a '+' in a key
    must come back encoded, or it turns into a space (checked above through boto3); here the raw
    document."""
    response = raw_s3.send("GET", f"/{listed_bucket}", query="encoding-type=url&list-type=2&prefix=d")
    assert response.status == 200, response.body
    body = response.body.decode()
    assert "<EncodingType>url</EncodingType>" in body
    assert "d e+f&g" not in body and "d e+f&amp;g" not in body
    assert "%2B" in body and "%26" in body


# ---- deleting ------------------------------------------------------------------------------------


def test_delete_objects(s3, bucket):
    for key in ["k1", "k2", "k3", "dir/k4"]:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode(), ServerSideEncryption="aws:kms")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k1"}, {"Key": "k2"}, {"Key": "nope"}]})
    # S3 reports a key that did not exist as deleted.
    assert sorted(d["Key"] for d in result["Deleted"]) == ["k1", "k2", "nope"]
    assert "Errors" not in result
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["dir/k4", "k3"]

    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k3"}], "Quiet": True})
    assert "Deleted" not in quiet and "Errors" not in quiet
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["dir/k4"]

    assert s3.delete_object(Bucket=bucket, Key="dir/k4")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.delete_object(Bucket=bucket, Key="never-was")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="k1")
    expect_error("NoSuchBucket", 404, s3.delete_objects, Bucket=bucket_name("missing"),
                 Delete={"Objects": [{"Key": "k"}]})


# ---- integrity of uploads ------------------------------------------------------------------------


@pytest.mark.parametrize("sse", ["none", "aws:kms"])
def test_content_md5_mismatch_stores_nothing(s3, bucket, sse):
    params = {"ServerSideEncryption": "aws:kms"} if sse == "aws:kms" else {}
    original = os.urandom(FRAME + 1)
    s3.put_object(Bucket=bucket, Key="md5", Body=original, ContentMD5=b64(hashlib.md5(original).digest()), **params)
    wrong = b64(hashlib.md5(b"something else").digest())

    # Over an existing object: refused, and the old object is untouched.
    expect_error("BadDigest", 400, s3.put_object, Bucket=bucket, Key="md5", Body=os.urandom(100), ContentMD5=wrong,
                 **params)
    assert read(s3, bucket, "md5") == original
    # A new key: nothing appears.
    expect_error("BadDigest", 400, s3.put_object, Bucket=bucket, Key="md5-new", Body=os.urandom(3 * FRAME),
                 ContentMD5=wrong, **params)
    assert missing(s3, bucket, "md5-new")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["md5"]
    # Not the base64 of 16 bytes.
    expect_error("InvalidDigest", 400, s3.put_object, Bucket=bucket, Key="md5-new", Body=b"abc",
                 ContentMD5="not-an-md5", **params)
    assert missing(s3, bucket, "md5-new")


@pytest.mark.parametrize("algorithm", ["SHA256", "CRC32", "SHA1"])
def test_checksum_algorithm_on_put(s3, bucket, algorithm):
    data = os.urandom(FRAME + 5)
    for sse in [{}, {"ServerSideEncryption": "aws:kms"}]:
        key = f"checksum/{algorithm}/{bool(sse)}"
        s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm, **sse)
        assert read(s3, bucket, key) == data


def test_explicit_checksum_values(s3, bucket):
    """CRC32C and CRC64NVME values computed here (botocore computes them only with awscrt)."""
    data = os.urandom(10_000)
    cases = [
        ("ChecksumCRC32C", b64(crc32c(data)), b64(crc32c(data + b"!"))),
        ("ChecksumCRC64NVME", b64(crc64nvme(data)), b64(crc64nvme(data + b"!"))),
        ("ChecksumSHA256", b64(hashlib.sha256(data).digest()), b64(hashlib.sha256(b"!").digest())),
        ("ChecksumSHA1", b64(hashlib.sha1(data).digest()), b64(hashlib.sha1(b"!").digest())),
    ]
    for member, right, wrong in cases:
        for sse in [{}, {"ServerSideEncryption": "aws:kms"}]:
            key = f"explicit/{member}/{bool(sse)}"
            s3.put_object(Bucket=bucket, Key=key, Body=data, **{member: right}, **sse)
            assert read(s3, bucket, key) == data
            bad_key = key + "/bad"
            response = expect_error("BadDigest", 400, s3.put_object, Bucket=bucket, Key=bad_key, Body=data,
                                    **{member: wrong}, **sse)
            assert member.removeprefix("Checksum").lower() in response["Error"]["Message"].lower()
            assert missing(s3, bucket, bad_key)


def test_checksum_is_echoed_and_kept(s3, bucket):
    data = os.urandom(2000)
    expected = b64(hashlib.sha256(data).digest())
    put = s3.put_object(Bucket=bucket, Key="echo", Body=data, ChecksumAlgorithm="SHA256",
                        ServerSideEncryption="aws:kms")
    assert put.get("ChecksumSHA256") == expected
    got = s3.get_object(Bucket=bucket, Key="echo", ChecksumMode="ENABLED")
    assert got.get("ChecksumSHA256") == expected
    assert got["Body"].read() == data
    assert s3.head_object(Bucket=bucket, Key="echo", ChecksumMode="ENABLED").get("ChecksumSHA256") == expected


# ---- SSE header errors ---------------------------------------------------------------------------


def test_sse_header_errors_on_put(s3, bucket, customer_key):
    # A key id (or a context) without x-amz-server-side-encryption: aws:kms.
    expect_error("InvalidArgument", 400, s3.put_object, Bucket=bucket, Key="e1", Body=b"x",
                 SSEKMSKeyId=customer_key["KeyId"])
    expect_error("InvalidArgument", 400, s3.put_object, Bucket=bucket, Key="e1", Body=b"x",
                 SSEKMSEncryptionContext=b64(b'{"a":"b"}'))
    # An algorithm S3 does not know.
    response = expect_error("InvalidArgument", 400, s3.put_object, Bucket=bucket, Key="e1", Body=b"x",
                            ServerSideEncryption="rot13")
    assert response["Error"].get("ArgumentName") == "x-amz-server-side-encryption"
    assert response["Error"].get("ArgumentValue") == "rot13"
    # A KMS key id with SSE-S3.
    expect_error("InvalidArgument", 400, s3.put_object, Bucket=bucket, Key="e1", Body=b"x",
                 ServerSideEncryption="AES256", SSEKMSKeyId=customer_key["KeyId"])
    assert missing(s3, bucket, "e1")
    assert_serving(s3, bucket)


def test_sse_headers_on_get_and_head_of_kms_object(s3, raw_s3, bucket, customer_key):
    data = os.urandom(3000)
    s3.put_object(Bucket=bucket, Key="kms-object", Body=data, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=customer_key["KeyId"])
    for headers in [
        {"x-amz-server-side-encryption": "aws:kms"},
        {"x-amz-server-side-encryption-aws-kms-key-id": customer_key["Arn"]},
        {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": customer_key["Arn"]},
    ]:
        for method in ["GET", "HEAD"]:
            response = raw_s3.send(method, f"/{bucket}/kms-object", headers=headers)
            assert response.status == 400, (method, headers, response)
            if method == "GET":
                assert b"<Code>InvalidArgument</Code>" in response.body, response.body
                assert data not in response.body
    assert read(s3, bucket, "kms-object") == data


def test_sse_c_headers_on_get_of_an_object_not_encrypted_with_them(s3, bucket):
    """S3: 400 InvalidRequest, the encryption parameters are not applicable to this object."""
    s3.put_object(Bucket=bucket, Key="kms-object", Body=b"secret", ServerSideEncryption="aws:kms")
    s3.put_object(Bucket=bucket, Key="s3-object", Body=b"secret", ServerSideEncryption="AES256")
    for key in ["kms-object", "s3-object"]:
        for call in [s3.get_object, s3.head_object]:
            with pytest.raises(ClientError) as info:
                call(Bucket=bucket, Key=key, SSECustomerAlgorithm="AES256", SSECustomerKey=os.urandom(32))
            assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400, (key, call)
            if call == s3.get_object:
                assert info.value.response["Error"]["Code"] == "InvalidRequest"
        assert read(s3, bucket, key) == b"secret"


# ---- bucket default encryption -------------------------------------------------------------------


def encryption_rule(algorithm: str = "aws:kms", key: str | None = None, bucket_key: bool = False) -> dict:
    default: dict[str, str] = {"SSEAlgorithm": algorithm}
    if key is not None:
        default["KMSMasterKeyID"] = key
    return {"Rules": [{"ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": bucket_key}]}


def test_bucket_default_encryption_with_customer_key(s3, kms, admin, bucket, fresh_key, customer_key):
    # A new bucket reports S3's base encryption, SSE-S3.
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule == {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": False}

    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption_rule(key=fresh_key["Arn"]))
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": fresh_key["Arn"]}
    assert rule["BucketKeyEnabled"] is False

    # No SSE header: the bucket's default applies.
    data = os.urandom(2 * FRAME + 100)
    put = s3.put_object(Bucket=bucket, Key="by-default", Body=data)
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", fresh_key["Arn"])
    got = s3.get_object(Bucket=bucket, Key="by-default")
    assert got["Body"].read() == data
    assert got["SSEKMSKeyId"] == fresh_key["Arn"]
    generated = s3_audit(admin, fresh_key["Arn"], operation="GenerateDataKey")
    assert [e["encryption_context"] for e in generated] == [s3_arn_context(bucket, "by-default")]

    # Headers on the request win over the default.
    put = s3.put_object(Bucket=bucket, Key="explicit", Body=b"x", ServerSideEncryption="aws:kms",
                        SSEKMSKeyId=customer_key["KeyId"])
    assert put["SSEKMSKeyId"] == customer_key["Arn"]

    # A default naming a disabled key refuses writes with the KMS's word.
    kms.disable_key(KeyId=fresh_key["KeyId"])
    expect_error("KMS.DisabledException", 400, s3.put_object, Bucket=bucket, Key="refused", Body=b"x")
    assert missing(s3, bucket, "refused")
    kms.enable_key(KeyId=fresh_key["KeyId"])

    # Bucket Key echoed when the default enables it.
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption_rule(
        key=fresh_key["KeyId"], bucket_key=True))
    put = s3.put_object(Bucket=bucket, Key="bucket-key", Body=b"bk")
    assert put.get("BucketKeyEnabled") is True
    assert s3.head_object(Bucket=bucket, Key="bucket-key").get("BucketKeyEnabled") is True
    assert read(s3, bucket, "bucket-key") == b"bk"

    # Removing the default: new objects get S3's base encryption (SSE-S3), which GetBucketEncryption
    # reports as S3 does since January 2023; old ones still read.
    assert s3.delete_bucket_encryption(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule == {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": False}
    put = s3.put_object(Bucket=bucket, Key="plain", Body=b"plain")
    assert (put["ServerSideEncryption"], put.get("SSEKMSKeyId")) == ("AES256", None)
    assert read(s3, bucket, "by-default") == data


def test_bucket_default_encryption_with_service_key(s3, bucket, s3_managed_key_arn):
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption_rule())
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms"}
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"managed")
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", s3_managed_key_arn)
    assert read(s3, bucket, "k") == b"managed"


def test_bucket_default_encryption_with_unknown_key(s3, bucket):
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption_rule(
        key=key_arn(str(uuid.uuid4()))))
    expect_error("KMS.NotFoundException", 400, s3.put_object, Bucket=bucket, Key="k", Body=b"x")
    assert missing(s3, bucket, "k")


# ---- the key's state reaches the client ----------------------------------------------------------


def test_key_state_matrix(s3, kms, admin, bucket, fresh_key):
    key_id = fresh_key["KeyId"]
    data = os.urandom(FRAME * 3 + 11)
    s3.put_object(Bucket=bucket, Key="obj", Body=data, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)

    def put_new(name: str):
        return s3.put_object(Bucket=bucket, Key=name, Body=b"new", ServerSideEncryption="aws:kms",
                             SSEKMSKeyId=fresh_key["Arn"])

    kms.disable_key(KeyId=key_id)
    expect_error("KMS.DisabledException", 400, s3.get_object, Bucket=bucket, Key="obj")
    expect_error("KMS.DisabledException", 400, s3.get_object, Bucket=bucket, Key="obj", Range="bytes=0-9")
    expect_error("KMS.DisabledException", 400, put_new, name="while-disabled")
    assert missing(s3, bucket, "while-disabled")

    kms.enable_key(KeyId=key_id)
    assert read(s3, bucket, "obj") == data
    put_new("while-enabled")
    assert read(s3, bucket, "while-enabled") == b"new"

    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    expect_error("KMS.KMSInvalidStateException", 400, s3.get_object, Bucket=bucket, Key="obj")
    expect_error("KMS.KMSInvalidStateException", 400, put_new, name="while-pending")
    assert missing(s3, bucket, "while-pending")

    # CancelKeyDeletion leaves the key disabled.
    kms.cancel_key_deletion(KeyId=key_id)
    expect_error("KMS.DisabledException", 400, s3.get_object, Bucket=bucket, Key="obj")
    kms.enable_key(KeyId=key_id)
    assert read(s3, bucket, "obj") == data
    assert read(s3, bucket, "obj", Range="bytes=65536-65545") == data[65536:65546]

    outcomes = [(e["operation"], e["outcome"]) for e in s3_audit(admin, fresh_key["Arn"])]
    assert ("Decrypt", "DisabledException") in outcomes
    assert ("GenerateDataKey", "DisabledException") in outcomes
    assert ("Decrypt", "KMSInvalidStateException") in outcomes
    assert ("GenerateDataKey", "KMSInvalidStateException") in outcomes
    assert_serving(s3, bucket)


@pytest.mark.parametrize("form", ["id", "arn", "alias", "alias-arn"])
def test_unknown_key(s3, bucket, form):
    unknown = str(uuid.uuid4())
    key_id = {
        "id": unknown,
        "arn": key_arn(unknown),
        "alias": f"alias/none-{unknown[:8]}",
        "alias-arn": f"arn:aws:kms:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:alias/none-{unknown[:8]}",
    }[form]
    expect_error("KMS.NotFoundException", 400, s3.put_object, Bucket=bucket, Key="k", Body=b"x",
                 ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
    assert missing(s3, bucket, "k")


def test_cross_account_key_and_bucket(start_kmsim, s3_for, client_for):
    server = start_kmsim(config=SECOND_ACCOUNT_CONFIG)
    s3_mine = s3_for(server)
    s3_other = s3_for(server, "AKIDOTHER", "other-secret")
    kms_other = client_for(server, "AKIDOTHER", "other-secret")
    theirs = kms_other.create_key(Description="the other account's key")["KeyMetadata"]
    assert theirs["Arn"].startswith(f"arn:aws:kms:{DEFAULT_REGION}:{OTHER_ACCOUNT}:key/")
    mine = bucket_name("mine")
    s3_mine.create_bucket(Bucket=mine)

    def put_under_their_key(name: str):
        return s3_mine.put_object(Bucket=mine, Key=name, Body=b"data", ServerSideEncryption="aws:kms",
                                  SSEKMSKeyId=theirs["Arn"])

    # No grant, no policy: the other account's key is out of reach.
    expect_error("AccessDenied", 403, put_under_their_key, name="denied")
    assert missing(s3_mine, mine, "denied")

    grant = kms_other.create_grant(KeyId=theirs["KeyId"], GranteePrincipal=f"arn:aws:iam::{DEFAULT_ACCOUNT}:root",
                                   Operations=["GenerateDataKey", "Decrypt"])
    put = put_under_their_key("granted")
    assert put["SSEKMSKeyId"] == theirs["Arn"]
    assert read(s3_mine, mine, "granted") == b"data"
    kms_other.revoke_grant(KeyId=theirs["KeyId"], GrantId=grant["GrantId"])
    expect_error("AccessDenied", 403, s3_mine.get_object, Bucket=mine, Key="granted")

    # Buckets belong to their account.
    expect_error("AccessDenied", 403, s3_other.get_object, Bucket=mine, Key="granted")
    expect_error("AccessDenied", 403, s3_other.put_object, Bucket=mine, Key="x", Body=b"x")
    expect_error("AccessDenied", 403, s3_other.list_objects_v2, Bucket=mine)
    expect_error("BucketAlreadyExists", 409, s3_other.create_bucket, Bucket=mine)
    assert mine not in {b["Name"] for b in s3_other.list_buckets()["Buckets"]}

    events = server.admin.audit(via_service=S3_SERVICE, key=theirs["Arn"])
    assert [(e["operation"], e["outcome"], e["account"]) for e in events] == [
        ("GenerateDataKey", "AccessDeniedException", DEFAULT_ACCOUNT),
        ("GenerateDataKey", "Success", DEFAULT_ACCOUNT),
        ("Decrypt", "Success", DEFAULT_ACCOUNT),
        ("Decrypt", "AccessDeniedException", DEFAULT_ACCOUNT),
    ]
    assert_serving(s3_mine, mine)


# ---- the audit log of the object service ---------------------------------------------------------


def test_audit_log_records_each_kms_call_of_s3(s3, admin, bucket, fresh_key):
    arn = fresh_key["Arn"]
    data = os.urandom(FRAME * 2)
    s3.put_object(Bucket=bucket, Key="audited/one", Body=data, ServerSideEncryption="aws:kms", SSEKMSKeyId=arn)
    s3.head_object(Bucket=bucket, Key="audited/one")
    assert read(s3, bucket, "audited/one") == data
    assert read(s3, bucket, "audited/one", Range="bytes=100-200") == data[100:201]
    s3.put_object(Bucket=bucket, Key="audited/plain", Body=b"plain")
    assert read(s3, bucket, "audited/plain") == b"plain"

    events = s3_audit(admin, arn)
    assert [e["operation"] for e in events] == ["GenerateDataKey", "Decrypt", "Decrypt"]
    for event in events:
        assert event["via_service"] == S3_SERVICE
        assert event["dialect"] == "internal"
        assert event["outcome"] == "Success"
        assert event["key_arn"] == arn
        assert event["account"] == DEFAULT_ACCOUNT
        assert event["access_key"] == "test"
        assert event["encryption_context"] == s3_arn_context(bucket, "audited/one")
    # The object service's calls are not recorded as the customer's own (only CreateKey is).
    assert [e["operation"] for e in admin.audit(via_service="none", key=arn)] == ["CreateKey"]


# ---- multipart uploads ---------------------------------------------------------------------------


def test_multipart_upload_with_sse_kms(s3, admin, bucket, fresh_key):
    """SSE is chosen at CreateMultipartUpload; the completed object reads back byte-exact, also
    across the part boundary. (This was a 501 NotImplemented when these tests were written; the
    feature landed meanwhile.)"""
    part1, part2 = os.urandom(5 * 1024 * 1024 + 3), os.urandom(FRAME + 17)
    data = part1 + part2
    created = s3.create_multipart_upload(Bucket=bucket, Key="mpu", ServerSideEncryption="aws:kms",
                                         SSEKMSKeyId=fresh_key["KeyId"], ContentType="application/x-test",
                                         Metadata={"m": "v"})
    assert (created["ServerSideEncryption"], created["SSEKMSKeyId"]) == ("aws:kms", fresh_key["Arn"])
    upload_id = created["UploadId"]
    etags = []
    for number, part in [(1, part1), (2, part2)]:
        response = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=upload_id, PartNumber=number, Body=part)
        assert response["ServerSideEncryption"] == "aws:kms"
        etags.append(response["ETag"])
    listed = s3.list_parts(Bucket=bucket, Key="mpu", UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(1, len(part1)), (2, len(part2))]
    assert missing(s3, bucket, "mpu")

    done = s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in zip([1, 2], etags)]})
    assert (done["ServerSideEncryption"], done["SSEKMSKeyId"]) == ("aws:kms", fresh_key["Arn"])
    got = s3.get_object(Bucket=bucket, Key="mpu")
    assert got["Body"].read() == data
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"m": "v"}
    boundary = len(part1)
    assert read(s3, bucket, "mpu", Range=f"bytes={boundary - 5}-{boundary + 4}") == data[boundary - 5:boundary + 5]
    assert all(e["encryption_context"] == s3_arn_context(bucket, "mpu") for e in s3_audit(admin, fresh_key["Arn"]))

    aborted = s3.create_multipart_upload(Bucket=bucket, Key="aborted", ServerSideEncryption="aws:kms")
    s3.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=aborted["UploadId"])
    expect_error("NoSuchUpload", 404, s3.upload_part, Bucket=bucket, Key="aborted", UploadId=aborted["UploadId"],
                 PartNumber=1, Body=b"late")
    assert missing(s3, bucket, "aborted")


# ---- features not built yet, and the server after bad requests -----------------------------------


def newest_s3_kms_event(admin) -> list[dict]:
    """The newest KMS call of the object service (to tell that a test made none)."""
    return admin.audit(via_service=S3_SERVICE, limit=1)


@pytest.mark.parametrize("size", [0, FRAME + 1])
def test_sse_s3_round_trip(s3, admin, bucket, size):
    """SSE-S3 (AES256): the object store's own key; no call to the customer's KMS."""
    data = os.urandom(size)
    calls = newest_s3_kms_event(admin)
    put = s3.put_object(Bucket=bucket, Key="sse-s3", Body=data, ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"
    assert "SSEKMSKeyId" not in put
    got = s3.get_object(Bucket=bucket, Key="sse-s3")
    assert got["ServerSideEncryption"] == "AES256"
    assert got["Body"].read() == data
    assert s3.head_object(Bucket=bucket, Key="sse-s3")["ServerSideEncryption"] == "AES256"
    if size:
        assert read(s3, bucket, "sse-s3", Range=f"bytes={FRAME - 2}-{FRAME}") == data[FRAME - 2:FRAME + 1]

    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption_rule("AES256"))
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert s3.put_object(Bucket=bucket, Key="by-default", Body=data)["ServerSideEncryption"] == "AES256"
    assert read(s3, bucket, "by-default") == data
    assert newest_s3_kms_event(admin) == calls


def test_sse_c_round_trip_and_key_errors(s3, admin, bucket):
    """SSE-C: the customer's key on every request; the response names only its MD5."""
    key, wrong = os.urandom(32), os.urandom(32)
    key_md5 = b64(hashlib.md5(key).digest())
    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
    data = os.urandom(2 * FRAME + 7)
    calls = newest_s3_kms_event(admin)
    put = s3.put_object(Bucket=bucket, Key="sse-c", Body=data, **sse_c)
    assert (put["SSECustomerAlgorithm"], put["SSECustomerKeyMD5"]) == ("AES256", key_md5)
    assert "ServerSideEncryption" not in put

    got = s3.get_object(Bucket=bucket, Key="sse-c", **sse_c)
    assert got["Body"].read() == data
    assert (got["SSECustomerAlgorithm"], got["SSECustomerKeyMD5"]) == ("AES256", key_md5)
    assert s3.head_object(Bucket=bucket, Key="sse-c", **sse_c)["ContentLength"] == len(data)
    assert read(s3, bucket, "sse-c", Range="bytes=65530-65545", **sse_c) == data[65530:65546]

    # Without the key: 400 InvalidRequest; with another key: 403.
    expect_error("InvalidRequest", 400, s3.get_object, Bucket=bucket, Key="sse-c")
    with pytest.raises(ClientError) as info:
        s3.head_object(Bucket=bucket, Key="sse-c")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    expect_error("AccessDenied", 403, s3.get_object, Bucket=bucket, Key="sse-c", SSECustomerAlgorithm="AES256",
                 SSECustomerKey=wrong)
    # SSE-C together with another method is refused, and nothing is stored.
    expect_error("InvalidArgument", 400, s3.put_object, Bucket=bucket, Key="mixed", Body=b"x",
                 ServerSideEncryption="aws:kms", **sse_c)
    assert missing(s3, bucket, "mixed")
    assert newest_s3_kms_event(admin) == calls
    assert read(s3, bucket, "sse-c", **sse_c) == data


def test_bucket_key_cuts_kms_calls(s3, admin, bucket, fresh_key):
    """With an S3 Bucket Key, S3 asks the KMS for a bucket-level key (its context is the bucket's
    ARN) instead of a data key per object."""
    objects = {f"bk/{i}": os.urandom(100 + i * 1000) for i in range(12)}
    for name, data in objects.items():
        put = s3.put_object(Bucket=bucket, Key=name, Body=data, ServerSideEncryption="aws:kms",
                            SSEKMSKeyId=fresh_key["Arn"], BucketKeyEnabled=True)
        assert put.get("BucketKeyEnabled") is True
        assert put["SSEKMSKeyId"] == fresh_key["Arn"]
    for name, data in objects.items():
        got = s3.get_object(Bucket=bucket, Key=name)
        assert got["Body"].read() == data
        assert got.get("BucketKeyEnabled") is True
    generated = s3_audit(admin, fresh_key["Arn"], operation="GenerateDataKey")
    assert len(generated) == 1, generated
    assert generated[0]["encryption_context"] == {"aws:s3:arn": f"arn:aws:s3:::{bucket}"}
    assert all(e["encryption_context"] == {"aws:s3:arn": f"arn:aws:s3:::{bucket}"}
               for e in s3_audit(admin, fresh_key["Arn"]))


def test_unbuilt_features_answer_not_implemented(s3, bucket):
    """What is not built yet says so (501 NotImplemented), stores nothing, and the server goes
    on serving. (Multipart, CopyObject, SSE-S3, SSE-C, presigned URLs and Bucket Keys were
    NotImplemented when these tests were written, and landed meanwhile: DSSE-KMS is what is left.)"""
    response = expect_error("NotImplemented", 501, s3.put_object, Bucket=bucket, Key="unbuilt", Body=b"x",
                            ServerSideEncryption="aws:kms:dsse")
    assert "DSSE" in response["Error"]["Message"]
    assert missing(s3, bucket, "unbuilt")
    expect_error("NotImplemented", 501, s3.create_multipart_upload, Bucket=bucket, Key="unbuilt",
                 ServerSideEncryption="aws:kms:dsse")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert_serving(s3, bucket)


def test_presigned_get(kmsim, bucket):
    """A SigV4 presigned GET is served; a tampered one never serves the object (every other kind of
    presigned URL: test_s3_presigned.py)."""
    signer = make_s3_client(kmsim["endpoint"], signature_version="s3v4")
    signer.put_object(Bucket=bucket, Key="shared", Body=b"presigned bytes", ServerSideEncryption="aws:kms")
    url = signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared"}, ExpiresIn=600)
    assert "X-Amz-Signature=" in url

    status, body = http_get(url)
    assert (status, body) == (200, b"presigned bytes")
    signature = url.rsplit("X-Amz-Signature=", 1)[1][:64]
    tampered = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    status, body = http_get(tampered)
    assert status == 403, body
    assert b"<Code>SignatureDoesNotMatch</Code>" in body
    other_key = url.replace("/shared?", "/other?")
    status, body = http_get(other_key)
    assert status == 403 and b"presigned bytes" not in body


def test_server_keeps_serving_after_bad_requests(s3, raw_s3, bucket):
    precious = os.urandom(FRAME + 99)
    s3.put_object(Bucket=bucket, Key="precious", Body=precious, ServerSideEncryption="aws:kms")
    path = f"/{bucket}/victim"
    bad_requests: list[tuple[str, dict[str, Any], int, str]] = [
        ("malformed encryption XML", dict(method="PUT", path=f"/{bucket}", query="encryption",
                                           body=b"<ServerSideEncryptionConfiguration><Rule>"), 400, "MalformedXML"),
        ("malformed delete XML", dict(method="POST", path=f"/{bucket}", query="delete", body=b"<Delete><Obj"),
         400, "MalformedXML"),
        ("wrong secret", dict(method="PUT", path=path, body=b"x", secret="wrong"), 403, "SignatureDoesNotMatch"),
        ("unknown access key", dict(method="PUT", path=path, body=b"x", access_key="AKIDNOBODY"), 403,
         "InvalidAccessKeyId"),
        ("unsigned", dict(method="PUT", path=path, body=b"x", sign=False), 403, "AccessDenied"),
        ("payload hash mismatch", dict(method="PUT", path=path, body=b"y", sent_body=b"x"), 400,
         "XAmzContentSHA256Mismatch"),
        ("bad Content-MD5", dict(method="PUT", path=path, body=b"x",
                                 headers={"Content-MD5": b64(hashlib.md5(b"y").digest())}), 400, "BadDigest"),
        ("unknown SSE algorithm", dict(method="PUT", path=path, body=b"x",
                                       headers={"x-amz-server-side-encryption": "rot13"}), 400, "InvalidArgument"),
        ("range past the end", dict(method="GET", path=f"/{bucket}/precious", headers={"Range": "bytes=999999-"}),
         416, "InvalidRange"),
        ("missing key", dict(method="GET", path=path), 404, "NoSuchKey"),
    ]
    for name, request, status, code in bad_requests:
        response = raw_s3.send(**request)
        assert response.status == status, (name, response)
        assert f"<Code>{code}</Code>".encode() in response.body, (name, response.body)
        assert missing(s3, bucket, "victim"), name
        assert read(s3, bucket, "precious") == precious, name
    assert_serving(s3, bucket)


def signed_request_head(endpoint: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The head (request line and headers) of a SigV4-signed request, as bytes."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    host = endpoint.split("//", 1)[1]
    request = AWSRequest(method=method, url=f"http://{host}{path}", data=body, headers=dict(headers))
    S3SigV4Auth(Credentials("test", "test"), "s3", DEFAULT_REGION).add_auth(request)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v if isinstance(v, str) else v.decode()}" for k, v in request.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_one_response(sock: socket.socket) -> tuple[bytes, dict[str, str], bytes]:
    """Reads one HTTP/1.1 response with a Content-Length body: status line, headers, body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status_line.encode(), headers, rest[:length]


def test_connection_after_early_error(kmsim):
    """An error sent before the request body was read must leave the connection usable (the body
    drained) or say ``Connection: close``. Clients pool connections: boto3 without retries then
    fails its next call with ConnectionClosedError."""
    host, port = kmsim["endpoint"].split("//", 1)[1].rsplit(":", 1)
    body = b"x" * 10
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(signed_request_head(kmsim["endpoint"], "PUT", f"/{bucket_name('missing')}/k", body, {}))
        status, headers, _ = read_one_response(sock)  # NoSuchBucket, sent before the body
        assert status.startswith(b"HTTP/1.1 404"), status
        sock.sendall(body)  # a client sends its body anyway (no Expect: 100-continue)
        if headers.get("connection", "").lower() == "close":
            return
        sock.sendall(signed_request_head(kmsim["endpoint"], "GET", "/", b"", {}))
        status, _, document = read_one_response(sock)
        assert status.startswith(b"HTTP/1.1 200"), (status, document)
        assert b"ListAllMyBucketsResult" in document


def test_put_after_empty_put_on_one_connection(kmsim, bucket):
    """boto3 sends every PutObject with ``Expect: 100-continue``, also an empty one (a folder
    marker, an empty file in a sync); the next PUT on the same connection must not stall."""
    s3 = make_s3_client(kmsim["endpoint"], read_timeout=3, max_pool_connections=1)
    s3.put_object(Bucket=bucket, Key="folder/", Body=b"")
    started = time.monotonic()
    s3.put_object(Bucket=bucket, Key="folder/file", Body=b"x" * 5000)
    assert time.monotonic() - started < 2
    assert read(s3, bucket, "folder/file") == b"x" * 5000


# ---- virtual-host style --------------------------------------------------------------------------


def virtual_host_flow(s3_virtual, s3_path) -> None:
    name = bucket_name("vhost")
    s3_virtual.create_bucket(Bucket=name)
    s3_path.head_bucket(Bucket=name)  # the same bucket, seen path style
    data = os.urandom(FRAME + 1)
    key = "dir/with space/obj+1"
    put = s3_virtual.put_object(Bucket=name, Key=key, Body=data, ServerSideEncryption="aws:kms",
                                Metadata={"style": "virtual"})
    assert put["ServerSideEncryption"] == "aws:kms"
    got = s3_virtual.get_object(Bucket=name, Key=key)
    assert got["Body"].read() == data
    assert got["Metadata"] == {"style": "virtual"}
    assert read(s3_path, name, key) == data
    assert read(s3_virtual, name, key, Range="bytes=65530-65536") == data[65530:65537]
    assert [o["Key"] for o in s3_virtual.list_objects_v2(Bucket=name, Prefix="dir/")["Contents"]] == [key]
    assert [p["Prefix"] for p in s3_virtual.list_objects(Bucket=name, Delimiter="/")["CommonPrefixes"]] == ["dir/"]
    s3_virtual.delete_objects(Bucket=name, Delete={"Objects": [{"Key": key}]})
    expect_error("NoSuchKey", 404, s3_virtual.get_object, Bucket=name, Key=key)
    s3_virtual.delete_bucket(Bucket=name)
    expect_error("NoSuchBucket", 404, s3_path.list_objects_v2, Bucket=name)


def _localhost_subdomains_resolve() -> bool:
    try:
        return bool(socket.getaddrinfo(f"{bucket_name('probe')}.localhost", 80))
    except OSError:
        return False


def _localhost_endpoint(endpoint: str) -> str:
    port = endpoint.rsplit(":", 1)[1]
    return f"http://localhost:{port}"


@pytest.mark.skipif(not _localhost_subdomains_resolve(),
                    reason="<bucket>.localhost does not resolve on this machine (no RFC 6761 localhost "
                           "subdomains in its resolver); test_virtual_host_style_pinned_resolution covers it")
def test_virtual_host_style(kmsim, s3):
    virtual_host_flow(make_s3_client(_localhost_endpoint(kmsim["endpoint"]), addressing_style="virtual"), s3)


def test_virtual_host_style_pinned_resolution(kmsim, s3, monkeypatch):
    """Virtual-host style through boto3 with ``<bucket>.localhost`` pinned to the loopback
    address in this process (what ``curl --resolve`` does), so the test runs where the resolver
    does not know localhost subdomains."""
    original = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    virtual_host_flow(make_s3_client(_localhost_endpoint(kmsim["endpoint"]), addressing_style="virtual"), s3)


def test_virtual_host_style_by_host_header(kmsim, s3, bucket):
    raw = RawS3(kmsim["endpoint"])
    port = kmsim["endpoint"].rsplit(":", 1)[1]
    data = os.urandom(700)
    s3.put_object(Bucket=bucket, Key="a/b", Body=data, ServerSideEncryption="aws:kms")
    response = raw.send("GET", "/a/b", host=f"{bucket}.localhost:{port}")
    assert (response.status, response.body) == (200, data)
    assert response.headers["x-amz-server-side-encryption"] == "aws:kms"
    response = raw.send("GET", "/", query="list-type=2", host=f"{bucket}.localhost:{port}")
    assert response.status == 200 and b"<Key>a/b</Key>" in response.body
