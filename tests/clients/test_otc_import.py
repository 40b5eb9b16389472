"""Imported key material through the Open Telekom Cloud / Huawei Cloud KMS API, driven by ``huaweicloudsdkkms``.

The flow is the API reference's (support.huaweicloud.com/intl/en-us/api-dew: CreateKey with ``origin``
external, CreateParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial): the key waits in state
"5" (pending import), ``get-parameters-for-import`` gives an RSA_2048 public key (base64 DER) and an import
token valid 24 hours, the material is wrapped outside kmsim with RSAES_OAEP_SHA_256 — by Python
``cryptography`` and by the ``openssl`` command line — and an asymmetric key's PKCS #8 private key travels
wrapped (RFC 5649, ``openssl enc -id-aes256-wrap-pad``) under a temporary AES-256 key that is itself wrapped
with the public key. What the key then does is checked locally: ciphertexts decrypt across a delete and a
re-import, signatures verify with the local private key's public half, and the AWS dialect sees the same key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkkms.v2 import (
    CreateKeyRequest,
    CreateKeyRequestBody,
    CreateParametersForImportRequest,
    DecryptDataRequest,
    DecryptDataRequestBody,
    DeleteImportedKeyMaterialRequest,
    EncryptDataRequest,
    EncryptDataRequestBody,
    GetParametersForImportRequestBody,
    ImportKeyMaterialRequest,
    ImportKeyMaterialRequestBody,
    KmsClient,
    ListKeyDetailRequest,
    OperateKeyRequestBody,
    ScheduleKeyDeletionRequestBody,
    DeleteKeyRequest,
    ShowPublicKeyRequest,
    SignRequest,
    SignRequestBody,
)

from conftest import KmsimProcess, unique
from conftest import expect_otc_error
from conftest import huawei_kms_client as huawei_client

ZERO_ID = "0" * 32
PENDING_IMPORT, ENABLED, PENDING_DELETION = "5", "2", "4"
OAEP_SHA256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


# ---- helpers -------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def op(key_id: str) -> OperateKeyRequestBody:
    return OperateKeyRequestBody(key_id=key_id)


def create_external_key(client: KmsClient, key_spec: str | None = None, key_usage: str | None = None) -> str:
    body = CreateKeyRequestBody(key_alias=unique("otc-import"), key_spec=key_spec, key_usage=key_usage,
                                origin="external")
    return client.create_key(CreateKeyRequest(body=body)).key_info.key_id


def describe(client: KmsClient, key_id: str):
    return client.list_key_detail(ListKeyDetailRequest(body=op(key_id))).key_info


def parameters(client: KmsClient, key_id: str, algorithm: str = "RSAES_OAEP_SHA_256"):
    body = GetParametersForImportRequestBody(key_id=key_id, wrapping_algorithm=algorithm)
    return client.create_parameters_for_import(CreateParametersForImportRequest(body=body))


def wrapping_key(params) -> rsa.RSAPublicKey:
    public_key = serialization.load_der_public_key(base64.b64decode(params.public_key))
    assert isinstance(public_key, rsa.RSAPublicKey)
    return public_key


def import_request(key_id: str, params, encrypted_material: bytes, encrypted_private_key: bytes | None = None,
                   expiration_time: int | None = None) -> ImportKeyMaterialRequest:
    body = ImportKeyMaterialRequestBody(
        key_id=key_id, import_token=params.import_token, encrypted_key_material=b64(encrypted_material),
        encrypted_privatekey=b64(encrypted_private_key) if encrypted_private_key is not None else None,
        expiration_time=expiration_time)
    return ImportKeyMaterialRequest(body=body)


def import_symmetric(client: KmsClient, key_id: str, material: bytes, expiration_time: int | None = None) -> None:
    params = parameters(client, key_id)
    wrapped = wrapping_key(params).encrypt(material, OAEP_SHA256)
    client.import_key_material(import_request(key_id, params, wrapped, expiration_time=expiration_time))


def import_private_key(client: KmsClient, key_id: str, private_key: Any) -> None:
    """The API's asymmetric form: a temporary AES-256 key wrapped with RSA OAEP, the PKCS #8 DER private key
    wrapped under it with AES key wrap with padding (RFC 5649)."""
    params = parameters(client, key_id)
    temporary = os.urandom(32)
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    request = import_request(key_id, params, wrapping_key(params).encrypt(temporary, OAEP_SHA256),
                             aes_key_wrap_with_padding(temporary, der))
    client.import_key_material(request)


def encrypt_data(client: KmsClient, key_id: str, text: str) -> str:
    body = EncryptDataRequestBody(key_id=key_id, plain_text=text)
    return client.encrypt_data(EncryptDataRequest(body=body)).cipher_text


def decrypt_data(client: KmsClient, cipher_text: str) -> str:
    return client.decrypt_data(DecryptDataRequest(body=DecryptDataRequestBody(cipher_text=cipher_text))).plain_text


def delete_material(client: KmsClient, key_id: str) -> None:
    client.delete_imported_key_material(DeleteImportedKeyMaterialRequest(body=op(key_id)))


@pytest.fixture(scope="module")
def hw(kmsim: dict[str, Any]) -> KmsClient:
    return huawei_client(kmsim["endpoint"], kmsim.get("project_id", ZERO_ID))


# ---- the symmetric flow --------------------------------------------------------------------------


def test_external_key_waits_for_material_then_works_in_both_dialects(hw: KmsClient, kms) -> None:
    key_id = create_external_key(hw)
    info = describe(hw, key_id)
    assert (info.key_state, info.origin, info.key_spec) == (PENDING_IMPORT, "external", "AES_256")
    expect_otc_error("KMS.0308", hw.encrypt_data, EncryptDataRequest(
        body=EncryptDataRequestBody(key_id=key_id, plain_text="too early")))

    params = parameters(hw, key_id)
    assert params.key_id == key_id
    assert wrapping_key(params).key_size == 2048
    assert abs(params.expiration_time - (time.time() + 24 * 3600)) < 120
    material = os.urandom(32)
    hw.import_key_material(import_request(key_id, params, wrapping_key(params).encrypt(material, OAEP_SHA256)))

    info = describe(hw, key_id)
    assert (info.key_state, info.origin) == (ENABLED, "external")
    cipher_text = encrypt_data(hw, key_id, "imported through the OTC API")
    assert decrypt_data(hw, cipher_text) == "imported through the OTC API"
    # The same key through the AWS dialect: EXTERNAL origin, and it decrypts what it encrypts.
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (metadata["Origin"], metadata["KeyState"]) == ("EXTERNAL", "Enabled")
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"from boto3")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"from boto3"


def test_material_wrapped_by_openssl_imports(hw: KmsClient, tmp_path: Path) -> None:
    key_id = create_external_key(hw)
    params = parameters(hw, key_id)
    (tmp_path / "wrapping.der").write_bytes(base64.b64decode(params.public_key))
    material = os.urandom(32)
    (tmp_path / "material.bin").write_bytes(material)
    subprocess.run(
        ["openssl", "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", str(tmp_path / "wrapping.der"),
         "-in", str(tmp_path / "material.bin"), "-out", str(tmp_path / "wrapped.bin"),
         "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"],
        check=True, capture_output=True)
    hw.import_key_material(import_request(key_id, params, (tmp_path / "wrapped.bin").read_bytes()))
    assert describe(hw, key_id).key_state == ENABLED
    assert decrypt_data(hw, encrypt_data(hw, key_id, "openssl wrapped it")) == "openssl wrapped it"


def test_delete_and_reimport_the_same_material_restores_old_ciphertexts(hw: KmsClient) -> None:
    key_id = create_external_key(hw)
    material = os.urandom(32)
    import_symmetric(hw, key_id, material)
    cipher_text = encrypt_data(hw, key_id, "written before the delete")

    delete_material(hw, key_id)
    assert describe(hw, key_id).key_state == PENDING_IMPORT
    expect_otc_error("KMS.0308", hw.decrypt_data,
                     DecryptDataRequest(body=DecryptDataRequestBody(cipher_text=cipher_text)))

    # Other material is refused, and the key stays pending import.
    params = parameters(hw, key_id)
    other = wrapping_key(params).encrypt(os.urandom(32), OAEP_SHA256)
    expect_otc_error("KMS.0308", hw.import_key_material, import_request(key_id, params, other))
    assert describe(hw, key_id).key_state == PENDING_IMPORT

    import_symmetric(hw, key_id, material)
    assert describe(hw, key_id).key_state == ENABLED
    assert decrypt_data(hw, cipher_text) == "written before the delete"


def test_material_expires_on_the_simulated_clock(fresh_kmsim: KmsimProcess) -> None:
    client = huawei_client(fresh_kmsim.endpoint, fresh_kmsim.info.get("project_id", ZERO_ID))
    key_id = create_external_key(client)
    now = int(fresh_kmsim.admin.clock()["now"])
    import_symmetric(client, key_id, os.urandom(32), expiration_time=now + 3600)
    assert describe(client, key_id).key_state == ENABLED
    assert describe(client, key_id).expiration_time

    fresh_kmsim.admin.advance_clock(seconds=3601)
    assert describe(client, key_id).key_state == PENDING_IMPORT
    expect_otc_error("KMS.0308", client.encrypt_data, EncryptDataRequest(
        body=EncryptDataRequestBody(key_id=key_id, plain_text="after expiry")))


def test_import_token_expires_after_24_hours(fresh_kmsim: KmsimProcess) -> None:
    client = huawei_client(fresh_kmsim.endpoint, fresh_kmsim.info.get("project_id", ZERO_ID))
    key_id = create_external_key(client)
    params = parameters(client, key_id)
    wrapped = wrapping_key(params).encrypt(os.urandom(32), OAEP_SHA256)
    fresh_kmsim.admin.advance_clock(days=1, seconds=1)
    expect_otc_error("KMS.0308", client.import_key_material, import_request(key_id, params, wrapped))
    assert describe(client, key_id).key_state == PENDING_IMPORT


# ---- asymmetric keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("key_spec,curve", [("EC_P256", ec.SECP256R1()), ("EC_P384", ec.SECP384R1())])
def test_imported_ec_key_signs_with_the_local_private_key(hw: KmsClient, key_spec: str, curve: Any) -> None:
    key_id = create_external_key(hw, key_spec, "SIGN_VERIFY")
    assert describe(hw, key_id).key_state == PENDING_IMPORT
    private_key = ec.generate_private_key(curve)
    import_private_key(hw, key_id, private_key)
    assert describe(hw, key_id).key_state == ENABLED

    pem = hw.show_public_key(ShowPublicKeyRequest(body=op(key_id))).public_key
    local_pem = private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pem.replace("\r\n", "\n").strip() == local_pem.decode().strip()
    algorithm, digest = ("ECDSA_SHA_256", hashes.SHA256()) if key_spec == "EC_P256" else ("ECDSA_SHA_384",
                                                                                         hashes.SHA384())
    message = b"signed by imported material"
    body = SignRequestBody(key_id=key_id, message=b64(message), signing_algorithm=algorithm, message_type="RAW")
    signature = base64.b64decode(hw.sign(SignRequest(body=body)).signature)
    private_key.public_key().verify(signature, message, ec.ECDSA(digest))

    # The API refuses deleting an asymmetric key's material; the key stays as it was.
    expect_otc_error("KMS.0308", hw.delete_imported_key_material, DeleteImportedKeyMaterialRequest(body=op(key_id)))
    assert describe(hw, key_id).key_state == ENABLED


def test_imported_rsa_key_wrapped_by_openssl_decrypts_local_ciphertexts(hw: KmsClient, tmp_path: Path) -> None:
    key_id = create_external_key(hw, "RSA_2048", "ENCRYPT_DECRYPT")
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "private.der").write_bytes(private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    params = parameters(hw, key_id)
    (tmp_path / "wrapping.der").write_bytes(base64.b64decode(params.public_key))
    temporary = os.urandom(32)
    (tmp_path / "temporary.bin").write_bytes(temporary)
    subprocess.run(
        ["openssl", "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", str(tmp_path / "wrapping.der"),
         "-in", str(tmp_path / "temporary.bin"), "-out", str(tmp_path / "temporary.wrapped"),
         "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"],
        check=True, capture_output=True)
    subprocess.run(
        ["openssl", "enc", "-id-aes256-wrap-pad", "-K", temporary.hex(), "-iv", "A65959A6",
         "-in", str(tmp_path / "private.der"), "-out", str(tmp_path / "private.wrapped")],
        check=True, capture_output=True)
    hw.import_key_material(import_request(key_id, params, (tmp_path / "temporary.wrapped").read_bytes(),
                                          (tmp_path / "private.wrapped").read_bytes()))
    assert describe(hw, key_id).key_state == ENABLED

    local = private_key.public_key().encrypt(b"for the imported RSA key", OAEP_SHA256)
    body = DecryptDataRequestBody(key_id=key_id, cipher_text=b64(local), encryption_algorithm="RSAES_OAEP_SHA_256")
    assert hw.decrypt_data(DecryptDataRequest(body=body)).plain_text == "for the imported RSA key"


def test_private_key_of_the_wrong_curve_is_refused(hw: KmsClient) -> None:
    key_id = create_external_key(hw, "EC_P256", "SIGN_VERIFY")
    with pytest.raises(ClientRequestException) as info:
        import_private_key(hw, key_id, ec.generate_private_key(ec.SECP384R1()))
    assert (info.value.status_code, info.value.error_code) == (400, "KMS.0308")
    assert describe(hw, key_id).key_state == PENDING_IMPORT


# ---- bad input -----------------------------------------------------------------------------------


def test_get_parameters_for_import_refuses_bad_input(hw: KmsClient) -> None:
    key_id = create_external_key(hw)
    for algorithm in ("RSAES_OAEP_SHA_1024", "rsaes_oaep_sha_256", "SM2_ENCRYPT"):
        expect_otc_error("KMS.0308", hw.create_parameters_for_import, CreateParametersForImportRequest(
            body=GetParametersForImportRequestBody(key_id=key_id, wrapping_algorithm=algorithm)))
    expect_otc_error("KMS.0204", hw.create_parameters_for_import, CreateParametersForImportRequest(
        body=GetParametersForImportRequestBody(key_id=key_id)))
    # A key whose material KMS made takes no import.
    kms_key = hw.create_key(CreateKeyRequest(body=CreateKeyRequestBody(key_alias=unique("otc-kms")))).key_info.key_id
    expect_otc_error("KMS.0308", hw.create_parameters_for_import, CreateParametersForImportRequest(
        body=GetParametersForImportRequestBody(key_id=kms_key, wrapping_algorithm="RSAES_OAEP_SHA_256")))
    expect_otc_error("KMS.0207", hw.create_parameters_for_import, CreateParametersForImportRequest(
        body=GetParametersForImportRequestBody(key_id="0d0466b0-e727-4d9c-b35d-f84bb474a37f",
                                               wrapping_algorithm="RSAES_OAEP_SHA_256")))
    expect_otc_error("KMS.0308", hw.create_key, CreateKeyRequest(
        body=CreateKeyRequestBody(key_alias=unique("otc-bad"), origin="imported")))


def test_import_key_material_refuses_bad_input(hw: KmsClient) -> None:
    key_id = create_external_key(hw)
    other_key = create_external_key(hw)
    params = parameters(hw, key_id)
    other_params = parameters(hw, other_key)
    wrapped = wrapping_key(params).encrypt(os.urandom(32), OAEP_SHA256)

    # Another key's token; a token that is no token; material that does not unwrap; the wrong length.
    expect_otc_error("KMS.0308", hw.import_key_material, import_request(key_id, other_params, wrapped))
    body = ImportKeyMaterialRequestBody(key_id=key_id, import_token=b64(b"not a token" * 20),
                                       encrypted_key_material=b64(wrapped))
    expect_otc_error("KMS.0308", hw.import_key_material, ImportKeyMaterialRequest(body=body))
    expect_otc_error("KMS.0308", hw.import_key_material, import_request(key_id, params, os.urandom(256)))
    short = wrapping_key(params).encrypt(os.urandom(16), OAEP_SHA256)
    expect_otc_error("KMS.0308", hw.import_key_material, import_request(key_id, params, short))
    # Not base64; missing fields; an expiration time in the past.
    body = ImportKeyMaterialRequestBody(key_id=key_id, import_token=params.import_token,
                                       encrypted_key_material="%%%not base64%%%")
    expect_otc_error("KMS.0308", hw.import_key_material, ImportKeyMaterialRequest(body=body))
    expect_otc_error("KMS.0204", hw.import_key_material, ImportKeyMaterialRequest(
        body=ImportKeyMaterialRequestBody(key_id=key_id, encrypted_key_material=b64(wrapped))))
    expect_otc_error("KMS.0308", hw.import_key_material,
                     import_request(key_id, params, wrapped, expiration_time=int(time.time()) - 60))
    assert describe(hw, key_id).key_state == PENDING_IMPORT

    # The good request still works afterwards: nothing above changed the key.
    hw.import_key_material(import_request(key_id, params, wrapped))
    assert describe(hw, key_id).key_state == ENABLED


def test_key_pending_deletion_refuses_an_import_but_may_lose_its_material(hw: KmsClient) -> None:
    key_id = create_external_key(hw)
    import_symmetric(hw, key_id, os.urandom(32))
    params = parameters(hw, key_id)
    hw.delete_key(DeleteKeyRequest(body=ScheduleKeyDeletionRequestBody(key_id=key_id, pending_days="7")))
    assert describe(hw, key_id).key_state == PENDING_DELETION
    expect_otc_error("KMS.0210", hw.create_parameters_for_import, CreateParametersForImportRequest(
        body=GetParametersForImportRequestBody(key_id=key_id, wrapping_algorithm="RSAES_OAEP_SHA_256")))
    wrapped = wrapping_key(params).encrypt(os.urandom(32), OAEP_SHA256)
    expect_otc_error("KMS.0210", hw.import_key_material, import_request(key_id, params, wrapped))
    delete_material(hw, key_id)
    assert describe(hw, key_id).key_state == PENDING_DELETION


def test_delete_imported_key_material_refuses_a_kms_key(hw: KmsClient) -> None:
    kms_key = hw.create_key(CreateKeyRequest(body=CreateKeyRequestBody(key_alias=unique("otc-kms")))).key_info.key_id
    expect_otc_error("KMS.0308", hw.delete_imported_key_material, DeleteImportedKeyMaterialRequest(body=op(kms_key)))
    assert describe(hw, kms_key).key_state == ENABLED
    digest = hashlib.sha256(b"unchanged").hexdigest()
    assert decrypt_data(hw, encrypt_data(hw, kms_key, digest)) == digest
