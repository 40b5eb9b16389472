"""The independent oracle for kmsim's SSE-KMS objects at rest: the AWS Encryption SDK for Python.

kmsim stores an SSE-KMS object as an AWS Encryption SDK message (format version 2, algorithm suite
0x0478 AES_256_GCM_HKDF_SHA512_COMMIT_KEY, 64 KiB frames) whose one encrypted data key is a KMS
ciphertext blob under the customer's key, bound to the context S3 uses. So a stored body, read
straight from ``--data-dir``, must decrypt with the SDK's own KMS master key provider talking to
kmsim's KMS endpoint (``AWS_ENDPOINT_URL_KMS``), and the plaintext must appear in no file.

Tampering with a stored body (a flipped byte, a truncation, frames swapped or dropped) must come
back to the client as an error — HTTP 500 before any byte, or a body cut off after the frames that
did verify — never as wrong bytes; and the server goes on serving other objects. SSE-S3 and SSE-C
objects leave no plaintext at rest either, and an SSE-C key is never stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk import CommitmentPolicy
from aws_encryption_sdk.identifiers import AlgorithmSuite, SerializationVersion
from botocore.exceptions import ClientError, ConnectionClosedError, IncompleteReadError, ResponseStreamingError

from conftest import DEFAULT_ACCOUNT, RawS3, make_kms_client, make_s3_client

FRAME = 65536
# A regular frame on disk: sequence number (4), IV (12), one frame of ciphertext, tag (16).
STORED_FRAME = 4 + 12 + FRAME + 16
MiB = 1024 * 1024


# ---- helpers -------------------------------------------------------------------------------------


def new_marker() -> bytes:
    return b"KMSIM-PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()


def marked_payload(marker: bytes, size: int) -> bytes:
    """``size`` bytes of random data with ``marker`` repeated through it (also across frame
    boundaries)."""
    chunks, total = [], 0
    while total < size:
        piece = marker + os.urandom(997)
        chunks.append(piece)
        total += len(piece)
    return b"".join(chunks)[:size]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in files_under(root) if needle in p.read_bytes()]


def object_record(data_dir: Path, bucket: str, key: str) -> dict[str, Any]:
    """The object's record: ``objects/meta/<bucket>/<sha256hex(key)>.json``."""
    path = data_dir / "objects" / "meta" / bucket / f"{hashlib.sha256(key.encode()).hexdigest()}.json"
    assert path.is_file(), f"no record at {path}: {files_under(data_dir / 'objects')}"
    record = json.loads(path.read_text())
    assert record["key"] == key
    return record


def body_path(data_dir: Path, record: dict[str, Any]) -> Path:
    path = data_dir / "objects" / record["blob"]
    assert path.is_file(), f"no body at {path}"
    return path


def data_files(data_dir: Path, bucket: str) -> set[Path]:
    folder = data_dir / "objects" / "data" / bucket
    return set(files_under(folder)) if folder.exists() else set()


@pytest.fixture
def esdk_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Points botocore (and so the Encryption SDK's KMS clients) at a kmsim endpoint, with
    kmsim's default credentials and none of the developer's AWS configuration."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)

    def point_at(endpoint: str) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    return point_at


def esdk_decrypt(message: bytes, key_arn: str):
    """Decrypts a stored body with the AWS Encryption SDK: (plaintext, header)."""
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[key_arn],
                                                                botocore_session=botocore.session.Session())
    return client.decrypt(source=message, key_provider=provider)


