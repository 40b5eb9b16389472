"""kmsim's IAM and STS Query APIs through boto3 and the aws CLI: users and access keys, roles and trust
policies, inline and managed policies, AssumeRole sessions signing KMS and S3 calls (headers and presigned
URLs), and the refusals of each service for deleted keys, wrong or expired session tokens.

Most tests share one in-memory server and use names of their own; tests that move the simulated clock,
need a configuration file or a data dir start servers of their own.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from typing import Any, Callable

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import (
    BOTO_CONFIG,
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    AwsS3Cli,
    KmsimProcess,
    http_get,
    make_kms_client,
    make_s3_client,
    unique,
)

ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
ALLOW_IAM = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]})


# ---- helpers -------------------------------------------------------------------------------------


def session(endpoint: str, access_key: str, secret: str, token: str | None = None,
            region: str = DEFAULT_REGION) -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret,
                                 aws_session_token=token, region_name=region)


def clients(endpoint: str, access_key: str, secret: str, token: str | None = None) -> dict[str, Any]:
    """boto3 clients of every service with the default configuration (no retries), for one set of credentials."""
    s = session(endpoint, access_key, secret, token)
    return {name: s.client(name, endpoint_url=endpoint, config=BOTO_CONFIG) for name in ("iam", "sts", "kms", "s3")}


def expect(code: str, status: int, call: Callable[..., Any], /, **params: Any) -> dict:
    """Calls ``call(**params)``, asserts the error ``code`` with HTTP ``status``, returns the error."""
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    assert response["Error"]["Code"] == code, response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status, response["ResponseMetadata"]
    return response["Error"]


def trust(*principals: str, actions: tuple[str, ...] = ("sts:AssumeRole",)) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": list(principals)}, "Action": list(actions)}],
    })


def new_user(iam, name: str | None = None, **params: Any) -> tuple[dict, dict]:
    """A user with one access key: (user, key with its secret)."""
    user = iam.create_user(UserName=name or unique("user"), **params)["User"]
    key = iam.create_access_key(UserName=user["UserName"])["AccessKey"]
    return user, key


def kms_and_s3_work(endpoint: str, access_key: str, secret: str, token: str | None = None) -> None:
    """The credentials sign KMS and S3 calls with boto3's defaults: a data key, a bucket, an SSE-KMS object."""
    c = clients(endpoint, access_key, secret, token)
    key_id = c["kms"].create_key(Description="iam test")["KeyMetadata"]["KeyId"]
    data_key = c["kms"].generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert c["kms"].decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"] == data_key["Plaintext"]
    bucket = f"b-{uuid.uuid4().hex[:16]}"
    c["s3"].create_bucket(Bucket=bucket)
    c["s3"].put_object(Bucket=bucket, Key="k", Body=b"hello", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
    assert c["s3"].get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"


@pytest.fixture(scope="module")
def root(kmsim: dict[str, Any]) -> dict[str, Any]:
    """Clients of the shared server's default account root (test/test)."""
    return clients(kmsim["endpoint"], "test", "test")


# ---- users and access keys -----------------------------------------------------------------------


def test_user_and_access_key_lifecycle(root):
    iam = root["iam"]
    name = unique("alice")
    user = iam.create_user(UserName=name, Path="/team/", Tags=[{"Key": "team", "Value": "blue"}])["User"]
    assert user["UserName"] == name and user["Path"] == "/team/"
    assert user["UserId"].startswith("AIDA") and len(user["UserId"]) == 21
    assert user["Arn"] == f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/team/{name}"
    assert iam.get_user(UserName=name)["User"]["Tags"] == [{"Key": "team", "Value": "blue"}]
    assert name in [u["UserName"] for u in iam.list_users(PathPrefix="/team/")["Users"]]
    error = expect("EntityAlreadyExists", 409, iam.create_user, UserName=name.upper())
    assert error["Message"] == f"User with name {name} already exists."

    first = iam.create_access_key(UserName=name)["AccessKey"]
    assert first["AccessKeyId"].startswith("AKIA") and len(first["AccessKeyId"]) == 20
    assert len(first["SecretAccessKey"]) == 40 and first["Status"] == "Active" and first["UserName"] == name
    second = iam.create_access_key(UserName=name)["AccessKey"]
    error = expect("LimitExceeded", 409, iam.create_access_key, UserName=name)
    assert error["Message"] == "Cannot exceed quota for AccessKeysPerUser: 2"
    listed = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert {k["AccessKeyId"] for k in listed} == {first["AccessKeyId"], second["AccessKeyId"]}
    assert all("SecretAccessKey" not in k for k in listed)

    error = expect("DeleteConflict", 409, iam.delete_user, UserName=name)
    assert error["Message"] == "Cannot delete entity, must delete access keys first."
    for key in (first, second):
        iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    expect("NoSuchEntity", 404, iam.delete_access_key, UserName=name, AccessKeyId=first["AccessKeyId"])
    iam.delete_user(UserName=name)
    error = expect("NoSuchEntity", 404, iam.get_user, UserName=name)
    assert error["Message"] == f"The user with name {name} cannot be found."


def test_a_new_key_signs_kms_and_s3_and_names_its_user(kmsim, root):
    user, key = new_user(root["iam"])
    # A user may do nothing its policies do not allow (GetCallerIdentity needs no permission).
    expect("AccessDeniedException", 400, make_kms_client(kmsim["endpoint"], key["AccessKeyId"],
                                                          key["SecretAccessKey"]).list_keys)
    root["iam"].put_user_policy(UserName=user["UserName"], PolicyName="all", PolicyDocument=ALLOW_ALL)
    c = clients(kmsim["endpoint"], key["AccessKeyId"], key["SecretAccessKey"])
    identity = c["sts"].get_caller_identity()
    assert (identity["Account"], identity["Arn"], identity["UserId"]) == (DEFAULT_ACCOUNT, user["Arn"], user["UserId"])
    kms_and_s3_work(kmsim["endpoint"], key["AccessKeyId"], key["SecretAccessKey"])


def test_a_deleted_key_is_refused_at_once(kmsim, root):
    user, key = new_user(root["iam"])
    root["iam"].put_user_policy(UserName=user["UserName"], PolicyName="all", PolicyDocument=ALLOW_ALL)
    c = clients(kmsim["endpoint"], key["AccessKeyId"], key["SecretAccessKey"])
    c["kms"].list_keys()
    c["s3"].list_buckets()
    root["iam"].delete_access_key(UserName=user["UserName"], AccessKeyId=key["AccessKeyId"])
    error = expect("UnrecognizedClientException", 400, c["kms"].list_keys)
    assert error["Message"] == "The security token included in the request is invalid."
    expect("InvalidAccessKeyId", 403, c["s3"].list_buckets)
    expect("InvalidClientTokenId", 403, c["sts"].get_caller_identity)


def test_an_inactive_key_is_refused_until_active_again(kmsim, root):
    user, key = new_user(root["iam"])
    root["iam"].put_user_policy(UserName=user["UserName"], PolicyName="all", PolicyDocument=ALLOW_ALL)
    kms = make_kms_client(kmsim["endpoint"], key["AccessKeyId"], key["SecretAccessKey"])
    root["iam"].update_access_key(UserName=user["UserName"], AccessKeyId=key["AccessKeyId"], Status="Inactive")
    expect("UnrecognizedClientException", 400, kms.list_keys)
    root["iam"].update_access_key(UserName=user["UserName"], AccessKeyId=key["AccessKeyId"], Status="Active")
    kms.list_keys()


# ---- policies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document, message",
    [
        ("{", "Syntax errors in policy."),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*"}]}),
         "Policy statement must contain resources."),
        (json.dumps({"Version": "2012-10-17",
                     "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}),
         "Policy document should not specify a principal."),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "GetObject", "Resource": "*"}]}),
         "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."),
    ],
)
def test_malformed_policies_are_refused_with_iams_message(root, document, message):
    iam = root["iam"]
    user, _ = new_user(iam)
    for call, params in (
        (iam.put_user_policy, {"UserName": user["UserName"], "PolicyName": "p", "PolicyDocument": document}),
        (iam.create_policy, {"PolicyName": unique("p"), "PolicyDocument": document}),
    ):
        error = expect("MalformedPolicyDocument", 400, call, **params)
        assert error["Message"] == message
    assert iam.list_user_policies(UserName=user["UserName"])["PolicyNames"] == []


