"""Encryption as S3 applies it without being asked, and the SSE headers it refuses or echoes.

* Every new object without SSE headers or a bucket default is encrypted with SSE-S3 and reported
  as ``AES256`` (S3 since January 2023): PutObject, CopyObject and multipart uploads.
* GetObject / HeadObject of an SSE-S3 or SSE-KMS object refuse SSE request headers (400).
* SSE-C writes echo ``SSECustomerAlgorithm`` and ``SSECustomerKeyMD5`` on CopyObject,
  CreateMultipartUpload, UploadPart and CompleteMultipartUpload.
"""

from __future__ import annotations

import base64
import hashlib
import os
from xml.etree import ElementTree

import pytest

MIB = 1024 * 1024


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    return s3_bucket


def test_every_write_without_sse_headers_is_sse_s3(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="plain", Body=b"not stored in plaintext")
    assert put["ServerSideEncryption"] == "AES256"
    assert put["ETag"] == f'"{hashlib.md5(b"not stored in plaintext").hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="plain")
    assert (got["ServerSideEncryption"], got["Body"].read()) == ("AES256", b"not stored in plaintext")
    copy = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "plain"})
    assert copy["ServerSideEncryption"] == "AES256"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="multi")
    assert upload["ServerSideEncryption"] == "AES256"
    part = s3.upload_part(Bucket=bucket, Key="multi", UploadId=upload["UploadId"], PartNumber=1, Body=b"p" * 10)
    assert part["ServerSideEncryption"] == "AES256"
    done = s3.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=upload["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert done["ServerSideEncryption"] == "AES256"
    assert s3.head_object(Bucket=bucket, Key="multi")["ServerSideEncryption"] == "AES256"


@pytest.mark.parametrize("sse", ["AES256", "aws:kms"])
def test_sse_headers_on_reads_are_refused(s3, raw_s3, bucket, sse):
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret", ServerSideEncryption=sse)
    for method in ["GET", "HEAD"]:
        for header, value in [("x-amz-server-side-encryption", sse),
                              ("x-amz-server-side-encryption-aws-kms-key-id", "alias/aws/s3")]:
            response = raw_s3.send(method, f"/{bucket}/k", headers={header: value})
            assert response.status == 400, (method, header, response.body)
            assert b"secret" not in response.body
            if method == "GET":
                error = ElementTree.fromstring(response.body)
                assert error.findtext("Code") == "InvalidArgument"
                assert error.findtext("Message") == f"The {header} header is not supported for this operation."
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"secret"


def test_sse_c_headers_on_every_write_response(s3, bucket):
    key = os.urandom(32)
    md5 = base64.b64encode(hashlib.md5(key).digest()).decode()
    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}

    def echoes(response: dict) -> bool:
        return (response.get("SSECustomerAlgorithm"), response.get("SSECustomerKeyMD5")) == ("AES256", md5)

    s3.put_object(Bucket=bucket, Key="source", Body=b"customer keyed", **sse_c)
    copy = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "source"},
                          CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=key, **sse_c)
    assert echoes(copy), copy
    upload = s3.create_multipart_upload(Bucket=bucket, Key="multi", **sse_c)
    assert echoes(upload), upload
    first = os.urandom(5 * MIB)
    part1 = s3.upload_part(Bucket=bucket, Key="multi", UploadId=upload["UploadId"], PartNumber=1, Body=first, **sse_c)
    assert echoes(part1), part1
    part2 = s3.upload_part_copy(Bucket=bucket, Key="multi", UploadId=upload["UploadId"], PartNumber=2,
                                CopySource={"Bucket": bucket, "Key": "source"}, CopySourceSSECustomerAlgorithm="AES256",
                                CopySourceSSECustomerKey=key, **sse_c)
    assert echoes(part2), part2
    done = s3.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=upload["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part1["ETag"]},
                  {"PartNumber": 2, "ETag": part2["CopyPartResult"]["ETag"]}]}, **sse_c)
    # boto3 models no SSE-C output for CompleteMultipartUpload: the headers are on the wire.
    wire = done["ResponseMetadata"]["HTTPHeaders"]
    assert wire["x-amz-server-side-encryption-customer-algorithm"] == "AES256"
    assert wire["x-amz-server-side-encryption-customer-key-md5"] == md5
    got = s3.get_object(Bucket=bucket, Key="multi", **sse_c)
    assert got["Body"].read() == first + b"customer keyed"
