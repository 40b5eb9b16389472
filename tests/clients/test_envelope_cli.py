"""`kmsim encrypt` / `decrypt` / `inspect` against the kmsim binary's KMS, interoperating with the AWS Encryption
SDK CLI (aws-encryption-sdk-cli 4.3.0 on the 3.x SDK, in .venv-esdk-cli) and the Python SDK (4.0.7, in .venv).

Each side decrypts the other's messages: kmsim writes suite 0x0478 (committing, unsigned), the SDK CLI its
default 0x0578 (committing, ECDSA P-384 signed). Refusals (a context or key the caller does not expect, a disabled
key, a tampered byte, a bad signature) exit non-zero with a clear message and leave no output file. The example in
docs/envelope-cli.md is run as written.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk import CommitmentPolicy
from aws_encryption_sdk.identifiers import Algorithm

from conftest import KMSIM_BIN, REPO_ROOT

ESDK_CLI = Path(os.environ.get("ESDK_CLI", str(REPO_ROOT / ".venv-esdk-cli" / "bin" / "aws-encryption-cli")))
AWS_CLI_DIR = Path(os.environ.get("VIRTUAL_ENV", str(REPO_ROOT / ".venv"))) / "bin"
KiB = 1024


# ---- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def env(kmsim: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment that reaches the shared kmsim's KMS with test/test, and no ~/.aws of the machine. It is
    also set in this process, for the Python SDK."""
    values = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_KMS": kmsim["endpoint"],
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    environment = dict(os.environ)
    environment["HOME"] = str(tmp_path)
    return environment


@pytest.fixture
def key(kms) -> str:
    return kms.create_key(Description="envelope cli")["KeyMetadata"]["Arn"]


def kmsim_cli(env: dict[str, str], *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(KMSIM_BIN), *args], env=env, input=input, capture_output=True, timeout=120)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr.decode(errors='replace')}"
    return result


def esdk_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    if not ESDK_CLI.is_file():
        pytest.fail(f"aws-encryption-cli not found at {ESDK_CLI}: scripts/test installs it into .venv-esdk-cli")
    return subprocess.run([str(ESDK_CLI), *args, "--suppress-metadata",
                           "--commitment-policy", "require-encrypt-require-decrypt"],
                          env=env, capture_output=True, timeout=300)


def refused(result: subprocess.CompletedProcess, *fragments: str) -> str:
    message = result.stderr.decode(errors="replace")
    assert result.returncode == 1, f"exit {result.returncode}: {message}"
    assert message.startswith("kmsim: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def python_client():
    return aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)


def python_provider(key_arn: str):
    return aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[key_arn],
                                                            botocore_session=botocore.session.Session())


def inspect(env: dict[str, str], path: Path) -> dict[str, Any]:
    import json
    return json.loads(ok(kmsim_cli(env, "inspect", "--json", str(path))).stdout)


# Empty, less than a frame, a few frames, an exact multiple of the frame length (an empty final frame).
SIZES = [0, 1000, 3 * 4096 + 17, 4 * 4096]


# ---- interop -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_kmsim_encrypts_and_the_esdk_cli_decrypts(env, key, tmp_path: Path, size: int):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(size))
    ok(kmsim_cli(env, "encrypt", "--key", key, "--context", "purpose=interop", "--frame-length", "4096",
                 str(plain), str(tmp_path / "msg")))
    described = inspect(env, tmp_path / "msg")
    assert described["algorithm_suite"] == {"id": "0x0478", "name": "AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
                                            "signed": False}
    assert described["frame_count"] == size // 4096 + 1
    assert described["plaintext_length"] == size
    result = esdk_cli(env, "--decrypt", "--input", str(tmp_path / "msg"), "--output", str(tmp_path / "back"),
                      "--wrapping-keys", f"key={key}", "--encryption-context", "purpose=interop")
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "back").read_bytes() == plain.read_bytes()
    # kmsim reads its own message too.
    ok(kmsim_cli(env, "decrypt", "--key", key, "--context", "purpose=interop", str(tmp_path / "msg"),
                 str(tmp_path / "again")))
    assert (tmp_path / "again").read_bytes() == plain.read_bytes()


