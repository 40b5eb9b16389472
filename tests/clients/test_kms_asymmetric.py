"""kmsim's asymmetric, HMAC and key-agreement KMS keys through boto3, checked outside KMS.

Everything KMS hands out is checked with tools that know nothing of kmsim: signatures from Sign are
verified by KMS Verify and also by ``cryptography``, the ``openssl`` command line and PyJWT with the
public key from GetPublicKey; RSA ciphertexts made locally from that public key decrypt in KMS; data key
pairs load in ``cryptography`` and their public halves match; ECDH shared secrets equal a local exchange.

Expected values come from the AWS KMS API reference (botocore's service model and its examples: the
algorithm lists and their order, the plaintext limits of RSA encryption) and from AWS's recorded answers
where the reference names no error (quoted next to the tests that rely on them).

Keys are slow to make (RSA_4096 above all), so each (KeySpec, KeyUsage) pair is created once per module
by the ``key_of`` cache and shared by the tests that only use it; a test that changes a key (disables
it) or needs a second key of a kind creates its own.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from typing import Any, Callable

import jwt
import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import load_der_private_key, load_der_public_key

# aws CLI v1 exits with 255 for an error returned by the service.
CLI_SERVICE_ERROR = 255

# ---- what AWS documents for each kind of key ----------------------------------------------------

RSA_SPECS = ("RSA_2048", "RSA_3072", "RSA_4096")
RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
# The order of AWS's DescribeKey example for an RSA signing key and of its CreateKey example for an RSA
# encryption key (the API reference's examples, botocore's examples-1.json).
RSA_SIGNING_ALGORITHMS = [
    "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
    "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
]
RSA_ENCRYPTION_ALGORITHMS = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
ECC_SIGNING_ALGORITHMS = {
    "ECC_NIST_P256": ["ECDSA_SHA_256"],
    "ECC_NIST_P384": ["ECDSA_SHA_384"],
    "ECC_NIST_P521": ["ECDSA_SHA_512"],
    "ECC_SECG_P256K1": ["ECDSA_SHA_256"],
}
ECC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}
HMAC_SPECS = {"HMAC_224": ("HMAC_SHA_224", 28), "HMAC_256": ("HMAC_SHA_256", 32),
              "HMAC_384": ("HMAC_SHA_384", 48), "HMAC_512": ("HMAC_SHA_512", 64)}
SIGNING_ALGORITHMS = {**{spec: RSA_SIGNING_ALGORITHMS for spec in RSA_SPECS}, **ECC_SIGNING_ALGORITHMS}
KEY_AGREEMENT_SPECS = ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521")

# Every (KeySpec, KeyUsage) pair CreateKey accepts, apart from SYMMETRIC_DEFAULT.
ALLOWED_PAIRS = (
    [(spec, usage) for spec in RSA_SPECS for usage in ("ENCRYPT_DECRYPT", "SIGN_VERIFY")]
    + [(spec, usage) for spec in KEY_AGREEMENT_SPECS for usage in ("SIGN_VERIFY", "KEY_AGREEMENT")]
    + [("ECC_SECG_P256K1", "SIGN_VERIFY")]
    + [(spec, "GENERATE_VERIFY_MAC") for spec in HMAC_SPECS]
)
ASYMMETRIC_PAIRS = [(spec, usage) for spec, usage in ALLOWED_PAIRS if usage != "GENERATE_VERIFY_MAC"]
ALGORITHM_LISTS = ("EncryptionAlgorithms", "SigningAlgorithms", "MacAlgorithms", "KeyAgreementAlgorithms")

# Encrypt's plaintext limits, from the Encrypt page of the API reference.
RSA_PLAINTEXT_LIMITS = {
    ("RSA_2048", "RSAES_OAEP_SHA_1"): 214, ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
    ("RSA_3072", "RSAES_OAEP_SHA_1"): 342, ("RSA_3072", "RSAES_OAEP_SHA_256"): 318,
    ("RSA_4096", "RSAES_OAEP_SHA_1"): 470, ("RSA_4096", "RSAES_OAEP_SHA_256"): 446,
}


def expected_algorithm_lists(spec: str, usage: str) -> dict[str, list[str]]:
    """The one algorithm list DescribeKey and GetPublicKey show for a key; the others are absent."""
    if usage == "ENCRYPT_DECRYPT":
        return {"EncryptionAlgorithms": RSA_ENCRYPTION_ALGORITHMS}
    if usage == "SIGN_VERIFY":
        return {"SigningAlgorithms": SIGNING_ALGORITHMS[spec]}
    if usage == "GENERATE_VERIFY_MAC":
        return {"MacAlgorithms": [HMAC_SPECS[spec][0]]}
    assert usage == "KEY_AGREEMENT"
    return {"KeyAgreementAlgorithms": ["ECDH"]}


def assert_algorithm_lists(answer: dict, spec: str, usage: str) -> None:
    expected = expected_algorithm_lists(spec, usage)
    for field in ALGORITHM_LISTS:
        if field in expected:
            assert answer.get(field) == expected[field], (field, answer.get(field))
        else:
            assert field not in answer, f"{field} shown for a {spec} {usage} key: {answer[field]}"


# ---- helpers -------------------------------------------------------------------------------------


def expect_error(code: str, call: Callable[..., Any], /, **params: Any) -> dict:
    """Calls ``call(**params)``, asserts that it fails with the KMS error ``code`` (HTTP 400, as the
    real service sends every client error) and returns the error (``Code`` and ``Message``)."""
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    assert response["Error"]["Code"] == code, f"expected {code}, got {response['Error']}"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400, response["ResponseMetadata"]
    return response["Error"]


def hash_for(algorithm: str) -> hashes.HashAlgorithm:
    """The hash a KMS signing algorithm uses: its name ends in SHA_256, SHA_384 or SHA_512."""
    return {"SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}[algorithm[-7:]]()


def digest(algorithm: str, message: bytes) -> bytes:
    h = hashes.Hash(hash_for(algorithm))
    h.update(message)
    return h.finalize()


def verify_locally(public_key_der: bytes, algorithm: str, message: bytes, signature: bytes) -> None:
    """Verifies a KMS signature of ``message`` with ``cryptography`` (raises InvalidSignature): RSA PSS
    with MGF1 over the same hash and a salt as long as the digest, PKCS#1 v1.5, or a DER ECDSA
    signature."""
    public_key = load_der_public_key(public_key_der)
    h = hash_for(algorithm)
    if algorithm.startswith("RSASSA_PSS_"):
        assert isinstance(public_key, rsa.RSAPublicKey)
        public_key.verify(signature, message, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    elif algorithm.startswith("RSASSA_PKCS1_V1_5_"):
        assert isinstance(public_key, rsa.RSAPublicKey)
        public_key.verify(signature, message, padding.PKCS1v15(), h)
    else:
        assert algorithm.startswith("ECDSA_")
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        public_key.verify(signature, message, ec.ECDSA(h))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_to_raw_ecdsa(signature: bytes, curve: ec.EllipticCurve) -> bytes:
    """A DER ECDSA signature (what KMS returns) as the fixed-size r || s that JWS wants (RFC 7518 3.4)."""
    r, s = utils.decode_dss_signature(signature)
    size = (curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def spki_der(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def principal(kmsim: dict, name: str) -> str:
    return f"arn:aws:iam::{kmsim['account_id']}:user/{name}"


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key_of(kms) -> Callable[[str, str], dict]:
    """``key_of(spec, usage)``: the CreateKey metadata of this module's key of that kind, created on
    first use."""
    made: dict[tuple[str, str], dict] = {}

    def get(spec: str, usage: str) -> dict:
        if (spec, usage) not in made:
            made[(spec, usage)] = kms.create_key(KeySpec=spec, KeyUsage=usage,
                                                 Description=f"asymmetric tests {spec} {usage}")["KeyMetadata"]
        return made[(spec, usage)]

    return get


@pytest.fixture(scope="module")
def public_key_of(kms, key_of) -> Callable[[str, str], bytes]:
    """``public_key_of(spec, usage)``: the DER SubjectPublicKeyInfo of ``key_of(spec, usage)``."""
    fetched: dict[tuple[str, str], bytes] = {}

    def get(spec: str, usage: str) -> bytes:
        if (spec, usage) not in fetched:
            fetched[(spec, usage)] = kms.get_public_key(KeyId=key_of(spec, usage)["KeyId"])["PublicKey"]
        return fetched[(spec, usage)]

    return get


@pytest.fixture(scope="module")
def symmetric_key(kms) -> dict:
    return kms.create_key(Description="asymmetric tests: symmetric key")["KeyMetadata"]


# ---- 1. CreateKey and DescribeKey ----------------------------------------------------------------


@pytest.mark.parametrize("spec,usage", ALLOWED_PAIRS, ids=[f"{s}-{u}" for s, u in ALLOWED_PAIRS])
def test_create_key_metadata_and_algorithm_lists(kms, key_of, spec, usage):
    created = key_of(spec, usage)
    described = kms.describe_key(KeyId=created["KeyId"])["KeyMetadata"]
    for meta in (created, described):
        assert meta["KeySpec"] == spec
        assert meta["CustomerMasterKeySpec"] == spec
        assert meta["KeyUsage"] == usage
        assert meta["KeyState"] == "Enabled"
        assert meta["Enabled"] is True
        assert meta["Origin"] == "AWS_KMS"
        assert meta["KeyManager"] == "CUSTOMER"
        assert meta["Description"] == f"asymmetric tests {spec} {usage}"
        assert_algorithm_lists(meta, spec, usage)
    assert described["Arn"] == created["Arn"]


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_SECG_P256K1", "HMAC_256"])
def test_key_spec_without_key_usage_is_refused(kms, spec):
    # AWS (recorded): "You must specify a KeyUsage value for all KMS keys except for symmetric
    # encryption keys."
    expect_error("ValidationException", kms.create_key, KeySpec=spec)


INCOMPATIBLE_PAIRS = [
    ("ECC_SECG_P256K1", "KEY_AGREEMENT"), ("ECC_SECG_P256K1", "ENCRYPT_DECRYPT"),
    ("HMAC_256", "SIGN_VERIFY"), ("HMAC_512", "ENCRYPT_DECRYPT"),
    ("RSA_2048", "GENERATE_VERIFY_MAC"), ("RSA_3072", "KEY_AGREEMENT"),
    ("ECC_NIST_P256", "ENCRYPT_DECRYPT"), ("ECC_NIST_P384", "GENERATE_VERIFY_MAC"),
    ("SYMMETRIC_DEFAULT", "SIGN_VERIFY"), ("SYMMETRIC_DEFAULT", "GENERATE_VERIFY_MAC"),
    ("SYMMETRIC_DEFAULT", "KEY_AGREEMENT"),
]


@pytest.mark.parametrize("spec,usage", INCOMPATIBLE_PAIRS, ids=[f"{s}-{u}" for s, u in INCOMPATIBLE_PAIRS])
def test_incompatible_key_spec_and_usage_are_refused(kms, spec, usage):
    expect_error("ValidationException", kms.create_key, KeySpec=spec, KeyUsage=usage)


def test_deprecated_customer_master_key_spec_is_accepted(kms):
    meta = kms.create_key(CustomerMasterKeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert meta["KeySpec"] == "RSA_2048"
    assert meta["CustomerMasterKeySpec"] == "RSA_2048"
    assert meta["SigningAlgorithms"] == RSA_SIGNING_ALGORITHMS
    described = kms.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]
    assert (described["KeySpec"], described["CustomerMasterKeySpec"], described["KeyUsage"]) == (
        "RSA_2048", "RSA_2048", "SIGN_VERIFY")
    public_key = load_der_public_key(kms.get_public_key(KeyId=meta["KeyId"])["PublicKey"])
    assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 2048


def test_key_spec_and_customer_master_key_spec_together_are_refused(kms):
    # Even with the same value: only one of the two may be given.
    expect_error("ValidationException", kms.create_key, KeySpec="ECC_NIST_P256",
                 CustomerMasterKeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    expect_error("ValidationException", kms.create_key, KeySpec="ECC_NIST_P256",
                 CustomerMasterKeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")


ROTATION_REFUSED = [("RSA_2048", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "SIGN_VERIFY"),
                    ("ECC_NIST_P256", "KEY_AGREEMENT"), ("HMAC_256", "GENERATE_VERIFY_MAC")]


@pytest.mark.parametrize("spec,usage", ROTATION_REFUSED, ids=[f"{s}-{u}" for s, u in ROTATION_REFUSED])
def test_automatic_rotation_is_unsupported(kms, key_of, spec, usage):
    key = key_of(spec, usage)
    expect_error("UnsupportedOperationException", kms.enable_key_rotation, KeyId=key["KeyId"])
    expect_error("UnsupportedOperationException", kms.enable_key_rotation, KeyId=key["KeyId"],
                 RotationPeriodInDays=90)
    expect_error("UnsupportedOperationException", kms.disable_key_rotation, KeyId=key["KeyId"])
    # GetKeyRotationStatus answers (false) for these keys, as AWS does today (Terraform reads it for every key).
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False


@pytest.mark.parametrize("spec,usage", ROTATION_REFUSED, ids=[f"{s}-{u}" for s, u in ROTATION_REFUSED])
def test_on_demand_rotation_is_unsupported(kms, key_of, spec, usage):
    key = key_of(spec, usage)
    expect_error("UnsupportedOperationException", kms.rotate_key_on_demand, KeyId=key["KeyId"])


# ---- 3. Sign and Verify --------------------------------------------------------------------------

SIGN_CASES = [(spec, algorithm) for spec, algorithms in SIGNING_ALGORITHMS.items() for algorithm in algorithms]


@pytest.mark.parametrize("message_type", ["RAW", "DIGEST"])
@pytest.mark.parametrize("spec,algorithm", SIGN_CASES, ids=[f"{s}-{a}" for s, a in SIGN_CASES])
def test_sign_and_verify(kms, key_of, public_key_of, spec, algorithm, message_type):
    key = key_of(spec, "SIGN_VERIFY")
    message = b"kmsim signs this: " + os.urandom(64)
    message_digest = digest(algorithm, message)
    payload = message if message_type == "RAW" else message_digest

    signed = kms.sign(KeyId=key["KeyId"], Message=payload, MessageType=message_type, SigningAlgorithm=algorithm)
    assert signed["KeyId"] == key["Arn"]
    assert signed["SigningAlgorithm"] == algorithm
    signature = signed["Signature"]
    if spec in RSA_BITS:
        assert len(signature) == RSA_BITS[spec] // 8

    verified = kms.verify(KeyId=key["KeyId"], Message=payload, MessageType=message_type,
                          Signature=signature, SigningAlgorithm=algorithm)
    assert verified["SignatureValid"] is True
    assert verified["KeyId"] == key["Arn"]
    assert verified["SigningAlgorithm"] == algorithm
    # "A message and its hash digest are considered to be the same message": Verify takes either form.
    assert kms.verify(KeyId=key["KeyId"], Message=message, MessageType="RAW", Signature=signature,
                      SigningAlgorithm=algorithm)["SignatureValid"] is True
    assert kms.verify(KeyId=key["KeyId"], Message=message_digest, MessageType="DIGEST", Signature=signature,
                      SigningAlgorithm=algorithm)["SignatureValid"] is True

    # Outside KMS, with the public key from GetPublicKey: a signature of the digest is one of the message.
    verify_locally(public_key_of(spec, "SIGN_VERIFY"), algorithm, message, signature)


def test_pkcs1_signatures_are_deterministic(kms, key_of):
    key = key_of("RSA_2048", "SIGN_VERIFY")
    message = b"PKCS#1 v1.5 has no randomness"
    algorithm = "RSASSA_PKCS1_V1_5_SHA_384"
    raw = [kms.sign(KeyId=key["KeyId"], Message=message, MessageType="RAW", SigningAlgorithm=algorithm)["Signature"]
           for _ in range(2)]
    from_digest = kms.sign(KeyId=key["KeyId"], Message=digest(algorithm, message), MessageType="DIGEST",
                           SigningAlgorithm=algorithm)["Signature"]
    assert raw[0] == raw[1] == from_digest


def test_message_type_defaults_to_raw_and_key_id_takes_an_alias(kms, key_of, public_key_of):
    key = key_of("ECC_NIST_P384", "SIGN_VERIFY")
    alias = f"alias/asym-{uuid.uuid4().hex[:12]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    message = b"no MessageType given"
    signed = kms.sign(KeyId=alias, Message=message, SigningAlgorithm="ECDSA_SHA_384")
    assert signed["KeyId"] == key["Arn"]
    verify_locally(public_key_of("ECC_NIST_P384", "SIGN_VERIFY"), "ECDSA_SHA_384", message, signed["Signature"])
    assert kms.verify(KeyId=alias, Message=message, Signature=signed["Signature"],
                      SigningAlgorithm="ECDSA_SHA_384")["SignatureValid"] is True


OPENSSL_CASES = [("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"), ("RSA_3072", "RSASSA_PSS_SHA_512"),
                 ("ECC_NIST_P256", "ECDSA_SHA_256"), ("ECC_SECG_P256K1", "ECDSA_SHA_256")]


@pytest.mark.parametrize("spec,algorithm", OPENSSL_CASES, ids=[f"{s}-{a}" for s, a in OPENSSL_CASES])
def test_signature_verifies_with_the_openssl_command_line(kms, key_of, public_key_of, tmp_path, spec, algorithm):
    key = key_of(spec, "SIGN_VERIFY")
    message = b"checked by openssl dgst -verify\n" + os.urandom(32)
    signature = kms.sign(KeyId=key["KeyId"], Message=message, MessageType="RAW",
                         SigningAlgorithm=algorithm)["Signature"]
    (tmp_path / "public.der").write_bytes(public_key_of(spec, "SIGN_VERIFY"))
    (tmp_path / "message").write_bytes(message)
    (tmp_path / "tampered").write_bytes(flip_last_byte(message))
    (tmp_path / "signature").write_bytes(signature)
    # openssl itself turns the DER SubjectPublicKeyInfo into PEM.
    subprocess.run(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", "public.der", "-out", "public.pem"],
                   cwd=tmp_path, check=True, capture_output=True)
    options = []
    if algorithm.startswith("RSASSA_PSS_"):
        # Salt length -1: as long as the digest.
        options = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1"]
    md = "-sha" + algorithm[-3:]

    def openssl_verify(message_file: str) -> subprocess.CompletedProcess:
        return subprocess.run(["openssl", "dgst", md, *options, "-verify", "public.pem", "-signature", "signature",
                               message_file], cwd=tmp_path, capture_output=True, text=True)

    good = openssl_verify("message")
    assert good.returncode == 0 and "Verified OK" in good.stdout, good
    bad = openssl_verify("tampered")
    assert bad.returncode != 0 and "Verification failure" in bad.stdout, bad


@pytest.mark.parametrize("spec,algorithm,other_algorithm", [
    ("RSA_2048", "RSASSA_PSS_SHA_256", "RSASSA_PKCS1_V1_5_SHA_256"),
    ("ECC_NIST_P256", "ECDSA_SHA_256", None),
])
def test_verify_refuses_tampered_signature_and_message(kms, key_of, public_key_of, spec, algorithm,
                                                      other_algorithm):
    key = key_of(spec, "SIGN_VERIFY")
    message = b"the original message"
    signature = kms.sign(KeyId=key["KeyId"], Message=message, MessageType="RAW",
                         SigningAlgorithm=algorithm)["Signature"]
    verify = dict(KeyId=key["KeyId"], MessageType="RAW", SigningAlgorithm=algorithm)
    # The last byte of a DER ECDSA signature is inside s: flipping it keeps the DER well-formed.
    expect_error("KMSInvalidSignatureException", kms.verify, Message=message, Signature=flip_last_byte(signature),
                 **verify)
    expect_error("KMSInvalidSignatureException", kms.verify, Message=b"the originaL message", Signature=signature,
                 **verify)
    # A digest of another message, given as DIGEST.
    expect_error("KMSInvalidSignatureException", kms.verify, KeyId=key["KeyId"], MessageType="DIGEST",
                 SigningAlgorithm=algorithm, Message=digest(algorithm, b"another message"), Signature=signature)
    if other_algorithm:
        expect_error("KMSInvalidSignatureException", kms.verify, KeyId=key["KeyId"], MessageType="RAW",
                     SigningAlgorithm=other_algorithm, Message=message, Signature=signature)
    # The untouched signature still verifies, in KMS and outside; outside, the tampered one does not either.
    assert kms.verify(Message=message, Signature=signature, **verify)["SignatureValid"] is True
    verify_locally(public_key_of(spec, "SIGN_VERIFY"), algorithm, message, signature)
    with pytest.raises(InvalidSignature):
        verify_locally(public_key_of(spec, "SIGN_VERIFY"), algorithm, message, flip_last_byte(signature))


def test_signature_of_another_key_does_not_verify(kms, key_of):
    other = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    message = b"signed by the other key"
    signature = kms.sign(KeyId=other["KeyId"], Message=message, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    expect_error("KMSInvalidSignatureException", kms.verify, KeyId=key_of("ECC_NIST_P256", "SIGN_VERIFY")["KeyId"],
                 Message=message, Signature=signature, SigningAlgorithm="ECDSA_SHA_256")


INCOMPATIBLE_ALGORITHMS = [
    ("ECC_NIST_P256", "ECDSA_SHA_384"), ("ECC_NIST_P256", "RSASSA_PSS_SHA_256"),
    ("ECC_NIST_P384", "ECDSA_SHA_256"), ("ECC_NIST_P521", "ECDSA_SHA_384"),
    ("ECC_SECG_P256K1", "ECDSA_SHA_512"), ("RSA_2048", "ECDSA_SHA_256"),
]


@pytest.mark.parametrize("spec,algorithm", INCOMPATIBLE_ALGORITHMS,
                         ids=[f"{s}-{a}" for s, a in INCOMPATIBLE_ALGORITHMS])
def test_algorithm_incompatible_with_the_key_spec(kms, key_of, spec, algorithm):
    key = key_of(spec, "SIGN_VERIFY")
    message = f"Algorithm {algorithm} is incompatible with key spec {spec}."
    error = expect_error("InvalidKeyUsageException", kms.sign, KeyId=key["KeyId"], Message=b"m",
                         MessageType="RAW", SigningAlgorithm=algorithm)
    assert error["Message"] == message
    error = expect_error("InvalidKeyUsageException", kms.verify, KeyId=key["KeyId"], Message=b"m",
                         MessageType="RAW", Signature=b"\x30" * 64, SigningAlgorithm=algorithm)
    assert error["Message"] == message


def test_sign_with_an_encrypt_decrypt_key_is_refused(kms, key_of, symmetric_key):
    for key in (key_of("RSA_2048", "ENCRYPT_DECRYPT"), symmetric_key):
        error = expect_error("InvalidKeyUsageException", kms.sign, KeyId=key["KeyId"], Message=b"m",
                             MessageType="RAW", SigningAlgorithm="RSASSA_PSS_SHA_256")
        assert "key usage is ENCRYPT_DECRYPT which is not valid for Sign" in error["Message"], error
        expect_error("InvalidKeyUsageException", kms.verify, KeyId=key["KeyId"], Message=b"m", MessageType="RAW",
                     Signature=b"\x00" * 256, SigningAlgorithm="RSASSA_PSS_SHA_256")


def test_sign_and_verify_with_mac_and_key_agreement_keys_are_refused(kms, key_of):
    for key, algorithm in ((key_of("HMAC_256", "GENERATE_VERIFY_MAC"), "ECDSA_SHA_256"),
                           (key_of("ECC_NIST_P256", "KEY_AGREEMENT"), "ECDSA_SHA_256")):
        expect_error("InvalidKeyUsageException", kms.sign, KeyId=key["KeyId"], Message=b"m",
                     MessageType="RAW", SigningAlgorithm=algorithm)
        expect_error("InvalidKeyUsageException", kms.verify, KeyId=key["KeyId"], Message=b"m",
                     MessageType="RAW", Signature=b"\x30" * 70, SigningAlgorithm=algorithm)


def test_raw_message_size_limit(kms, key_of, public_key_of):
    key = key_of("ECC_NIST_P256", "SIGN_VERIFY")
    largest = os.urandom(4096)
    signature = kms.sign(KeyId=key["KeyId"], Message=largest, MessageType="RAW",
                         SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    verify_locally(public_key_of("ECC_NIST_P256", "SIGN_VERIFY"), "ECDSA_SHA_256", largest, signature)
    expect_error("ValidationException", kms.sign, KeyId=key["KeyId"], Message=largest + b"x", MessageType="RAW",
                 SigningAlgorithm="ECDSA_SHA_256")
    expect_error("ValidationException", kms.verify, KeyId=key["KeyId"], Message=largest + b"x", MessageType="RAW",
                 Signature=signature, SigningAlgorithm="ECDSA_SHA_256")


WRONG_DIGEST_LENGTHS = [("ECC_NIST_P256", "ECDSA_SHA_256", 31), ("ECC_NIST_P256", "ECDSA_SHA_256", 33),
                        ("RSA_2048", "RSASSA_PSS_SHA_384", 32), ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512", 48),
                        ("ECC_NIST_P521", "ECDSA_SHA_512", 66)]


@pytest.mark.parametrize("spec,algorithm,length", WRONG_DIGEST_LENGTHS,
                         ids=[f"{s}-{a}-{n}" for s, a, n in WRONG_DIGEST_LENGTHS])
def test_digest_of_the_wrong_length(kms, key_of, spec, algorithm, length):
    key = key_of(spec, "SIGN_VERIFY")
    error = expect_error("ValidationException", kms.sign, KeyId=key["KeyId"], Message=b"\x01" * length,
                         MessageType="DIGEST", SigningAlgorithm=algorithm)
    assert error["Message"] == f"Digest is invalid length for algorithm {algorithm}."


def test_disabled_signing_key(kms, public_key_of):
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    message = b"signed before the key was disabled"
    signature = kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    kms.disable_key(KeyId=key["KeyId"])
    expect_error("DisabledException", kms.sign, KeyId=key["KeyId"], Message=message, SigningAlgorithm="ECDSA_SHA_256")
    expect_error("DisabledException", kms.verify, KeyId=key["KeyId"], Message=message, Signature=signature,
                 SigningAlgorithm="ECDSA_SHA_256")
    expect_error("DisabledException", kms.get_public_key, KeyId=key["KeyId"])
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.verify(KeyId=key["KeyId"], Message=message, Signature=signature,
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"] is True
    verify_locally(kms.get_public_key(KeyId=key["KeyId"])["PublicKey"], "ECDSA_SHA_256", message, signature)


# ---- 4. JWTs signed by KMS, verified by PyJWT ----------------------------------------------------

JWT_CASES = [
    ("RS256", "RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
    ("PS256", "RSA_2048", "RSASSA_PSS_SHA_256"),
    ("ES256", "ECC_NIST_P256", "ECDSA_SHA_256"),
    ("ES384", "ECC_NIST_P384", "ECDSA_SHA_384"),
    ("ES512", "ECC_NIST_P521", "ECDSA_SHA_512"),
    ("ES256K", "ECC_SECG_P256K1", "ECDSA_SHA_256"),
]


@pytest.mark.parametrize("jwt_algorithm,spec,algorithm", JWT_CASES, ids=[c[0] for c in JWT_CASES])
def test_jwt_signed_through_kms_verifies_with_pyjwt(kms, key_of, public_key_of, jwt_algorithm, spec, algorithm):
    key = key_of(spec, "SIGN_VERIFY")
    now = int(time.time())
    claims = {"iss": "kmsim", "sub": "user-42", "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    header = {"alg": jwt_algorithm, "typ": "JWT", "kid": key["KeyId"]}
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + b64url(json.dumps(claims, separators=(",", ":")).encode()))
    signature = kms.sign(KeyId=key["KeyId"], Message=signing_input.encode(), MessageType="RAW",
                         SigningAlgorithm=algorithm)["Signature"]
    if spec in ECC_CURVES:
        signature = der_to_raw_ecdsa(signature, ECC_CURVES[spec]())
    token = f"{signing_input}.{b64url(signature)}"

    public_pem = load_der_public_key(public_key_of(spec, "SIGN_VERIFY")).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert jwt.get_unverified_header(token)["kid"] == key["KeyId"]
    assert jwt.decode(token, public_pem, algorithms=[jwt_algorithm]) == claims

    # Another payload under the same signature is refused.
    forged_claims = dict(claims, sub="admin")
    forged = (signing_input.split(".")[0] + "." + b64url(json.dumps(forged_claims, separators=(",", ":")).encode())
              + "." + b64url(signature))
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, public_pem, algorithms=[jwt_algorithm])


# ---- 5. GetPublicKey -----------------------------------------------------------------------------


@pytest.mark.parametrize("spec,usage", ASYMMETRIC_PAIRS, ids=[f"{s}-{u}" for s, u in ASYMMETRIC_PAIRS])
def test_get_public_key(kms, key_of, spec, usage):
    key = key_of(spec, usage)
    answer = kms.get_public_key(KeyId=key["KeyId"])
    assert answer["KeyId"] == key["Arn"]
    assert answer["KeySpec"] == spec
    assert answer["CustomerMasterKeySpec"] == spec
    assert answer["KeyUsage"] == usage
    assert_algorithm_lists(answer, spec, usage)

    der = answer["PublicKey"]
    public_key = load_der_public_key(der)
    # A canonical DER SubjectPublicKeyInfo: re-encoding it gives the same bytes.
    assert spki_der(public_key) == der
    if spec in RSA_BITS:
        assert isinstance(public_key, rsa.RSAPublicKey)
        assert public_key.key_size == RSA_BITS[spec]
    else:
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert isinstance(public_key.curve, ECC_CURVES[spec])
    # The same key by its ARN.
    assert kms.get_public_key(KeyId=key["Arn"])["PublicKey"] == der


def test_keys_of_one_kind_have_different_public_keys(kms, key_of):
    other = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert (kms.get_public_key(KeyId=other["KeyId"])["PublicKey"]
            != kms.get_public_key(KeyId=key_of("ECC_NIST_P256", "SIGN_VERIFY")["KeyId"])["PublicKey"])


def test_get_public_key_checks_grant_tokens(kms, key_of):
    key = key_of("ECC_NIST_P256", "SIGN_VERIFY")
    grant = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal="arn:aws:iam::000000000000:role/reader",
                             Operations=["GetPublicKey"])
    answer = kms.get_public_key(KeyId=key["KeyId"], GrantTokens=[grant["GrantToken"]])
    assert answer["KeyId"] == key["Arn"]
    expect_error("InvalidGrantTokenException", kms.get_public_key, KeyId=key["KeyId"], GrantTokens=["not-a-token"])


def test_get_public_key_of_symmetric_and_hmac_keys_is_unsupported(kms, key_of, symmetric_key):
    expect_error("UnsupportedOperationException", kms.get_public_key, KeyId=symmetric_key["KeyId"])
    expect_error("UnsupportedOperationException", kms.get_public_key,
                 KeyId=key_of("HMAC_256", "GENERATE_VERIFY_MAC")["KeyId"])


# ---- 6. RSA encryption ---------------------------------------------------------------------------

RSA_ENCRYPT_CASES = [(spec, algorithm) for spec in RSA_SPECS for algorithm in RSA_ENCRYPTION_ALGORITHMS]


def oaep(algorithm: str) -> padding.OAEP:
    h = hashes.SHA1() if algorithm == "RSAES_OAEP_SHA_1" else hashes.SHA256()
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


@pytest.mark.parametrize("spec,algorithm", RSA_ENCRYPT_CASES, ids=[f"{s}-{a}" for s, a in RSA_ENCRYPT_CASES])
def test_rsa_encrypt_and_decrypt(kms, key_of, spec, algorithm):
    key = key_of(spec, "ENCRYPT_DECRYPT")
    plaintext = b"sealed with " + algorithm.encode() + b" " + os.urandom(16)
    encrypted = kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext, EncryptionAlgorithm=algorithm)
    assert encrypted["KeyId"] == key["Arn"]
    assert encrypted["EncryptionAlgorithm"] == algorithm
    blob = encrypted["CiphertextBlob"]
    # A bare RSA ciphertext, as long as the modulus (no KMS envelope around it).
    assert len(blob) == RSA_BITS[spec] // 8
    # OAEP is randomized.
    assert kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext, EncryptionAlgorithm=algorithm)["CiphertextBlob"] != blob

    decrypted = kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=blob, EncryptionAlgorithm=algorithm)
    assert decrypted["Plaintext"] == plaintext
    assert decrypted["KeyId"] == key["Arn"]
    assert decrypted["EncryptionAlgorithm"] == algorithm


@pytest.mark.parametrize("spec,algorithm", RSA_ENCRYPT_CASES, ids=[f"{s}-{a}" for s, a in RSA_ENCRYPT_CASES])
def test_ciphertext_made_outside_kms_decrypts_in_kms(kms, key_of, public_key_of, spec, algorithm):
    key = key_of(spec, "ENCRYPT_DECRYPT")
    public_key = load_der_public_key(public_key_of(spec, "ENCRYPT_DECRYPT"))
    assert isinstance(public_key, rsa.RSAPublicKey)
    plaintext = os.urandom(RSA_PLAINTEXT_LIMITS[(spec, algorithm)])
    blob = public_key.encrypt(plaintext, oaep(algorithm))
    decrypted = kms.decrypt(KeyId=key["Arn"], CiphertextBlob=blob, EncryptionAlgorithm=algorithm)
    assert decrypted["Plaintext"] == plaintext
    assert decrypted["EncryptionAlgorithm"] == algorithm


@pytest.mark.parametrize("spec,algorithm", RSA_ENCRYPT_CASES, ids=[f"{s}-{a}" for s, a in RSA_ENCRYPT_CASES])
def test_rsa_plaintext_limits(kms, key_of, spec, algorithm):
    key = key_of(spec, "ENCRYPT_DECRYPT")
    limit = RSA_PLAINTEXT_LIMITS[(spec, algorithm)]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"\xab" * limit, EncryptionAlgorithm=algorithm)["CiphertextBlob"]
    assert kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=blob, EncryptionAlgorithm=algorithm)["Plaintext"] == (
        b"\xab" * limit)
    # AWS (recorded): "Algorithm <ALG> and key spec <SPEC> cannot encrypt data larger than <N> bytes."
    expect_error("ValidationException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"\xab" * (limit + 1),
                 EncryptionAlgorithm=algorithm)


def test_rsa_encrypt_with_encryption_context_is_refused(kms, key_of):
    key = key_of("RSA_2048", "ENCRYPT_DECRYPT")
    expect_error("ValidationException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x",
                 EncryptionAlgorithm="RSAES_OAEP_SHA_256", EncryptionContext={"purpose": "test"})


def test_encryption_algorithm_must_fit_the_key(kms, key_of, symmetric_key):
    rsa_key = key_of("RSA_2048", "ENCRYPT_DECRYPT")
    # SYMMETRIC_DEFAULT, given or defaulted, on an RSA key.
    expect_error("InvalidKeyUsageException", kms.encrypt, KeyId=rsa_key["KeyId"], Plaintext=b"x",
                 EncryptionAlgorithm="SYMMETRIC_DEFAULT")
    expect_error("InvalidKeyUsageException", kms.encrypt, KeyId=rsa_key["KeyId"], Plaintext=b"x")
    # An RSA algorithm on a symmetric key.
    expect_error("InvalidKeyUsageException", kms.encrypt, KeyId=symmetric_key["KeyId"], Plaintext=b"x",
                 EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    # Keys that do not encrypt at all.
    for spec, usage in (("RSA_2048", "SIGN_VERIFY"), ("ECC_NIST_P256", "SIGN_VERIFY"),
                        ("HMAC_256", "GENERATE_VERIFY_MAC"), ("ECC_NIST_P256", "KEY_AGREEMENT")):
        expect_error("InvalidKeyUsageException", kms.encrypt, KeyId=key_of(spec, usage)["KeyId"], Plaintext=b"x",
                     EncryptionAlgorithm="RSAES_OAEP_SHA_256")


def test_rsa_decrypt_with_the_wrong_algorithm_fails(kms, key_of):
    key = key_of("RSA_2048", "ENCRYPT_DECRYPT")
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"made with SHA-256",
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    # The API reference says only that Decrypt "fails" with a different algorithm and names no error.
    # InvalidCiphertextException fits its text (the ciphertext is "corrupted ... or otherwise invalid"
    # for that algorithm); HashiCorp's aws_kms_secrets documentation reports IncorrectKeyException from
    # AWS for exactly this mistake. Either is accepted; nothing else is.
    with pytest.raises(ClientError) as info:
        kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert info.value.response["Error"]["Code"] in ("InvalidCiphertextException", "IncorrectKeyException"), (
        info.value.response["Error"])


def test_rsa_decrypt_needs_the_key_and_the_algorithm(kms, key_of):
    key = key_of("RSA_2048", "ENCRYPT_DECRYPT")
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_1")["CiphertextBlob"]
    # A bare RSA ciphertext names no key: without KeyId it is not a KMS ciphertext blob.
    with pytest.raises(ClientError) as info:
        kms.decrypt(CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert info.value.response["Error"]["Code"] in ("ValidationException", "InvalidCiphertextException"), (
        info.value.response["Error"])
    # Without EncryptionAlgorithm, SYMMETRIC_DEFAULT is meant.
    with pytest.raises(ClientError) as info:
        kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=blob)
    assert info.value.response["Error"]["Code"] in ("InvalidCiphertextException", "InvalidKeyUsageException"), (
        info.value.response["Error"])
    # Another RSA key cannot decrypt it.
    other = key_of("RSA_3072", "ENCRYPT_DECRYPT")
    with pytest.raises(ClientError) as info:
        kms.decrypt(KeyId=other["KeyId"], CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert info.value.response["Error"]["Code"] in ("InvalidCiphertextException", "IncorrectKeyException"), (
        info.value.response["Error"])


def test_re_encrypt_from_rsa_to_symmetric_and_back(kms, key_of, symmetric_key):
    rsa_key = key_of("RSA_2048", "ENCRYPT_DECRYPT")
    plaintext = b"travels between an RSA key and a symmetric key"
    rsa_blob = kms.encrypt(KeyId=rsa_key["KeyId"], Plaintext=plaintext,
                           EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]

    context = {"leg": "symmetric"}
    to_symmetric = kms.re_encrypt(CiphertextBlob=rsa_blob, SourceKeyId=rsa_key["KeyId"],
                                  SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
                                  DestinationKeyId=symmetric_key["KeyId"], DestinationEncryptionContext=context)
    assert to_symmetric["SourceKeyId"] == rsa_key["Arn"]
    assert to_symmetric["KeyId"] == symmetric_key["Arn"]
    assert to_symmetric["SourceEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    assert to_symmetric["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    symmetric_blob = to_symmetric["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=symmetric_blob, EncryptionContext=context)["Plaintext"] == plaintext
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=symmetric_blob)

    back = kms.re_encrypt(CiphertextBlob=symmetric_blob, SourceEncryptionContext=context,
                          DestinationKeyId=rsa_key["KeyId"], DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert back["SourceKeyId"] == symmetric_key["Arn"]
    assert back["KeyId"] == rsa_key["Arn"]
    assert back["SourceEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert back["DestinationEncryptionAlgorithm"] == "RSAES_OAEP_SHA_1"
    assert len(back["CiphertextBlob"]) == 256
    assert kms.decrypt(KeyId=rsa_key["KeyId"], CiphertextBlob=back["CiphertextBlob"],
                       EncryptionAlgorithm="RSAES_OAEP_SHA_1")["Plaintext"] == plaintext


# ---- 7. HMAC keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", list(HMAC_SPECS))
def test_generate_and_verify_mac(kms, key_of, spec):
    key = key_of(spec, "GENERATE_VERIFY_MAC")
    algorithm, length = HMAC_SPECS[spec]
    message = b"authenticate me " + os.urandom(32)
    generated = kms.generate_mac(KeyId=key["KeyId"], Message=message, MacAlgorithm=algorithm)
    assert generated["KeyId"] == key["Arn"]
    assert generated["MacAlgorithm"] == algorithm
    mac = generated["Mac"]
    assert len(mac) == length
    # HMAC is a function of key and message.
    assert kms.generate_mac(KeyId=key["KeyId"], Message=message, MacAlgorithm=algorithm)["Mac"] == mac
    assert kms.generate_mac(KeyId=key["KeyId"], Message=message + b"!", MacAlgorithm=algorithm)["Mac"] != mac

    verified = kms.verify_mac(KeyId=key["KeyId"], Message=message, Mac=mac, MacAlgorithm=algorithm)
    assert verified["MacValid"] is True
    assert verified["KeyId"] == key["Arn"]
    assert verified["MacAlgorithm"] == algorithm


def test_verify_mac_refuses_tampered_mac_and_message(kms, key_of):
    key = key_of("HMAC_384", "GENERATE_VERIFY_MAC")
    message = b"the original message"
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=message, MacAlgorithm="HMAC_SHA_384")["Mac"]
    expect_error("KMSInvalidMacException", kms.verify_mac, KeyId=key["KeyId"], Message=message,
                 Mac=flip_last_byte(mac), MacAlgorithm="HMAC_SHA_384")
    expect_error("KMSInvalidMacException", kms.verify_mac, KeyId=key["KeyId"], Message=b"the originaL message",
                 Mac=mac, MacAlgorithm="HMAC_SHA_384")
    expect_error("KMSInvalidMacException", kms.verify_mac, KeyId=key["KeyId"], Message=message,
                 Mac=mac[:-1], MacAlgorithm="HMAC_SHA_384")


def test_hmac_keys_have_their_own_material(kms, key_of):
    other = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    key = key_of("HMAC_256", "GENERATE_VERIFY_MAC")
    message = b"same message, two keys"
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=message, MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert kms.generate_mac(KeyId=other["KeyId"], Message=message, MacAlgorithm="HMAC_SHA_256")["Mac"] != mac
    expect_error("KMSInvalidMacException", kms.verify_mac, KeyId=other["KeyId"], Message=message, Mac=mac,
                 MacAlgorithm="HMAC_SHA_256")


def test_mac_algorithm_must_fit_the_key(kms, key_of):
    key = key_of("HMAC_224", "GENERATE_VERIFY_MAC")
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_224")["Mac"]
    # AWS (recorded): "Algorithm HMAC_SHA_256 is incompatible with key spec HMAC_224."
    expect_error("InvalidKeyUsageException", kms.generate_mac, KeyId=key["KeyId"], Message=b"m",
                 MacAlgorithm="HMAC_SHA_256")
    expect_error("InvalidKeyUsageException", kms.verify_mac, KeyId=key["KeyId"], Message=b"m", Mac=mac,
                 MacAlgorithm="HMAC_SHA_512")


def test_mac_operations_on_other_keys_are_refused(kms, key_of, symmetric_key):
    for key in (symmetric_key, key_of("RSA_2048", "SIGN_VERIFY"), key_of("ECC_NIST_P256", "KEY_AGREEMENT")):
        expect_error("InvalidKeyUsageException", kms.generate_mac, KeyId=key["KeyId"], Message=b"m",
                     MacAlgorithm="HMAC_SHA_256")
        expect_error("InvalidKeyUsageException", kms.verify_mac, KeyId=key["KeyId"], Message=b"m", Mac=b"\x00" * 32,
                     MacAlgorithm="HMAC_SHA_256")


def test_mac_message_size_limit(kms, key_of):
    key = key_of("HMAC_512", "GENERATE_VERIFY_MAC")
    largest = os.urandom(4096)
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=largest, MacAlgorithm="HMAC_SHA_512")["Mac"]
    assert kms.verify_mac(KeyId=key["KeyId"], Message=largest, Mac=mac, MacAlgorithm="HMAC_SHA_512")["MacValid"]
    expect_error("ValidationException", kms.generate_mac, KeyId=key["KeyId"], Message=largest + b"x",
                 MacAlgorithm="HMAC_SHA_512")
    expect_error("ValidationException", kms.verify_mac, KeyId=key["KeyId"], Message=largest + b"x", Mac=mac,
                 MacAlgorithm="HMAC_SHA_512")


# ---- 8. Data key pairs ---------------------------------------------------------------------------

KEY_PAIR_SPECS = ["RSA_2048", "RSA_3072", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1"]


def assert_key_pair(spec: str, private_pkcs8: bytes, public_der: bytes) -> None:
    """The private key is PKCS#8 DER of the kind ``spec`` names and ``public_der`` is its public half."""
    private_key = load_der_private_key(private_pkcs8, password=None)
    if spec in RSA_BITS:
        assert isinstance(private_key, rsa.RSAPrivateKey)
        assert private_key.key_size == RSA_BITS[spec]
    else:
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)
        assert isinstance(private_key.curve, ECC_CURVES[spec])
    assert spki_der(private_key.public_key()) == public_der
    assert spki_der(load_der_public_key(public_der)) == public_der


