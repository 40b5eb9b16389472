"""kmsim's Open Telekom Cloud / Huawei Cloud KMS API (REST v1.0) through Huawei's own Python SDK.

The client is ``huaweicloudsdkkms`` (``KmsClient`` with ``with_endpoints``, SDK-HMAC-SHA256 signing by
``huaweicloudsdkcore``); requests the SDK cannot send (malformed bodies, old ``X-Sdk-Date``, verbs it
has no method for) are signed with the SDK's own ``Signer`` and sent with ``requests``.

Most tests share the session's in-memory server and create keys of their own, so they do not depend
on each other. The list-keys pagination test starts a server of its own, for exact counts.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
import urllib.parse
import uuid
from typing import Any, Callable

import pytest
import requests
from botocore.exceptions import ClientError
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkkms.v2 import (
    AssociateAliasRequest,
    AssociateAliasRequestBody,
    BatchCreateKmsTagsRequest,
    BatchCreateKmsTagsRequestBody,
    CancelGrantRequest,
    CancelKeyDeletionRequest,
    CancelSelfGrantRequest,
    CreateAliasRequest,
    CreateAliasRequestBody,
    CreateDatakeyRequest,
    CreateDatakeyRequestBody,
    CreateDatakeyWithoutPlaintextRequest,
    CreateGrantRequest,
    CreateGrantRequestBody,
    CreateKeyRequest,
    CreateKeyRequestBody,
    CreateKmsTagRequest,
    CreateKmsTagRequestBody,
    CreateRandomRequest,
    DecryptDataRequest,
    DecryptDataRequestBody,
    DecryptDatakeyRequest,
    DecryptDatakeyRequestBody,
    DeleteAliasRequest,
    DeleteAliasRequestBody,
    DeleteKeyRequest,
    DeleteTagRequest,
    DisableKeyRequest,
    DisableKeyRotationRequest,
    EnableKeyRequest,
    EnableKeyRotationRequest,
    EncryptDataRequest,
    EncryptDataRequestBody,
    EncryptDatakeyRequest,
    EncryptDatakeyRequestBody,
    GenRandomRequestBody,
    KmsClient,
    ListAliasesRequest,
    ListGrantsRequest,
    ListGrantsRequestBody,
    ListKeyDetailRequest,
    ListKeysRequest,
    ListKeysRequestBody,
    ListKmsTagsRequest,
    ListRetirableGrantsRequest,
    ListRetirableGrantsRequestBody,
    OperateKeyRequestBody,
    RevokeGrantRequestBody,
    ScheduleKeyDeletionRequestBody,
    ShowKeyRotationStatusRequest,
    ShowKmsTagsRequest,
    TagItem,
    UpdateKeyAliasRequest,
    UpdateKeyAliasRequestBody,
    UpdateKeyDescriptionRequest,
    UpdateKeyDescriptionRequestBody,
    UpdateKeyRotationIntervalRequest,
    UpdateKeyRotationIntervalRequestBody,
)

from conftest import DEFAULT_ACCESS_KEY, DEFAULT_SECRET, KmsimProcess, unique
from conftest import huawei_kms_client as huawei_client

ZERO_ID = "0" * 32
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
KEY_DETAIL_FIELDS = (
    "key_id", "domain_id", "key_alias", "realm", "key_spec", "key_usage", "key_description", "creation_date",
    "scheduled_deletion_date", "key_state", "default_key_flag", "key_type", "expiration_time", "origin",
    "key_rotation_enabled", "sys_enterprise_project_id", "keystore_id",
)


# ---- helpers -------------------------------------------------------------------------------------


def expect_otc_error(code: str, call: Callable[[Any], Any], request: Any, status: int = 400) -> ClientRequestException:
    """Calls ``call(request)`` and asserts that the SDK raises ``ClientRequestException`` with
    ``status`` and the error ``code``, carrying the server's request id."""
    with pytest.raises(ClientRequestException) as info:
        call(request)
    error = info.value
    assert (error.status_code, error.error_code) == (status, code), str(error)
    assert error.error_msg, str(error)
    assert error.request_id is not None, str(error)
    return error


def op(key_id: str) -> OperateKeyRequestBody:
    return OperateKeyRequestBody(key_id=key_id)


def create_key(client: KmsClient, alias: str | None = None, description: str = "") -> str:
    response = client.create_key(CreateKeyRequest(body=CreateKeyRequestBody(
        key_alias=alias or unique("hw"), key_description=description)))
    return response.key_info.key_id


def describe(client: KmsClient, key_id: str):
    return client.list_key_detail(ListKeyDetailRequest(body=op(key_id))).key_info


def create_datakey(client: KmsClient, key_id: str, **fields: Any):
    return client.create_datakey(CreateDatakeyRequest(body=CreateDatakeyRequestBody(key_id=key_id, **fields)))


def decrypt_datakey(client: KmsClient, key_id: str, cipher_text: str, length: int, aad: str | None = None):
    return client.decrypt_datakey(DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key_id, cipher_text=cipher_text, datakey_cipher_length=str(length),
        additional_authenticated_data=aad)))


def with_digest(dek: bytes) -> str:
    """encrypt-datakey's ``plain_text``: hex of DEK ‖ SHA-256(DEK)."""
    return (dek + hashlib.sha256(dek).digest()).hex()