def test_a_user_without_iam_permissions_is_refused_until_a_policy_allows(kmsim, root):
    iam = root["iam"]
    user, key = new_user(iam)
    theirs = clients(kmsim["endpoint"], key["AccessKeyId"], key["SecretAccessKey"])["iam"]
    target = unique("made-by-user")
    error = expect("AccessDenied", 403, theirs.create_user, UserName=target)
    assert error["Message"] == (
        f"User: {user['Arn']} is not authorized to perform: iam:CreateUser on resource: "
        f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/{target} because no identity-based policy allows the iam:CreateUser action"
    )
    iam.put_user_policy(UserName=user["UserName"], PolicyName="iam", PolicyDocument=ALLOW_IAM)
    assert theirs.create_user(UserName=target)["User"]["UserName"] == target
    document = iam.get_user_policy(UserName=user["UserName"], PolicyName="iam")["PolicyDocument"]
    assert document == json.loads(ALLOW_IAM)
    # An explicit deny wins, and says so.
    deny = json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Deny", "Action": "iam:DeleteUser", "Resource": "*"}]})
    iam.put_user_policy(UserName=user["UserName"], PolicyName="deny", PolicyDocument=deny)
    error = expect("AccessDenied", 403, theirs.delete_user, UserName=target)
    assert error["Message"].endswith("with an explicit deny in an identity-based policy")
    iam.delete_user_policy(UserName=user["UserName"], PolicyName="deny")
    theirs.delete_user(UserName=target)


