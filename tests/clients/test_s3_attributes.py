"""GetObjectAttributes through boto3: ETag, Checksum, ObjectParts, StorageClass and ObjectSize of
plain, checksummed and multipart objects, and S3's refusals of a missing or unknown attribute.
"""

from __future__ import annotations

import base64
import os
import zlib

import pytest
from botocore.exceptions import ClientError

ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    return s3_bucket


def test_attributes_of_objects(s3, bucket):
    data = b"attributes" * 100
    put = s3.put_object(Bucket=bucket, Key="plain", Body=data, ChecksumAlgorithm="CRC32")
    got = s3.get_object_attributes(Bucket=bucket, Key="plain", ObjectAttributes=ALL)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert got["ETag"] == put["ETag"].strip('"')
    assert got["Checksum"] == {"ChecksumCRC32": crc}
    assert (got["StorageClass"], got["ObjectSize"]) == ("STANDARD", len(data))
    assert "ObjectParts" not in got and "LastModified" in got
    only_size = s3.get_object_attributes(Bucket=bucket, Key="plain", ObjectAttributes=["ObjectSize"])
    assert only_size["ObjectSize"] == len(data) and "ETag" not in only_size

    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ServerSideEncryption="aws:kms")
    parts = [os.urandom(5 * 1024 * 1024), b"tail"]
    etags = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=i + 1, Body=p)["ETag"]
             for i, p in enumerate(parts)]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
    got = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=ALL)
    assert got["ObjectParts"]["TotalPartsCount"] == 2
    assert got["ObjectSize"] == sum(len(p) for p in parts) and got["ETag"].endswith("-2")


def test_refusals(s3, raw_s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    response = raw_s3.send("GET", f"/{bucket}/k", query="attributes")
    assert response.status == 400 and b"<Code>InvalidRequest</Code>" in response.body
    with pytest.raises(ClientError) as error:
        s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["Colour"])
    assert error.value.response["Error"]["Code"] == "InvalidArgument"
    with pytest.raises(ClientError) as error:
        s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])
    assert error.value.response["Error"]["Code"] == "NoSuchKey"


def test_parts_of_a_checksummed_multipart_object(s3, bucket):
    """S3 lists the parts (number, size, checksum) of a multipart object written with checksums,
    a page at a time (`MaxParts`, `PartNumberMarker`)."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32")
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(5 * 1024 * 1024), b"tail"]
    done = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=i + 1, Body=p,
                           ChecksumAlgorithm="CRC32") for i, p in enumerate(parts)]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": d["ETag"], "ChecksumCRC32": d["ChecksumCRC32"]}
                  for i, d in enumerate(done)]})
    crc = lambda data: base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    listed = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"])["ObjectParts"]
    assert (listed["TotalPartsCount"], listed["IsTruncated"]) == (3, False)
    assert [(p["PartNumber"], p["Size"], p["ChecksumCRC32"]) for p in listed["Parts"]] == \
        [(i + 1, len(p), crc(p)) for i, p in enumerate(parts)]
    first = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=2)
    assert (first["ObjectParts"]["IsTruncated"], first["ObjectParts"]["NextPartNumberMarker"]) == (True, 2)
    rest = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], PartNumberMarker=2)
    assert [p["PartNumber"] for p in rest["ObjectParts"]["Parts"]] == [3]
