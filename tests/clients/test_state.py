"""State fixtures: ``kmsim state export`` / ``import`` and ``/_sim/state`` (docs/testing.md, "State fixtures").

A server on a data dir is given keys of every kind (symmetric with an alias, a grant and a key policy; RSA, ECC,
HMAC; imported material, and a key with import parameters outstanding; a multi-Region key and its replica), IAM
users, access keys, policies and a role, buckets with a policy, versioning and default encryption, objects (SSE-KMS,
SSE-S3, versions, a completed multipart upload, one in progress), an encrypted volume with data and a snapshot of
it. Its state is exported with the CLI, imported into a new data dir, and a server started there must give every
one of them back through real clients: boto3 (Decrypt of blobs made before, Verify, VerifyMac, GetObject, the IAM
user's credentials), Huawei's EVS/ECS SDKs and qemu-io over NBD. ``/_sim/state`` moves state between running
in-memory servers with plain HTTP (``requests``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from botocore.exceptions import ClientError
from huaweicloudsdkevs.v2 import (
    CreateSnapshotOption,
    CreateSnapshotRequest,
    CreateSnapshotRequestBody,
    ListSnapshotsRequest,
    ShowSnapshotRequest,
)

from conftest import KMSIM_BIN, KmsimProcess, make_kms_client, make_s3_client, unique
from test_evs_huawei import Env, assert_io_ok, qemu_io
from test_iam_sts import clients as iam_clients
from test_kms_import_multi_region import wrap

PASSPHRASE = "correct horse battery staple"
PASSPHRASE_HEADER = "X-Kmsim-State-Passphrase"
OTHER_REGION = "eu-west-1"


def state_cli(verb: str, archive: Path, data_dir: Path, *, passphrase: str | None = PASSPHRASE,
              passphrase_file: Path | None = None) -> subprocess.CompletedProcess:
    """``kmsim state <verb> ARCHIVE --data-dir DATA_DIR``, the passphrase in ``KMSIM_STATE_PASSPHRASE`` or a file."""
    env = {k: v for k, v in os.environ.items() if k != "KMSIM_STATE_PASSPHRASE"}
    argv = [str(KMSIM_BIN), "state", verb, str(archive), "--data-dir", str(data_dir)]
    if passphrase_file is not None:
        argv += ["--passphrase-file", str(passphrase_file)]
    elif passphrase is not None:
        env["KMSIM_STATE_PASSPHRASE"] = passphrase
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)


def report(done: subprocess.CompletedProcess, verb: str) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[verb]


def key_policy(account: str, marker: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Id": marker, "Statement": [{
        "Sid": "Enable IAM policies", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "kms:*", "Resource": "*"}]})


@dataclass
class Fixture:
    """What the first server made, to be found again after the import."""

    archive: Path
    account: str
    sym: str = ""
    sym_blob: bytes = b""
    grant_id: str = ""
    policy: str = ""
    rsa: str = ""
    rsa_ciphertext: bytes = b""
    ecc: str = ""
    ecc_public_key: bytes = b""
    signature: bytes = b""
    hmac: str = ""
    mac: bytes = b""
    imported: str = ""
    imported_blob: bytes = b""
    pending: str = ""
    pending_token: bytes = b""
    pending_public_key: bytes = b""
    mrk: str = ""
    mrk_blob: bytes = b""
    user_key: dict = field(default_factory=dict)
    role: str = ""
    bucket: str = ""
    bucket_policy: str = ""
    versions: list = field(default_factory=list)
    upload_id: str = ""
    volume: str = ""
    snapshot: str = ""
    export_report: dict = field(default_factory=dict)
    refusals: dict = field(default_factory=dict)


def make_state(server: KmsimProcess, data_dir: Path, fixture: Fixture) -> None:
    kms = server.client()
    account = fixture.account
    # Symmetric key: alias, grant, key policy, a blob.
    fixture.policy = key_policy(account, unique("policy"))
    fixture.sym = kms.create_key(Policy=fixture.policy)["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/fixture", TargetKeyId=fixture.sym)
    fixture.grant_id = kms.create_grant(KeyId=fixture.sym, GranteePrincipal=f"arn:aws:iam::{account}:role/app",
                                        Operations=["Decrypt"])["GrantId"]
    fixture.sym_blob = kms.encrypt(KeyId="alias/fixture", Plaintext=b"symmetric",
                                   EncryptionContext={"fixture": "yes"})["CiphertextBlob"]
    # Asymmetric and HMAC keys.
    fixture.rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    fixture.rsa_ciphertext = kms.encrypt(KeyId=fixture.rsa, Plaintext=b"rsa",
                                         EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    fixture.ecc = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    fixture.ecc_public_key = kms.get_public_key(KeyId=fixture.ecc)["PublicKey"]
    fixture.signature = kms.sign(KeyId=fixture.ecc, Message=b"signed", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    fixture.hmac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    fixture.mac = kms.generate_mac(KeyId=fixture.hmac, Message=b"mac", MacAlgorithm="HMAC_SHA_256")["Mac"]
    # Imported material, and a key whose import parameters are outstanding.
    fixture.imported = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms.get_parameters_for_import(KeyId=fixture.imported, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    kms.import_key_material(KeyId=fixture.imported, ImportToken=params["ImportToken"],
                            EncryptedKeyMaterial=wrap(os.urandom(32), params["PublicKey"], "RSAES_OAEP_SHA_256"),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    fixture.imported_blob = kms.encrypt(KeyId=fixture.imported, Plaintext=b"imported")["CiphertextBlob"]
    fixture.pending = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms.get_parameters_for_import(KeyId=fixture.pending, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    fixture.pending_token, fixture.pending_public_key = params["ImportToken"], params["PublicKey"]
    # A multi-Region key and a replica.
    fixture.mrk = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    kms.replicate_key(KeyId=fixture.mrk, ReplicaRegion=OTHER_REGION)
    fixture.mrk_blob = kms.encrypt(KeyId=fixture.mrk, Plaintext=b"multi-region")["CiphertextBlob"]

    # IAM: a user whose access key may use KMS and S3 through an attached managed policy; a role.
    root = iam_clients(server.endpoint, "test", "test")
    iam = root["iam"]
    document = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kms:*", "s3:*"], "Resource": "*"}]})
    policy_arn = iam.create_policy(PolicyName=unique("fixture"), PolicyDocument=document)["Policy"]["Arn"]
    user = iam.create_user(UserName=unique("fixture-user"))["User"]["UserName"]
    iam.attach_user_policy(UserName=user, PolicyArn=policy_arn)
    fixture.user_key = iam.create_access_key(UserName=user)["AccessKey"]
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}]})
    fixture.role = iam.create_role(RoleName=unique("fixture-role"), AssumeRolePolicyDocument=trust)["Role"]["RoleName"]

    # S3: a bucket with a policy, versioning and default encryption; objects of each kind.
    s3 = make_s3_client(server.endpoint)
    fixture.bucket = unique("fixture")
    s3.create_bucket(Bucket=fixture.bucket)
    fixture.bucket_policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "deny-http-delete", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket",
        "Resource": f"arn:aws:s3:::{fixture.bucket}"}]})
    s3.put_bucket_policy(Bucket=fixture.bucket, Policy=fixture.bucket_policy)
    s3.put_bucket_versioning(Bucket=fixture.bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(Bucket=fixture.bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": fixture.sym}}]})
    for body in (b"first version", b"second version"):
        fixture.versions.append(s3.put_object(Bucket=fixture.bucket, Key="versioned", Body=body)["VersionId"])
    s3.put_object(Bucket=fixture.bucket, Key="sse-s3", Body=b"sse-s3 body" * 100, ServerSideEncryption="AES256")
    s3.put_object(Bucket=fixture.bucket, Key="sse-kms", Body=b"sse-kms body" * 100, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=fixture.mrk)
    upload = s3.create_multipart_upload(Bucket=fixture.bucket, Key="multipart")["UploadId"]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=fixture.bucket, Key="multipart", UploadId=upload,
                                                      PartNumber=n, Body=body)["ETag"]}
             for n, body in ((1, b"a" * (5 << 20)), (2, b"tail"))]
    s3.complete_multipart_upload(Bucket=fixture.bucket, Key="multipart", UploadId=upload,
                                 MultipartUpload={"Parts": parts})
    fixture.upload_id = s3.create_multipart_upload(Bucket=fixture.bucket, Key="in-progress")["UploadId"]
    s3.upload_part(Bucket=fixture.bucket, Key="in-progress", UploadId=fixture.upload_id, PartNumber=1, Body=b"part")

    # EVS: an encrypted volume with data, detached, and a snapshot of it.
    env = Env(server, data_dir)
    fixture.volume = env.new_volume(cmk=fixture.sym)
    env.attach(fixture.volume)
    assert_io_ok(qemu_io(env.url(fixture.volume), "write -P 0x5a 0 1M", "write -P 0x6b 7M 64k"))
    # Refused while the volume is attached: NBD writes do not wait for the export.
    response = requests.get(f"{server.endpoint}/_sim/state", timeout=60, headers={
        "Authorization": f"Bearer {server.info['admin_token']}", PASSPHRASE_HEADER: PASSPHRASE})
    fixture.refusals["attached"] = (response.status_code, response.json()["error"])
    env.detach(fixture.volume)
    created = env.evs.create_snapshot(CreateSnapshotRequest(body=CreateSnapshotRequestBody(
        snapshot=CreateSnapshotOption(volume_id=fixture.volume, name=unique("snap"), force=False))))
    fixture.snapshot = created.snapshot.id
    env.wait_status(lambda: env.evs.show_snapshot(ShowSnapshotRequest(snapshot_id=fixture.snapshot)).snapshot,
                    "available")


@pytest.fixture(scope="module")
def fixture_state(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    """The first server's state, exported with the CLI after it stopped."""
    workdir = tmp_path_factory.mktemp("kmsim-state")
    data_dir = workdir / "source"
    server = KmsimProcess(["--data-dir", str(data_dir)], workdir / "source-server")
    fixture = Fixture(archive=workdir / "fixture.kmsim", account=server.info["account_id"])
    try:
        make_state(server, data_dir, fixture)
        # A data dir a running kmsim holds is refused, with a pointer to /_sim/state.
        fixture.refusals["running"] = state_cli("export", fixture.archive, data_dir)
    finally:
        assert server.stop() == 0, server.stderr()
    passphrase_file = workdir / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    passphrase_file.chmod(0o600)
    fixture.export_report = report(state_cli("export", fixture.archive, data_dir, passphrase_file=passphrase_file),
                                   "exported")
    return fixture