@pytest.mark.parametrize("spec", KEY_PAIR_SPECS)
def test_generate_data_key_pair(kms, symmetric_key, spec):
    context = {"purpose": "data-key-pair", "spec": spec}
    pair = kms.generate_data_key_pair(KeyId=symmetric_key["KeyId"], KeyPairSpec=spec, EncryptionContext=context)
    assert pair["KeyId"] == symmetric_key["Arn"]
    assert pair["KeyPairSpec"] == spec
    assert_key_pair(spec, pair["PrivateKeyPlaintext"], pair["PublicKey"])

    decrypted = kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=context)
    assert decrypted["Plaintext"] == pair["PrivateKeyPlaintext"]
    assert decrypted["KeyId"] == symmetric_key["Arn"]
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=pair["PrivateKeyCiphertextBlob"])
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=pair["PrivateKeyCiphertextBlob"],
                 EncryptionContext={"purpose": "data-key-pair"})


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_SECG_P256K1"])
def test_generate_data_key_pair_without_plaintext(kms, symmetric_key, spec):
    context = {"purpose": "without-plaintext"}
    pair = kms.generate_data_key_pair_without_plaintext(KeyId=symmetric_key["KeyId"], KeyPairSpec=spec,
                                                        EncryptionContext=context)
    assert "PrivateKeyPlaintext" not in pair
    assert pair["KeyId"] == symmetric_key["Arn"]
    assert pair["KeyPairSpec"] == spec
    private_pkcs8 = kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"],
                                EncryptionContext=context)["Plaintext"]
    assert_key_pair(spec, private_pkcs8, pair["PublicKey"])
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=pair["PrivateKeyCiphertextBlob"])


