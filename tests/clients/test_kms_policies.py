"""Key policies evaluated on every KMS request, through boto3 (KMS and S3) and the aws CLI.

AWS KMS's rules ("Determining access to an AWS KMS key"): the key policy is the root of access — in the key's
own account it must allow the caller directly, or name the account (which delegates to the caller's identity
policies, as the default key policy does); another account needs the key policy and its own identity policies; a
grant allows its operations besides; an explicit deny wins. Denials are AccessDeniedException with AWS's message,
"User: ARN is not authorized to perform: ACTION on resource: KEY_ARN" and why; S3 passes a KMS denial on as 403
AccessDenied. Each decision is in the audit log with the deciding statement's Sid.

The callers here are account roots, whose identity policies allow everything, so these tests turn on key policies,
grants and condition keys alone (`test_access_scenarios.py` adds IAM users and roles).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError

from conftest import DEFAULT_ACCOUNT, DEFAULT_REGION

ROOT = f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"
OTHER_ACCOUNT = "111122223333"
OTHER_CONFIG = f"""
[[accounts]]
id = "{OTHER_ACCOUNT}"
access_keys = [{{ access_key_id = "AKIDPOLICYOTHER", secret_access_key = "other-secret" }}]
"""


def expect_denied(call: Callable[..., Any], /, **params: Any) -> str:
    """Asserts that ``call(**params)`` fails with AccessDeniedException (HTTP 400); returns the message."""
    with pytest.raises(ClientError) as info:
        call(**params)
    error = info.value.response["Error"]
    assert error["Code"] == "AccessDeniedException", error
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return error["Message"]


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, action: Any, sid: str | None = None, **extra: Any) -> dict:
    statement = {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*", **extra}
    if sid:
        statement["Sid"] = sid
    return statement


def allow_all_but(principal: Any, not_actions: list[str], sid: str) -> dict:
    """Allows every KMS action but ``not_actions`` (``NotAction``)."""
    return {"Sid": sid, "Effect": "Allow", "Principal": principal, "NotAction": not_actions, "Resource": "*"}


def key_with(kms, key_policy: str) -> dict:
    return kms.create_key(Policy=key_policy, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]


def bucket(s3) -> str:
    name = f"policy-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


def test_default_key_policy_delegates_to_the_account(kms):
    key = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_a_key_policy_that_does_not_allow_an_action_denies_it(kms):
    key = key_with(kms, policy(allow({"AWS": ROOT}, ["kms:Encrypt", "kms:DescribeKey", "kms:PutKeyPolicy"])))
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"secret")["CiphertextBlob"]
    message = expect_denied(kms.decrypt, CiphertextBlob=blob)
    assert message == (f"User: {ROOT} is not authorized to perform: kms:Decrypt on resource: {key['Arn']} "
                       "because no resource-based policy allows the kms:Decrypt action")
    expect_denied(kms.disable_key, KeyId=key["KeyId"])
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_explicit_deny_wins_and_names_its_policy(kms, admin):
    key = key_with(kms, policy(
        allow({"AWS": ROOT}, "kms:*", sid="Enable IAM User Permissions"),
        {"Sid": "NoDecryptWithoutTls", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt",
         "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ))
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    # This server speaks plain HTTP: aws:SecureTransport is false.
    message = expect_denied(kms.decrypt, CiphertextBlob=blob)
    assert message.endswith("with an explicit deny in a resource-based policy"), message
    events = admin.audit(operation="Decrypt", key=key["KeyId"])
    assert events[-1]["outcome"] == "AccessDeniedException"
    assert events[-1]["decisions"] == [
        {"action": "kms:Decrypt", "decision": "Deny", "by": "key policy", "sid": "NoDecryptWithoutTls"}]
    encrypted = admin.audit(operation="Encrypt", key=key["KeyId"])[-1]
    assert encrypted["decisions"] == [
        {"action": "kms:Encrypt", "decision": "Allow", "by": "key policy", "sid": "Enable IAM User Permissions"}]


def test_via_service_limits_a_key_to_s3(kms, s3):
    # The key policy lets the account use the key only through S3: a data key S3 stored cannot be decrypted with
    # a direct call, while S3 itself reads the object.
    key = key_with(kms, policy(
        allow_all_but({"AWS": ROOT}, ["kms:Decrypt"], sid="Admin"),
        allow({"AWS": ROOT}, "kms:Decrypt", sid="DecryptThroughS3",
              Condition={"StringEquals": {"kms:ViaService": f"s3.{DEFAULT_REGION}.amazonaws.com"}}),
    ))
    name = bucket(s3)
    s3.put_object(Bucket=name, Key="doc", Body=b"through s3", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["Arn"])
    assert s3.get_object(Bucket=name, Key="doc")["Body"].read() == b"through s3"
    data_key = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")
    message = expect_denied(kms.decrypt, CiphertextBlob=data_key["CiphertextBlob"])
    assert "because no resource-based policy allows the kms:Decrypt action" in message


def test_encryption_context_limits_a_key_to_one_prefix(kms, s3):
    name = bucket(s3)
    key = key_with(kms, policy(
        allow_all_but({"AWS": ROOT}, ["kms:GenerateDataKey", "kms:Decrypt"], sid="Admin"),
        allow({"AWS": ROOT}, ["kms:GenerateDataKey", "kms:Decrypt"], sid="OnlyReports",
              Condition={"StringLike": {"kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{name}/reports/*"}}),
    ))
    s3.put_object(Bucket=name, Key="reports/q1", Body=b"q1", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"])
    assert s3.get_object(Bucket=name, Key="reports/q1")["Body"].read() == b"q1"
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=name, Key="other/q1", Body=b"q1", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=key["Arn"])
    error = info.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("AccessDenied", 403)
    assert "kms:GenerateDataKey" in error["Error"]["Message"]
    with pytest.raises(ClientError):
        s3.head_object(Bucket=name, Key="other/q1")


def test_condition_keys_of_the_key_and_the_alias(kms):
    alias = f"alias/policy-{uuid.uuid4().hex[:8]}"
    key = key_with(kms, policy(
        allow_all_but({"AWS": ROOT}, ["kms:Encrypt"], sid="Admin"),
        allow({"AWS": ROOT}, "kms:Encrypt", sid="ThroughTheAlias",
              Condition={"StringEquals": {"kms:RequestAlias": alias, "kms:KeySpec": "SYMMETRIC_DEFAULT"},
                         "ForAnyValue:StringEquals": {"kms:ResourceAliases": alias}}),
    ))
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    assert kms.encrypt(KeyId=alias, Plaintext=b"x")["KeyId"] == key["Arn"]
    expect_denied(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x")
    expect_denied(kms.encrypt, KeyId=key["Arn"], Plaintext=b"x")


def test_encryption_context_keys_condition(kms):
    key = key_with(kms, policy(
        allow_all_but({"AWS": ROOT}, ["kms:Encrypt"], sid="Admin"),
        allow({"AWS": ROOT}, "kms:Encrypt", sid="TenantRequired",
              Condition={"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "tenant"}}),
    ))
    kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"tenant": "a", "purpose": "b"})
    expect_denied(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x", EncryptionContext={"purpose": "b"})
    expect_denied(kms.encrypt, KeyId=key["KeyId"], Plaintext=b"x")


@pytest.fixture
def two_accounts(start_kmsim):
    server = start_kmsim(config=OTHER_CONFIG)
    return server.client(), server.client(access_key="AKIDPOLICYOTHER", secret="other-secret")


def test_cross_account_needs_the_key_policy_or_a_grant(two_accounts):
    owner, other = two_accounts
    other_root = f"arn:aws:iam::{OTHER_ACCOUNT}:root"
    key = owner.create_key(Policy=policy(
        allow({"AWS": ROOT}, "kms:*", sid="Owner"),
        allow({"AWS": OTHER_ACCOUNT}, ["kms:Encrypt", "kms:DescribeKey"], sid="OtherAccountEncrypts"),
    ))["KeyMetadata"]
    assert other.encrypt(KeyId=key["Arn"], Plaintext=b"x")["KeyId"] == key["Arn"]
    assert other.describe_key(KeyId=key["Arn"])["KeyMetadata"]["Arn"] == key["Arn"]
    blob = owner.encrypt(KeyId=key["KeyId"], Plaintext=b"owner")["CiphertextBlob"]
    message = expect_denied(other.decrypt, CiphertextBlob=blob)
    assert message == (f"User: {other_root} is not authorized to perform: kms:Decrypt on resource: {key['Arn']} "
                       "because no resource-based policy allows the kms:Decrypt action")
    # Key administration never crosses accounts, whatever the key policy says.
    expect_denied(other.disable_key, KeyId=key["Arn"])
    # A grant allows besides the key policy.
    owner.create_grant(KeyId=key["KeyId"], GranteePrincipal=other_root, Operations=["Decrypt"])
    assert other.decrypt(CiphertextBlob=blob)["Plaintext"] == b"owner"


def test_an_explicit_deny_is_not_overridden_by_a_grant(two_accounts):
    owner, other = two_accounts
    other_root = f"arn:aws:iam::{OTHER_ACCOUNT}:root"
    key = owner.create_key(Policy=policy(
        allow({"AWS": ROOT}, "kms:*", sid="Owner"),
        {"Sid": "NeverTheOtherAccount", "Effect": "Deny", "Principal": {"AWS": other_root}, "Action": "kms:*",
         "Resource": "*"},
    ))["KeyMetadata"]
    owner.create_grant(KeyId=key["KeyId"], GranteePrincipal=other_root, Operations=["Encrypt"])
    message = expect_denied(other.encrypt, KeyId=key["Arn"], Plaintext=b"x")
    assert message.endswith("with an explicit deny in a resource-based policy")


def test_operation_condition_keys(kms):
    key = key_with(kms, policy(
        allow_all_but({"AWS": ROOT}, ["kms:CreateGrant", "kms:Sign"], sid="Admin"),
        allow({"AWS": ROOT}, "kms:CreateGrant", sid="DecryptGrantsOnly",
              Condition={"ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "DescribeKey"]},
                         "Bool": {"kms:GrantIsForAWSResource": "false"}}),
    ))
    grantee = f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/reader"
    kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee, Operations=["Decrypt"])
    message = expect_denied(kms.create_grant, KeyId=key["KeyId"], GranteePrincipal=grantee,
                            Operations=["Decrypt", "Encrypt"])
    assert "kms:CreateGrant" in message
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY", BypassPolicyLockoutSafetyCheck=True, Policy=policy(
        allow_all_but({"AWS": ROOT}, ["kms:Sign"], sid="Admin"),
        allow({"AWS": ROOT}, "kms:Sign", sid="PssDigestsOnly",
              Condition={"StringEquals": {"kms:SigningAlgorithm": "RSASSA_PSS_SHA_256", "kms:MessageType": "DIGEST"}}),
    ))["KeyMetadata"]
    digest = bytes(32)
    kms.sign(KeyId=rsa["KeyId"], Message=digest, MessageType="DIGEST", SigningAlgorithm="RSASSA_PSS_SHA_256")
    expect_denied(kms.sign, KeyId=rsa["KeyId"], Message=digest, MessageType="RAW", SigningAlgorithm="RSASSA_PSS_SHA_256")
    expect_denied(kms.sign, KeyId=rsa["KeyId"], Message=digest, MessageType="DIGEST",
                  SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")


def test_encryption_algorithm_condition(kms):
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT", BypassPolicyLockoutSafetyCheck=True,
                         Policy=policy(
        allow_all_but({"AWS": ROOT}, ["kms:Encrypt"], sid="Admin"),
        allow({"AWS": ROOT}, "kms:Encrypt", sid="OaepSha256Only",
              Condition={"StringEquals": {"kms:EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}}),
    ))["KeyMetadata"]
    kms.encrypt(KeyId=rsa["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    expect_denied(kms.encrypt, KeyId=rsa["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_1")
