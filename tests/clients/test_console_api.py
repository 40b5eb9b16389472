"""The console's backend API (docs/console.md) with ``requests``, as the page uses it: the login cookie, requests
signed for a principal and then sent to the real APIs (AWS KMS, OTC KMS, EVS, S3 presigned URLs), the envelope view
checked against boto3 and the stored bytes, the corrupt-a-byte fault, the volumes' LUKS facts, the live audit
stream, and the perimeter (no cookie → 401, another origin → 403, the Content-Security-Policy).

The browser drives the same API in ``test_console.py``.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from conftest import BOTO_CONFIG, DEFAULT_ACCESS_KEY, DEFAULT_SECRET

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


class Console:
    """A browser's view of the console: its cookie, and the requests it signs then sends itself."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.endpoint, self.info = info["endpoint"], info
        self.http = requests.Session()
        login = self.http.get(info["console"], allow_redirects=False, timeout=30)
        assert login.status_code == 303 and login.headers["location"] == "/_sim/console/", login.text
        assert "HttpOnly" in login.headers["set-cookie"] and "SameSite=Strict" in login.headers["set-cookie"]

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, f"{self.endpoint}/_sim/console/api/{path}", timeout=30, **kwargs)

    def send(self, api: str, method: str, path: str, body: str = "", principal: str = DEFAULT_ACCESS_KEY,
             data: bytes | None = None, **fields: Any) -> requests.Response:
        """Signs a request for ``principal`` and sends it as the page does (relative URL, the headers given back)."""
        signed = self.api("POST", "sign", json={"principal": principal, "api": api, "method": method, "path": path,
                                                "body": body, **fields})
        assert signed.status_code == 200, signed.text
        answer = signed.json()
        assert "host" not in answer["headers"]
        return requests.request(answer["method"], self.endpoint + answer["url"], headers=answer["headers"],
                                data=data if data is not None else body.encode(), timeout=30)

    def kms(self, target: str, **params: Any) -> dict:
        body = json.dumps(params)
        response = self.send("kms", "POST", "/", body, headers={"x-amz-target": f"TrentService.{target}",
                                                                 "content-type": "application/x-amz-json-1.1"})
        assert response.status_code == 200, response.text
        return response.json()

    def otc(self, method: str, path: str, body: dict | None = None) -> dict:
        text = json.dumps(body) if body is not None else ""
        response = self.send("otc", method, f"/{path.format(project=self.info['project_id'])}", text,
                             headers={"content-type": "application/json"})
        assert response.status_code in (200, 202), response.text
        return response.json()


@pytest.fixture
def server(kmsim_data_dir):
    return kmsim_data_dir()


@pytest.fixture
def console(server) -> Console:
    return Console(server.process.info)


def s3_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=DEFAULT_ACCESS_KEY,
                        aws_secret_access_key=DEFAULT_SECRET, region_name="us-east-1", config=BOTO_CONFIG)


