"""kmsim's AWS KMS API through boto3, checked against the behaviour of the real service.

Most tests share one in-memory server (fixture ``kms``) and create keys of their own, so they do
not depend on each other. Tests that move the simulated clock, need a configuration file
(accounts, seeded keys) or a data dir start servers of their own.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
import uuid
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError

from conftest import DEFAULT_ACCOUNT, DEFAULT_REGION, KmsimProcess

DAY = dt.timedelta(days=1)


# ---- helpers -------------------------------------------------------------------------------------


def expect_error(code: str, call: Callable[..., Any], /, **params: Any) -> dict:
    """Calls ``call(**params)``, asserts that it fails with the KMS error ``code`` (HTTP 400, as
    the real service sends every client error) and returns the error response."""
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    assert response["Error"]["Code"] == code, f"expected {code}, got {response['Error']} for {params}"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400, response["ResponseMetadata"]
    return response


def new_key(kms, **params: Any) -> dict:
    return kms.create_key(**params)["KeyMetadata"]


def alias_name(prefix: str = "test") -> str:
    return f"alias/{prefix}-{uuid.uuid4().hex[:12]}"


def key_arn(key_id: str, account: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def assert_close(actual: dt.datetime, expected: dt.datetime, tolerance: dt.timedelta = dt.timedelta(minutes=5)):
    assert abs(actual - expected) <= tolerance, f"{actual} is not within {tolerance} of {expected}"


def all_pages(call: Callable[..., dict], items_field: str, limit: int, **params: Any) -> list[list[Any]]:
    """Follows Marker/NextMarker by hand; checks the Truncated flag on every page."""
    pages, marker = [], None
    for _ in range(10_000):
        request = dict(params, Limit=limit)
        if marker is not None:
            request["Marker"] = marker
        page = call(**request)
        pages.append(page[items_field])
        assert len(page[items_field]) <= limit
        if not page["Truncated"]:
            assert "NextMarker" not in page
            return pages
        marker = page["NextMarker"]
        assert marker
    raise AssertionError("pagination did not end")


# ---- keys: create, describe, list ----------------------------------------------------------------


def test_create_key_metadata(kms):
    before = now_utc()
    meta = new_key(kms, Description="metadata check", Tags=[{"TagKey": "team", "TagValue": "kms"}])
    assert uuid.UUID(meta["KeyId"])
    assert meta["Arn"] == key_arn(meta["KeyId"])
    assert meta["AWSAccountId"] == DEFAULT_ACCOUNT
    assert meta["Description"] == "metadata check"
    assert meta["Enabled"] is True
    assert meta["KeyState"] == "Enabled"
    assert meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert meta["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert meta["KeyManager"] == "CUSTOMER"
    assert meta["Origin"] == "AWS_KMS"
    assert meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert "DeletionDate" not in meta
    assert_close(meta["CreationDate"], before)
    tags = kms.list_resource_tags(KeyId=meta["KeyId"])["Tags"]
    assert tags == [{"TagKey": "team", "TagValue": "kms"}]


def test_describe_key_by_every_identifier(kms):
    meta = new_key(kms, Description="four ways")
    name = alias_name("describe")
    kms.create_alias(AliasName=name, TargetKeyId=meta["KeyId"])
    alias_arn = f"arn:aws:kms:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:{name}"
    for key_id in (meta["KeyId"], meta["Arn"], name, alias_arn):
        described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert described["KeyId"] == meta["KeyId"], key_id
        assert described["Arn"] == meta["Arn"]
        assert described["Description"] == "four ways"


def test_describe_unknown_key_is_not_found(kms):
    expect_error("NotFoundException", kms.describe_key, KeyId=str(uuid.uuid4()))
    expect_error("NotFoundException", kms.describe_key, KeyId=key_arn(str(uuid.uuid4())))
    expect_error("NotFoundException", kms.describe_key, KeyId="alias/no-such-alias-" + uuid.uuid4().hex)


def test_update_key_description(kms):
    meta = new_key(kms, Description="before")
    kms.update_key_description(KeyId=meta["Arn"], Description="after")
    assert kms.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]["Description"] == "after"


def test_list_keys_pagination_by_hand(kms):
    created = {new_key(kms)["KeyId"] for _ in range(5)}
    pages = all_pages(kms.list_keys, "Keys", 2)
    listed = [k["KeyId"] for page in pages for k in page]
    assert len(listed) == len(set(listed)), "a key appeared on two pages"
    assert created <= set(listed)
    assert len(pages) >= 3
    for page in pages:
        for entry in page:
            assert entry["KeyArn"] == key_arn(entry["KeyId"])


def test_list_keys_with_the_boto3_paginator(kms):
    created = {new_key(kms)["KeyId"] for _ in range(3)}
    paginator = kms.get_paginator("list_keys")
    listed = [k["KeyId"] for page in paginator.paginate(PaginationConfig={"PageSize": 1}) for k in page["Keys"]]
    assert len(listed) == len(set(listed))
    assert created <= set(listed)


def test_list_keys_limit_and_marker_validation(kms):
    new_key(kms)
    assert len(kms.list_keys(Limit=1)["Keys"]) == 1
    expect_error("ValidationException", kms.list_keys, Limit=1001)
    expect_error("InvalidMarkerException", kms.list_keys, Marker="not-a-marker!")


def test_key_policy(kms):
    meta = new_key(kms)
    assert kms.list_key_policies(KeyId=meta["KeyId"])["PolicyNames"] == ["default"]
    policy = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
    assert policy["Version"] == "2012-10-17"
    assert policy["Statement"]
    new_policy = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"},
                       "Action": "kms:*", "Resource": "*"}],
    }
    kms.put_key_policy(KeyId=meta["KeyId"], PolicyName="default", Policy=json.dumps(new_policy))
    stored = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
    assert stored == new_policy


def test_description_length_limit(kms):
    meta = new_key(kms, Description="d" * 8192)
    assert len(kms.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]["Description"]) == 8192
    expect_error("ValidationException", kms.create_key, Description="d" * 8193)
    expect_error("ValidationException", kms.update_key_description, KeyId=meta["KeyId"], Description="d" * 8193)


def test_malformed_policy_document(kms):
    meta = new_key(kms)
    expect_error("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=meta["KeyId"],
                 PolicyName="default", Policy="{this is not json")
    expect_error("MalformedPolicyDocumentException", kms.create_key, Policy="{this is not json")


def test_key_policy_grammar_is_checked(kms):
    meta = new_key(kms)
    root = f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"
    # A key policy is a resource policy: each statement needs a principal.
    no_principal = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
    error = expect_error("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=meta["KeyId"],
                         PolicyName="default", Policy=json.dumps(no_principal))
    assert error["Error"]["Message"] == "Policy contains a statement with one or more invalid principals."
    bad_effect = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Permit", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"}]}
    expect_error("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=meta["KeyId"],
                 PolicyName="default", Policy=json.dumps(bad_effect))
    bad_operator = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*",
         "Condition": {"StringEqualsMaybe": {"kms:CallerAccount": DEFAULT_ACCOUNT}}}]}
    expect_error("MalformedPolicyDocumentException", kms.create_key, Policy=json.dumps(bad_operator))
    # The key keeps its policy.
    assert json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])["Statement"][0][
        "Principal"] == {"AWS": root}


def test_key_policy_lockout_safety_check(kms):
    # PutKeyPolicy: "the principal that is making the request ... must be allowed to make a subsequent PutKeyPolicy
    # request on the KMS key" unless BypassPolicyLockoutSafetyCheck.
    meta = new_key(kms)
    someone_else = {"Version": "2012-10-17", "Statement": [
        {"Sid": "alice only", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/alice"},
         "Action": "kms:*", "Resource": "*"}]}
    message = "The new key policy will not allow you to update the key policy in the future."
    error = expect_error("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=meta["KeyId"],
                         PolicyName="default", Policy=json.dumps(someone_else))
    assert error["Error"]["Message"] == message
    error = expect_error("MalformedPolicyDocumentException", kms.create_key, Policy=json.dumps(someone_else))
    assert error["Error"]["Message"] == message
    # Allowing everything but PutKeyPolicy locks the caller out too; an explicit Deny of it as well.
    all_but = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": DEFAULT_ACCOUNT}, "NotAction": "kms:PutKeyPolicy", "Resource": "*"}]}
    expect_error("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=meta["KeyId"], PolicyName="default",
                 Policy=json.dumps(all_but))
    denied = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": DEFAULT_ACCOUNT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": "*", "Action": "kms:PutKeyPolicy", "Resource": "*"}]}
    expect_error("MalformedPolicyDocumentException", kms.put_key_policy, KeyId=meta["KeyId"], PolicyName="default",
                 Policy=json.dumps(denied))
    # Bypassed, the policy is taken as given — and locks the account root out, as AWS warns it would.
    kms.put_key_policy(KeyId=meta["KeyId"], PolicyName="default", Policy=json.dumps(someone_else),
                       BypassPolicyLockoutSafetyCheck=True)
    created = kms.create_key(Policy=json.dumps(someone_else), BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    for key in (meta, created):
        error = expect_error("AccessDeniedException", kms.get_key_policy, KeyId=key["KeyId"], PolicyName="default")
        assert error["Error"]["Message"] == (
            f"User: arn:aws:iam::{DEFAULT_ACCOUNT}:root is not authorized to perform: kms:GetKeyPolicy on resource: "
            f"{key['Arn']} because no resource-based policy allows the kms:GetKeyPolicy action")
        expect_error("AccessDeniedException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x")


def test_dry_run(kms):
    key = new_key(kms)
    for call, params in ((kms.encrypt, {"KeyId": key["KeyId"], "Plaintext": b"x"}),
                         (kms.generate_data_key, {"KeyId": key["KeyId"], "KeySpec": "AES_256"})):
        with pytest.raises(ClientError) as info:
            call(DryRun=True, **params)
        assert info.value.response["Error"]["Code"] == "DryRunOperationException"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    # A dry-run CreateGrant creates nothing; a dry-run RevokeGrant revokes nothing.
    grantee = f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/dry"
    with pytest.raises(ClientError) as info:
        kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee, Operations=["Decrypt"], DryRun=True)
    assert info.value.response["Error"]["Code"] == "DryRunOperationException"
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []
    grant_id = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee, Operations=["Decrypt"])["GrantId"]
    with pytest.raises(ClientError) as info:
        kms.revoke_grant(KeyId=key["KeyId"], GrantId=grant_id, DryRun=True)
    assert info.value.response["Error"]["Code"] == "DryRunOperationException"
    assert [g["GrantId"] for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]] == [grant_id]


def test_management_operations_on_a_key_pending_deletion(kms):
    key = new_key(kms)
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    # Reads still work.
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == []
    assert kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]
    # Changes are refused with KMSInvalidStateException.
    expect_error("KMSInvalidStateException", kms.disable_key, KeyId=key["KeyId"])
    expect_error("KMSInvalidStateException", kms.enable_key_rotation, KeyId=key["KeyId"])
    expect_error("KMSInvalidStateException", kms.rotate_key_on_demand, KeyId=key["KeyId"])
    expect_error("KMSInvalidStateException", kms.tag_resource, KeyId=key["KeyId"],
                 Tags=[{"TagKey": "k", "TagValue": "v"}])
    expect_error("KMSInvalidStateException", kms.create_alias, AliasName=alias_name(), TargetKeyId=key["KeyId"])
    expect_error("KMSInvalidStateException", kms.create_grant, KeyId=key["KeyId"],
                 GranteePrincipal=f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/x", Operations=["Decrypt"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


def test_update_description_of_a_key_pending_deletion(kms):
    key = new_key(kms, Description="original")
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    expect_error("KMSInvalidStateException", kms.update_key_description, KeyId=key["KeyId"], Description="new")
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Description"] == "original"


# ---- aliases -------------------------------------------------------------------------------------


def test_alias_lifecycle(kms):
    key_a, key_b = new_key(kms), new_key(kms)
    name = alias_name("life")
    kms.create_alias(AliasName=name, TargetKeyId=key_a["KeyId"])

    aliases = kms.list_aliases(KeyId=key_a["KeyId"])["Aliases"]
    assert [a["AliasName"] for a in aliases] == [name]
    assert aliases[0]["AliasArn"] == f"arn:aws:kms:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:{name}"
    assert aliases[0]["TargetKeyId"] == key_a["KeyId"]

    expect_error("AlreadyExistsException", kms.create_alias, AliasName=name, TargetKeyId=key_b["KeyId"])

    kms.update_alias(AliasName=name, TargetKeyId=key_b["KeyId"])
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key_b["KeyId"]
    assert kms.list_aliases(KeyId=key_a["KeyId"])["Aliases"] == []
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=key_b["KeyId"])["Aliases"]] == [name]
    assert kms.encrypt(KeyId=name, Plaintext=b"x")["KeyId"] == key_b["Arn"]

    kms.delete_alias(AliasName=name)
    expect_error("NotFoundException", kms.describe_key, KeyId=name)
    expect_error("NotFoundException", kms.encrypt, KeyId=name, Plaintext=b"x")
    expect_error("NotFoundException", kms.delete_alias, AliasName=name)
    all_names = [a["AliasName"] for page in all_pages(kms.list_aliases, "Aliases", 100) for a in page]
    assert name not in all_names
    # The keys themselves are untouched.
    assert kms.describe_key(KeyId=key_a["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_alias_names_are_validated(kms):
    key = new_key(kms)
    expect_error("ValidationException", kms.create_alias, AliasName="no-prefix", TargetKeyId=key["KeyId"])
    expect_error("ValidationException", kms.create_alias, AliasName="alias/has space", TargetKeyId=key["KeyId"])
    expect_error("NotFoundException", kms.create_alias, AliasName=alias_name(), TargetKeyId=str(uuid.uuid4()))


def test_alias_forms_as_key_id_in_crypto_operations(kms):
    key = new_key(kms)
    name = alias_name("forms")
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    alias_arn = f"arn:aws:kms:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:{name}"
    context = {"purpose": "alias-forms"}
    blobs = []
    for key_id in (name, alias_arn, key["Arn"], key["KeyId"]):
        encrypted = kms.encrypt(KeyId=key_id, Plaintext=b"secret", EncryptionContext=context)
        assert encrypted["KeyId"] == key["Arn"], key_id
        blobs.append(encrypted["CiphertextBlob"])
        data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
        assert data_key["KeyId"] == key["Arn"], key_id
        blobs.append(data_key["CiphertextBlob"])
    for blob in blobs:
        for key_id in (name, alias_arn, key["Arn"], key["KeyId"]):
            decrypted = kms.decrypt(CiphertextBlob=blob, KeyId=key_id, EncryptionContext=context)
            assert decrypted["KeyId"] == key["Arn"]


def test_list_aliases_pagination(kms):
    key = new_key(kms)
    names = {alias_name("page") for _ in range(5)}
    for name in names:
        kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    pages = all_pages(kms.list_aliases, "Aliases", 2, KeyId=key["KeyId"])
    listed = [a["AliasName"] for page in pages for a in page]
    assert sorted(listed) == sorted(names)
    assert len(pages) == 3


# ---- encrypt and decrypt -------------------------------------------------------------------------


def test_encrypt_decrypt_round_trip_with_context(kms):
    key = new_key(kms)
    plaintext = bytes(range(256)) * 4
    context = {"purpose": "round-trip", "tenant": "t-1"}
    encrypted = kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext, EncryptionContext=context)
    assert encrypted["KeyId"] == key["Arn"]
    assert encrypted["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert plaintext not in encrypted["CiphertextBlob"]
    # Decrypt needs no KeyId for a symmetric key; the context's key order does not matter.
    decrypted = kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"],
                            EncryptionContext={"tenant": "t-1", "purpose": "round-trip"})
    assert decrypted["Plaintext"] == plaintext
    assert decrypted["KeyId"] == key["Arn"]
    assert decrypted["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    # Encryption is randomized.
    again = kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext, EncryptionContext=context)
    assert again["CiphertextBlob"] != encrypted["CiphertextBlob"]


def test_plaintext_size_limits(kms):
    key = new_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"\xff" * 4096)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"\xff" * 4096
    expect_error("ValidationException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"\x00" * 4097)
    assert kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key["KeyId"], Plaintext=b"\x00")["CiphertextBlob"])[
        "Plaintext"] == b"\x00"


@pytest.mark.parametrize(
    "encrypt_context, decrypt_context",
    [
        ({"purpose": "a"}, {"purpose": "b"}),  # other value
        ({"purpose": "a"}, {}),  # context missing
        ({}, {"purpose": "a"}),  # context where there was none
        ({"purpose": "a"}, {"Purpose": "a"}),  # keys are case-sensitive
        ({"purpose": "a"}, {"purpose": "A"}),  # values are case-sensitive
        ({"purpose": "a"}, {"purpose": "a", "extra": "x"}),  # superset
        ({"purpose": "a", "extra": "x"}, {"purpose": "a"}),  # subset
        ({"ab": "c"}, {"a": "bc"}),  # same concatenation, different pairs
        ({"a": "b,c=d"}, {"a": "b", "c": "d"}),  # separators inside values
    ],
)
def test_wrong_encryption_context_is_invalid_ciphertext(kms, encrypt_context, decrypt_context):
    key = new_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"context-bound", EncryptionContext=encrypt_context)[
        "CiphertextBlob"]
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=decrypt_context)
    # The right context still works afterwards.
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=encrypt_context)["Plaintext"] == b"context-bound"


def test_every_single_bit_flip_is_invalid_ciphertext(kms):
    key = new_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"sixteen bytes!!!", EncryptionContext={"k": "v"})[
        "CiphertextBlob"]
    for index in range(len(blob)):
        for bit in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[index] ^= bit
            expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=bytes(tampered),
                         EncryptionContext={"k": "v"})
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"k": "v"})["Plaintext"] == b"sixteen bytes!!!"


def test_truncated_and_garbage_blobs_are_invalid_ciphertext(kms):
    key = new_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"truncate me")["CiphertextBlob"]
    for length in range(1, len(blob)):
        expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob[:length])
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob + b"\x00")
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=b"\x00" * 64)
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=os.urandom(200))
    expect_error("ValidationException", kms.decrypt, CiphertextBlob=b"\x01" * 6145)


def test_decrypt_with_the_key_id_of_another_key_is_incorrect_key(kms):
    key_a, key_b = new_key(kms), new_key(kms)
    blob = kms.encrypt(KeyId=key_a["KeyId"], Plaintext=b"for a")["CiphertextBlob"]
    expect_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, KeyId=key_b["KeyId"])
    expect_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, KeyId=key_b["Arn"])
    assert kms.decrypt(CiphertextBlob=blob, KeyId=key_a["Arn"])["Plaintext"] == b"for a"


def test_unsupported_encryption_algorithm_for_symmetric_key(kms):
    key = new_key(kms)
    expect_error("InvalidKeyUsageException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x",
                 EncryptionAlgorithm="RSAES_OAEP_SHA_256")


def test_ciphertext_from_another_region_does_not_decrypt(kms, kmsim, client_for):
    key = new_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"regional")["CiphertextBlob"]
    west = client_for(kmsim, region="us-west-2")
    expect_error("InvalidCiphertextException", west.decrypt, CiphertextBlob=blob)
    assert key["KeyId"] not in {k["KeyId"] for k in west.list_keys(Limit=1000)["Keys"]}


# ---- data keys, re-encrypt, random ---------------------------------------------------------------


@pytest.mark.parametrize("params, size", [({"KeySpec": "AES_256"}, 32), ({"KeySpec": "AES_128"}, 16),
                                          ({"NumberOfBytes": 1}, 1), ({"NumberOfBytes": 64}, 64),
                                          ({"NumberOfBytes": 1024}, 1024)])
def test_generate_data_key_sizes(kms, params, size):
    key = new_key(kms)
    context = {"bucket": "b1"}
    data_key = kms.generate_data_key(KeyId=key["KeyId"], EncryptionContext=context, **params)
    assert data_key["KeyId"] == key["Arn"]
    assert len(data_key["Plaintext"]) == size
    decrypted = kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=context)
    assert decrypted["Plaintext"] == data_key["Plaintext"]
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=data_key["CiphertextBlob"])


def test_generate_data_key_parameter_validation(kms):
    key = new_key(kms)
    expect_error("ValidationException", kms.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_256",
                 NumberOfBytes=32)
    expect_error("ValidationException", kms.generate_data_key, KeyId=key["KeyId"])
    expect_error("ValidationException", kms.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_512")
    expect_error("ValidationException", kms.generate_data_key, KeyId=key["KeyId"], NumberOfBytes=1025)
    expect_error("ValidationException", kms.generate_data_key_without_plaintext, KeyId=key["KeyId"])


def test_data_keys_are_random(kms):
    key = new_key(kms)
    keys = {kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")["Plaintext"] for _ in range(5)}
    assert len(keys) == 5


def test_generate_data_key_without_plaintext(kms):
    key = new_key(kms)
    context = {"volume": "vol-1"}
    for params, size in (({"KeySpec": "AES_256"}, 32), ({"KeySpec": "AES_128"}, 16), ({"NumberOfBytes": 48}, 48)):
        response = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], EncryptionContext=context, **params)
        assert "Plaintext" not in response
        assert response["KeyId"] == key["Arn"]
        decrypted = kms.decrypt(CiphertextBlob=response["CiphertextBlob"], EncryptionContext=context)
        assert len(decrypted["Plaintext"]) == size


def test_re_encrypt(kms):
    key_a, key_b = new_key(kms), new_key(kms)
    source_context, destination_context = {"stage": "old"}, {"stage": "new"}
    blob = kms.encrypt(KeyId=key_a["KeyId"], Plaintext=b"move me", EncryptionContext=source_context)[
        "CiphertextBlob"]
    moved = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=source_context,
                           DestinationKeyId=key_b["Arn"], DestinationEncryptionContext=destination_context)
    assert moved["SourceKeyId"] == key_a["Arn"]
    assert moved["KeyId"] == key_b["Arn"]
    decrypted = kms.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext=destination_context)
    assert decrypted == {**decrypted, "Plaintext": b"move me", "KeyId": key_b["Arn"]}
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=moved["CiphertextBlob"],
                 EncryptionContext=source_context)
    expect_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=moved["CiphertextBlob"],
                 EncryptionContext=destination_context, KeyId=key_a["KeyId"])
    # Wrong source context or source key.
    expect_error("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=blob,
                 SourceEncryptionContext={"stage": "wrong"}, DestinationKeyId=key_b["KeyId"])
    expect_error("IncorrectKeyException", kms.re_encrypt, CiphertextBlob=blob, SourceKeyId=key_b["KeyId"],
                 SourceEncryptionContext=source_context, DestinationKeyId=key_b["KeyId"])
    # Re-encrypting under the same key with a new context is allowed too.
    same = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=source_context,
                          DestinationKeyId=key_a["KeyId"])
    assert kms.decrypt(CiphertextBlob=same["CiphertextBlob"])["Plaintext"] == b"move me"


def test_generate_random(kms):
    for size in (1, 32, 1024):
        assert len(kms.generate_random(NumberOfBytes=size)["Plaintext"]) == size
    samples = {kms.generate_random(NumberOfBytes=32)["Plaintext"] for _ in range(5)}
    assert len(samples) == 5
    expect_error("ValidationException", kms.generate_random, NumberOfBytes=1025)


# ---- key state: disable, enable, deletion --------------------------------------------------------


def test_disable_and_enable_key(kms):
    key = new_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"while enabled")["CiphertextBlob"]
    kms.disable_key(KeyId=key["KeyId"])
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("Disabled", False)
    expect_error("DisabledException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    expect_error("DisabledException", kms.decrypt, CiphertextBlob=blob)
    expect_error("DisabledException", kms.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_256")
    expect_error("DisabledException", kms.generate_data_key_without_plaintext, KeyId=key["KeyId"],
                 KeySpec="AES_256")
    other = new_key(kms)
    expect_error("DisabledException", kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=other["KeyId"])
    kms.enable_key(KeyId=key["KeyId"])
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("Enabled", True)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"while enabled"


def test_schedule_key_deletion_default_window_and_cancel(kms):
    key = new_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"doomed")["CiphertextBlob"]
    before = now_utc()
    scheduled = kms.schedule_key_deletion(KeyId=key["KeyId"])
    assert scheduled["KeyId"] == key["Arn"]
    assert scheduled["KeyState"] == "PendingDeletion"
    assert scheduled["PendingWindowInDays"] == 30
    assert_close(scheduled["DeletionDate"], before + 30 * DAY)

    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("PendingDeletion", False)
    assert_close(meta["DeletionDate"], scheduled["DeletionDate"], dt.timedelta(seconds=1))

    expect_error("KMSInvalidStateException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    expect_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob)
    expect_error("KMSInvalidStateException", kms.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_256")
    expect_error("KMSInvalidStateException", kms.enable_key, KeyId=key["KeyId"])
    expect_error("KMSInvalidStateException", kms.schedule_key_deletion, KeyId=key["KeyId"], PendingWindowInDays=7)

    cancelled = kms.cancel_key_deletion(KeyId=key["KeyId"])
    assert cancelled["KeyId"] == key["Arn"]
    meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("Disabled", False)
    assert "DeletionDate" not in meta
    expect_error("DisabledException", kms.decrypt, CiphertextBlob=blob)
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"doomed"
    expect_error("KMSInvalidStateException", kms.cancel_key_deletion, KeyId=key["KeyId"])


@pytest.mark.parametrize("days", [7, 30])
def test_schedule_key_deletion_window_bounds_accepted(kms, days):
    key = new_key(kms)
    before = now_utc()
    scheduled = kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=days)
    assert scheduled["PendingWindowInDays"] == days
    assert_close(scheduled["DeletionDate"], before + days * DAY)


@pytest.mark.parametrize("days", [6, 31])
def test_schedule_key_deletion_window_out_of_range(kms, days):
    key = new_key(kms)
    expect_error("ValidationException", kms.schedule_key_deletion, KeyId=key["KeyId"], PendingWindowInDays=days)
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_deletion_window_end_purges_the_key(fresh_kmsim: KmsimProcess):
    kms = fresh_kmsim.client()
    key, survivor = new_key(kms), new_key(kms)
    name = alias_name("purged")
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"gone soon", EncryptionContext={"c": "1"})["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)

    swept = fresh_kmsim.admin.advance_clock(days=6)
    assert swept["purged_keys"] == 0
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"

    swept = fresh_kmsim.admin.advance_clock(days=1, seconds=3600)
    assert swept["purged_keys"] == 1
    expect_error("NotFoundException", kms.describe_key, KeyId=key["KeyId"])
    expect_error("NotFoundException", kms.decrypt, CiphertextBlob=blob, EncryptionContext={"c": "1"})
    expect_error("NotFoundException", kms.cancel_key_deletion, KeyId=key["KeyId"])
    expect_error("NotFoundException", kms.encrypt, KeyId=name, Plaintext=b"x")
    listed = {k["KeyId"] for k in kms.list_keys()["Keys"]}
    assert key["KeyId"] not in listed and survivor["KeyId"] in listed
    assert name not in {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
    assert kms.describe_key(KeyId=survivor["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_cancelled_deletion_is_not_purged(fresh_kmsim: KmsimProcess):
    kms = fresh_kmsim.client()
    key = new_key(kms)
    kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=key["KeyId"])
    assert fresh_kmsim.admin.advance_clock(days=40)["purged_keys"] == 0
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"


# ---- rotation ------------------------------------------------------------------------------------


def test_key_rotation_settings(kms):
    key = new_key(kms)
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert status["KeyRotationEnabled"] is False

    before = now_utc()
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=180)
    status = kms.get_key_rotation_status(KeyId=key["Arn"])
    assert status["KeyRotationEnabled"] is True
    assert status["RotationPeriodInDays"] == 180
    assert_close(status["NextRotationDate"], before + 180 * DAY)

    kms.enable_key_rotation(KeyId=key["KeyId"])
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["RotationPeriodInDays"] == 365

    kms.disable_key_rotation(KeyId=key["KeyId"])
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False

    expect_error("ValidationException", kms.enable_key_rotation, KeyId=key["KeyId"], RotationPeriodInDays=2561)
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False


def test_rotate_on_demand_keeps_old_ciphertexts(kms):
    key = new_key(kms)
    assert kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"] == []
    blobs = {b"before": kms.encrypt(KeyId=key["KeyId"], Plaintext=b"before")["CiphertextBlob"]}
    before = now_utc()
    rotated = kms.rotate_key_on_demand(KeyId=key["KeyId"])
    assert rotated["KeyId"] in (key["KeyId"], key["Arn"])
    blobs[b"after"] = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"after")["CiphertextBlob"]

    rotations = kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]
    assert len(rotations) == 1
    assert rotations[0]["KeyId"] == key["Arn"]
    assert rotations[0]["RotationType"] == "ON_DEMAND"
    assert_close(rotations[0]["RotationDate"], before)
    assert_close(kms.get_key_rotation_status(KeyId=key["KeyId"])["OnDemandRotationStartDate"], before)

    for plaintext, blob in blobs.items():
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
    # Key state, ARN and aliases do not change with rotation.
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Arn"] == key["Arn"]


def test_on_demand_rotation_limit_and_rotation_pagination(kms):
    key = new_key(kms)
    blobs = []
    # The API reference: "You can perform on-demand key rotation a maximum of 25 times per KMS key."
    for i in range(25):
        blobs.append((f"gen-{i}".encode(), kms.encrypt(KeyId=key["KeyId"], Plaintext=f"gen-{i}".encode())[
            "CiphertextBlob"]))
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    expect_error("LimitExceededException", kms.rotate_key_on_demand, KeyId=key["KeyId"])
    pages = all_pages(kms.list_key_rotations, "Rotations", 10, KeyId=key["KeyId"])
    rotations = [r for page in pages for r in page]
    assert len(rotations) == 25 and len(pages) == 3
    assert [r["KeyMaterialState"] for r in rotations] == ["NON_CURRENT"] * 24 + ["CURRENT"]
    assert rotations[-1]["KeyMaterialId"] == kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    assert len({r["KeyMaterialId"] for r in rotations}) == 25
    assert {r["RotationType"] for r in rotations} == {"ON_DEMAND"}
    dates = [r["RotationDate"] for r in rotations]
    assert dates == sorted(dates)
    for plaintext, blob in blobs:
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext


def test_rotation_of_disabled_key_is_refused(kms):
    key = new_key(kms)
    kms.disable_key(KeyId=key["KeyId"])
    with pytest.raises(ClientError) as info:
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    assert info.value.response["Error"]["Code"] in ("DisabledException", "KMSInvalidStateException")
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"] == []


def test_automatic_rotation_when_the_period_passes(fresh_kmsim: KmsimProcess):
    kms = fresh_kmsim.client()
    key, unrotated = new_key(kms), new_key(kms)
    created = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CreationDate"]
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=90)
    old_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"generation 0", EncryptionContext={"g": "0"})[
        "CiphertextBlob"]

    assert fresh_kmsim.admin.advance_clock(days=89)["rotated_keys"] == 0
    assert kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"] == []

    assert fresh_kmsim.admin.advance_clock(days=2)["rotated_keys"] == 1
    rotations = kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"]
    assert_close(rotations[0]["RotationDate"], created + 90 * DAY, dt.timedelta(days=1))
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert status["KeyRotationEnabled"] is True
    assert_close(status["NextRotationDate"], created + 180 * DAY, dt.timedelta(days=1))

    new_blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"generation 1")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=old_blob, EncryptionContext={"g": "0"})["Plaintext"] == b"generation 0"
    assert kms.decrypt(CiphertextBlob=new_blob)["Plaintext"] == b"generation 1"

    fresh_kmsim.admin.advance_clock(days=90)
    assert [r["RotationType"] for r in kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]] == [
        "AUTOMATIC", "AUTOMATIC"]
    assert kms.list_key_rotations(KeyId=unrotated["KeyId"])["Rotations"] == []
    assert kms.decrypt(CiphertextBlob=old_blob, EncryptionContext={"g": "0"})["Plaintext"] == b"generation 0"


def test_disabled_key_is_not_rotated_automatically(fresh_kmsim: KmsimProcess):
    kms = fresh_kmsim.client()
    key = new_key(kms)
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=90)
    kms.disable_key(KeyId=key["KeyId"])
    fresh_kmsim.admin.advance_clock(days=100)
    assert kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"] == []


# ---- tags ----------------------------------------------------------------------------------------


def test_tags(kms):
    key = new_key(kms)
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "env", "TagValue": "dev"},
                                               {"TagKey": "owner", "TagValue": "alice"},
                                               {"TagKey": "empty", "TagValue": ""}])
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]}
    assert tags == {"env": "dev", "owner": "alice", "empty": ""}

    kms.tag_resource(KeyId=key["Arn"], Tags=[{"TagKey": "env", "TagValue": "prod"}])
    kms.untag_resource(KeyId=key["KeyId"], TagKeys=["owner", "not-there"])
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]}
    assert tags == {"env": "prod", "empty": ""}

    expect_error("TagException", kms.tag_resource, KeyId=key["KeyId"], Tags=[{"TagKey": "aws:x", "TagValue": "y"}])
    expect_error("NotFoundException", kms.list_resource_tags, KeyId=str(uuid.uuid4()))
    assert len(kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]) == 2


def test_tag_limit(kms):
    key = new_key(kms)
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": f"k{i}", "TagValue": "v"} for i in range(50)])
    # 50 tags per key is the quota; the 51st is refused (kmsim: TagException) and not stored.
    with pytest.raises(ClientError) as info:
        kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "k50", "TagValue": "v"}])
    assert info.value.response["Error"]["Code"] in ("TagException", "LimitExceededException")
    pages = all_pages(kms.list_resource_tags, "Tags", 20, KeyId=key["KeyId"])
    assert sorted(t["TagKey"] for page in pages for t in page) == sorted(f"k{i}" for i in range(50))


# ---- grants --------------------------------------------------------------------------------------


def test_grant_lifecycle(kms):
    key = new_key(kms)
    grantee = f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/app-{uuid.uuid4().hex[:8]}"
    retiree = f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/retirer-{uuid.uuid4().hex[:8]}"
    created = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee, RetiringPrincipal=retiree,
                               Operations=["Encrypt", "Decrypt"], Name="app-grant",
                               Constraints={"EncryptionContextSubset": {"app": "x"}})
    grant_id, token = created["GrantId"], created["GrantToken"]
    assert grant_id and token

    grants = kms.list_grants(KeyId=key["KeyId"])["Grants"]
    assert len(grants) == 1
    grant = grants[0]
    assert grant["GrantId"] == grant_id
    assert grant["KeyId"] == key["Arn"]
    assert grant["GranteePrincipal"] == grantee
    assert grant["RetiringPrincipal"] == retiree
    assert grant["Name"] == "app-grant"
    assert grant["IssuingAccount"] == f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"
    assert sorted(grant["Operations"]) == ["Decrypt", "Encrypt"]
    assert grant["Constraints"] == {"EncryptionContextSubset": {"app": "x"}}

    # Same name and parameters: the same grant (CreateGrant is idempotent with a name).
    again = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee, RetiringPrincipal=retiree,
                             Operations=["Encrypt", "Decrypt"], Name="app-grant",
                             Constraints={"EncryptionContextSubset": {"app": "x"}})
    assert again["GrantId"] == grant_id
    assert again["GrantToken"] != token, "every CreateGrant returns a new grant token"
    assert len(kms.list_grants(KeyId=key["KeyId"])["Grants"]) == 1
    token = again["GrantToken"]

    retirable = kms.list_retirable_grants(RetiringPrincipal=retiree)["Grants"]
    assert [g["GrantId"] for g in retirable] == [grant_id]
    assert retirable[0]["KeyId"] == key["Arn"]

    kms.retire_grant(GrantToken=token)
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []
    assert kms.list_retirable_grants(RetiringPrincipal=retiree)["Grants"] == []


def test_every_token_of_a_named_grant_stays_valid(kms):
    # AWS API reference, CreateGrant Name: "the returned grant token is unique with every CreateGrant request,
    # even when a duplicate GrantId is returned. All grant tokens for the same grant ID can be used
    # interchangeably."
    key = new_key(kms)
    grantee = f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/retry-{uuid.uuid4().hex[:8]}"
    params = dict(KeyId=key["KeyId"], GranteePrincipal=grantee, Operations=["Encrypt"], Name="retried")
    first, second = kms.create_grant(**params), kms.create_grant(**params)
    assert first["GrantId"] == second["GrantId"]
    assert kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", GrantTokens=[second["GrantToken"]])["KeyId"] == key["Arn"]
    assert kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", GrantTokens=[first["GrantToken"]])["KeyId"] == key["Arn"]
    kms.retire_grant(GrantToken=first["GrantToken"])
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []


def test_revoke_and_retire_by_id(kms):
    key = new_key(kms)
    grantee = f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/bob"
    first = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee, Operations=["Decrypt"])["GrantId"]
    second = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee, Operations=["GenerateDataKey"])[
        "GrantId"]
    other = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/carol",
                             Operations=["Encrypt"])["GrantId"]
    assert first != second

    assert [g["GrantId"] for g in kms.list_grants(KeyId=key["KeyId"], GrantId=second)["Grants"]] == [second]
    by_grantee = kms.list_grants(KeyId=key["KeyId"], GranteePrincipal=grantee)["Grants"]
    assert sorted(g["GrantId"] for g in by_grantee) == sorted([first, second])

    kms.revoke_grant(KeyId=key["KeyId"], GrantId=first)
    kms.retire_grant(KeyId=key["Arn"], GrantId=second)
    assert [g["GrantId"] for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]] == [other]


def test_grant_validation(kms):
    key = new_key(kms)
    grantee = f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/dave"
    expect_error("ValidationException", kms.create_grant, KeyId=key["KeyId"], GranteePrincipal=grantee,
                 Operations=["NotAnOperation"])
    expect_error("NotFoundException", kms.create_grant, KeyId=str(uuid.uuid4()), GranteePrincipal=grantee,
                 Operations=["Decrypt"])
    expect_error("InvalidGrantTokenException", kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x",
                 GrantTokens=["not-a-real-grant-token"])
    token = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee, Operations=["Encrypt"])["GrantToken"]
    assert kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", GrantTokens=[token])["KeyId"] == key["Arn"]


def test_list_grants_pagination(kms):
    key = new_key(kms)
    ids = {kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/u{i}",
                            Operations=["Decrypt"])["GrantId"] for i in range(5)}
    pages = all_pages(kms.list_grants, "Grants", 2, KeyId=key["KeyId"])
    listed = [g["GrantId"] for page in pages for g in page]
    assert sorted(listed) == sorted(ids)
    assert len(pages) == 3


# ---- audit log -----------------------------------------------------------------------------------


def test_audit_log_records_operations_and_outcomes(kms, admin):
    key = new_key(kms)
    secret_plaintext = b"audit-plaintext-" + uuid.uuid4().hex.encode()
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=secret_plaintext, EncryptionContext={"purpose": "audit"})[
        "CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"purpose": "audit"})["Plaintext"] == secret_plaintext
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob,
                 EncryptionContext={"purpose": "wrong"})

    created = admin.audit(operation="CreateKey", key=key["KeyId"])
    assert [e["outcome"] for e in created] == ["Success"]
    assert created[0]["key_arn"] == key["Arn"]

    encrypts = admin.audit(operation="Encrypt", key=key["KeyId"])
    assert len(encrypts) == 1
    event = encrypts[0]
    assert event["outcome"] == "Success"
    assert event["key_arn"] == key["Arn"]
    assert event["encryption_context"] == {"purpose": "audit"}
    assert event["account"] == DEFAULT_ACCOUNT
    assert event["access_key"] == "test"
    assert event["principal"] == f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"
    assert event["region"] == DEFAULT_REGION
    assert event["via_service"] is None
    assert event["source"] == "127.0.0.1"
    assert event["dialect"] == "aws"
    assert_close(dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00")), now_utc())

    decrypts = admin.audit(operation="Decrypt", key=key["Arn"])
    assert [e["outcome"] for e in decrypts] == ["Success", "InvalidCiphertextException"]
    assert decrypts[1]["encryption_context"] == {"purpose": "wrong"}
    assert all(e["key_arn"] == key["Arn"] for e in decrypts)
    failed = admin.audit(operation="Decrypt", key=key["KeyId"], outcome="InvalidCiphertextException")
    assert len(failed) == 1

    # Nothing secret is logged.
    everything = json.dumps(admin.audit(key=key["KeyId"]))
    assert secret_plaintext.decode() not in everything
    assert base64.b64encode(secret_plaintext).decode() not in everything


def test_audit_log_records_failures_before_key_resolution(kms, admin):
    missing = str(uuid.uuid4())
    expect_error("NotFoundException", kms.describe_key, KeyId=missing)
    events = admin.audit(operation="DescribeKey", outcome="NotFoundException")
    assert any(missing in (e["key_arn"] or "") for e in events)


# ---- authentication ------------------------------------------------------------------------------


def test_wrong_secret_is_invalid_signature_and_changes_nothing(kms, kmsim, client_for):
    bad = client_for(kmsim, access_key="test", secret="not-the-secret")
    def all_key_ids() -> set[str]:
        return {k["KeyId"] for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]}

    before = all_key_ids()
    expect_error("InvalidSignatureException", bad.create_key, Description="must not exist")
    expect_error("InvalidSignatureException", bad.list_keys)
    after = all_key_ids()
    assert after == before


def test_unknown_access_key_is_unrecognized_client(kmsim, client_for):
    stranger = client_for(kmsim, access_key="AKIDUNKNOWN", secret="whatever")
    expect_error("UnrecognizedClientException", stranger.list_keys)
    expect_error("UnrecognizedClientException", stranger.generate_random, NumberOfBytes=8)


def test_clock_skew(kmsim, client_for, monkeypatch):
    import botocore.auth

    client = client_for(kmsim)
    real_now = botocore.auth.get_current_datetime
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda *a, **k: real_now(*a, **k) - dt.timedelta(minutes=5))
    assert len(client.generate_random(NumberOfBytes=4)["Plaintext"]) == 4
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda *a, **k: real_now(*a, **k) - dt.timedelta(minutes=20))
    expect_error("InvalidSignatureException", client.generate_random, NumberOfBytes=4)
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda *a, **k: real_now(*a, **k) + dt.timedelta(minutes=20))
    expect_error("InvalidSignatureException", client.generate_random, NumberOfBytes=4)


def test_unsigned_request_is_missing_authentication_token(raw_kms):
    response = raw_kms.send("TrentService.ListKeys", {}, sign=False)
    assert response.status == 400
    assert response.json()["__type"] == "MissingAuthenticationTokenException"


def test_tampered_body_after_signing_is_invalid_signature(kmsim):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import urllib.error
    import urllib.request

    body = json.dumps({"NumberOfBytes": 8}).encode()
    request = AWSRequest(method="POST", url=kmsim["endpoint"] + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.1",
                                  "X-Amz-Target": "TrentService.GenerateRandom"})
    SigV4Auth(Credentials("test", "test"), "kms", DEFAULT_REGION).add_auth(request)
    tampered = json.dumps({"NumberOfBytes": 9}).encode()
    http_request = urllib.request.Request(kmsim["endpoint"] + "/", data=tampered, method="POST")
    for name, value in request.headers.items():
        http_request.add_header(name, value if isinstance(value, str) else value.decode())
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(http_request, timeout=30)
    assert info.value.code == 400
    assert json.loads(info.value.read())["__type"] == "InvalidSignatureException"


def test_unknown_operation(raw_kms):
    response = raw_kms.send("TrentService.NoSuchOperation", {})
    assert response.status == 400
    assert response.json()["__type"] == "UnknownOperationException"
    assert response.headers.get("Content-Type", response.headers.get("content-type")) == "application/x-amz-json-1.1"


def test_malformed_json_body_is_serialization_exception(raw_kms):
    response = raw_kms.send("TrentService.ListKeys", b"{not json")
    assert response.status == 400
    assert response.json()["__type"] == "SerializationException"
    response = raw_kms.send("TrentService.GenerateRandom", {"NumberOfBytes": "eight"})
    assert response.status == 400
    assert response.json()["__type"] == "SerializationException"


def test_raw_signed_request_round_trip(raw_kms):
    response = raw_kms.send("TrentService.GenerateRandom", {"NumberOfBytes": 16})
    assert response.status == 200
    assert len(base64.b64decode(response.json()["Plaintext"])) == 16
    assert response.headers.get("x-amzn-RequestId") or response.headers.get("x-amzn-requestid")


def test_oversize_body_is_refused_and_the_server_keeps_serving(raw_kms):
    huge = json.dumps({"NumberOfBytes": 8, "Padding": "x" * (2 * 1024 * 1024)})
    response = raw_kms.send("TrentService.GenerateRandom", huge)
    assert 400 <= response.status < 500
    assert "__type" in response.json()
    assert raw_kms.send("TrentService.GenerateRandom", {"NumberOfBytes": 8}).status == 200


def test_concurrent_clients(kms):
    from concurrent.futures import ThreadPoolExecutor

    keys = [new_key(kms)["KeyId"] for _ in range(4)]

    def worker(n: int) -> int:
        done = 0
        for i in range(15):
            key_id = keys[(n + i) % len(keys)]
            plaintext = f"worker {n} message {i}".encode() * (1 + i)
            context = {"worker": str(n), "i": str(i)}
            blob = kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)["CiphertextBlob"]
            assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == plaintext
            data_key = kms.generate_data_key(KeyId=key_id, NumberOfBytes=32)
            assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]
            if i % 5 == 0:
                kms.create_key(Description=f"concurrent {n}/{i}")
            done += 1
        return done

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(worker, range(8))) == 8 * 15


# ---- admin API -----------------------------------------------------------------------------------


def test_admin_health_clock_and_reset(fresh_kmsim: KmsimProcess):
    admin = fresh_kmsim.admin
    assert admin.health()["status"] == "ok"
    kms = fresh_kmsim.client()
    key = new_key(kms)
    start = admin.clock()["now"]
    moved = admin.advance_clock(days=2)
    assert moved["now"] - start >= 2 * 86_400
    assert moved["offset_seconds"] >= 2 * 86_400
    assert admin.audit(key=key["KeyId"])

    assert admin.reset()["reset"] is True
    assert admin.audit() == []
    assert admin.clock()["offset_seconds"] == 0
    expect_error("NotFoundException", kms.describe_key, KeyId=key["KeyId"])
    assert kms.list_keys()["Keys"] == []


# ---- other accounts and grants -------------------------------------------------------------------

OTHER_ACCOUNT = "111122223333"
THIRD_ACCOUNT = "444455556666"
ACCOUNTS_CONFIG = f"""
[[accounts]]
id = "{OTHER_ACCOUNT}"
access_keys = [{{ access_key_id = "AKIDOTHER", secret_access_key = "other-secret" }}]