@pytest.mark.parametrize("size", SIZES)
def test_the_esdk_cli_encrypts_with_its_default_signed_suite_and_kmsim_decrypts(env, key, tmp_path: Path, size):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(size))
    result = esdk_cli(env, "--encrypt", "--input", str(plain), "--output", str(tmp_path / "msg"),
                      "--wrapping-keys", f"key={key}", "--encryption-context", "team=blue")
    assert result.returncode == 0, result.stderr.decode()
    described = inspect(env, tmp_path / "msg")
    assert described["algorithm_suite"]["id"] == "0x0578"
    assert described["algorithm_suite"]["signed"] is True
    assert described["frame_length"] == 4096  # the SDK's default
    assert described["plaintext_length"] == size
    assert 100 <= described["signature_length"] <= 104
    assert "aws-crypto-public-key" in described["encryption_context"]
    ok(kmsim_cli(env, "decrypt", "--key", key, "--context", "team=blue", str(tmp_path / "msg"), str(tmp_path / "out")))
    assert (tmp_path / "out").read_bytes() == plain.read_bytes()


def test_the_python_sdk_both_ways(env, key, tmp_path: Path):
    plaintext = os.urandom(200 * KiB + 3)
    # kmsim → Python SDK.
    (tmp_path / "plain").write_bytes(plaintext)
    ok(kmsim_cli(env, "encrypt", "--key", key, "--context", "a=1", "--context", "b=two",
                 str(tmp_path / "plain"), str(tmp_path / "kmsim.msg")))
    decrypted, header = python_client().decrypt(source=(tmp_path / "kmsim.msg").read_bytes(),
                                                key_provider=python_provider(key))
    assert decrypted == plaintext
    assert header.algorithm == Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    assert dict(header.encryption_context) == {"a": "1", "b": "two"}
    # Python SDK (its default, signed suite) → kmsim.
    message, header = python_client().encrypt(source=plaintext, key_provider=python_provider(key),
                                              encryption_context={"c": "3"})
    assert header.algorithm == Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
    (tmp_path / "python.msg").write_bytes(message)
    ok(kmsim_cli(env, "decrypt", "--key", key, "--context", "c=3", str(tmp_path / "python.msg"),
                 str(tmp_path / "python.out")))
    assert (tmp_path / "python.out").read_bytes() == plaintext


def test_inspect_says_what_the_python_sdk_reads(env, key, tmp_path: Path):
    for suite in (Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384):
        plaintext = os.urandom(10_000)
        message, _ = python_client().encrypt(source=plaintext, key_provider=python_provider(key), algorithm=suite,
                                             encryption_context={"purpose": "inspect"}, frame_length=1024)
        path = tmp_path / f"{suite.name}.msg"
        path.write_bytes(message)
        decrypted, header = python_client().decrypt(source=message, key_provider=python_provider(key))
        assert decrypted == plaintext
        described = inspect(env, path)
        assert described["format_version"] == header.version.value == 2
        assert described["algorithm_suite"]["id"] == f"0x{header.algorithm.algorithm_id:04x}"
        assert described["algorithm_suite"]["name"] == header.algorithm.name
        assert described["message_id"] == header.message_id.hex()
        assert described["encryption_context"] == dict(header.encryption_context)
        assert [(k["provider_id"], k["key_arn"], k["ciphertext_length"]) for k in described["encrypted_data_keys"]] \
            == [(k.key_provider.provider_id, k.key_provider.key_info.decode(), len(k.encrypted_data_key))
                for k in header.encrypted_data_keys]
        assert described["content_type"] == "framed" and header.content_type.value == 2
        assert described["frame_length"] == header.frame_length == 1024
        assert described["frame_count"] == 10_000 // 1024 + 1
        assert described["plaintext_length"] == 10_000
        assert described["message_length"] == len(message)
        text = ok(kmsim_cli(env, "inspect", str(path))).stdout.decode()
        assert header.algorithm.name in text and key in text and "plaintext length    10000 bytes" in text


