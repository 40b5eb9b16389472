"""Bucket versioning through boto3 (default configuration) and the aws CLI: Put/GetBucketVersioning,
versioned PUT / GET / HEAD / DELETE with ``versionId``, delete markers, the null version under
Suspended, ListObjectVersions with its markers and delimiter, copies from a version, tags per
version, DeleteObjects of versions, DeleteBucket of a bucket holding only versions, every version
under its own data key (disabling the key makes them all unreadable), and versions surviving a
restart on a data dir.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from conftest import make_s3_client


def error_of(call, **params) -> tuple[int, str, dict]:
    with pytest.raises(ClientError) as info:
        call(**params)
    response = info.value.response
    return (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"],
            response["ResponseMetadata"]["HTTPHeaders"])


def enable(s3, bucket: str, status: str = "Enabled") -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def versions_of(s3, bucket: str, **params) -> list[tuple[str, str, bool, str]]:
    """(key, version id, is latest, kind) in the order ListObjectVersions gives them."""
    listed = s3.list_object_versions(Bucket=bucket, **params)
    entries = [(v["Key"], v["VersionId"], v["IsLatest"], "version", v["LastModified"]) for v in listed.get("Versions", [])]
    entries += [(m["Key"], m["VersionId"], m["IsLatest"], "marker", m["LastModified"])
                for m in listed.get("DeleteMarkers", [])]
    # boto3 splits the two kinds; S3 (and kmsim) give them in one order: by key, newest first.
    order = {id_: i for i, id_ in enumerate(_document_order(s3, bucket, **params))}
    return [e[:4] for e in sorted(entries, key=lambda e: order[(e[0], e[1])])]


def _document_order(s3, bucket: str, **params) -> list[tuple[str, str]]:
    captured: list[bytes] = []

    def keep(http_response, **_):
        captured.append(http_response.content)

    s3.meta.events.register("after-call.s3.ListObjectVersions", keep)
    try:
        s3.list_object_versions(Bucket=bucket, **params)
    finally:
        s3.meta.events.unregister("after-call.s3.ListObjectVersions", keep)
    import xml.etree.ElementTree as ET
    root = ET.fromstring(captured[-1])
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    return [(e.find("s3:Key", ns).text, e.find("s3:VersionId", ns).text)
            for e in root if e.tag.endswith("}Version") or e.tag.endswith("}DeleteMarker")]


def test_versioning_states(s3, s3_bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=s3_bucket)
    enable(s3, s3_bucket)
    assert s3.get_bucket_versioning(Bucket=s3_bucket)["Status"] == "Enabled"
    enable(s3, s3_bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=s3_bucket)["Status"] == "Suspended"
    status, code, _ = error_of(s3.put_bucket_versioning, Bucket=s3_bucket,
                               VersioningConfiguration={"Status": "Sometimes"})
    assert (status, code) == (400, "MalformedXML")
    status, code, _ = error_of(s3.put_bucket_versioning, Bucket=s3_bucket,
                               VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"})
    assert (status, code) == (501, "NotImplemented")
    # A refused configuration changes nothing.
    assert s3.get_bucket_versioning(Bucket=s3_bucket)["Status"] == "Suspended"


def test_versions_and_delete_markers(s3, s3_bucket):
    enable(s3, s3_bucket)
    first = s3.put_object(Bucket=s3_bucket, Key="k", Body=b"one", ServerSideEncryption="aws:kms")
    second = s3.put_object(Bucket=s3_bucket, Key="k", Body=b"two")
    v1, v2 = first["VersionId"], second["VersionId"]
    assert v1 != v2 and len(v1) == 32
    assert s3.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"two"
    old = s3.get_object(Bucket=s3_bucket, Key="k", VersionId=v1)
    assert (old["Body"].read(), old["VersionId"], old["ServerSideEncryption"]) == (b"one", v1, "aws:kms")
    assert s3.head_object(Bucket=s3_bucket, Key="k", VersionId=v2)["ContentLength"] == 3
    assert s3.get_object(Bucket=s3_bucket, Key="k")["VersionId"] == v2
    assert versions_of(s3, s3_bucket) == [("k", v2, True, "version"), ("k", v1, False, "version")]

    deleted = s3.delete_object(Bucket=s3_bucket, Key="k")
    marker = deleted["VersionId"]
    assert deleted["DeleteMarker"] is True and marker not in (v1, v2)
    status, code, headers = error_of(s3.get_object, Bucket=s3_bucket, Key="k")
    assert (status, code, headers["x-amz-delete-marker"], headers["x-amz-version-id"]) == \
        (404, "NoSuchKey", "true", marker)
    status, code, headers = error_of(s3.get_object, Bucket=s3_bucket, Key="k", VersionId=marker)
    assert (status, code, headers["x-amz-delete-marker"]) == (405, "MethodNotAllowed", "true")
    assert s3.list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 0
    assert s3.get_object(Bucket=s3_bucket, Key="k", VersionId=v1)["Body"].read() == b"one"
    assert versions_of(s3, s3_bucket) == [
        ("k", marker, True, "marker"), ("k", v2, False, "version"), ("k", v1, False, "version")]

    # Deleting the marker brings the key back; deleting a version for good makes the next current.
    removed = s3.delete_object(Bucket=s3_bucket, Key="k", VersionId=marker)
    assert (removed["VersionId"], removed["DeleteMarker"]) == (marker, True)
    assert s3.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"two"
    removed = s3.delete_object(Bucket=s3_bucket, Key="k", VersionId=v2)
    assert removed["VersionId"] == v2 and "DeleteMarker" not in removed
    assert s3.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"one"
    assert versions_of(s3, s3_bucket) == [("k", v1, True, "version")]

    # A delete on a versioned bucket makes a marker even for a key that never existed.
    ghost = s3.delete_object(Bucket=s3_bucket, Key="never")
    assert ghost["DeleteMarker"] is True


def test_bad_version_ids(s3, s3_bucket):
    enable(s3, s3_bucket)
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"x")
    status, code, _ = error_of(s3.get_object, Bucket=s3_bucket, Key="k", VersionId="not-a-version")
    assert (status, code) == (400, "InvalidArgument")
    status, code, _ = error_of(s3.get_object, Bucket=s3_bucket, Key="k", VersionId="A" * 32)
    assert (status, code) == (404, "NoSuchVersion")
    status, code, _ = error_of(s3.head_object, Bucket=s3_bucket, Key="k", VersionId="A" * 32)
    assert status == 404
    # Deleting a version that does not exist deletes nothing and is no error.
    assert s3.delete_object(Bucket=s3_bucket, Key="k", VersionId="A" * 32)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"x"
    status, code, _ = error_of(s3.list_object_versions, Bucket=s3_bucket, VersionIdMarker="null")
    assert (status, code) == (400, "InvalidArgument")


def test_null_version_and_suspended(s3, s3_bucket):
    before = s3.put_object(Bucket=s3_bucket, Key="k", Body=b"before")
    assert "VersionId" not in before
    assert "VersionId" not in s3.get_object(Bucket=s3_bucket, Key="k")
    enable(s3, s3_bucket)
    assert s3.get_object(Bucket=s3_bucket, Key="k")["VersionId"] == "null"
    v1 = s3.put_object(Bucket=s3_bucket, Key="k", Body=b"enabled")["VersionId"]
    assert s3.get_object(Bucket=s3_bucket, Key="k", VersionId="null")["Body"].read() == b"before"
    assert versions_of(s3, s3_bucket) == [("k", v1, True, "version"), ("k", "null", False, "version")]

    enable(s3, s3_bucket, "Suspended")
    suspended = s3.put_object(Bucket=s3_bucket, Key="k", Body=b"suspended")
    assert "VersionId" not in suspended  # S3 names no version for a write while suspended
    got = s3.get_object(Bucket=s3_bucket, Key="k")
    assert (got["Body"].read(), got["VersionId"]) == (b"suspended", "null")
    # The old null version was replaced; the enabled one stays.
    assert versions_of(s3, s3_bucket) == [("k", "null", True, "version"), ("k", v1, False, "version")]
    deleted = s3.delete_object(Bucket=s3_bucket, Key="k")
    assert (deleted["DeleteMarker"], deleted["VersionId"]) == (True, "null")
    assert versions_of(s3, s3_bucket) == [("k", "null", True, "marker"), ("k", v1, False, "version")]
    assert s3.get_object(Bucket=s3_bucket, Key="k", VersionId=v1)["Body"].read() == b"enabled"


def test_every_version_has_its_own_data_key(s3, s3_bucket, kms, admin):
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    enable(s3, s3_bucket)
    ids = [s3.put_object(Bucket=s3_bucket, Key="k", Body=f"v{i}".encode(), ServerSideEncryption="aws:kms",
                         SSEKMSKeyId=key)["VersionId"] for i in range(3)]
    for i, version in enumerate(ids):
        assert s3.get_object(Bucket=s3_bucket, Key="k", VersionId=version)["Body"].read() == f"v{i}".encode()
    # One GenerateDataKey per version (each has a data key of its own), one Decrypt per read.
    assert len(admin.audit(operation="GenerateDataKey", key=key)) == 3
    assert len(admin.audit(operation="Decrypt", key=key)) == 3
    kms.disable_key(KeyId=key)
    for version in ids:
        status, code, _ = error_of(s3.get_object, Bucket=s3_bucket, Key="k", VersionId=version)
        assert (status, code) == (400, "KMS.DisabledException")
    kms.enable_key(KeyId=key)
    assert s3.get_object(Bucket=s3_bucket, Key="k", VersionId=ids[0])["Body"].read() == b"v0"


def test_list_object_versions_paging(s3, s3_bucket):
    enable(s3, s3_bucket)
    written: dict[str, list[str]] = {}
    for key in ["a", "dir/x", "dir/y", "z"]:
        for i in range(2):
            written.setdefault(key, []).insert(0, s3.put_object(Bucket=s3_bucket, Key=key, Body=b"%d" % i)["VersionId"])
    everything = [(k, v) for k in ["a", "dir/x", "dir/y", "z"] for v in written[k]]
    assert [e[:2] for e in versions_of(s3, s3_bucket)] == everything
    # Page by page with the paginator (key and version-id markers).
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=s3_bucket, PaginationConfig={"PageSize": 3})
    paged = []
    for page in pages:
        assert len(page.get("Versions", [])) <= 3
        paged += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
    assert paged == everything
    first = s3.list_object_versions(Bucket=s3_bucket, MaxKeys=3)
    assert (first["IsTruncated"], first["NextKeyMarker"], first["NextVersionIdMarker"]) == \
        (True, "dir/x", written["dir/x"][0])
    # A delimiter rolls keys up; the prefix counts as one entry.
    rolled = s3.list_object_versions(Bucket=s3_bucket, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["dir/"]
    assert [v["Key"] for v in rolled["Versions"]] == ["a", "a", "z", "z"]
    rolled = s3.list_object_versions(Bucket=s3_bucket, Delimiter="/", MaxKeys=3)
    assert (rolled["IsTruncated"], rolled["NextKeyMarker"], [p["Prefix"] for p in rolled["CommonPrefixes"]]) == \
        (True, "dir/", ["dir/"])
    rest = s3.list_object_versions(Bucket=s3_bucket, Delimiter="/", KeyMarker="dir/")
    assert [v["Key"] for v in rest["Versions"]] == ["z", "z"] and rest["IsTruncated"] is False
    prefixed = s3.list_object_versions(Bucket=s3_bucket, Prefix="dir/", KeyMarker="dir/x",
                                       VersionIdMarker=written["dir/x"][0])
    assert [(v["Key"], v["VersionId"]) for v in prefixed["Versions"]] == \
        [("dir/x", written["dir/x"][1])] + [("dir/y", v) for v in written["dir/y"]]


def test_unversioned_bucket_lists_null_versions(s3, s3_bucket):
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"x")
    listed = s3.list_object_versions(Bucket=s3_bucket)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [("k", "null", True)]
    assert s3.get_object(Bucket=s3_bucket, Key="k", VersionId="null")["Body"].read() == b"x"


def test_copies_from_a_version(s3, s3_bucket):
    enable(s3, s3_bucket)
    v1 = s3.put_object(Bucket=s3_bucket, Key="src", Body=b"first" * 2000, ServerSideEncryption="aws:kms")["VersionId"]
    s3.put_object(Bucket=s3_bucket, Key="src", Body=b"second")
    copied = s3.copy_object(Bucket=s3_bucket, Key="dst", CopySource={"Bucket": s3_bucket, "Key": "src", "VersionId": v1})
    assert copied["CopySourceVersionId"] == v1 and copied["VersionId"]
    assert s3.get_object(Bucket=s3_bucket, Key="dst")["Body"].read() == b"first" * 2000
    # Restoring an old version onto its own key makes it the newest.
    restored = s3.copy_object(Bucket=s3_bucket, Key="src", CopySource={"Bucket": s3_bucket, "Key": "src", "VersionId": v1})
    assert s3.get_object(Bucket=s3_bucket, Key="src")["VersionId"] == restored["VersionId"]
    assert s3.get_object(Bucket=s3_bucket, Key="src")["Body"].read() == b"first" * 2000

    upload = s3.create_multipart_upload(Bucket=s3_bucket, Key="mp")["UploadId"]
    part = s3.upload_part_copy(Bucket=s3_bucket, Key="mp", UploadId=upload, PartNumber=1,
                               CopySource={"Bucket": s3_bucket, "Key": "src", "VersionId": v1},
                               CopySourceRange="bytes=0-4")
    assert part["CopySourceVersionId"] == v1
    done = s3.complete_multipart_upload(Bucket=s3_bucket, Key="mp", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
    assert done["VersionId"] == s3.head_object(Bucket=s3_bucket, Key="mp")["VersionId"]
    assert s3.get_object(Bucket=s3_bucket, Key="mp")["Body"].read() == b"first"
    status, code, _ = error_of(s3.copy_object, Bucket=s3_bucket, Key="x",
                               CopySource={"Bucket": s3_bucket, "Key": "src", "VersionId": "A" * 32})
    assert (status, code) == (404, "NoSuchVersion")


def test_tags_per_version(s3, s3_bucket):
    enable(s3, s3_bucket)
    v1 = s3.put_object(Bucket=s3_bucket, Key="k", Body=b"1", Tagging="v=1")["VersionId"]
    v2 = s3.put_object(Bucket=s3_bucket, Key="k", Body=b"2", Tagging="v=2")["VersionId"]
    put = s3.put_object_tagging(Bucket=s3_bucket, Key="k", VersionId=v1, Tagging={"TagSet": [{"Key": "v", "Value": "one"}]})
    assert put["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=s3_bucket, Key="k", VersionId=v1)["TagSet"] == [{"Key": "v", "Value": "one"}]
    current = s3.get_object_tagging(Bucket=s3_bucket, Key="k")
    assert (current["TagSet"], current["VersionId"]) == ([{"Key": "v", "Value": "2"}], v2)
    s3.delete_object_tagging(Bucket=s3_bucket, Key="k", VersionId=v2)
    assert s3.get_object_tagging(Bucket=s3_bucket, Key="k", VersionId=v2)["TagSet"] == []
    assert s3.get_object(Bucket=s3_bucket, Key="k", VersionId=v1)["TagCount"] == 1


def test_delete_objects_with_versions(s3, s3_bucket):
    enable(s3, s3_bucket)
    v1 = s3.put_object(Bucket=s3_bucket, Key="a", Body=b"1")["VersionId"]
    s3.put_object(Bucket=s3_bucket, Key="b", Body=b"2")
    result = s3.delete_objects(Bucket=s3_bucket, Delete={"Objects": [
        {"Key": "a", "VersionId": v1}, {"Key": "b"}, {"Key": "c", "VersionId": "bogus"}]})
    deleted = {d["Key"]: d for d in result["Deleted"]}
    assert deleted["a"]["VersionId"] == v1 and "DeleteMarker" not in deleted["a"]
    assert deleted["b"]["DeleteMarker"] is True and deleted["b"]["DeleteMarkerVersionId"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("c", "NoSuchVersion")]
    assert versions_of(s3, s3_bucket)[0][:2] == ("b", deleted["b"]["DeleteMarkerVersionId"])


def test_delete_bucket_needs_no_versions(s3, s3_bucket):
    enable(s3, s3_bucket)
    version = s3.put_object(Bucket=s3_bucket, Key="k", Body=b"x")["VersionId"]
    marker = s3.delete_object(Bucket=s3_bucket, Key="k")["VersionId"]
    assert s3.list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 0
    status, code, _ = error_of(s3.delete_bucket, Bucket=s3_bucket)
    assert (status, code) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket=s3_bucket, Key="k", VersionId=version)
    status, code, _ = error_of(s3.delete_bucket, Bucket=s3_bucket)
    assert (status, code) == (409, "BucketNotEmpty")  # the marker is still there
    s3.delete_object(Bucket=s3_bucket, Key="k", VersionId=marker)
    s3.delete_bucket(Bucket=s3_bucket)


def test_aws_cli_versioning(aws_s3_cli, s3, s3_bucket):
    done = aws_s3_cli("s3api", "put-bucket-versioning", "--bucket", s3_bucket,
                      "--versioning-configuration", "Status=Enabled")
    assert done.returncode == 0, done.stderr
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"1")
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"2")
    listed = aws_s3_cli("s3api", "list-object-versions", "--bucket", s3_bucket, "--output", "json")
    assert listed.returncode == 0, listed.stderr
    versions = json.loads(listed.stdout)["Versions"]
    assert [v["IsLatest"] for v in versions] == [True, False]
    got = aws_s3_cli("s3api", "get-bucket-versioning", "--bucket", s3_bucket, "--output", "json")
    assert json.loads(got.stdout)["Status"] == "Enabled"


def test_versions_survive_a_restart(kmsim_data_dir):
    server = kmsim_data_dir()
    s3 = make_s3_client(server.endpoint)
    s3.create_bucket(Bucket="kept")
    s3.put_object(Bucket="kept", Key="k", Body=b"null version", ServerSideEncryption="aws:kms")
    enable(s3, "kept")
    v1 = s3.put_object(Bucket="kept", Key="k", Body=b"v1", ServerSideEncryption="aws:kms")["VersionId"]
    marker = s3.delete_object(Bucket="kept", Key="k")["VersionId"]
    v2 = s3.put_object(Bucket="kept", Key="k", Body=b"v2")["VersionId"]
    s3.put_object_tagging(Bucket="kept", Key="k", VersionId=v1, Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})
    before = versions_of(s3, "kept")
    assert before == [("k", v2, True, "version"), ("k", marker, False, "marker"), ("k", v1, False, "version"),
                      ("k", "null", False, "version")]
    assert server.restart() == 0
    s3 = make_s3_client(server.endpoint)
    assert versions_of(s3, "kept") == before
    assert s3.get_bucket_versioning(Bucket="kept")["Status"] == "Enabled"
    assert s3.get_object(Bucket="kept", Key="k")["Body"].read() == b"v2"
    assert s3.get_object(Bucket="kept", Key="k", VersionId="null")["Body"].read() == b"null version"
    assert s3.get_object_tagging(Bucket="kept", Key="k", VersionId=v1)["TagSet"] == [{"Key": "t", "Value": "1"}]
    # Writes after the restart are newer than everything before it.
    v3 = s3.put_object(Bucket="kept", Key="k", Body=b"v3")["VersionId"]
    assert versions_of(s3, "kept")[0] == ("k", v3, True, "version")
    # A null delete marker (made while suspended) survives a restart too, above the others.
    enable(s3, "kept", "Suspended")
    assert s3.delete_object(Bucket="kept", Key="k")["VersionId"] == "null"
    before = versions_of(s3, "kept")
    assert server.restart() == 0
    s3 = make_s3_client(server.endpoint)
    assert versions_of(s3, "kept") == before and before[0] == ("k", "null", True, "marker")
    assert s3.get_bucket_versioning(Bucket="kept")["Status"] == "Suspended"


def test_emptying_a_bucket_page_by_page(s3, s3_bucket):
    """The usual way to empty a versioned bucket: list a page, delete what it lists, ask for the
    next page. The markers are positions, so versions are not skipped when the version a marker
    names is gone."""
    enable(s3, s3_bucket)
    for key in ["a", "b"]:
        for i in range(4):
            s3.put_object(Bucket=s3_bucket, Key=key, Body=b"%d" % i)
    s3.delete_object(Bucket=s3_bucket, Key="b")
    params: dict = {"Bucket": s3_bucket, "MaxKeys": 3}
    seen = 0
    while True:
        page = s3.list_object_versions(**params)
        entries = page.get("Versions", []) + page.get("DeleteMarkers", [])
        seen += len(entries)
        if entries:
            s3.delete_objects(Bucket=s3_bucket, Delete={"Objects": [
                {"Key": e["Key"], "VersionId": e["VersionId"]} for e in entries]})
        if not page["IsTruncated"]:
            break
        params.update(KeyMarker=page["NextKeyMarker"], VersionIdMarker=page["NextVersionIdMarker"])
    assert seen == 9
    assert versions_of(s3, s3_bucket) == []
    s3.delete_bucket(Bucket=s3_bucket)


def test_copy_source_that_is_a_delete_marker(s3, s3_bucket):
    enable(s3, s3_bucket)
    s3.put_object(Bucket=s3_bucket, Key="src", Body=b"x")
    marker = s3.delete_object(Bucket=s3_bucket, Key="src")["VersionId"]
    status, code, headers = error_of(s3.copy_object, Bucket=s3_bucket, Key="dst",
                                     CopySource={"Bucket": s3_bucket, "Key": "src", "VersionId": marker})
    assert (status, code) == (400, "InvalidRequest") and "x-amz-version-id" not in headers
    status, code, headers = error_of(s3.copy_object, Bucket=s3_bucket, Key="dst",
                                     CopySource={"Bucket": s3_bucket, "Key": "src"})
    assert (status, code) == (404, "NoSuchKey") and "x-amz-delete-marker" not in headers


def test_settings_changed_together_keep_versioning(s3, s3_bucket):
    """Bucket settings changed at once (encryption, tags, CORS, versioning) never undo each other:
    versioning, once on, stays configured."""
    from concurrent.futures import ThreadPoolExecutor

    def settings(i: int) -> None:
        if i % 4 == 0:
            enable(s3, s3_bucket)
        elif i % 4 == 1:
            s3.put_bucket_encryption(Bucket=s3_bucket, ServerSideEncryptionConfiguration={"Rules": [{
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
        elif i % 4 == 2:
            s3.put_bucket_tagging(Bucket=s3_bucket, Tagging={"TagSet": [{"Key": "i", "Value": str(i)}]})
        else:
            s3.put_bucket_cors(Bucket=s3_bucket, CORSConfiguration={"CORSRules": [
                {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(settings, range(64)))
    assert s3.get_bucket_versioning(Bucket=s3_bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=s3_bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert s3.get_bucket_tagging(Bucket=s3_bucket)["TagSet"][0]["Key"] == "i"
    assert s3.get_bucket_cors(Bucket=s3_bucket)["CORSRules"][0]["AllowedMethods"] == ["GET"]
    v1 = s3.put_object(Bucket=s3_bucket, Key="k", Body=b"1")["VersionId"]
    s3.put_object(Bucket=s3_bucket, Key="k", Body=b"2")
    assert s3.get_object(Bucket=s3_bucket, Key="k", VersionId=v1)["Body"].read() == b"1"


def test_repeated_completion_names_its_own_version(s3, s3_bucket):
    """A repeated CompleteMultipartUpload answers the version it made, and only while that version
    is current: a later upload of the same bytes has the same ETag but is another version."""
    enable(s3, s3_bucket)

    def upload() -> tuple[str, dict, dict]:
        upload_id = s3.create_multipart_upload(Bucket=s3_bucket, Key="mp")["UploadId"]
        part = s3.upload_part(Bucket=s3_bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"same bytes")
        parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
        return upload_id, parts, s3.complete_multipart_upload(Bucket=s3_bucket, Key="mp", UploadId=upload_id,
                                                              MultipartUpload=parts)

    upload_id, parts, first = upload()
    again = s3.complete_multipart_upload(Bucket=s3_bucket, Key="mp", UploadId=upload_id, MultipartUpload=parts)
    assert (again["VersionId"], again["ETag"]) == (first["VersionId"], first["ETag"])
    _, _, second = upload()
    assert second["ETag"] == first["ETag"] and second["VersionId"] != first["VersionId"]
    status, code, _ = error_of(s3.complete_multipart_upload, Bucket=s3_bucket, Key="mp", UploadId=upload_id,
                               MultipartUpload=parts)
    assert (status, code) == (404, "NoSuchUpload")