class RawOtc:
    """Hand-built requests of the OTC dialect, signed with the SDK's own ``Signer``."""

    def __init__(self, endpoint: str, project_id: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.host = urllib.parse.urlsplit(endpoint).netloc
        self.project_id = project_id

    def send(self, verb: str, body: bytes | dict | list | None, *, method: str = "POST",
             sdk_date: dt.datetime | None = None, project_id: str | None = None,
             access_key: str = DEFAULT_ACCESS_KEY, secret: str = DEFAULT_SECRET) -> requests.Response:
        project_id = project_id or self.project_id
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        headers = {"Content-Type": "application/json;charset=utf-8", "X-Project-Id": project_id}
        if sdk_date is not None:
            headers["X-Sdk-Date"] = sdk_date.strftime(SDK_DATE_FORMAT)
        request = SdkRequest(method=method, schema="http", host=self.host,
                             resource_path=f"/v1.0/{project_id}/kms/{verb}", query_params=[],
                             header_params=headers, body=body or b"")
        Signer(BasicCredentials(access_key, secret, project_id)).sign(request)
        return requests.request(method, self.endpoint + request.uri, headers=request.header_params,
                                data=request.body, timeout=30)


def error_of(response: requests.Response) -> tuple[int, str]:
    error = response.json()["error"]
    assert error["error_msg"], response.text
    assert response.headers.get("X-Request-Id"), response.headers
    code = error.get("error_code") or error.get("code")
    return response.status_code, code


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def project_id(kmsim: dict[str, Any]) -> str:
    return kmsim.get("project_id", ZERO_ID)


@pytest.fixture(scope="session")
def hw(kmsim: dict[str, Any], project_id: str) -> KmsClient:
    """Huawei SDK KMS client for the shared server (default account, test/test)."""
    return huawei_client(kmsim["endpoint"], project_id)


@pytest.fixture(scope="session")
def raw_otc(kmsim: dict[str, Any], project_id: str) -> RawOtc:
    return RawOtc(kmsim["endpoint"], project_id)


# ---- the startup line ----------------------------------------------------------------------------


def test_startup_line_has_default_project_and_domain(kmsim: dict[str, Any]) -> None:
    assert kmsim["project_id"] == ZERO_ID
    assert kmsim["domain_id"] == ZERO_ID


# ---- keys ----------------------------------------------------------------------------------------


def test_create_and_describe_key(hw: KmsClient, kmsim: dict[str, Any]) -> None:
    alias = unique("hw-describe")
    before_ms = int(time.time() * 1000)
    created = hw.create_key(CreateKeyRequest(body=CreateKeyRequestBody(key_alias=alias, key_description="first key")))
    assert created.key_info.domain_id == kmsim["domain_id"]
    assert created.key_info.region_id == kmsim["region"]
    key_id = created.key_info.key_id
    assert uuid.UUID(key_id)

    info = describe(hw, key_id)
    details = info.to_dict()
    for field in KEY_DETAIL_FIELDS:
        assert isinstance(details[field], str), (field, details[field])
    assert info.key_id == key_id
    assert info.domain_id == kmsim["domain_id"]
    assert info.key_alias == alias
    assert info.key_description == "first key"
    assert info.key_state == "2"
    assert info.key_spec == "AES_256"
    assert info.key_usage == "ENCRYPT_DECRYPT"
    assert info.origin == "kms"
    assert info.default_key_flag == "0"
    assert info.key_rotation_enabled == "false"
    assert info.scheduled_deletion_date == ""
    assert info.creation_date.isdigit()
    assert before_ms - 5000 <= int(info.creation_date) <= int(time.time() * 1000) + 5000

    # The same alias again is KMS.1104, and no second key appears.
    total = hw.list_keys(ListKeysRequest(body=ListKeysRequestBody())).total
    expect_otc_error("KMS.1104", hw.create_key, CreateKeyRequest(body=CreateKeyRequestBody(key_alias=alias)))
    assert hw.list_keys(ListKeysRequest(body=ListKeysRequestBody())).total == total


def test_update_alias_and_description(hw: KmsClient) -> None:
    key_id = create_key(hw, description="old")
    new_alias = unique("hw-renamed")
    response = hw.update_key_alias(UpdateKeyAliasRequest(body=UpdateKeyAliasRequestBody(key_id=key_id, key_alias=new_alias)))
    assert (response.key_info.key_id, response.key_info.key_alias) == (key_id, new_alias)
    response = hw.update_key_description(UpdateKeyDescriptionRequest(
        body=UpdateKeyDescriptionRequestBody(key_id=key_id, key_description="new")))
    assert (response.key_info.key_id, response.key_info.key_description) == (key_id, "new")
    info = describe(hw, key_id)
    assert (info.key_alias, info.key_description) == (new_alias, "new")


def test_list_keys_pagination_and_state_filter(start_kmsim: Callable[..., KmsimProcess]) -> None:
    server = start_kmsim()
    client = huawei_client(server.endpoint, server.info["project_id"])

    def list_keys(**fields: Any):
        return client.list_keys(ListKeysRequest(body=ListKeysRequestBody(**fields)))

    baseline = list_keys()
    assert isinstance(baseline.total, int)
    created = [create_key(client) for _ in range(5)]
    for key_id in created[:2]:
        client.disable_key(DisableKeyRequest(body=op(key_id)))
    total = baseline.total + 5

    seen: list[str] = []
    marker = "0"
    pages = 0
    while True:
        page = list_keys(limit="2", marker=marker)
        pages += 1
        assert page.total == total and isinstance(page.total, int)
        assert len(page.keys) == len(page.key_details) <= 2
        assert [d.key_id for d in page.key_details] == page.keys
        seen += page.keys
        if page.truncated == "false":
            assert page.next_marker in ("", None)
            break
        assert page.truncated == "true"
        assert page.next_marker == str(len(seen))
        marker = page.next_marker
    assert pages == (total + 1) // 2
    assert len(seen) == len(set(seen)) == total
    assert set(created) <= set(seen)

    everything = list_keys(limit="1000")
    assert everything.truncated == "false" and len(everything.keys) == total

    disabled = list_keys(key_state="3")
    assert set(created[:2]) <= set(disabled.keys)
    assert all(d.key_state == "3" for d in disabled.key_details)
    assert disabled.total == len(disabled.keys)
    enabled = list_keys(key_state="2")
    assert set(created[2:]) <= set(enabled.keys)
    assert not set(created[:2]) & set(enabled.keys)
    assert all(d.key_state == "2" for d in enabled.key_details)
    assert enabled.total + disabled.total == total

    # A marker past the end is an empty, final page.
    past = list_keys(limit="2", marker=str(total + 10))
    assert (past.keys, past.truncated, past.total) == ([], "false", total)
    expect_otc_error("KMS.1601", client.list_keys, ListKeysRequest(body=ListKeysRequestBody(limit="0")))
    expect_otc_error("KMS.1602", client.list_keys, ListKeysRequest(body=ListKeysRequestBody(marker="-1")))


# ---- data keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fields, dek_bytes", [
    ({"key_spec": "AES_256"}, 32),
    ({"key_spec": "AES_128"}, 16),
    ({"datakey_length": "512"}, 64),
    ({}, 32),
])
def test_create_and_decrypt_datakey(hw: KmsClient, fields: dict[str, str], dek_bytes: int) -> None:
    key_id = create_key(hw)
    created = create_datakey(hw, key_id, **fields)
    assert created.key_id == key_id
    assert len(created.plain_text) == 2 * dek_bytes
    dek = bytes.fromhex(created.plain_text)
    blob = bytes.fromhex(created.cipher_text)
    assert dek not in blob

    decrypted = decrypt_datakey(hw, key_id, created.cipher_text, dek_bytes)
    assert decrypted.data_key == created.plain_text
    assert decrypted.datakey_length == str(dek_bytes)
    assert decrypted.datakey_dgst == hashlib.sha256(dek).hexdigest()

    # Two data keys differ.
    assert create_datakey(hw, key_id, **fields).plain_text != created.plain_text


