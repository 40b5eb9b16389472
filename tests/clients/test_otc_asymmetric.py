"""kmsim's asymmetric and HMAC keys in the OTC / Huawei Cloud KMS dialect, through ``huaweicloudsdkkms``.

Every verb goes through Huawei's own SDK (``KmsClient``: create-key with ``key_spec`` / ``key_usage``,
describe-key and list-keys, sign, verify (``validate_signature``), get-publickey (``show_public_key``),
encrypt-data / decrypt-data with RSA keys, generate-mac, verify-mac); what the SDK hides (the JSON types
of ``signature_valid`` and ``mac_valid``, the CRLF lines of the PEM) is read from hand-signed requests.

Signatures are checked outside kmsim with ``cryptography`` against the PEM from get-publickey, RSA
ciphertexts made locally from that PEM decrypt through decrypt-data, and keys cross dialects: the OTC key id
is the same key's id in the AWS dialect of the same account and region (boto3's ``kms`` fixture), so a key
made in one dialect signs, verifies, MACs and decrypts in the other.

Wire facts come from the OTC KMS API reference (opentelekomcloud-docs/key-management-service,
``api-ref/source/apis/key_management_service``) and Huawei's DEW reference: ``message`` base64 and
``message_type`` DIGEST by default; ``signature`` base64; ``signature_valid`` the string "true"/"false";
``mac`` hex and ``mac_valid`` a JSON boolean; ``public_key`` PEM with CRLF line ends; encrypt-data's
``encryption_algorithm`` SYMMETRIC_DEFAULT or RSAES_OAEP_SHA_256; KMS.0311 when an RSA ciphertext does not
decrypt; KMS.0308 for any other invalid parameter (wrong usage, algorithm, key spec).

RSA keys are slow to make, so each (key_spec, key_usage) pair is created once per module by ``key_of``
and shared by the tests that only use it; tests that change a key create their own.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import urllib.parse
import uuid
from typing import Any, Callable

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkkms.v2 import (
    CreateDatakeyRequest,
    CreateDatakeyRequestBody,
    CreateKeyRequest,
    CreateKeyRequestBody,
    DecryptDataRequest,
    DecryptDataRequestBody,
    DeleteKeyRequest,
    DeriveSharedSecretRequest,
    DeriveSharedSecretRequestBody,
    DisableKeyRequest,
    DisableKeyRotationRequest,
    EnableKeyRequest,
    EnableKeyRotationRequest,
    EncryptDataRequest,
    EncryptDataRequestBody,
    GenerateMacRequest,
    GenerateMacRequestBody,
    KmsClient,
    ListKeyDetailRequest,
    ListKeysRequest,
    ListKeysRequestBody,
    OperateKeyRequestBody,
    ScheduleKeyDeletionRequestBody,
    ShowKeyRotationStatusRequest,
    ShowPublicKeyRequest,
    SignRequest,
    SignRequestBody,
    UpdateKeyRotationIntervalRequest,
    UpdateKeyRotationIntervalRequestBody,
    ValidateSignatureRequest,
    VerifyMacRequest,
    VerifyMacRequestBody,
    VerifyRequestBody,
)

from conftest import DEFAULT_ACCESS_KEY, DEFAULT_SECRET, unique
from conftest import expect_otc_error
from conftest import huawei_kms_client as huawei_client

ZERO_ID = "0" * 32
MESSAGE = b"kmsim signs this through the OTC dialect"

# ---- what the API reference documents -------------------------------------------------------------

# key_spec → the usages create-key allows, the first being the default (Huawei's CreateKey reference).
KEY_USAGES = {
    "AES_256": ["ENCRYPT_DECRYPT"],
    "RSA_2048": ["SIGN_VERIFY", "ENCRYPT_DECRYPT"],
    "RSA_3072": ["SIGN_VERIFY", "ENCRYPT_DECRYPT"],
    "RSA_4096": ["SIGN_VERIFY", "ENCRYPT_DECRYPT"],
    "EC_P256": ["SIGN_VERIFY", "KEY_AGREEMENT"],
    "EC_P384": ["SIGN_VERIFY", "KEY_AGREEMENT"],
    "SECP256K1": ["SIGN_VERIFY"],
    "HMAC_256": ["GENERATE_VERIFY_MAC"],
    "HMAC_384": ["GENERATE_VERIFY_MAC"],
    "HMAC_512": ["GENERATE_VERIFY_MAC"],
}
# The same specs in the AWS dialect.
AWS_KEY_SPECS = {
    "AES_256": "SYMMETRIC_DEFAULT", "RSA_2048": "RSA_2048", "RSA_3072": "RSA_3072", "RSA_4096": "RSA_4096",
    "EC_P256": "ECC_NIST_P256", "EC_P384": "ECC_NIST_P384", "SECP256K1": "ECC_SECG_P256K1",
    "HMAC_256": "HMAC_256", "HMAC_384": "HMAC_384", "HMAC_512": "HMAC_512",
}
RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
EC_CURVES = {"EC_P256": ec.SECP256R1, "EC_P384": ec.SECP384R1, "SECP256K1": ec.SECP256K1}
RSA_SIGNING_ALGORITHMS = [
    "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
]
# Each signing key spec with the algorithms it signs with.
SIGNING_CASES = (
    [("RSA_2048", a) for a in RSA_SIGNING_ALGORITHMS]
    + [("RSA_3072", "RSASSA_PSS_SHA_384"), ("RSA_4096", "RSASSA_PKCS1_V1_5_SHA_512")]
    + [("EC_P256", "ECDSA_SHA_256"), ("EC_P384", "ECDSA_SHA_384"), ("SECP256K1", "ECDSA_SHA_256")]
)
MAC_ALGORITHMS = {"HMAC_256": "HMAC_SHA_256", "HMAC_384": "HMAC_SHA_384", "HMAC_512": "HMAC_SHA_512"}
# RSAES_OAEP_SHA_256: k - 2*32 - 2 bytes.
OAEP_SHA256_LIMITS = {"RSA_2048": 190, "RSA_3072": 318, "RSA_4096": 446}


def hash_of(algorithm: str) -> hashes.HashAlgorithm:
    return {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[algorithm[-3:]]


def digest_of(algorithm: str, message: bytes) -> bytes:
    return hashlib.new("sha" + algorithm[-3:], message).digest()


# ---- helpers -------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def op(key_id: str) -> OperateKeyRequestBody:
    return OperateKeyRequestBody(key_id=key_id)


def create_key(client: KmsClient, key_spec: str | None = None, key_usage: str | None = None) -> str:
    body = CreateKeyRequestBody(key_alias=unique("otc-asym"), key_spec=key_spec, key_usage=key_usage)
    return client.create_key(CreateKeyRequest(body=body)).key_info.key_id


def describe(client: KmsClient, key_id: str):
    return client.list_key_detail(ListKeyDetailRequest(body=op(key_id))).key_info


def sign(client: KmsClient, key_id: str, algorithm: str, message: bytes, message_type: str | None = None) -> bytes:
    body = SignRequestBody(key_id=key_id, message=b64(message), signing_algorithm=algorithm, message_type=message_type)
    response = client.sign(SignRequest(body=body))
    assert response.key_id == key_id
    return base64.b64decode(response.signature)


def sign_request(key_id: str, algorithm: str, message: bytes | str, message_type: str | None = "RAW") -> SignRequest:
    text = message if isinstance(message, str) else b64(message)
    return SignRequest(body=SignRequestBody(key_id=key_id, message=text, signing_algorithm=algorithm,
                                            message_type=message_type))


def verify(client: KmsClient, key_id: str, algorithm: str, message: bytes, signature: bytes | str,
           message_type: str | None = None) -> str:
    """verify's ``signature_valid``: "true" or "false"."""
    text = signature if isinstance(signature, str) else b64(signature)
    body = VerifyRequestBody(key_id=key_id, message=b64(message), signature=text, signing_algorithm=algorithm,
                             message_type=message_type)
    response = client.validate_signature(ValidateSignatureRequest(body=body))
    assert response.key_id == key_id
    return response.signature_valid


