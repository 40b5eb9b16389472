"""The admin API under ``/_sim/`` through curl, as a user or a hostile web page would call it: the
bearer token from the startup line or ``admin.token``, ``curl --aws-sigv4`` with an access key, and
the cross-origin "simple request" that must never reset a data dir."""

from __future__ import annotations

import json
import os
import stat
import subprocess

from conftest import DataDirServer


def curl(*args: str) -> tuple[int, dict]:
    """Runs curl, returning the HTTP status and the JSON body."""
    out = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    body, _, status = out.rpartition("\n")
    return int(status), (json.loads(body) if body.strip() else {})


def key_count(server: DataDirServer) -> int:
    return len(server.client().list_keys()["Keys"])


def test_a_cross_origin_simple_request_cannot_reset_a_data_dir(kmsim_data_dir):
    server = kmsim_data_dir()
    server.client().create_key()
    reset = f"{server.endpoint}/_sim/reset"
    # What a web page's fetch(..., {method: "POST", mode: "no-cors", body: ""}) sends.
    status, _ = curl("-X", "POST", "-H", "Origin: http://evil.example", "-H", "Content-Type: text/plain", "--data", "",
                     reset)
    assert status == 403
    status, _ = curl("-X", "POST", "-H", "Content-Type: text/plain", "--data", "", reset)
    assert status == 415
    status, body = curl("-H", "Content-Type: application/json", "--data", '{"confirm": "delete-everything"}', reset)
    assert status == 401, body
    assert key_count(server) == 1


def test_the_token_file_and_a_confirmed_reset(kmsim_data_dir):
    server = kmsim_data_dir()
    server.client().create_key()
    token_file = server.data_dir / "admin.token"
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(server.data_dir).st_mode) == 0o700
    token = token_file.read_text().strip()
    assert token == server.process.info["admin_token"]
    auth = ["-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json"]
    status, body = curl(*auth, "--data", "{}", f"{server.endpoint}/_sim/reset")
    assert status == 400 and "delete-everything" in body["error"]
    assert key_count(server) == 1
    status, body = curl(*auth, "--data", '{"confirm": "delete-everything"}', f"{server.endpoint}/_sim/reset")
    assert (status, body) == (200, {"reset": True})
    assert key_count(server) == 0
    # A restart makes a new token; the old one no longer works.
    server.restart()
    status, _ = curl("-H", f"Authorization: Bearer {token}", f"{server.endpoint}/_sim/audit")
    assert status == 401
    assert (server.data_dir / "admin.token").read_text().strip() == server.process.info["admin_token"]


def test_curl_aws_sigv4_with_an_access_key(fresh_kmsim):
    kms = fresh_kmsim.client()
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    sigv4 = ["--aws-sigv4", "aws:amz:us-east-1:kmsim", "--user", "test:test"]
    status, body = curl(*sigv4, f"{fresh_kmsim.endpoint}/_sim/audit?operation=CreateKey")
    assert status == 200
    assert [e["key_arn"].rsplit("/", 1)[1] for e in body["events"]] == [key]
    status, body = curl("--aws-sigv4", "aws:amz:us-east-1:kmsim", "--user", "test:wrong",
                        f"{fresh_kmsim.endpoint}/_sim/audit")
    assert status == 401, body
    status, body = curl(*sigv4, "-H", "Content-Type: application/json", "--data", '{"advance_days": 1}',
                        f"{fresh_kmsim.endpoint}/_sim/clock")
    assert status == 200 and body["offset_seconds"] >= 86_400
    status, body = curl(*sigv4, "-H", "Content-Type: application/json", "--data", '{"advance_days": -1}',
                        f"{fresh_kmsim.endpoint}/_sim/clock")
    assert status == 400, body