def test_data_key_pairs_are_unique(kms, symmetric_key):
    first = kms.generate_data_key_pair(KeyId=symmetric_key["KeyId"], KeyPairSpec="ECC_NIST_P256")
    second = kms.generate_data_key_pair(KeyId=symmetric_key["KeyId"], KeyPairSpec="ECC_NIST_P256")
    assert first["PublicKey"] != second["PublicKey"]
    assert first["PrivateKeyPlaintext"] != second["PrivateKeyPlaintext"]


def test_data_key_pair_under_a_non_symmetric_key_is_refused(kms, key_of):
    for spec, usage in (("RSA_2048", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "SIGN_VERIFY"),
                        ("HMAC_256", "GENERATE_VERIFY_MAC")):
        key = key_of(spec, usage)
        expect_error("InvalidKeyUsageException", kms.generate_data_key_pair, KeyId=key["KeyId"],
                     KeyPairSpec="ECC_NIST_P256")
        expect_error("InvalidKeyUsageException", kms.generate_data_key_pair_without_plaintext, KeyId=key["KeyId"],
                     KeyPairSpec="ECC_NIST_P256")


@pytest.mark.parametrize("pair_spec", ["RSA_1024", "HMAC_256", "SYMMETRIC_DEFAULT", "ecc_nist_p256"])
def test_invalid_key_pair_spec(kms, symmetric_key, pair_spec):
    expect_error("ValidationException", kms.generate_data_key_pair, KeyId=symmetric_key["KeyId"],
                 KeyPairSpec=pair_spec)
    expect_error("ValidationException", kms.generate_data_key_pair_without_plaintext,
                 KeyId=symmetric_key["KeyId"], KeyPairSpec=pair_spec)