class Setup:
    """A server on a data dir, its clients, a bucket and a customer key."""

    def __init__(self, server, esdk_env) -> None:
        self.server = server
        self.data_dir: Path = server.data_dir
        esdk_env(server.endpoint)
        self.s3 = make_s3_client(server.endpoint)
        self.kms = make_kms_client(server.endpoint)
        self.raw = RawS3(server.endpoint)
        self.bucket = f"esdk-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.key = self.kms.create_key(Description="the SDK oracle's key")["KeyMetadata"]

    def put_kms(self, key: str, data: bytes, **params: Any) -> dict:
        return self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ServerSideEncryption="aws:kms",
                                  SSEKMSKeyId=self.key["Arn"], **params)

    def read(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()


@pytest.fixture
def setup(kmsim_data_dir, esdk_env) -> Setup:
    return Setup(kmsim_data_dir(), esdk_env)


# ---- the plaintext is nowhere at rest, and the SDK decrypts what is ------------------------------


@pytest.mark.parametrize("size", [0, 1, FRAME, FRAME + 1, 5 * FRAME + 4321])
def test_stored_object_decrypts_with_the_encryption_sdk(setup: Setup, size: int):
    marker = new_marker()
    data = marked_payload(marker, size)
    context = {"purpose": "esdk-oracle", "case": str(size)}
    encoded_context = base64.b64encode(json.dumps(context).encode()).decode()
    key = f"dir/object-{size}.bin"
    # The scan sees plaintext where there is some: a file of plaintext put into the data dir.
    control_marker = new_marker()
    control = setup.data_dir / "scan-control.bin"
    control.write_bytes(marked_payload(control_marker, 5000))
    assert files_containing(setup.data_dir, control_marker), "the scan cannot see plaintext at rest"
    control.unlink()
    # An object PUT without SSE headers is not stored in plaintext either: S3's default encryption
    # (SSE-S3). (Written first: a PUT right after an empty PUT on one connection stalls boto3, see
    # test_s3_boto3.py::test_put_after_empty_put_on_one_connection.)
    put = setup.s3.put_object(Bucket=setup.bucket, Key="control", Body=marked_payload(control_marker, 5000))
    assert put["ServerSideEncryption"] == "AES256"
    assert files_containing(setup.data_dir, control_marker) == []
    setup.put_kms(key, data, SSEKMSEncryptionContext=encoded_context)

    if size >= len(marker):
        assert files_containing(setup.data_dir, marker) == []
    if size >= 2000:
        assert files_containing(setup.data_dir, data[1000:1064]) == []

    record = object_record(setup.data_dir, setup.bucket, key)
    assert record["size"] == size
    assert record["sse"]["mode"] == "Kms"
    assert record["sse"]["key_arn"] == setup.key["Arn"]
    s3_arn = f"arn:aws:s3:::{setup.bucket}/{key}"
    assert record["sse"]["context"] == {**context, "aws:s3:arn": s3_arn}
    stored = body_path(setup.data_dir, record).read_bytes()
    assert len(stored) == record["stored_size"]
    # Message format version 2, algorithm suite 0x0478.
    assert stored[:3] == b"\x02\x04\x78"

    plaintext, header = esdk_decrypt(stored, setup.key["Arn"])
    assert plaintext == data
    assert header.encryption_context == {**context, "aws:s3:arn": s3_arn}
    assert header.algorithm == AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    assert header.version == SerializationVersion.V2
    assert header.frame_length == FRAME
    [edk] = list(header.encrypted_data_keys)
    assert edk.key_provider.provider_id == "aws-kms"
    assert edk.key_provider.key_info == setup.key["Arn"].encode()

    # The SDK's own Decrypt reached kmsim's KMS directly (not via S3), bound to the same context.
    direct = setup.server.process.admin.audit(via_service="none", operation="Decrypt", key=setup.key["Arn"])
    assert [(e["outcome"], e["encryption_context"], e["account"]) for e in direct] == [
        ("Success", {**context, "aws:s3:arn": s3_arn}, DEFAULT_ACCOUNT)]

    # And the server reads it back the same, also after a restart.
    assert setup.read(key) == data
    setup.server.restart()
    s3 = make_s3_client(setup.server.endpoint)
    assert s3.get_object(Bucket=setup.bucket, Key=key)["Body"].read() == data


def test_a_message_made_by_the_encryption_sdk_is_served_as_an_object(setup: Setup):
    """The reverse oracle: a body written by the AWS Encryption SDK itself (through kmsim's KMS,
    bound to the object's S3 context, 64 KiB frames) is read back by the object store, whole and
    by ranges."""
    key = "from-the-sdk.bin"
    data = os.urandom(3 * FRAME + 777)
    s3_arn = f"arn:aws:s3:::{setup.bucket}/{key}"
    setup.put_kms(key, b"to be replaced by the SDK's message")
    record = object_record(setup.data_dir, setup.bucket, key)
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[setup.key["Arn"]],
                                                                botocore_session=botocore.session.Session())
    message, header = client.encrypt(source=data, key_provider=provider, encryption_context={"aws:s3:arn": s3_arn},
                                     algorithm=AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
                                     frame_length=FRAME)
    assert header.encryption_context == {"aws:s3:arn": s3_arn}
    # Framed body: full frames of 4 + 12 + FRAME + 16 bytes, then a final frame.
    full, last = divmod(len(data), FRAME)
    header_len = len(message) - full * (4 + 12 + FRAME + 16) - (4 + 4 + 12 + 4 + last + 16)
    body_path(setup.data_dir, record).write_bytes(message)
    record.update(size=len(data), stored_size=len(message), envelope_header_len=header_len, checksum=None)
    record["sse"]["context"] = {"aws:s3:arn": s3_arn}
    meta = setup.data_dir / "objects" / "meta" / setup.bucket / f"{hashlib.sha256(key.encode()).hexdigest()}.json"
    meta.write_text(json.dumps(record))
    setup.server.restart()
    s3 = make_s3_client(setup.server.endpoint)
    assert s3.get_object(Bucket=setup.bucket, Key=key)["Body"].read() == data
    ranged = s3.get_object(Bucket=setup.bucket, Key=key, Range="bytes=131000-200000")["Body"].read()
    assert ranged == data[131000:200001]