def public_key_pem(client: KmsClient, key_id: str) -> str:
    response = client.show_public_key(ShowPublicKeyRequest(body=op(key_id)))
    assert response.key_id == key_id
    return response.public_key


def verify_locally(pem: str, algorithm: str, message: bytes, signature: bytes, prehashed: bool = False) -> None:
    """Verifies a signature of ``message`` (or of its digest, ``prehashed``) with ``cryptography`` and the PEM
    public key (raises InvalidSignature): RSA PSS with MGF1 over the same hash and a salt as long as the
    digest, PKCS#1 v1.5, or a DER ECDSA signature."""
    public_key = load_pem_public_key(pem.encode())
    h = hash_of(algorithm)
    chosen: Any = utils.Prehashed(h) if prehashed else h
    if algorithm.startswith("RSASSA_PSS_"):
        assert isinstance(public_key, rsa.RSAPublicKey)
        public_key.verify(signature, message, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), chosen)
    elif algorithm.startswith("RSASSA_PKCS1_V1_5_"):
        assert isinstance(public_key, rsa.RSAPublicKey)
        public_key.verify(signature, message, padding.PKCS1v15(), chosen)
    else:
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        public_key.verify(signature, message, ec.ECDSA(chosen))


def generate_mac(client: KmsClient, key_id: str, algorithm: str, message: bytes) -> str:
    response = client.generate_mac(GenerateMacRequest(body=GenerateMacRequestBody(
        key_id=key_id, mac_algorithm=algorithm, message=b64(message))))
    assert (response.key_id, response.mac_algorithm) == (key_id, algorithm)
    return response.mac


def verify_mac(client: KmsClient, key_id: str, algorithm: str, message: bytes, mac: str) -> bool:
    response = client.verify_mac(VerifyMacRequest(body=VerifyMacRequestBody(
        key_id=key_id, mac_algorithm=algorithm, message=b64(message), mac=mac)))
    assert (response.key_id, response.mac_algorithm) == (key_id, algorithm)
    return response.mac_valid


def encrypt_data(client: KmsClient, key_id: str, plain_text: str, algorithm: str | None = "RSAES_OAEP_SHA_256",
                 aad: str | None = None) -> str:
    response = client.encrypt_data(EncryptDataRequest(body=EncryptDataRequestBody(
        key_id=key_id, plain_text=plain_text, encryption_algorithm=algorithm, additional_authenticated_data=aad)))
    assert response.key_id == key_id
    return response.cipher_text


def decrypt_request(cipher_text: str, key_id: str | None, algorithm: str | None = "RSAES_OAEP_SHA_256"):
    return DecryptDataRequest(body=DecryptDataRequestBody(cipher_text=cipher_text, key_id=key_id,
                                                          encryption_algorithm=algorithm))


