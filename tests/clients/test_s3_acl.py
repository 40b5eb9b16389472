"""S3 Object Ownership, ACLs and Block Public Access on kmsim, through boto3 (default configuration),
the aws CLI and unsigned requests made with ``urllib`` and ``requests``, checked against what S3 answers:

* new buckets as S3 makes them since April 2023: ``BucketOwnerEnforced`` (ACLs disabled) and all four
  Block Public Access settings; ACL'd writes refused with ``AccessControlListNotSupported``;
* ``ObjectWriter`` and ``BucketOwnerPreferred`` buckets: canned ACLs and ``x-amz-grant-*`` headers on
  writes, copies, form uploads and multipart uploads (applied at completion), GetObjectAcl /
  PutObjectAcl and their bucket twins with headers or an ``<AccessControlPolicy>`` body;
* who reads: the anonymous requester (plain HTTP, no signature) through ``AllUsers`` grants, a second
  account through ``AuthenticatedUsers`` or its canonical id, nobody else;
* ``BlockPublicAcls`` refusing public ACLs, ``IgnorePublicAcls`` hiding them, and all of it surviving a
  restart of a server on a data dir.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
import uuid
from typing import Any, Callable
from xml.etree import ElementTree

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import http_get

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
OTHER_ACCOUNT = "111122223333"
SECOND_ACCOUNT_CONFIG = f"""
[[accounts]]
id = "{OTHER_ACCOUNT}"
access_keys = [{{ access_key_id = "AKIDACLOTHER", secret_access_key = "other-secret" }}]
"""
ALL_OFF = {"BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
           "RestrictPublicBuckets": False}
ALL_ON = {name: True for name in ALL_OFF}
# aws CLI v1: `aws s3api ...` exits with 255 for an error returned by the service.
CLI_SERVICE_ERROR = 255


# ---- helpers -------------------------------------------------------------------------------------


def bucket_name(prefix: str = "acl") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def expect_error(code: str, status: int, call: Callable[..., Any], /, **params: Any) -> dict:
    """Calls ``call(**params)`` and asserts that it fails with the S3 error ``code`` and HTTP ``status``."""
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    assert response["Error"]["Code"] == code, f"expected {code}, got {response['Error']} for {params}"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status, response["ResponseMetadata"]
    return response


def object_url(endpoint: str, bucket: str, key: str) -> str:
    return f"{endpoint.rstrip('/')}/{bucket}/{key}"


def anonymous_error(status_and_body: tuple[int, bytes]) -> tuple[int, str | None, str | None]:
    """The status, code and message of an unsigned request's error answer."""
    status, body = status_and_body
    if not body:
        return status, None, None
    root = ElementTree.fromstring(body)
    return status, root.findtext("Code"), root.findtext("Message")


def anonymous_head(url: str) -> int:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def grants_of(acl: dict) -> set[tuple[str, str, str]]:
    """An ACL's grants as (type, id or URI, permission)."""
    out = set()
    for grant in acl["Grants"]:
        grantee = grant["Grantee"]
        out.add((grantee["Type"], grantee.get("ID") or grantee.get("URI"), grant["Permission"]))
    return out


def writer_bucket(s3, ownership: str = "ObjectWriter") -> str:
    """A bucket whose ACLs count (``ownership``) and whose Block Public Access is deleted, as one must do
    on S3 since April 2023 before anything in a bucket can be made public."""
    name = bucket_name()
    s3.create_bucket(Bucket=name, ObjectOwnership=ownership)
    s3.delete_public_access_block(Bucket=name)
    return name


def canonical_id(s3) -> str:
    return s3.list_buckets()["Owner"]["ID"]


# ---- defaults of new buckets ---------------------------------------------------------------------


def test_new_buckets_disable_acls_and_block_public_access(s3, s3_bucket, kmsim):
    controls = s3.get_bucket_ownership_controls(Bucket=s3_bucket)["OwnershipControls"]
    assert controls == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert s3.get_public_access_block(Bucket=s3_bucket)["PublicAccessBlockConfiguration"] == ALL_ON
    owner = canonical_id(s3)
    assert re.fullmatch("[0-9a-f]{64}", owner), owner
    acl = s3.get_bucket_acl(Bucket=s3_bucket)
    assert acl["Owner"] == {"ID": owner, "DisplayName": kmsim["account_id"]}
    assert grants_of(acl) == {("CanonicalUser", owner, "FULL_CONTROL")}
    # The same canonical user owns what listings show.
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"data")
    assert s3.list_objects(Bucket=s3_bucket)["Contents"][0]["Owner"] == acl["Owner"]