def test_datakey_with_additional_authenticated_data(hw: KmsClient) -> None:
    key_id = create_key(hw)
    created = create_datakey(hw, key_id, key_spec="AES_256", additional_authenticated_data="file-42")
    decrypted = decrypt_datakey(hw, key_id, created.cipher_text, 32, aad="file-42")
    assert decrypted.data_key == created.plain_text
    expect_otc_error("KMS.2201", hw.decrypt_datakey, DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key_id, cipher_text=created.cipher_text, datakey_cipher_length="32",
        additional_authenticated_data="file-43")))
    expect_otc_error("KMS.2201", hw.decrypt_datakey, DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key_id, cipher_text=created.cipher_text, datakey_cipher_length="32")))
    # A DEK made without AAD does not decrypt with one.
    plain = create_datakey(hw, key_id)
    expect_otc_error("KMS.2201", hw.decrypt_datakey, DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key_id, cipher_text=plain.cipher_text, datakey_cipher_length="32", additional_authenticated_data="x")))


def test_datakey_without_plaintext(hw: KmsClient) -> None:
    key_id = create_key(hw)
    created = hw.create_datakey_without_plaintext(CreateDatakeyWithoutPlaintextRequest(
        body=CreateDatakeyRequestBody(key_id=key_id, datakey_length="256")))
    assert created.key_id == key_id
    assert getattr(created, "plain_text", None) is None
    decrypted = decrypt_datakey(hw, key_id, created.cipher_text, 32)
    assert len(bytes.fromhex(decrypted.data_key)) == 32
    assert decrypted.datakey_dgst == hashlib.sha256(bytes.fromhex(decrypted.data_key)).hexdigest()


def test_encrypt_datakey_then_decrypt(hw: KmsClient) -> None:
    key_id = create_key(hw)
    dek = bytes(range(64))
    encrypted = hw.encrypt_datakey(EncryptDatakeyRequest(body=EncryptDatakeyRequestBody(
        key_id=key_id, plain_text=with_digest(dek), datakey_plain_length="64")))
    assert encrypted.key_id == key_id
    assert encrypted.datakey_length == "64"
    decrypted = decrypt_datakey(hw, key_id, encrypted.cipher_text, 64)
    assert bytes.fromhex(decrypted.data_key) == dek
    assert decrypted.datakey_dgst == hashlib.sha256(dek).hexdigest()

    # With AAD, the same AAD is needed to get it back.
    encrypted = hw.encrypt_datakey(EncryptDatakeyRequest(body=EncryptDatakeyRequestBody(
        key_id=key_id, plain_text=with_digest(dek[:32]), datakey_plain_length="32", additional_authenticated_data="a")))
    assert decrypt_datakey(hw, key_id, encrypted.cipher_text, 32, aad="a").data_key == dek[:32].hex()
    expect_otc_error("KMS.2201", hw.decrypt_datakey, DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key_id, cipher_text=encrypted.cipher_text, datakey_cipher_length="32")))


