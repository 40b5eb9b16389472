"""The OTC / Huawei Cloud KMS verbs over the shared core that came after the first ones, through ``huaweicloudsdkkms``:
create-rsa-datakey-pair and create-ec-datakey-pair, re-encrypt, rotate-on-demand, user-quotas, user-instances and
resource_instances (keys by tag).

Every verb goes through Huawei's own SDK request classes (``CreateRsaDatakeyPairRequest``, ``ReEncryptRequest``,
``RotateOnDemandRequest``, ``ShowUserQuotasRequest``, ``ShowUserInstancesRequest``, ``ListKmsByTagsRequest``, ...)
and every result is checked outside the verb that made it: data key pairs load in ``cryptography`` and their private
key matches their public key, and their private key ciphertext decrypts through decrypt-data and through boto3;
re-encrypted ciphertexts decrypt under the new key and context only (a DEK through decrypt-datakey, data through
decrypt-data); a ciphertext made by boto3 in the AWS dialect re-encrypts through the OTC dialect; an on-demand
rotation shows in get-key-rotation-status and boto3's ListKeyRotations while old ciphertexts still decrypt; quotas
and instance counts are those of a server of the test's own.

Wire facts come from Huawei's DEW API reference and the OTC KMS API reference (opentelekomcloud-docs/
key-management-service): the request and response fields of the SDK's models; error codes KMS.0204 (missing
parameter), KMS.0207 (no such key), KMS.0209 (disabled), KMS.0210 (pending deletion), KMS.0308 (invalid parameter),
KMS.0311 (RSA decryption failed), KMS.2201 (invalid cipher_text), KMS.0402/0403/0404/0406/0417/1601 (match value,
match key, action, tag key, offset, limit). Where the reference is silent kmsim's choices are those of
docs/api-coverage.md: data key pairs in base64 DER, re-encrypt keeping hex DEK ciphertexts hex and base64 ones base64.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import urllib.parse
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_private_key,
    load_der_public_key,
    load_pem_public_key,
)
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkkms.v2 import (
    CreateDatakeyRequest,
    CreateDatakeyRequestBody,
    CreateEcDatakeyPairRequest,
    CreateEcDatakeyPairRequestBody,
    CreateGrantRequest,
    CreateGrantRequestBody,
    CreateKeyRequest,
    CreateKeyRequestBody,
    CreateKmsTagRequest,
    CreateKmsTagRequestBody,
    CreateRsaDatakeyPairRequest,
    CreateRsaDatakeyPairRequestBody,
    DecryptDataRequest,
    DecryptDataRequestBody,
    DecryptDatakeyRequest,
    DecryptDatakeyRequestBody,
    DeleteKeyRequest,
    DisableKeyRequest,
    EnableKeyRequest,
    EncryptDataRequest,
    EncryptDataRequestBody,
    KmsClient,
    ListKmsByTagsRequest,
    ListKmsByTagsRequestBody,
    OperateKeyRequestBody,
    ReEncryptRequest,
    ReEncryptRequestBody,
    RotateOnDemandRequest,
    RotateOnDemandRequestBody,
    ScheduleKeyDeletionRequestBody,
    ShowKeyRotationStatusRequest,
    ShowPublicKeyRequest,
    ShowUserInstancesRequest,
    ShowUserQuotasRequest,
    Tag,
    TagItem,
)

from conftest import DEFAULT_ACCESS_KEY, DEFAULT_SECRET, KmsimProcess, unique
from conftest import expect_otc_error
from conftest import huawei_kms_client as huawei_client

ZERO_ID = "0" * 32
UNKNOWN_KEY = "0d0466b0-e727-4d9c-b35d-f84bb474a37f"

RSA_PAIRS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
EC_PAIRS = {"ECC_NIST_P256": ec.SECP256R1, "ECC_NIST_P384": ec.SECP384R1, "ECC_NIST_P521": ec.SECP521R1,
            "ECC_SECG_P256K1": ec.SECP256K1}


# ---- helpers -------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def op(key_id: str) -> OperateKeyRequestBody:
    return OperateKeyRequestBody(key_id=key_id)


def create_key(client: KmsClient, alias: str | None = None, key_spec: str | None = None,
               key_usage: str | None = None) -> str:
    body = CreateKeyRequestBody(key_alias=alias or unique("otc-more"), key_spec=key_spec, key_usage=key_usage)
    return client.create_key(CreateKeyRequest(body=body)).key_info.key_id


def encrypt_data(client: KmsClient, key_id: str, plain_text: str, aad: str | None = None,
                 algorithm: str | None = None) -> str:
    response = client.encrypt_data(EncryptDataRequest(body=EncryptDataRequestBody(
        key_id=key_id, plain_text=plain_text, additional_authenticated_data=aad, encryption_algorithm=algorithm)))
    return response.cipher_text


def decrypt_data(client: KmsClient, cipher_text: str, key_id: str | None = None, aad: str | None = None,
                 algorithm: str | None = None):
    return client.decrypt_data(DecryptDataRequest(body=DecryptDataRequestBody(
        cipher_text=cipher_text, key_id=key_id, additional_authenticated_data=aad, encryption_algorithm=algorithm)))


def re_encrypt_request(cipher_text: str, destination_key_id: str | None, **fields: Any) -> ReEncryptRequest:
    return ReEncryptRequest(body=ReEncryptRequestBody(cipher_text=cipher_text, destination_key_id=destination_key_id,
                                                      **fields))


def rsa_pair_request(key_id: str | None, key_spec: str | None, **fields: Any) -> CreateRsaDatakeyPairRequest:
    return CreateRsaDatakeyPairRequest(body=CreateRsaDatakeyPairRequestBody(key_id=key_id, key_spec=key_spec,
                                                                           **fields))


def ec_pair_request(key_id: str | None, key_spec: str | None, **fields: Any) -> CreateEcDatakeyPairRequest:
    return CreateEcDatakeyPairRequest(body=CreateEcDatakeyPairRequestBody(key_id=key_id, key_spec=key_spec, **fields))


def rotations(client: KmsClient, key_id: str) -> int:
    return client.show_key_rotation_status(ShowKeyRotationStatusRequest(body=op(key_id))).number_of_rotations


def resource_instances(client: KmsClient, **fields: Any):
    return client.list_kms_by_tags(ListKmsByTagsRequest(resource_instances="resource_instances",
                                                        body=ListKmsByTagsRequestBody(**fields)))


def check_pair(response: Any, key_id: str, key_spec: str, with_plaintext: bool):
    """Checks a data key pair answer: its fields, and that its private key (when returned) is the private key of its
    public key. Returns the public key."""
    assert (response.key_id, response.key_spec) == (key_id, key_spec)
    public = load_der_public_key(base64.b64decode(response.public_key))
    if key_spec in RSA_PAIRS:
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == RSA_PAIRS[key_spec]
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, EC_PAIRS[key_spec])
    assert base64.b64decode(response.private_key_cipher_text)
    if with_plaintext:
        private = load_der_private_key(base64.b64decode(response.private_key_plain_text), password=None)
        assert public_der(private.public_key()) == public_der(public)
    else:
        assert response.private_key_plain_text is None
    return public


def public_der(public_key: Any) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


class RawOtc:
    """Hand-built requests of the OTC dialect, signed with the SDK's own ``Signer`` (for methods and bodies the
    SDK does not send)."""

    def __init__(self, endpoint: str, project_id: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.host = urllib.parse.urlsplit(endpoint).netloc
        self.project_id = project_id

    def send(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json;charset=utf-8", "X-Project-Id": self.project_id,
                   "X-Sdk-Date": dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")}
        request = SdkRequest(method=method, schema="http", host=self.host,
                             resource_path=f"/v1.0/{self.project_id}/kms/{path}", query_params=[],
                             header_params=headers, body=data)
        Signer(BasicCredentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET, self.project_id)).sign(request)
        return requests.request(method, self.endpoint + request.uri, headers=request.header_params, data=request.body,
                                timeout=30)


def error_of(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["error_code"]


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hw(kmsim: dict[str, Any]) -> KmsClient:
    """Huawei SDK KMS client for the shared server (default account, test/test)."""
    return huawei_client(kmsim["endpoint"], kmsim.get("project_id", ZERO_ID))


@pytest.fixture(scope="module")
def raw_otc(kmsim: dict[str, Any]) -> RawOtc:
    return RawOtc(kmsim["endpoint"], kmsim.get("project_id", ZERO_ID))


@pytest.fixture(scope="module")
def aes_key(hw: KmsClient) -> str:
    return create_key(hw)


# ---- data key pairs ------------------------------------------------------------------------------


@pytest.mark.parametrize("key_spec", list(RSA_PAIRS))
def test_rsa_datakey_pair(hw: KmsClient, kms, aes_key: str, key_spec: str) -> None:
    response = hw.create_rsa_datakey_pair(rsa_pair_request(aes_key, key_spec, additional_authenticated_data="rsa"))
    public = check_pair(response, aes_key, key_spec, with_plaintext=True)
    # The private key ciphertext is encrypt-data's form: decrypt-data gives the PKCS #8 key back, with the AAD.
    decrypted = decrypt_data(hw, response.private_key_cipher_text, aad="rsa")
    assert decrypted.key_id == aes_key
    assert decrypted.plain_text_base64 == response.private_key_plain_text
    # It works as an RSA key: what the public key encrypts, the private key decrypts.
    private = load_der_private_key(base64.b64decode(decrypted.plain_text_base64), password=None)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert private.decrypt(public.encrypt(b"kmsim", oaep), oaep) == b"kmsim"
    # And the AWS dialect decrypts it with the AAD as its encryption context.
    blob = base64.b64decode(response.private_key_cipher_text)
    plain = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"additional_authenticated_data": "rsa"})["Plaintext"]
    assert plain == base64.b64decode(response.private_key_plain_text)


@pytest.mark.parametrize("key_spec", list(EC_PAIRS))
def test_ec_datakey_pair(hw: KmsClient, aes_key: str, key_spec: str) -> None:
    response = hw.create_ec_datakey_pair(ec_pair_request(aes_key, key_spec))
    public = check_pair(response, aes_key, key_spec, with_plaintext=True)
    private = load_der_private_key(base64.b64decode(response.private_key_plain_text), password=None)
    signature = private.sign(b"kmsim", ec.ECDSA(hashes.SHA256()))
    public.verify(signature, b"kmsim", ec.ECDSA(hashes.SHA256()))
    assert decrypt_data(hw, response.private_key_cipher_text).plain_text_base64 == response.private_key_plain_text


def test_datakey_pairs_without_plaintext(hw: KmsClient, kms, aes_key: str) -> None:
    for response, key_spec in [
        (hw.create_rsa_datakey_pair(rsa_pair_request(aes_key, "RSA_2048", with_plain_text=False)), "RSA_2048"),
        (hw.create_ec_datakey_pair(ec_pair_request(aes_key, "ECC_NIST_P256", with_plain_text=False)),
         "ECC_NIST_P256"),
    ]:
        public = check_pair(response, aes_key, key_spec, with_plaintext=False)
        # Only the ciphertext carries the private key, and it is the public key's.
        plain = kms.decrypt(CiphertextBlob=base64.b64decode(response.private_key_cipher_text))["Plaintext"]
        private = load_der_private_key(plain, password=None)
        assert public_der(private.public_key()) == public_der(public)


def test_datakey_pair_bad_input(hw: KmsClient, aes_key: str) -> None:
    sign_key = create_key(hw, key_spec="EC_P256", key_usage="SIGN_VERIFY")
    disabled = create_key(hw)
    hw.disable_key(DisableKeyRequest(body=op(disabled)))
    pending = create_key(hw)
    hw.delete_key(DeleteKeyRequest(body=ScheduleKeyDeletionRequestBody(key_id=pending, pending_days="7")))
    for code, call, request in [
        ("KMS.0204", hw.create_rsa_datakey_pair, rsa_pair_request(None, "RSA_2048")),
        ("KMS.0204", hw.create_ec_datakey_pair, ec_pair_request(aes_key, None)),
        ("KMS.0308", hw.create_rsa_datakey_pair, rsa_pair_request(aes_key, "ECC_NIST_P256")),
        ("KMS.0308", hw.create_ec_datakey_pair, ec_pair_request(aes_key, "RSA_2048")),
        ("KMS.0308", hw.create_ec_datakey_pair, ec_pair_request(aes_key, "EC_P256")),
        ("KMS.0308", hw.create_ec_datakey_pair, ec_pair_request(aes_key, "SM2")),
        ("KMS.0308", hw.create_ec_datakey_pair, ec_pair_request(aes_key, "ECC_NIST_P256", pin="123456")),
        ("KMS.0308", hw.create_ec_datakey_pair, ec_pair_request(sign_key, "ECC_NIST_P256")),
        ("KMS.0209", hw.create_rsa_datakey_pair, rsa_pair_request(disabled, "RSA_2048")),
        ("KMS.0210", hw.create_ec_datakey_pair, ec_pair_request(pending, "ECC_NIST_P256")),
        ("KMS.0207", hw.create_ec_datakey_pair, ec_pair_request(UNKNOWN_KEY, "ECC_NIST_P256")),
        ("KMS.0205", hw.create_ec_datakey_pair, ec_pair_request("not/a/key", "ECC_NIST_P256")),
    ]:
        expect_otc_error(code, call, request)


# ---- re-encrypt ----------------------------------------------------------------------------------


def test_re_encrypt_data_to_another_key_and_context(hw: KmsClient) -> None:
    source, destination = create_key(hw), create_key(hw)
    cipher_text = encrypt_data(hw, source, "move me", aad="old")
    response = hw.re_encrypt(re_encrypt_request(cipher_text, destination, source_key_id=source,
                                                source_additional_authenticated_data="old",
                                                destination_additional_authenticated_data="new"))
    assert (response.key_id, response.source_key_id) == (destination, source)
    assert (response.source_encryption_algorithm, response.destination_encryption_algorithm) == (
        "SYMMETRIC_DEFAULT", "SYMMETRIC_DEFAULT")
    assert response.cipher_text != cipher_text
    decrypted = decrypt_data(hw, response.cipher_text, aad="new")
    assert (decrypted.key_id, decrypted.plain_text) == (destination, "move me")
    # Only under the new context; the old ciphertext is untouched.
    expect_otc_error("KMS.0308", hw.decrypt_data, DecryptDataRequest(body=DecryptDataRequestBody(
        cipher_text=response.cipher_text, additional_authenticated_data="old")))
    assert decrypt_data(hw, cipher_text, aad="old").plain_text == "move me"
    # Without source_key_id, the ciphertext names its key.
    again = hw.re_encrypt(re_encrypt_request(cipher_text, destination, source_additional_authenticated_data="old"))
    assert again.source_key_id == source
    assert decrypt_data(hw, again.cipher_text).plain_text == "move me"


def test_re_encrypt_a_data_key_keeps_it_a_data_key(hw: KmsClient) -> None:
    source, destination = create_key(hw), create_key(hw)
    dek = hw.create_datakey(CreateDatakeyRequest(body=CreateDatakeyRequestBody(key_id=source, datakey_length="256")))
    response = hw.re_encrypt(re_encrypt_request(dek.cipher_text, destination))
    assert response.key_id == destination
    bytes.fromhex(response.cipher_text)  # hex, as the data key verbs take it
    back = hw.decrypt_datakey(DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=destination, cipher_text=response.cipher_text, datakey_cipher_length="32")))
    assert back.data_key == dek.plain_text


def test_re_encrypt_a_ciphertext_of_the_aws_dialect(hw: KmsClient, kms) -> None:
    aws_key = kms.create_key(Description="made by boto3")["KeyMetadata"]["KeyId"]
    otc_key = create_key(hw)
    blob = kms.encrypt(KeyId=aws_key, Plaintext=b"from boto3",
                       EncryptionContext={"additional_authenticated_data": "s3"})["CiphertextBlob"]
    response = hw.re_encrypt(re_encrypt_request(b64(blob), otc_key, source_additional_authenticated_data="s3",
                                                destination_additional_authenticated_data="otc"))
    assert (response.source_key_id, response.key_id) == (aws_key, otc_key)
    assert decrypt_data(hw, response.cipher_text, aad="otc").plain_text == "from boto3"
    back = kms.decrypt(CiphertextBlob=base64.b64decode(response.cipher_text),
                       EncryptionContext={"additional_authenticated_data": "otc"})
    assert back["Plaintext"] == b"from boto3"
    assert back["KeyId"].endswith(otc_key)


def test_re_encrypt_rsa_ciphertexts(hw: KmsClient) -> None:
    rsa_key = create_key(hw, key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT")
    rsa_destination = create_key(hw, key_spec="RSA_3072", key_usage="ENCRYPT_DECRYPT")
    aes = create_key(hw)
    pem = hw.show_public_key(ShowPublicKeyRequest(body=op(rsa_key))).public_key
    public = load_pem_public_key(pem.encode())
    for algorithm, digest in [("RSAES_OAEP_SHA_1", hashes.SHA1()), ("RSAES_OAEP_SHA_256", hashes.SHA256())]:
        # Encrypted outside kmsim with the public key.
        local = public.encrypt(b"rsa secret", padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None))
        response = hw.re_encrypt(re_encrypt_request(b64(local), aes, source_key_id=rsa_key,
                                                    source_encryption_algorithm=algorithm))
        assert (response.source_key_id, response.source_encryption_algorithm) == (rsa_key, algorithm)
        assert decrypt_data(hw, response.cipher_text).plain_text == "rsa secret"
    # From AES to another RSA key.
    symmetric = encrypt_data(hw, aes, "to rsa")
    response = hw.re_encrypt(re_encrypt_request(symmetric, rsa_destination,
                                                destination_encryption_algorithm="RSAES_OAEP_SHA_256"))
    assert response.destination_encryption_algorithm == "RSAES_OAEP_SHA_256"
    decrypted = decrypt_data(hw, response.cipher_text, key_id=rsa_destination, algorithm="RSAES_OAEP_SHA_256")
    assert decrypted.plain_text == "to rsa"
    # An RSA ciphertext needs its key, and one that does not decrypt is KMS.0311.
    cipher = encrypt_data(hw, rsa_key, "x", algorithm="RSAES_OAEP_SHA_256")
    expect_otc_error("KMS.0204", hw.re_encrypt, re_encrypt_request(
        cipher, aes, source_encryption_algorithm="RSAES_OAEP_SHA_256"))
    expect_otc_error("KMS.0311", hw.re_encrypt, re_encrypt_request(
        cipher, aes, source_key_id=rsa_destination, source_encryption_algorithm="RSAES_OAEP_SHA_256"))


def test_re_encrypt_bad_input(hw: KmsClient) -> None:
    source, destination = create_key(hw), create_key(hw)
    sign_key = create_key(hw, key_spec="EC_P256", key_usage="SIGN_VERIFY")
    disabled = create_key(hw)
    hw.disable_key(DisableKeyRequest(body=op(disabled)))
    cipher_text = encrypt_data(hw, source, "keep me", aad="a")
    dek = hw.create_datakey(CreateDatakeyRequest(body=CreateDatakeyRequestBody(key_id=source))).cipher_text
    tampered = bytearray(base64.b64decode(cipher_text))
    tampered[-1] ^= 1
    for code, request in [
        ("KMS.0204", re_encrypt_request(None, destination)),
        ("KMS.0204", re_encrypt_request(cipher_text, None, source_additional_authenticated_data="a")),
        ("KMS.2201", re_encrypt_request("%%%", destination)),
        ("KMS.0308", re_encrypt_request(b64(bytes(tampered)), destination, source_additional_authenticated_data="a")),
        ("KMS.2201", re_encrypt_request(dek[:-2], destination)),
        ("KMS.0308", re_encrypt_request(cipher_text, destination, source_additional_authenticated_data="b")),
        ("KMS.0308", re_encrypt_request(cipher_text, destination)),
        ("KMS.0308", re_encrypt_request(dek, destination, destination_encryption_algorithm="RSAES_OAEP_SHA_256")),
        ("KMS.0308", re_encrypt_request(cipher_text, destination, source_additional_authenticated_data="a",
                                        destination_encryption_algorithm="SM2_ENCRYPT")),
        ("KMS.0308", re_encrypt_request(cipher_text, sign_key, source_additional_authenticated_data="a")),
        ("KMS.0209", re_encrypt_request(cipher_text, disabled, source_additional_authenticated_data="a")),
        ("KMS.0207", re_encrypt_request(cipher_text, UNKNOWN_KEY, source_additional_authenticated_data="a")),
        ("KMS.2202", re_encrypt_request(dek, destination, datakey_cipher_length="2000")),
    ]:
        expect_otc_error(code, hw.re_encrypt, request)
    # A disabled source key does not decrypt.
    hw.disable_key(DisableKeyRequest(body=op(source)))
    expect_otc_error("KMS.0209", hw.re_encrypt, re_encrypt_request(cipher_text, destination,
                                                                   source_additional_authenticated_data="a"))
    hw.enable_key(EnableKeyRequest(body=op(source)))
    assert decrypt_data(hw, cipher_text, aad="a").plain_text == "keep me"


# ---- rotate-on-demand ----------------------------------------------------------------------------


def test_rotate_on_demand(hw: KmsClient, kms) -> None:
    key_id = create_key(hw)
    before = encrypt_data(hw, key_id, "before rotation")
    assert rotations(hw, key_id) == 0
    response = hw.rotate_on_demand(RotateOnDemandRequest(body=RotateOnDemandRequestBody(key_id=key_id)))
    assert response.key_id == key_id
    assert rotations(hw, key_id) == 1
    listed = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [r["RotationType"] for r in listed] == ["ON_DEMAND"]
    # Old ciphertexts still decrypt; new ones are made with the new material, and re-encrypt moves old ones to it.
    assert decrypt_data(hw, before).plain_text == "before rotation"
    after = encrypt_data(hw, key_id, "after rotation")
    assert decrypt_data(hw, after).plain_text == "after rotation"
    moved = hw.re_encrypt(re_encrypt_request(before, key_id)).cipher_text
    assert moved != before and decrypt_data(hw, moved).plain_text == "before rotation"


def test_rotate_on_demand_bad_input_changes_nothing(hw: KmsClient) -> None:
    rotate = hw.rotate_on_demand

    def request(key_id: str | None) -> RotateOnDemandRequest:
        return RotateOnDemandRequest(body=RotateOnDemandRequestBody(key_id=key_id))

    rsa_key = create_key(hw, key_spec="RSA_2048", key_usage="SIGN_VERIFY")
    disabled = create_key(hw)
    hw.disable_key(DisableKeyRequest(body=op(disabled)))
    pending = create_key(hw)
    hw.delete_key(DeleteKeyRequest(body=ScheduleKeyDeletionRequestBody(key_id=pending, pending_days="7")))
    for code, key_id in [("KMS.0204", None), ("KMS.0308", rsa_key), ("KMS.0209", disabled), ("KMS.0210", pending),
                         ("KMS.0207", UNKNOWN_KEY), ("KMS.0205", "bad/key")]:
        expect_otc_error(code, rotate, request(key_id))
    assert rotations(hw, disabled) == 0
    # 25 on-demand rotations per key (the shared core's limit, AWS's); the 26th is refused and changes nothing.
    key_id = create_key(hw)
    for _ in range(25):
        rotate(request(key_id))
    expect_otc_error("KMS.0308", rotate, request(key_id))
    assert rotations(hw, key_id) == 25


# ---- quotas and instances ------------------------------------------------------------------------


def quotas(client: KmsClient) -> dict[str, tuple[int, int]]:
    resources = client.show_user_quotas(ShowUserQuotasRequest()).quotas.resources
    return {r.type: (r.used, r.quota) for r in resources}


def instances(client: KmsClient) -> int:
    return client.show_user_instances(ShowUserInstancesRequest()).instance_num


def test_user_quotas_and_instances_count_the_account_s_keys(fresh_kmsim: KmsimProcess) -> None:
    server = fresh_kmsim
    client = huawei_client(server.endpoint, server.info["project_id"])
    assert quotas(client) == {"CMK": (0, 20), "grant_per_CMK": (0, 100)}
    assert instances(client) == 0
    keys = [create_key(client) for _ in range(3)]
    for grantee in ["alice", "bob"]:
        client.create_grant(CreateGrantRequest(body=CreateGrantRequestBody(
            key_id=keys[0], grantee_principal=grantee, operations=["describe-key"])))
    client.create_grant(CreateGrantRequest(body=CreateGrantRequestBody(
        key_id=keys[1], grantee_principal="carol", operations=["describe-key"])))
    assert quotas(client) == {"CMK": (3, 20), "grant_per_CMK": (2, 100)}
    assert instances(client) == 3
    # A key made in the AWS dialect is the account's too; a key pending deletion still counts.
    server.client().create_key(Description="boto3")
    client.delete_key(DeleteKeyRequest(body=ScheduleKeyDeletionRequestBody(key_id=keys[2], pending_days="7")))
    assert instances(client) == 4
    assert quotas(client)["CMK"] == (4, 20)


def test_user_quotas_and_instances_are_get_only(raw_otc: RawOtc) -> None:
    assert raw_otc.send("GET", "user-quotas").status_code == 200
    assert raw_otc.send("GET", "user-instances").json()["instance_num"] >= 0
    for method, path in [("POST", "user-quotas"), ("POST", "user-instances"), ("GET", "user-quotas/x")]:
        assert error_of(raw_otc.send(method, path, {})) == (404, "APIGW.0101")


# ---- resource_instances --------------------------------------------------------------------------


def test_resource_instances_by_tags_and_name(hw: KmsClient) -> None:
    tag = unique("stage")
    name = unique("ri")
    prod = create_key(hw, alias=f"{name}-prod-db")
    dev = create_key(hw, alias=f"{name}-dev-db")
    web = create_key(hw, alias=f"{name}-prod-web")
    for key_id, value in [(prod, "prod"), (dev, "dev"), (web, "prod")]:
        hw.create_kms_tag(CreateKmsTagRequest(key_id=key_id, body=CreateKmsTagRequestBody(
            tag=TagItem(key=tag, value=value))))

    def found(response: Any) -> set[str]:
        return {r.resource_id for r in response.resources}

    tagged = resource_instances(hw, action="filter", limit="1000", tags=[Tag(key=tag, values=[])])
    assert (found(tagged), tagged.total_count) == ({prod, dev, web}, 3)
    production = resource_instances(hw, action="filter", tags=[Tag(key=tag, values=["prod"])])
    assert found(production) == {prod, web}
    one = next(r for r in production.resources if r.resource_id == prod)
    assert (one.resource_name, one.resource_detail.key_id, one.resource_detail.key_alias) == (
        f"{name}-prod-db", prod, f"{name}-prod-db")
    assert one.resource_detail.key_state == "2"
    assert [(t.key, t.value) for t in one.tags] == [(tag, "prod")]
    named = resource_instances(hw, action="filter", tags=[Tag(key=tag, values=["prod", "dev"])],
                               matches=[TagItem(key="resource_name", value=f"{name}-prod")])
    assert found(named) == {prod, web}
    assert resource_instances(hw, action="count", tags=[Tag(key=tag, values=["dev"])]).total_count == 1
    assert resource_instances(hw, action="count", matches=[TagItem(key="resource_name", value=name)]).total_count == 3
    # Pages: offset and limit over the same order.
    pages = [resource_instances(hw, action="filter", tags=[Tag(key=tag, values=[])], limit="1", offset=str(i))
             for i in range(4)]
    assert [len(p.resources) for p in pages] == [1, 1, 1, 0]
    assert {p.resources[0].resource_id for p in pages[:3]} == {prod, dev, web}
    assert all(p.total_count == 3 for p in pages)


def test_resource_instances_bad_input(hw: KmsClient) -> None:
    call = hw.list_kms_by_tags

    def request(**fields: Any) -> ListKmsByTagsRequest:
        return ListKmsByTagsRequest(resource_instances="resource_instances", body=ListKmsByTagsRequestBody(**fields))

    for code, fields in [
        ("KMS.0204", {}),
        ("KMS.0404", {"action": "list"}),
        ("KMS.1601", {"action": "filter", "limit": "0"}),
        ("KMS.1601", {"action": "filter", "limit": "1001"}),
        ("KMS.0417", {"action": "filter", "offset": "-1"}),
        ("KMS.0406", {"action": "filter", "tags": [Tag(key="", values=[])]}),
        ("KMS.0406", {"action": "filter", "tags": [Tag(key="k" * 37, values=[])]}),
        ("KMS.0405", {"action": "filter", "tags": [Tag(key="k", values=["v" * 44])]}),
        ("KMS.0403", {"action": "filter", "matches": [TagItem(key="key_id", value="x")]}),
        ("KMS.0402", {"action": "filter", "matches": [TagItem(key="resource_name", value="")]}),
    ]:
        expect_otc_error(code, call, request(**fields))


# ---- audit ---------------------------------------------------------------------------------------


def test_the_new_verbs_are_audited(hw: KmsClient, admin) -> None:
    key_id, other = create_key(hw), create_key(hw)
    hw.create_ec_datakey_pair(ec_pair_request(key_id, "ECC_NIST_P256", additional_authenticated_data="pair"))
    cipher_text = encrypt_data(hw, key_id, "audited")
    hw.re_encrypt(re_encrypt_request(cipher_text, other, destination_additional_authenticated_data="to"))
    hw.rotate_on_demand(RotateOnDemandRequest(body=RotateOnDemandRequestBody(key_id=key_id)))
    hw.disable_key(DisableKeyRequest(body=op(key_id)))
    expect_otc_error("KMS.0209", hw.rotate_on_demand, RotateOnDemandRequest(body=RotateOnDemandRequestBody(
        key_id=key_id)))
    events = [e for e in admin.audit(key=key_id) if e["dialect"] == "otc"]
    assert [(e["operation"], e["outcome"]) for e in events] == [
        ("create-key", "Success"), ("create-ec-datakey-pair", "Success"), ("encrypt-data", "Success"),
        ("rotate-on-demand", "Success"), ("disable-key", "Success"), ("rotate-on-demand", "KMS.0209")]
    assert events[1]["encryption_context"] == {"additional_authenticated_data": "pair"}
    moved = admin.audit(key=other, operation="re-encrypt")
    assert [(e["outcome"], e["encryption_context"]) for e in moved] == [
        ("Success", {"additional_authenticated_data": "to"})]
    hw.show_user_quotas(ShowUserQuotasRequest())
    assert admin.audit(operation="user-quotas")[-1]["outcome"] == "Success"