[[accounts]]
id = "{THIRD_ACCOUNT}"
access_keys = [{{ access_key_id = "AKIDTHIRD", secret_access_key = "third-secret" }}]
"""
OTHER_ROOT = f"arn:aws:iam::{OTHER_ACCOUNT}:root"


@pytest.fixture
def accounts(start_kmsim):
    """A server with a second and a third account: (server, owner, other, third) clients."""
    server = start_kmsim(config=ACCOUNTS_CONFIG)
    owner = server.client()
    other = server.client(access_key="AKIDOTHER", secret="other-secret")
    third = server.client(access_key="AKIDTHIRD", secret="third-secret")
    return server, owner, other, third


def test_other_account_needs_a_grant(accounts):
    server, owner, other, third = accounts
    key = new_key(owner)
    owner_blob = owner.encrypt(KeyId=key["KeyId"], Plaintext=b"owner data")["CiphertextBlob"]

    expect_error("AccessDeniedException", other.encrypt, KeyId=key["Arn"], Plaintext=b"x")
    expect_error("AccessDeniedException", other.decrypt, CiphertextBlob=owner_blob)
    expect_error("AccessDeniedException", other.generate_data_key, KeyId=key["Arn"], KeySpec="AES_256")
    expect_error("AccessDeniedException", other.describe_key, KeyId=key["Arn"])
    # A bare key id names a key of the caller's own account.
    expect_error("NotFoundException", other.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    assert key["KeyId"] not in {k["KeyId"] for k in other.list_keys()["Keys"]}

    owner.create_grant(KeyId=key["KeyId"], GranteePrincipal=OTHER_ROOT,
                       Operations=["Encrypt", "Decrypt", "GenerateDataKey"])

    encrypted = other.encrypt(KeyId=key["Arn"], Plaintext=b"other data", EncryptionContext={"from": "other"})
    assert encrypted["KeyId"] == key["Arn"]
    assert other.decrypt(CiphertextBlob=owner_blob)["Plaintext"] == b"owner data"
    assert owner.decrypt(CiphertextBlob=encrypted["CiphertextBlob"], EncryptionContext={"from": "other"})[
        "Plaintext"] == b"other data"
    data_key = other.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32
    assert other.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]

    # Only what was granted, and only to the grantee.
    expect_error("AccessDeniedException", other.generate_data_key_without_plaintext, KeyId=key["Arn"],
                 KeySpec="AES_256")
    expect_error("AccessDeniedException", other.describe_key, KeyId=key["Arn"])
    expect_error("AccessDeniedException", other.disable_key, KeyId=key["Arn"])
    expect_error("AccessDeniedException", other.schedule_key_deletion, KeyId=key["Arn"])
    expect_error("AccessDeniedException", third.encrypt, KeyId=key["Arn"], Plaintext=b"x")
    expect_error("AccessDeniedException", third.decrypt, CiphertextBlob=owner_blob)
    assert owner.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"

    events = server.admin.audit(operation="Encrypt", key=key["KeyId"], account=OTHER_ACCOUNT)
    # Denied (key ARN), not found (bare id: the caller's own account), then allowed by the grant.
    assert [e["outcome"] for e in events] == ["AccessDeniedException", "NotFoundException", "Success"]
    allowed = events[2]
    assert (allowed["access_key"], allowed["principal"], allowed["key_arn"]) == ("AKIDOTHER", OTHER_ROOT, key["Arn"])
    assert events[0]["key_arn"] == key["Arn"]


def test_grant_constraint_encryption_context_equals(accounts):
    _, owner, other, _ = accounts
    key = new_key(owner)
    owner.create_grant(KeyId=key["KeyId"], GranteePrincipal=OTHER_ROOT, Operations=["Encrypt", "Decrypt"],
                       Constraints={"EncryptionContextEquals": {"tenant": "blue"}})
    blob = other.encrypt(KeyId=key["Arn"], Plaintext=b"blue", EncryptionContext={"tenant": "blue"})[
        "CiphertextBlob"]
    assert other.decrypt(CiphertextBlob=blob, EncryptionContext={"tenant": "blue"})["Plaintext"] == b"blue"
    for context in ({"tenant": "red"}, {}, {"tenant": "blue", "extra": "x"}, {"Tenant": "blue"}):
        expect_error("AccessDeniedException", other.encrypt, KeyId=key["Arn"], Plaintext=b"x",
                     EncryptionContext=context)
    red_blob = owner.encrypt(KeyId=key["KeyId"], Plaintext=b"red", EncryptionContext={"tenant": "red"})[
        "CiphertextBlob"]
    expect_error("AccessDeniedException", other.decrypt, CiphertextBlob=red_blob,
                 EncryptionContext={"tenant": "red"})


def test_grant_constraint_encryption_context_subset(accounts):
    _, owner, other, _ = accounts
    key = new_key(owner)
    owner.create_grant(KeyId=key["KeyId"], GranteePrincipal=OTHER_ROOT, Operations=["Encrypt"],
                       Constraints={"EncryptionContextSubset": {"tenant": "blue"}})
    other.encrypt(KeyId=key["Arn"], Plaintext=b"x", EncryptionContext={"tenant": "blue"})
    other.encrypt(KeyId=key["Arn"], Plaintext=b"x", EncryptionContext={"tenant": "blue", "extra": "x"})
    expect_error("AccessDeniedException", other.encrypt, KeyId=key["Arn"], Plaintext=b"x",
                 EncryptionContext={"extra": "x"})
    expect_error("AccessDeniedException", other.encrypt, KeyId=key["Arn"], Plaintext=b"x")


def test_revoked_and_retired_grants_end_access(accounts):
    _, owner, other, _ = accounts
    key = new_key(owner)
    revocable = owner.create_grant(KeyId=key["KeyId"], GranteePrincipal=OTHER_ROOT, Operations=["Encrypt"])
    other.encrypt(KeyId=key["Arn"], Plaintext=b"x")
    owner.revoke_grant(KeyId=key["KeyId"], GrantId=revocable["GrantId"])
    expect_error("AccessDeniedException", other.encrypt, KeyId=key["Arn"], Plaintext=b"x")

    retirable = owner.create_grant(KeyId=key["KeyId"], GranteePrincipal=OTHER_ROOT, Operations=["Encrypt"],
                                   RetiringPrincipal=OTHER_ROOT)
    other.encrypt(KeyId=key["Arn"], Plaintext=b"x", GrantTokens=[retirable["GrantToken"]])
    other.retire_grant(GrantToken=retirable["GrantToken"])
    expect_error("AccessDeniedException", other.encrypt, KeyId=key["Arn"], Plaintext=b"x")
    assert owner.list_grants(KeyId=key["KeyId"])["Grants"] == []


def test_other_account_cannot_revoke_or_list_grants(accounts):
    _, owner, other, _ = accounts
    key = new_key(owner)
    grant = owner.create_grant(KeyId=key["KeyId"], GranteePrincipal=OTHER_ROOT, Operations=["Encrypt"])
    expect_error("AccessDeniedException", other.revoke_grant, KeyId=key["Arn"], GrantId=grant["GrantId"])
    expect_error("AccessDeniedException", other.list_grants, KeyId=key["Arn"])
    # The grantee may retire only as retiring principal or with the RetireGrant operation.
    expect_error("AccessDeniedException", other.retire_grant, GrantToken=grant["GrantToken"])
    assert len(owner.list_grants(KeyId=key["KeyId"])["Grants"]) == 1


def test_cross_account_re_encrypt_needs_re_encrypt_grants(accounts):
    _, owner, other, _ = accounts
    owner_key, other_key = new_key(owner), new_key(other)
    blob = owner.encrypt(KeyId=owner_key["KeyId"], Plaintext=b"migrate me")["CiphertextBlob"]
    owner.create_grant(KeyId=owner_key["KeyId"], GranteePrincipal=OTHER_ROOT, Operations=["Decrypt"])
    expect_error("AccessDeniedException", other.re_encrypt, CiphertextBlob=blob, DestinationKeyId=other_key["KeyId"])
    owner.create_grant(KeyId=owner_key["KeyId"], GranteePrincipal=OTHER_ROOT, Operations=["ReEncryptFrom"])
    moved = other.re_encrypt(CiphertextBlob=blob, DestinationKeyId=other_key["KeyId"])
    assert (moved["SourceKeyId"], moved["KeyId"]) == (owner_key["Arn"], other_key["Arn"])
    assert other.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"] == b"migrate me"
    expect_error("AccessDeniedException", owner.decrypt, CiphertextBlob=moved["CiphertextBlob"])


def test_accounts_have_separate_aliases(accounts):
    _, owner, other, _ = accounts
    owner_key, other_key = new_key(owner), new_key(other)
    assert other_key["Arn"] == key_arn(other_key["KeyId"], OTHER_ACCOUNT)
    assert other_key["AWSAccountId"] == OTHER_ACCOUNT
    owner.create_alias(AliasName="alias/shared-name", TargetKeyId=owner_key["KeyId"])
    other.create_alias(AliasName="alias/shared-name", TargetKeyId=other_key["KeyId"])
    assert owner.describe_key(KeyId="alias/shared-name")["KeyMetadata"]["KeyId"] == owner_key["KeyId"]
    assert other.describe_key(KeyId="alias/shared-name")["KeyMetadata"]["KeyId"] == other_key["KeyId"]
    assert other.encrypt(KeyId="alias/shared-name", Plaintext=b"x")["KeyId"] == other_key["Arn"]


# ---- seeded keys: stable ciphertexts across processes --------------------------------------------

SEED_KEY_ID = "11111111-2222-3333-4444-555555555555"
SEED_MATERIAL = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
SEED_CONFIG = f"""
[[keys]]
id = "{SEED_KEY_ID}"
material_hex = "{SEED_MATERIAL}"
description = "seeded for tests"
aliases = ["alias/seeded"]
"""
# Made once by kmsim with SEED_CONFIG: `encrypt(KeyId="alias/seeded", Plaintext=b"stable across runs",
# EncryptionContext={"fixture": "golden"})`. Every kmsim with this seed must still decrypt it: the
# blob format is a compatibility promise.
GOLDEN_PLAINTEXT = b"stable across runs"
GOLDEN_CONTEXT = {"fixture": "golden"}
GOLDEN_BLOB_B64 = (
    "ASQxMTExMTExMS0yMjIyLTMzMzMtNDQ0NC01NTU1NTU1NTU1NTUAAAAA22sBRbH0CVU6Esbo7TVYsK8kU8EmBQRJ2su9JZ1b0D3GfebS4BBGp9JYFBmz6c9JAr8="
)


def test_seeded_key_is_usable_by_id_and_alias(start_kmsim):
    kms = start_kmsim(config=SEED_CONFIG).client()
    meta = kms.describe_key(KeyId="alias/seeded")["KeyMetadata"]
    assert meta["KeyId"] == SEED_KEY_ID
    assert meta["Arn"] == key_arn(SEED_KEY_ID)
    assert meta["Description"] == "seeded for tests"
    assert meta["KeyState"] == "Enabled"
    assert SEED_KEY_ID in {k["KeyId"] for k in kms.list_keys()["Keys"]}


def test_seeded_ciphertext_decrypts_in_an_independent_process(start_kmsim):
    first = start_kmsim(config=SEED_CONFIG)
    second = start_kmsim(config=SEED_CONFIG)
    assert first.endpoint != second.endpoint
    kms_first, kms_second = first.client(), second.client()
    context = {"run": "independent"}
    blob = kms_first.encrypt(KeyId="alias/seeded", Plaintext=b"made by the first", EncryptionContext=context)[
        "CiphertextBlob"]
    decrypted = kms_second.decrypt(CiphertextBlob=blob, EncryptionContext=context)
    assert decrypted["Plaintext"] == b"made by the first"
    assert decrypted["KeyId"] == key_arn(SEED_KEY_ID)
    data_key = kms_second.generate_data_key(KeyId=SEED_KEY_ID, KeySpec="AES_256")
    assert kms_first.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]

    # The same key id with other material does not decrypt it.
    other_material = SEED_CONFIG.replace(SEED_MATERIAL, "ff" * 32)
    impostor = start_kmsim(config=other_material).client()
    expect_error("InvalidCiphertextException", impostor.decrypt, CiphertextBlob=blob, EncryptionContext=context)


def test_golden_ciphertext_still_decrypts(start_kmsim):
    kms = start_kmsim(config=SEED_CONFIG).client()
    blob = base64.b64decode(GOLDEN_BLOB_B64)
    decrypted = kms.decrypt(CiphertextBlob=blob, EncryptionContext=GOLDEN_CONTEXT)
    assert decrypted["Plaintext"] == GOLDEN_PLAINTEXT
    assert decrypted["KeyId"] == key_arn(SEED_KEY_ID)
    expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob)


def test_seeded_keys_come_back_after_reset(start_kmsim):
    server = start_kmsim(config=SEED_CONFIG)
    kms = server.client()
    made = new_key(kms)
    server.admin.reset()
    listed = {k["KeyId"] for k in kms.list_keys()["Keys"]}
    assert listed == {SEED_KEY_ID}
    assert made["KeyId"] not in listed
    assert kms.describe_key(KeyId="alias/seeded")["KeyMetadata"]["KeyId"] == SEED_KEY_ID


# ---- durability: restart on the same data dir ----------------------------------------------------


def test_state_survives_a_graceful_restart(kmsim_data_dir):
    server = kmsim_data_dir(config=SEED_CONFIG)
    kms = server.client()
    key, disabled, doomed = new_key(kms, Description="durable"), new_key(kms), new_key(kms)
    name = alias_name("durable")
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    context = {"restart": "yes"}
    before_rotation = kms.encrypt(KeyId=name, Plaintext=b"v0", EncryptionContext=context)["CiphertextBlob"]
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=100)
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    after_rotation = kms.encrypt(KeyId=name, Plaintext=b"v1", EncryptionContext=context)["CiphertextBlob"]
    kms.tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "keep", "TagValue": "me"}])
    grant = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/app",
                             Operations=["Decrypt"])
    kms.disable_key(KeyId=disabled["KeyId"])
    deletion = kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=10)["DeletionDate"]
    seeded_blob = kms.encrypt(KeyId="alias/seeded", Plaintext=b"seeded")["CiphertextBlob"]

    master_key = server.data_dir / "master.key"
    assert master_key.is_file()
    assert stat.S_IMODE(master_key.stat().st_mode) & 0o077 == 0, "the master key file is readable by others"

    assert server.restart() == 0, "kmsim did not exit cleanly on SIGTERM"
    kms = server.client()

    meta = kms.describe_key(KeyId=name)["KeyMetadata"]
    assert (meta["KeyId"], meta["Description"], meta["KeyState"]) == (key["KeyId"], "durable", "Enabled")
    assert kms.decrypt(CiphertextBlob=before_rotation, EncryptionContext=context)["Plaintext"] == b"v0"
    assert kms.decrypt(CiphertextBlob=after_rotation, EncryptionContext=context)["Plaintext"] == b"v1"
    assert kms.decrypt(CiphertextBlob=seeded_blob)["Plaintext"] == b"seeded"
    assert [r["RotationType"] for r in kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]] == ["ON_DEMAND"]
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 100)
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [{"TagKey": "keep", "TagValue": "me"}]
    assert [g["GrantId"] for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]] == [grant["GrantId"]]
    kms.retire_grant(GrantToken=grant["GrantToken"])
    assert kms.describe_key(KeyId=disabled["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    doomed_meta = kms.describe_key(KeyId=doomed["KeyId"])["KeyMetadata"]
    assert doomed_meta["KeyState"] == "PendingDeletion"
    assert doomed_meta["DeletionDate"] == deletion
    assert {key["KeyId"], disabled["KeyId"], doomed["KeyId"], SEED_KEY_ID} <= {
        k["KeyId"] for k in kms.list_keys()["Keys"]}


def test_acknowledged_key_survives_kill_9(kmsim_data_dir):
    server = kmsim_data_dir()
    kms = server.client()
    key = new_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"acknowledged")["CiphertextBlob"]
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    server.restart(crash=True)
    kms = server.client()
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"acknowledged"
    assert len(kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]) == 1


# ---- AWS's wording, where clients and suites compare it ------------------------------------------------


def error_message(code: str, call: Callable[..., Any], /, **params: Any) -> str:
    return expect_error(code, call, **params)["Error"]["Message"]


def test_error_messages_are_aws_wording(kms):
    key = new_key(kms)["KeyId"]
    assert error_message("ValidationException", kms.encrypt, KeyId=key, Plaintext=b"") == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1")
    assert error_message("ValidationException", kms.encrypt, KeyId=key, Plaintext=b"x" * 4097) == (
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096")
    assert error_message("NotFoundException", kms.describe_key, KeyId="not-a-key-id") == "Invalid keyId 'not-a-key-id'"
    assert error_message("ValidationException", kms.create_alias, AliasName="no-prefix", TargetKeyId=key).startswith(
        'Alias must start with the prefix "alias/".')
    message = error_message("ValidationException", kms.create_key, KeySpec="RSA_1024")
    assert message.startswith("1 validation error detected: Value 'RSA_1024' at 'keySpec' failed to satisfy "
                              "constraint: Member must satisfy enum value set: [")
    for spec in ("SYMMETRIC_DEFAULT", "RSA_2048", "ECC_NIST_P256", "ECC_SECG_P256K1", "HMAC_512"):
        assert spec in message


def test_a_missing_key_is_not_found_before_any_other_check(kms):
    missing = str(uuid.uuid4())
    # Each of these would fail another check on an existing key (usage, algorithm, state, size).
    for call, params in [
        (kms.sign, {"Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"}),
        (kms.generate_mac, {"Message": b"m", "MacAlgorithm": "HMAC_SHA_256"}),
        (kms.get_public_key, {}),
        (kms.encrypt, {"Plaintext": b"m", "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
        (kms.enable_key_rotation, {}),
        (kms.cancel_key_deletion, {}),
        (kms.get_parameters_for_import, {"WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}),
        (kms.replicate_key, {"ReplicaRegion": "eu-west-1"}),
    ]:
        expect_error("NotFoundException", call, KeyId=missing, **params)


def test_service_aliases_are_listed_once_their_keys_exist(kms, s3):
    bucket = f"aliases-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms")
    listed = {a["AliasName"]: a for page in all_pages(kms.list_aliases, "Aliases", 100) for a in page}
    s3_alias = listed["alias/aws/s3"]
    assert s3_alias["TargetKeyId"] == kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["KeyId"]
    assert s3_alias["AliasArn"] == f"arn:aws:kms:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:alias/aws/s3"
    assert kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["KeyManager"] == "AWS"