def test_encrypt_datakey_bad_input(hw: KmsClient, raw_otc: RawOtc) -> None:
    key_id = create_key(hw)
    dek = bytes(32)
    wrong_digest = (dek + hashlib.sha256(b"other").digest()).hex()
    expect_otc_error("KMS.2103", hw.encrypt_datakey, EncryptDatakeyRequest(body=EncryptDatakeyRequestBody(
        key_id=key_id, plain_text=wrong_digest, datakey_plain_length="32")))
    # The error body carries no ciphertext.
    response = raw_otc.send("encrypt-datakey", {"key_id": key_id, "plain_text": wrong_digest,
                                                "datakey_plain_length": "32"})
    assert error_of(response) == (400, "KMS.2103")
    assert "cipher_text" not in response.text

    expect_otc_error("KMS.2101", hw.encrypt_datakey, EncryptDatakeyRequest(body=EncryptDatakeyRequestBody(
        key_id=key_id, plain_text="zz" * 64, datakey_plain_length="32")))
    # DEK without its digest.
    expect_otc_error("KMS.2101", hw.encrypt_datakey, EncryptDatakeyRequest(body=EncryptDatakeyRequestBody(
        key_id=key_id, plain_text=dek.hex(), datakey_plain_length="32")))
    expect_otc_error("KMS.2201", hw.decrypt_datakey, DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key_id, cipher_text="not-hex", datakey_cipher_length="32")))
    # Hex, but not a ciphertext.
    expect_otc_error("KMS.2201", hw.decrypt_datakey, DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key_id, cipher_text="00" * 80, datakey_cipher_length="32")))


def test_encrypt_and_decrypt_data(hw: KmsClient) -> None:
    key_id = create_key(hw)
    encrypted = hw.encrypt_data(EncryptDataRequest(body=EncryptDataRequestBody(key_id=key_id, plain_text="hello, otc")))
    assert encrypted.key_id == key_id
    blob = base64.b64decode(encrypted.cipher_text, validate=True)
    assert b"hello, otc" not in blob

    decrypted = hw.decrypt_data(DecryptDataRequest(body=DecryptDataRequestBody(cipher_text=encrypted.cipher_text)))
    assert decrypted.key_id == key_id
    assert decrypted.plain_text == "hello, otc"
    assert base64.b64decode(decrypted.plain_text_base64) == b"hello, otc"

    with_aad = hw.encrypt_data(EncryptDataRequest(body=EncryptDataRequestBody(
        key_id=key_id, plain_text="secret", additional_authenticated_data="ctx")))
    decrypted = hw.decrypt_data(DecryptDataRequest(body=DecryptDataRequestBody(
        cipher_text=with_aad.cipher_text, key_id=key_id, additional_authenticated_data="ctx")))
    assert decrypted.plain_text == "secret"
    with pytest.raises(ClientRequestException) as info:
        hw.decrypt_data(DecryptDataRequest(body=DecryptDataRequestBody(cipher_text=with_aad.cipher_text)))
    assert info.value.status_code == 400 and info.value.error_code.startswith("KMS.")


@pytest.mark.parametrize("bits", [512, 256, 8])
def test_gen_random(hw: KmsClient, bits: int) -> None:
    first = hw.create_random(CreateRandomRequest(body=GenRandomRequestBody(random_data_length=str(bits)))).random_data
    assert len(first) == bits // 4
    bytes.fromhex(first)
    if bits >= 256:
        second = hw.create_random(CreateRandomRequest(body=GenRandomRequestBody(random_data_length=str(bits))))
        assert second.random_data != first


# ---- rotation ------------------------------------------------------------------------------------


def test_key_rotation(hw: KmsClient) -> None:
    key_id = create_key(hw)

    def status():
        return hw.show_key_rotation_status(ShowKeyRotationStatusRequest(body=op(key_id)))

    initial = status()
    assert initial.key_rotation_enabled is False
    assert initial.rotation_interval == 365 and isinstance(initial.rotation_interval, int)
    assert initial.last_rotation_time == ""
    assert initial.number_of_rotations == 0 and isinstance(initial.number_of_rotations, int)

    hw.enable_key_rotation(EnableKeyRotationRequest(body=op(key_id)))
    assert status().key_rotation_enabled is True
    assert describe(hw, key_id).key_rotation_enabled == "true"

    hw.update_key_rotation_interval(UpdateKeyRotationIntervalRequest(
        body=UpdateKeyRotationIntervalRequestBody(key_id=key_id, rotation_interval=90)))
    after = status()
    assert (after.key_rotation_enabled, after.rotation_interval) == (True, 90)
    for bad in (29, 366):
        expect_otc_error("KMS.0308", hw.update_key_rotation_interval, UpdateKeyRotationIntervalRequest(
            body=UpdateKeyRotationIntervalRequestBody(key_id=key_id, rotation_interval=bad)))
    assert status().rotation_interval == 90

    hw.disable_key_rotation(DisableKeyRotationRequest(body=op(key_id)))
    assert status().key_rotation_enabled is False
    assert describe(hw, key_id).key_rotation_enabled == "false"


# ---- grants --------------------------------------------------------------------------------------


