"""kmsim's S3 through the data tools' file systems, configured as their documentation configures an
S3-compatible endpoint: s3fs (fsspec, on aiobotocore) with SSE-KMS through
``s3_additional_kwargs``, its multipart writes and its default presigned URL (``fs.url``), and
pyarrow's ``S3FileSystem`` (the AWS C++ SDK) writing and reading a Parquet dataset into a bucket
whose default encryption is SSE-KMS.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs
import pyarrow.parquet as pq
import pytest
import s3fs
from botocore.exceptions import ClientError

from conftest import http_get


def test_s3fs_with_sse_kms(kmsim, kms, s3):
    key = kms.create_key()["KeyMetadata"]
    fs = s3fs.S3FileSystem(
        key=kmsim["access_key_id"], secret=kmsim["secret_access_key"],
        client_kwargs={"endpoint_url": kmsim["endpoint"], "region_name": kmsim["region"]},
        s3_additional_kwargs={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key["KeyId"]},
    )
    bucket = "fsspec-" + os.urandom(6).hex()
    fs.mkdir(bucket)
    fs.pipe(f"{bucket}/small.txt", b"through s3fs\n")
    big = os.urandom(12 * 1024 * 1024)
    # s3fs writes a file larger than its 5 MiB block as a multipart upload.
    with fs.open(f"{bucket}/dir/big.bin", "wb", block_size=5 * 1024 * 1024) as out:
        for i in range(0, len(big), 1024 * 1024):
            out.write(big[i:i + 1024 * 1024])
    for name in ["small.txt", "dir/big.bin"]:
        head = s3.head_object(Bucket=bucket, Key=name)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key["Arn"]), name
    assert s3.head_object(Bucket=bucket, Key="dir/big.bin")["ETag"].endswith('-3"')
    assert fs.cat(f"{bucket}/small.txt") == b"through s3fs\n"
    assert fs.cat(f"{bucket}/dir/big.bin") == big
    with fs.open(f"{bucket}/dir/big.bin", "rb") as f:
        f.seek(7 * 1024 * 1024)
        assert f.read(4096) == big[7 * 1024 * 1024:7 * 1024 * 1024 + 4096]
    assert sorted(fs.ls(bucket, detail=False)) == [f"{bucket}/dir", f"{bucket}/small.txt"]
    assert fs.info(f"{bucket}/dir/big.bin")["size"] == len(big)
    # fs.url: the presigned URL aiobotocore makes by default.
    assert http_get(fs.url(f"{bucket}/small.txt", expires=600)) == (200, b"through s3fs\n")
    fs.rm(bucket, recursive=True)
    assert not fs.exists(bucket)


def test_pyarrow_parquet_on_an_sse_kms_bucket(kmsim, kms, s3, s3_bucket):
    key = kms.create_key()["KeyMetadata"]
    s3.put_bucket_encryption(Bucket=s3_bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["KeyId"]}}]})
    scheme, host = kmsim["endpoint"].split("://")
    fs = pyarrow.fs.S3FileSystem(access_key=kmsim["access_key_id"], secret_key=kmsim["secret_access_key"],
                                 endpoint_override=host, scheme=scheme, region=kmsim["region"])
    table = pa.table({"id": list(range(10_000)), "name": [f"row {i}" for i in range(10_000)]})
    pq.write_table(table, f"{s3_bucket}/tables/rows.parquet", filesystem=fs)
    ds.write_dataset(table, f"{s3_bucket}/dataset", format="parquet", filesystem=fs, max_rows_per_file=4_000,
                     max_rows_per_group=4_000)
    assert ds.dataset(f"{s3_bucket}/dataset", format="parquet", filesystem=fs).to_table().sort_by("id").equals(table)
    head = s3.head_object(Bucket=s3_bucket, Key="tables/rows.parquet")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key["Arn"])
    assert pq.read_table(f"{s3_bucket}/tables/rows.parquet", filesystem=fs).equals(table)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(f"{s3_bucket}/tables"))
    assert [(i.base_name, i.type) for i in infos] == [("rows.parquet", pyarrow.fs.FileType.File)]
    # A disabled key makes the table unreadable, as on AWS. (The C++ SDK reads a ranged GET's error
    # into the range's buffer, so it reports the 400 without S3's code: boto3 shows the code.)
    kms.disable_key(KeyId=key["KeyId"])
    try:
        with pytest.raises(OSError, match="GetObject"):
            pq.read_table(f"{s3_bucket}/tables/rows.parquet", filesystem=fs)
        with pytest.raises(ClientError) as error:
            s3.get_object(Bucket=s3_bucket, Key="tables/rows.parquet", Range="bytes=0-3")
        assert error.value.response["Error"]["Code"] == "KMS.DisabledException"
    finally:
        kms.enable_key(KeyId=key["KeyId"])
    assert pq.read_table(f"{s3_bucket}/tables/rows.parquet", filesystem=fs).equals(table)
