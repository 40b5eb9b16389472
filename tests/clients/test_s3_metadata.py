"""User metadata beyond US-ASCII, as S3 handles it: values sent as raw UTF-8 (curl) or as RFC 2047
encoded words (what boto3 users must send, since boto3 refuses non-ASCII metadata) are stored
decoded and answered RFC 2047-encoded.
"""

from __future__ import annotations

import email.header
import subprocess

import pytest


def decoded(value: str) -> str:
    return str(email.header.make_header(email.header.decode_header(value)))


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    return s3_bucket


def test_encoded_words_are_stored_decoded(s3, bucket):
    s3.put_object(Bucket=bucket, Key="q", Body=b"x", Metadata={"name": "=?UTF-8?Q?caf=C3=A9_au_lait?=",
                                                              "plain": "ascii stays"})
    metadata = s3.head_object(Bucket=bucket, Key="q")["Metadata"]
    # Stored decoded, answered in one B-encoded word: another spelling of the same text.
    assert metadata["name"] == "=?UTF-8?B?Y2Fmw6kgYXUgbGFpdA==?="
    assert decoded(metadata["name"]) == "café au lait"
    assert metadata["plain"] == "ascii stays"


def test_raw_utf8_from_curl(kmsim, s3, bucket, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"x")
    result = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3",
         "--user", "test:test", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-H", "x-amz-meta-drink: café ☕",
         "-T", str(body), f"{kmsim['endpoint']}/{bucket}/utf8"], capture_output=True, timeout=60)
    assert result.stdout == b"200", result
    metadata = s3.head_object(Bucket=bucket, Key="utf8")["Metadata"]
    assert metadata["drink"].startswith("=?UTF-8?B?") and decoded(metadata["drink"]) == "café ☕"
    copy = s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "utf8"})
    assert copy["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert decoded(s3.head_object(Bucket=bucket, Key="copied")["Metadata"]["drink"]) == "café ☕"
