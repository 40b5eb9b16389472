"""Bucket policies through boto3 (default configuration), the aws CLI and unsigned HTTP.

PutBucketPolicy / GetBucketPolicy / DeleteBucketPolicy / GetBucketPolicyStatus, the grammar S3 refuses
(MalformedPolicy with S3's messages), and the classic policies evaluated on every request: deny PutObject unless
SSE-KMS, unless one key, deny any request without TLS, public read for the anonymous requester — with Block Public
Access's BlockPublicPolicy and RestrictPublicBuckets. The bucket owner account's root may always change the policy,
even one that denies it everything ("even if the policy explicitly denies").
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError

from conftest import DEFAULT_ACCOUNT, http_get

ROOT = f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"
ALL_OFF = {"BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
           "RestrictPublicBuckets": False}


def expect_error(code: str, status: int, call: Callable[..., Any], /, **params: Any) -> dict:
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    assert response["Error"]["Code"] == code, f"expected {code}, got {response['Error']}"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status, response["ResponseMetadata"]
    return response["Error"]


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def new_bucket(s3) -> str:
    name = f"bp-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


def test_put_get_delete_and_status(s3):
    bucket = new_bucket(s3)
    expect_error("NoSuchBucketPolicy", 404, s3.get_bucket_policy, Bucket=bucket)
    expect_error("NoSuchBucketPolicy", 404, s3.get_bucket_policy_status, Bucket=bucket)
    document = policy({"Sid": "OwnerReads", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{bucket}/*"})
    s3.put_bucket_policy(Bucket=bucket, Policy=document)
    assert s3.get_bucket_policy(Bucket=bucket)["Policy"] == document
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"] == {"IsPublic": False}
    s3.delete_bucket_policy(Bucket=bucket)
    expect_error("NoSuchBucketPolicy", 404, s3.get_bucket_policy, Bucket=bucket)


@pytest.mark.parametrize("statement,message", [
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::{bucket}/*"},
     "Missing required field Principal"),
    ({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::other-bucket/*"},
     "Policy has invalid resource"),
    ({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::12345:root"}, "Action": "s3:GetObject",
      "Resource": "arn:aws:s3:::{bucket}/*"}, "Invalid principal in policy"),
])
def test_malformed_policies_are_refused(s3, statement: dict, message: str):
    bucket = new_bucket(s3)
    statement = json.loads(json.dumps(statement).replace("{bucket}", bucket))
    error = expect_error("MalformedPolicy", 400, s3.put_bucket_policy, Bucket=bucket, Policy=policy(statement))
    assert error["Message"] == message
    error = expect_error("MalformedPolicy", 400, s3.put_bucket_policy, Bucket=bucket, Policy="{not json")
    assert error["Message"] == "This policy contains invalid Json"
    expect_error("NoSuchBucketPolicy", 404, s3.get_bucket_policy, Bucket=bucket)


def test_deny_uploads_without_sse_kms(s3, kms):
    # "Requiring server-side encryption with AWS KMS" (S3 user guide's bucket policy examples).
    bucket = new_bucket(s3)
    s3.put_bucket_policy(Bucket=bucket, Policy=policy({
        "Sid": "DenyUnencryptedUploads", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}}))
    error = expect_error("AccessDenied", 403, s3.put_object, Bucket=bucket, Key="plain", Body=b"x")
    assert error["Message"] == (f"User: {ROOT} is not authorized to perform: s3:PutObject on resource: "
                                f"\"arn:aws:s3:::{bucket}/plain\" with an explicit deny in a resource-based policy")
    expect_error("AccessDenied", 403, s3.put_object, Bucket=bucket, Key="sse-s3", Body=b"x",
                 ServerSideEncryption="AES256")
    s3.put_object(Bucket=bucket, Key="kms", Body=b"x", ServerSideEncryption="aws:kms")
    assert s3.get_object(Bucket=bucket, Key="kms")["ServerSideEncryption"] == "aws:kms"
    for key in ("plain", "sse-s3"):
        expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key=key)


def test_deny_uploads_under_another_key(s3, kms):
    bucket = new_bucket(s3)
    wanted = kms.create_key()["KeyMetadata"]["Arn"]
    other = kms.create_key()["KeyMetadata"]["Arn"]
    s3.put_bucket_policy(Bucket=bucket, Policy=policy({
        "Sid": "OnlyOurKey", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": wanted}}}))
    expect_error("AccessDenied", 403, s3.put_object, Bucket=bucket, Key="k", Body=b"x",
                 ServerSideEncryption="aws:kms", SSEKMSKeyId=other)
    expect_error("AccessDenied", 403, s3.put_object, Bucket=bucket, Key="k", Body=b"x")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=wanted)
    assert s3.head_object(Bucket=bucket, Key="k")["SSEKMSKeyId"] == wanted


def test_deny_without_tls_and_the_root_keeps_the_policy(s3):
    # "Requiring HTTPS": this server speaks plain HTTP, so every request is refused — but the bucket owner's root
    # may still read, replace and delete the policy.
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    document = policy({"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                       "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                       "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    s3.put_bucket_policy(Bucket=bucket, Policy=document)
    expect_error("AccessDenied", 403, s3.get_object, Bucket=bucket, Key="k")
    expect_error("AccessDenied", 403, s3.list_objects_v2, Bucket=bucket)
    assert s3.get_bucket_policy(Bucket=bucket)["Policy"] == document
    s3.delete_bucket_policy(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def public_read(bucket: str) -> str:
    return policy({"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                   "Resource": f"arn:aws:s3:::{bucket}/*"})


def test_public_read_and_block_public_access(s3, kmsim):
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="page.html", Body=b"<h1>hi</h1>")
    url = f"{kmsim['endpoint'].rstrip('/')}/{bucket}/page.html"
    assert http_get(url)[0] == 403
    # New buckets block public policies.
    error = expect_error("AccessDenied", 403, s3.put_bucket_policy, Bucket=bucket, Policy=public_read(bucket))
    assert error["Message"].endswith("because public policies are blocked by the BlockPublicPolicy block public "
                                     "access setting.")
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=ALL_OFF)
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"] == {"IsPublic": True}
    assert http_get(url) == (200, b"<h1>hi</h1>")
    # Only GetObject is public: no listing, no writes.
    assert http_get(f"{kmsim['endpoint'].rstrip('/')}/{bucket}")[0] == 403
    # RestrictPublicBuckets: the public policy no longer lets anyone outside the account in.
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={**ALL_OFF,
                                                                             "RestrictPublicBuckets": True})
    assert http_get(url)[0] == 403
    assert s3.get_object(Bucket=bucket, Key="page.html")["Body"].read() == b"<h1>hi</h1>"


def test_aws_cli_bucket_policy(aws_s3_cli, s3, tmp_path):
    bucket = new_bucket(s3)
    document = policy({"Sid": "DenyDeletes", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
                       "Resource": f"arn:aws:s3:::{bucket}/*"})
    path = tmp_path / "policy.json"
    path.write_text(document)
    done = aws_s3_cli("s3api", "put-bucket-policy", "--bucket", bucket, "--policy", f"file://{path}")
    assert done.returncode == 0, done.stderr
    done = aws_s3_cli("s3api", "get-bucket-policy", "--bucket", bucket, "--output", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(json.loads(done.stdout)["Policy"]) == json.loads(document)
    s3.put_object(Bucket=bucket, Key="kept", Body=b"x")
    done = aws_s3_cli("s3", "rm", f"s3://{bucket}/kept")
    assert done.returncode != 0 and "AccessDenied" in done.stderr, done.stderr
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"x"


def test_object_tag_condition_keys(s3):
    # "s3:RequestObjectTag/<key>" on writes, "s3:ExistingObjectTag/<key>" on what acts on an object.
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="secret", Body=b"x", Tagging="classification=secret")
    s3.put_object(Bucket=bucket, Key="open", Body=b"y", Tagging="classification=public")
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        {"Sid": "NoSecretReads", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/classification": "secret"}}},
        {"Sid": "TaggedWritesOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"Null": {"s3:RequestObjectTag/classification": "true"}}}))
    expect_error("AccessDenied", 403, s3.get_object, Bucket=bucket, Key="secret")
    assert s3.get_object(Bucket=bucket, Key="open")["Body"].read() == b"y"
    expect_error("AccessDenied", 403, s3.put_object, Bucket=bucket, Key="untagged", Body=b"z")
    s3.put_object(Bucket=bucket, Key="tagged", Body=b"z", Tagging="classification=public&team=a")
    assert s3.get_object(Bucket=bucket, Key="tagged")["Body"].read() == b"z"
    # PutObjectTagging's tags are in its body: a policy reads them just the same.
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        {"Sid": "NoSecretRetagging", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObjectTagging",
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/classification": "secret"}}}))
    tag = {"TagSet": [{"Key": "classification", "Value": "secret"}]}
    expect_error("AccessDenied", 403, s3.put_object_tagging, Bucket=bucket, Key="open", Tagging=tag)
    assert s3.get_object_tagging(Bucket=bucket, Key="open")["TagSet"] == [{"Key": "classification",
                                                                           "Value": "public"}]
    s3.put_object_tagging(Bucket=bucket, Key="open", Tagging={"TagSet": [{"Key": "team", "Value": "b"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="open")["TagSet"] == [{"Key": "team", "Value": "b"}]