def test_multipart_object_is_one_message_and_leaves_no_parts(setup: Setup):
    marker = new_marker()
    part1, part2 = marked_payload(marker, 5 * MiB + 1), marked_payload(marker, FRAME + 999)
    created = setup.s3.create_multipart_upload(Bucket=setup.bucket, Key="mpu", ServerSideEncryption="aws:kms",
                                               SSEKMSKeyId=setup.key["KeyId"])
    upload_id = created["UploadId"]
    etags = [setup.s3.upload_part(Bucket=setup.bucket, Key="mpu", UploadId=upload_id, PartNumber=n, Body=b)["ETag"]
             for n, b in [(1, part1), (2, part2)]]
    # The parts at rest are encrypted too.
    assert files_containing(setup.data_dir, marker) == []
    setup.s3.complete_multipart_upload(Bucket=setup.bucket, Key="mpu", UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 2, "ETag": etags[1]}]})
    assert files_containing(setup.data_dir, marker) == []

    record = object_record(setup.data_dir, setup.bucket, "mpu")
    stored = body_path(setup.data_dir, record)
    plaintext, header = esdk_decrypt(stored.read_bytes(), setup.key["Arn"])
    assert plaintext == part1 + part2
    assert header.encryption_context == {"aws:s3:arn": f"arn:aws:s3:::{setup.bucket}/mpu"}
    # Completion leaves the object's body only: no part bodies behind.
    assert data_files(setup.data_dir, setup.bucket) == {stored}


def test_failed_writes_leave_no_body_behind(setup: Setup):
    setup.put_kms("kept", b"kept")
    before = data_files(setup.data_dir, setup.bucket)
    assert len(before) == 1
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as info:
        setup.put_kms("bad-md5", os.urandom(3 * FRAME), ContentMD5=wrong_md5)
    assert info.value.response["Error"]["Code"] == "BadDigest"
    setup.kms.disable_key(KeyId=setup.key["KeyId"])
    with pytest.raises(ClientError) as info:
        setup.put_kms("disabled", os.urandom(100))
    assert info.value.response["Error"]["Code"] == "KMS.DisabledException"
    setup.kms.enable_key(KeyId=setup.key["KeyId"])
    assert data_files(setup.data_dir, setup.bucket) == before
    assert [o["Key"] for o in setup.s3.list_objects_v2(Bucket=setup.bucket)["Contents"]] == ["kept"]


def test_sse_s3_and_sse_c_leave_no_plaintext_and_no_customer_key_at_rest(setup: Setup):
    marker = new_marker()
    data = marked_payload(marker, 3 * FRAME + 17)
    customer_key = os.urandom(32)
    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": customer_key}
    setup.s3.put_object(Bucket=setup.bucket, Key="sse-s3", Body=data, ServerSideEncryption="AES256")
    setup.s3.put_object(Bucket=setup.bucket, Key="sse-c", Body=data, **sse_c)
    assert files_containing(setup.data_dir, marker) == []
    assert files_containing(setup.data_dir, customer_key) == []
    assert files_containing(setup.data_dir, base64.b64encode(customer_key)) == []

    setup.server.restart()
    s3 = make_s3_client(setup.server.endpoint)
    assert s3.get_object(Bucket=setup.bucket, Key="sse-s3")["Body"].read() == data
    assert s3.get_object(Bucket=setup.bucket, Key="sse-c", **sse_c)["Body"].read() == data
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=setup.bucket, Key="sse-c", SSECustomerAlgorithm="AES256",
                      SSECustomerKey=os.urandom(32))
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# ---- tampered bodies -----------------------------------------------------------------------------


TAMPERED_SIZE = 5 * FRAME + 1000  # five regular frames and a final frame of 1000 bytes