def test_grants(hw: KmsClient, kmsim: dict[str, Any]) -> None:
    key_id = create_key(hw)
    grantee = uuid.uuid4().hex
    first = hw.create_grant(CreateGrantRequest(body=CreateGrantRequestBody(
        key_id=key_id, grantee_principal=grantee, operations=["describe-key", "create-datakey"], name="g1",
        grantee_principal_type="user"))).grant_id
    second = hw.create_grant(CreateGrantRequest(body=CreateGrantRequestBody(
        key_id=key_id, grantee_principal=grantee, operations=["decrypt-datakey"], name="g2",
        retiring_principal=kmsim["domain_id"]))).grant_id
    assert first and second and first != second

    def list_grants(**fields: Any):
        return hw.list_grants(ListGrantsRequest(body=ListGrantsRequestBody(key_id=key_id, **fields)))

    listed = list_grants(limit="10")
    assert (listed.total, listed.truncated) == (2, "false")
    by_id = {g.grant_id: g for g in listed.grants}
    assert set(by_id) == {first, second}
    g1 = by_id[first]
    assert (g1.key_id, g1.grantee_principal, g1.grantee_principal_type, g1.name) == (key_id, grantee, "user", "g1")
    assert sorted(g1.operations) == ["create-datakey", "describe-key"]
    assert g1.creation_date.isdigit()
    assert by_id[second].retiring_principal == kmsim["domain_id"]

    page = list_grants(limit="1")
    assert (len(page.grants), page.truncated, page.next_marker, page.total) == (1, "true", "1", 2)
    rest = list_grants(limit="1", marker=page.next_marker)
    assert (len(rest.grants), rest.truncated) == (1, "false")
    assert {page.grants[0].grant_id, rest.grants[0].grant_id} == {first, second}

    retirable = hw.list_retirable_grants(ListRetirableGrantsRequest(body=ListRetirableGrantsRequestBody(limit="1000")))
    assert isinstance(retirable.total, int)
    retirable_ids = {g.grant_id for g in retirable.grants}
    assert second in retirable_ids and first not in retirable_ids

    expect_otc_error("KMS.2401", hw.create_grant, CreateGrantRequest(body=CreateGrantRequestBody(
        key_id=key_id, grantee_principal=grantee, operations=["create-grant"])))

    hw.cancel_grant(CancelGrantRequest(body=RevokeGrantRequestBody(key_id=key_id, grant_id=first)))
    assert [g.grant_id for g in list_grants(limit="10").grants] == [second]
    hw.cancel_self_grant(CancelSelfGrantRequest(body=RevokeGrantRequestBody(key_id=key_id, grant_id=second)))
    assert list_grants(limit="10").total == 0
    expect_otc_error("KMS.2501", hw.cancel_grant,
                     CancelGrantRequest(body=RevokeGrantRequestBody(key_id=key_id, grant_id=first)))


# ---- tags ----------------------------------------------------------------------------------------


def test_tags(hw: KmsClient) -> None:
    key_id = create_key(hw)
    env_value = unique("dev")
    hw.create_kms_tag(CreateKmsTagRequest(key_id=key_id, body=CreateKmsTagRequestBody(tag=TagItem(key="env", value=env_value))))
    hw.batch_create_kms_tags(BatchCreateKmsTagsRequest(key_id=key_id, body=BatchCreateKmsTagsRequestBody(
        action="create", tags=[TagItem(key="team", value="kms"), TagItem(key="cost", value="42")])))

    shown = hw.show_kms_tags(ShowKmsTagsRequest(key_id=key_id))
    assert shown.exist_tags_num == 3
    assert {(t.key, t.value) for t in shown.tags} == {("env", env_value), ("team", "kms"), ("cost", "42")}

    project_tags = {t.key: t.values for t in hw.list_kms_tags(ListKmsTagsRequest()).tags}
    assert env_value in project_tags["env"]
    assert "kms" in project_tags["team"]

    hw.batch_create_kms_tags(BatchCreateKmsTagsRequest(key_id=key_id, body=BatchCreateKmsTagsRequestBody(
        action="delete", tags=[TagItem(key="cost", value="42")])))
    hw.delete_tag(DeleteTagRequest(key_id=key_id, key="team"))
    shown = hw.show_kms_tags(ShowKmsTagsRequest(key_id=key_id))
    assert shown.exist_tags_num == 1
    assert [(t.key, t.value) for t in shown.tags] == [("env", env_value)]

    # Tag keys the SDK percent-encodes into the DELETE path (an encoded slash is signed as a separator).
    for odd in ("a/b c", "x%2Fy", "ü:+=~"):
        hw.create_kms_tag(CreateKmsTagRequest(key_id=key_id, body=CreateKmsTagRequestBody(tag=TagItem(key=odd, value="v"))))
        assert odd in {t.key for t in hw.show_kms_tags(ShowKmsTagsRequest(key_id=key_id)).tags}
        hw.delete_tag(DeleteTagRequest(key_id=key_id, key=odd))
        assert [t.key for t in hw.show_kms_tags(ShowKmsTagsRequest(key_id=key_id)).tags] == ["env"]

    expect_otc_error("KMS.0404", hw.batch_create_kms_tags, BatchCreateKmsTagsRequest(
        key_id=key_id, body=BatchCreateKmsTagsRequestBody(action="upsert", tags=[TagItem(key="a", value="b")])))


# ---- aliases -------------------------------------------------------------------------------------