def test_bucket_owner_enforced_refuses_acls_but_answers_reads(s3, s3_bucket):
    expect_error("AccessControlListNotSupported", 400, s3.put_object, Bucket=s3_bucket, Key="public",
                 Body=b"x", ACL="public-read")
    expect_error("AccessControlListNotSupported", 400, s3.put_object, Bucket=s3_bucket, Key="granted",
                 Body=b"x", GrantRead=f'uri="{ALL_USERS}"')
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=s3_bucket, Key="public")
    error = expect_error("AccessControlListNotSupported", 400, s3.create_multipart_upload, Bucket=s3_bucket,
                         Key="mpu", ACL="authenticated-read")
    assert error["Error"]["Message"] == "The bucket does not allow ACLs"
    # bucket-owner-full-control, or its equivalents for the bucket's own account, are no ACL at all here.
    owner = canonical_id(s3)
    s3.put_object(Bucket=s3_bucket, Key="bofc", Body=b"x", ACL="bucket-owner-full-control")
    s3.put_object(Bucket=s3_bucket, Key="private", Body=b"x", ACL="private")
    s3.put_object(Bucket=s3_bucket, Key="full", Body=b"x", GrantFullControl=f'id="{owner}"')
    for key in ["bofc", "private", "full"]:
        acl = s3.get_object_acl(Bucket=s3_bucket, Key=key)
        assert acl["Owner"]["ID"] == owner
        assert grants_of(acl) == {("CanonicalUser", owner, "FULL_CONTROL")}
    # Setting an ACL is refused whatever it says.
    expect_error("AccessControlListNotSupported", 400, s3.put_bucket_acl, Bucket=s3_bucket, ACL="private")
    expect_error("AccessControlListNotSupported", 400, s3.put_object_acl, Bucket=s3_bucket, Key="private",
                 ACL="private")


def test_create_bucket_acls_follow_ownership_and_block_public_access(s3):
    name = bucket_name()
    error = expect_error("InvalidBucketAclWithObjectOwnership", 400, s3.create_bucket, Bucket=name,
                         ACL="public-read")
    assert error["Error"]["Message"] == "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
    expect_error("InvalidBucketAclWithObjectOwnership", 400, s3.create_bucket, Bucket=name,
                 ACL="log-delivery-write", ObjectOwnership="BucketOwnerEnforced")
    expect_error("404", 404, s3.head_bucket, Bucket=name)
    # A public ACL with ACLs enabled: a new bucket blocks public ACLs, so S3 refuses it.
    expect_error("AccessDenied", 403, s3.create_bucket, Bucket=name, ACL="public-read", ObjectOwnership="ObjectWriter")
    expect_error("404", 404, s3.head_bucket, Bucket=name)
    s3.create_bucket(Bucket=name, ACL="private")
    assert s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    logs = bucket_name("logs")
    s3.create_bucket(Bucket=logs, ACL="log-delivery-write", ObjectOwnership="BucketOwnerPreferred")
    assert grants_of(s3.get_bucket_acl(Bucket=logs)) == {
        ("CanonicalUser", canonical_id(s3), "FULL_CONTROL"),
        ("Group", "http://acs.amazonaws.com/groups/s3/LogDelivery", "WRITE"),
        ("Group", "http://acs.amazonaws.com/groups/s3/LogDelivery", "READ_ACP"),
    }
    expect_error("InvalidArgument", 400, s3.create_bucket, Bucket=bucket_name(), ObjectOwnership="Everyone")


# ---- ACLs and anonymous reads --------------------------------------------------------------------


