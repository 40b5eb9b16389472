"""kmsim's AWS KMS API through the aws CLI (v1, ``python -m awscli``), as a person would use it.

Each CLI call starts a Python interpreter (~0.5 s), so these tests are few and each covers a flow.
"""

from __future__ import annotations

import base64
import os
import uuid

import pytest

from conftest import DEFAULT_ACCOUNT, DEFAULT_REGION

# aws CLI v1 exits with 255 for an error returned by the service (v2 would use 254).
CLI_SERVICE_ERROR = 255


@pytest.fixture(scope="module")
def cli_key(aws_cli):
    """A key made with `aws kms create-key`."""
    rc, out = aws_cli("create-key", "--description", "made by the aws CLI")
    assert rc == 0, out
    return out["KeyMetadata"]


def test_create_key_and_list_keys(aws_cli, cli_key):
    assert cli_key["Description"] == "made by the aws CLI"
    assert cli_key["KeyState"] == "Enabled"
    assert cli_key["Arn"] == f"arn:aws:kms:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:key/{cli_key['KeyId']}"
    rc, out = aws_cli("list-keys")
    assert rc == 0, out
    assert cli_key["KeyId"] in {k["KeyId"] for k in out["Keys"]}


def test_encrypt_decrypt_round_trip_with_fileb(aws_cli, cli_key, tmp_path):
    plaintext = b"\x00\x01binary \xff\xfe payload\n" + os.urandom(64)
    (tmp_path / "plain.bin").write_bytes(plaintext)
    rc, out = aws_cli("encrypt", "--key-id", cli_key["KeyId"], "--plaintext", f"fileb://{tmp_path / 'plain.bin'}",
                      "--encryption-context", "purpose=cli,stage=test")
    assert rc == 0, out
    assert out["KeyId"] == cli_key["Arn"]
    assert out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = base64.b64decode(out["CiphertextBlob"])
    (tmp_path / "cipher.bin").write_bytes(blob)

    rc, out = aws_cli("decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'cipher.bin'}",
                      "--encryption-context", "stage=test,purpose=cli", "--output", "text", "--query", "Plaintext")
    assert rc == 0, out
    assert base64.b64decode(out.strip()) == plaintext

    # The wrong context fails with the service's error code and the CLI's service-error status.
    rc, err = aws_cli("decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'cipher.bin'}",
                      "--encryption-context", "purpose=other")
    assert rc == CLI_SERVICE_ERROR
    assert "(InvalidCiphertextException)" in err
    assert "Decrypt operation" in err


def test_alias_and_describe_key_by_alias(aws_cli, cli_key):
    name = f"alias/cli-{uuid.uuid4().hex[:10]}"
    rc, out = aws_cli("create-alias", "--alias-name", name, "--target-key-id", cli_key["KeyId"])
    assert (rc, out) == (0, None)
    rc, out = aws_cli("describe-key", "--key-id", name)
    assert rc == 0, out
    assert out["KeyMetadata"]["KeyId"] == cli_key["KeyId"]
    rc, out = aws_cli("list-aliases", "--key-id", cli_key["KeyId"])
    assert rc == 0, out
    assert [a["AliasName"] for a in out["Aliases"]] == [name]
    rc, out = aws_cli("generate-data-key", "--key-id", name, "--key-spec", "AES_256")
    assert rc == 0, out
    assert out["KeyId"] == cli_key["Arn"]
    assert len(base64.b64decode(out["Plaintext"])) == 32


def test_failing_call_exit_status_and_error_code(aws_cli):
    missing = f"alias/does-not-exist-{uuid.uuid4().hex[:8]}"
    rc, err = aws_cli("describe-key", "--key-id", missing)
    assert rc == CLI_SERVICE_ERROR
    assert "An error occurred (NotFoundException) when calling the DescribeKey operation" in err
    rc, err = aws_cli("schedule-key-deletion", "--key-id", str(uuid.uuid4()), "--pending-window-in-days", "7")
    assert rc == CLI_SERVICE_ERROR
    assert "(NotFoundException)" in err


def test_disabled_key_through_the_cli(aws_cli):
    rc, out = aws_cli("create-key")
    assert rc == 0, out
    key_id = out["KeyMetadata"]["KeyId"]
    assert aws_cli("disable-key", "--key-id", key_id) == (0, None)
    rc, err = aws_cli("generate-data-key", "--key-id", key_id, "--number-of-bytes", "16")
    assert rc == CLI_SERVICE_ERROR
    assert "(DisabledException)" in err


def test_wrong_secret_through_the_cli(aws_cli):
    rc, err = aws_cli("list-keys", AWS_SECRET_ACCESS_KEY="wrong-secret")
    assert rc == CLI_SERVICE_ERROR
    assert "(InvalidSignatureException)" in err
    rc, err = aws_cli("list-keys", AWS_ACCESS_KEY_ID="AKIDNOBODY")
    assert rc == CLI_SERVICE_ERROR
    assert "(UnrecognizedClientException)" in err
