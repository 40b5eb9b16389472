"""The SSE-KMS access failures issue 16 exists for, end to end through boto3 with separate principals: a role that may
use S3 but not the bucket's key, then only GenerateDataKey, then Decrypt too; a role limited by
`kms:EncryptionContext:aws:s3:arn` to one prefix; a key in one account used for a bucket in another, which needs
the key policy and the identity policy, each alone refused. Each denial is the one AWS gives: S3's 403 AccessDenied
carrying the KMS message that names the principal, the KMS action and why.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import BOTO_CONFIG, DEFAULT_ACCOUNT, DEFAULT_REGION, unique

S3_ALL = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def clients(endpoint: str, access_key: str, secret: str, token: str | None = None) -> dict[str, Any]:
    s = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret, aws_session_token=token,
                              region_name=DEFAULT_REGION)
    return {name: s.client(name, endpoint_url=endpoint, config=BOTO_CONFIG) for name in ("iam", "sts", "kms", "s3")}


def s3_denied(call: Callable[..., Any], /, **params: Any) -> str:
    """Asserts that an S3 call fails with 403 AccessDenied; returns the message."""
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == ("AccessDenied", 403), \
        response
    return response["Error"]["Message"]


class Role:
    """A role of the default account that a user of its own assumes; its permissions are its inline policy."""

    def __init__(self, endpoint: str, root: dict[str, Any]) -> None:
        self.endpoint, self.iam = endpoint, root["iam"]
        self.name = unique("role")
        user = self.iam.create_user(UserName=unique("assumer"))["User"]
        key = self.iam.create_access_key(UserName=user["UserName"])["AccessKey"]
        self.iam.put_user_policy(UserName=user["UserName"], PolicyName="assume", PolicyDocument=policy(
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}))
        self.arn = self.iam.create_role(RoleName=self.name, AssumeRolePolicyDocument=policy(
            {"Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole"}))["Role"]["Arn"]
        self.assumer = clients(endpoint, key["AccessKeyId"], key["SecretAccessKey"])

    def allow(self, *statements: dict) -> None:
        self.iam.put_role_policy(RoleName=self.name, PolicyName="permissions", PolicyDocument=policy(*statements))

    def session(self) -> dict[str, Any]:
        credentials = self.assumer["sts"].assume_role(RoleArn=self.arn, RoleSessionName="app")["Credentials"]
        return clients(self.endpoint, credentials["AccessKeyId"], credentials["SecretAccessKey"],
                       credentials["SessionToken"])


@pytest.fixture
def root(kmsim: dict[str, Any]) -> dict[str, Any]:
    return clients(kmsim["endpoint"], kmsim["access_key_id"], kmsim["secret_access_key"])


def test_a_role_needs_generate_data_key_to_write_and_decrypt_to_read(kmsim, root):
    key = root["kms"].create_key(Description="bucket key")["KeyMetadata"]
    bucket = f"scenario-{uuid.uuid4().hex[:12]}"
    root["s3"].create_bucket(Bucket=bucket)
    role = Role(kmsim["endpoint"], root)
    role.allow(S3_ALL)
    app = role.session()
    session_arn = f"arn:aws:sts::{DEFAULT_ACCOUNT}:assumed-role/{role.name}/app"

    # S3 access but no KMS permission: the PUT is refused with the KMS denial.
    message = s3_denied(app["s3"].put_object, Bucket=bucket, Key="doc", Body=b"secret",
                        ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"])
    assert message == (f"User: {session_arn} is not authorized to perform: kms:GenerateDataKey on resource: "
                       f"{key['Arn']} because no identity-based policy allows the kms:GenerateDataKey action")
    # Plain objects are S3's business alone.
    app["s3"].put_object(Bucket=bucket, Key="plain", Body=b"x")

    # kms:GenerateDataKey only: writes work, reads do not.
    role.allow(S3_ALL, {"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": key["Arn"]})
    app["s3"].put_object(Bucket=bucket, Key="doc", Body=b"secret", ServerSideEncryption="aws:kms",
                         SSEKMSKeyId=key["Arn"])
    message = s3_denied(app["s3"].get_object, Bucket=bucket, Key="doc")
    assert message.endswith("because no identity-based policy allows the kms:Decrypt action"), message

    # kms:Decrypt too: reads work.
    role.allow(S3_ALL, {"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": key["Arn"]})
    assert app["s3"].get_object(Bucket=bucket, Key="doc")["Body"].read() == b"secret"


def test_encryption_context_limits_a_role_to_one_prefix(kmsim, root):
    key = root["kms"].create_key()["KeyMetadata"]
    bucket = f"scenario-{uuid.uuid4().hex[:12]}"
    root["s3"].create_bucket(Bucket=bucket)
    role = Role(kmsim["endpoint"], root)
    role.allow(S3_ALL, {
        "Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": key["Arn"],
        "Condition": {"StringLike": {"kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}/team-a/*"}}})
    app = role.session()
    sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key["Arn"]}
    app["s3"].put_object(Bucket=bucket, Key="team-a/report", Body=b"a", **sse)
    assert app["s3"].get_object(Bucket=bucket, Key="team-a/report")["Body"].read() == b"a"
    s3_denied(app["s3"].put_object, Bucket=bucket, Key="team-b/report", Body=b"b", **sse)
    root["s3"].put_object(Bucket=bucket, Key="team-b/root", Body=b"r", **sse)
    s3_denied(app["s3"].get_object, Bucket=bucket, Key="team-b/root")


OTHER_ACCOUNT = "111122223333"
OTHER_CONFIG = f"""
[[accounts]]
id = "{OTHER_ACCOUNT}"
access_keys = [{{ access_key_id = "AKIDSCENARIOROOT", secret_access_key = "b-root-secret" }}]

