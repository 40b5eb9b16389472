"""kmsim's imported key material (Origin=EXTERNAL) and multi-Region keys through boto3 and the aws CLI.

Imported key material is wrapped outside kmsim, with Python ``cryptography`` and with the ``openssl``
command line (``pkeyutl`` for RSA-OAEP, ``enc -id-aes256-wrap-pad`` for the AES key wrap with padding of
RFC 5649), exactly as the AWS developer guide shows it. What KMS then does with the material is checked
against local computations: HMAC tags against Python's ``hmac``, signatures and public keys against the
local private key that was imported, RSA-OAEP and ECDH against ``cryptography``.

Multi-Region keys are exercised with one boto3 client per Region against the same server: ciphertexts,
signatures and MACs cross Regions, key metadata is compared from every Region, and the primary moves.

Expected values come from the AWS KMS API reference (botocore's service model, whose text is the API
reference: https://docs.aws.amazon.com/kms/latest/APIReference/) and the developer guide pages named next
to the tests. Tests that move the simulated clock use a fresh server of their own.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from cryptography.hazmat.primitives.serialization import load_der_public_key

# aws CLI v1 exits with 255 for an error returned by the service.
CLI_SERVICE_ERROR = 255

REGION_A = "us-east-1"  # the shared server's own Region (the `kms` fixture)
REGION_B = "eu-west-1"
REGION_C = "ap-southeast-2"
REGION_D = "eu-central-1"

MRK_ID = re.compile(r"^mrk-[0-9a-f]{32}$")
WRAPPING_ALGORITHMS = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"]
WRAPPING_KEY_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}

# ---- helpers -------------------------------------------------------------------------------------


def expect_error(code: str, call: Callable[..., Any], /, *args: Any, **params: Any) -> dict:
    """Calls ``call(*args, **params)``, asserts that it fails with the KMS error ``code`` (HTTP 400) and returns
    the error (``Code`` and ``Message``)."""
    with pytest.raises(ClientError) as info:
        call(*args, **params)
    response = info.value.response
    assert response["Error"]["Code"] == code, f"expected {code}, got {response['Error']}"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400, response["ResponseMetadata"]
    return response["Error"]


def error_of(call: Callable[..., Any], /, **params: Any) -> dict:
    """The error of a call that must fail, whatever its code."""
    with pytest.raises(ClientError) as info:
        call(**params)
    return info.value.response["Error"]


def oaep_hash(algorithm: str) -> hashes.HashAlgorithm:
    return hashes.SHA256() if algorithm.endswith("SHA_256") else hashes.SHA1()


def wrap(material: bytes, public_key_der: bytes, algorithm: str) -> bytes:
    """Wraps key material as the developer guide's "Step 3: Encrypt the key material" describes:
    RSAES_OAEP_SHA_*: RSA-OAEP (MGF1 with the same hash) of the material under the wrapping key;
    RSA_AES_KEY_WRAP_SHA_*: RSA-OAEP of a fresh 256-bit AES key, followed by the AES key wrap with padding
    (RFC 5649) of the material under that AES key."""
    public_key = load_der_public_key(public_key_der)
    assert isinstance(public_key, rsa.RSAPublicKey)
    h = oaep_hash(algorithm)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)
    if algorithm.startswith("RSAES_OAEP_"):
        return public_key.encrypt(material, oaep)
    assert algorithm.startswith("RSA_AES_KEY_WRAP_")
    aes_key = os.urandom(32)
    return public_key.encrypt(aes_key, oaep) + aes_key_wrap_with_padding(aes_key, material)


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def wrap_with_openssl(material: bytes, public_key_der: bytes, algorithm: str, workdir: Path) -> bytes:
    """The same wrapping with the openssl command line, as in the developer guide."""
    md = "sha256" if algorithm.endswith("SHA_256") else "sha1"
    (workdir / "pub.der").write_bytes(public_key_der)
    openssl("pkey", "-pubin", "-inform", "DER", "-in", "pub.der", "-out", "pub.pem", cwd=workdir)
    oaep = ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", f"rsa_oaep_md:{md}", "-pkeyopt", f"rsa_mgf1_md:{md}"]
    (workdir / "material.bin").write_bytes(material)
    if algorithm.startswith("RSAES_OAEP_"):
        openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem", *oaep, "-in", "material.bin",
                "-out", "wrapped.bin", cwd=workdir)
        return (workdir / "wrapped.bin").read_bytes()
    openssl("rand", "-out", "aes.bin", "32", cwd=workdir)
    aes_hex = (workdir / "aes.bin").read_bytes().hex()
    openssl("enc", "-id-aes256-wrap-pad", "-K", aes_hex, "-iv", "A65959A6", "-in", "material.bin",
            "-out", "material-wrapped.bin", cwd=workdir)
    openssl("pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem", *oaep, "-in", "aes.bin",
            "-out", "aes-wrapped.bin", cwd=workdir)
    return (workdir / "aes-wrapped.bin").read_bytes() + (workdir / "material-wrapped.bin").read_bytes()


def import_material(kms, key_id: str, material: bytes, algorithm: str = "RSAES_OAEP_SHA_256",
                    wrapping_key_spec: str = "RSA_2048", **import_params: Any) -> dict:
    """GetParametersForImport, local wrapping with ``cryptography``, ImportKeyMaterial; returns the
    ImportKeyMaterial answer. Without ExpirationModel/ValidTo the material does not expire."""
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=algorithm,
                                           WrappingKeySpec=wrapping_key_spec)
    if "ValidTo" not in import_params and "ExpirationModel" not in import_params:
        import_params["ExpirationModel"] = "KEY_MATERIAL_DOES_NOT_EXPIRE"
    return kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                                   EncryptedKeyMaterial=wrap(material, params["PublicKey"], algorithm),
                                   **import_params)


def external_key(kms, **params: Any) -> dict:
    return kms.create_key(Origin="EXTERNAL", Description="import tests", **params)["KeyMetadata"]


def pkcs8(private_key: Any) -> bytes:
    return private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


def spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def sim_now(admin) -> dt.datetime:
    return dt.datetime.fromtimestamp(admin.clock()["now"], tz=dt.timezone.utc)


def arn(region: str, account: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def list_key_ids(client) -> set[str]:
    return {k["KeyId"] for page in client.get_paginator("list_keys").paginate() for k in page["Keys"]}


def list_key_arns(client) -> set[str]:
    return {k["KeyArn"] for page in client.get_paginator("list_keys").paginate() for k in page["Keys"]}


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def account(kmsim) -> str:
    return kmsim["account_id"]


@pytest.fixture
def region_client(kmsim, client_for) -> Callable[[str], Any]:
    """``region_client(region)``: a boto3 KMS client of the shared server in that Region."""
    return lambda region: client_for(kmsim, kmsim["access_key_id"], kmsim["secret_access_key"], region=region)


# =================================================================================================
# Imported key material
# =================================================================================================


EXTERNAL_KINDS = [("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"), ("HMAC_256", "GENERATE_VERIFY_MAC"),
                  ("RSA_2048", "SIGN_VERIFY"), ("RSA_3072", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "SIGN_VERIFY"),
                  ("ECC_NIST_P384", "KEY_AGREEMENT"), ("ECC_SECG_P256K1", "SIGN_VERIFY")]


@pytest.mark.parametrize("spec,usage", EXTERNAL_KINDS, ids=[f"{s}-{u}" for s, u in EXTERNAL_KINDS])
def test_external_key_is_created_pending_import(kms, spec, usage):
    created = external_key(kms, KeySpec=spec, KeyUsage=usage)
    described = kms.describe_key(KeyId=created["KeyId"])["KeyMetadata"]
    for meta in (created, described):
        assert meta["Origin"] == "EXTERNAL"
        assert meta["KeyState"] == "PendingImport"
        assert meta["Enabled"] is False
        assert meta["KeySpec"] == spec and meta["KeyUsage"] == usage
        # ValidTo: "present only for KMS keys whose Origin is EXTERNAL and the ExpirationModel is
        # KEY_MATERIAL_EXPIRES" (KeyMetadata): nothing has been imported yet.
        assert "ValidTo" not in meta
        assert "ExpirationModel" not in meta
    # A key without material cannot be used (KMSInvalidStateException, key states table).
    if usage == "ENCRYPT_DECRYPT" and spec == "SYMMETRIC_DEFAULT":
        expect_error("KMSInvalidStateException", kms.encrypt, KeyId=created["KeyId"], Plaintext=b"x")
    elif usage == "GENERATE_VERIFY_MAC":
        expect_error("KMSInvalidStateException", kms.generate_mac, KeyId=created["KeyId"], Message=b"x",
                     MacAlgorithm="HMAC_SHA_256")
    else:
        expect_error("KMSInvalidStateException", kms.get_public_key, KeyId=created["KeyId"])


@pytest.mark.parametrize("wrapping_key_spec", ["RSA_2048", "RSA_3072", "RSA_4096"])
def test_get_parameters_for_import_answer(kms, admin, wrapping_key_spec):
    key = external_key(kms)
    before = sim_now(admin)
    params = kms.get_parameters_for_import(KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec=wrapping_key_spec)
    # "KeyId: The Amazon Resource Name (key ARN) of the KMS key" (GetParametersForImport response).
    assert params["KeyId"] == key["Arn"]
    public_key = load_der_public_key(params["PublicKey"])
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert public_key.key_size == WRAPPING_KEY_BITS[wrapping_key_spec]
    assert params["ImportToken"]
    # "Each public key and import token set is valid for 24 hours."
    valid_for = params["ParametersValidTo"] - before
    assert dt.timedelta(hours=24) - dt.timedelta(seconds=5) <= valid_for <= dt.timedelta(hours=24, seconds=5), valid_for


def test_get_parameters_for_import_refusals(kms):
    aws_kms_key = kms.create_key(Description="import tests: AWS_KMS origin")["KeyMetadata"]
    expect_error("UnsupportedOperationException", kms.get_parameters_for_import, KeyId=aws_kms_key["KeyId"],
                 WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    key = external_key(kms)
    # "RSAES_PKCS1_V1_5 (Deprecated) — As of October 10, 2023, KMS does not support [it]."
    expect_error("ValidationException", kms.get_parameters_for_import, KeyId=key["KeyId"],
                 WrappingAlgorithm="RSAES_PKCS1_V1_5", WrappingKeySpec="RSA_2048")
    expect_error("ValidationException", kms.get_parameters_for_import, KeyId=key["KeyId"],
                 WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_1024")
    expect_error("NotFoundException", kms.get_parameters_for_import, KeyId=str(uuid.uuid4()),
                 WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")


@pytest.mark.parametrize("algorithm", WRAPPING_ALGORITHMS)
def test_symmetric_import_with_each_wrapping_algorithm(kms, algorithm):
    key = external_key(kms)
    material = os.urandom(32)
    import_material(kms, key["KeyId"], material, algorithm)
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["Enabled"] is True
    assert meta["Origin"] == "EXTERNAL"
    assert meta["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in meta
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"imported material")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported material"


def test_import_and_delete_answer_the_key_arn(kms):
    # ImportKeyMaterial response: "KeyId: The Amazon Resource Name (key ARN) of the KMS key into which
    # key material was imported"; DeleteImportedKeyMaterial response: "KeyId: The Amazon Resource Name
    # (key ARN) of the KMS key from which the key material was deleted" (both in botocore 1.43's model).
    key = external_key(kms)
    answer = import_material(kms, key["KeyId"], os.urandom(32))
    assert answer.get("KeyId") == key["Arn"], {k: v for k, v in answer.items() if k != "ResponseMetadata"}
    deleted = kms.delete_imported_key_material(KeyId=key["KeyId"])
    assert deleted.get("KeyId") == key["Arn"], {k: v for k, v in deleted.items() if k != "ResponseMetadata"}


@pytest.mark.parametrize("algorithm,wrapping_key_spec", [("RSAES_OAEP_SHA_256", "RSA_3072"),
                                                          ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096"),
                                                          ("RSAES_OAEP_SHA_1", "RSA_2048")])
def test_material_wrapped_by_the_openssl_command_line(kms, tmp_path, algorithm, wrapping_key_spec):
    key = external_key(kms)
    material = os.urandom(32)
    params = kms.get_parameters_for_import(KeyId=key["KeyId"], WrappingAlgorithm=algorithm,
                                           WrappingKeySpec=wrapping_key_spec)
    wrapped = wrap_with_openssl(material, params["PublicKey"], algorithm, tmp_path)
    kms.import_key_material(KeyId=key["KeyId"], ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped,
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"openssl-wrapped")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, KeyId=key["KeyId"])["Plaintext"] == b"openssl-wrapped"
    # The same material wrapped by cryptography is the same key material: after a deletion its
    # re-import is accepted and restores the ciphertext.
    kms.delete_imported_key_material(KeyId=key["KeyId"])
    import_material(kms, key["KeyId"], material, "RSA_AES_KEY_WRAP_SHA_1")
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"openssl-wrapped"


def test_delete_and_reimport_restores_old_ciphertexts(kms):
    key = external_key(kms)
    material = os.urandom(32)
    import_material(kms, key["KeyId"], material, "RSAES_OAEP_SHA_256")
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"made after the first import")["CiphertextBlob"]
    kms.delete_imported_key_material(KeyId=key["KeyId"])
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "PendingImport" and meta["Enabled"] is False
    expect_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob)
    expect_error("KMSInvalidStateException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    # Different material is refused ("you can reimport the same key material ... but you cannot import
    # different key material", ImportKeyMaterial).
    expect_error("IncorrectKeyMaterialException", import_material, kms, key["KeyId"], os.urandom(32))
    # The same material with a new GetParametersForImport (another wrapping algorithm and key spec).
    import_material(kms, key["KeyId"], material, "RSA_AES_KEY_WRAP_SHA_256", "RSA_3072")
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"made after the first import"


def test_reimport_into_an_enabled_key(kms, admin):
    # "Its KeyState must be PendingImport or Enabled ... You might also reimport key material to change
    # the expiration model or expiration date of the key material." (ImportKeyMaterial)
    key = external_key(kms)
    material = os.urandom(32)
    import_material(kms, key["KeyId"], material)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"before")["CiphertextBlob"]
    expect_error("IncorrectKeyMaterialException", import_material, kms, key["KeyId"], os.urandom(32))
    valid_to = (sim_now(admin) + dt.timedelta(days=30)).replace(microsecond=0)
    import_material(kms, key["KeyId"], material, ValidTo=valid_to, ExpirationModel="KEY_MATERIAL_EXPIRES")
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "Enabled"
    assert meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert meta["ValidTo"] == valid_to
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"


def test_import_token_and_wrapping_refusals(kms):
    key = external_key(kms)
    other = external_key(kms)
    material = os.urandom(32)
    params = kms.get_parameters_for_import(KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    other_params = kms.get_parameters_for_import(KeyId=other["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                                 WrappingKeySpec="RSA_2048")
    common = dict(KeyId=key["KeyId"], ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    # "InvalidImportTokenException: ... the provided import token is invalid or is associated with a
    # different KMS key."
    expect_error("InvalidImportTokenException", kms.import_key_material, **common,
                 ImportToken=other_params["ImportToken"],
                 EncryptedKeyMaterial=wrap(material, other_params["PublicKey"], "RSAES_OAEP_SHA_256"))
    expect_error("InvalidImportTokenException", kms.import_key_material, **common, ImportToken=os.urandom(64),
                 EncryptedKeyMaterial=wrap(material, params["PublicKey"], "RSAES_OAEP_SHA_256"))
    # "InvalidCiphertextException: From the ImportKeyMaterial operation, the request was rejected because
    # KMS could not decrypt the encrypted (wrapped) key material."
    expect_error("InvalidCiphertextException", kms.import_key_material, **common, ImportToken=params["ImportToken"],
                 EncryptedKeyMaterial=os.urandom(256))
    # Wrapped with another algorithm than the one the token was asked for.
    expect_error("InvalidCiphertextException", kms.import_key_material, **common, ImportToken=params["ImportToken"],
                 EncryptedKeyMaterial=wrap(material, params["PublicKey"], "RSAES_OAEP_SHA_1"))
    # Wrapped under the public key of another GetParametersForImport of the same key: "The public key and
    # its import token are permanently linked and must be used together."
    second = kms.get_parameters_for_import(KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    if second["PublicKey"] != params["PublicKey"]:  # (AWS does not say that every call makes a new key pair)
        expect_error("InvalidCiphertextException", kms.import_key_material, **common,
                     ImportToken=params["ImportToken"],
                     EncryptedKeyMaterial=wrap(material, second["PublicKey"], "RSAES_OAEP_SHA_256"))
    # "ImportToken ... EncryptedKeyMaterial ... Length Constraints: Minimum length of 1. Maximum length of 6144."
    for field in ("ImportToken", "EncryptedKeyMaterial"):
        oversized = dict(ImportToken=params["ImportToken"],
                         EncryptedKeyMaterial=wrap(material, params["PublicKey"], "RSAES_OAEP_SHA_256"))
        oversized[field] = os.urandom(6145)
        error = expect_error("ValidationException", kms.import_key_material, **common, **oversized)
        name = field[0].lower() + field[1:]
        assert f"Value at '{name}' failed to satisfy constraint: Member must have length less than or equal to 6144" \
            in error["Message"]
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    # Both sets still work with their own wrapping.
    kms.import_key_material(**common, ImportToken=second["ImportToken"],
                            EncryptedKeyMaterial=wrap(material, second["PublicKey"], "RSAES_OAEP_SHA_256"))
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_expiration_parameters_are_validated(kms, admin):
    key = external_key(kms)
    material = os.urandom(32)
    now = sim_now(admin)

    def attempt(**params: Any) -> None:
        import_material(kms, key["KeyId"], material, **params)

    # "When the value of ExpirationModel is KEY_MATERIAL_EXPIRES, you must specify a value for the ValidTo
    # parameter. When value is KEY_MATERIAL_DOES_NOT_EXPIRE, you must omit the ValidTo parameter."
    expect_error("ValidationException", attempt, ExpirationModel="KEY_MATERIAL_EXPIRES")
    expect_error("ValidationException", attempt, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
                 ValidTo=now + dt.timedelta(days=10))
    # "The value of this parameter must be a future date and time. The maximum value is 365 days from the
    # request date."
    expect_error("ValidationException", attempt, ValidTo=now + dt.timedelta(days=366))
    expect_error("ValidationException", attempt, ValidTo=now - dt.timedelta(hours=1))
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    # ExpirationModel defaults to KEY_MATERIAL_EXPIRES: ValidTo alone is enough, 364 days is accepted.
    valid_to = (now + dt.timedelta(days=364)).replace(microsecond=0)
    attempt(ValidTo=valid_to)
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "Enabled"
    assert meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert meta["ValidTo"] == valid_to


def test_import_token_expires_after_24_hours(fresh_kmsim):
    kms = fresh_kmsim.client()
    key = external_key(kms)
    params = kms.get_parameters_for_import(KeyId=key["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    material = os.urandom(32)
    fresh_kmsim.admin.advance_clock(seconds=25 * 3600)
    expect_error("ExpiredImportTokenException", kms.import_key_material, KeyId=key["KeyId"],
                 ImportToken=params["ImportToken"],
                 EncryptedKeyMaterial=wrap(material, params["PublicKey"], "RSAES_OAEP_SHA_256"),
                 ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    import_material(kms, key["KeyId"], material)
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_material_expires_and_the_same_material_restores_the_key(fresh_kmsim):
    kms = fresh_kmsim.client()
    admin = fresh_kmsim.admin
    key = external_key(kms)
    material = os.urandom(32)
    valid_to = (sim_now(admin) + dt.timedelta(days=2)).replace(microsecond=0)
    import_material(kms, key["KeyId"], material, "RSA_AES_KEY_WRAP_SHA_256",
                    ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to)
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (meta["KeyState"], meta["ExpirationModel"], meta["ValidTo"]) == ("Enabled", "KEY_MATERIAL_EXPIRES", valid_to)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"before expiry")["CiphertextBlob"]
    admin.advance_clock(days=1)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before expiry"
    admin.advance_clock(days=1, seconds=60)
    # "When the key material expires, KMS deletes the key material from the KMS key" -> PendingImport.
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "PendingImport" and meta["Enabled"] is False
    expect_error("KMSInvalidStateException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    expect_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob)
    expect_error("IncorrectKeyMaterialException", import_material, kms, key["KeyId"], os.urandom(32))
    import_material(kms, key["KeyId"], material, "RSAES_OAEP_SHA_1")
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (meta["KeyState"], meta["ExpirationModel"]) == ("Enabled", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert "ValidTo" not in meta
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before expiry"
    admin.advance_clock(days=400)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before expiry"


def test_delete_imported_key_material_of_an_aws_kms_key_is_refused(kms):
    aws_kms_key = kms.create_key(Description="import tests: AWS_KMS origin")["KeyMetadata"]
    expect_error("UnsupportedOperationException", kms.delete_imported_key_material, KeyId=aws_kms_key["KeyId"])


def test_delete_imported_key_material_while_pending_deletion(kms):
    # "When the specified KMS key is in the PendingDeletion state, this operation does not change the KMS
    # key's state. Otherwise, it changes the KMS key's state to PendingImport." (DeleteImportedKeyMaterial)
    key = external_key(kms)
    import_material(kms, key["KeyId"], os.urandom(32))
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    kms.delete_imported_key_material(KeyId=key["KeyId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_get_parameters_for_import_of_a_key_pending_deletion(kms):
    key = external_key(kms)
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    expect_error("KMSInvalidStateException", kms.get_parameters_for_import, KeyId=key["KeyId"],
                 WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")


def test_automatic_rotation_of_imported_material_is_refused(kms):
    # "You cannot enable automatic rotation of asymmetric KMS keys, HMAC KMS keys, KMS keys with imported
    # key material, or KMS keys in a custom key store." (EnableKeyRotation)
    key = external_key(kms)
    import_material(kms, key["KeyId"], os.urandom(32))
    expect_error("UnsupportedOperationException", kms.enable_key_rotation, KeyId=key["KeyId"])


# ---- on-demand rotation of imported material (ImportType NEW_KEY_MATERIAL) ----------------------------


def material_id_of(key_id: str, material: bytes) -> str:
    """What kmsim computes as the KeyMaterialId of imported material: HMAC-SHA-256 keyed with the material
    over a fixed label and the key id (docs/formats.md); AWS derives it "based on the KMS key ID and the
    imported key material"."""
    return hmac.new(material, b"kmsim/imported-material/v1\0" + key_id.encode(), hashlib.sha256).hexdigest()


