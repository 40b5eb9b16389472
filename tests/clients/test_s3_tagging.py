"""Object and bucket tags through boto3: Put/Get/DeleteObjectTagging, ``x-amz-tagging`` on PutObject,
CreateMultipartUpload and CopyObject (with ``x-amz-tagging-directive``), the ``tagging`` field of a
form upload, ``x-amz-tagging-count`` on reads, Put/Get/DeleteBucketTagging, S3's limits and errors,
and tags surviving a restart on a data dir.
"""

from __future__ import annotations

import requests
import pytest
from botocore.exceptions import ClientError

from conftest import make_s3_client


def tag_set(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def error_of(call, **params) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    return s3_bucket


def test_object_tags_round_trip(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"tagged", ServerSideEncryption="aws:kms",
                  Tagging="project=kmsim&owner=two%20words")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert (got["TagCount"], got["Body"].read()) == (2, b"tagged")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == tag_set({"project": "kmsim", "owner": "two words"})
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tag_set({"only": "one"})})
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == tag_set({"only": "one"})
    assert s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "1"
    # Tagging rewrites the record only: body and encryption stay.
    got = s3.get_object(Bucket=bucket, Key="k")
    assert (got["Body"].read(), got["ServerSideEncryption"]) == (b"tagged", "aws:kms")
    assert s3.delete_object_tagging(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")
    status, code, _ = error_of(s3.get_object_tagging, Bucket=bucket, Key="missing")
    assert (status, code) == (404, "NoSuchKey")


def test_object_tag_limits(s3, raw_s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="keep=me")
    eleven = {f"k{i}": "v" for i in range(11)}
    assert error_of(s3.put_object_tagging, Bucket=bucket, Key="k", Tagging={"TagSet": tag_set(eleven)}) == \
        (400, "BadRequest", "Object tags cannot be greater than 10")
    status, code, _ = error_of(s3.put_object_tagging, Bucket=bucket, Key="k",
                               Tagging={"TagSet": tag_set({"k" * 129: "v"})})
    assert (status, code) == (400, "InvalidTag")
    status, code, message = error_of(s3.put_object_tagging, Bucket=bucket, Key="k",
                                     Tagging={"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]})
    assert (status, code, message) == (400, "InvalidTag", "Cannot provide multiple Tags with the same key")
    status, code, _ = error_of(s3.put_object_tagging, Bucket=bucket, Key="k",
                               Tagging={"TagSet": tag_set({"k": "v" * 257})})
    assert (status, code) == (400, "InvalidTag")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == tag_set({"keep": "me"})
    status, code, _ = error_of(s3.put_object, Bucket=bucket, Key="dup", Body=b"x", Tagging="a=1&a=2")
    assert (status, code) == (400, "InvalidArgument")
    status, code, _ = error_of(s3.put_object, Bucket=bucket, Key="many", Body=b"x",
                               Tagging="&".join(f"k{i}=v" for i in range(11)))
    assert (status, code) == (400, "BadRequest")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


def test_tags_of_copies_uploads_and_forms(kmsim, s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="from=source")
    source = {"Bucket": bucket, "Key": "src"}
    s3.copy_object(Bucket=bucket, Key="copied", CopySource=source)
    assert s3.get_object_tagging(Bucket=bucket, Key="copied")["TagSet"] == tag_set({"from": "source"})
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource=source, TaggingDirective="REPLACE", Tagging="new=tags")
    assert s3.get_object_tagging(Bucket=bucket, Key="replaced")["TagSet"] == tag_set({"new": "tags"})
    s3.copy_object(Bucket=bucket, Key="cleared", CopySource=source, TaggingDirective="REPLACE")
    assert s3.get_object_tagging(Bucket=bucket, Key="cleared")["TagSet"] == []

    upload = s3.create_multipart_upload(Bucket=bucket, Key="multi", Tagging="via=multipart")
    part = s3.upload_part(Bucket=bucket, Key="multi", UploadId=upload["UploadId"], PartNumber=1, Body=b"p")
    s3.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="multi")["TagSet"] == tag_set({"via": "multipart"})

    tagging = "<Tagging><TagSet><Tag><Key>via</Key><Value>form</Value></Tag></TagSet></Tagging>"
    form = make_s3_client(kmsim["endpoint"]).generate_presigned_post(
        bucket, "formed", Fields={"tagging": tagging}, Conditions=[{"tagging": tagging}])
    response = requests.post(form["url"], data=form["fields"], files={"file": ("f", b"form body")}, timeout=30)
    assert response.status_code == 204, response.text
    assert s3.get_object_tagging(Bucket=bucket, Key="formed")["TagSet"] == tag_set({"via": "form"})


def test_bucket_tags(s3, bucket):
    status, code, _ = error_of(s3.get_bucket_tagging, Bucket=bucket)
    assert (status, code) == (404, "NoSuchTagSet")
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_set({"team": "storage", "cost": "0"})})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tag_set({"team": "storage", "cost": "0"})
    status, code, _ = error_of(s3.put_bucket_tagging, Bucket=bucket,
                               Tagging={"TagSet": tag_set({f"k{i}": "v" for i in range(51)})})
    assert (status, code) == (400, "InvalidTag")
    assert s3.delete_bucket_tagging(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error_of(s3.get_bucket_tagging, Bucket=bucket)[:2] == (404, "NoSuchTagSet")


def test_tags_survive_a_restart(kmsim_data_dir):
    server = kmsim_data_dir()
    s3 = make_s3_client(server.endpoint)
    s3.create_bucket(Bucket="kept")
    s3.put_bucket_tagging(Bucket="kept", Tagging={"TagSet": tag_set({"b": "1"})})
    s3.put_object(Bucket="kept", Key="k", Body=b"x", Tagging="o=1")
    s3.put_object_tagging(Bucket="kept", Key="k", Tagging={"TagSet": tag_set({"o": "2"})})
    assert server.restart() == 0
    s3 = make_s3_client(server.endpoint)
    assert s3.get_bucket_tagging(Bucket="kept")["TagSet"] == tag_set({"b": "1"})
    assert s3.get_object_tagging(Bucket="kept", Key="k")["TagSet"] == tag_set({"o": "2"})
    assert s3.get_object(Bucket="kept", Key="k")["Body"].read() == b"x"
