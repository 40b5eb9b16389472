"""The console (docs/console.md) in real browsers: Debian's headless chromium (Playwright for Python) and firefox-esr
(puppeteer-core over WebDriver BiDi), the same flow in each through browsers.py.

On a server with a data dir, the page creates a key, uploads a file with SSE-KMS, shows its envelope (checked
against boto3's head_object and the stored bytes: no plaintext anywhere in the data dir), downloads it (bytes
compared), breaks it on purpose (disabled key → KMS.DisabledException, enabled → readable again, a corrupted
byte → the download fails, a deleted key after the simulated clock passed the window), runs the OTC seed flow
(the OBS object is ciphertext that the DEK from decrypt-datakey opens), shows an encrypted volume's LUKS facts
and the live audit, works by keyboard and at 375 px, and logs no browser console error. Its MD5 module is
checked against hashlib, and the perimeter (no cookie → 401, foreign Origin → 403, the CSP) from outside.

``KMSIM_SCREENSHOTS=<dir>`` saves the screenshots of docs/console-*.png there (``scripts/console-screenshots``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from browsers import Browser, launch
from conftest import DataDirServer, huawei_kms_client, make_kms_client, make_s3_client

# A second principal for the picker: an IAM user of the default account who may use KMS and S3.
ALICE = "AKIDALICECONSOLE"
ALICE_POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:*","s3:*"],"Resource":"*"}]}'
CONFIG = f"""
[[accounts]]
id = "000000000000"

[[accounts.users]]
name = "alice"
access_keys = [{{ access_key_id = "{ALICE}", secret_access_key = "alice-secret" }}]
policies = {{ all = '{ALICE_POLICY}' }}
"""
SCREENSHOTS = os.environ.get("KMSIM_SCREENSHOTS")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
WIDE = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 800}
TABS = ["keys", "objects", "envelope", "breakit", "seed", "audit", "volumes"]
# Chromium reports every failed resource load as a console error; the page makes such requests on purpose only when
# it downloads the object it broke.
FAILED_LOAD = "Failed to load resource: the server responded with a status of "


@pytest.fixture(scope="module", params=["chromium", "firefox"])
def browser_of_each_kind(request: pytest.FixtureRequest) -> Iterator[Browser]:
    """Debian's chromium (Playwright) and firefox-esr (puppeteer-core over WebDriver BiDi), in turn."""
    with launch(request.param) as browser:
        yield browser


class Console:
    """A page on the console in a fresh browser context; it records every console error and page error."""

    def __init__(self, browser: Browser, info: dict[str, Any]) -> None:
        self.info = info
        self.page = browser.new_page(**WIDE)
        #: Paths (/bucket/key) whose download the test makes fail on purpose.
        self.broken_paths: set[str] = set()

    def errors(self) -> list[str]:
        """The console errors so far, except the failed loads of the objects the test broke on purpose."""
        return [f"{self.page.name} console error: {text} ({url})" for text, url in self.page.console_errors()
                if not (text.startswith(FAILED_LOAD) and urllib.parse.urlsplit(url).path in self.broken_paths)]

    def open(self) -> None:
        status, headers, url = self.page.goto(self.info["console"])
        assert status == 200
        assert urllib.parse.urlsplit(url).path == "/_sim/console/"
        assert headers["content-security-policy"] == CSP
        self.page.wait_count("body[data-ready=true]", 1)

    def tab(self, name: str) -> None:
        self.page.click(f"#tab-{name}")
        self.page.wait_visible(f"#view-{name}")

    def fact(self, name: str) -> str:
        return self.page.text(f"#envelope-result dd[data-fact={name}]")

    def screenshot(self, name: str, height: int | None = None) -> None:
        """Saves docs/console-<name>.png (with KMSIM_SCREENSHOTS, from Chromium): the page, or its top `height` px."""
        if SCREENSHOTS and self.page.name == "chromium":
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            width = self.page.evaluate("() => window.innerWidth")
            clip = {"x": 0, "y": 0, "width": width, "height": height} if height else None
            self.page.screenshot(Path(SCREENSHOTS) / f"console-{name}.png", True, clip)


def files_containing(directory: Path, needle: bytes) -> list[str]:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    return [str(p.relative_to(directory)) for p in files if needle in p.read_bytes()]