def test_public_read_object_is_readable_without_a_signature(s3, kmsim):
    bucket = writer_bucket(s3)
    endpoint = kmsim["endpoint"]
    s3.put_object(Bucket=bucket, Key="public.txt", Body=b"for everyone", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="private.txt", Body=b"mine")

    assert http_get(object_url(endpoint, bucket, "public.txt")) == (200, b"for everyone")
    assert requests.get(object_url(endpoint, bucket, "public.txt"), timeout=30).content == b"for everyone"
    assert anonymous_head(object_url(endpoint, bucket, "public.txt")) == 200
    assert anonymous_error(http_get(object_url(endpoint, bucket, "private.txt"))) == (403, "AccessDenied", "Access Denied")
    assert anonymous_head(object_url(endpoint, bucket, "private.txt")) == 403
    # Whoever may not list the bucket learns nothing of what is not there: 403, not 404.
    assert anonymous_error(http_get(object_url(endpoint, bucket, "nothing")))[:2] == (403, "AccessDenied")
    assert anonymous_error(http_get(f"{endpoint}/{bucket}"))[:2] == (403, "AccessDenied")
    assert anonymous_error(http_get(f"{endpoint}/"))[:2] == (403, "AccessDenied")
    assert anonymous_error(http_get(object_url(endpoint, bucket_name("absent"), "k")))[:2] == (404, "NoSuchBucket")
    # Unsigned writes and ACL reads are refused.
    assert requests.put(object_url(endpoint, bucket, "new"), data=b"x", timeout=30).status_code == 403
    assert anonymous_error(http_get(object_url(endpoint, bucket, "public.txt") + "?acl"))[:2] == (403, "AccessDenied")

    acl = s3.get_object_acl(Bucket=bucket, Key="public.txt")
    owner = canonical_id(s3)
    assert acl["Owner"]["ID"] == owner
    assert grants_of(acl) == {("CanonicalUser", owner, "FULL_CONTROL"), ("Group", ALL_USERS, "READ")}
    assert grants_of(s3.get_object_acl(Bucket=bucket, Key="private.txt")) == {("CanonicalUser", owner, "FULL_CONTROL")}

    # An object made public afterwards, and private again.
    s3.put_object_acl(Bucket=bucket, Key="private.txt", ACL="public-read")
    assert http_get(object_url(endpoint, bucket, "private.txt")) == (200, b"mine")
    s3.put_object_acl(Bucket=bucket, Key="private.txt", ACL="private")
    assert http_get(object_url(endpoint, bucket, "private.txt"))[0] == 403


def test_public_read_bucket_lists_and_public_read_write_bucket_takes_writes(s3, kmsim):
    endpoint = kmsim["endpoint"]
    bucket = writer_bucket(s3)
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    status, body = http_get(f"{endpoint}/{bucket}?list-type=2")
    assert status == 200 and b"<Key>a</Key>" in body, body
    # Listing does not open the objects: a is still private.
    assert http_get(object_url(endpoint, bucket, "a"))[0] == 403
    # ... and now a missing key is what it is.
    assert anonymous_error(http_get(object_url(endpoint, bucket, "nothing")))[:2] == (404, "NoSuchKey")
    assert requests.put(object_url(endpoint, bucket, "b"), data=b"x", timeout=30).status_code == 403

    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    put = requests.put(object_url(endpoint, bucket, "anonymous.txt"), data=b"from nobody", timeout=30)
    assert put.status_code == 200, put.text
    # What the anonymous requester writes to an ObjectWriter bucket, it owns (S3's anonymous canonical user).
    listed = s3.list_objects(Bucket=bucket, Prefix="anonymous")["Contents"][0]
    assert listed["Owner"]["ID"] == "65a011a29cdf8ec533ec3d1ccaae921c"
    assert http_get(object_url(endpoint, bucket, "anonymous.txt")) == (200, b"from nobody")
    expect_error("AccessDenied", 403, s3.get_object, Bucket=bucket, Key="anonymous.txt")
    # The bucket's owner may still delete it: a delete is the bucket's.
    s3.delete_object(Bucket=bucket, Key="anonymous.txt")
    # A form upload without a signature, to the same bucket.
    form = requests.post(f"{endpoint}/{bucket}", data={"key": "form.txt", "acl": "public-read"},
                         files={"file": ("f", b"posted")}, timeout=30)
    assert form.status_code == 204, form.text
    assert http_get(object_url(endpoint, bucket, "form.txt")) == (200, b"posted")
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    form = requests.post(f"{endpoint}/{bucket}", data={"key": "late.txt"}, files={"file": ("f", b"x")}, timeout=30)
    assert anonymous_error((form.status_code, form.content))[:2] == (403, "AccessDenied")