def test_stdin_and_stdout(env, key, tmp_path: Path):
    plaintext = os.urandom(3 * 65536 + 5)
    message = ok(kmsim_cli(env, "encrypt", "--key", key, "-", "-", input=plaintext)).stdout
    assert message[:3] == b"\x02\x04\x78"
    assert ok(kmsim_cli(env, "decrypt", "--key", key, "-", "-", input=message)).stdout == plaintext
    described = ok(kmsim_cli(env, "inspect", "--json", "-", input=message)).stdout
    assert b'"plaintext_length": 196613' in described
    # An alias names the key for encryption; decryption finds the key ARN in the message (discovery, no --key).
    alias = f"alias/cli-{uuid.uuid4().hex[:8]}"
    import boto3  # noqa: PLC0415 - the boto3 client of the shared server
    boto3.client("kms").create_alias(AliasName=alias, TargetKeyId=key)
    message = ok(kmsim_cli(env, "encrypt", "--key", alias, "-", "-", input=b"via alias")).stdout
    assert key.encode() in message
    assert ok(kmsim_cli(env, "decrypt", "-", "-", input=message)).stdout == b"via alias"


# ---- refusals ------------------------------------------------------------------------------------


def test_an_unexpected_context_or_key_is_refused_and_leaves_no_output(env, key, kms, tmp_path: Path):
    (tmp_path / "plain").write_bytes(b"secret")
    ok(kmsim_cli(env, "encrypt", "--key", key, "--context", "tenant=a", str(tmp_path / "plain"),
                 str(tmp_path / "msg")))
    out = tmp_path / "out"
    refused(kmsim_cli(env, "decrypt", "--key", key, "--context", "tenant=b", str(tmp_path / "msg"), str(out)),
            "refusing to decrypt", "tenant=a", "tenant=b")
    refused(kmsim_cli(env, "decrypt", "--context", "owner=x", str(tmp_path / "msg"), str(out)),
            "lacks the expected pair owner=x")
    other = kms.create_key()["KeyMetadata"]["Arn"]
    refused(kmsim_cli(env, "decrypt", "--key", other, str(tmp_path / "msg"), str(out)),
            "not an expected key", key, other)
    refused(kmsim_cli(env, "decrypt", "--key", "alias/x", str(tmp_path / "msg"), str(out)), "is not a key ARN")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["msg", "plain"]
    # Several expected keys: one of them is enough.
    ok(kmsim_cli(env, "decrypt", "--key", other, "--key", key, str(tmp_path / "msg"), str(out)))
    assert out.read_bytes() == b"secret"


def test_a_disabled_key_is_refused_with_kms_error(env, key, kms, tmp_path: Path):
    (tmp_path / "plain").write_bytes(b"secret")
    ok(kmsim_cli(env, "encrypt", "--key", key, str(tmp_path / "plain"), str(tmp_path / "msg")))
    kms.disable_key(KeyId=key)
    message = refused(kmsim_cli(env, "decrypt", "--key", key, str(tmp_path / "msg"), str(tmp_path / "out")),
                      "KMS refused Decrypt: DisabledException: ")
    assert re.search(r"DisabledException: .+", message), message
    assert not (tmp_path / "out").exists()
    refused(kmsim_cli(env, "encrypt", "--key", key, str(tmp_path / "plain"), str(tmp_path / "msg2")),
            "KMS refused GenerateDataKey: DisabledException")
    assert not (tmp_path / "msg2").exists()
    kms.enable_key(KeyId=key)


