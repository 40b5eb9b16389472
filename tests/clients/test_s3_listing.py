"""Listings as S3 pages them, through boto3: the last page of a delimited listing says it is the
last (even when it ends in a common prefix), ``FetchOwner`` of ListObjectsV2, and ListBuckets with
``MaxBuckets``, ``Prefix``, ``BucketRegion`` and continuation tokens.
"""

from __future__ import annotations


import pytest
from botocore.exceptions import ClientError

from conftest import make_s3_client


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    return s3_bucket


def test_a_page_ending_in_a_common_prefix_can_be_the_last(s3, bucket):
    for key in ["a", "b/1", "b/2", "b/3"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    page = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert [o["Key"] for o in page["Contents"]] == ["a"]
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["b/"]
    assert page["IsTruncated"] is False and "NextContinuationToken" not in page
    assert page["KeyCount"] == 2
    v1 = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert v1["IsTruncated"] is False and "NextMarker" not in v1
    # One entry short of the page: a prefix after it still makes the page truncated.
    s3.put_object(Bucket=bucket, Key="c/1", Body=b"x")
    page = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert page["IsTruncated"] is True
    rest = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=2,
                              ContinuationToken=page["NextContinuationToken"])
    assert [p["Prefix"] for p in rest["CommonPrefixes"]] == ["c/"] and rest["IsTruncated"] is False
    # Paging through everything with every page size gives each entry once.
    for size in range(1, 5):
        entries, token = [], None
        while True:
            params = {"ContinuationToken": token} if token else {}
            page = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=size, **params)
            entries += [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            if not page["IsTruncated"]:
                break
            token = page["NextContinuationToken"]
        assert sorted(entries) == ["a", "b/", "c/"], size


def test_fetch_owner(s3, bucket, kmsim):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert "Owner" not in s3.list_objects_v2(Bucket=bucket)["Contents"][0]
    owner = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"][0]["Owner"]
    # The account's canonical user id (64 hex digits), as ListBuckets and the ACLs name it, and its
    # account id as the display name.
    assert owner == {"ID": s3.list_buckets()["Owner"]["ID"], "DisplayName": kmsim["account_id"]}
    assert len(owner["ID"]) == 64 and all(c in "0123456789abcdef" for c in owner["ID"])
    assert s3.list_objects(Bucket=bucket)["Contents"][0]["Owner"] == owner


def test_list_buckets_pages_and_filters(start_kmsim):
    server = start_kmsim()
    s3 = make_s3_client(server.endpoint)
    names = [f"page-{i:02d}" for i in range(5)]
    for name in names:
        s3.create_bucket(Bucket=name)
    s3.create_bucket(Bucket="other")
    dublin = make_s3_client(server.endpoint, region="eu-west-1")
    dublin.create_bucket(Bucket="page-ie", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    seen, token = [], None
    while True:
        params = {"ContinuationToken": token} if token else {}
        page = s3.list_buckets(MaxBuckets=2, Prefix="page-", **params)
        assert len(page["Buckets"]) <= 2 and page["Prefix"] == "page-"
        seen += [b["Name"] for b in page["Buckets"]]
        token = page.get("ContinuationToken")
        if not token:
            break
    assert seen == names + ["page-ie"]
    regional = s3.list_buckets(BucketRegion="eu-west-1")["Buckets"]
    assert [(b["Name"], b["BucketRegion"]) for b in regional] == [("page-ie", "eu-west-1")]
    assert len(s3.list_buckets()["Buckets"]) == 7
    with pytest.raises(ClientError) as error:
        s3.list_buckets(MaxBuckets=10_001)
    assert error.value.response["Error"]["Code"] == "InvalidArgument"
