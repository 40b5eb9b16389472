"""The examples of docs/testing.md ("Testing with kmsim"), run as a reader copies them: the pytest file under
pytest with `kmsim` on PATH, the curl command in a shell, the `--faults` file at start, the `[quotas]` config,
the deterministic-runs script, the unittest suite and the CI step (the Rust example is a doc-test of `src/lib.rs`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import DEFAULT_ACCESS_KEY, DEFAULT_SECRET, KMSIM_BIN, REPO_ROOT

DOC = REPO_ROOT / "docs" / "testing.md"


def example(name: str) -> str:
    """The fenced block after `<!-- example: NAME -->`."""
    found = re.search(rf"<!-- example: {re.escape(name)} -->\n```[a-z]*\n(.*?)\n```", DOC.read_text(), re.S)
    assert found, f"docs/testing.md has no example {name!r}"
    return found.group(1)


def test_the_pytest_example(tmp_path: Path) -> None:
    (tmp_path / "test_with_kmsim.py").write_text(example("pytest"))
    env = dict(os.environ, PATH=f"{KMSIM_BIN.parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout


def test_the_curl_example(fresh_kmsim: Any) -> None:
    info = fresh_kmsim.info
    env = dict(os.environ, KMSIM_ENDPOINT=info["endpoint"], KMSIM_ADMIN_TOKEN=info["admin_token"])
    done = subprocess.run(["sh", "-c", example("curl")], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    [rule_id] = json.loads(done.stdout)["ids"]
    [rule] = fresh_kmsim.admin.faults()
    assert (rule["id"], rule["service"], rule["prefix"], rule["trigger"]) == (rule_id, "s3", "logs/",
                                                                              {"probability": 0.2})


def test_the_faults_file_example(start_kmsim: Any, tmp_path: Path) -> None:
    rules = tmp_path / "faults.json"
    rules.write_text(example("faults-file"))
    server = start_kmsim("--faults", str(rules))
    listed = server.admin.faults()
    assert [(r["service"], r["operation"], r["expired"]) for r in listed] == [
        ("kms", "GenerateDataKey", False), ("s3", "GetObject", False)]
    # What the text says it does: the third GenerateDataKey of alias/app times out, that call only.
    kms = server.client()
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/app", TargetKeyId=key)
    outcomes = []
    for _ in range(5):
        try:
            kms.generate_data_key(KeyId="alias/app", KeySpec="AES_256")
            outcomes.append("ok")
        except ClientError as e:
            outcomes.append(e.response["Error"]["Code"])
    assert outcomes == ["ok", "ok", "DependencyTimeoutException", "ok", "ok"]
    s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name=server.info["region"],
                      aws_access_key_id=DEFAULT_ACCESS_KEY, aws_secret_access_key=DEFAULT_SECRET,
                      config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="slow")
    s3.put_object(Bucket="slow", Key="a", Body=b"a")
    started = time.monotonic()
    assert s3.get_object(Bucket="slow", Key="a")["Body"].read() == b"a"
    assert time.monotonic() - started >= 0.05


def test_the_unittest_example(tmp_path: Path) -> None:
    (tmp_path / "test_keys.py").write_text(example("unittest"))
    env = dict(os.environ, PATH=f"{KMSIM_BIN.parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([sys.executable, "-m", "unittest", "-v"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ran 2 tests" in done.stderr and "OK" in done.stderr, done.stderr


def test_the_ci_example(tmp_path: Path) -> None:
    path = os.pathsep.join([str(KMSIM_BIN.parent), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PATH=path, HOME=str(tmp_path))
    done = subprocess.run(["bash", "-ec", example("ci")], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n", done.stdout), done.stdout
    assert json.loads((tmp_path / "kmsim.json").read_text())["endpoint"].startswith("http://127.0.0.1:")


def test_the_quotas_config_example(start_kmsim: Any) -> None:
    server = start_kmsim(config=example("quotas-config"))
    assert server.info["quotas"] == "aws"
    kms = server.client()
    kms.create_key()
    with pytest.raises(ClientError) as refusal:
        kms.create_key()  # CreateKey = 1: one call per second
    assert refusal.value.response["Error"]["Code"] == "ThrottlingException"


def test_the_deterministic_example(tmp_path: Path) -> None:
    script = tmp_path / "deterministic_example.py"
    script.write_text(example("deterministic"))
    env = dict(os.environ, PATH=f"{KMSIM_BIN.parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FOR TESTS ONLY" in done.stdout, done.stdout


def test_the_state_cli_example(start_kmsim: Any, tmp_path: Path) -> None:
    fixture = start_kmsim("--data-dir", str(tmp_path / "fixture-data"))
    blob = fixture.client().encrypt(KeyId=fixture.client().create_key()["KeyMetadata"]["KeyId"],
                                    Plaintext=b"fixture")["CiphertextBlob"]
    assert fixture.stop() == 0
    env = dict(os.environ, PATH=f"{KMSIM_BIN.parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("KMSIM_STATE_PASSPHRASE", None)
    done = subprocess.run(["sh", "-ec", example("state-cli")], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    exported, imported = (json.loads(line) for line in done.stdout.splitlines())
    assert exported["exported"]["state"]["keys"] == imported["imported"]["state"]["keys"] == 1
    run = start_kmsim("--data-dir", str(tmp_path / "run-data"))
    assert run.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"fixture"


def test_the_state_http_example(start_kmsim: Any, tmp_path: Path) -> None:
    source, fresh = start_kmsim("--in-memory"), start_kmsim("--in-memory")
    blob = source.client().encrypt(KeyId=source.client().create_key()["KeyMetadata"]["KeyId"],
                                   Plaintext=b"fixture")["CiphertextBlob"]
    env = dict(os.environ, KMSIM_ENDPOINT=source.endpoint, KMSIM_ADMIN_TOKEN=source.info["admin_token"],
               FRESH_ENDPOINT=fresh.endpoint, FRESH_ADMIN_TOKEN=fresh.info["admin_token"],
               KMSIM_STATE_PASSPHRASE="a passphrase for the fixture")
    done = subprocess.run(["sh", "-ec", example("state-http")], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["imported"]["keys"] == 1
    assert fresh.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"fixture"


def test_the_state_start_example(start_kmsim: Any, tmp_path: Path) -> None:
    import signal

    source = start_kmsim("--in-memory")
    blob = source.client().encrypt(KeyId=source.client().create_key()["KeyMetadata"]["KeyId"],
                                   Plaintext=b"fixture")["CiphertextBlob"]
    exported = requests.get(f"{source.endpoint}/_sim/state", timeout=120, headers={
        "Authorization": f"Bearer {source.info['admin_token']}",
        "X-Kmsim-State-Passphrase": "a passphrase for the fixture"})
    assert exported.status_code == 200, exported.text
    (tmp_path / "fixture.kmsim").write_bytes(exported.content)
    env = dict(os.environ, PATH=f"{KMSIM_BIN.parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("KMSIM_STATE_PASSPHRASE", None)
    server = subprocess.Popen(["sh", "-c", example("state-start")], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        info = json.loads(server.stdout.readline())
        assert info["imported"]["keys"] == 1, info
        kms = boto3.client("kms", endpoint_url=info["endpoint"], region_name=info["region"],
                           aws_access_key_id=DEFAULT_ACCESS_KEY, aws_secret_access_key=DEFAULT_SECRET)
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"fixture"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