# ---- 9. DeriveSharedSecret -----------------------------------------------------------------------


@pytest.mark.parametrize("spec", KEY_AGREEMENT_SPECS)
def test_derive_shared_secret_equals_a_local_ecdh(kms, key_of, public_key_of, spec):
    key = key_of(spec, "KEY_AGREEMENT")
    local = ec.generate_private_key(ECC_CURVES[spec]())
    derived = kms.derive_shared_secret(KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH",
                                       PublicKey=spki_der(local.public_key()))
    assert derived["KeyId"] == key["Arn"]
    assert derived["KeyAgreementAlgorithm"] == "ECDH"
    assert derived["KeyOrigin"] == "AWS_KMS"
    kms_public = load_der_public_key(public_key_of(spec, "KEY_AGREEMENT"))
    assert isinstance(kms_public, ec.EllipticCurvePublicKey)
    expected = local.exchange(ec.ECDH(), kms_public)
    assert derived["SharedSecret"] == expected
    assert len(expected) == (local.curve.key_size + 7) // 8


def test_two_kms_keys_agree_on_a_secret(kms, key_of, public_key_of):
    alice = key_of("ECC_NIST_P256", "KEY_AGREEMENT")
    bob = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")["KeyMetadata"]
    bob_public = kms.get_public_key(KeyId=bob["KeyId"])["PublicKey"]
    from_alice = kms.derive_shared_secret(KeyId=alice["KeyId"], KeyAgreementAlgorithm="ECDH",
                                          PublicKey=bob_public)["SharedSecret"]
    from_bob = kms.derive_shared_secret(KeyId=bob["KeyId"], KeyAgreementAlgorithm="ECDH",
                                        PublicKey=public_key_of("ECC_NIST_P256", "KEY_AGREEMENT"))["SharedSecret"]
    assert from_alice == from_bob
    assert len(from_alice) == 32