def tamper(body: bytearray, header_len: int, kind: str) -> tuple[bytes, int]:
    """Returns the tampered body and the plaintext offset of the first frame it damages."""
    frame = lambda n: header_len + (n - 1) * STORED_FRAME  # noqa: E731 - offset of regular frame n
    if kind == "flip-last-frame":
        body[-20] ^= 0x01
        return bytes(body), 5 * FRAME
    if kind == "flip-first-frame":
        body[frame(1) + 100] ^= 0x80
        return bytes(body), 0
    if kind == "flip-header":
        body[10] ^= 0x01  # in the message id
        return bytes(body), 0
    if kind == "flip-tag-of-frame-3":
        body[frame(4) - 1] ^= 0x01
        return bytes(body), 2 * FRAME
    if kind == "truncate-last-byte":
        return bytes(body[:-1]), 5 * FRAME
    if kind == "truncate-at-frame-boundary":
        return bytes(body[:frame(3)]), 2 * FRAME
    if kind == "truncate-mid-frame":
        return bytes(body[:frame(2) + 1]), FRAME
    if kind == "swap-frames-2-3":
        two, three = body[frame(2):frame(3)], body[frame(3):frame(4)]
        return bytes(body[:frame(2)] + three + two + body[frame(4):]), FRAME
    if kind == "drop-frame-4":
        return bytes(body[:frame(4)] + body[frame(5):]), 3 * FRAME
    raise AssertionError(kind)


def assert_never_wrong_bytes(response, data: bytes, first_damaged: int, what: str) -> None:
    """An error status (500) before any byte, a body cut off within the frames that verified,
    or (when the very first frame fails) a connection closed before any response; never a
    complete answer, never a byte that differs."""
    if response.status == 0:
        assert not response.complete and response.body == b"", what
    elif response.status == 200 or response.status == 206:
        assert not response.complete, f"{what}: the whole body was served ({len(response.body)} bytes)"
        assert data.startswith(response.body), f"{what}: wrong bytes were served"
        assert len(response.body) <= first_damaged, f"{what}: bytes of a damaged frame were served"
    else:
        assert response.status == 500, (what, response.status, response.body[:300])
        assert b"<Code>InternalError</Code>" in response.body, (what, response.body[:300])


@pytest.mark.parametrize("kind", [
    "flip-last-frame", "flip-first-frame", "flip-header", "flip-tag-of-frame-3", "truncate-last-byte",
    "truncate-at-frame-boundary", "truncate-mid-frame", "swap-frames-2-3", "drop-frame-4",
])
def test_tampered_body_is_an_error_never_wrong_bytes(setup: Setup, kind: str):
    data = marked_payload(new_marker(), TAMPERED_SIZE)
    other = os.urandom(2 * FRAME + 5)
    setup.put_kms("victim", data)
    setup.put_kms("bystander", other)
    record = object_record(setup.data_dir, setup.bucket, "victim")
    path = body_path(setup.data_dir, record)
    original = path.read_bytes()
    tampered, first_damaged = tamper(bytearray(original), record["envelope_header_len"], kind)
    assert tampered != original
    # The oracle agrees that the tampered message is not a valid one.
    with pytest.raises(Exception):
        esdk_decrypt(tampered, setup.key["Arn"])
    path.write_bytes(tampered)

    response = setup.raw.send("GET", f"/{setup.bucket}/victim")
    assert_never_wrong_bytes(response, data, first_damaged, f"{kind}: GET")

    # A range inside a damaged frame is an error as well.
    start = min(first_damaged + 10, TAMPERED_SIZE - 1)
    response = setup.raw.send("GET", f"/{setup.bucket}/victim", headers={"Range": f"bytes={start}-{start + 99}"})
    assert_never_wrong_bytes(response, data[start:start + 100], 0, f"{kind}: GET of a range")

    # Through boto3: an error, or a failing body read.
    try:
        body = setup.read("victim")
    except ClientError as error:
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 500, error.response
    except (IncompleteReadError, ResponseStreamingError, ConnectionClosedError):
        pass
    else:
        raise AssertionError(f"{kind}: boto3 read {len(body)} bytes, equal to the original: {body == data}")

    # The server goes on serving.
    assert setup.read("bystander") == other
    setup.put_kms("after", b"after the tampering")
    assert setup.read("after") == b"after the tampering"
    # Put back, the original reads again (nothing was cached or poisoned).
    path.write_bytes(original)
    assert setup.read("victim") == data