def test_first_import_answers_its_key_material_id(kms):
    key = external_key(kms)
    material = os.urandom(32)
    answer = import_material(kms, key["KeyId"], material)
    assert answer["KeyMaterialId"] == material_id_of(key["KeyId"], material)
    described = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert described["CurrentKeyMaterialId"] == answer["KeyMaterialId"]
    listed = kms.list_key_rotations(KeyId=key["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"], r["ImportState"], r["ExpirationModel"]) for r in listed] == [
        (answer["KeyMaterialId"], "CURRENT", "IMPORTED", "KEY_MATERIAL_DOES_NOT_EXPIRE")]
    assert "RotationDate" not in listed[0]
    assert kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"] == []


def test_on_demand_rotation_to_new_imported_material(kms):
    key_id = external_key(kms)["KeyId"]
    first, second = os.urandom(32), os.urandom(32)
    import_material(kms, key_id, first, KeyMaterialDescription="first material")
    old_blob = kms.encrypt(KeyId=key_id, Plaintext=b"under the first material")["CiphertextBlob"]
    # Without new material there is nothing to rotate to.
    expect_error("UnsupportedOperationException", kms.rotate_key_on_demand, KeyId=key_id)

    answer = import_material(kms, key_id, second, ImportType="NEW_KEY_MATERIAL",
                             KeyMaterialDescription="second material")
    second_id = material_id_of(key_id, second)
    assert answer["KeyMaterialId"] == second_id
    # The new material waits: the key still encrypts with the first.
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == material_id_of(key_id, first)
    listed = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [(r["KeyMaterialState"], r.get("KeyMaterialDescription")) for r in listed] == [
        ("CURRENT", "first material"), ("PENDING_ROTATION", "second material")]
    # A second new material while one is pending is refused; the same material again is not new.
    expect_error("KMSInvalidStateException", import_material, kms, key_id, os.urandom(32),
                 ImportType="NEW_KEY_MATERIAL")
    expect_error("IncorrectKeyMaterialException", import_material, kms, key_id, first, ImportType="NEW_KEY_MATERIAL")

    kms.rotate_key_on_demand(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == second_id
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"], r["RotationType"]) for r in rotations] == [
        (second_id, "CURRENT", "ON_DEMAND")]
    new_blob = kms.encrypt(KeyId=key_id, Plaintext=b"under the second material")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"under the first material"
    assert kms.decrypt(CiphertextBlob=new_blob)["Plaintext"] == b"under the second material"

    # Deleting either material makes the key unusable until that material comes back.
    deleted = kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId=material_id_of(key_id, first))
    assert deleted["KeyMaterialId"] == material_id_of(key_id, first)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    expect_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=new_blob)
    states = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [r["ImportState"] for r in states] == ["PENDING_IMPORT", "IMPORTED"]
    # Re-import it by id (the wrong id for this material is refused).
    expect_error("IncorrectKeyMaterialException", import_material, kms, key_id, first,
                 KeyMaterialId=second_id)
    import_material(kms, key_id, first, ImportType="EXISTING_KEY_MATERIAL",
                    KeyMaterialId=material_id_of(key_id, first))
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"under the first material"