def test_the_console_in_a_browser(browser_of_each_kind: Browser, kmsim_data_dir: Any, tmp_path: Path) -> None:
    server: DataDirServer = kmsim_data_dir(config=CONFIG)
    info = server.process.info
    endpoint, region = info["endpoint"], info["region"]
    kms, s3 = make_kms_client(endpoint, region=region), make_s3_client(endpoint, region=region)
    console = Console(browser_of_each_kind, info)
    page = console.page
    console.open()

    # The MD5 module (WebCrypto has none) against hashlib: lengths around the 64-byte blocks and the padding.
    lengths = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 1000, 100_003]
    digests = page.evaluate("""async (lengths) => {
        const { md5 } = await import("/_sim/console/md5.js");
        return lengths.map((n) => Array.from(md5(Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 255)),
                                             (b) => b.toString(16).padStart(2, "0")).join(""));
    }""", lengths)
    assert digests == [hashlib.md5(bytes((i * 31 + 7) & 255 for i in range(n))).hexdigest() for n in lengths]

    # Keyboard: the tabs are a tab list; arrow keys move between them.
    page.wait_attribute("#tab-keys", "aria-selected", "true")
    page.focus("#tab-keys")
    page.press("ArrowRight")
    page.wait_focused("#tab-objects")
    assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") == "solid"  # visible focus
    page.wait_attribute("#tab-objects", "aria-selected", "true")
    page.press("End")
    page.wait_attribute("#tab-volumes", "aria-selected", "true")
    page.press("Home")
    page.wait_visible("#view-keys")
    page.wait_value("#principal", "test")

    # ---- a key ----
    alias = f"console-{uuid.uuid4().hex[:8]}"
    page.fill("#key-alias", alias)
    page.click("#key-create-button")
    page.wait_contains("#key-create-status", f"Created alias/{alias}")
    [target] = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == f"alias/{alias}"]
    key = kms.describe_key(KeyId=target["TargetKeyId"])["KeyMetadata"]
    row = f"#keys-table tr[data-key-id='{key['KeyId']}']"
    page.wait_contains(row, f"alias/{alias}")
    page.wait_contains(row, "Enabled")
    page.wait_contains(row, "SYMMETRIC_DEFAULT")
    console.screenshot("keys")

    # The principal picker: a key made as alice is made by alice.
    page.select("#principal", ALICE)
    page.wait_text("#principal-arn", "arn:aws:iam::000000000000:user/alice")
    page.fill("#key-alias", f"{alias}-alice")
    page.click("#key-create-button")
    page.wait_contains("#key-create-status", f"Created alias/{alias}-alice")
    assert [event["principal"] for event in server.process.admin.audit(operation="CreateKey")] == [
        "arn:aws:iam::000000000000:root", "arn:aws:iam::000000000000:user/alice"]
    page.select("#principal", "test")
    page.wait_text("#principal-arn", "arn:aws:iam::000000000000:root")

    # ---- a bucket and an SSE-KMS upload from disk ----
    bucket, name = f"console-{uuid.uuid4().hex[:8]}", "report.txt"
    marker = b"CONSOLE-PLAINTEXT-MARKER-" + uuid.uuid4().hex.encode()
    plaintext = (marker + b"\n" + os.urandom(40_000).hex().encode())[:80_000]  # two 64 KiB frames
    upload = tmp_path / name
    upload.write_bytes(plaintext)
    console.tab("objects")
    page.fill("#bucket-name", bucket)
    page.click("#bucket-create button[type=submit]")
    page.wait_contains("#bucket-status", f"Created bucket {bucket}")
    page.upload("#upload-file", upload)
    page.select("#upload-kms-key", key["Arn"])
    page.check("input[name=sse][value='aws:kms']")
    page.click("#upload-button")
    page.wait_contains("#upload-status", f"S3 stored it with aws:kms under {key['Arn']}")
    page.wait_attribute(f"#objects-table tr[data-key='{name}'] td[data-encryption]", 
        "data-encryption", "aws:kms")

    # ---- its envelope, against boto3 and the stored bytes ----
    head = s3.head_object(Bucket=bucket, Key=name)
    page.click(f"button[aria-label='Envelope: {name}']")
    page.wait_contains("#envelope-status", f"{bucket}/{name}")
    assert console.fact("encryption") == head["ServerSideEncryption"] == "aws:kms"
    assert console.fact("key-arn").split()[0] == head["SSEKMSKeyId"] == key["Arn"]
    assert console.fact("plaintext-bytes").split()[0] == str(head["ContentLength"]) == str(len(plaintext))
    stored = server.data_dir / console.fact("stored-file")
    stored_bytes = stored.read_bytes()
    assert console.fact("bytes-on-disk").split()[0] == str(len(stored_bytes))
    assert "0x0478" in console.fact("algorithm-suite")
    assert console.fact("content").startswith("framed: 2 frames")
    assert f"aws:s3:arn arn:aws:s3:::{bucket}/{name}" in console.fact("encryption-context").replace("\t", " ")
    edk_hex = page.text("#envelope-result pre[data-role=edk-hex]").strip()
    assert bytes.fromhex(edk_hex) in stored_bytes
    assert console.fact("provider-info") == key["Arn"]
    assert files_containing(server.data_dir, marker) == []
    console.screenshot("envelope")

    # ---- download through the page ----
    console.tab("objects")
    download_button = f"button[aria-label='Download: {name}']"
    assert page.download(download_button) == plaintext

    # ---- a dropped file (a name S3 wants percent-encoded) with SSE-C: the key made in the page, shown to copy ----
    page.evaluate("""([name, text]) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([text], name, { type: "text/plain" }));
        const drop = new DragEvent("drop", { dataTransfer: transfer, cancelable: true });
        document.querySelector("#drop-zone").dispatchEvent(drop);
    }""", ["dropped note (1).txt", "dropped, with a customer key"])
    page.wait_contains("#upload-chosen", "dropped note (1).txt")
    page.check("input[name=sse][value=SSE-C]")
    page.click("#upload-button")
    page.wait_contains("#upload-status", "Uploaded dropped note (1).txt: S3 stored it with SSE-C")
    customer_key = base64.b64decode(page.text("#ssec-keys li code"))
    assert len(customer_key) == 32
    with_key = s3.get_object(Bucket=bucket, Key="dropped note (1).txt", SSECustomerAlgorithm="AES256",
                             SSECustomerKey=customer_key)
    assert with_key["Body"].read() == b"dropped, with a customer key"
    assert page.download("button[aria-label='Download: dropped note (1).txt']") == b"dropped, with a customer key"

    # ---- a file above 16 MiB goes up in parts through presigned part URLs ----
    big = tmp_path / "big.bin"
    big_bytes = os.urandom(17 * 1024 * 1024 + 5)
    big.write_bytes(big_bytes)
    page.upload("#upload-file", big)
    page.check("input[name=sse][value='aws:kms']")
    page.click("#upload-button")
    page.wait_contains("#upload-status", "Uploaded big.bin in 3 parts: S3 stored it with aws:kms")
    big_head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert (big_head["ContentLength"], big_head["SSEKMSKeyId"]) == (len(big_bytes), key["Arn"])
    assert big_head["ETag"].endswith('-3"')
    assert page.download("button[aria-label='Download: big.bin']") == big_bytes

    # ---- break it: disable the key, enable it again ----
    console.broken_paths.add(f"/{bucket}/{name}")
    page.click(f"button[aria-label='Break it: {name}']")
    page.wait_enabled("#break-disable")
    page.click("#break-disable")
    page.wait_contains("#break-disable-result", "KMS.DisabledException (HTTP 400)")
    page.wait_contains("#break-disable-result", "KMS refuses while the key is disabled")
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Disabled"
    page.click("#break-enable")
    page.wait_contains("#break-enable-result", "The download works again")
    console.tab("objects")
    assert page.download(download_button) == plaintext

    # ---- the seed flow over the OTC KMS API ----
    seed_file = tmp_path / "seed.bin"
    seed_plain = marker + os.urandom(5000)
    seed_file.write_bytes(seed_plain)
    console.tab("seed")
    page.upload("#seed-file", seed_file)
    page.fill("#seed-bucket", f"{bucket}-seed")
    page.click("#seed-run-all")
    page.wait_contains("#seed-status-7", "identical to the file you chose", timeout_ms=20_000)
    page.wait_contains("#seed-status-6", "matches datakey_dgst")
    page.wait_contains("#seed-exchanges-1", "POST /v1.0/")
    page.wait_contains("#seed-exchanges-1", "authorization: SDK-HMAC-SHA256")
    page.wait_contains("#seed-exchanges-2", "— forgotten —")
    assert page.download("#seed-save") == seed_plain
    console.screenshot("seed-flow", height=1800)
    sealed = s3.get_object(Bucket=f"{bucket}-seed", Key="seed.bin.encrypted")
    cipher_dek = s3.get_object(Bucket=f"{bucket}-seed", Key="seed.bin.dek")["Body"].read().decode()
    body = sealed["Body"].read()
    assert marker not in body and len(body) == 12 + len(seed_plain) + 16
    otc = huawei_kms_client(endpoint, info["project_id"])
    from huaweicloudsdkkms.v2 import DecryptDatakeyRequest, DecryptDatakeyRequestBody

    dek = bytes.fromhex(otc.decrypt_datakey(DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=sealed["Metadata"]["kms-key-id"], cipher_text=cipher_dek, datakey_cipher_length="64"))).data_key)
    assert AESGCM(dek[:32]).decrypt(body[:12], body[12:], None) == seed_plain
    # The page forgot the plaintext DEK: it shows it nowhere any more.
    assert dek.hex() not in page.evaluate("() => document.documentElement.outerHTML").lower()
    page.wait_contains("#seed-exchanges-6", '"data_key": "— forgotten —"')
    assert files_containing(server.data_dir, marker) == []

    # ---- an encrypted volume under the key (made with Huawei's EVS SDK), as the Volumes view shows it ----
    volume_id = create_volume(info, key["KeyId"])
    console.tab("volumes")
    page.wait_for("(id) => Array.from(document.querySelectorAll('#volumes-table tbody tr')).some((row) => "
                  "row.innerText.includes(id) && row.innerText.includes('available') && "
                  "row.innerText.includes('nbd://'))", volume_id, what=f"{volume_id} available, with its NBD URL")
    page.wait_contains("#volumes-details", "aes-xts-plain64")
    page.wait_contains("#volumes-details", "4096 sectors")

    # ---- the live audit: the calls above, and a key's own trail ----
    console.tab("audit")
    for operation in ("GenerateDataKey", "DisableKey", "EnableKey", "create-datakey", "decrypt-datakey"):
        page.wait_visible(f"#audit-table tbody tr[data-operation='{operation}']")
    page.wait_contains("#audit-table tr[data-operation=Decrypt][data-outcome=DisabledException]", "s3.amazonaws.com")
    console.screenshot("audit", height=WIDE["height"])
    console.tab("keys")
    page.click(f"a[aria-label='Audit trail of alias/{alias}']")
    page.wait_value("#audit-key", key["Arn"])
    page.wait_contains("#audit-status", "filtered by key")
    page.wait_visible("#audit-table tbody tr[data-operation]")
    keys_shown = set(page.evaluate("() => Array.from(document.querySelectorAll('#audit-table tbody tr td:nth-child(5)'), "
                                   "(cell) => cell.title)"))
    assert keys_shown == {key["Arn"]}

    # ---- break it for good: a corrupted byte, then the key deleted ----
    console.tab("breakit")
    page.fill("#break-key", name)
    page.click("#break-form button[type=submit]")
    page.wait_enabled("#break-corrupt")
    page.click("#break-corrupt")
    page.wait_contains("#break-corrupt-result", "S3 answered InternalError (HTTP 500)")
    page.wait_contains("#break-corrupt-result", "authentication tag")
    after = stored.read_bytes()
    assert sum(a != b for a, b in zip(stored_bytes, after)) == 1
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key=name)["Body"].read()
    page.click("#break-delete")
    page.wait_contains("#break-delete-result", "KMS.NotFoundException")
    page.wait_contains("#clock", "(+8 days)")
    with pytest.raises(ClientError) as gone:
        kms.describe_key(KeyId=key["KeyId"])
    assert gone.value.response["Error"]["Code"] == "NotFoundException"
    console.screenshot("break-it")

    # ---- a phone-width window: every view fits ----
    page.set_viewport(**PHONE)
    for name_of_tab in TABS:
        console.tab(name_of_tab)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"], name_of_tab
    console.tab("envelope")
    page.fill("#envelope-key", "seed.bin.encrypted")
    page.select("#envelope-bucket", f"{bucket}-seed")
    page.click("#envelope-form button[type=submit]")
    page.wait_text("#envelope-result dd[data-fact=encryption]", "AES256")
    page.select("#envelope-bucket", bucket)
    page.fill("#envelope-key", name)
    page.click("#envelope-form button[type=submit]")
    page.wait_text("#envelope-result dd[data-fact=encryption]", "aws:kms")
    console.screenshot("phone")

    assert console.errors() == []
    page.close()


