"""kmsim's S3 through s3cmd (Debian's package), configured as its documentation configures an
S3-compatible service (``host_base`` / ``host_bucket`` on the endpoint, path style): bucket and
object commands with SSE-KMS, a multipart upload, SigV2 mode (bucket-level requests signed as
``/bucket/``), and ``s3cmd signurl`` (a SigV2 presigned URL) with S3's refusals of tampered and
expired URLs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import http_get

S3CMD = shutil.which("s3cmd")


@pytest.fixture
def s3cmd(kmsim, tmp_path: Path):
    if S3CMD is None:
        pytest.fail("s3cmd is needed: run scripts/test, which installs Debian's s3cmd package")
    host = urllib.parse.urlsplit(kmsim["endpoint"]).netloc
    config = tmp_path / "s3cfg"
    config.write_text(
        "[default]\n"
        f"access_key = {kmsim['access_key_id']}\n"
        f"secret_key = {kmsim['secret_access_key']}\n"
        f"host_base = {host}\n"
        f"host_bucket = {host}\n"
        f"bucket_location = {kmsim['region']}\n"
        "use_https = False\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([S3CMD, "-c", str(config), *args], capture_output=True, text=True, env=env,
                              timeout=300, cwd=tmp_path)

    return run


def test_s3cmd_objects_with_sse_kms(s3cmd, s3, kms, tmp_path: Path):
    bucket = "s3cmd-" + os.urandom(6).hex()
    key = kms.create_key()["KeyMetadata"]
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"through s3cmd\n")
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    done = s3cmd("mb", f"s3://{bucket}")
    assert done.returncode == 0, done.stderr
    done = s3cmd("put", str(small), f"s3://{bucket}/small.txt", f"--server-side-encryption-kms-id={key['KeyId']}")
    assert done.returncode == 0, done.stderr
    head = s3.head_object(Bucket=bucket, Key="small.txt")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key["Arn"])
    # A 5 MiB chunk: the 12 MiB file goes up as a multipart upload of three parts.
    done = s3cmd("put", str(big), f"s3://{bucket}/big.bin", "--multipart-chunk-size-mb=5")
    assert done.returncode == 0, done.stderr
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ETag"].endswith('-3"')
    listed = s3cmd("ls", f"s3://{bucket}")
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split()[-1] for line in listed.stdout.splitlines()) == \
        [f"s3://{bucket}/big.bin", f"s3://{bucket}/small.txt"]
    for name, path in [("small.txt", small), ("big.bin", big)]:
        back = tmp_path / f"back-{name}"
        done = s3cmd("get", f"s3://{bucket}/{name}", str(back))
        assert done.returncode == 0, done.stderr
        assert back.read_bytes() == path.read_bytes(), name
    info = s3cmd("info", f"s3://{bucket}/small.txt")
    assert info.returncode == 0 and "aws:kms" in info.stdout, info.stdout + info.stderr
    # A disabled key makes the object unreadable, as on AWS.
    kms.disable_key(KeyId=key["KeyId"])
    try:
        done = s3cmd("get", "--force", f"s3://{bucket}/small.txt", str(tmp_path / "refused"))
        assert done.returncode != 0 and "KMS.DisabledException" in done.stderr, done.stderr
    finally:
        kms.enable_key(KeyId=key["KeyId"])
    for name in ["small.txt", "big.bin"]:
        assert s3cmd("del", f"s3://{bucket}/{name}").returncode == 0
    done = s3cmd("rb", f"s3://{bucket}")
    assert done.returncode == 0, done.stderr


def test_s3cmd_signature_v2(s3cmd, s3, s3_bucket, tmp_path: Path):
    """With ``--signature-v2`` s3cmd signs bucket-level requests' resource as ``/bucket/``."""
    s3.put_object(Bucket=s3_bucket, Key="v2.txt", Body=b"signed the old way")
    listed = s3cmd("--signature-v2", "ls", f"s3://{s3_bucket}")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[-1] == f"s3://{s3_bucket}/v2.txt"
    back = tmp_path / "back"
    done = s3cmd("--signature-v2", "get", f"s3://{s3_bucket}/v2.txt", str(back))
    assert done.returncode == 0, done.stderr
    assert back.read_bytes() == b"signed the old way"


def test_s3cmd_signurl(s3cmd, s3, s3_bucket):
    s3.put_object(Bucket=s3_bucket, Key="shared.txt", Body=b"shared by URL", ServerSideEncryption="aws:kms")
    done = s3cmd("signurl", f"s3://{s3_bucket}/shared.txt", "+600")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert "AWSAccessKeyId=" in url and "Signature=" in url and "Expires=" in url
    assert http_get(url) == (200, b"shared by URL")
    tampered = url.replace("shared.txt", "shared.txt2")
    status, body = http_get(tampered)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    expired = s3cmd("signurl", f"s3://{s3_bucket}/shared.txt", str(int(time.time()) - 60)).stdout.strip()
    status, body = http_get(expired)
    assert status == 403 and b"<Code>AccessDenied</Code>" in body and b"Request has expired" in body