@pytest.mark.parametrize("curve", [ec.SECP384R1, ec.SECP256K1, ec.SECP521R1])
def test_derive_shared_secret_with_a_public_key_on_another_curve(kms, key_of, curve):
    key = key_of("ECC_NIST_P256", "KEY_AGREEMENT")
    other = spki_der(ec.generate_private_key(curve()).public_key())
    expect_error("ValidationException", kms.derive_shared_secret, KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH",
                 PublicKey=other)


def test_derive_shared_secret_needs_a_key_agreement_key(kms, key_of, symmetric_key):
    peer = spki_der(ec.generate_private_key(ec.SECP256R1()).public_key())
    for key in (key_of("ECC_NIST_P256", "SIGN_VERIFY"), key_of("RSA_2048", "ENCRYPT_DECRYPT"), symmetric_key):
        expect_error("InvalidKeyUsageException", kms.derive_shared_secret, KeyId=key["KeyId"],
                     KeyAgreementAlgorithm="ECDH", PublicKey=peer)


def test_key_agreement_key_cannot_sign(kms, key_of):
    key = key_of("ECC_NIST_P384", "KEY_AGREEMENT")
    expect_error("InvalidKeyUsageException", kms.sign, KeyId=key["KeyId"], Message=b"m", MessageType="RAW",
                 SigningAlgorithm="ECDSA_SHA_384")