def test_material_pending_rotation_can_be_deleted_and_replaced(kms):
    key_id = external_key(kms)["KeyId"]
    import_material(kms, key_id, os.urandom(32))
    unwanted, wanted = os.urandom(32), os.urandom(32)
    import_material(kms, key_id, unwanted, ImportType="NEW_KEY_MATERIAL")
    deleted = kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId=material_id_of(key_id, unwanted))
    assert deleted["KeyMaterialId"] == material_id_of(key_id, unwanted)
    # Forgotten altogether: the key stays usable and other material takes its place.
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    import_material(kms, key_id, wanted, ImportType="NEW_KEY_MATERIAL")
    kms.rotate_key_on_demand(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == material_id_of(key_id, wanted)


def test_import_type_refusals(kms):
    key_id = external_key(kms)["KeyId"]
    material = os.urandom(32)
    expect_error("ValidationException", import_material, kms, key_id, material, ImportType="NEW_KEY_MATERIAL",
                 KeyMaterialId="a" * 64)
    expect_error("ValidationException", import_material, kms, key_id, material, ImportType="OTHER_MATERIAL")
    expect_error("ValidationException", import_material, kms, key_id, material, KeyMaterialId="A" * 64)
    expect_error("ValidationException", import_material, kms, key_id, material, KeyMaterialDescription="bad*chars")
    # EXISTING material for a key that has none yet.
    expect_error("IncorrectKeyMaterialException", import_material, kms, key_id, material,
                 ImportType="EXISTING_KEY_MATERIAL")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    # ImportType and friends belong to symmetric keys.
    hmac_key = external_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyId"]
    expect_error("ValidationException", import_material, kms, hmac_key, os.urandom(32),
                 ImportType="NEW_KEY_MATERIAL")
    expect_error("UnsupportedOperationException", kms.list_key_rotations, KeyId=hmac_key,
                 IncludeKeyMaterial="ALL_KEY_MATERIAL")
    # Deleting material the key does not have.
    import_material(kms, key_id, material)
    expect_error("NotFoundException", kms.delete_imported_key_material, KeyId=key_id, KeyMaterialId="b" * 64)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_new_material_expires_on_its_own_clock(fresh_kmsim):
    kms, admin = fresh_kmsim.client(), fresh_kmsim.admin
    key_id = external_key(kms)["KeyId"]
    import_material(kms, key_id, os.urandom(32))
    valid_to = sim_now(admin) + dt.timedelta(hours=2)
    import_material(kms, key_id, os.urandom(32), ImportType="NEW_KEY_MATERIAL", ValidTo=valid_to)
    listed = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert listed[1]["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    admin.advance_clock(seconds=3 * 3600)
    # The pending material is gone; the key, whose own material does not expire, is untouched.
    listed = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [r["KeyMaterialState"] for r in listed] == ["CURRENT"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    expect_error("UnsupportedOperationException", kms.rotate_key_on_demand, KeyId=key_id)


def test_new_material_for_a_multi_region_key(kms, region_client):
    # ImportKeyMaterial: "Call ImportKeyMaterial on the primary Region key with the ImportType set to
    # NEW_KEY_MATERIAL. Call ImportKeyMaterial on the replica Region key with the ImportType set to
    # EXISTING_KEY_MATERIAL using the same key material ... for every replica Region key before you can perform
    # the RotateKeyOnDemand operation on the primary Region key."
    key_id = external_key(kms, MultiRegion=True)["KeyId"]
    first, second = os.urandom(32), os.urandom(32)
    import_material(kms, key_id, first)
    replicas = [region_client(REGION_B), region_client(REGION_C)]
    for region, replica in zip((REGION_B, REGION_C), replicas):
        kms.replicate_key(KeyId=key_id, ReplicaRegion=region)
        import_material(replica, key_id, first)
    old_blob = replicas[0].encrypt(KeyId=key_id, Plaintext=b"before the rotation")["CiphertextBlob"]
    second_id = material_id_of(key_id, second)

    # New material goes into the primary only.
    expect_error("UnsupportedOperationException", import_material, replicas[0], key_id, second,
                 ImportType="NEW_KEY_MATERIAL")
    assert import_material(kms, key_id, second, ImportType="NEW_KEY_MATERIAL")["KeyMaterialId"] == second_id

    def states(client) -> dict[str, str]:
        listed = client.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
        return {r["KeyMaterialId"]: r["KeyMaterialState"] for r in listed}

    assert states(kms)[second_id] == "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"
    expect_error("KMSInvalidStateException", kms.rotate_key_on_demand, KeyId=key_id)
    # Material the primary does not have pending is not the replicas' to take.
    expect_error("IncorrectKeyMaterialException", import_material, replicas[0], key_id, os.urandom(32),
                 ImportType="EXISTING_KEY_MATERIAL")
    for index, replica in enumerate(replicas):
        import_material(replica, key_id, second, ImportType="EXISTING_KEY_MATERIAL", KeyMaterialId=second_id)
        assert states(replica)[second_id] == "PENDING_ROTATION"
        last = index == len(replicas) - 1
        assert states(kms)[second_id] == ("PENDING_ROTATION" if last else "PENDING_MULTI_REGION_IMPORT_AND_ROTATION")
    expect_error("UnsupportedOperationException", replicas[0].rotate_key_on_demand, KeyId=key_id)

    kms.rotate_key_on_demand(KeyId=key_id)
    for client in [kms, *replicas]:
        assert states(client) == {material_id_of(key_id, first): "NON_CURRENT", second_id: "CURRENT"}
        assert client.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == second_id
    # The rotated material encrypts in one Region and decrypts in another, old ciphertexts too.
    new_blob = replicas[1].encrypt(KeyId=key_id, Plaintext=b"after the rotation")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=new_blob)["Plaintext"] == b"after the rotation"
    assert replicas[0].decrypt(CiphertextBlob=new_blob)["Plaintext"] == b"after the rotation"
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"before the rotation"


def test_deleting_the_primarys_pending_material_deletes_the_replicas(kms, region_client):
    # DeleteImportedKeyMaterial: "When you delete the key material of a primary Region key that is in
    # PENDING_ROTATION or PENDING_MULTI_REGION_IMPORT_AND_ROTATION state, you'll also be deleting the key
    # materials for the replica Region keys."
    key_id = external_key(kms, MultiRegion=True)["KeyId"]
    first, second = os.urandom(32), os.urandom(32)
    import_material(kms, key_id, first)
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    replica = region_client(REGION_B)
    import_material(replica, key_id, first)
    import_material(kms, key_id, second, ImportType="NEW_KEY_MATERIAL")
    import_material(replica, key_id, second, ImportType="EXISTING_KEY_MATERIAL")
    kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId=material_id_of(key_id, second))
    for client in (kms, replica):
        listed = client.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
        assert [r["KeyMaterialState"] for r in listed] == ["CURRENT"]
        assert client.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


# ---- material of the wrong kind --------------------------------------------------------------------


def _ec_key(curve: ec.EllipticCurve) -> bytes:
    return pkcs8(ec.generate_private_key(curve))


WRONG_MATERIAL = [
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "16 bytes", lambda: os.urandom(16)),
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "33 bytes", lambda: os.urandom(33)),
    ("HMAC_256", "GENERATE_VERIFY_MAC", "31 bytes", lambda: os.urandom(31)),
    ("HMAC_256", "GENERATE_VERIFY_MAC", "65 bytes", lambda: os.urandom(65)),
    ("ECC_NIST_P256", "SIGN_VERIFY", "a P-384 key", lambda: _ec_key(ec.SECP384R1())),
    ("ECC_NIST_P256", "SIGN_VERIFY", "32 random bytes", lambda: os.urandom(32)),
    ("RSA_2048", "SIGN_VERIFY", "a P-256 key", lambda: _ec_key(ec.SECP256R1())),
    ("RSA_2048", "SIGN_VERIFY", "an RSA-3072 key", lambda: pkcs8(rsa.generate_private_key(65537, 3072))),
]