@pytest.fixture(scope="module")
def imported(fixture_state: Fixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KmsimProcess, Path]]:
    """A server on a new data dir the archive was imported into."""
    workdir = tmp_path_factory.mktemp("kmsim-imported")
    data_dir = workdir / "data"
    fixture_state.refusals["import"] = report(state_cli("import", fixture_state.archive, data_dir), "imported")
    server = KmsimProcess(["--data-dir", str(data_dir)], workdir / "server")
    yield server, data_dir
    assert server.stop() == 0, server.stderr()


# ---- the CLI round trip --------------------------------------------------------------------------


def test_export_refuses_a_served_data_dir_and_an_attached_volume(fixture_state: Fixture) -> None:
    running = fixture_state.refusals["running"]
    assert running.returncode != 0 and not fixture_state.archive.with_name(".fixture.kmsim.partial").exists()
    assert "in use by a running kmsim" in running.stderr and "/_sim/state" in running.stderr, running.stderr
    status, message = fixture_state.refusals["attached"]
    assert status == 409 and fixture_state.volume in message and "detach" in message, message


def test_the_archive_counts_what_it_holds(fixture_state: Fixture) -> None:
    counts = fixture_state.export_report["state"]
    # sym, rsa, ecc, hmac, imported, pending, the multi-Region primary and replica; the EVS service's default key.
    assert counts["keys"] >= 8 and counts["aliases"] >= 1, counts
    assert (counts["users"], counts["roles"], counts["policies"], counts["access_keys"]) == (1, 1, 1, 1), counts
    assert (counts["buckets"], counts["objects"], counts["uploads"]) == (1, 5, 1), counts
    assert fixture_state.archive.stat().st_mode & 0o777 == 0o600
    assert fixture_state.export_report["bytes"] == fixture_state.archive.stat().st_size
    # The archive holds no secret in the clear: not the user's secret access key.
    assert fixture_state.user_key["SecretAccessKey"].encode() not in fixture_state.archive.read_bytes()