def test_managed_policies_attach_detach_and_delete(kmsim, root):
    iam = root["iam"]
    user, key = new_user(iam)
    theirs = clients(kmsim["endpoint"], key["AccessKeyId"], key["SecretAccessKey"])["iam"]
    expect("AccessDenied", 403, theirs.list_users)
    name = unique("iam-all")
    policy = iam.create_policy(PolicyName=name, Path="/ops/", PolicyDocument=ALLOW_IAM, Description="d")["Policy"]
    assert policy["Arn"] == f"arn:aws:iam::{DEFAULT_ACCOUNT}:policy/ops/{name}"
    assert (policy["DefaultVersionId"], policy["AttachmentCount"], policy["IsAttachable"]) == ("v1", 0, True)
    expect("EntityAlreadyExists", 409, iam.create_policy, PolicyName=name, PolicyDocument=ALLOW_IAM)
    iam.attach_user_policy(UserName=user["UserName"], PolicyArn=policy["Arn"])
    theirs.list_users()
    attached = iam.list_attached_user_policies(UserName=user["UserName"])["AttachedPolicies"]
    assert attached == [{"PolicyName": name, "PolicyArn": policy["Arn"]}]
    assert iam.get_policy(PolicyArn=policy["Arn"])["Policy"]["AttachmentCount"] == 1
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId="v1")["PolicyVersion"]
    assert version["Document"] == json.loads(ALLOW_IAM)
    error = expect("DeleteConflict", 409, iam.delete_policy, PolicyArn=policy["Arn"])
    assert error["Message"] == "Cannot delete a policy attached to entities."
    missing = f"arn:aws:iam::{DEFAULT_ACCOUNT}:policy/{unique('none')}"
    error = expect("NoSuchEntity", 404, iam.attach_user_policy, UserName=user["UserName"], PolicyArn=missing)
    assert error["Message"] == f"Policy {missing} does not exist or is not attachable."
    iam.detach_user_policy(UserName=user["UserName"], PolicyArn=policy["Arn"])
    expect("AccessDenied", 403, theirs.list_users)
    iam.delete_policy(PolicyArn=policy["Arn"])
    expect("NoSuchEntity", 404, iam.get_policy, PolicyArn=policy["Arn"])