@pytest.mark.parametrize("spec,usage,what,make", WRONG_MATERIAL, ids=[f"{s}-{w}" for s, _, w, _ in WRONG_MATERIAL])
def test_material_of_the_wrong_kind_is_refused(kms, spec, usage, what, make):
    key = external_key(kms, KeySpec=spec, KeyUsage=usage)
    expect_error("IncorrectKeyMaterialException", import_material, kms, key["KeyId"], make(),
                 "RSA_AES_KEY_WRAP_SHA_256")
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"


# ---- asymmetric and HMAC material checked outside KMS --------------------------------------------


HMAC_IMPORTS = [("HMAC_224", "HMAC_SHA_224", hashlib.sha224, 28), ("HMAC_256", "HMAC_SHA_256", hashlib.sha256, 32),
                ("HMAC_256", "HMAC_SHA_256", hashlib.sha256, 64), ("HMAC_384", "HMAC_SHA_384", hashlib.sha384, 48),
                ("HMAC_512", "HMAC_SHA_512", hashlib.sha512, 64)]


@pytest.mark.parametrize("spec,algorithm,digest,length", HMAC_IMPORTS, ids=[f"{s}-{n}B" for s, _, _, n in HMAC_IMPORTS])
def test_imported_hmac_key_matches_python_hmac(kms, spec, algorithm, digest, length):
    key = external_key(kms, KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")
    secret = os.urandom(length)
    import_material(kms, key["KeyId"], secret, "RSAES_OAEP_SHA_256")
    for message in (b"a", b"the imported HMAC key" * 50):
        mac = kms.generate_mac(KeyId=key["KeyId"], Message=message, MacAlgorithm=algorithm)["Mac"]
        assert mac == hmac.new(secret, message, digest).digest()
        local = hmac.new(secret, message + b"!", digest).digest()
        assert kms.verify_mac(KeyId=key["KeyId"], Message=message + b"!", MacAlgorithm=algorithm,
                              Mac=local)["MacValid"] is True


def test_imported_rsa_signing_key(kms):
    private_key = rsa.generate_private_key(65537, 2048)
    key = external_key(kms, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    # "To import an RSA private key, you must use an RSA_AES wrapping algorithm."
    import_material(kms, key["KeyId"], pkcs8(private_key), "RSA_AES_KEY_WRAP_SHA_256", "RSA_4096")
    assert kms.get_public_key(KeyId=key["KeyId"])["PublicKey"] == spki(private_key.public_key())
    message = b"signed by imported material"
    for algorithm, pad, h in [("RSASSA_PSS_SHA_256", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()),
                              ("RSASSA_PKCS1_V1_5_SHA_384", padding.PKCS1v15(), hashes.SHA384())]:
        signature = kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm=algorithm)["Signature"]
        private_key.public_key().verify(signature, message, pad, h)
    local_signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    assert kms.verify(KeyId=key["KeyId"], Message=message, Signature=local_signature,
                      SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")["SignatureValid"] is True


ECC_IMPORTS = [("ECC_NIST_P256", ec.SECP256R1, "ECDSA_SHA_256", hashes.SHA256, "RSAES_OAEP_SHA_256", "RSA_2048"),
               ("ECC_SECG_P256K1", ec.SECP256K1, "ECDSA_SHA_256", hashes.SHA256, "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"),
               ("ECC_NIST_P521", ec.SECP521R1, "ECDSA_SHA_512", hashes.SHA512, "RSAES_OAEP_SHA_256", "RSA_3072")]


@pytest.mark.parametrize("spec,curve,algorithm,h,wrapping,wrapping_key_spec", ECC_IMPORTS, ids=[e[0] for e in ECC_IMPORTS])
def test_imported_ecc_signing_key(kms, spec, curve, algorithm, h, wrapping, wrapping_key_spec):
    private_key = ec.generate_private_key(curve())
    key = external_key(kms, KeySpec=spec, KeyUsage="SIGN_VERIFY")
    import_material(kms, key["KeyId"], pkcs8(private_key), wrapping, wrapping_key_spec)
    assert kms.get_public_key(KeyId=key["KeyId"])["PublicKey"] == spki(private_key.public_key())
    message = b"ecdsa over imported material"
    signature = kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm=algorithm)["Signature"]
    private_key.public_key().verify(signature, message, ec.ECDSA(h()))


def test_imported_rsa_encryption_key(kms):
    private_key = rsa.generate_private_key(65537, 2048)
    key = external_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    import_material(kms, key["KeyId"], pkcs8(private_key), "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048")
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    local = private_key.public_key().encrypt(b"to KMS", oaep)
    assert kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=local,
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"to KMS"
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"from KMS", EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    assert private_key.decrypt(blob, oaep) == b"from KMS"


def test_imported_key_agreement_key(kms):
    private_key = ec.generate_private_key(ec.SECP384R1())
    key = external_key(kms, KeySpec="ECC_NIST_P384", KeyUsage="KEY_AGREEMENT")
    import_material(kms, key["KeyId"], pkcs8(private_key), "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")
    peer = ec.generate_private_key(ec.SECP384R1())
    secret = kms.derive_shared_secret(KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH",
                                      PublicKey=spki(peer.public_key()))["SharedSecret"]
    assert secret == peer.exchange(ec.ECDH(), private_key.public_key())


def test_asymmetric_material_is_fixed_after_import(kms):
    # "For asymmetric and HMAC keys, you cannot change the key material after the initial import."
    private_key = ec.generate_private_key(ec.SECP256R1())
    key = external_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    import_material(kms, key["KeyId"], pkcs8(private_key))
    kms.delete_imported_key_material(KeyId=key["KeyId"])
    expect_error("IncorrectKeyMaterialException", import_material, kms, key["KeyId"],
                 pkcs8(ec.generate_private_key(ec.SECP256R1())))
    import_material(kms, key["KeyId"], pkcs8(private_key), "RSA_AES_KEY_WRAP_SHA_1")
    assert kms.get_public_key(KeyId=key["KeyId"])["PublicKey"] == spki(private_key.public_key())


# ---- the aws CLI -----------------------------------------------------------------------------------


def test_aws_cli_import_with_fileb(aws_cli, kms, admin, tmp_path):
    key = external_key(kms)
    material = os.urandom(32)
    rc, params = aws_cli("get-parameters-for-import", "--key-id", key["KeyId"], "--wrapping-algorithm",
                         "RSAES_OAEP_SHA_256", "--wrapping-key-spec", "RSA_2048")
    assert rc == 0, params
    assert params["KeyId"] == key["Arn"]
    (tmp_path / "token.bin").write_bytes(base64.b64decode(params["ImportToken"]))
    wrapped = wrap_with_openssl(material, base64.b64decode(params["PublicKey"]), "RSAES_OAEP_SHA_256", tmp_path)
    (tmp_path / "encrypted.bin").write_bytes(wrapped)
    valid_to = (sim_now(admin) + dt.timedelta(days=30)).replace(microsecond=0)
    rc, out = aws_cli("import-key-material", "--key-id", key["KeyId"],
                      "--encrypted-key-material", f"fileb://{tmp_path / 'encrypted.bin'}",
                      "--import-token", f"fileb://{tmp_path / 'token.bin'}",
                      "--expiration-model", "KEY_MATERIAL_EXPIRES",
                      "--valid-to", valid_to.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert rc == 0, out
    rc, described = aws_cli("describe-key", "--key-id", key["KeyId"])
    assert rc == 0, described
    meta = described["KeyMetadata"]
    assert (meta["KeyState"], meta["Origin"], meta["ExpirationModel"]) == ("Enabled", "EXTERNAL", "KEY_MATERIAL_EXPIRES")
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"cli import")["CiphertextBlob"]
    rc, out = aws_cli("delete-imported-key-material", "--key-id", key["KeyId"])
    assert rc == 0, out
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"
    # A re-import with the CLI from the wrong token: the error the service sends.
    rc, err = aws_cli("import-key-material", "--key-id", key["KeyId"],
                      "--encrypted-key-material", f"fileb://{tmp_path / 'encrypted.bin'}",
                      "--import-token", f"fileb://{tmp_path / 'material.bin'}",
                      "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert rc == CLI_SERVICE_ERROR and "InvalidImportTokenException" in err, err
    # The original token (still within 24 h) and wrapped material re-import the same material.
    rc, out = aws_cli("import-key-material", "--key-id", key["KeyId"],
                      "--encrypted-key-material", f"fileb://{tmp_path / 'encrypted.bin'}",
                      "--import-token", f"fileb://{tmp_path / 'token.bin'}",
                      "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert rc == 0, out
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"cli import"


# =================================================================================================
# Multi-Region keys
# =================================================================================================


def assert_multi_region(meta: dict, *, key_type: str, primary_region: str, replica_regions: set[str],
                        account: str) -> None:
    key_id = meta["KeyId"]
    assert MRK_ID.match(key_id), key_id
    assert meta["MultiRegion"] is True
    config = meta["MultiRegionConfiguration"]
    assert config["MultiRegionKeyType"] == key_type
    assert config["PrimaryKey"] == {"Arn": arn(primary_region, account, key_id), "Region": primary_region}
    replicas = {r["Region"]: r["Arn"] for r in config["ReplicaKeys"]}
    assert replicas == {r: arn(r, account, key_id) for r in replica_regions}, config["ReplicaKeys"]


def test_create_multi_region_key(kms, account):
    created = kms.create_key(MultiRegion=True, Description="mrk tests")["KeyMetadata"]
    described = kms.describe_key(KeyId=created["KeyId"])["KeyMetadata"]
    for meta in (created, described):
        assert_multi_region(meta, key_type="PRIMARY", primary_region=REGION_A, replica_regions=set(), account=account)
        assert meta["Arn"] == arn(REGION_A, account, meta["KeyId"])
    regional = kms.create_key(Description="mrk tests: regional")["KeyMetadata"]
    assert regional["MultiRegion"] is False and "MultiRegionConfiguration" not in regional
    assert not regional["KeyId"].startswith("mrk-")


def test_replicate_symmetric_key_across_regions(kms, region_client, account):
    kms_b, kms_c = region_client(REGION_B), region_client(REGION_C)
    primary = kms.create_key(MultiRegion=True, Description="mrk tests: symmetric")["KeyMetadata"]
    key_id = primary["KeyId"]
    answer = kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    replica = answer["ReplicaKeyMetadata"]
    assert replica["KeyId"] == key_id
    assert replica["Arn"] == arn(REGION_B, account, key_id)
    # "the new replica key has a transient key state of Creating" (ReplicateKey); AWS's example shows
    # Enabled.
    assert replica["KeyState"] in ("Creating", "Enabled")
    assert_multi_region(replica, key_type="REPLICA", primary_region=REGION_A, replica_regions={REGION_B},
                        account=account)
    assert json.loads(answer["ReplicaPolicy"])["Statement"]
    described_b = kms_b.describe_key(KeyId=key_id)["KeyMetadata"]
    assert described_b["KeyState"] == "Enabled"
    assert described_b["Arn"] == arn(REGION_B, account, key_id)
    assert (described_b["KeySpec"], described_b["KeyUsage"], described_b["Origin"]) == (
        "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "AWS_KMS")

    kms.replicate_key(KeyId=primary["Arn"], ReplicaRegion=REGION_C)
    assert_multi_region(kms.describe_key(KeyId=key_id)["KeyMetadata"], key_type="PRIMARY", primary_region=REGION_A,
                        replica_regions={REGION_B, REGION_C}, account=account)
    for client in (kms_b, kms_c):
        assert_multi_region(client.describe_key(KeyId=key_id)["KeyMetadata"], key_type="REPLICA",
                            primary_region=REGION_A, replica_regions={REGION_B, REGION_C}, account=account)

    # Ciphertexts cross Regions both ways, with and without KeyId.
    from_a = kms.encrypt(KeyId=key_id, Plaintext=b"from A", EncryptionContext={"k": "v"})["CiphertextBlob"]
    assert kms_b.decrypt(CiphertextBlob=from_a, EncryptionContext={"k": "v"})["Plaintext"] == b"from A"
    assert kms_c.decrypt(CiphertextBlob=from_a, EncryptionContext={"k": "v"}, KeyId=key_id)["Plaintext"] == b"from A"
    decrypted = kms_b.decrypt(CiphertextBlob=from_a, EncryptionContext={"k": "v"})
    assert decrypted["KeyId"] == arn(REGION_B, account, key_id)
    from_b = kms_b.encrypt(KeyId=key_id, Plaintext=b"from B")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=from_b)["Plaintext"] == b"from B"
    data_key = kms_c.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]
    # ReEncrypt in B of a ciphertext of A.
    re_encrypted = kms_b.re_encrypt(CiphertextBlob=from_a, SourceEncryptionContext={"k": "v"},
                                    DestinationKeyId=key_id)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=re_encrypted)["Plaintext"] == b"from A"

    # Key state is not shared: disabling the primary leaves the replica usable.
    kms.disable_key(KeyId=key_id)
    assert kms_b.decrypt(CiphertextBlob=from_a, EncryptionContext={"k": "v"})["Plaintext"] == b"from A"
    expect_error("DisabledException", kms.encrypt, KeyId=key_id, Plaintext=b"x")
    kms.enable_key(KeyId=key_id)


def test_replica_description_tags_and_policy_are_its_own(kms, region_client):
    # "The description is not a shared property of multi-Region keys ... The default value is an empty
    # string (no description)."; "Tags are not a shared property"; "If you do not provide a key policy,
    # KMS attaches the default key policy" (ReplicateKey request parameters).
    kms_b, kms_c = region_client(REGION_B), region_client(REGION_C)
    primary_tags = [{"TagKey": "side", "TagValue": "primary"}]
    key_id = kms.create_key(MultiRegion=True, Description="primary description", Tags=primary_tags)["KeyMetadata"]["KeyId"]
    answer = kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    assert answer["ReplicaTags"] == []
    assert kms_b.list_resource_tags(KeyId=key_id)["Tags"] == []
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == primary_tags
    assert json.loads(kms_b.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]) == json.loads(answer["ReplicaPolicy"])
    tags = [{"TagKey": "side", "TagValue": "replica"}]
    policy = json.dumps({"Version": "2012-10-17", "Id": "replica-policy", "Statement": [
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
         "Action": "kms:*", "Resource": "*"}]})
    answer_c = kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_C, Description="in C", Tags=tags, Policy=policy)
    assert answer_c["ReplicaTags"] == tags
    assert answer_c["ReplicaKeyMetadata"]["Description"] == "in C"
    assert kms_c.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "in C"
    assert kms_c.list_resource_tags(KeyId=key_id)["Tags"] == tags
    assert json.loads(kms_c.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]) == json.loads(policy)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "primary description"
    described_b = kms_b.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (answer["ReplicaKeyMetadata"]["Description"], described_b["Description"]) == ("", ""), (
        answer["ReplicaKeyMetadata"]["Description"], described_b["Description"])


