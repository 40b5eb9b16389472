"""kmsim's S3 through rclone (Debian's package) as its documentation configures an S3-compatible
service: ``provider = Other``, path-style, SSE-KMS asked for in the remote's configuration. Small
files and a multipart upload (above rclone's cutoff) go up, come back byte for byte, and are listed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

RCLONE = shutil.which("rclone")


def rclone(kmsim: dict, *args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    if RCLONE is None:
        pytest.fail("rclone is needed: run scripts/test, which installs Debian's rclone package")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "AWS_"))}
    env.update({
        "RCLONE_CONFIG": "/dev/null",
        "RCLONE_CONFIG_KMSIM_TYPE": "s3",
        "RCLONE_CONFIG_KMSIM_PROVIDER": "Other",
        "RCLONE_CONFIG_KMSIM_ACCESS_KEY_ID": "test",
        "RCLONE_CONFIG_KMSIM_SECRET_ACCESS_KEY": "test",
        "RCLONE_CONFIG_KMSIM_ENDPOINT": kmsim["endpoint"],
        "RCLONE_CONFIG_KMSIM_REGION": kmsim["region"],
        "RCLONE_CONFIG_KMSIM_FORCE_PATH_STYLE": "true",
        **(env_extra or {}),
    })
    return subprocess.run([RCLONE, *args], capture_output=True, text=True, env=env, timeout=300)


def test_rclone_copies_with_sse_kms(kmsim, s3, tmp_path: Path):
    bucket = "rclone-" + os.urandom(6).hex()
    source = tmp_path / "src"
    (source / "dir").mkdir(parents=True)
    files = {"a.txt": b"small file\n", "dir/b.bin": os.urandom(100_000), "big.bin": os.urandom(12 * 1024 * 1024)}
    for name, data in files.items():
        (source / name).write_bytes(data)
    sse = {"RCLONE_CONFIG_KMSIM_SERVER_SIDE_ENCRYPTION": "aws:kms"}
    result = rclone(kmsim, "mkdir", f"kmsim:{bucket}")
    assert result.returncode == 0, result.stderr
    # A 5 MiB cutoff and chunk: the 12 MiB file goes up as a multipart upload.
    result = rclone(kmsim, "copy", str(source), f"kmsim:{bucket}", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M",
                    env_extra=sse)
    assert result.returncode == 0, result.stderr
    for name, data in files.items():
        head = s3.head_object(Bucket=bucket, Key=name)
        assert head["ServerSideEncryption"] == "aws:kms", name
        assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == data, name
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ETag"].endswith('-3"')
    listed = rclone(kmsim, "lsf", "-R", f"kmsim:{bucket}")
    assert sorted(listed.stdout.split()) == ["a.txt", "big.bin", "dir/", "dir/b.bin"], listed.stderr
    # As on AWS, the ETag of an SSE-KMS object is not the MD5 of its data: rclone compares the bytes.
    result = rclone(kmsim, "check", "--download", str(source), f"kmsim:{bucket}")
    assert result.returncode == 0, result.stderr
    back = tmp_path / "back"
    result = rclone(kmsim, "copy", f"kmsim:{bucket}", str(back))
    assert result.returncode == 0, result.stderr
    for name, data in files.items():
        assert (back / name).read_bytes() == data, name
