"""Deterministic runs through boto3: two `kmsim --port 0 --in-memory --deterministic SEED` processes answer the same
script with the same key ids, key material, data keys, ciphertexts (RSA-OAEP too), random bytes, grants, signatures
(ECDSA and RSA-PSS too), MACs, request ids, upload ids and times (the frozen simulated clock); another seed answers
otherwise; a reset replays the same answers; the startup line says the mode is for tests only; a data dir made
without the seed is refused."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from conftest import KMSIM_BIN, make_kms_client, make_s3_client


def script(endpoint: str) -> list[Any]:
    """Runs the same calls and returns every answer's values, request ids and times included."""
    kms, s3 = make_kms_client(endpoint), make_s3_client(endpoint)
    out: list[Any] = []

    def keep(response: dict, *fields: str) -> dict:
        out.append([response["ResponseMetadata"]["RequestId"]] + [response[f] for f in fields])
        return response

    key = keep(kms.create_key(Description="det"), "KeyMetadata")["KeyMetadata"]
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    ecc = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    mac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    out.append([rsa, ecc, mac])
    keep(kms.create_alias(AliasName="alias/det", TargetKeyId=key["KeyId"]))
    keep(kms.generate_data_key(KeyId="alias/det", KeySpec="AES_256"), "Plaintext", "CiphertextBlob", "KeyId")
    keep(kms.encrypt(KeyId=key["KeyId"], Plaintext=b"hello", EncryptionContext={"k": "v"}), "CiphertextBlob")
    keep(kms.generate_random(NumberOfBytes=32), "Plaintext")
    keep(kms.create_grant(KeyId=key["KeyId"], GranteePrincipal="arn:aws:iam::000000000000:root",
                          Operations=["Decrypt"]), "GrantId", "GrantToken")
    keep(kms.get_public_key(KeyId=rsa), "PublicKey")
    keep(kms.get_public_key(KeyId=ecc), "PublicKey")
    for algorithm in ("RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PSS_SHA_256"):
        keep(kms.sign(KeyId=rsa, Message=b"m", SigningAlgorithm=algorithm), "Signature")
    keep(kms.sign(KeyId=ecc, Message=b"m", SigningAlgorithm="ECDSA_SHA_256"), "Signature")
    oaep = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    keep(kms.encrypt(KeyId=oaep, Plaintext=b"hi", EncryptionAlgorithm="RSAES_OAEP_SHA_256"), "CiphertextBlob")
    keep(kms.schedule_key_deletion(KeyId=oaep, PendingWindowInDays=7), "DeletionDate")
    keep(kms.generate_mac(KeyId=mac, Message=b"m", MacAlgorithm="HMAC_SHA_256"), "Mac")

    keep(s3.create_bucket(Bucket="det"))
    keep(s3.put_object(Bucket="det", Key="o", Body=b"same", ServerSideEncryption="aws:kms",
                       SSEKMSKeyId=key["Arn"]), "ETag", "SSEKMSKeyId")
    upload = keep(s3.create_multipart_upload(Bucket="det", Key="m", ServerSideEncryption="aws:kms",
                                             SSEKMSKeyId=key["Arn"]), "UploadId")["UploadId"]
    part = keep(s3.upload_part(Bucket="det", Key="m", UploadId=upload, PartNumber=1, Body=b"part"), "ETag")
    keep(s3.complete_multipart_upload(Bucket="det", Key="m", UploadId=upload,
                                      MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}),
         "ETag")
    keep(s3.head_object(Bucket="det", Key="o"), "LastModified", "ETag")
    return out


def test_same_seed_same_answers_other_seed_others_and_reset_replays(start_kmsim: Any) -> None:
    first, second = start_kmsim("--deterministic", "suite-42"), start_kmsim("--deterministic", "suite-42")
    other = start_kmsim("--deterministic", "suite-43")
    assert "FOR TESTS ONLY" in first.info["deterministic"]
    assert first.info["admin_token"] == second.info["admin_token"] != other.info["admin_token"]
    answers = script(first.endpoint)
    assert answers == script(second.endpoint)
    others = script(other.endpoint)
    assert all(a != b for a, b in zip(answers, others)), "another seed gives other ids, keys and request ids"
    first.admin.reset()
    assert script(first.endpoint) == answers
    # The clock stands at 2026-01-01T00:00:00Z until a test moves it; a reset takes it back there.
    assert answers[0][1]["CreationDate"] == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert first.admin.clock()["frozen"] is True and first.admin.clock()["now"] == 1_767_225_600
    first.admin.advance_clock(days=2)
    key = make_kms_client(first.endpoint).create_key()["KeyMetadata"]
    assert key["CreationDate"] == datetime(2026, 1, 3, tzinfo=timezone.utc)