# ---- 10. Grants ----------------------------------------------------------------------------------


def test_grant_for_signing_operations(kms, kmsim, key_of):
    key = key_of("ECC_NIST_P256", "SIGN_VERIFY")
    grantee = principal(kmsim, f"signer-{uuid.uuid4().hex[:8]}")
    created = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee,
                               Operations=["Sign", "Verify", "GetPublicKey"])
    assert created["GrantId"] and created["GrantToken"]
    grants = {g["GrantId"]: g for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]}
    grant = grants[created["GrantId"]]
    assert grant["GranteePrincipal"] == grantee
    assert sorted(grant["Operations"]) == ["GetPublicKey", "Sign", "Verify"]
    kms.revoke_grant(KeyId=key["KeyId"], GrantId=created["GrantId"])


def test_grant_for_mac_and_key_agreement_operations(kms, kmsim, key_of):
    for key, operations in ((key_of("HMAC_256", "GENERATE_VERIFY_MAC"), ["GenerateMac", "VerifyMac"]),
                            (key_of("ECC_NIST_P384", "KEY_AGREEMENT"), ["DeriveSharedSecret", "GetPublicKey"])):
        created = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=principal(kmsim, "grantee"),
                                   Operations=operations)
        grant = next(g for g in kms.list_grants(KeyId=key["KeyId"])["Grants"] if g["GrantId"] == created["GrantId"])
        assert sorted(grant["Operations"]) == sorted(operations)


