"""GetObject and HeadObject with ``partNumber``, through boto3: one part of a multipart object
(plain and SSE-KMS), ``x-amz-mp-parts-count``, a single-part object as its only part, and S3's
refusals (a part beyond the last, a part number with a Range).
"""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import ClientError

MIB = 1024 * 1024


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    return s3_bucket


@pytest.mark.parametrize("sse", [{}, {"ServerSideEncryption": "aws:kms"}])
def test_parts_of_a_multipart_object(s3, bucket, sse):
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB + 3), os.urandom(1000)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", **sse)
    etags = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=i + 1, Body=data)["ETag"]
             for i, data in enumerate(parts)]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": etag} for i, etag in enumerate(etags)]})
    total = sum(len(p) for p in parts)
    offset = 0
    for number, data in enumerate(parts, start=1):
        got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=number)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert (got["PartsCount"], got["ContentLength"]) == (3, len(data))
        assert got["ContentRange"] == f"bytes {offset}-{offset + len(data) - 1}/{total}"
        assert got["Body"].read() == data, number
        head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=number)
        assert (head["PartsCount"], head["ContentLength"]) == (3, len(data))
        offset += len(data)
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=4)
    response = error.value.response
    assert (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]) == (416, "InvalidPartNumber")
    assert response["Error"]["ActualPartCount"] == "3"
    # Without partNumber the object reads whole, and names no part count.
    whole = s3.get_object(Bucket=bucket, Key="mp")
    assert whole["Body"].read() == b"".join(parts) and "PartsCount" not in whole


def test_a_single_part_object_is_its_only_part(s3, bucket):
    s3.put_object(Bucket=bucket, Key="one", Body=b"just one part")
    got = s3.get_object(Bucket=bucket, Key="one", PartNumber=1)
    assert (got["Body"].read(), got["ContentRange"]) == (b"just one part", "bytes 0-12/13")
    assert "PartsCount" not in got
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="one", PartNumber=2)
    assert error.value.response["Error"]["Code"] == "InvalidPartNumber"
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="one", PartNumber=1, Range="bytes=0-1")
    assert error.value.response["Error"]["Code"] == "InvalidRequest"
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="one", PartNumber=10_001)
    assert error.value.response["Error"]["Code"] == "InvalidArgument"