def test_without_the_flag_answers_differ_and_no_warning(start_kmsim: Any) -> None:
    one, two = start_kmsim(), start_kmsim()
    assert "deterministic" not in one.info
    assert one.admin.clock()["frozen"] is False
    assert make_kms_client(one.endpoint).create_key()["KeyMetadata"]["KeyId"] != \
        make_kms_client(two.endpoint).create_key()["KeyMetadata"]["KeyId"]


def test_a_data_dir_made_without_the_seed_is_refused(start_kmsim: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_kmsim("--data-dir", str(data))
    make_kms_client(server.endpoint).create_key()
    server.stop()
    done = subprocess.run([str(KMSIM_BIN), "--port", "0", "--data-dir", str(data), "--deterministic", "s"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "refusing --deterministic" in done.stderr, done.stderr
    assert "DETERMINISTIC MODE" not in done.stdout


def _created_keys(endpoint: str, count: int) -> list[str]:
    kms = make_kms_client(endpoint)
    return [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(count)]


def test_a_restarted_data_dir_and_an_imported_fixture_never_draw_the_same_ids_again(
        start_kmsim: Any, tmp_path: Path) -> None:
    """A deterministic data dir served again, or a fixture imported into a deterministic kmsim, holds ids and keys
    drawn before: the next keys and objects are new ones (no key overwritten, no object's body replaced), and
    still the same in every run."""
    seed = "restart-seed"
    runs = []
    for run in ("a", "b"):
        data = tmp_path / f"data-{run}"
        first = start_kmsim("--data-dir", str(data), "--deterministic", seed)
        before = _created_keys(first.endpoint, 2)
        kms, s3 = make_kms_client(first.endpoint), make_s3_client(first.endpoint)
        blob = kms.encrypt(KeyId=before[0], Plaintext=b"made in the first generation")["CiphertextBlob"]
        s3.create_bucket(Bucket="det")
        s3.put_object(Bucket="det", Key="first", Body=b"first body", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=before[0])
        first.stop()
        again = start_kmsim("--data-dir", str(data), "--deterministic", seed)
        after = _created_keys(again.endpoint, 2)
        assert not set(after) & set(before), (before, after)
        kms, s3 = make_kms_client(again.endpoint), make_s3_client(again.endpoint)
        s3.put_object(Bucket="det", Key="second", Body=b"second body", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=after[0])
        assert s3.get_object(Bucket="det", Key="first")["Body"].read() == b"first body"
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"made in the first generation"
        assert len(kms.list_keys()["Keys"]) == 4
        # A fixture exported from it, imported into a fresh deterministic kmsim of the same seed.
        passphrase = "det passphrase"
        archive = requests.get(f"{again.endpoint}/_sim/state", timeout=60, headers={
            "Authorization": f"Bearer {again.info['admin_token']}", "X-Kmsim-State-Passphrase": passphrase})
        assert archive.status_code == 200, archive.text
        fixture = tmp_path / f"fixture-{run}.kmsim"
        fixture.write_bytes(archive.content)
        passphrase_file = tmp_path / "passphrase"
        passphrase_file.write_text(passphrase)
        started = start_kmsim("--in-memory", "--deterministic", seed, "--state", str(fixture),
                              "--state-passphrase-file", str(passphrase_file))
        assert started.info["imported"]["keys"] == 4
        imported = _created_keys(started.endpoint, 2)
        assert not set(imported) & set(before + after), (before, after, imported)
        assert make_s3_client(started.endpoint).get_object(Bucket="det", Key="second")["Body"].read() \
            == b"second body"
        runs.append((before, after, imported))
    assert runs[0] == runs[1], "the same in every run"


def test_kmsim_state_export_and_import_carry_a_deterministic_data_dir(start_kmsim: Any, tmp_path: Path) -> None:
    """`kmsim state export` of a deterministic data dir leaves it deterministic and puts its seed's fingerprint and
    generation in the archive; `kmsim state import` of that archive makes a data dir that `--deterministic` with
    the seed serves, drawing after everything the archive holds."""
    seed, passphrase = "cli-seed", "cli passphrase"
    env = {**os.environ, "KMSIM_STATE_PASSPHRASE": passphrase}
    source = tmp_path / "source"
    server = start_kmsim("--data-dir", str(source), "--deterministic", seed)
    made = _created_keys(server.endpoint, 2)
    server.stop()
    archive = tmp_path / "fixture.kmsim"
    exported = subprocess.run([str(KMSIM_BIN), "state", "export", str(archive), "--data-dir", str(source)],
                              capture_output=True, text=True, timeout=120, env=env)
    assert exported.returncode == 0, exported.stderr
    state = json.loads(exported.stdout)["exported"]["state"]
    assert state["deterministic"]["next_generation"] == 1 and len(state["deterministic"]["seed_fingerprint"]) == 16
    # The source is still the seed's: served deterministically, in its next generation.
    again = start_kmsim("--data-dir", str(source), "--deterministic", seed)
    later = _created_keys(again.endpoint, 1)
    assert later[0] not in made
    again.stop()
    target = tmp_path / "target"
    imported = subprocess.run([str(KMSIM_BIN), "state", "import", str(archive), "--data-dir", str(target)],
                              capture_output=True, text=True, timeout=120, env=env)
    assert imported.returncode == 0, imported.stderr
    served = start_kmsim("--data-dir", str(target), "--deterministic", seed)
    kms = make_kms_client(served.endpoint)
    assert sorted(k["KeyId"] for k in kms.list_keys()["Keys"]) == sorted(made)
    new = _created_keys(served.endpoint, 2)
    assert not set(new) & set(made)
    assert new[0] == later[0], "the importer draws in the generation the source's restart drew in"
    # Another seed is still refused on it.
    other = subprocess.run([str(KMSIM_BIN), "--port", "0", "--data-dir", str(target), "--deterministic", "other"],
                           capture_output=True, text=True, timeout=60)
    assert other.returncode != 0 and "another seed" in other.stderr, other.stderr


def test_a_reset_replays_version_ids_and_bucket_keys_age_on_the_simulated_clock(start_kmsim: Any) -> None:
    """Version ids carry the store's sequence, which a reset starts again; a bucket key is reused for five minutes
    of the simulated clock (frozen under --deterministic), so a slow run makes the same KMS calls as a fast one."""
    server = start_kmsim("--deterministic", "versions")
    kms, s3 = make_kms_client(server.endpoint), make_s3_client(server.endpoint)

    def versioned_puts() -> list[str]:
        s3.create_bucket(Bucket="versions")
        s3.put_bucket_versioning(Bucket="versions", VersioningConfiguration={"Status": "Enabled"})
        return [s3.put_object(Bucket="versions", Key="o", Body=body)["VersionId"] for body in (b"1", b"2")]

    first = versioned_puts()
    server.admin.reset()
    assert versioned_puts() == first

    key = kms.create_key()["KeyMetadata"]["KeyId"]
    s3.create_bucket(Bucket="bucket-key")
    s3.put_bucket_encryption(Bucket="bucket-key", ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key},
        "BucketKeyEnabled": True}]})

    def data_keys() -> int:
        return len([e for e in server.admin.audit(operation="GenerateDataKey", key=key)])

    for name in ("a", "b"):
        s3.put_object(Bucket="bucket-key", Key=name, Body=b"body")
    assert data_keys() == 1, "one bucket key for both"
    server.admin.advance_clock(seconds=299)
    s3.put_object(Bucket="bucket-key", Key="c", Body=b"body")
    assert data_keys() == 1
    server.admin.advance_clock(seconds=2)
    s3.put_object(Bucket="bucket-key", Key="d", Body=b"body")
    assert data_keys() == 2, "a new bucket key after five simulated minutes"
    assert s3.get_object(Bucket="bucket-key", Key="a")["Body"].read() == b"body"