ASYMMETRIC_MRKS = [("RSA_2048", "RSASSA_PSS_SHA_256"), ("ECC_NIST_P256", "ECDSA_SHA_256")]


@pytest.mark.parametrize("spec,algorithm", ASYMMETRIC_MRKS, ids=[s for s, _ in ASYMMETRIC_MRKS])
def test_asymmetric_multi_region_signatures_cross_regions(kms, region_client, spec, algorithm):
    kms_b = region_client(REGION_B)
    key_id = kms.create_key(MultiRegion=True, KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    public_a = kms.get_public_key(KeyId=key_id)["PublicKey"]
    assert kms_b.get_public_key(KeyId=key_id)["PublicKey"] == public_a
    message = b"signed in one Region"
    signature = kms.sign(KeyId=key_id, Message=message, SigningAlgorithm=algorithm)["Signature"]
    assert kms_b.verify(KeyId=key_id, Message=message, Signature=signature,
                        SigningAlgorithm=algorithm)["SignatureValid"] is True
    signature_b = kms_b.sign(KeyId=key_id, Message=message, SigningAlgorithm=algorithm)["Signature"]
    public_key = load_der_public_key(public_a)
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature_b, message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    else:
        public_key.verify(signature_b, message, ec.ECDSA(hashes.SHA256()))


def test_hmac_multi_region_macs_cross_regions(kms, region_client):
    kms_b = region_client(REGION_B)
    key_id = kms.create_key(MultiRegion=True, KeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    mac = kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_384")["Mac"]
    assert kms_b.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_384")["Mac"] == mac
    assert kms_b.verify_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_384", Mac=mac)["MacValid"] is True


def test_replicate_key_refusals(kms, region_client):
    kms_b = region_client(REGION_B)
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    # "If the Region already includes a replica of the key you're trying to replicate, ReplicateKey
    # returns an AlreadyExistsException error."
    expect_error("AlreadyExistsException", kms.replicate_key, KeyId=key_id, ReplicaRegion=REGION_B)
    # "The replica must be in a different Amazon Web Services Region than its primary key".
    expect_error("AlreadyExistsException", kms.replicate_key, KeyId=key_id, ReplicaRegion=REGION_A)
    # Only a primary key can be replicated ("Identifies the multi-Region primary key").
    expect_error("UnsupportedOperationException", kms_b.replicate_key, KeyId=key_id, ReplicaRegion=REGION_C)
    regional = kms.create_key()["KeyMetadata"]["KeyId"]
    expect_error("UnsupportedOperationException", kms.replicate_key, KeyId=regional, ReplicaRegion=REGION_B)
    expect_error("NotFoundException", kms.replicate_key, KeyId="mrk-" + uuid.uuid4().hex, ReplicaRegion=REGION_B)


def test_replica_of_a_disabled_primary_is_enabled(kms, region_client):
    # Key states are not shared: ReplicateKey's replica "changes to Enabled (or PendingImport)" once created.
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key_id)
    replica = kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)["ReplicaKeyMetadata"]
    assert replica["KeyState"] == "Enabled"
    kms_b = region_client(REGION_B)
    assert kms_b.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    blob = kms_b.encrypt(KeyId=key_id, Plaintext=b"replica")["CiphertextBlob"]
    expect_error("DisabledException", kms.decrypt, CiphertextBlob=blob)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"