def create_volume(info: dict[str, Any], key_id: str) -> str:
    """An encrypted 10 GB volume under `key_id`, made with Huawei's EVS SDK; answers its id (it may still be creating:
    the Volumes view shows it as it becomes available)."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkevs.v2 import CreateVolumeOption, CreateVolumeRequest, CreateVolumeRequestBody, EvsClient

    credentials = BasicCredentials("test", "test", info["project_id"])
    evs = EvsClient.new_builder().with_credentials(credentials).with_endpoints([info["endpoint"]]).build()
    option = CreateVolumeOption(availability_zone="eu-de-01", volume_type="SSD", size=10, name="console-volume",
                                metadata={"__system__encrypted": "1", "__system__cmkid": key_id})
    created = evs.create_volume(CreateVolumeRequest(body=CreateVolumeRequestBody(volume=option)))
    assert len(created.volume_ids) == 1, created
    return created.volume_ids[0]


def test_the_perimeter(start_kmsim: Any) -> None:
    info = start_kmsim().info
    endpoint = info["endpoint"]
    # Without the cookie (or the bearer token): 401 for the page, its files and its API.
    for path in ("/_sim/console/", "/_sim/console/console.js", "/_sim/console/api/session",
                 "/_sim/console/api/audit/stream", "/_sim/console/api/volumes"):
        assert requests.get(endpoint + path, timeout=30).status_code == 401, path
    assert requests.post(endpoint + "/_sim/console/api/sign", json={}, timeout=30).status_code == 401
    # With the cookie, but from another origin: 403.
    session = requests.Session()
    assert session.get(info["console"], timeout=30).status_code == 200
    for method, path in (("GET", "/_sim/console/api/session"), ("POST", "/_sim/console/api/sign")):
        foreign = session.request(method, endpoint + path, json={}, timeout=30,
                                  headers={"Origin": "http://attacker.example"})
        assert foreign.status_code == 403, (method, path)
    # Every file of the page is served with the CSP and its content type.
    for file, content_type in (("", "text/html"), ("console.css", "text/css"), ("console.js", "text/javascript"),
                               ("api.js", "text/javascript")):
        served = session.get(f"{endpoint}/_sim/console/{file}", timeout=30)
        assert served.status_code == 200 and served.headers["content-type"].startswith(content_type), file
        assert served.headers["content-security-policy"] == CSP
        assert served.headers["x-content-type-options"] == "nosniff"
        assert "style=" not in served.text and "<script>" not in served.text, file



def test_the_browser_refuses_without_the_cookie_and_enforces_the_csp(browser_of_each_kind: Browser,
                                                                      start_kmsim: Any) -> None:
    info = start_kmsim().info
    page = browser_of_each_kind.new_page()
    status, _, _ = page.goto(info["endpoint"] + "/_sim/console/")
    assert status == 401
    page.goto(info["console"])
    page.wait_count("body[data-ready=true]", 1)
    inline = """async () => {
        const violation = new Promise((resolve) => document.addEventListener(
            "securitypolicyviolation", (event) => resolve(event.effectiveDirective), { once: true }));
        const script = document.createElement("script");
        script.textContent = "window.inlineRan = true";
        document.body.append(script);
        return { ran: window.inlineRan === true, directive: await violation };
    }"""
    outcome = page.evaluate(inline)
    assert outcome["ran"] is False and outcome["directive"].startswith("script-src"), outcome
    page.close()
