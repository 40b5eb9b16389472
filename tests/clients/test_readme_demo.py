"""The README's demo upload over HTTP with ``curl --aws-sigv4``: an SSE-KMS PUT and a GET back."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CURL = shutil.which("curl")


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_sigv4_upload_and_download(kmsim, tmp_path: Path):
    endpoint = kmsim["endpoint"]
    sign = ["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "test:test"]
    bucket = f"{endpoint}/readme-demo"
    made = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}", *sign, "-X", "PUT", bucket],
                          capture_output=True, text=True, check=True)
    assert made.stdout in ("200", "409"), made.stdout
    note = tmp_path / "note.txt"
    note.write_bytes(b"hello from curl\n")
    put = subprocess.run([CURL, "-s", "-D", "-", "-o", "/dev/null", *sign,
                          "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                          "-H", "x-amz-server-side-encryption: aws:kms",
                          "-T", str(note), f"{bucket}/upload.txt"], capture_output=True, text=True, check=True)
    headers = put.stdout.lower()
    statuses = [line for line in headers.splitlines() if line.startswith("http/")]
    assert statuses[-1].split()[1] == "200", put.stdout
    assert "x-amz-server-side-encryption: aws:kms" in headers
    assert "x-amz-server-side-encryption-aws-kms-key-id: arn:aws:kms:us-east-1:000000000000:key/" in headers
    got = subprocess.run([CURL, "-s", "-f", *sign, f"{bucket}/upload.txt"], capture_output=True, check=True)
    assert got.stdout == b"hello from curl\n"
