"""Conditional writes and copies, as S3 evaluates them, through boto3 and raw requests:
``If-None-Match: *`` and ``If-Match`` on PutObject and CompleteMultipartUpload (412
PreconditionFailed when the condition does not hold, 404 for If-Match on no object, 409
ConditionalRequestConflict when a concurrent write finishes first), and the
``x-amz-copy-source-if-*`` conditions of CopyObject and UploadPartCopy.
"""

from __future__ import annotations

import datetime as dt
import http.client
import urllib.parse
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import DEFAULT_REGION

MIB = 1024 * 1024


class UnsignedPayload(S3SigV4Auth):
    """SigV4 with `UNSIGNED-PAYLOAD` over plain HTTP too (botocore signs the payload there), so that
    a body can be sent after the request is signed."""

    def _should_sha256_sign_payload(self, request):
        return False


def error_of(call, **params) -> tuple[int, str, dict]:
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    return s3_bucket


def test_put_if_none_match_and_if_match(s3, raw_s3, bucket):
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    status, code, err = error_of(s3.put_object, Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert (status, code, err.get("Condition")) == (412, "PreconditionFailed", "If-None-Match")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"

    replaced = s3.put_object(Bucket=bucket, Key="k", Body=b"third", IfMatch=first["ETag"])
    status, code, err = error_of(s3.put_object, Bucket=bucket, Key="k", Body=b"fourth", IfMatch=first["ETag"])
    assert (status, code, err.get("Condition")) == (412, "PreconditionFailed", "If-Match")
    assert s3.get_object(Bucket=bucket, Key="k")["ETag"] == replaced["ETag"]
    status, code, _ = error_of(s3.put_object, Bucket=bucket, Key="missing", Body=b"x", IfMatch=first["ETag"])
    assert (status, code) == (404, "NoSuchKey")
    # S3 implements no other If-None-Match on writes.
    response = raw_s3.send("PUT", f"/{bucket}/k", body=b"x", headers={"If-None-Match": '"abc"'})
    assert response.status == 501 and b"<Code>NotImplemented</Code>" in response.body
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"third"


def test_complete_multipart_upload_if_none_match(s3, bucket):
    s3.put_object(Bucket=bucket, Key="taken", Body=b"already here")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="taken")
    part = s3.upload_part(Bucket=bucket, Key="taken", UploadId=upload["UploadId"], PartNumber=1, Body=b"p" * 100)
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    status, code, _ = error_of(s3.complete_multipart_upload, Bucket=bucket, Key="taken",
                               UploadId=upload["UploadId"], MultipartUpload=parts, IfNoneMatch="*")
    assert (status, code) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"already here"
    # The upload is still there to complete with a condition that holds.
    current = s3.head_object(Bucket=bucket, Key="taken")["ETag"]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="taken", UploadId=upload["UploadId"],
                                        MultipartUpload=parts, IfMatch=current)
    assert done["ETag"].endswith('-1"')
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"p" * 100


def test_a_concurrent_write_finishing_first_is_a_conflict(kmsim, s3, bucket):
    """A conditional PUT whose condition held when it began, but not when its body ended, because
    another write of the key completed meanwhile: 409, and the other write stands."""
    endpoint = urllib.parse.urlsplit(kmsim["endpoint"])
    # The first part is larger than the loopback socket buffers can hold: sending it returns only
    # once the server is reading the body, so the write has begun (and its condition held).
    first, rest = 24 * MIB, MIB
    body = b"c" * (first + rest)
    url = f"{kmsim['endpoint']}/{bucket}/raced"
    request = AWSRequest(method="PUT", url=url, data=b"", headers={
        "If-None-Match": "*", "Content-Length": str(len(body)), "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    UnsignedPayload(Credentials("test", "test"), "s3", DEFAULT_REGION).add_auth(request)
    assert request.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    connection = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=30)
    connection.putrequest("PUT", f"/{bucket}/raced", skip_accept_encoding=True)
    for name, value in request.headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    connection.send(body[:first])
    # The server has begun the conditional write (its condition held); another write finishes first.
    winner = s3.put_object(Bucket=bucket, Key="raced", Body=b"the winner")
    connection.send(body[first:])
    response = connection.getresponse()
    text = response.read()
    connection.close()
    assert response.status == 409, text
    assert b"<Code>ConditionalRequestConflict</Code>" in text
    got = s3.get_object(Bucket=bucket, Key="raced")
    assert (got["Body"].read(), got["ETag"]) == (b"the winner", winner["ETag"])


def test_copy_source_conditions(s3, bucket):
    source = s3.put_object(Bucket=bucket, Key="src", Body=b"copy me")
    etag = source["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="src")["LastModified"]
    past, future = modified - dt.timedelta(days=1), modified + dt.timedelta(days=1)
    copy = {"Bucket": bucket, "Key": "dst", "CopySource": {"Bucket": bucket, "Key": "src"}}
    failing: list[tuple[dict[str, Any], str]] = [
        ({"CopySourceIfMatch": '"0000"'}, "x-amz-copy-source-If-Match"),
        ({"CopySourceIfNoneMatch": etag}, "x-amz-copy-source-If-None-Match"),
        ({"CopySourceIfModifiedSince": future}, "x-amz-copy-source-If-Modified-Since"),
        ({"CopySourceIfUnmodifiedSince": past}, "x-amz-copy-source-If-Unmodified-Since"),
    ]
    for condition, header in failing:
        status, code, err = error_of(s3.copy_object, **copy, **condition)
        assert (status, code, err.get("Condition")) == (412, "PreconditionFailed", header), condition
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="dst")
    for condition in [{"CopySourceIfMatch": etag}, {"CopySourceIfNoneMatch": '"0000"'},
                      {"CopySourceIfModifiedSince": past}, {"CopySourceIfUnmodifiedSince": future},
                      # If-Match holding wins over If-Unmodified-Since failing, as in S3.
                      {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": past}]:
        assert s3.copy_object(**copy, **condition)["CopyObjectResult"]["ETag"] == etag, condition
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    status, code, _ = error_of(s3.upload_part_copy, Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
                               PartNumber=1, CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfMatch='"0000"')
    assert (status, code) == (412, "PreconditionFailed")
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload["UploadId"]).get("Parts", []) == []