GRANT_OPERATIONS_REFUSED = [
    ("ECC_NIST_P256", "SIGN_VERIFY", ["Encrypt"]),
    ("RSA_2048", "SIGN_VERIFY", ["Sign", "Decrypt"]),
    # The two examples of the API reference (CreateGrant, Operations).
    ("RSA_2048", "ENCRYPT_DECRYPT", ["GenerateDataKey"]),
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", ["Sign"]),
    ("HMAC_256", "GENERATE_VERIFY_MAC", ["Encrypt"]),
    ("ECC_NIST_P256", "KEY_AGREEMENT", ["Sign"]),
]


@pytest.mark.parametrize("spec,usage,operations", GRANT_OPERATIONS_REFUSED,
                         ids=[f"{s}-{u}-{'+'.join(o)}" for s, u, o in GRANT_OPERATIONS_REFUSED])
def test_grant_operations_must_be_valid_for_the_key(kms, kmsim, key_of, symmetric_key, spec, usage, operations):
    key = symmetric_key if spec == "SYMMETRIC_DEFAULT" else key_of(spec, usage)
    before = {g["GrantId"] for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]}
    expect_error("ValidationException", kms.create_grant, KeyId=key["KeyId"],
                 GranteePrincipal=principal(kmsim, "refused"), Operations=operations)
    assert {g["GrantId"] for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]} == before