def test_keys_come_back_with_their_material(fixture_state: Fixture, imported) -> None:
    server, _ = imported
    f = fixture_state
    kms = server.client()
    assert kms.decrypt(CiphertextBlob=f.sym_blob, EncryptionContext={"fixture": "yes"})["Plaintext"] == b"symmetric"
    again = kms.encrypt(KeyId="alias/fixture", Plaintext=b"again")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=again)["KeyId"].endswith(f.sym)
    assert kms.get_key_policy(KeyId=f.sym, PolicyName="default")["Policy"] == f.policy
    assert f.grant_id in [g["GrantId"] for g in kms.list_grants(KeyId=f.sym)["Grants"]]
    assert kms.decrypt(CiphertextBlob=f.rsa_ciphertext, KeyId=f.rsa,
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"rsa"
    assert kms.get_public_key(KeyId=f.ecc)["PublicKey"] == f.ecc_public_key
    assert kms.verify(KeyId=f.ecc, Message=b"signed", Signature=f.signature,
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    assert kms.verify_mac(KeyId=f.hmac, Message=b"mac", Mac=f.mac, MacAlgorithm="HMAC_SHA_256")["MacValid"]
    assert kms.decrypt(CiphertextBlob=f.imported_blob)["Plaintext"] == b"imported"
    # The outstanding import parameters came back too: the token issued before the export still imports.
    kms.import_key_material(KeyId=f.pending, ImportToken=f.pending_token,
                            EncryptedKeyMaterial=wrap(os.urandom(32), f.pending_public_key, "RSAES_OAEP_SHA_256"),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert kms.describe_key(KeyId=f.pending)["KeyMetadata"]["KeyState"] == "Enabled"
    replica = make_kms_client(server.endpoint, region=OTHER_REGION)
    assert replica.decrypt(CiphertextBlob=f.mrk_blob)["Plaintext"] == b"multi-region"
    assert replica.describe_key(KeyId=f.mrk)["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"] \
        == "REPLICA"


def test_identities_come_back_and_their_keys_sign(fixture_state: Fixture, imported) -> None:
    server, _ = imported
    f = fixture_state
    user = iam_clients(server.endpoint, f.user_key["AccessKeyId"], f.user_key["SecretAccessKey"])
    assert user["sts"].get_caller_identity()["Arn"].endswith(f":user/{f.user_key['UserName']}")
    assert user["kms"].decrypt(CiphertextBlob=f.sym_blob, EncryptionContext={"fixture": "yes"})["Plaintext"] \
        == b"symmetric"
    assert user["s3"].get_object(Bucket=f.bucket, Key="sse-s3")["Body"].read() == b"sse-s3 body" * 100
    root = iam_clients(server.endpoint, "test", "test")
    assert root["iam"].get_role(RoleName=f.role)["Role"]["RoleName"] == f.role
    assert len(root["iam"].list_attached_user_policies(UserName=f.user_key["UserName"])["AttachedPolicies"]) == 1


def test_buckets_and_objects_come_back(fixture_state: Fixture, imported) -> None:
    server, _ = imported
    f = fixture_state
    s3 = make_s3_client(server.endpoint)
    assert s3.get_bucket_policy(Bucket=f.bucket)["Policy"] == f.bucket_policy
    assert s3.get_bucket_versioning(Bucket=f.bucket)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=f.bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"].endswith(f.sym)
    assert s3.get_object(Bucket=f.bucket, Key="versioned")["Body"].read() == b"second version"
    old = s3.get_object(Bucket=f.bucket, Key="versioned", VersionId=f.versions[0])
    assert old["Body"].read() == b"first version" and old["ServerSideEncryption"] == "aws:kms"
    listed = s3.list_object_versions(Bucket=f.bucket, Prefix="versioned")["Versions"]
    assert sorted(v["VersionId"] for v in listed) == sorted(f.versions)
    got = s3.get_object(Bucket=f.bucket, Key="sse-kms")
    assert got["Body"].read() == b"sse-kms body" * 100 and got["SSEKMSKeyId"].endswith(f.mrk)
    assert s3.get_object(Bucket=f.bucket, Key="sse-s3")["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=f.bucket, Key="multipart")["Body"].read() == b"a" * (5 << 20) + b"tail"
    # The upload in progress can be completed.
    uploads = s3.list_multipart_uploads(Bucket=f.bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [f.upload_id]
    parts = s3.list_parts(Bucket=f.bucket, Key="in-progress", UploadId=f.upload_id)["Parts"]
    s3.complete_multipart_upload(Bucket=f.bucket, Key="in-progress", UploadId=f.upload_id, MultipartUpload={
        "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]})
    assert s3.get_object(Bucket=f.bucket, Key="in-progress")["Body"].read() == b"part"


def test_volumes_and_snapshots_come_back_readable_over_nbd(fixture_state: Fixture, imported) -> None:
    server, data_dir = imported
    f = fixture_state
    env = Env(server, data_dir)
    volume = env.show(f.volume)
    assert volume.status == "available" and volume.encrypted is True
    image = data_dir / "volumes" / f"{f.volume}.img"
    assert image.stat().st_blocks * 512 < 64 << 20, "the volume file stayed sparse"
    snapshots = env.evs.list_snapshots(ListSnapshotsRequest(volume_id=f.volume)).snapshots
    assert [(s.id, s.status) for s in snapshots] == [(f.snapshot, "available")]
    env.attach(f.volume)
    try:
        assert_io_ok(qemu_io(env.url(f.volume), "read -P 0x5a 0 1M", "read -P 0x6b 7M 64k"))
    finally:
        env.detach(f.volume)
    copy = env.new_volume(snapshot_id=f.snapshot)
    env.attach(copy)
    try:
        assert_io_ok(qemu_io(env.url(copy), "read -P 0x5a 0 1M", "read -P 0x6b 7M 64k"))
    finally:
        env.detach(copy)


# ---- refusals ------------------------------------------------------------------------------------


def test_import_refuses_a_wrong_passphrase_a_newer_format_damage_and_a_used_data_dir(
        fixture_state: Fixture, tmp_path: Path) -> None:
    archive = fixture_state.archive
    wrong = state_cli("import", archive, tmp_path / "wrong", passphrase="not the passphrase")
    assert wrong.returncode != 0 and "wrong passphrase" in wrong.stderr, wrong.stderr
    assert not (tmp_path / "wrong").exists(), "a failed import leaves no data dir behind"

    newer = tmp_path / "newer.kmsim"
    data = bytearray(archive.read_bytes())
    data[8:10] = (2).to_bytes(2, "big")
    newer.write_bytes(bytes(data))
    done = state_cli("import", newer, tmp_path / "newer")
    assert done.returncode != 0 and "format 2" in done.stderr and "format 1" in done.stderr, done.stderr

    # Cut inside the records (after the header), and one flipped bit near the end: refused, the data dir emptied.
    original = archive.read_bytes()
    flipped = bytearray(original)
    flipped[-100] ^= 1
    for name, damaged in (("cut", original[:len(original) // 2]), ("flipped", bytes(flipped))):
        path = tmp_path / f"{name}.kmsim"
        path.write_bytes(damaged)
        target = tmp_path / name
        target.mkdir(mode=0o700)
        done = state_cli("import", path, target)
        assert done.returncode != 0, done.stdout
        assert "truncated" in done.stderr or "corrupt" in done.stderr, done.stderr
        assert list(target.iterdir()) == [], "a failed import empties the data dir it was given"

    used = tmp_path / "used"
    used.mkdir(mode=0o700)
    (used / "something").write_text("x")
    done = state_cli("import", archive, used)
    assert done.returncode != 0 and "not empty" in done.stderr, done.stderr

    missing = state_cli("import", archive, tmp_path / "nopass", passphrase=None)
    assert missing.returncode != 0 and "KMSIM_STATE_PASSPHRASE" in missing.stderr, missing.stderr


# ---- /_sim/state ---------------------------------------------------------------------------------


def sim_state(server: KmsimProcess, method: str, body: bytes | None = None, *, passphrase: str | None = PASSPHRASE,
              content_type: str = "application/octet-stream", token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token or server.info['admin_token']}"}
    if passphrase is not None:
        headers[PASSPHRASE_HEADER] = passphrase
    if body is not None:
        headers["Content-Type"] = content_type
    return requests.request(method, f"{server.endpoint}/_sim/state", data=body, headers=headers, timeout=120)


def test_sim_state_moves_state_between_running_servers(start_kmsim) -> None:
    source = start_kmsim("--in-memory")
    kms = source.client()
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"in memory")["CiphertextBlob"]
    s3 = make_s3_client(source.endpoint)
    bucket = unique("moved")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"kms body", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    s3.put_object(Bucket=bucket, Key="s", Body=b"s3 body", ServerSideEncryption="AES256")
    exported = sim_state(source, "GET")
    assert exported.status_code == 200, exported.text
    assert exported.headers["Content-Type"] == "application/octet-stream"
    archive = exported.content
    assert archive.startswith(b"KMSIMSTA")

    target = start_kmsim("--in-memory")
    answered = sim_state(target, "PUT", archive)
    assert answered.status_code == 200, answered.text
    assert answered.json()["imported"]["keys"] == 1 and answered.json()["imported"]["objects"] == 2
    assert target.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"in memory"
    moved = make_s3_client(target.endpoint)
    assert moved.get_object(Bucket=bucket, Key="k")["Body"].read() == b"kms body"
    assert moved.get_object(Bucket=bucket, Key="s")["Body"].read() == b"s3 body"
    # New writes on the target use its own keys and work as before.
    moved.put_object(Bucket=bucket, Key="new", Body=b"new", ServerSideEncryption="AES256")
    assert moved.get_object(Bucket=bucket, Key="new")["Body"].read() == b"new"

    # Now it holds state: a second import is refused with 409 and changes nothing.
    again = sim_state(target, "POST", archive)
    assert again.status_code == 409 and "empty" in again.json()["error"], again.text
    assert target.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"in memory"


def test_a_server_starts_from_an_archive(start_kmsim, tmp_path: Path) -> None:
    """`kmsim --state FILE`: the archive is imported before the start line, into memory or a new data dir; a data
    dir that holds state, and a wrong passphrase, stop the start with the reason."""
    source = start_kmsim("--in-memory")
    key = source.client().create_key()["KeyMetadata"]["KeyId"]
    blob = source.client().encrypt(KeyId=key, Plaintext=b"fixture")["CiphertextBlob"]
    bucket = unique("fixture")
    s3 = make_s3_client(source.endpoint)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"body", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)
    archive, secret = tmp_path / "fixture.kmsim", tmp_path / "passphrase"
    archive.write_bytes(sim_state(source, "GET").content)
    secret.write_text(PASSPHRASE + "\n")
    state = ("--state", str(archive), "--state-passphrase-file", str(secret))

    # A start that fails after opening the data dir (its port is taken) imports nothing: the next start can.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = subprocess.run([str(KMSIM_BIN), "--port", str(taken.getsockname()[1]), "--data-dir",
                               str(tmp_path / "run-data"), *state], capture_output=True, text=True, timeout=60)
        assert busy.returncode != 0 and "in use" in busy.stderr, busy.stderr
        assert "state archive imported" not in busy.stderr

    for where in (("--in-memory",), ("--data-dir", str(tmp_path / "run-data"))):
        server = start_kmsim(*where, *state)
        assert (server.info["imported"]["keys"], server.info["imported"]["objects"]) == (1, 1), server.info
        assert server.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"fixture"
        assert make_s3_client(server.endpoint).get_object(Bucket=bucket, Key="k")["Body"].read() == b"body"
        assert server.stop() == 0
    # The data dir now holds the state: it starts without --state, and refuses a second import.
    again = start_kmsim("--data-dir", str(tmp_path / "run-data"))
    assert again.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"fixture"
    assert again.stop() == 0
    with pytest.raises(pytest.fail.Exception) as refused:
        start_kmsim("--data-dir", str(tmp_path / "run-data"), *state)
    assert "importing the state archive" in str(refused.value) and "empty" in str(refused.value)
    assert start_kmsim("--data-dir", str(tmp_path / "run-data")).client().decrypt(
        CiphertextBlob=blob)["Plaintext"] == b"fixture", "the refused start changed nothing"
    secret.write_text("not the passphrase")
    with pytest.raises(pytest.fail.Exception) as wrong:
        start_kmsim("--in-memory", *state)
    assert "wrong passphrase" in str(wrong.value)


def test_sim_state_refusals(start_kmsim) -> None:
    source = start_kmsim("--in-memory")
    source.client().create_key()
    archive = sim_state(source, "GET").content
    target = start_kmsim("--in-memory")
    wrong = sim_state(target, "PUT", archive, passphrase="wrong")
    assert wrong.status_code == 400 and "wrong passphrase" in wrong.json()["error"], wrong.text
    cut = sim_state(target, "PUT", archive[:-10])
    assert cut.status_code == 400 and "truncated" in cut.json()["error"], cut.text
    newer = bytearray(archive)
    newer[8:10] = (2).to_bytes(2, "big")
    refused = sim_state(target, "PUT", bytes(newer))
    assert refused.status_code == 400, refused.text
    assert "format 2" in refused.json()["error"] and "format 1" in refused.json()["error"], refused.text
    assert sim_state(target, "PUT", archive, passphrase=None).status_code == 400
    assert sim_state(target, "PUT", archive, content_type="text/plain").status_code == 415
    assert sim_state(target, "PUT", archive, token="0" * 64).status_code == 401
    assert sim_state(source, "GET", passphrase=None).status_code == 400
    # None of that changed the target: it is still empty, and takes the archive.
    assert target.client().list_keys()["Keys"] == []
    assert sim_state(target, "PUT", archive).status_code == 200
    assert len(target.client().list_keys()["Keys"]) == 1


def test_an_export_under_load_is_a_consistent_cut(start_kmsim) -> None:
    """PUTs and CreateKey calls run while the state is exported: the archive holds every call answered before the
    export began, and everything it holds is whole (each object listed reads back, each blob decrypts)."""
    import threading

    source = start_kmsim("--in-memory")
    s3, kms = make_s3_client(source.endpoint), source.client()
    bucket = unique("load")
    s3.create_bucket(Bucket=bucket)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    stop = threading.Event()
    acknowledged: list[str] = []
    blobs: list[bytes] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            name = f"object-{n:05d}"
            s3.put_object(Bucket=bucket, Key=name, Body=name.encode() * 64, ServerSideEncryption="aws:kms",
                          SSEKMSKeyId=key)
            acknowledged.append(name)
            blobs.append(kms.encrypt(KeyId=key, Plaintext=name.encode())["CiphertextBlob"])
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(acknowledged) < 20:
            stop.wait(0.01)
        before = list(acknowledged)
        exported = sim_state(source, "GET")
    finally:
        stop.set()
        thread.join()
    assert exported.status_code == 200, exported.text
    target = start_kmsim("--in-memory")
    assert sim_state(target, "PUT", exported.content).status_code == 200
    moved = make_s3_client(target.endpoint)
    listed = [o["Key"] for page in moved.get_paginator("list_objects_v2").paginate(Bucket=bucket)
              for o in page.get("Contents", [])]
    assert set(before) <= set(listed), "every PUT answered before the export is in it"
    for name in listed:
        assert moved.get_object(Bucket=bucket, Key=name)["Body"].read() == name.encode() * 64
    assert target.client().decrypt(CiphertextBlob=blobs[0])["Plaintext"] == before[0].encode()