def test_block_public_acls_refuses_public_acls(s3, kmsim):
    bucket = writer_bucket(s3)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={**ALL_OFF, "BlockPublicAcls": True})
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        **ALL_OFF, "BlockPublicAcls": True}
    error = expect_error("AccessDenied", 403, s3.put_object, Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    assert error["Error"]["Message"] == "Access Denied"
    expect_error("AccessDenied", 403, s3.put_object, Bucket=bucket, Key="k", Body=b"x",
                 GrantRead=f'uri="{AUTHENTICATED_USERS}"')
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="private")
    expect_error("AccessDenied", 403, s3.put_object_acl, Bucket=bucket, Key="k", ACL="public-read-write")
    expect_error("AccessDenied", 403, s3.put_bucket_acl, Bucket=bucket, ACL="authenticated-read")
    expect_error("AccessDenied", 403, s3.copy_object, Bucket=bucket, Key="copy", CopySource=f"{bucket}/k",
                 ACL="public-read")
    expect_error("AccessDenied", 403, s3.create_multipart_upload, Bucket=bucket, Key="mpu", ACL="public-read")
    # Not public: still fine.
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="aws-exec-read")
    assert ("CanonicalUser", "6aa5a366c34c1cbe25dc49211496e913e0351eb0e8c37aa3477e40942ec6b97c", "READ") in grants_of(
        s3.get_object_acl(Bucket=bucket, Key="k"))
    assert http_get(object_url(kmsim["endpoint"], bucket, "k"))[0] == 403


def test_ignore_public_acls_hides_public_objects(s3, kmsim):
    bucket = writer_bucket(s3)
    url = object_url(kmsim["endpoint"], bucket, "public")
    s3.put_object(Bucket=bucket, Key="public", Body=b"seen", ACL="public-read")
    assert http_get(url) == (200, b"seen")
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={**ALL_OFF, "IgnorePublicAcls": True})
    assert anonymous_error(http_get(url)) == (403, "AccessDenied", "Access Denied")
    # Ignored, not removed: the ACL still says it, and a public ACL may still be set.
    assert ("Group", ALL_USERS, "READ") in grants_of(s3.get_object_acl(Bucket=bucket, Key="public"))
    s3.put_object(Bucket=bucket, Key="public2", Body=b"x", ACL="public-read")
    s3.delete_public_access_block(Bucket=bucket)
    expect_error("NoSuchPublicAccessBlockConfiguration", 404, s3.get_public_access_block, Bucket=bucket)
    assert http_get(url) == (200, b"seen")


def test_anonymous_reads_of_sse_kms_objects_are_refused(s3, kmsim):
    bucket = writer_bucket(s3)
    s3.put_object(Bucket=bucket, Key="kms", Body=b"secret", ACL="public-read", ServerSideEncryption="aws:kms")
    s3.put_object(Bucket=bucket, Key="sse-s3", Body=b"plain", ACL="public-read")
    assert anonymous_error(http_get(object_url(kmsim["endpoint"], bucket, "kms"))) == (
        400, "InvalidArgument",
        "Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature Version 4.")
    assert http_get(object_url(kmsim["endpoint"], bucket, "sse-s3")) == (200, b"plain")
    assert s3.get_object(Bucket=bucket, Key="kms")["Body"].read() == b"secret"


# ---- ownership controls --------------------------------------------------------------------------