def test_roles_and_their_policies(root):
    iam = root["iam"]
    name = unique("role")
    document = trust(f"arn:aws:iam::{DEFAULT_ACCOUNT}:root")
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=document, Description="r",
                           MaxSessionDuration=7200)["Role"]
    assert role["RoleId"].startswith("AROA") and role["Arn"] == f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/{name}"
    got = iam.get_role(RoleName=name)["Role"]
    assert got["AssumeRolePolicyDocument"] == json.loads(document) and got["MaxSessionDuration"] == 7200
    assert name in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    error = expect("MalformedPolicyDocument", 400, iam.update_assume_role_policy, RoleName=name,
                   PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                       {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject"}]}))
    assert error["Message"] == "AssumeRole policy may only specify STS AssumeRole actions."
    iam.put_role_policy(RoleName=name, PolicyName="all", PolicyDocument=ALLOW_ALL)
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == ["all"]
    error = expect("DeleteConflict", 409, iam.delete_role, RoleName=name)
    assert error["Message"] == "Cannot delete entity, must delete policies first."
    iam.delete_role_policy(RoleName=name, PolicyName="all")
    expect("NoSuchEntity", 404, iam.get_role_policy, RoleName=name, PolicyName="all")
    iam.delete_role(RoleName=name)
    error = expect("NoSuchEntity", 404, iam.get_role, RoleName=name)
    assert error["Message"] == f"The role with name {name} cannot be found."


def test_unimplemented_and_unknown_actions(root):
    error = expect("NotImplemented", 501, root["iam"].create_group, GroupName="g")
    assert "docs/api-coverage.md" in error["Message"]
    expect("NotImplemented", 501, root["sts"].get_session_token)


# ---- STS -----------------------------------------------------------------------------------------


def test_caller_identity_of_the_root(root):
    identity = root["sts"].get_caller_identity()
    assert (identity["Account"], identity["Arn"], identity["UserId"]) == (
        DEFAULT_ACCOUNT, f"arn:aws:iam::{DEFAULT_ACCOUNT}:root", DEFAULT_ACCOUNT)


def assumable_role(iam, principal_arn: str, **params: Any) -> dict:
    """A role trusting ``principal_arn``, allowed everything."""
    role = iam.create_role(RoleName=unique("role"), AssumeRolePolicyDocument=trust(principal_arn), **params)["Role"]
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="all", PolicyDocument=ALLOW_ALL)
    return role


def test_assume_role_refusals(kmsim, root):
    iam = root["iam"]
    user, key = new_user(iam)
    other, _ = new_user(iam)
    sts = clients(kmsim["endpoint"], key["AccessKeyId"], key["SecretAccessKey"])["sts"]
    role = assumable_role(iam, other["Arn"])
    error = expect("AccessDenied", 403, sts.assume_role, RoleArn=role["Arn"], RoleSessionName="s1")
    assert error["Message"] == (
        f"User: {user['Arn']} is not authorized to perform: sts:AssumeRole on resource: {role['Arn']}")
    missing = f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/{unique('none')}"
    expect("AccessDenied", 403, sts.assume_role, RoleArn=missing, RoleSessionName="s1")
    error = expect("AccessDenied", 403, root["sts"].assume_role, RoleArn=role["Arn"], RoleSessionName="s1")
    assert error["Message"] == "Roles may not be assumed by root accounts."
    # A trust policy naming the account delegates to the caller's own policies.
    delegated = assumable_role(iam, f"arn:aws:iam::{DEFAULT_ACCOUNT}:root")
    expect("AccessDenied", 403, sts.assume_role, RoleArn=delegated["Arn"], RoleSessionName="s1")
    allow = json.dumps({"Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": delegated["Arn"]}]})
    iam.put_user_policy(UserName=user["UserName"], PolicyName="assume", PolicyDocument=allow)
    assert sts.assume_role(RoleArn=delegated["Arn"], RoleSessionName="s1")["Credentials"]["AccessKeyId"].startswith("ASIA")
    # Durations and names.
    trusting = assumable_role(iam, user["Arn"])
    error = expect("ValidationError", 400, sts.assume_role, RoleArn=trusting["Arn"], RoleSessionName="s1",
                   DurationSeconds=7200)
    assert error["Message"] == "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    expect("ValidationError", 400, sts.assume_role, RoleArn=trusting["Arn"], RoleSessionName="bad name")
    error = expect("MalformedPolicyDocument", 400, sts.assume_role, RoleArn=trusting["Arn"], RoleSessionName="s1",
                   Policy="{")
    assert error["Message"] == "Syntax errors in policy."