[[accounts.users]]
name = "writer"
access_keys = [{{ access_key_id = "AKIDSCENARIOWRITER", secret_access_key = "b-writer-secret" }}]
policies = {{ s3 = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:*","Resource":"*"}}]}}' }}
"""


def test_a_key_of_another_account_needs_its_key_policy_and_the_identity_policy(start_kmsim):
    server = start_kmsim(config=OTHER_CONFIG)
    a = clients(server.endpoint, "test", "test")
    b_root = clients(server.endpoint, "AKIDSCENARIOROOT", "b-root-secret")
    b_writer = clients(server.endpoint, "AKIDSCENARIOWRITER", "b-writer-secret")
    writer_arn = f"arn:aws:iam::{OTHER_ACCOUNT}:user/writer"
    key = a["kms"].create_key(Description="account A's key")["KeyMetadata"]
    bucket = f"scenario-{uuid.uuid4().hex[:12]}"
    b_root["s3"].create_bucket(Bucket=bucket)
    sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key["Arn"]}
    use_key = {"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": key["Arn"]}

    # Neither policy: refused.
    s3_denied(b_writer["s3"].put_object, Bucket=bucket, Key="k", Body=b"x", **sse)
    # The identity policy alone: the key policy does not name account B.
    b_root["iam"].put_user_policy(UserName="writer", PolicyName="kms", PolicyDocument=policy(use_key))
    message = s3_denied(b_writer["s3"].put_object, Bucket=bucket, Key="k", Body=b"x", **sse)
    assert message == (f"User: {writer_arn} is not authorized to perform: kms:GenerateDataKey on resource: "
                       f"{key['Arn']} because no resource-based policy allows the kms:GenerateDataKey action")
    # The key policy alone: the writer's identity policies do not allow it.
    a["kms"].put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=policy(
        {"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "AccountB", "Effect": "Allow", "Principal": {"AWS": OTHER_ACCOUNT},
         "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": "*"}))
    b_root["iam"].delete_user_policy(UserName="writer", PolicyName="kms")
    message = s3_denied(b_writer["s3"].put_object, Bucket=bucket, Key="k", Body=b"x", **sse)
    assert message.endswith("because no identity-based policy allows the kms:GenerateDataKey action"), message
    # Both: the write and the read work.
    b_root["iam"].put_user_policy(UserName="writer", PolicyName="kms", PolicyDocument=policy(use_key))
    b_writer["s3"].put_object(Bucket=bucket, Key="k", Body=b"cross-account", **sse)
    assert b_writer["s3"].get_object(Bucket=bucket, Key="k")["Body"].read() == b"cross-account"
