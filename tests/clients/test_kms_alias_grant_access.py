"""Who may manage aliases and retire grants, through boto3 as separate IAM users, as AWS KMS documents it.

- CreateAlias, UpdateAlias and DeleteAlias need the action on the alias (an identity policy: aliases have no policy
  of their own) and on each key involved (its key policy, which may delegate to identity policies).
- RetireGrant is decided by the grant ("Retiring and revoking grants"): its retiring principal, and its grantee if
  the grant allows RetireGrant, may retire it without any policy; the account that created it may, by its root or
  by the IAM principals an identity policy delegates `kms:RetireGrant` to; an explicit deny refuses it always.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import BOTO_CONFIG, DEFAULT_ACCOUNT, DEFAULT_REGION, unique

def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def denied(call: Callable[..., Any], /, **params: Any) -> str:
    """Asserts AccessDeniedException (HTTP 400); returns its message."""
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == \
        ("AccessDeniedException", 400), response
    return response["Error"]["Message"]


class User:
    """An IAM user of the default account with one access key and the KMS client it signs."""

    def __init__(self, endpoint: str, iam, *statements: dict) -> None:
        self.iam, self.name = iam, unique("user")
        self.arn = iam.create_user(UserName=self.name)["User"]["Arn"]
        key = iam.create_access_key(UserName=self.name)["AccessKey"]
        if statements:
            self.allow(*statements)
        session = boto3.session.Session(aws_access_key_id=key["AccessKeyId"],
                                        aws_secret_access_key=key["SecretAccessKey"], region_name=DEFAULT_REGION)
        self.kms = session.client("kms", endpoint_url=endpoint, config=BOTO_CONFIG)

    def allow(self, *statements: dict) -> None:
        self.iam.put_user_policy(UserName=self.name, PolicyName="kms", PolicyDocument=policy(*statements))


@pytest.fixture
def iam(kmsim: dict[str, Any]):
    return boto3.session.Session(aws_access_key_id=kmsim["access_key_id"],
                                 aws_secret_access_key=kmsim["secret_access_key"],
                                 region_name=DEFAULT_REGION).client("iam", endpoint_url=kmsim["endpoint"],
                                                                    config=BOTO_CONFIG)


def test_aliases_need_the_action_on_the_alias_and_on_each_key(kmsim, kms, iam):
    keys_only = [{"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"},
                 {"Effect": "Allow", "Action": "kms:*", "Resource": f"arn:aws:kms:*:{DEFAULT_ACCOUNT}:key/*"}]
    user = User(kmsim["endpoint"], iam, *keys_only)
    key = user.kms.create_key()["KeyMetadata"]
    name = f"alias/{unique('app')}"
    alias_arn = f"arn:aws:kms:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:{name}"

    # The key's policy delegates to the user's, which allows nothing on aliases.
    message = denied(user.kms.create_alias, AliasName=name, TargetKeyId=key["KeyId"])
    assert message == (f"User: {user.arn} is not authorized to perform: kms:CreateAlias on resource: {alias_arn} "
                       "because no identity-based policy allows the kms:CreateAlias action")
    assert [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == name] == []

    # Allowed on aliases of that name too: it works.
    on_aliases = {"Effect": "Allow", "Action": ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"],
                  "Resource": f"arn:aws:kms:*:{DEFAULT_ACCOUNT}:alias/app*"}
    user.allow(*keys_only, on_aliases)
    user.kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    assert user.kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key["KeyId"]

    # A key whose policy does not delegate to IAM (it names an administrator, not the account) cannot be the new
    # target, nor the old one of a deletion.
    admin = User(kmsim["endpoint"], iam, on_aliases)
    locked = kms.create_key(BypassPolicyLockoutSafetyCheck=True, Policy=policy(
        {"Effect": "Allow", "Principal": {"AWS": admin.arn}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": user.arn}, "Action": "kms:DescribeKey", "Resource": "*"},
    ))["KeyMetadata"]
    message = denied(user.kms.update_alias, AliasName=name, TargetKeyId=locked["KeyId"])
    assert message == (f"User: {user.arn} is not authorized to perform: kms:UpdateAlias on resource: "
                       f"{locked['Arn']} because no resource-based policy allows the kms:UpdateAlias action")
    assert user.kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key["KeyId"]
    # The account's root is locked out of that key too.
    denied(kms.update_alias, AliasName=name, TargetKeyId=locked["KeyId"])
    admin.allow(on_aliases, {"Effect": "Allow", "Action": "kms:UpdateAlias", "Resource": key["Arn"]})
    admin.kms.update_alias(AliasName=name, TargetKeyId=locked["KeyId"])
    message = denied(user.kms.delete_alias, AliasName=name)
    assert message.endswith(f"on resource: {locked['Arn']} because no resource-based policy allows the "
                            "kms:DeleteAlias action"), message
    admin.kms.update_alias(AliasName=name, TargetKeyId=key["KeyId"])
    user.kms.delete_alias(AliasName=name)
    assert [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == name] == []

    # An alias of another name is outside the user's policy, existing or not.
    message = denied(user.kms.delete_alias, AliasName="alias/other-team")
    assert "because no identity-based policy allows the kms:DeleteAlias action" in message


def test_a_grant_decides_who_may_retire_it(kmsim, kms, iam):
    endpoint = kmsim["endpoint"]
    key = kms.create_key()["KeyMetadata"]
    grantee, retiree, bystander = User(endpoint, iam), User(endpoint, iam), User(endpoint, iam)

    def grant(**params: Any) -> dict:
        return kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee.arn, Operations=["Encrypt"],
                                **params)

    def live_ids() -> set[str]:
        return {g["GrantId"] for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]}

    # The retiring principal may, without any policy; nobody else the grant does not name.
    first = grant(RetiringPrincipal=retiree.arn)
    for user in (bystander, grantee):
        message = denied(user.kms.retire_grant, GrantToken=first["GrantToken"])
        assert message == (f"User: {user.arn} is not authorized to perform: kms:RetireGrant on resource: "
                           f"{key['Arn']} because no identity-based policy allows the kms:RetireGrant action")
    assert first["GrantId"] in live_ids()
    retiree.kms.retire_grant(GrantToken=first["GrantToken"])
    assert first["GrantId"] not in live_ids()

    # The grantee, when the grant allows RetireGrant.
    second = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=grantee.arn,
                              Operations=["Encrypt", "RetireGrant"])
    grantee.kms.retire_grant(KeyId=key["Arn"], GrantId=second["GrantId"])
    assert second["GrantId"] not in live_ids()

    # The account that created the grant: an IAM principal it delegates kms:RetireGrant to, and its root.
    third, fourth = grant(), grant()
    bystander.allow({"Effect": "Allow", "Action": "kms:RetireGrant", "Resource": key["Arn"]})
    bystander.kms.retire_grant(GrantToken=third["GrantToken"])
    kms.retire_grant(GrantToken=fourth["GrantToken"])
    assert not {third["GrantId"], fourth["GrantId"]} & live_ids()

    # An explicit deny refuses even the retiring principal.
    fifth = grant(RetiringPrincipal=retiree.arn)
    retiree.allow({"Effect": "Deny", "Action": "kms:RetireGrant", "Resource": "*"})
    message = denied(retiree.kms.retire_grant, GrantToken=fifth["GrantToken"])
    assert message.endswith("with an explicit deny in an identity-based policy"), message
    assert fifth["GrantId"] in live_ids()