@pytest.mark.parametrize("producer", ["kmsim", "esdk-cli"])
def test_a_tampered_byte_fails_authentication_and_leaves_no_output(env, key, tmp_path: Path, producer: str):
    plaintext = os.urandom(5 * 4096 + 100)
    (tmp_path / "plain").write_bytes(plaintext)
    msg = tmp_path / "msg"
    if producer == "kmsim":
        ok(kmsim_cli(env, "encrypt", "--key", key, "--frame-length", "4096", str(tmp_path / "plain"), str(msg)))
    else:
        result = esdk_cli(env, "--encrypt", "--input", str(tmp_path / "plain"), "--output", str(msg),
                          "--wrapping-keys", f"key={key}")
        assert result.returncode == 0, result.stderr.decode()
    message = msg.read_bytes()
    header_length = inspect(env, msg)["header_length"]
    # In the header, in the body's third frame, in the last frame, and (signed) in the signature.
    for at in (header_length - 20, header_length + 2 * (4096 + 32) + 100, len(message) - 150, len(message) - 1):
        tampered = bytearray(message)
        tampered[at] ^= 0x01
        (tmp_path / "bad").write_bytes(bytes(tampered))
        out = tmp_path / "out"
        error = refused(kmsim_cli(env, "decrypt", "--key", key, str(tmp_path / "bad"), str(out)))
        assert any(word in error for word in ("authentication", "signature", "InvalidCiphertextException",
                                              "key commitment")), error
        assert not out.exists(), f"tampered at {at}: {error}"
        assert not any(p.name.endswith(".kmsim-partial") for p in tmp_path.iterdir())
    # Cut short: refused as truncated.
    (tmp_path / "short").write_bytes(message[:-7])
    refused(kmsim_cli(env, "decrypt", "--key", key, str(tmp_path / "short"), str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


# ---- the documented example ----------------------------------------------------------------------


def test_the_documented_example_runs(env, kmsim, tmp_path: Path):
    """The first ```sh block after the `<!-- tested: ... -->` marker in docs/envelope-cli.md, run as written
    (kmsim, aws and aws-encryption-cli on PATH; the endpoint and alias made unique for the shared server)."""
    doc = (REPO_ROOT / "docs" / "envelope-cli.md").read_text()
    marker = doc.index("<!-- tested: tests/clients/test_envelope_cli.py -->")
    block = re.search(r"```sh\n(.*?)```", doc[marker:], re.S)
    assert block, "no ```sh block after the marker"
    script = block.group(1)
    script = script.replace("http://127.0.0.1:4566", kmsim["endpoint"])
    script = script.replace("alias/reports", f"alias/reports-{uuid.uuid4().hex[:8]}")
    run_env = dict(env)
    run_env["PATH"] = os.pathsep.join([str(KMSIM_BIN.parent), str(ESDK_CLI.parent), str(AWS_CLI_DIR),
                                       run_env.get("PATH", "")])
    for name in ("AWS_ENDPOINT_URL_KMS", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        run_env.pop(name)  # the example sets them itself
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=run_env,
                            capture_output=True, timeout=300)
    assert result.returncode == 0, f"{result.stdout.decode()}\n{result.stderr.decode()}"
    assert (tmp_path / "report.txt").read_bytes() == (tmp_path / "report.decrypted.txt").read_bytes()
    assert b"AES_256_GCM_HKDF_SHA512_COMMIT_KEY" in result.stdout


# ---- streams, terminals, shared configuration ------------------------------------------------------


def test_a_large_stream_goes_through_in_bounded_memory(env, key):
    """256 MiB piped through `kmsim encrypt - -` into `kmsim decrypt - -`: both stream (neither holds the input),
    each stays far below the size it passes, and what comes out is what went in."""
    import hashlib

    import threading

    size = 256 * 1024 * 1024
    encrypt = subprocess.Popen([str(KMSIM_BIN), "encrypt", "--key", key, "-", "-"], env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    decrypt = subprocess.Popen([str(KMSIM_BIN), "decrypt", "--key", key, "-", "-"], env=env, stdin=encrypt.stdout,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    encrypt.stdout.close()
    sent = hashlib.sha256()

    def feed() -> None:
        for _ in range(size >> 20):
            chunk = os.urandom(1 << 20)
            sent.update(chunk)
            encrypt.stdin.write(chunk)
        encrypt.stdin.close()

    feeder = threading.Thread(target=feed)
    feeder.start()
    # Each process's high-water mark of resident memory since its exec (VmHWM; rusage would count the forked
    # Python before the exec), read as the stream flows.
    peaks = {"encrypt": 0, "decrypt": 0}

    def sample() -> None:
        for name, process in (("encrypt", encrypt), ("decrypt", decrypt)):
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                continue
            if found := re.search(r"^VmHWM:\s+(\d+) kB", status, re.M):
                peaks[name] = max(peaks[name], int(found.group(1)))

    digest, seen = hashlib.sha256(), 0
    while chunk := decrypt.stdout.read(1 << 20):
        digest.update(chunk)
        seen += len(chunk)
        sample()
    for process in (encrypt, decrypt):
        assert process.wait(timeout=60) == 0, process.stderr.read().decode(errors="replace")
    feeder.join()
    assert seen == size and digest.digest() == sent.digest()
    assert min(peaks.values()) > 0, peaks
    assert all(peak < 64 * 1024 for peak in peaks.values()), peaks  # the benchmark's bound (KiB), for any size


def test_a_progress_bar_on_a_terminal_only(env, key, tmp_path: Path):
    """Above 8 MiB, on a terminal's stderr, `kmsim encrypt` draws a bar and clears it; into a pipe it writes
    nothing to stderr."""
    import pty
    import select

    plain = tmp_path / "big.bin"
    plain.write_bytes(os.urandom(1024) * (256 * 1024))  # 256 MiB: long enough for several redraws
    controller, terminal = pty.openpty()
    process = subprocess.Popen([str(KMSIM_BIN), "encrypt", "--key", key, str(plain), str(tmp_path / "big.msg")],
                               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    drawn = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        assert ready, "no output and no end within 60 s"
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    text = drawn.decode(errors="replace")
    assert re.search(r"encrypting \[[#-]{30}\] +\d+%  [\d.]+ MiB / 256\.0 MiB  [\d.]+ [KMG]iB/s", text), text
    assert text.endswith("\r\x1b[K"), repr(text[-40:])  # the bar is cleared at the end
    piped = ok(kmsim_cli(env, "decrypt", "--key", key, str(tmp_path / "big.msg"), str(tmp_path / "big.out")))
    assert piped.stderr == b""
    assert (tmp_path / "big.out").stat().st_size == plain.stat().st_size


def test_credentials_region_and_endpoint_from_a_named_profile(env, kmsim, tmp_path: Path):
    """No AWS_* keys or region in the environment: AWS_PROFILE names a profile whose keys are in the shared
    credentials file and whose region and KMS endpoint are in the config file, as the aws CLI reads them."""
    import boto3

    region = "eu-west-3"
    regional = boto3.client("kms", region_name=region, endpoint_url=kmsim["endpoint"], aws_access_key_id="test",
                            aws_secret_access_key="test")
    arn = regional.create_key()["KeyMetadata"]["Arn"]
    alias = f"alias/profile-{uuid.uuid4().hex[:8]}"
    regional.create_alias(AliasName=alias, TargetKeyId=arn)
    credentials, config = tmp_path / "credentials", tmp_path / "config"
    credentials.write_text("[work]\naws_access_key_id = test\naws_secret_access_key = test\n")
    config.write_text(f"[profile work]\nregion = {region}\nendpoint_url = {kmsim['endpoint']}\n")
    profile_env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    profile_env.update(AWS_PROFILE="work", AWS_SHARED_CREDENTIALS_FILE=str(credentials),
                       AWS_CONFIG_FILE=str(config), AWS_EC2_METADATA_DISABLED="true")
    message = ok(kmsim_cli(profile_env, "encrypt", "--key", alias, "-", "-", input=b"from a profile")).stdout
    assert arn.encode() in message and f":{region}:".encode() in arn.encode()
    assert ok(kmsim_cli(profile_env, "decrypt", "-", "-", input=message)).stdout == b"from a profile"
    # Without the profile there are no credentials: the refusal says where they were looked for.
    del profile_env["AWS_PROFILE"]
    refused(kmsim_cli(profile_env, "encrypt", "--key", alias, "-", "-", input=b"x"), "credentials")


@pytest.mark.parametrize("signal_name, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_command_leaves_no_partial_file(env, key, tmp_path: Path, signal_name: str, status: int):
    """Ctrl-C or SIGTERM in the middle of a decrypt (or an encrypt) removes the temporary output: no plaintext of a
    message not yet authenticated whole stays on disk."""
    import signal
    import time

    source, encrypted = tmp_path / "source", tmp_path / "source.enc"
    source.write_bytes(os.urandom(3 << 20))
    ok(kmsim_cli(env, "encrypt", "--key", key, str(source), str(encrypted)))
    message = encrypted.read_bytes()
    for command, body, out in (("decrypt", message, tmp_path / "plain.out"), ("encrypt", source.read_bytes(),
                                                                             tmp_path / "again.enc")):
        process = subprocess.Popen([str(KMSIM_BIN), command, "--key", key, "-", str(out)], env=env,
                                   stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        process.stdin.write(body[: 2 << 20])  # most of it, and the input stays open
        process.stdin.flush()
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".kmsim-partial") and p.stat().st_size > 0 for p in tmp_path.iterdir()):
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.05)
        process.send_signal(getattr(signal, signal_name))
        assert process.wait(timeout=30) == status
        process.stdin.close()
        process.stderr.close()
        assert not out.exists()
        assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".kmsim-partial")]


def test_non_framed_messages_of_the_python_sdk_decrypt_and_a_hostile_region_is_not_called(env, key, tmp_path: Path):
    """What the Python SDK writes when told frame length 0 (non-framed content: one block), signed and unsigned,
    decrypts and inspects; a tampered block fails before any output; and a message naming a key ARN whose region is
    no region's name is not called."""
    plaintext = os.urandom(300 * KiB + 7)
    for algorithm in (Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384):
        message, _ = python_client().encrypt(source=plaintext, key_provider=python_provider(key), frame_length=0,
                                             algorithm=algorithm, encryption_context={"kind": "single"})
        (tmp_path / "single.msg").write_bytes(message)
        ok(kmsim_cli(env, "decrypt", "--key", key, "--context", "kind=single", str(tmp_path / "single.msg"),
                     str(tmp_path / "single.out")))
        assert (tmp_path / "single.out").read_bytes() == plaintext
        described = inspect(env, tmp_path / "single.msg")
        assert (described["content_type"], described["frame_length"], described["plaintext_length"]) == \
            ("non-framed", 0, len(plaintext))
        assert described["message_length"] == len(message)
        tampered = bytearray(message)
        tampered[len(message) // 2] ^= 1
        (tmp_path / "tampered.msg").write_bytes(bytes(tampered))
        refused(kmsim_cli(env, "decrypt", "--key", key, str(tmp_path / "tampered.msg"), str(tmp_path / "bad.out")),
                "authentication")
        assert not (tmp_path / "bad.out").exists()
    # The key ARN's region becomes the host name of the KMS call: a message cannot send it elsewhere.
    region = key.split(":")[3]
    ok(kmsim_cli(env, "encrypt", "--key", key, str(tmp_path / "single.msg"), str(tmp_path / "framed.msg")))
    hostile = (tmp_path / "framed.msg").read_bytes().replace(f":kms:{region}:".encode(),
                                                             f":kms:{'x@127.0.0.1/'[:len(region)]}:".encode())
    (tmp_path / "hostile.msg").write_bytes(hostile)
    refused(kmsim_cli(env, "decrypt", str(tmp_path / "hostile.msg"), str(tmp_path / "hostile.out")),
            "names no valid region")