def test_the_perimeter(console: Console, server) -> None:
    endpoint = console.endpoint
    for path in ("/_sim/console/", "/_sim/console/api/session", "/_sim/console/api/volumes"):
        refused = requests.get(endpoint + path, timeout=30)
        assert refused.status_code == 401, path
    wrong = requests.get(f"{endpoint}/_sim/console/login?token=not-the-token", allow_redirects=False, timeout=30)
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    forged = requests.get(f"{endpoint}/_sim/console/api/session", cookies={"kmsim_console": "forged"}, timeout=30)
    assert forged.status_code == 401
    # A page of another origin cannot use the cookie (and a browser would not send it: SameSite=Strict).
    foreign = console.api("POST", "sign", json={}, headers={"Origin": "http://attacker.example"})
    assert foreign.status_code == 403
    assert console.api("POST", "corrupt", data="{}", headers={"Content-Type": "text/plain"}).status_code == 415
    session = console.api("GET", "session")
    assert session.status_code == 200 and session.headers["content-security-policy"] == CSP
    assert session.headers["x-content-type-options"] == "nosniff"
    assert session.json()["principals"][0] == {
        "access_key_id": "test", "arn": "arn:aws:iam::000000000000:root", "account": "000000000000", "kind": "root",
        "project_id": console.info["project_id"], "default": True}
    # The bearer token works for scripts, as for every admin call; secrets are never answered.
    bearer = requests.get(f"{endpoint}/_sim/console/api/session", timeout=30,
                          headers={"Authorization": f"Bearer {console.info['admin_token']}"})
    assert bearer.status_code == 200 and "secret" not in bearer.text
    # The page's address without the slash leads to it.
    moved = console.http.get(f"{endpoint}/_sim/console", allow_redirects=False, timeout=30)
    assert moved.status_code == 308 and moved.headers["location"] == "/_sim/console/"
    # Signing refuses what it should not sign.
    for bad in ({"principal": "nobody", "api": "kms", "method": "GET", "path": "/"},
                {"principal": "test", "api": "kms", "method": "GET", "path": "no-slash"},
                {"principal": "test", "api": "kms", "method": "TRACE", "path": "/"},
                {"principal": "test", "api": "kms", "method": "GET", "path": "/", "headers": {"host": "evil"}}):
        assert console.api("POST", "sign", json=bad).status_code == 400, bad