def test_ownership_controls_round_trip(s3, s3_bucket):
    def ownership() -> str:
        return s3.get_bucket_ownership_controls(Bucket=s3_bucket)["OwnershipControls"]["Rules"][0]["ObjectOwnership"]

    for setting in ["ObjectWriter", "BucketOwnerPreferred", "BucketOwnerEnforced", "ObjectWriter"]:
        s3.put_bucket_ownership_controls(Bucket=s3_bucket,
                                         OwnershipControls={"Rules": [{"ObjectOwnership": setting}]})
        assert ownership() == setting
    s3.delete_bucket_ownership_controls(Bucket=s3_bucket)
    s3.delete_public_access_block(Bucket=s3_bucket)
    error = expect_error("OwnershipControlsNotFoundError", 404, s3.get_bucket_ownership_controls, Bucket=s3_bucket)
    assert error["Error"]["Message"] == "The bucket ownership controls were not found"
    assert error["Error"]["BucketName"] == s3_bucket
    # Without ownership controls, ACLs count (as in S3's buckets from before April 2023).
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"x", ACL="authenticated-read")
    assert ("Group", AUTHENTICATED_USERS, "READ") in grants_of(s3.get_object_acl(Bucket=s3_bucket, Key="k"))
    expect_error("MalformedXML", 400, s3.put_bucket_ownership_controls, Bucket=s3_bucket,
                 OwnershipControls={"Rules": [{"ObjectOwnership": "Nobody"}]})
    # ACLs cannot be disabled while the bucket's ACL grants others; objects' ACLs do not stop it.
    s3.put_bucket_acl(Bucket=s3_bucket, ACL="authenticated-read")
    expect_error("InvalidBucketAclWithObjectOwnership", 400, s3.put_bucket_ownership_controls, Bucket=s3_bucket,
                 OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    expect_error("OwnershipControlsNotFoundError", 404, s3.get_bucket_ownership_controls, Bucket=s3_bucket)
    s3.put_bucket_acl(Bucket=s3_bucket, ACL="private")
    s3.put_bucket_ownership_controls(Bucket=s3_bucket,
                                     OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    # Disabled: the object's ACL is out of force (and answered as the owner's full control) ...
    owner = canonical_id(s3)
    assert grants_of(s3.get_object_acl(Bucket=s3_bucket, Key="k")) == {("CanonicalUser", owner, "FULL_CONTROL")}
    # ... and back in force when ACLs are enabled again.
    s3.put_bucket_ownership_controls(Bucket=s3_bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]})
    assert ("Group", AUTHENTICATED_USERS, "READ") in grants_of(s3.get_object_acl(Bucket=s3_bucket, Key="k"))


# ---- ACL documents, grants, copies, multipart uploads ----------------------------------------------