def test_update_primary_region(kms, region_client, account):
    kms_b, kms_c, kms_d = region_client(REGION_B), region_client(REGION_C), region_client(REGION_D)
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_C)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"before the move")["CiphertextBlob"]
    assert kms.update_primary_region(KeyId=key_id, PrimaryRegion=REGION_B)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert_multi_region(kms_b.describe_key(KeyId=key_id)["KeyMetadata"], key_type="PRIMARY", primary_region=REGION_B,
                        replica_regions={REGION_A, REGION_C}, account=account)
    for client in (kms, kms_c):
        assert_multi_region(client.describe_key(KeyId=key_id)["KeyMetadata"], key_type="REPLICA",
                            primary_region=REGION_B, replica_regions={REGION_A, REGION_C}, account=account)
    # The old primary is now a replica: it cannot be replicated; the new primary can.
    expect_error("UnsupportedOperationException", kms.replicate_key, KeyId=key_id, ReplicaRegion=REGION_D)
    kms_b.replicate_key(KeyId=key_id, ReplicaRegion=REGION_D)
    assert kms_d.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before the move"
    # Rotation now belongs to the new primary and reaches the old one.
    expect_error("UnsupportedOperationException", kms.rotate_key_on_demand, KeyId=key_id)
    kms_b.rotate_key_on_demand(KeyId=key_id)
    after = kms_b.encrypt(KeyId=key_id, Plaintext=b"rotated in B")["CiphertextBlob"]
    for client in (kms, kms_c, kms_d):
        assert client.decrypt(CiphertextBlob=after)["Plaintext"] == b"rotated in B"
    kms_b.enable_key_rotation(KeyId=key_id)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    assert_multi_region(kms.describe_key(KeyId=key_id)["KeyMetadata"], key_type="REPLICA", primary_region=REGION_B,
                        replica_regions={REGION_A, REGION_C, REGION_D}, account=account)
    # UpdatePrimaryRegion must be called on the primary ("Identifies the current primary key").
    expect_error("UnsupportedOperationException", kms_c.update_primary_region, KeyId=key_id, PrimaryRegion=REGION_C)
    regional = kms.create_key()["KeyMetadata"]["KeyId"]
    expect_error("UnsupportedOperationException", kms.update_primary_region, KeyId=regional, PrimaryRegion=REGION_B)
    # "There must be an existing replica key in this Region." The code is not documented.
    error = error_of(kms_b.update_primary_region, KeyId=key_id, PrimaryRegion="sa-east-1")
    assert error["Code"] in ("NotFoundException", "UnsupportedOperationException", "ValidationException"), error


