#!/usr/bin/env python3
"""Interoperability vectors for obs's object envelope (obs/src/envelope.rs).

The AWS Encryption SDK for Python is the independent oracle: it writes messages that the Rust module must
decrypt (python-*.bin), and it decrypts the messages that the Rust module wrote (kmsim-*.bin). Both use a fixed
data key and a fixed encrypted data key, so that no KMS is needed; manifest.json records them.

The python-signed-*.bin vectors use the SDK's default suite 0x0578 (AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
which signs the message with ECDSA P-384) and its default frame length of 4096 bytes: what `kmsim decrypt` must read.

Made with aws-encryption-sdk==4.0.7 (PyPI), Python 3.11:

    python3 -m venv /tmp/esdk-venv && /tmp/esdk-venv/bin/pip install aws-encryption-sdk==4.0.7
    /tmp/esdk-venv/bin/python obs/tests/vectors/generate.py generate   # python-*.bin and manifest.json
    /tmp/esdk-venv/bin/python obs/tests/vectors/generate.py generate-signed   # python-signed-*.bin, added to it
    KMSIM_WRITE_ENVELOPE_VECTORS=1 cargo test -p obs writes_vectors    # kmsim-*.bin, written by Rust
    /tmp/esdk-venv/bin/python obs/tests/vectors/generate.py verify     # the Python SDK decrypts every vector

`cargo test -p obs` decrypts every vector with the Rust module.
"""

import json
import logging
import pathlib
import sys

import aws_encryption_sdk
from aws_encryption_sdk.exceptions import DecryptKeyError
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy
from aws_encryption_sdk.key_providers.base import MasterKey, MasterKeyConfig
from aws_encryption_sdk.structures import DataKey, EncryptedDataKey

HERE = pathlib.Path(__file__).resolve().parent
PROVIDER_ID = "aws-kms"
KEY_ARN = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555"
DATA_KEY = bytes(range(0x20, 0x40))
EDK_CIPHERTEXT = b"\x01\x02kmsim fixed encrypted data key\x00\xff"
# Two pairs, so that the sorting of the serialized context is checked too ("Department" < "aws:s3:arn" as bytes),
# and a non-ASCII value, so that lengths are counted in UTF-8 bytes.
ENCRYPTION_CONTEXT = {"aws:s3:arn": "arn:aws:s3:::bucket/key", "Department": "Opérations"}
FRAME_LENGTH = 65536
PYTHON_LENGTHS = [0, 100, 65536, 200000]
SIGNED_LENGTHS = [0, 4096, 10000]
SIGNED_FRAME_LENGTH = 4096
KMSIM_LENGTHS = [0, 100, 65536, 131077]
PATTERN = "byte[i] = (i * 31 + 7) % 251"


def pattern(length):
    """The plaintext of every vector (the Rust tests build the same)."""
    return bytes((i * 31 + 7) % 251 for i in range(length))


class FixedKeyConfig(MasterKeyConfig):
    """Configuration of FixedMasterKey: only the key id (the KMS key ARN)."""

    provider_id = PROVIDER_ID


class FixedMasterKey(MasterKey):
    """A master key that stands in for AWS KMS: always the same data key and the same encrypted data key."""

    provider_id = PROVIDER_ID
    _config_class = FixedKeyConfig

    def _generate_data_key(self, algorithm, encryption_context):
        return DataKey(key_provider=self.key_provider, data_key=DATA_KEY, encrypted_data_key=EDK_CIPHERTEXT)

    def _encrypt_data_key(self, data_key, algorithm, encryption_context):
        return EncryptedDataKey(key_provider=self.key_provider, encrypted_data_key=EDK_CIPHERTEXT)

    def _decrypt_data_key(self, encrypted_data_key, algorithm, encryption_context):
        if encrypted_data_key.encrypted_data_key != EDK_CIPHERTEXT:
            raise DecryptKeyError("not the fixed encrypted data key")
        return DataKey(
            key_provider=self.key_provider,
            data_key=DATA_KEY,
            encrypted_data_key=encrypted_data_key.encrypted_data_key,
        )


def client():
    return aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)


def master_key():
    return FixedMasterKey(key_id=KEY_ARN)