def test_acl_documents_and_grant_headers(s3, kmsim):
    bucket = writer_bucket(s3)
    owner = canonical_id(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    policy = {
        "Owner": {"ID": owner},
        "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": owner}, "Permission": "FULL_CONTROL"},
            {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"},
            {"Grantee": {"Type": "Group", "URI": AUTHENTICATED_USERS}, "Permission": "READ_ACP"},
        ],
    }
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy=policy)
    acl = s3.get_object_acl(Bucket=bucket, Key="k")
    assert grants_of(acl) == {("CanonicalUser", owner, "FULL_CONTROL"), ("Group", ALL_USERS, "READ"),
                              ("Group", AUTHENTICATED_USERS, "READ_ACP")}
    assert acl["Grants"][0]["Grantee"]["DisplayName"] == kmsim["account_id"]
    assert http_get(object_url(kmsim["endpoint"], bucket, "k")) == (200, b"x")

    bad_id = {**policy, "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": "f" * 64}, "Permission": "READ"}]}
    error = expect_error("InvalidArgument", 400, s3.put_object_acl, Bucket=bucket, Key="k", AccessControlPolicy=bad_id)
    assert (error["Error"]["Message"], error["Error"]["ArgumentName"]) == ("Invalid id", "CanonicalUser/ID")
    bad_uri = {**policy, "Grants": [{"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/x"},
                                     "Permission": "READ"}]}
    expect_error("InvalidArgument", 400, s3.put_object_acl, Bucket=bucket, Key="k", AccessControlPolicy=bad_uri)
    bad_permission = {**policy, "Grants": [{"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "ALL"}]}
    expect_error("MalformedACLError", 400, s3.put_object_acl, Bucket=bucket, Key="k",
                 AccessControlPolicy=bad_permission)
    expect_error("UnexpectedContent", 400, s3.put_object_acl, Bucket=bucket, Key="k", ACL="private",
                 AccessControlPolicy=policy)
    expect_error("MissingSecurityHeader", 400, s3.put_bucket_acl, Bucket=bucket)
    expect_error("InvalidRequest", 400, s3.put_object, Bucket=bucket, Key="both", Body=b"x", ACL="private",
                 GrantRead=f'id="{owner}"')
    expect_error("InvalidArgument", 400, s3.put_object, Bucket=bucket, Key="bad", Body=b"x",
                 GrantRead='id="0000000000000000000000000000000000000000000000000000000000000000"')
    expect_error("MethodNotAllowed", 405, s3.put_object, Bucket=bucket, Key="mail", Body=b"x",
                 GrantRead='emailAddress="someone@example.com"')
    # Nothing refused changed the ACL.
    assert grants_of(s3.get_object_acl(Bucket=bucket, Key="k")) == grants_of(acl)

    # Grant headers give exactly their grants (the owner keeps its rights as the owner).
    s3.put_object(Bucket=bucket, Key="granted", Body=b"g", GrantRead=f'uri="{ALL_USERS}"',
                  GrantFullControl=f'id="{owner}"')
    assert grants_of(s3.get_object_acl(Bucket=bucket, Key="granted")) == {
        ("Group", ALL_USERS, "READ"), ("CanonicalUser", owner, "FULL_CONTROL")}
    s3.put_bucket_acl(Bucket=bucket, GrantRead=f'uri="{ALL_USERS}"')
    bucket_acl = s3.get_bucket_acl(Bucket=bucket)
    assert grants_of(bucket_acl) == {("Group", ALL_USERS, "READ")}
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 2


def test_versions_have_acls_of_their_own(s3, kmsim):
    bucket = writer_bucket(s3)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"v1", ACL="public-read")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"v2")["VersionId"]
    assert ("Group", ALL_USERS, "READ") in grants_of(s3.get_object_acl(Bucket=bucket, Key="k", VersionId=first))
    assert ("Group", ALL_USERS, "READ") not in grants_of(s3.get_object_acl(Bucket=bucket, Key="k"))
    url = object_url(kmsim["endpoint"], bucket, "k")
    assert http_get(url)[0] == 403
    assert http_get(f"{url}?versionId={first}") == (200, b"v1")
    s3.put_object_acl(Bucket=bucket, Key="k", VersionId=second, ACL="public-read")
    assert http_get(url) == (200, b"v2")


def test_copies_and_multipart_uploads_carry_the_acl_they_ask_for(s3, kmsim):
    bucket = writer_bucket(s3)
    endpoint = kmsim["endpoint"]
    s3.put_object(Bucket=bucket, Key="source", Body=b"copied", ACL="public-read")
    # A copy's ACL is the request's, never the source's.
    s3.copy_object(Bucket=bucket, Key="private-copy", CopySource=f"{bucket}/source")
    assert http_get(object_url(endpoint, bucket, "private-copy"))[0] == 403
    s3.copy_object(Bucket=bucket, Key="public-copy", CopySource=f"{bucket}/source", ACL="public-read")
    assert http_get(object_url(endpoint, bucket, "public-copy")) == (200, b"copied")

    upload = s3.create_multipart_upload(Bucket=bucket, Key="big", ACL="public-read")["UploadId"]
    part = os.urandom(5 * 1024 * 1024)
    etag = s3.upload_part(Bucket=bucket, Key="big", UploadId=upload, PartNumber=1, Body=part)["ETag"]
    # Nothing public before the upload completes: there is no object yet.
    assert anonymous_error(http_get(object_url(endpoint, bucket, "big")))[:2] == (403, "AccessDenied")
    s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert http_get(object_url(endpoint, bucket, "big")) == (200, part)
    assert ("Group", ALL_USERS, "READ") in grants_of(s3.get_object_acl(Bucket=bucket, Key="big"))


def test_form_upload_acl_field(s3, kmsim):
    bucket = writer_bucket(s3)
    form = s3.generate_presigned_post(bucket, "posted.txt", Fields={"acl": "public-read"},
                                      Conditions=[{"acl": "public-read"}])
    response = requests.post(form["url"], data=form["fields"], files={"file": ("f", b"by form")}, timeout=30)
    assert response.status_code == 204, response.text
    assert http_get(object_url(kmsim["endpoint"], bucket, "posted.txt")) == (200, b"by form")
    enforced = bucket_name()
    s3.create_bucket(Bucket=enforced)
    form = s3.generate_presigned_post(enforced, "posted.txt", Fields={"acl": "public-read"},
                                      Conditions=[{"acl": "public-read"}])
    response = requests.post(form["url"], data=form["fields"], files={"file": ("f", b"x")}, timeout=30)
    assert response.status_code == 400 and b"AccessControlListNotSupported" in response.content, response.text


# ---- a second account ----------------------------------------------------------------------------


def test_second_account_reads_through_grants(start_kmsim, s3_for):
    server = start_kmsim(config=SECOND_ACCOUNT_CONFIG)
    mine = s3_for(server)
    theirs = s3_for(server, "AKIDACLOTHER", "other-secret")
    their_id = canonical_id(theirs)
    my_id = canonical_id(mine)
    assert their_id != my_id
    bucket = writer_bucket(mine)
    mine.put_object(Bucket=bucket, Key="for-signed", Body=b"any account", ACL="authenticated-read")
    mine.put_object(Bucket=bucket, Key="private", Body=b"mine")

    assert theirs.get_object(Bucket=bucket, Key="for-signed")["Body"].read() == b"any account"
    assert http_get(object_url(server.endpoint, bucket, "for-signed"))[0] == 403
    expect_error("AccessDenied", 403, theirs.get_object, Bucket=bucket, Key="private")
    expect_error("AccessDenied", 403, theirs.get_object_acl, Bucket=bucket, Key="for-signed")
    expect_error("AccessDenied", 403, theirs.list_objects_v2, Bucket=bucket)
    expect_error("AccessDenied", 403, theirs.put_object, Bucket=bucket, Key="x", Body=b"x")

    # A grant to the other account's canonical user.
    mine.put_object_acl(Bucket=bucket, Key="private", GrantRead=f'id="{their_id}"')
    assert theirs.get_object(Bucket=bucket, Key="private")["Body"].read() == b"mine"
    assert grants_of(mine.get_object_acl(Bucket=bucket, Key="private")) == {("CanonicalUser", their_id, "READ")}
    # The owner keeps its rights as the owner, grant or none.
    assert mine.get_object(Bucket=bucket, Key="private")["Body"].read() == b"mine"

    # WRITE on the bucket: the other account writes, and under ObjectWriter owns what it writes.
    mine.put_bucket_acl(Bucket=bucket, GrantWrite=f'id="{their_id}"', GrantFullControl=f'id="{my_id}"')
    theirs.put_object(Bucket=bucket, Key="theirs", Body=b"written by them")
    listed = {o["Key"]: o["Owner"]["ID"] for o in mine.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"]}
    assert listed["theirs"] == their_id and listed["private"] == my_id
    expect_error("AccessDenied", 403, mine.get_object, Bucket=bucket, Key="theirs")
    theirs.put_object(Bucket=bucket, Key="shared", Body=b"for the bucket owner", ACL="bucket-owner-full-control")
    assert mine.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"for the bucket owner"
    assert mine.get_object_acl(Bucket=bucket, Key="shared")["Owner"]["ID"] == their_id

    # BucketOwnerPreferred: bucket-owner-full-control hands the object to the bucket owner.
    mine.put_bucket_ownership_controls(Bucket=bucket,
                                       OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]})
    theirs.put_object(Bucket=bucket, Key="handed-over", Body=b"x", ACL="bucket-owner-full-control")
    assert mine.get_object_acl(Bucket=bucket, Key="handed-over")["Owner"]["ID"] == my_id
    theirs.put_object(Bucket=bucket, Key="kept", Body=b"x")
    expect_error("AccessDenied", 403, mine.get_object_acl, Bucket=bucket, Key="kept")

    # BucketOwnerEnforced: the bucket owner owns everything, and the other account's write must
    # give the bucket owner full control or carry no ACL.
    mine.put_bucket_acl(Bucket=bucket, ACL="private")
    mine.put_bucket_ownership_controls(Bucket=bucket,
                                       OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    assert mine.get_object(Bucket=bucket, Key="theirs")["Body"].read() == b"written by them"
    expect_error("AccessDenied", 403, theirs.get_object, Bucket=bucket, Key="for-signed")


# ---- the aws CLI ---------------------------------------------------------------------------------


def s3api(aws_s3_cli, *args: str) -> dict:
    done = aws_s3_cli("s3api", *args, "--output", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_aws_cli_acl_commands(aws_s3_cli, kmsim, tmp_path):
    bucket = bucket_name("cli")
    s3api(aws_s3_cli, "create-bucket", "--bucket", bucket)
    body = tmp_path / "body.txt"
    body.write_bytes(b"from the cli")
    refused = aws_s3_cli("s3api", "put-object", "--bucket", bucket, "--key", "k", "--body", str(body),
                         "--acl", "public-read")
    assert refused.returncode == CLI_SERVICE_ERROR
    assert "(AccessControlListNotSupported)" in refused.stderr and "The bucket does not allow ACLs" in refused.stderr

    s3api(aws_s3_cli, "put-bucket-ownership-controls", "--bucket", bucket,
          "--ownership-controls", "Rules=[{ObjectOwnership=ObjectWriter}]")
    assert s3api(aws_s3_cli, "get-bucket-ownership-controls", "--bucket", bucket)["OwnershipControls"] == {
        "Rules": [{"ObjectOwnership": "ObjectWriter"}]}
    blocked = aws_s3_cli("s3api", "put-object", "--bucket", bucket, "--key", "k", "--body", str(body),
                         "--acl", "public-read")
    assert blocked.returncode == CLI_SERVICE_ERROR and "(AccessDenied)" in blocked.stderr
    s3api(aws_s3_cli, "put-public-access-block", "--bucket", bucket, "--public-access-block-configuration",
          "BlockPublicAcls=false,IgnorePublicAcls=false,BlockPublicPolicy=true,RestrictPublicBuckets=true")
    assert s3api(aws_s3_cli, "get-public-access-block", "--bucket", bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    s3api(aws_s3_cli, "put-object", "--bucket", bucket, "--key", "k", "--body", str(body), "--acl", "public-read")
    assert http_get(object_url(kmsim["endpoint"], bucket, "k")) == (200, b"from the cli")
    acl = s3api(aws_s3_cli, "get-object-acl", "--bucket", bucket, "--key", "k")
    assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} in acl["Grants"]

    s3api(aws_s3_cli, "put-object-acl", "--bucket", bucket, "--key", "k", "--grant-read",
          f"uri={AUTHENTICATED_USERS}")
    assert http_get(object_url(kmsim["endpoint"], bucket, "k"))[0] == 403
    s3api(aws_s3_cli, "put-bucket-acl", "--bucket", bucket, "--acl", "public-read")
    bucket_acl = s3api(aws_s3_cli, "get-bucket-acl", "--bucket", bucket)
    assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} in bucket_acl["Grants"]
    assert re.fullmatch("[0-9a-f]{64}", bucket_acl["Owner"]["ID"])
    s3api(aws_s3_cli, "delete-public-access-block", "--bucket", bucket)
    missing = aws_s3_cli("s3api", "get-public-access-block", "--bucket", bucket)
    assert missing.returncode == CLI_SERVICE_ERROR and "(NoSuchPublicAccessBlockConfiguration)" in missing.stderr
    s3api(aws_s3_cli, "delete-bucket-ownership-controls", "--bucket", bucket)
    missing = aws_s3_cli("s3api", "get-bucket-ownership-controls", "--bucket", bucket)
    assert missing.returncode == CLI_SERVICE_ERROR and "(OwnershipControlsNotFoundError)" in missing.stderr


# ---- durability ----------------------------------------------------------------------------------


def test_ownership_acls_and_public_access_block_survive_a_restart(kmsim_data_dir, s3_for):
    server = kmsim_data_dir()
    s3 = s3_for(server.endpoint)
    bucket = writer_bucket(s3, "BucketOwnerPreferred")
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={**ALL_OFF, "BlockPublicPolicy": True})
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    s3.put_object(Bucket=bucket, Key="k", Body=b"kept", ACL="public-read")
    server.restart(crash=True)
    s3 = s3_for(server.endpoint)
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerPreferred"}]
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        **ALL_OFF, "BlockPublicPolicy": True}
    assert ("Group", ALL_USERS, "READ") in grants_of(s3.get_bucket_acl(Bucket=bucket))
    assert http_get(object_url(server.endpoint, bucket, "k")) == (200, b"kept")