def test_rotation_of_a_multi_region_key(kms, region_client):
    kms_b, kms_c = region_client(REGION_B), region_client(REGION_C)
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    before = kms.encrypt(KeyId=key_id, Plaintext=b"before rotation")["CiphertextBlob"]
    # "To enable or disable automatic rotation of a set of related multi-Region keys, set the property on
    # the primary key." The rotation status is a shared property.
    expect_error("UnsupportedOperationException", kms_b.enable_key_rotation, KeyId=key_id)
    kms.enable_key_rotation(KeyId=key_id)
    assert kms_b.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    expect_error("UnsupportedOperationException", kms_b.rotate_key_on_demand, KeyId=key_id)
    kms.rotate_key_on_demand(KeyId=key_id)
    after = kms.encrypt(KeyId=key_id, Plaintext=b"after rotation")["CiphertextBlob"]
    assert kms_b.decrypt(CiphertextBlob=after)["Plaintext"] == b"after rotation"
    assert kms_b.decrypt(CiphertextBlob=before)["Plaintext"] == b"before rotation"
    from_b = kms_b.encrypt(KeyId=key_id, Plaintext=b"B after rotation")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=from_b)["Plaintext"] == b"B after rotation"
    # A replica made after the rotation has every key material of its primary.
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_C)
    assert kms_c.decrypt(CiphertextBlob=before)["Plaintext"] == b"before rotation"
    assert kms_c.decrypt(CiphertextBlob=after)["Plaintext"] == b"after rotation"
    assert kms_c.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True


def test_regions_are_isolated_except_for_replicas(kms, region_client, account):
    kms_b = region_client(REGION_B)
    regional = kms.create_key(Description="mrk tests: regional in A")["KeyMetadata"]
    mrk = kms.create_key(MultiRegion=True)["KeyMetadata"]
    ids_b = list_key_ids(kms_b)
    assert regional["KeyId"] not in ids_b and mrk["KeyId"] not in ids_b
    expect_error("NotFoundException", kms_b.describe_key, KeyId=regional["KeyId"])
    expect_error("NotFoundException", kms_b.describe_key, KeyId=mrk["KeyId"])
    expect_error("NotFoundException", kms_b.encrypt, KeyId=regional["KeyId"], Plaintext=b"x")
    blob = kms.encrypt(KeyId=regional["KeyId"], Plaintext=b"regional")["CiphertextBlob"]
    error = error_of(kms_b.decrypt, CiphertextBlob=blob)
    assert error["Code"] in ("NotFoundException", "InvalidCiphertextException"), error
    kms.replicate_key(KeyId=mrk["KeyId"], ReplicaRegion=REGION_B)
    assert arn(REGION_B, account, mrk["KeyId"]) in list_key_arns(kms_b)
    assert arn(REGION_A, account, mrk["KeyId"]) not in list_key_arns(kms_b)
    assert regional["KeyId"] not in list_key_ids(kms_b)
    assert arn(REGION_A, account, mrk["KeyId"]) in list_key_arns(kms)


def test_scheduled_deletion_of_a_replica(fresh_kmsim):
    account = fresh_kmsim.info["account_id"]
    kms, kms_b, kms_c = (fresh_kmsim.client(region=r) for r in (REGION_A, REGION_B, REGION_C))
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_C)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"survives")["CiphertextBlob"]
    answer = kms_b.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert answer["KeyId"] == arn(REGION_B, account, key_id)
    assert kms_b.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    # Until it is deleted, the replica is still one of the key's replicas.
    assert_multi_region(kms.describe_key(KeyId=key_id)["KeyMetadata"], key_type="PRIMARY", primary_region=REGION_A,
                        replica_regions={REGION_B, REGION_C}, account=account)
    fresh_kmsim.admin.advance_clock(days=8)
    expect_error("NotFoundException", kms_b.describe_key, KeyId=key_id)
    assert_multi_region(kms.describe_key(KeyId=key_id)["KeyMetadata"], key_type="PRIMARY", primary_region=REGION_A,
                        replica_regions={REGION_C}, account=account)
    assert_multi_region(kms_c.describe_key(KeyId=key_id)["KeyMetadata"], key_type="REPLICA", primary_region=REGION_A,
                        replica_regions={REGION_C}, account=account)
    assert key_id not in list_key_ids(kms_b)
    # The Region can hold a replica again, with the same material.
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    assert kms_b.decrypt(CiphertextBlob=blob)["Plaintext"] == b"survives"