def test_session_credentials_sign_kms_and_s3_until_they_expire(fresh_kmsim: KmsimProcess):
    endpoint = fresh_kmsim.endpoint
    root = clients(endpoint, "test", "test")
    user, key = new_user(root["iam"])
    role = assumable_role(root["iam"], user["Arn"])
    sts = clients(endpoint, key["AccessKeyId"], key["SecretAccessKey"])["sts"]
    answer = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="build-42", DurationSeconds=900)
    creds = answer["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert len(creds["SecretAccessKey"]) == 40 and creds["SessionToken"]
    session_arn = f"arn:aws:sts::{DEFAULT_ACCOUNT}:assumed-role/{role['RoleName']}/build-42"
    assert answer["AssumedRoleUser"] == {"AssumedRoleId": f"{role['RoleId']}:build-42", "Arn": session_arn}
    ak, sk, token = creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]
    c = clients(endpoint, ak, sk, token)
    identity = c["sts"].get_caller_identity()
    assert (identity["Arn"], identity["UserId"]) == (session_arn, f"{role['RoleId']}:build-42")
    kms_and_s3_work(endpoint, ak, sk, token)

    # The KMS audit log names the session as AWS does.
    events = fresh_kmsim.admin.audit(access_key=ak)
    assert events and {e["principal"] for e in events} == {session_arn}

    # Presigned URLs carry the token: boto3's default (V2) and SigV4.
    bucket = f"b-{uuid.uuid4().hex[:16]}"
    c["s3"].create_bucket(Bucket=bucket)
    c["s3"].put_object(Bucket=bucket, Key="k", Body=b"presigned")
    v2_url = c["s3"].generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    assert "x-amz-security-token=" in v2_url
    v4 = session(endpoint, ak, sk, token).client("s3", endpoint_url=endpoint,
                                                 config=BOTO_CONFIG.merge(Config(signature_version="s3v4")))
    v4_url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    assert "X-Amz-Security-Token=" in v4_url
    for url in (v2_url, v4_url):
        assert http_get(url) == (200, b"presigned")
    # Browser forms carry the token as a field the policy covers: boto3's default (V2) and SigV4.
    forms = [signer.generate_presigned_post(bucket, f"form-{name}", ExpiresIn=3600)
             for name, signer in (("v2", c["s3"]), ("v4", v4))]
    for form in forms:
        assert form["fields"]["x-amz-security-token"] == token
        response = requests.post(form["url"], data=form["fields"], files={"file": ("f", b"posted")}, timeout=30)
        assert response.status_code == 204, response.text
    assert c["s3"].get_object(Bucket=bucket, Key="form-v4")["Body"].read() == b"posted"
    without_token = {k: v for k, v in forms[1]["fields"].items() if k != "x-amz-security-token"}
    refused = requests.post(forms[1]["url"], data=without_token, files={"file": ("f", b"x")}, timeout=30)
    assert refused.status_code == 403 and b"<Code>InvalidAccessKeyId</Code>" in refused.content, refused.text
    # A URL whose token was changed is refused.
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(v4_url).query)
    forged = v4_url.replace(urllib.parse.quote(query["X-Amz-Security-Token"][0], safe=""), "forged")
    assert http_get(forged)[0] == 400

    # Without its token the key is unknown; with another token it is refused.
    no_token = clients(endpoint, ak, sk)
    expect("UnrecognizedClientException", 400, no_token["kms"].list_keys)
    expect("InvalidAccessKeyId", 403, no_token["s3"].list_buckets)
    wrong = clients(endpoint, ak, sk, "not-the-token")
    expect("UnrecognizedClientException", 400, wrong["kms"].list_keys)
    error = expect("InvalidToken", 400, wrong["s3"].list_buckets)
    assert error["Message"] == "The provided token is malformed or otherwise invalid."
    # A long-term key sent with a token is refused too.
    expect("InvalidToken", 400, clients(endpoint, key["AccessKeyId"], key["SecretAccessKey"], token)["s3"].list_buckets)

    # Past its expiration on the simulated clock.
    fresh_kmsim.admin.advance_clock(seconds=901)
    error = expect("ExpiredTokenException", 400, c["kms"].list_keys)
    assert error["Message"] == "The security token included in the request is expired"
    error = expect("ExpiredToken", 400, c["s3"].list_buckets)
    assert error["Message"] == "The provided token has expired."
    expect("ExpiredToken", 403, c["sts"].get_caller_identity)
    assert http_get(v2_url)[0] == 400
    expired = requests.post(forms[0]["url"], data=forms[0]["fields"], files={"file": ("f", b"late")}, timeout=30)
    assert expired.status_code == 400 and b"<Code>ExpiredToken</Code>" in expired.content, expired.text


