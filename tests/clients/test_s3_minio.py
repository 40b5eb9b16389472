"""kmsim's S3 through MinIO's Python client (``minio``) with its defaults: SSE-KMS writes and reads,
its SigV4 presigned GET and PUT URLs (and an expired one), and ``presigned_post_policy`` form
uploads with the policy's conditions enforced.
"""

from __future__ import annotations

import datetime as dt
import io
import urllib.parse
import uuid

import pytest
import requests
from minio import Minio
from minio.datatypes import PostPolicy
from minio.sse import SseKMS


@pytest.fixture
def client(kmsim) -> Minio:
    endpoint = urllib.parse.urlsplit(kmsim["endpoint"])
    return Minio(f"{endpoint.hostname}:{endpoint.port}", access_key="test", secret_key="test", secure=False,
                 region=kmsim["region"])


@pytest.fixture
def bucket(client: Minio) -> str:
    name = f"minio-{uuid.uuid4().hex[:12]}"
    client.make_bucket(name)
    return name


def test_sse_kms_objects(client, kms, bucket):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    data = b"written by minio" * 1000
    client.put_object(bucket, "doc", io.BytesIO(data), len(data), sse=SseKMS(key_id, {"purpose": "minio"}))
    stat = client.stat_object(bucket, "doc")
    assert stat.metadata["x-amz-server-side-encryption"] == "aws:kms"
    assert stat.metadata["x-amz-server-side-encryption-aws-kms-key-id"].endswith(key_id)
    response = client.get_object(bucket, "doc")
    try:
        assert response.read() == data
    finally:
        response.close()
        response.release_conn()


def test_presigned_urls(client, bucket):
    put_url = client.presigned_put_object(bucket, "up", expires=dt.timedelta(minutes=5))
    assert "X-Amz-Signature=" in put_url
    assert requests.put(put_url, data=b"via a minio URL", timeout=30).status_code == 200
    get_url = client.presigned_get_object(bucket, "up", expires=dt.timedelta(minutes=5))
    got = requests.get(get_url, timeout=30)
    assert (got.status_code, got.content, got.headers["x-amz-server-side-encryption"]) == (200, b"via a minio URL",
                                                                                            "AES256")
    expired = client.presigned_get_object(bucket, "up", expires=dt.timedelta(hours=1),
                                          request_date=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2))
    refused = requests.get(expired, timeout=30)
    assert refused.status_code == 403 and b"<Message>Request has expired</Message>" in refused.content


def test_presigned_post_policy(kmsim, client, bucket):
    policy = PostPolicy(bucket, dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10))
    policy.add_starts_with_condition("key", "uploads/")
    policy.add_content_length_range_condition(1, 1024)
    fields = client.presigned_post_policy(policy)
    url = f"{kmsim['endpoint']}/{bucket}"
    accepted = requests.post(url, data={**fields, "key": "uploads/a.txt"}, files={"file": ("a.txt", b"posted")},
                             timeout=30)
    assert accepted.status_code == 204, accepted.text
    assert client.get_object(bucket, "uploads/a.txt").read() == b"posted"
    outside = requests.post(url, data={**fields, "key": "elsewhere/a.txt"}, files={"file": ("a.txt", b"x")},
                            timeout=30)
    assert outside.status_code == 403 and b"Policy Condition failed" in outside.content
    too_large = requests.post(url, data={**fields, "key": "uploads/big"}, files={"file": ("b", b"x" * 1025)},
                              timeout=30)
    assert too_large.status_code == 400 and b"<Code>EntityTooLarge</Code>" in too_large.content
    names = [o.object_name for o in client.list_objects(bucket, recursive=True)]
    assert names == ["uploads/a.txt"]