def write_python_vector(name, length, algorithm, frame_length):
    """Encrypts the pattern of ``length`` bytes with the Python SDK into ``name``."""
    message, _header = client().encrypt(
        source=pattern(length),
        key_provider=master_key(),
        encryption_context=ENCRYPTION_CONTEXT,
        algorithm=algorithm,
        frame_length=frame_length,
    )
    (HERE / name).write_bytes(message)


def generate():
    vectors = []
    for length in PYTHON_LENGTHS:
        name = f"python-{length}.bin"
        write_python_vector(name, length, Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, FRAME_LENGTH)
        vectors.append({"file": name, "producer": "aws-encryption-sdk-python", "plaintext_length": length})
    for length in KMSIM_LENGTHS:
        vectors.append({"file": f"kmsim-{length}.bin", "producer": "kmsim", "plaintext_length": length})
    manifest = {
        "description": "AWS Encryption SDK messages, format 2.0, suite 0x0478, framed; see generate.py",
        "aws_encryption_sdk_python_version": aws_encryption_sdk.__version__,
        "algorithm_suite_id": "0478",
        "frame_length": FRAME_LENGTH,
        "data_key_hex": DATA_KEY.hex(),
        "encrypted_data_key": {
            "provider_id": PROVIDER_ID,
            "provider_info": KEY_ARN,
            "ciphertext_hex": EDK_CIPHERTEXT.hex(),
        },
        "encryption_context": ENCRYPTION_CONTEXT,
        "plaintext_pattern": PATTERN,
        "vectors": vectors,
    }
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(PYTHON_LENGTHS)} Python vectors and manifest.json")


def generate_signed():
    """Adds the signed-suite vectors to the manifest, leaving the others as they are."""
    manifest = json.loads((HERE / "manifest.json").read_text(encoding="utf-8"))
    vectors = [v for v in manifest["vectors"] if v.get("algorithm_suite_id") != "0578"]
    for length in SIGNED_LENGTHS:
        name = f"python-signed-{length}.bin"
        write_python_vector(name, length, Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384, SIGNED_FRAME_LENGTH)
        vectors.append({
            "file": name,
            "producer": "aws-encryption-sdk-python",
            "plaintext_length": length,
            "algorithm_suite_id": "0578",
            "frame_length": SIGNED_FRAME_LENGTH,
        })
    manifest["vectors"] = vectors
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(SIGNED_LENGTHS)} signed Python vectors")


def verify():
    # The SDK logs every refused message with a traceback; the tampering checks below expect refusals.
    logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
    manifest = json.loads((HERE / "manifest.json").read_text(encoding="utf-8"))
    failures = 0
    for vector in manifest["vectors"]:
        message = (HERE / vector["file"]).read_bytes()
        plaintext, header = client().decrypt(source=message, key_provider=master_key())
        signed = vector.get("algorithm_suite_id") == "0578"
        context = dict(header.encryption_context)
        if signed:
            context.pop("aws-crypto-public-key", None)
        ok = (
            plaintext == pattern(vector["plaintext_length"])
            and header.algorithm == (Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384 if signed
                                     else Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY)
            and header.frame_length == vector.get("frame_length", FRAME_LENGTH)
            and context == ENCRYPTION_CONTEXT
            and [(k.key_provider.provider_id, k.key_provider.key_info, k.encrypted_data_key) for k in header.encrypted_data_keys]
            == [(PROVIDER_ID, KEY_ARN.encode(), EDK_CIPHERTEXT)]
        )
        # The SDK must also refuse the vector with one bit flipped in its last frame.
        tampered = bytearray(message)
        tampered[-20] ^= 0x01
        try:
            client().decrypt(source=bytes(tampered), key_provider=master_key())
            refused = False
        except Exception:  # noqa: BLE001 - any error is a refusal
            refused = True
        print(f"{vector['file']:<22} {vector['producer']:<26} decrypts: {ok}  refuses tampering: {refused}")
        failures += (not ok) + (not refused)
    print(f"{len(manifest['vectors']) * 2 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "generate"
    if mode == "generate":
        generate()
    elif mode == "generate-signed":
        generate_signed()
    elif mode == "verify":
        sys.exit(verify())
    else:
        sys.exit(f"usage: {sys.argv[0]} generate|generate-signed|verify")
