"""kmsim's S3 API through the aws CLI (v1, ``python -m awscli``): ``aws s3`` and ``aws s3api``, as
a person would use them with SSE-KMS.

Each CLI call starts a Python interpreter (~0.5 s), so these tests are few and each covers a flow.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from conftest import DEFAULT_ACCOUNT, DEFAULT_REGION

# aws CLI v1: `aws s3 ...` exits with 1 when a transfer failed; `aws s3api ...` with 255 for an
# error returned by the service.
S3_TRANSFER_FAILED = 1
CLI_SERVICE_ERROR = 255
MiB = 1024 * 1024


@pytest.fixture
def cli_bucket(aws_s3_cli) -> str:
    name = f"cli-{uuid.uuid4().hex[:12]}"
    done = aws_s3_cli("s3", "mb", f"s3://{name}")
    assert done.returncode == 0, done.stderr
    assert f"make_bucket: {name}" in done.stdout
    return name


def s3api(aws_s3_cli, *args: str) -> dict:
    done = aws_s3_cli("s3api", *args, "--output", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_cp_with_sse_kms_and_back(aws_s3_cli, kms, cli_bucket, tmp_path):
    key = kms.create_key(Description="for aws s3 cp")["KeyMetadata"]
    data = os.urandom(300_001) + b"\n\x00end"
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    target = f"s3://{cli_bucket}/dir/upload.bin"

    done = aws_s3_cli("s3", "cp", str(source), target, "--sse", "aws:kms", "--sse-kms-key-id", key["KeyId"])
    assert done.returncode == 0, done.stderr
    # (The CLI prints the local path relative to its working directory.)
    assert any(line.startswith("upload: ") and line.endswith(f"/upload.bin to {target}")
               for line in done.stdout.splitlines()), done.stdout

    head = s3api(aws_s3_cli, "head-object", "--bucket", cli_bucket, "--key", "dir/upload.bin")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key["Arn"]
    assert head["ContentLength"] == len(data)

    listing = aws_s3_cli("s3", "ls", f"s3://{cli_bucket}/dir/")
    assert listing.returncode == 0, listing.stderr
    assert f"{len(data)} upload.bin" in " ".join(listing.stdout.split())

    back = tmp_path / "download.bin"
    done = aws_s3_cli("s3", "cp", target, str(back))
    assert done.returncode == 0, done.stderr
    assert back.read_bytes() == data

    # A disabled key stops the download with the KMS's word; re-enabled, it reads again.
    kms.disable_key(KeyId=key["KeyId"])
    refused = tmp_path / "refused.bin"
    done = aws_s3_cli("s3", "cp", target, str(refused))
    assert done.returncode == S3_TRANSFER_FAILED
    assert "KMS.DisabledException" in done.stderr
    assert not refused.exists() or refused.read_bytes() != data
    kms.enable_key(KeyId=key["KeyId"])
    again = tmp_path / "again.bin"
    assert aws_s3_cli("s3", "cp", target, str(again)).returncode == 0
    assert again.read_bytes() == data

    done = aws_s3_cli("s3", "rm", target)
    assert done.returncode == 0, done.stderr
    assert f"delete: {target}" in done.stdout
    assert aws_s3_cli("s3", "ls", f"s3://{cli_bucket}/dir/").stdout.strip() == ""
    done = aws_s3_cli("s3", "rb", f"s3://{cli_bucket}")
    assert done.returncode == 0, done.stderr
    assert f"remove_bucket: {cli_bucket}" in done.stdout


def test_cp_with_the_service_managed_key_and_errors(aws_s3_cli, kms, cli_bucket, tmp_path):
    source = tmp_path / "small.txt"
    source.write_bytes(b"hello from the aws CLI\n")
    done = aws_s3_cli("s3", "cp", str(source), f"s3://{cli_bucket}/small.txt", "--sse", "aws:kms")
    assert done.returncode == 0, done.stderr
    head = s3api(aws_s3_cli, "head-object", "--bucket", cli_bucket, "--key", "small.txt")
    assert head["SSEKMSKeyId"] == kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["Arn"]

    # An unknown key: the upload fails with the KMS's word and leaves nothing.
    done = aws_s3_cli("s3", "cp", str(source), f"s3://{cli_bucket}/nothing.txt", "--sse", "aws:kms",
                      "--sse-kms-key-id", f"alias/none-{uuid.uuid4().hex[:8]}")
    assert done.returncode == S3_TRANSFER_FAILED
    assert "KMS.NotFoundException" in done.stderr
    done = aws_s3_cli("s3api", "head-object", "--bucket", cli_bucket, "--key", "nothing.txt")
    assert done.returncode == CLI_SERVICE_ERROR
    assert "Not Found" in done.stderr

    done = aws_s3_cli("s3api", "get-object", "--bucket", cli_bucket, "--key", "missing.txt",
                      str(tmp_path / "missing.txt"))
    assert done.returncode == CLI_SERVICE_ERROR
    assert "(NoSuchKey)" in done.stderr


def test_s3api_put_object_and_bucket_encryption(aws_s3_cli, kms, cli_bucket, tmp_path):
    key = kms.create_key()["KeyMetadata"]
    body = tmp_path / "body.bin"
    body.write_bytes(os.urandom(70_000))
    out = s3api(aws_s3_cli, "put-object", "--bucket", cli_bucket, "--key", "api.bin", "--body", str(body),
                "--server-side-encryption", "aws:kms", "--ssekms-key-id", key["Arn"])
    assert (out["ServerSideEncryption"], out["SSEKMSKeyId"]) == ("aws:kms", key["Arn"])

    config = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                                 "KMSMasterKeyID": key["KeyId"]}}]}
    s3api(aws_s3_cli, "put-bucket-encryption", "--bucket", cli_bucket, "--server-side-encryption-configuration",
          json.dumps(config))
    got = s3api(aws_s3_cli, "get-bucket-encryption", "--bucket", cli_bucket)
    default = got["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert default == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["KeyId"]}
    # A plain `aws s3 cp` now lands encrypted under the bucket's key.
    done = aws_s3_cli("s3", "cp", str(body), f"s3://{cli_bucket}/default.bin")
    assert done.returncode == 0, done.stderr
    head = s3api(aws_s3_cli, "head-object", "--bucket", cli_bucket, "--key", "default.bin")
    expected_arn = f"arn:aws:kms:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:key/{key['KeyId']}"
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", expected_arn)
    back = tmp_path / "back.bin"
    out = s3api(aws_s3_cli, "get-object", "--bucket", cli_bucket, "--key", "default.bin",
                "--range", "bytes=65530-65545", str(back))
    assert out["ContentRange"] == "bytes 65530-65545/70000"
    assert back.read_bytes() == body.read_bytes()[65530:65546]


def test_multipart_cp_with_sse_kms(aws_s3_cli, kms, cli_bucket, tmp_path):
    """Past the CLI's default multipart threshold and chunk size (8 MiB each): parts uploaded in
    parallel under one SSE-KMS upload, completed, and read back byte-exact."""
    key = kms.create_key(Description="multipart by the aws CLI")["KeyMetadata"]
    config_file = tmp_path / "aws-config"
    config_file.write_text("[default]\n")
    data = os.urandom(8 * MiB + 12_345)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    target = f"s3://{cli_bucket}/big.bin"
    done = aws_s3_cli("s3", "cp", str(source), target, "--sse", "aws:kms", "--sse-kms-key-id", key["Arn"],
                      AWS_CONFIG_FILE=str(config_file))
    assert done.returncode == 0, done.stderr
    head = s3api(aws_s3_cli, "head-object", "--bucket", cli_bucket, "--key", "big.bin")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key["Arn"])
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-2"'), head["ETag"]  # the ETag of a two-part upload
    back = tmp_path / "big-back.bin"
    done = aws_s3_cli("s3", "cp", target, str(back), AWS_CONFIG_FILE=str(config_file))
    assert done.returncode == 0, done.stderr
    assert back.read_bytes() == data