def test_aliases(hw: KmsClient, kmsim: dict[str, Any]) -> None:
    key_alias = unique("hw-main")
    key_id = create_key(hw, alias=key_alias)
    other_id = create_key(hw)
    extra = "alias/" + unique("hw-extra")

    created = hw.create_alias(CreateAliasRequest(body=CreateAliasRequestBody(key_id=key_id, alias=extra)))
    assert (created.alias, created.key_id, created.domain_id) == (extra, key_id, kmsim["domain_id"])
    assert created.alias_urn.endswith(extra)
    assert created.create_time.isdigit()

    def aliases_of(kid: str) -> set[str]:
        listed = hw.list_aliases(ListAliasesRequest(key_id=kid, limit="100"))
        (page,) = listed.body
        assert page.page_info.current_count == len(page.aliases)
        assert all(a.key_id == kid for a in page.aliases)
        return {a.alias for a in page.aliases}

    assert aliases_of(key_id) == {f"alias/{key_alias}", extra}
    expect_otc_error("KMS.1104", hw.create_alias,
                     CreateAliasRequest(body=CreateAliasRequestBody(key_id=other_id, alias=extra)))

    associated = hw.associate_alias(AssociateAliasRequest(body=AssociateAliasRequestBody(alias=extra, target_key_id=other_id)))
    assert (associated.alias, associated.key_id) == (extra, other_id)
    assert aliases_of(key_id) == {f"alias/{key_alias}"}
    assert extra in aliases_of(other_id)

    hw.delete_alias(DeleteAliasRequest(body=DeleteAliasRequestBody(aliases=[extra], key_id=other_id)))
    assert extra not in aliases_of(other_id)
    assert describe(hw, key_id).key_alias == key_alias


# ---- deletion ------------------------------------------------------------------------------------


def test_schedule_and_cancel_deletion(hw: KmsClient) -> None:
    key_id = create_key(hw)
    dek = create_datakey(hw, key_id)
    for days in ("6", "1097"):
        expect_otc_error("KMS.1401", hw.delete_key, DeleteKeyRequest(
            body=ScheduleKeyDeletionRequestBody(key_id=key_id, pending_days=days)))
    assert describe(hw, key_id).key_state == "2"

    scheduled = hw.delete_key(DeleteKeyRequest(body=ScheduleKeyDeletionRequestBody(key_id=key_id, pending_days="7")))
    assert (scheduled.key_id, scheduled.key_state) == (key_id, "4")
    info = describe(hw, key_id)
    assert info.key_state == "4"
    expected_ms = (time.time() + 7 * 86400) * 1000
    assert abs(int(info.scheduled_deletion_date) - expected_ms) < 2 * 86400 * 1000

    expect_otc_error("KMS.0210", hw.create_datakey,
                     CreateDatakeyRequest(body=CreateDatakeyRequestBody(key_id=key_id, key_spec="AES_256")))
    expect_otc_error("KMS.0210", hw.decrypt_datakey, DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key_id, cipher_text=dek.cipher_text, datakey_cipher_length="32")))
    expect_otc_error("KMS.1402", hw.delete_key, DeleteKeyRequest(
        body=ScheduleKeyDeletionRequestBody(key_id=key_id, pending_days="1096")))

    cancelled = hw.cancel_key_deletion(CancelKeyDeletionRequest(body=op(key_id)))
    assert cancelled.key_id == key_id
    assert cancelled.key_state == "3"
    assert describe(hw, key_id).key_state == "3"
    assert describe(hw, key_id).scheduled_deletion_date == ""
    expect_otc_error("KMS.1501", hw.cancel_key_deletion, CancelKeyDeletionRequest(body=op(key_id)))
    hw.enable_key(EnableKeyRequest(body=op(key_id)))
    assert decrypt_datakey(hw, key_id, dek.cipher_text, 32).data_key == dek.plain_text

    # The upper bound is allowed too.
    assert hw.delete_key(DeleteKeyRequest(
        body=ScheduleKeyDeletionRequestBody(key_id=key_id, pending_days="1096"))).key_state == "4"


# ---- error paths ---------------------------------------------------------------------------------


def test_disabled_key(hw: KmsClient) -> None:
    key_id = create_key(hw)
    dek = create_datakey(hw, key_id)
    disabled = hw.disable_key(DisableKeyRequest(body=op(key_id)))
    assert (disabled.key_info.key_id, disabled.key_info.key_state) == (key_id, "3")
    assert describe(hw, key_id).key_state == "3"

    expect_otc_error("KMS.0209", hw.create_datakey,
                     CreateDatakeyRequest(body=CreateDatakeyRequestBody(key_id=key_id, key_spec="AES_256")))
    expect_otc_error("KMS.0209", hw.decrypt_datakey, DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key_id, cipher_text=dek.cipher_text, datakey_cipher_length="32")))
    expect_otc_error("KMS.0209", hw.encrypt_data,
                     EncryptDataRequest(body=EncryptDataRequestBody(key_id=key_id, plain_text="x")))
    expect_otc_error("KMS.1301", hw.disable_key, DisableKeyRequest(body=op(key_id)))

    enabled = hw.enable_key(EnableKeyRequest(body=op(key_id)))
    assert enabled.key_info.key_state == "2"
    expect_otc_error("KMS.1201", hw.enable_key, EnableKeyRequest(body=op(key_id)))
    assert decrypt_datakey(hw, key_id, dek.cipher_text, 32).data_key == dek.plain_text
    assert len(create_datakey(hw, key_id).plain_text) == 64
    hw.encrypt_data(EncryptDataRequest(body=EncryptDataRequestBody(key_id=key_id, plain_text="x")))