def test_a_fixture_that_lost_its_generation_never_replaces_a_key(start_kmsim: Any, tmp_path: Path) -> None:
    """A deterministic data dir served once without the seed, then exported, carries no generation: a seeded
    importer draws ids the fixture holds, and takes the next draw instead of replacing a key or an object."""
    seed, passphrase = "lost-generation", "lost passphrase"
    data = tmp_path / "data"
    made = []
    for _ in range(2):
        server = start_kmsim("--data-dir", str(data), "--deterministic", seed)
        made += _created_keys(server.endpoint, 1)
        s3 = make_s3_client(server.endpoint)
        if len(made) == 1:
            s3.create_bucket(Bucket="kept")
        s3.put_object(Bucket="kept", Key=f"o{len(made)}", Body=f"body {len(made)}".encode(),
                      ServerSideEncryption="aws:kms", SSEKMSKeyId=made[-1])
        server.stop()
    blob = None
    plain = start_kmsim("--data-dir", str(data))
    blob = make_kms_client(plain.endpoint).encrypt(KeyId=made[1], Plaintext=b"under the second key")["CiphertextBlob"]
    plain.stop()
    archive = tmp_path / "fixture.kmsim"
    env = {**os.environ, "KMSIM_STATE_PASSPHRASE": passphrase}
    done = subprocess.run([str(KMSIM_BIN), "state", "export", str(archive), "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "deterministic" not in json.loads(done.stdout)["exported"]["state"]
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(passphrase)
    server = start_kmsim("--in-memory", "--deterministic", seed, "--state", str(archive),
                         "--state-passphrase-file", str(passphrase_file))
    kms, s3 = make_kms_client(server.endpoint), make_s3_client(server.endpoint)
    new = _created_keys(server.endpoint, 2)
    assert not set(new) & set(made), (made, new)
    assert len(kms.list_keys()["Keys"]) == 4
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"under the second key"
    for n in (3, 4):
        s3.put_object(Bucket="kept", Key=f"o{n}", Body=f"body {n}".encode())
    for n in (1, 2, 3, 4):
        assert s3.get_object(Bucket="kept", Key=f"o{n}")["Body"].read() == f"body {n}".encode()