def test_multi_region_key_with_imported_material(kms, region_client, account):
    kms_b = region_client(REGION_B)
    primary = kms.create_key(MultiRegion=True, Origin="EXTERNAL")["KeyMetadata"]
    key_id = primary["KeyId"]
    assert MRK_ID.match(key_id) and primary["KeyState"] == "PendingImport" and primary["Origin"] == "EXTERNAL"
    material = os.urandom(32)
    import_material(kms, key_id, material)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"imported mrk")["CiphertextBlob"]
    # "If you replicate a multi-Region primary key with imported key material, the replica key is created
    # with no key material. You must import the same key material that you imported into the primary key."
    replica = kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)["ReplicaKeyMetadata"]
    assert replica["Origin"] == "EXTERNAL"
    described = kms_b.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (described["KeyState"], described["Origin"]) == ("PendingImport", "EXTERNAL")
    expect_error("KMSInvalidStateException", kms_b.decrypt, CiphertextBlob=blob)
    expect_error("IncorrectKeyMaterialException", import_material, kms_b, key_id, os.urandom(32))
    params = kms_b.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256",
                                             WrappingKeySpec="RSA_2048")
    assert params["KeyId"] == arn(REGION_B, account, key_id)
    kms_b.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                              EncryptedKeyMaterial=wrap(material, params["PublicKey"], "RSA_AES_KEY_WRAP_SHA_256"),
                              ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert kms_b.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms_b.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported mrk"
    assert kms.decrypt(CiphertextBlob=kms_b.encrypt(KeyId=key_id, Plaintext=b"b")["CiphertextBlob"])["Plaintext"] == b"b"
    # "If you delete any key material of a replica Region key, the primary Region key and other replica
    # Region keys remain unchanged." (DeleteImportedKeyMaterial)
    kms_b.delete_imported_key_material(KeyId=key_id)
    assert kms_b.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported mrk"
    # A token of the primary's Region is not a token of the replica.
    params_a = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                             WrappingKeySpec="RSA_2048")
    error = error_of(kms_b.import_key_material, KeyId=key_id, ImportToken=params_a["ImportToken"],
                     EncryptedKeyMaterial=wrap(material, params_a["PublicKey"], "RSAES_OAEP_SHA_256"),
                     ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert error["Code"] == "InvalidImportTokenException", error


def test_imported_asymmetric_multi_region_key(kms, region_client):
    kms_b = region_client(REGION_B)
    private_key = ec.generate_private_key(ec.SECP256R1())
    key_id = kms.create_key(MultiRegion=True, Origin="EXTERNAL", KeySpec="ECC_NIST_P256",
                            KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    import_material(kms, key_id, pkcs8(private_key))
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    expect_error("KMSInvalidStateException", kms_b.get_public_key, KeyId=key_id)
    expect_error("IncorrectKeyMaterialException", import_material, kms_b, key_id,
                 pkcs8(ec.generate_private_key(ec.SECP256R1())))
    import_material(kms_b, key_id, pkcs8(private_key), "RSA_AES_KEY_WRAP_SHA_1")
    assert kms_b.get_public_key(KeyId=key_id)["PublicKey"] == spki(private_key.public_key())
    signature = kms_b.sign(KeyId=key_id, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    private_key.public_key().verify(signature, b"m", ec.ECDSA(hashes.SHA256()))
    assert kms.verify(KeyId=key_id, Message=b"m", Signature=signature,
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"] is True


def test_imported_material_expires_per_region(fresh_kmsim):
    kms, kms_b = fresh_kmsim.client(region=REGION_A), fresh_kmsim.client(region=REGION_B)
    key_id = kms.create_key(MultiRegion=True, Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    material = os.urandom(32)
    valid_to = (sim_now(fresh_kmsim.admin) + dt.timedelta(days=2)).replace(microsecond=0)
    import_material(kms, key_id, material, ValidTo=valid_to)
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    import_material(kms_b, key_id, material)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"outlives the primary's material")["CiphertextBlob"]
    meta_b = kms_b.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta_b["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE" and "ValidTo" not in meta_b
    fresh_kmsim.admin.advance_clock(days=3)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    assert kms_b.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms_b.decrypt(CiphertextBlob=blob)["Plaintext"] == b"outlives the primary's material"


def test_replicate_key_of_a_primary_pending_deletion(kms):
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    expect_error("KMSInvalidStateException", kms.replicate_key, KeyId=key_id, ReplicaRegion=REGION_B)


def test_imported_material_and_replicas_survive_a_restart(kmsim_data_dir):
    server = kmsim_data_dir()
    kms, kms_b = server.client(region=REGION_A), server.client(region=REGION_B)
    material = os.urandom(32)
    imported = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    valid_to = (sim_now(server.process.admin) + dt.timedelta(days=100)).replace(microsecond=0)
    import_material(kms, imported, material, ValidTo=valid_to)
    pending = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms.get_parameters_for_import(KeyId=pending, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    mrk = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=mrk, ReplicaRegion=REGION_B)
    blob_imported = kms.encrypt(KeyId=imported, Plaintext=b"imported")["CiphertextBlob"]
    blob_mrk = kms.encrypt(KeyId=mrk, Plaintext=b"mrk")["CiphertextBlob"]
    assert server.restart() == 0
    kms, kms_b = server.client(region=REGION_A), server.client(region=REGION_B)
    meta = kms.describe_key(KeyId=imported)["KeyMetadata"]
    assert (meta["KeyState"], meta["ExpirationModel"], meta["ValidTo"]) == ("Enabled", "KEY_MATERIAL_EXPIRES", valid_to)
    assert kms.decrypt(CiphertextBlob=blob_imported)["Plaintext"] == b"imported"
    assert kms_b.decrypt(CiphertextBlob=blob_mrk)["Plaintext"] == b"mrk"
    assert_multi_region(kms_b.describe_key(KeyId=mrk)["KeyMetadata"], key_type="REPLICA", primary_region=REGION_A,
                        replica_regions={REGION_B}, account=server.process.info["account_id"])
    # An import token is valid for 24 hours ("Each public key and import token set is valid for 24 hours").
    kms.import_key_material(KeyId=pending, ImportToken=params["ImportToken"],
                            EncryptedKeyMaterial=wrap(material, params["PublicKey"], "RSAES_OAEP_SHA_256"),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert kms.describe_key(KeyId=pending)["KeyMetadata"]["KeyState"] == "Enabled"


def test_update_primary_region_needs_both_keys_enabled(kms, region_client):
    # "Both the primary key and the replica key must be in the Enabled key state." (UpdatePrimaryRegion)
    kms_b = region_client(REGION_B)
    key_id = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=key_id, ReplicaRegion=REGION_B)
    kms_b.disable_key(KeyId=key_id)
    expect_error("KMSInvalidStateException", kms.update_primary_region, KeyId=key_id, PrimaryRegion=REGION_B)
    kms_b.enable_key(KeyId=key_id)
    kms.disable_key(KeyId=key_id)
    expect_error("KMSInvalidStateException", kms.update_primary_region, KeyId=key_id, PrimaryRegion=REGION_B)
    kms.enable_key(KeyId=key_id)
    kms.update_primary_region(KeyId=key_id, PrimaryRegion=REGION_B)
    assert kms_b.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"


def test_cancel_deletion_after_material_was_deleted_leaves_the_key_pending_import(kms):
    key = external_key(kms)
    import_material(kms, key["KeyId"], os.urandom(32))
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    kms.delete_imported_key_material(KeyId=key["KeyId"])
    kms.cancel_key_deletion(KeyId=key["KeyId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"


def test_derive_shared_secret_with_imported_material_names_its_origin(kms):
    key = external_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")
    local = ec.generate_private_key(ec.SECP256R1())
    import_material(kms, key["KeyId"], pkcs8(local), algorithm="RSA_AES_KEY_WRAP_SHA_256")
    peer = ec.generate_private_key(ec.SECP256R1())
    derived = kms.derive_shared_secret(KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH",
                                       PublicKey=spki(peer.public_key()))
    assert derived["KeyOrigin"] == "EXTERNAL"
    assert derived["SharedSecret"] == peer.exchange(ec.ECDH(), local.public_key())