def test_unknown_and_missing_key(hw: KmsClient) -> None:
    unknown = str(uuid.uuid4())
    expect_otc_error("KMS.0207", hw.list_key_detail, ListKeyDetailRequest(body=op(unknown)))
    expect_otc_error("KMS.0207", hw.create_datakey,
                     CreateDatakeyRequest(body=CreateDatakeyRequestBody(key_id=unknown, key_spec="AES_256")))
    expect_otc_error("KMS.0207", hw.enable_key, EnableKeyRequest(body=op(unknown)))
    expect_otc_error("KMS.0204", hw.create_datakey,
                     CreateDatakeyRequest(body=CreateDatakeyRequestBody(key_spec="AES_256")))
    expect_otc_error("KMS.0204", hw.list_key_detail, ListKeyDetailRequest(body=OperateKeyRequestBody()))
    expect_otc_error("KMS.0205", hw.list_key_detail, ListKeyDetailRequest(body=op("not a key id!")))


def test_wrong_project_and_wrong_secret(hw: KmsClient, kmsim: dict[str, Any], project_id: str) -> None:
    key_id = create_key(hw)
    other_project = uuid.uuid4().hex
    assert other_project != project_id
    stranger = huawei_client(kmsim["endpoint"], other_project)
    expect_otc_error("KMS.0305", stranger.list_key_detail, ListKeyDetailRequest(body=op(key_id)), status=403)
    expect_otc_error("KMS.0305", stranger.create_key,
                     CreateKeyRequest(body=CreateKeyRequestBody(key_alias=unique("hw-stranger"))), status=403)

    bad_secret = huawei_client(kmsim["endpoint"], project_id, secret="not-the-secret")
    expect_otc_error("APIGW.0301", bad_secret.create_datakey,
                     CreateDatakeyRequest(body=CreateDatakeyRequestBody(key_id=key_id)), status=401)
    unknown_ak = huawei_client(kmsim["endpoint"], project_id, access_key="NOSUCHKEY")
    expect_otc_error("APIGW.0301", unknown_ak.list_key_detail, ListKeyDetailRequest(body=op(key_id)), status=401)
    assert describe(hw, key_id).key_state == "2"


# ---- raw HTTP ------------------------------------------------------------------------------------


def test_unimplemented_and_unknown_verbs(hw: KmsClient, raw_otc: RawOtc) -> None:
    key_id = create_key(hw)
    response = raw_otc.send("create-pin", {"pin_type": "PlainText"})
    assert error_of(response) == (404, "APIGW.0101")
    response = raw_otc.send("no-such-verb", {})
    assert error_of(response) == (404, "APIGW.0101")
    assert describe(hw, key_id).key_id == key_id


def test_malformed_json_changes_nothing(hw: KmsClient, raw_otc: RawOtc) -> None:
    def count() -> int:
        return hw.list_keys(ListKeysRequest(body=ListKeysRequestBody(limit="1"))).total

    before = count()
    alias = unique("hw-malformed")
    response = raw_otc.send("create-key", f'{{"key_alias": "{alias}", "key_description": '.encode())
    assert error_of(response) == (400, "KMS.0202")
    assert count() == before
    response = raw_otc.send("create-key", [{"key_alias": alias}])
    assert error_of(response) == (400, "KMS.0202")
    assert count() == before
    response = raw_otc.send("create-key", b"\xff\xfe not json")
    assert error_of(response) == (400, "KMS.0202")
    assert count() == before

    # A well-formed request over the same signer works, and the alias was never taken.
    response = raw_otc.send("create-key", {"key_alias": alias})
    assert response.status_code == 200, response.text
    key_id = response.json()["key_info"]["key_id"]
    assert count() == before + 1
    assert describe(hw, key_id).key_alias == alias


def test_sdk_date_window(hw: KmsClient, raw_otc: RawOtc) -> None:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    for skew in (dt.timedelta(minutes=-20), dt.timedelta(minutes=20)):
        response = raw_otc.send("list-keys", {"limit": "1"}, sdk_date=now + skew)
        assert error_of(response) == (401, "APIGW.0301"), skew
        # The server keeps serving.
        assert isinstance(hw.list_keys(ListKeysRequest(body=ListKeysRequestBody(limit="1"))).total, int)
    response = raw_otc.send("list-keys", {"limit": "1"}, sdk_date=now - dt.timedelta(minutes=10))
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["total"], int)