def test_session_tags_and_role_chaining(kmsim, root):
    iam = root["iam"]
    user, key = new_user(iam)
    role = iam.create_role(RoleName=unique("tagged"),
                           AssumeRolePolicyDocument=trust(user["Arn"], actions=("sts:AssumeRole", "sts:TagSession")))["Role"]
    iam.put_role_policy(RoleName=role["RoleName"], PolicyName="all", PolicyDocument=ALLOW_ALL)
    sts = clients(kmsim["endpoint"], key["AccessKeyId"], key["SecretAccessKey"])["sts"]
    answer = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="tagged", Tags=[{"Key": "team", "Value": "blue"}],
                             TransitiveTagKeys=["team"])
    assert "PackedPolicySize" in answer
    creds = answer["Credentials"]
    chained = clients(kmsim["endpoint"], creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])["sts"]
    # A session assuming a role (here its own, trusted by its ARN) is held to one hour.
    self_trust = trust(user["Arn"], f"arn:aws:sts::{DEFAULT_ACCOUNT}:assumed-role/{role['RoleName']}/tagged",
                       actions=("sts:AssumeRole", "sts:TagSession"))
    iam.update_assume_role_policy(RoleName=role["RoleName"], PolicyDocument=self_trust)
    error = expect("ValidationError", 400, chained.assume_role, RoleArn=role["Arn"], RoleSessionName="again",
                   DurationSeconds=3601)
    assert "role chaining" in error["Message"]
    again = chained.assume_role(RoleArn=role["Arn"], RoleSessionName="again")["AssumedRoleUser"]
    assert again["Arn"] == f"arn:aws:sts::{DEFAULT_ACCOUNT}:assumed-role/{role['RoleName']}/again"
    # Tags need sts:TagSession in the trust policy.
    iam.update_assume_role_policy(RoleName=role["RoleName"], PolicyDocument=trust(user["Arn"]))
    expect("AccessDenied", 403, sts.assume_role, RoleArn=role["Arn"], RoleSessionName="t1",
           Tags=[{"Key": "team", "Value": "red"}])


# ---- configuration, persistence, the aws CLI -----------------------------------------------------

CONFIG = """
[[accounts]]
id = "111122223333"
access_keys = [{ access_key_id = "AKIDROOT2", secret_access_key = "root-secret" },
               { access_key_id = "AKIDLEGACY", secret_access_key = "legacy-secret", user = "legacy" }]

[[accounts.policies]]
name = "iam-read"
document = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:Get*","iam:List*"],"Resource":"*"}]}'

[[accounts.users]]
name = "bob"
path = "/dev/"
access_keys = [{ access_key_id = "AKIDBOB", secret_access_key = "bob-secret" }]
attached_policies = ["iam-read"]

[[accounts.roles]]
name = "deployer"
max_session_duration = 7200
trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/dev/bob"},"Action":"sts:AssumeRole"}]}'
policies = { all = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}' }
"""