def test_an_upload_its_envelope_and_a_corrupted_byte(console: Console, server) -> None:
    key = console.kms("CreateKey", Description="console test")["KeyMetadata"]
    bucket, name = f"console-{uuid.uuid4().hex[:12]}", "reports/a b.txt"
    plaintext = b"quarterly figures, confidential " * 2500  # 80,000 bytes: two frames
    assert console.send("s3", "PUT", f"/{bucket}").status_code == 200
    sse = {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": key["Arn"]}
    put = console.send("s3", "PUT", f"/{bucket}/reports/a%20b.txt", headers=sse, data=plaintext)
    assert put.status_code == 200, put.text
    # Without the headers it signed, the URL is refused.
    signed = console.api("POST", "sign", json={"principal": "test", "api": "s3", "method": "PUT",
                                                "path": f"/{bucket}/x", "headers": sse}).json()
    assert requests.put(console.endpoint + signed["url"], data=b"x", timeout=30).status_code in (400, 403)

    envelope = console.api("GET", "envelope", params={"bucket": bucket, "key": name}).json()
    head = s3_client(console.endpoint).head_object(Bucket=bucket, Key=name)
    assert (envelope["encryption"], envelope["key_arn"]) == (head["ServerSideEncryption"], head["SSEKMSKeyId"])
    assert envelope["plaintext_bytes"] == head["ContentLength"] == len(plaintext)
    stored = server.data_dir / envelope["stored_path"]
    raw = stored.read_bytes()
    assert len(raw) == envelope["stored_bytes"] and b"confidential" not in raw
    message = envelope["message"]
    assert (message["algorithm_suite"], message["frame_length"], message["frames"]) == ("0x0478", 65536, 2)
    assert message["encryption_context"]["aws:s3:arn"] == f"arn:aws:s3:::{bucket}/{name}"
    [data_key] = message["encrypted_data_keys"]
    assert (data_key["provider_id"], data_key["provider_info"]) == ("aws-kms", key["Arn"])
    # The stored message's header is the one described, and its data key is a KMS ciphertext of this key.
    assert raw[:message["header_bytes"]].find(bytes.fromhex(data_key["ciphertext_hex"])) > 0
    decrypted = console.kms("Decrypt", CiphertextBlob=__import__("base64").b64encode(
        bytes.fromhex(data_key["ciphertext_hex"])).decode(), EncryptionContext=message["encryption_context"])
    assert decrypted["KeyId"] == key["Arn"]
    got = console.send("s3", "GET", f"/{bucket}/reports/a%20b.txt")
    assert got.status_code == 200 and got.content == plaintext

    # Break it: a disabled key, then a corrupted byte.
    console.kms("DisableKey", KeyId=key["KeyId"])
    disabled = console.send("s3", "GET", f"/{bucket}/reports/a%20b.txt")
    assert disabled.status_code == 400 and b"<Code>KMS.DisabledException</Code>" in disabled.content
    console.kms("EnableKey", KeyId=key["KeyId"])
    flipped = console.api("POST", "corrupt", json={"bucket": bucket, "key": name}).json()
    after = stored.read_bytes()
    assert after[flipped["offset"]] == int(flipped["after"], 16) != raw[flipped["offset"]]
    assert sum(a != b for a, b in zip(raw, after)) == 1
    broken = console.send("s3", "GET", f"/{bucket}/reports/a%20b.txt")
    assert broken.status_code == 500 or broken.content != plaintext
    assert plaintext not in broken.content

    assert console.api("GET", "envelope", params={"bucket": bucket, "key": "missing"}).status_code == 404
    # Without SSE headers S3 encrypts with its own key (SSE-S3, every bucket's default since 2023).
    console.send("s3", "PUT", f"/{bucket}/plain", data=b"no headers")
    default = console.api("GET", "envelope", params={"bucket": bucket, "key": "plain"}).json()
    assert (default["encryption"], default["key_arn"]) == ("AES256", None)
    assert default["message"]["encrypted_data_keys"][0]["provider_id"] != "aws-kms"


def test_otc_calls_and_an_encrypted_volume(console: Console) -> None:
    key_id = console.otc("POST", "v1.0/{project}/kms/create-key", {"key_alias": f"console-{uuid.uuid4().hex[:8]}"})[
        "key_info"]["key_id"]
    data_key = console.otc("POST", "v1.0/{project}/kms/create-datakey", {"key_id": key_id, "datakey_length": "512"})
    assert len(data_key["plain_text"]) == 128 and data_key["cipher_text"]
    volume = {"volume": {"availability_zone": "eu-de-01", "volume_type": "SSD", "size": 10, "name": "console-vol",
                         "metadata": {"__system__encrypted": "1", "__system__cmkid": key_id}}}
    job = console.otc("POST", "v2.1/{project}/cloudvolumes", volume)["job_id"]
    deadline = time.monotonic() + 60
    while (status := console.otc("GET", f"v1/{{project}}/jobs/{job}"))["status"] not in ("SUCCESS", "FAIL"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert status["status"] == "SUCCESS", status
    volume_id = status["entities"]["volume_id"]
    [shown] = [v for v in console.api("GET", "volumes").json() if v["id"] == volume_id]
    assert (shown["encrypted"], shown["key_id"], shown["size_gb"], shown["attached"]) == (True, key_id, 10, False)
    assert shown["nbd_url"].startswith("nbd://127.0.0.1:") and shown["nbd_url"].endswith("/" + volume_id)
    luks = shown["luks"]
    assert (luks["cipher"], luks["hash"], luks["key_bytes"], luks["active_key_slots"]) == (
        "aes-xts-plain64", "sha256", 64, [0])
    assert luks["payload_offset_sectors"] == 4096 and len(luks["uuid"]) == 36
    assert len(shown["encrypted_data_key_hex"]) > 64


def test_the_live_audit_stream(console: Console) -> None:
    key = console.kms("CreateKey")["KeyMetadata"]
    console.kms("GenerateDataKey", KeyId=key["KeyId"], KeySpec="AES_256")
    stream = console.http.get(f"{console.endpoint}/_sim/console/api/audit/stream", params={"key": key["Arn"]},
                              stream=True, timeout=30)
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    lines = stream.iter_lines()

    def next_event() -> dict:
        for line in lines:
            if line.startswith(b"data:"):
                return json.loads(line[5:])
        raise AssertionError("the stream ended")

    # The recent events first (CreateKey names the key too), then a call made after the stream opened.
    assert [next_event()["operation"] for _ in range(2)] == ["CreateKey", "GenerateDataKey"]
    console.kms("DisableKey", KeyId=key["KeyId"])
    event = next_event()
    assert (event["operation"], event["principal"], event["outcome"]) == (
        "DisableKey", "arn:aws:iam::000000000000:root", "Success")
    stream.close()