class RawOtc:
    """Hand-built requests of the OTC dialect, signed with the SDK's own ``Signer``."""

    def __init__(self, endpoint: str, project_id: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.host = urllib.parse.urlsplit(endpoint).netloc
        self.project_id = project_id

    def send(self, verb: str, body: dict) -> requests.Response:
        headers = {"Content-Type": "application/json;charset=utf-8", "X-Project-Id": self.project_id,
                   "X-Sdk-Date": dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")}
        request = SdkRequest(method="POST", schema="http", host=self.host,
                             resource_path=f"/v1.0/{self.project_id}/kms/{verb}", query_params=[],
                             header_params=headers, body=json.dumps(body).encode())
        Signer(BasicCredentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET, self.project_id)).sign(request)
        return requests.post(self.endpoint + request.uri, headers=request.header_params, data=request.body,
                             timeout=30)


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hw(kmsim: dict[str, Any]) -> KmsClient:
    """Huawei SDK KMS client for the shared server (default account, test/test)."""
    return huawei_client(kmsim["endpoint"], kmsim.get("project_id", ZERO_ID))


@pytest.fixture(scope="module")
def raw_otc(kmsim: dict[str, Any]) -> RawOtc:
    return RawOtc(kmsim["endpoint"], kmsim.get("project_id", ZERO_ID))


@pytest.fixture(scope="module")
def key_of(hw: KmsClient) -> Callable[[str, str | None], str]:
    """``key_of(key_spec, key_usage=None)``: a key of that kind made through create-key, once per module."""
    keys: dict[tuple[str, str | None], str] = {}

    def get(key_spec: str, key_usage: str | None = None) -> str:
        if (key_spec, key_usage) not in keys:
            keys[(key_spec, key_usage)] = create_key(hw, key_spec, key_usage)
        return keys[(key_spec, key_usage)]

    return get


# ---- create-key and the key details ----------------------------------------------------------------


@pytest.mark.parametrize("key_spec,key_usage", [(spec, usage) for spec, usages in KEY_USAGES.items()
                                                for usage in [None, *usages]])
def test_create_key_shows_its_spec_and_usage(hw: KmsClient, kms, key_of, key_spec: str, key_usage: str | None) -> None:
    key_id = key_of(key_spec, key_usage)
    expected_usage = key_usage or KEY_USAGES[key_spec][0]
    info = describe(hw, key_id)
    assert (info.key_spec, info.key_usage, info.key_state, info.origin) == (key_spec, expected_usage, "2", "kms")
    # The same key in the AWS dialect.
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (metadata["KeySpec"], metadata["KeyUsage"]) == (AWS_KEY_SPECS[key_spec], expected_usage)


def test_list_keys_details_show_spec_and_usage(hw: KmsClient, key_of) -> None:
    expected = {key_of(spec): (spec, KEY_USAGES[spec][0]) for spec in ("AES_256", "EC_P384", "HMAC_512")}
    listed = hw.list_keys(ListKeysRequest(body=ListKeysRequestBody(limit="1000")))
    details = {d.key_id: (d.key_spec, d.key_usage) for d in listed.key_details if d.key_id in expected}
    assert details == expected


@pytest.mark.parametrize("key_spec,key_usage,fragment", [
    ("HMAC_256", "SIGN_VERIFY", "not valid for key_spec HMAC_256"),
    ("EC_P256", "ENCRYPT_DECRYPT", "not valid for key_spec EC_P256"),
    ("AES_256", "SIGN_VERIFY", "not valid for key_spec AES_256"),
    ("RSA_2048", "GENERATE_VERIFY_MAC", "not valid for key_spec RSA_2048"),
    ("SECP256K1", "KEY_AGREEMENT", "not valid for key_spec SECP256K1"),
    ("EC_P256", "KEY_EXCHANGE", "Invalid key_usage KEY_EXCHANGE"),
    ("RSA_1024", None, "Invalid key_spec RSA_1024"),
    ("ECC_NIST_P256", None, "Invalid key_spec ECC_NIST_P256"),
    ("SM2", None, "kmsim does not simulate SM2"),
    ("SM4", None, "kmsim does not simulate SM4"),
    ("HMAC_SM3", None, "kmsim does not simulate HMAC_SM3"),
])
def test_create_key_refuses_what_the_api_refuses(hw: KmsClient, key_spec: str, key_usage: str | None,
                                                 fragment: str) -> None:
    alias = unique("otc-refused")
    body = CreateKeyRequestBody(key_alias=alias, key_spec=key_spec, key_usage=key_usage)
    error = expect_otc_error("KMS.0308", hw.create_key, CreateKeyRequest(body=body))
    assert fragment in error.error_msg
    # Nothing was made: the alias is still free.
    key_id = hw.create_key(CreateKeyRequest(body=CreateKeyRequestBody(key_alias=alias))).key_info.key_id
    assert describe(hw, key_id).key_alias == alias


# ---- derive-shared-secret --------------------------------------------------------------------------

def derive(client: KmsClient, key_id: str, public_key_der: bytes, algorithm: str = "ECDH") -> bytes:
    body = DeriveSharedSecretRequestBody(key_id=key_id, key_agreement_algorithm=algorithm,
                                         public_key=b64(public_key_der))
    answer = client.derive_shared_secret(DeriveSharedSecretRequest(body=body))
    assert (answer.key_id, answer.key_agreement_algorithm) == (key_id, "ECDH")
    return base64.b64decode(answer.shared_secret)


@pytest.mark.parametrize("key_spec", ["EC_P256", "EC_P384"])
def test_derive_shared_secret_matches_local_ecdh(hw: KmsClient, kms, key_of, key_spec: str) -> None:
    # Huawei's DeriveSharedSecret: "仅支持key_usage为KEY_AGREEMENT的密钥"; public_key the peer's DER X.509, base64.
    key_id = key_of(key_spec, "KEY_AGREEMENT")
    peer = ec.generate_private_key(EC_CURVES[key_spec]())
    peer_der = peer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    secret = derive(hw, key_id, peer_der)
    kms_public = load_pem_public_key(public_key_pem(hw, key_id).encode())
    assert secret == peer.exchange(ec.ECDH(), kms_public)
    # The same key in the AWS dialect derives the same secret.
    aws = kms.derive_shared_secret(KeyId=key_id, KeyAgreementAlgorithm="ECDH", PublicKey=peer_der)
    assert aws["SharedSecret"] == secret


def test_derive_shared_secret_refuses_bad_input(hw: KmsClient, key_of) -> None:
    key_id = key_of("EC_P256", "KEY_AGREEMENT")
    peer_der = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    other_curve = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    signing_key = key_of("EC_P256", None)

    def request(**fields: Any) -> DeriveSharedSecretRequest:
        body = dict(key_id=key_id, key_agreement_algorithm="ECDH", public_key=b64(peer_der)) | fields
        return DeriveSharedSecretRequest(body=DeriveSharedSecretRequestBody(**body))

    expect_otc_error("KMS.0308", hw.derive_shared_secret, request(key_agreement_algorithm="DH"))
    expect_otc_error("KMS.0308", hw.derive_shared_secret, request(public_key="not base64!"))
    expect_otc_error("KMS.0308", hw.derive_shared_secret, request(public_key=b64(other_curve)))
    expect_otc_error("KMS.0308", hw.derive_shared_secret, request(key_id=signing_key))
    expect_otc_error("KMS.0308", hw.derive_shared_secret,
                     request(recipient={"attestation_document": "e30=", "key_encryption_algorithm": "RSAES_OAEP_SHA_256"}))


# ---- sign, verify, get-publickey -------------------------------------------------------------------


@pytest.mark.parametrize("key_spec,algorithm", SIGNING_CASES)
def test_sign_raw_and_digest_verify_in_kms_and_locally(hw: KmsClient, key_of, key_spec: str, algorithm: str) -> None:
    key_id = key_of(key_spec)
    pem = public_key_pem(hw, key_id)

    raw = sign(hw, key_id, algorithm, MESSAGE, "RAW")
    verify_locally(pem, algorithm, MESSAGE, raw)
    assert verify(hw, key_id, algorithm, MESSAGE, raw, "RAW") == "true"

    # DIGEST is the default message type: the message is the digest of the algorithm's hash.
    digest = digest_of(algorithm, MESSAGE)
    signed_digest = sign(hw, key_id, algorithm, digest)
    verify_locally(pem, algorithm, digest, signed_digest, prehashed=True)
    verify_locally(pem, algorithm, MESSAGE, signed_digest)
    assert verify(hw, key_id, algorithm, digest, signed_digest) == "true"
    assert verify(hw, key_id, algorithm, digest, signed_digest, "DIGEST") == "true"
    # A signature of the raw message verifies against its digest, and the other way round.
    assert verify(hw, key_id, algorithm, digest, raw, "DIGEST") == "true"
    assert verify(hw, key_id, algorithm, MESSAGE, signed_digest, "RAW") == "true"


@pytest.mark.parametrize("key_spec,key_usage", [("RSA_2048", None), ("RSA_3072", "ENCRYPT_DECRYPT"),
                                                ("RSA_4096", None), ("EC_P256", None), ("EC_P384", None),
                                                ("SECP256K1", None)])
def test_get_publickey_is_pem_of_the_key(hw: KmsClient, kms, key_of, key_spec: str, key_usage: str | None) -> None:
    key_id = key_of(key_spec, key_usage)
    pem = public_key_pem(hw, key_id)
    lines = pem.split("\r\n")
    assert lines[0] == "-----BEGIN PUBLIC KEY-----" and lines[-2:] == ["-----END PUBLIC KEY-----", ""], pem
    assert all(0 < len(line) <= 64 for line in lines[1:-2]), pem
    public_key = load_pem_public_key(pem.encode())
    if key_spec in RSA_BITS:
        assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == RSA_BITS[key_spec]
    else:
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert isinstance(public_key.curve, EC_CURVES[key_spec])
    # The AWS dialect hands out the same key, as DER.
    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert kms.get_public_key(KeyId=key_id)["PublicKey"] == der


@pytest.mark.parametrize("key_spec", ["AES_256", "HMAC_256"])
def test_get_publickey_of_a_key_without_one(hw: KmsClient, key_of, key_spec: str) -> None:
    error = expect_otc_error("KMS.0308", hw.show_public_key, ShowPublicKeyRequest(body=op(key_of(key_spec))))
    assert "no public key" in error.error_msg


def test_verify_answers_false_for_a_wrong_signature(hw: KmsClient, key_of) -> None:
    for key_spec, algorithm in [("RSA_2048", "RSASSA_PSS_SHA_256"), ("EC_P256", "ECDSA_SHA_256")]:
        key_id = key_of(key_spec)
        signature = sign(hw, key_id, algorithm, MESSAGE, "RAW")
        assert verify(hw, key_id, algorithm, MESSAGE, signature, "RAW") == "true"
        tampered = bytearray(signature)
        tampered[len(tampered) // 2] ^= 0x01
        assert verify(hw, key_id, algorithm, MESSAGE, bytes(tampered), "RAW") == "false"
        assert verify(hw, key_id, algorithm, MESSAGE + b"!", signature, "RAW") == "false"
        assert verify(hw, key_id, algorithm, MESSAGE, signature[:-1], "RAW") == "false"
        # Another key of the same kind made none of these.
        assert verify(hw, key_of(key_spec, "SIGN_VERIFY"), algorithm, MESSAGE, signature, "RAW") == "false"
    # PSS and PKCS#1 v1.5 are not interchangeable.
    key_id = key_of("RSA_2048")
    pss = sign(hw, key_id, "RSASSA_PSS_SHA_256", MESSAGE, "RAW")
    assert verify(hw, key_id, "RSASSA_PKCS1_V1_5_SHA_256", MESSAGE, pss, "RAW") == "false"


def test_sign_and_verify_refuse_bad_input(hw: KmsClient, key_of) -> None:
    rsa_key, ec_key = key_of("RSA_2048"), key_of("EC_P256")

    # The wrong usage: an RSA encryption key, an AES key, an HMAC key.
    for key_id in (key_of("RSA_2048", "ENCRYPT_DECRYPT"), key_of("AES_256"), key_of("HMAC_256")):
        error = expect_otc_error("KMS.0308", hw.sign, sign_request(key_id, "RSASSA_PSS_SHA_256", MESSAGE))
        assert "not valid for Sign" in error.error_msg
    # The wrong algorithm for the key, an unknown one, one kmsim does not simulate.
    for key_id, algorithm in [(rsa_key, "ECDSA_SHA_256"), (ec_key, "ECDSA_SHA_384"), (ec_key, "RSASSA_PSS_SHA_256")]:
        error = expect_otc_error("KMS.0308", hw.sign, sign_request(key_id, algorithm, MESSAGE))
        assert f"Algorithm {algorithm} is incompatible" in error.error_msg
    error = expect_otc_error("KMS.0308", hw.sign, sign_request(rsa_key, "RSASSA_PSS_SHA_1024", MESSAGE))
    assert "Invalid signing_algorithm RSASSA_PSS_SHA_1024" in error.error_msg
    error = expect_otc_error("KMS.0308", hw.sign, sign_request(ec_key, "SM2DSA_SM3", MESSAGE))
    assert "kmsim does not simulate SM2DSA_SM3" in error.error_msg

    # DIGEST (the default) wants a digest of the algorithm's length.
    expect_otc_error("KMS.0308", hw.sign, sign_request(ec_key, "ECDSA_SHA_256", MESSAGE, None))
    expect_otc_error("KMS.0308", hw.sign, sign_request(ec_key, "ECDSA_SHA_256", bytes(48), "DIGEST"))
    expect_otc_error("KMS.0308", hw.sign, sign_request(ec_key, "ECDSA_SHA_256", MESSAGE, "HASHED"))

    # 4096 bytes of message are fine, 4097 are not.
    largest = bytes(range(256)) * 16
    sign(hw, ec_key, "ECDSA_SHA_256", largest, "RAW")
    error = expect_otc_error("KMS.0203", hw.sign, sign_request(ec_key, "ECDSA_SHA_256", largest + b"x"))
    assert "4096" in error.error_msg
    expect_otc_error("KMS.0203", hw.validate_signature, ValidateSignatureRequest(body=VerifyRequestBody(
        key_id=ec_key, message=b64(largest + b"x"), signature=b64(b"sig"), signing_algorithm="ECDSA_SHA_256",
        message_type="RAW")))

    # Not base64; missing fields; a key that does not exist.
    expect_otc_error("KMS.0308", hw.sign, sign_request(ec_key, "ECDSA_SHA_256", "not base64!"))
    expect_otc_error("KMS.0204", hw.sign, sign_request(ec_key, "ECDSA_SHA_256", ""))
    expect_otc_error("KMS.0204", hw.sign, SignRequest(body=SignRequestBody(key_id=ec_key, message=b64(MESSAGE),
                                                                            message_type="RAW")))
    expect_otc_error("KMS.0207", hw.sign, sign_request(str(uuid.uuid4()), "ECDSA_SHA_256", MESSAGE))
    expect_otc_error("KMS.0308", hw.validate_signature, ValidateSignatureRequest(body=VerifyRequestBody(
        key_id=ec_key, message=b64(MESSAGE), signature="%%%", signing_algorithm="ECDSA_SHA_256",
        message_type="RAW")))
    expect_otc_error("KMS.0204", hw.validate_signature, ValidateSignatureRequest(body=VerifyRequestBody(
        key_id=ec_key, message=b64(MESSAGE), signing_algorithm="ECDSA_SHA_256", message_type="RAW")))
    # Verify with the wrong usage is an error too, not "false".
    expect_otc_error("KMS.0308", hw.validate_signature, ValidateSignatureRequest(body=VerifyRequestBody(
        key_id=key_of("AES_256"), message=b64(MESSAGE), signature=b64(b"sig"), signing_algorithm="ECDSA_SHA_256",
        message_type="RAW")))


# ---- encrypt-data and decrypt-data with RSA keys -----------------------------------------------------


@pytest.mark.parametrize("key_spec", ["RSA_2048", "RSA_3072", "RSA_4096"])
def test_rsa_encrypt_data_round_trips_at_its_limit(hw: KmsClient, key_of, key_spec: str) -> None:
    key_id = key_of(key_spec, "ENCRYPT_DECRYPT")
    limit = OAEP_SHA256_LIMITS[key_spec]
    for plain_text in ["hello world!", "x" * limit]:
        cipher_text = encrypt_data(hw, key_id, plain_text)
        assert len(base64.b64decode(cipher_text)) == RSA_BITS[key_spec] // 8
        decrypted = hw.decrypt_data(decrypt_request(cipher_text, key_id))
        assert (decrypted.key_id, decrypted.plain_text) == (key_id, plain_text)
        assert base64.b64decode(decrypted.plain_text_base64) == plain_text.encode()
    error = expect_otc_error("KMS.0308", hw.encrypt_data, EncryptDataRequest(body=EncryptDataRequestBody(
        key_id=key_id, plain_text="x" * (limit + 1), encryption_algorithm="RSAES_OAEP_SHA_256")))
    assert str(limit) in error.error_msg


def test_ciphertext_made_locally_from_the_public_key_decrypts(hw: KmsClient, key_of) -> None:
    """Huawei's best practice "RSA Asymmetric Data Encryption and Decryption": the sender encrypts with the
    public key (RSA/ECB/OAEPWithSHA-256AndMGF1Padding), the receiver calls decrypt-data."""
    key_id = key_of("RSA_3072", "ENCRYPT_DECRYPT")
    public_key = load_pem_public_key(public_key_pem(hw, key_id).encode())
    assert isinstance(public_key, rsa.RSAPublicKey)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    cipher_text = b64(public_key.encrypt("sensitive data: ключ".encode(), oaep))
    decrypted = hw.decrypt_data(decrypt_request(cipher_text, key_id))
    assert decrypted.plain_text == "sensitive data: ключ"


def test_rsa_encryption_refuses_bad_input(hw: KmsClient, key_of) -> None:
    key_id = key_of("RSA_2048", "ENCRYPT_DECRYPT")
    # SYMMETRIC_DEFAULT (the default) does not fit an RSA key; OAEP with SHA-1 and SM2 are not in the API.
    for algorithm, fragment in [(None, "SYMMETRIC_DEFAULT is incompatible"),
                                ("RSAES_OAEP_SHA_1", "Invalid encryption_algorithm RSAES_OAEP_SHA_1"),
                                ("SM2_ENCRYPT", "kmsim does not simulate SM2_ENCRYPT")]:
        error = expect_otc_error("KMS.0308", hw.encrypt_data, EncryptDataRequest(body=EncryptDataRequestBody(
            key_id=key_id, plain_text="x", encryption_algorithm=algorithm)))
        assert fragment in error.error_msg
    # No AAD with RSA; no RSA algorithm with an AES key; no encryption with a signing key.
    expect_otc_error("KMS.0308", hw.encrypt_data, EncryptDataRequest(body=EncryptDataRequestBody(
        key_id=key_id, plain_text="x", encryption_algorithm="RSAES_OAEP_SHA_256", additional_authenticated_data="a")))
    expect_otc_error("KMS.0308", hw.encrypt_data, EncryptDataRequest(body=EncryptDataRequestBody(
        key_id=key_of("AES_256"), plain_text="x", encryption_algorithm="RSAES_OAEP_SHA_256")))
    expect_otc_error("KMS.0308", hw.encrypt_data, EncryptDataRequest(body=EncryptDataRequestBody(
        key_id=key_of("RSA_2048"), plain_text="x", encryption_algorithm="RSAES_OAEP_SHA_256")))
    # Data keys need an AES key.
    expect_otc_error("KMS.0308", hw.create_datakey, CreateDatakeyRequest(body=CreateDatakeyRequestBody(
        key_id=key_id, key_spec="AES_256")))

    cipher_text = encrypt_data(hw, key_id, "secret")
    # An RSA ciphertext names no key: decrypt-data needs key_id.
    expect_otc_error("KMS.0204", hw.decrypt_data, decrypt_request(cipher_text, None))
    # Tampered, or under another key of the same kind: KMS.0311.
    tampered = bytearray(base64.b64decode(cipher_text))
    tampered[10] ^= 0x01
    error = expect_otc_error("KMS.0311", hw.decrypt_data, decrypt_request(b64(bytes(tampered)), key_id))
    assert error.error_msg
    other = create_key(hw, "RSA_2048", "ENCRYPT_DECRYPT")
    expect_otc_error("KMS.0311", hw.decrypt_data, decrypt_request(cipher_text, other))
    # Decrypted as a symmetric ciphertext it is no kmsim blob.
    expect_otc_error("KMS.0308", hw.decrypt_data, decrypt_request(cipher_text, None, None))
    assert hw.decrypt_data(decrypt_request(cipher_text, key_id)).plain_text == "secret"


# ---- generate-mac and verify-mac --------------------------------------------------------------------


@pytest.mark.parametrize("key_spec", list(MAC_ALGORITHMS))
def test_generate_and_verify_mac(hw: KmsClient, kms, key_of, key_spec: str) -> None:
    key_id, algorithm = key_of(key_spec), MAC_ALGORITHMS[key_spec]
    mac = generate_mac(hw, key_id, algorithm, MESSAGE)
    assert len(mac) == 2 * (int(algorithm[-3:]) // 8) and int(mac, 16) >= 0, mac
    assert generate_mac(hw, key_id, algorithm, MESSAGE) == mac
    assert verify_mac(hw, key_id, algorithm, MESSAGE, mac) is True
    assert verify_mac(hw, key_id, algorithm, MESSAGE + b"!", mac) is False
    flipped = f"{int(mac[0], 16) ^ 1:x}" + mac[1:]
    assert verify_mac(hw, key_id, algorithm, MESSAGE, flipped) is False
    assert verify_mac(hw, key_id, algorithm, MESSAGE, mac[:-2]) is False
    # The AWS dialect computes the same HMAC with the same key.
    aws = kms.generate_mac(KeyId=key_id, MacAlgorithm=algorithm, Message=MESSAGE)
    assert aws["Mac"].hex() == mac


def test_mac_refuses_bad_input(hw: KmsClient, key_of) -> None:
    key_id = key_of("HMAC_256")

    def generate(key: str, algorithm: str, message: str) -> GenerateMacRequest:
        return GenerateMacRequest(body=GenerateMacRequestBody(key_id=key, mac_algorithm=algorithm, message=message))

    error = expect_otc_error("KMS.0308", hw.generate_mac, generate(key_id, "HMAC_SHA_384", b64(MESSAGE)))
    assert "HMAC_SHA_384 is incompatible" in error.error_msg
    error = expect_otc_error("KMS.0308", hw.generate_mac, generate(key_id, "HMAC_SM3", b64(MESSAGE)))
    assert "kmsim does not simulate HMAC_SM3" in error.error_msg
    expect_otc_error("KMS.0308", hw.generate_mac, generate(key_id, "HMAC_MD5", b64(MESSAGE)))
    for other in (key_of("AES_256"), key_of("EC_P256")):
        error = expect_otc_error("KMS.0308", hw.generate_mac, generate(other, "HMAC_SHA_256", b64(MESSAGE)))
        assert "not valid for GenerateMac" in error.error_msg
    expect_otc_error("KMS.0203", hw.generate_mac, generate(key_id, "HMAC_SHA_256", b64(bytes(4097))))
    generate_mac(hw, key_id, "HMAC_SHA_256", bytes(4096))
    expect_otc_error("KMS.0308", hw.generate_mac, generate(key_id, "HMAC_SHA_256", "*not base64*"))
    expect_otc_error("KMS.0204", hw.generate_mac, GenerateMacRequest(body=GenerateMacRequestBody(
        key_id=key_id, message=b64(MESSAGE))))
    # verify-mac: the MAC is hex, as generate-mac answers it.
    mac = generate_mac(hw, key_id, "HMAC_SHA_256", MESSAGE)
    expect_otc_error("KMS.0308", hw.verify_mac, VerifyMacRequest(body=VerifyMacRequestBody(
        key_id=key_id, mac_algorithm="HMAC_SHA_256", message=b64(MESSAGE), mac=b64(bytes.fromhex(mac)))))
    expect_otc_error("KMS.0308", hw.verify_mac, VerifyMacRequest(body=VerifyMacRequestBody(
        key_id=key_id, mac_algorithm="HMAC_SHA_512", message=b64(MESSAGE), mac=mac)))


# ---- key states and rotation ---------------------------------------------------------------------------


def test_disabled_and_pending_deletion_keys_refuse_every_verb(hw: KmsClient) -> None:
    sign_key = create_key(hw, "EC_P256")
    mac_key = create_key(hw, "HMAC_256")
    rsa_key = create_key(hw, "RSA_2048", "ENCRYPT_DECRYPT")
    signature = sign(hw, sign_key, "ECDSA_SHA_256", MESSAGE, "RAW")
    mac = generate_mac(hw, mac_key, "HMAC_SHA_256", MESSAGE)
    cipher_text = encrypt_data(hw, rsa_key, "secret")

    def every_verb_answers(code: str) -> None:
        expect_otc_error(code, hw.sign, sign_request(sign_key, "ECDSA_SHA_256", MESSAGE))
        expect_otc_error(code, hw.validate_signature, ValidateSignatureRequest(body=VerifyRequestBody(
            key_id=sign_key, message=b64(MESSAGE), signature=b64(signature), signing_algorithm="ECDSA_SHA_256",
            message_type="RAW")))
        expect_otc_error(code, hw.show_public_key, ShowPublicKeyRequest(body=op(sign_key)))
        expect_otc_error(code, hw.generate_mac, GenerateMacRequest(body=GenerateMacRequestBody(
            key_id=mac_key, mac_algorithm="HMAC_SHA_256", message=b64(MESSAGE))))
        expect_otc_error(code, hw.verify_mac, VerifyMacRequest(body=VerifyMacRequestBody(
            key_id=mac_key, mac_algorithm="HMAC_SHA_256", message=b64(MESSAGE), mac=mac)))
        expect_otc_error(code, hw.encrypt_data, EncryptDataRequest(body=EncryptDataRequestBody(
            key_id=rsa_key, plain_text="x", encryption_algorithm="RSAES_OAEP_SHA_256")))
        expect_otc_error(code, hw.decrypt_data, decrypt_request(cipher_text, rsa_key))

    for key_id in (sign_key, mac_key, rsa_key):
        hw.disable_key(DisableKeyRequest(body=op(key_id)))
    every_verb_answers("KMS.0209")
    for key_id in (sign_key, mac_key, rsa_key):
        hw.enable_key(EnableKeyRequest(body=op(key_id)))
    assert verify(hw, sign_key, "ECDSA_SHA_256", MESSAGE, signature, "RAW") == "true"
    assert verify_mac(hw, mac_key, "HMAC_SHA_256", MESSAGE, mac) is True
    assert hw.decrypt_data(decrypt_request(cipher_text, rsa_key)).plain_text == "secret"

    for key_id in (sign_key, mac_key, rsa_key):
        hw.delete_key(DeleteKeyRequest(body=ScheduleKeyDeletionRequestBody(key_id=key_id, pending_days="7")))
    every_verb_answers("KMS.0210")


@pytest.mark.parametrize("key_spec,key_usage", [("RSA_2048", None), ("EC_P256", None), ("HMAC_256", None),
                                                ("RSA_2048", "ENCRYPT_DECRYPT")])
def test_only_aes_keys_rotate(hw: KmsClient, key_of, key_spec: str, key_usage: str | None) -> None:
    key_id = key_of(key_spec, key_usage)
    for call, request in [
        (hw.enable_key_rotation, EnableKeyRotationRequest(body=op(key_id))),
        (hw.disable_key_rotation, DisableKeyRotationRequest(body=op(key_id))),
        (hw.update_key_rotation_interval, UpdateKeyRotationIntervalRequest(body=UpdateKeyRotationIntervalRequestBody(
            key_id=key_id, rotation_interval=90))),
    ]:
        error = expect_otc_error("KMS.0308", call, request)
        assert "only symmetric encryption KMS keys support key rotation" in error.error_msg
    status = hw.show_key_rotation_status(ShowKeyRotationStatusRequest(body=op(key_id)))
    assert status.key_rotation_enabled is False


# ---- across dialects ------------------------------------------------------------------------------------


def test_otc_key_signs_in_one_dialect_and_verifies_in_the_other(hw: KmsClient, kms) -> None:
    key_id = create_key(hw, "EC_P256")
    digest = hashlib.sha256(MESSAGE).digest()
    # OTC signs (DIGEST by default), AWS verifies.
    signature = sign(hw, key_id, "ECDSA_SHA_256", digest)
    verified = kms.verify(KeyId=key_id, Message=digest, MessageType="DIGEST", Signature=signature,
                          SigningAlgorithm="ECDSA_SHA_256")
    assert verified["SignatureValid"] is True and verified["KeyId"].endswith(f"key/{key_id}")
    # AWS signs (RAW), OTC verifies.
    aws_signature = kms.sign(KeyId=key_id, Message=MESSAGE, MessageType="RAW",
                             SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    assert verify(hw, key_id, "ECDSA_SHA_256", MESSAGE, aws_signature, "RAW") == "true"
    verify_locally(public_key_pem(hw, key_id), "ECDSA_SHA_256", MESSAGE, aws_signature)


def test_aws_keys_work_through_the_otc_dialect(hw: KmsClient, kms) -> None:
    # An RSA signing key made by boto3: OTC shows it, signs with it, AWS verifies.
    rsa_key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    info = describe(hw, rsa_key)
    assert (info.key_spec, info.key_usage) == ("RSA_2048", "SIGN_VERIFY")
    signature = sign(hw, rsa_key, "RSASSA_PSS_SHA_512", MESSAGE, "RAW")
    assert kms.verify(KeyId=rsa_key, Message=MESSAGE, MessageType="RAW", Signature=signature,
                      SigningAlgorithm="RSASSA_PSS_SHA_512")["SignatureValid"] is True

    # A P-521 key, which only the AWS dialect makes, keeps its AWS name and signs with ECDSA_SHA_512.
    p521 = kms.create_key(KeySpec="ECC_NIST_P521", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    assert describe(hw, p521).key_spec == "ECC_NIST_P521"
    signature = sign(hw, p521, "ECDSA_SHA_512", MESSAGE, "RAW")
    verify_locally(public_key_pem(hw, p521), "ECDSA_SHA_512", MESSAGE, signature)

    # HMAC_224, also AWS only: OTC MACs with HMAC_SHA_224, AWS verifies.
    hmac_key = kms.create_key(KeySpec="HMAC_224", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    assert (describe(hw, hmac_key).key_spec, describe(hw, hmac_key).key_usage) == ("HMAC_224", "GENERATE_VERIFY_MAC")
    mac = generate_mac(hw, hmac_key, "HMAC_SHA_224", MESSAGE)
    assert kms.verify_mac(KeyId=hmac_key, MacAlgorithm="HMAC_SHA_224", Message=MESSAGE,
                          Mac=bytes.fromhex(mac))["MacValid"] is True
    aws_mac = kms.generate_mac(KeyId=hmac_key, MacAlgorithm="HMAC_SHA_224", Message=b"from aws")["Mac"]
    assert verify_mac(hw, hmac_key, "HMAC_SHA_224", b"from aws", aws_mac.hex()) is True

    # An RSA encryption key: AWS encrypts, OTC decrypts, and back.
    enc_key = kms.create_key(KeySpec="RSA_4096", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=enc_key, Plaintext=b"from aws", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    decrypted = hw.decrypt_data(decrypt_request(b64(blob["CiphertextBlob"]), enc_key))
    assert (decrypted.key_id, decrypted.plain_text) == (enc_key, "from aws")
    cipher_text = encrypt_data(hw, enc_key, "from otc")
    back = kms.decrypt(KeyId=enc_key, CiphertextBlob=base64.b64decode(cipher_text),
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert back["Plaintext"] == b"from otc"

    # A key agreement key shows its usage, and signs nothing.
    ecdh = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]["KeyId"]
    assert (describe(hw, ecdh).key_spec, describe(hw, ecdh).key_usage) == ("EC_P256", "KEY_AGREEMENT")
    expect_otc_error("KMS.0308", hw.sign, sign_request(ecdh, "ECDSA_SHA_256", MESSAGE))
    assert "-----BEGIN PUBLIC KEY-----" in public_key_pem(hw, ecdh)


# ---- the wire ---------------------------------------------------------------------------------------------


def test_raw_wire_shapes(hw: KmsClient, raw_otc: RawOtc, key_of) -> None:
    """What the SDK hides: ``signature_valid`` is a string, ``mac_valid`` a JSON boolean, the PEM's lines end
    in CRLF, and each answer has exactly the reference's fields."""
    sign_key, mac_key = key_of("EC_P384"), key_of("HMAC_384")
    digest = hashlib.sha384(MESSAGE).digest()
    signed = raw_otc.send("sign", {"key_id": sign_key, "message": b64(digest), "signing_algorithm": "ECDSA_SHA_384"})
    assert signed.status_code == 200 and signed.headers.get("X-Request-Id"), signed.text
    assert set(signed.json()) == {"key_id", "signature"}
    request = {"key_id": sign_key, "message": b64(digest), "signing_algorithm": "ECDSA_SHA_384",
               "signature": signed.json()["signature"]}
    assert raw_otc.send("verify", request).json() == {"key_id": sign_key, "signature_valid": "true"}
    request["message"] = b64(hashlib.sha384(b"another message").digest())
    assert raw_otc.send("verify", request).json() == {"key_id": sign_key, "signature_valid": "false"}

    public = raw_otc.send("get-publickey", {"key_id": sign_key}).json()
    assert set(public) == {"key_id", "public_key"}
    assert public["public_key"].startswith("-----BEGIN PUBLIC KEY-----\r\n")
    assert public["public_key"].endswith("\r\n-----END PUBLIC KEY-----\r\n")

    mac = raw_otc.send("generate-mac", {"key_id": mac_key, "mac_algorithm": "HMAC_SHA_384", "message": b64(MESSAGE)})
    assert set(mac.json()) == {"key_id", "mac_algorithm", "mac"}
    request = {"key_id": mac_key, "mac_algorithm": "HMAC_SHA_384", "message": b64(MESSAGE), "mac": mac.json()["mac"]}
    assert raw_otc.send("verify-mac", request).json() == {"key_id": mac_key, "mac_algorithm": "HMAC_SHA_384",
                                                          "mac_valid": True}
    request["mac"] = "00" * 48
    assert raw_otc.send("verify-mac", request).json()["mac_valid"] is False

    error = raw_otc.send("sign", {"key_id": sign_key, "message": b64(MESSAGE), "signing_algorithm": "ECDSA_SHA_384",
                                  "message_type": "RAW", "extra": 1})
    assert error.status_code == 200
    error = raw_otc.send("sign", {"key_id": sign_key, "message": 42, "signing_algorithm": "ECDSA_SHA_384"})
    assert error.status_code == 400 and error.json()["error"]["error_code"] == "KMS.0308"


def test_audit_log_names_the_verbs(hw: KmsClient, admin, key_of) -> None:
    key_id = create_key(hw, "EC_P256")
    signature = sign(hw, key_id, "ECDSA_SHA_256", MESSAGE, "RAW")
    verify(hw, key_id, "ECDSA_SHA_256", MESSAGE, signature, "RAW")
    verify(hw, key_id, "ECDSA_SHA_256", MESSAGE + b"!", signature, "RAW")
    public_key_pem(hw, key_id)
    expect_otc_error("KMS.0308", hw.sign, sign_request(key_id, "ECDSA_SHA_384", MESSAGE))
    events = [e for e in admin.audit(key=key_id) if e["dialect"] == "otc"]
    assert [(e["operation"], e["outcome"]) for e in events] == [
        ("create-key", "Success"), ("sign", "Success"), ("verify", "Success"), ("verify", "Success"),
        ("get-publickey", "Success"), ("sign", "KMS.0308"),
    ], events