def test_raw_wire_shapes(hw: KmsClient, raw_otc: RawOtc) -> None:
    """What the SDK hides: numbers as strings, ints where the SDK wants ints, the error envelope."""
    key_id = create_key(hw)
    response = raw_otc.send("describe-key", {"key_id": key_id})
    assert response.status_code == 200
    assert response.headers.get("X-Request-Id")
    assert all(isinstance(v, str) for v in response.json()["key_info"].values())
    listed = raw_otc.send("list-keys", {"limit": "1"}).json()
    assert isinstance(listed["total"], int) and listed["truncated"] in ("true", "false")
    status = raw_otc.send("get-key-rotation-status", {"key_id": key_id}).json()
    assert status["key_rotation_enabled"] is False
    assert isinstance(status["rotation_interval"], int) and isinstance(status["number_of_rotations"], int)
    error = raw_otc.send("describe-key", {"key_id": str(uuid.uuid4())})
    assert set(error.json()) == {"error"} and set(error.json()["error"]) == {"error_code", "error_msg"}
    # Numbers are accepted as JSON numbers too.
    dek = raw_otc.send("create-datakey", {"key_id": key_id, "datakey_length": 128})
    assert dek.status_code == 200 and len(dek.json()["plain_text"]) == 32
    without = raw_otc.send("create-datakey-without-plaintext", {"key_id": key_id, "datakey_length": "256"}).json()
    assert set(without) == {"key_id", "cipher_text"}
    # The older encryption_context object is an encryption context as is.
    context = {"encryption_context": {"bucket": "b1", "object": "o1"}}
    dek = raw_otc.send("create-datakey", {"key_id": key_id, "key_spec": "AES_256", **context}).json()
    decrypted = raw_otc.send("decrypt-datakey", {"key_id": key_id, "cipher_text": dek["cipher_text"],
                                                 "datakey_cipher_length": "32", **context})
    assert decrypted.status_code == 200 and decrypted.json()["data_key"] == dek["plain_text"]
    wrong = raw_otc.send("decrypt-datakey", {"key_id": key_id, "cipher_text": dek["cipher_text"],
                                             "datakey_cipher_length": "32",
                                             "encryption_context": {"bucket": "b2", "object": "o1"}})
    assert error_of(wrong) == (400, "KMS.2201")
    assert error_of(raw_otc.send("create-datakey", {"key_id": key_id, "encryption_context": "x"})) == (400, "KMS.0208")


# ---- the same core through both dialects ---------------------------------------------------------


def test_key_from_boto3_used_through_huawei_sdk(kms, hw: KmsClient) -> None:
    key_id = kms.create_key(Description="made by boto3")["KeyMetadata"]["KeyId"]
    alias = unique("hw-from-aws")
    kms.create_alias(AliasName=f"alias/{alias}", TargetKeyId=key_id)

    info = describe(hw, key_id)
    assert (info.key_id, info.key_alias, info.key_description, info.key_state) == (key_id, alias, "made by boto3", "2")
    dek = create_datakey(hw, key_id, key_spec="AES_256")
    assert decrypt_datakey(hw, key_id, dek.cipher_text, 32).data_key == dek.plain_text
    assert key_id in hw.list_keys(ListKeysRequest(body=ListKeysRequestBody(limit="1000"))).keys

    kms.disable_key(KeyId=key_id)
    assert describe(hw, key_id).key_state == "3"
    expect_otc_error("KMS.0209", hw.create_datakey,
                     CreateDatakeyRequest(body=CreateDatakeyRequestBody(key_id=key_id, key_spec="AES_256")))
    kms.enable_key(KeyId=key_id)
    assert len(create_datakey(hw, key_id).plain_text) == 64


def test_datakey_from_huawei_sdk_decrypts_through_boto3(kms, hw: KmsClient) -> None:
    key_id = create_key(hw)
    with_aad = create_datakey(hw, key_id, key_spec="AES_256", additional_authenticated_data="obj-7")
    decrypted = kms.decrypt(CiphertextBlob=bytes.fromhex(with_aad.cipher_text),
                            EncryptionContext={"additional_authenticated_data": "obj-7"})
    assert decrypted["Plaintext"] == bytes.fromhex(with_aad.plain_text)
    assert decrypted["KeyId"].endswith(f"key/{key_id}")
    with pytest.raises(ClientError) as info:
        kms.decrypt(CiphertextBlob=bytes.fromhex(with_aad.cipher_text))
    assert info.value.response["Error"]["Code"] == "InvalidCiphertextException"

    plain = create_datakey(hw, key_id, key_spec="AES_128")
    decrypted = kms.decrypt(CiphertextBlob=bytes.fromhex(plain.cipher_text))
    assert decrypted["Plaintext"] == bytes.fromhex(plain.plain_text)

    # And back: a boto3 data key decrypts through decrypt-datakey.
    generated = kms.generate_data_key(KeyId=key_id, NumberOfBytes=32,
                                      EncryptionContext={"additional_authenticated_data": "obj-8"})
    back = decrypt_datakey(hw, key_id, generated["CiphertextBlob"].hex(), 32, aad="obj-8")
    assert bytes.fromhex(back.data_key) == generated["Plaintext"]


def test_audit_log_records_otc_calls(hw: KmsClient, kms, admin) -> None:
    key_id = create_key(hw)
    create_datakey(hw, key_id, additional_authenticated_data="audited")
    hw.disable_key(DisableKeyRequest(body=op(key_id)))
    expect_otc_error("KMS.0209", hw.create_datakey,
                     CreateDatakeyRequest(body=CreateDatakeyRequestBody(key_id=key_id)))
    kms.enable_key(KeyId=key_id)

    events = admin.audit(key=key_id)
    otc_events = [e for e in events if e["dialect"] == "otc"]
    operations = [e["operation"] for e in otc_events]
    assert operations == ["create-key", "create-datakey", "disable-key", "create-datakey"], events
    assert [e["outcome"] for e in otc_events] == ["Success", "Success", "Success", "KMS.0209"]
    assert otc_events[1]["encryption_context"] == {"additional_authenticated_data": "audited"}
    assert all(e["access_key"] == DEFAULT_ACCESS_KEY for e in otc_events)
    assert [e["operation"] for e in events if e["dialect"] == "aws"] == ["EnableKey"]
    failed = admin.audit(key=key_id, outcome="KMS.0209")
    assert [e["operation"] for e in failed] == ["create-datakey"]