def test_configured_users_and_roles_work_at_start(start_kmsim):
    server = start_kmsim(config=CONFIG)
    assert {"AKIDROOT2", "AKIDLEGACY", "AKIDBOB"} <= set(server.info["access_key_ids"])
    bob = clients(server.endpoint, "AKIDBOB", "bob-secret")
    assert bob["sts"].get_caller_identity()["Arn"] == "arn:aws:iam::111122223333:user/dev/bob"
    assert bob["iam"].get_user(UserName="bob")["User"]["Path"] == "/dev/"
    expect("AccessDenied", 403, bob["iam"].create_user, UserName="x")
    legacy = clients(server.endpoint, "AKIDLEGACY", "legacy-secret")["sts"].get_caller_identity()
    assert legacy["Arn"] == "arn:aws:iam::111122223333:user/legacy" and legacy["UserId"].startswith("AIDA")
    root2 = clients(server.endpoint, "AKIDROOT2", "root-secret")
    assert root2["sts"].get_caller_identity()["Arn"] == "arn:aws:iam::111122223333:root"
    assert "bob" not in [u["UserName"] for u in clients(server.endpoint, "test", "test")["iam"].list_users()["Users"]]
    creds = bob["sts"].assume_role(RoleArn="arn:aws:iam::111122223333:role/deployer", RoleSessionName="ci",
                                   DurationSeconds=7200)["Credentials"]
    kms_and_s3_work(server.endpoint, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    # A reset keeps what the configuration declares.
    server.admin.reset()
    assert bob["sts"].get_caller_identity()["Account"] == "111122223333"


def test_a_configuration_that_does_not_fit_stops_the_start(tmp_path):
    import subprocess

    from conftest import KMSIM_BIN

    bad = CONFIG.replace('attached_policies = ["iam-read"]', 'attached_policies = ["missing"]')
    path = tmp_path / "bad.toml"
    path.write_text(bad)
    done = subprocess.run([str(KMSIM_BIN), "--port", "0", "--in-memory", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "user bob" in done.stderr and "missing" in done.stderr, done.stderr


def test_identities_survive_a_restart(kmsim_data_dir):
    server = kmsim_data_dir()
    root = clients(server.endpoint, "test", "test")
    user, key = new_user(root["iam"], name="persistent")
    root["iam"].put_user_policy(UserName="persistent", PolicyName="iam", PolicyDocument=ALLOW_IAM)
    server.restart(crash=True)
    c = clients(server.endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    assert c["sts"].get_caller_identity()["Arn"] == user["Arn"]
    assert c["iam"].get_user_policy(UserName="persistent", PolicyName="iam")["PolicyName"] == "iam"
    c["iam"].list_users()
    secret = key["SecretAccessKey"].encode()
    assert all(secret not in p.read_bytes() for p in server.data_dir.rglob("*") if p.is_file())


def test_aws_cli_drives_iam_and_sts(kmsim, tmp_path):
    cli = AwsS3Cli(kmsim["endpoint"], "test", "test", kmsim["region"], workdir=tmp_path)
    name = unique("cli")
    done = cli("iam", "create-user", "--user-name", name, "--output", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["User"]["UserName"] == name
    done = cli("iam", "create-access-key", "--user-name", name, "--output", "json")
    assert done.returncode == 0, done.stderr
    key = json.loads(done.stdout)["AccessKey"]
    policy = tmp_path / "trust.json"
    policy.write_text(trust(f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/{name}"))
    role = unique("cli-role")
    done = cli("iam", "create-role", "--role-name", role, "--assume-role-policy-document", f"file://{policy}",
               "--output", "json")
    assert done.returncode == 0, done.stderr
    as_user = AwsS3Cli(kmsim["endpoint"], key["AccessKeyId"], key["SecretAccessKey"], kmsim["region"], workdir=tmp_path)
    done = as_user("sts", "get-caller-identity", "--output", "json")
    assert done.returncode == 0 and json.loads(done.stdout)["Arn"].endswith(f":user/{name}"), done.stderr
    done = as_user("sts", "assume-role", "--role-arn", f"arn:aws:iam::{DEFAULT_ACCOUNT}:role/{role}",
                   "--role-session-name", "cli", "--output", "json")
    assert done.returncode == 0, done.stderr
    creds = json.loads(done.stdout)["Credentials"]
    done = as_user("sts", "get-caller-identity", "--output", "json", AWS_ACCESS_KEY_ID=creds["AccessKeyId"],
                   AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"], AWS_SESSION_TOKEN=creds["SessionToken"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"] == f"arn:aws:sts::{DEFAULT_ACCOUNT}:assumed-role/{role}/cli"
    done = as_user("iam", "create-user", "--user-name", "nope")
    assert done.returncode != 0 and "AccessDenied" in done.stderr and "iam:CreateUser" in done.stderr
    done = cli("iam", "put-user-policy", "--user-name", name, "--policy-name", "bad", "--policy-document", "{")
    assert done.returncode != 0 and "MalformedPolicyDocument" in done.stderr