# ---- 11. The aws CLI -----------------------------------------------------------------------------


def test_aws_cli_sign_and_verify(aws_cli, key_of, public_key_of, tmp_path):
    key = key_of("ECC_NIST_P256", "SIGN_VERIFY")
    message = b"signed with `aws kms sign`\n" + os.urandom(16)
    (tmp_path / "message").write_bytes(message)
    (tmp_path / "tampered").write_bytes(flip_last_byte(message))
    rc, out = aws_cli("sign", "--key-id", key["Arn"], "--message", f"fileb://{tmp_path / 'message'}",
                      "--message-type", "RAW", "--signing-algorithm", "ECDSA_SHA_256")
    assert rc == 0, out
    assert out["KeyId"] == key["Arn"]
    assert out["SigningAlgorithm"] == "ECDSA_SHA_256"
    signature = base64.b64decode(out["Signature"])
    verify_locally(public_key_of("ECC_NIST_P256", "SIGN_VERIFY"), "ECDSA_SHA_256", message, signature)
    (tmp_path / "signature").write_bytes(signature)

    rc, out = aws_cli("verify", "--key-id", key["KeyId"], "--message", f"fileb://{tmp_path / 'message'}",
                      "--message-type", "RAW", "--signing-algorithm", "ECDSA_SHA_256",
                      "--signature", f"fileb://{tmp_path / 'signature'}")
    assert rc == 0, out
    assert out["SignatureValid"] is True
    assert out["KeyId"] == key["Arn"]

    rc, err = aws_cli("verify", "--key-id", key["KeyId"], "--message", f"fileb://{tmp_path / 'tampered'}",
                      "--message-type", "RAW", "--signing-algorithm", "ECDSA_SHA_256",
                      "--signature", f"fileb://{tmp_path / 'signature'}")
    assert rc == CLI_SERVICE_ERROR
    assert "(KMSInvalidSignatureException)" in err
    assert "Verify operation" in err


# ---- the audit -----------------------------------------------------------------------------------


def test_audit_records_every_new_kind_of_call(kms, admin):
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    signature = kms.sign(KeyId=signing["KeyId"], Message=b"audited", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    expect_error("KMSInvalidSignatureException", kms.verify, KeyId=signing["KeyId"], Message=b"other",
                 Signature=signature, SigningAlgorithm="ECDSA_SHA_256")
    kms.get_public_key(KeyId=signing["KeyId"])
    kms.generate_mac(KeyId=mac_key["KeyId"], Message=b"audited", MacAlgorithm="HMAC_SHA_256")

    def outcomes(operation: str, key: dict) -> list[str]:
        events = admin.audit(operation=operation, key=key["KeyId"])
        assert all(e["key_arn"] == key["Arn"] for e in events), events
        return [e["outcome"] for e in events]

    assert outcomes("Sign", signing) == ["Success"]
    assert outcomes("Verify", signing) == ["KMSInvalidSignatureException"]
    assert outcomes("GetPublicKey", signing) == ["Success"]
    assert outcomes("GenerateMac", mac_key) == ["Success"]
    # The message and the MAC are not in the audit record.
    for event in admin.audit(key=signing["KeyId"]) + admin.audit(key=mac_key["KeyId"]):
        assert "audited" not in json.dumps(event)


def test_derive_shared_secret_takes_only_a_subject_public_key_info(kms, key_of):
    key = key_of("ECC_NIST_P256", "KEY_AGREEMENT")
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(serialization.Encoding.X962,
                                                                             serialization.PublicFormat.UncompressedPoint)
    expect_error("ValidationException", kms.derive_shared_secret, KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH",
                 PublicKey=point)


def test_grant_constraints_are_refused_for_asymmetric_and_hmac_keys(kms, kmsim, key_of):
    # CreateGrant: "You cannot use an encryption context grant constraint for cryptographic operations with
    # asymmetric KMS keys or HMAC KMS keys."
    for spec, usage, operation in [("RSA_2048", "ENCRYPT_DECRYPT", "Decrypt"), ("HMAC_256", "GENERATE_VERIFY_MAC",
                                                                             "GenerateMac")]:
        key = key_of(spec, usage)
        expect_error("ValidationException", kms.create_grant, KeyId=key["KeyId"],
                     GranteePrincipal=f"arn:aws:iam::{kmsim['account_id']}:role/constrained",
                     Operations=[operation], Constraints={"EncryptionContextSubset": {"purpose": "x"}})
