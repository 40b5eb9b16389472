"""Multipart objects part by part, through boto3: GetObject and HeadObject with ``partNumber``
(plain and SSE-KMS, ``x-amz-mp-parts-count``, a single-part object as its only part, S3's refusals),
and multipart checksums (per-part checksums verified and listed, the composite checksum).
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


def test_multipart_checksums(s3, bucket):
    """An upload created with a checksum algorithm: each part's checksum is verified and listed,
    and the object gets S3's composite checksum (the checksum of the parts' checksums, `-N`)."""
    import base64
    import zlib

    parts = [os.urandom(5 * MIB), b"last part"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="summed", ChecksumAlgorithm="CRC32")
    assert upload["ChecksumAlgorithm"] == "CRC32"
    sums = []
    for number, data in enumerate(parts, start=1):
        part = s3.upload_part(Bucket=bucket, Key="summed", UploadId=upload["UploadId"], PartNumber=number, Body=data,
                              ChecksumAlgorithm="CRC32")
        expected = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        assert part["ChecksumCRC32"] == expected
        sums.append((part["ETag"], expected))
    listed = s3.list_parts(Bucket=bucket, Key="summed", UploadId=upload["UploadId"])["Parts"]
    assert [p["ChecksumCRC32"] for p in listed] == [s for _, s in sums]
    # A checksum that is not the part's is refused, and the upload stays.
    wrong = [{"PartNumber": i + 1, "ETag": etag, "ChecksumCRC32": "AAAAAA=="} for i, (etag, _) in enumerate(sums)]
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(Bucket=bucket, Key="summed", UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": wrong})
    assert error.value.response["Error"]["Code"] == "InvalidPart"
    done = s3.complete_multipart_upload(Bucket=bucket, Key="summed", UploadId=upload["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": i + 1, "ETag": etag, "ChecksumCRC32": crc} for i, (etag, crc) in enumerate(sums)]})
    raw = b"".join(base64.b64decode(crc) for _, crc in sums)
    composite = base64.b64encode(zlib.crc32(raw).to_bytes(4, "big")).decode() + "-2"
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (composite, "COMPOSITE")
    got = s3.get_object(Bucket=bucket, Key="summed", ChecksumMode="ENABLED")
    assert (got["ChecksumCRC32"], got["ChecksumType"]) == (composite, "COMPOSITE")
    assert got["Body"].read() == b"".join(parts)
    attributes = s3.get_object_attributes(Bucket=bucket, Key="summed", ObjectAttributes=["Checksum"])
    assert attributes["Checksum"]["ChecksumCRC32"] == composite


def test_repeating_a_completion_answers_the_same(s3, bucket):
    """As S3 does: a CompleteMultipartUpload repeated with the same parts (a client retrying after
    a lost answer) gets the same result, also with If-None-Match: *; other parts, or an object
    replaced meanwhile, get NoSuchUpload."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key="once")
    part = s3.upload_part(Bucket=bucket, Key="once", UploadId=upload["UploadId"], PartNumber=1, Body=b"only part")
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    first = s3.complete_multipart_upload(Bucket=bucket, Key="once", UploadId=upload["UploadId"], MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket=bucket, Key="once", UploadId=upload["UploadId"], MultipartUpload=parts,
                                         IfNoneMatch="*")
    assert again["ETag"] == first["ETag"] and again["Key"] == "once"
    other = {"Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]}
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(Bucket=bucket, Key="once", UploadId=upload["UploadId"], MultipartUpload=other)
    assert error.value.response["Error"]["Code"] == "NoSuchUpload"
    s3.put_object(Bucket=bucket, Key="once", Body=b"replaced")
    with pytest.raises(ClientError) as error:
        s3.complete_multipart_upload(Bucket=bucket, Key="once", UploadId=upload["UploadId"], MultipartUpload=parts)
    assert error.value.response["Error"]["Code"] == "NoSuchUpload"
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"replaced"


def crc64nvme(data: bytes) -> int:
    """CRC-64/NVME (reflected 0xad93d23594c93659, init and xor-out all ones), table-driven."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x9A6C9329AC4BC9B5 if crc & 1 else crc >> 1
        table.append(crc)
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def test_full_object_checksums(s3, bucket):
    """`x-amz-checksum-type: FULL_OBJECT`: the object's checksum is of its whole body (the one the
    client computed is checked), as S3 does for CRC32, CRC32C and CRC64NVME (its only type)."""
    import base64
    import zlib

    parts = [os.urandom(5 * MIB), b"the last part"]
    whole = base64.b64encode(zlib.crc32(b"".join(parts)).to_bytes(4, "big")).decode()

    def upload(key: str, **complete_extra):
        created = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32",
                                             ChecksumType="FULL_OBJECT", ServerSideEncryption="aws:kms")
        assert (created["ChecksumAlgorithm"], created["ChecksumType"]) == ("CRC32", "FULL_OBJECT")
        done = [s3.upload_part(Bucket=bucket, Key=key, UploadId=created["UploadId"], PartNumber=n, Body=data,
                               ChecksumAlgorithm="CRC32") for n, data in enumerate(parts, start=1)]
        return s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=created["UploadId"], ChecksumType="FULL_OBJECT", **complete_extra,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": p["ETag"], "ChecksumCRC32": p["ChecksumCRC32"]}
                                       for n, p in enumerate(done, start=1)]})

    done = upload("full", ChecksumCRC32=whole)
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (whole, "FULL_OBJECT")
    got = s3.get_object(Bucket=bucket, Key="full", ChecksumMode="ENABLED")
    assert (got["ChecksumCRC32"], got["ChecksumType"]) == (whole, "FULL_OBJECT")
    assert got["Body"].read() == b"".join(parts)
    # Without the client's value the object still gets its whole-body checksum.
    assert upload("computed")["ChecksumCRC32"] == whole
    with pytest.raises(ClientError) as error:
        upload("wrong", ChecksumCRC32="AAAAAA==")
    assert error.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="wrong")

    # CRC64NVME is full-object only (and so by default); SHA-256 composite only.
    created = s3.create_multipart_upload(Bucket=bucket, Key="nvme", ChecksumAlgorithm="CRC64NVME")
    assert created["ChecksumType"] == "FULL_OBJECT"
    data = b"crc64nvme of the whole object"
    # boto3 computes CRC64NVME only with awscrt; the value computed here is sent and checked.
    expected = base64.b64encode(crc64nvme(data).to_bytes(8, "big")).decode()
    part = s3.upload_part(Bucket=bucket, Key="nvme", UploadId=created["UploadId"], PartNumber=1, Body=data,
                          ChecksumCRC64NVME=expected)
    assert part["ChecksumCRC64NVME"] == expected
    done = s3.complete_multipart_upload(Bucket=bucket, Key="nvme", UploadId=created["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumCRC64NVME": expected}]})
    assert (done["ChecksumCRC64NVME"], done["ChecksumType"]) == (expected, "FULL_OBJECT")
    for algorithm, kind in [("CRC64NVME", "COMPOSITE"), ("SHA256", "FULL_OBJECT")]:
        with pytest.raises(ClientError) as error:
            s3.create_multipart_upload(Bucket=bucket, Key="refused", ChecksumAlgorithm=algorithm, ChecksumType=kind)
        assert error.value.response["Error"]["Code"] == "InvalidRequest", (algorithm, kind)
