"""Fixtures for the Python client tests of kmsim's AWS KMS and S3 APIs.

Every server is the real ``kmsim`` binary (``$KMSIM_BIN``, default ``<repo>/target/debug/kmsim``)
started with ``--port 0``: it binds an ephemeral port and prints one JSON line on stdout
(endpoint, region, account, credentials). Reading that line is the readiness signal — no fixed
ports, no sleeps. Servers are stopped with SIGTERM (graceful) at the end of their scope.

Fixtures:

* ``kmsim`` (session): the JSON line of a shared ``--in-memory`` server, as a dict.
* ``kms`` (session): a boto3 KMS client for it (test/test, us-east-1, no retries).
* ``admin`` (session): :class:`SimAdmin` for its ``/_sim/`` admin API.
* ``aws_cli`` (session): runs ``python -m awscli --endpoint-url ... kms <args> --output json``.
* ``start_kmsim`` (function): starts further servers (own config, ``--data-dir``, ...), stopped
  after the test; ``fresh_kmsim`` is one fresh in-memory server (for tests that move the clock).
* ``kmsim_data_dir`` (function): a server on a temporary ``--data-dir`` that can be restarted.
* ``client_for``: a boto3 KMS client for any server, credentials and region.
* ``raw_kms``: sends hand-built (optionally SigV4-signed) requests, for what boto3 cannot send.
* ``s3`` (session): a boto3 S3 client (path style) for the shared server; ``s3_for`` makes one for
  any server, credentials, region and addressing style.
* ``raw_s3`` (session): hand-built SigV4-signed S3 requests (any header, own Host header), whose
  bodies are read as far as they come.
* ``aws_s3_cli`` (session): runs ``python -m awscli --endpoint-url ... <s3|s3api> <args>``.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from browsers import launch

REPO_ROOT = Path(__file__).resolve().parents[2]
KMSIM_BIN = Path(os.environ.get("KMSIM_BIN", str(REPO_ROOT / "target" / "debug" / "kmsim")))
# Only a guard against a server that never comes up; normal start is a few milliseconds.
STARTUP_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
DEFAULT_ACCESS_KEY = "test"
DEFAULT_SECRET = "test"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "000000000000"

# No retries anywhere: a retried request would hide errors and slow failing tests down.
BOTO_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=30)


# ---- the kmsim process ---------------------------------------------------------------------------


class KmsimProcess:
    """One running ``kmsim`` binary."""

    def __init__(self, args: list[str], workdir: Path) -> None:
        if not KMSIM_BIN.is_file():
            pytest.fail(f"kmsim binary not found at {KMSIM_BIN}: run `cargo build` first or set KMSIM_BIN")
        self.args = list(args)
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        fd, stderr_path = tempfile.mkstemp(prefix="kmsim-stderr-", suffix=".log", dir=workdir)
        os.close(fd)
        self.stderr_path = Path(stderr_path)
        # stderr goes to a file: an unread pipe could fill up and block the server.
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [str(KMSIM_BIN), "--port", "0", "--log", "info", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=workdir,
            )
        self.info: dict[str, Any] = self._read_ready_line()
        self.endpoint: str = self.info["endpoint"]
        self.admin = SimAdmin(self.endpoint, self.info["admin_token"])
        # Keep draining stdout so that later output can never block the server.
        threading.Thread(target=self._drain, daemon=True).start()

    def _read_ready_line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], STARTUP_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"kmsim {' '.join(self.args)} did not start (exit {self.proc.returncode}):\n{self.stderr()}")
        try:
            info = json.loads(line)
        except json.JSONDecodeError:
            self.proc.kill()
            pytest.fail(f"kmsim's first stdout line is not JSON: {line!r}\n{self.stderr()}")
        for field in ("endpoint", "region", "account_id", "access_key_ids", "admin_token"):
            assert field in info, f"startup line lacks {field}: {info}"
        return info

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _ in iter(self.proc.stdout.readline, b""):
            pass

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> int:
        """Stops the server gracefully (SIGTERM) and returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, for durability tests."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def client(self, access_key: str = DEFAULT_ACCESS_KEY, secret: str = DEFAULT_SECRET, region: str | None = None):
        return make_kms_client(self.endpoint, access_key, secret, region or self.info["region"])


def make_kms_client(endpoint: str, access_key: str = DEFAULT_ACCESS_KEY, secret: str = DEFAULT_SECRET,
                    region: str = DEFAULT_REGION):
    """A boto3 KMS client for a kmsim endpoint, independent of any ~/.aws configuration."""
    session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret, region_name=region)
    return session.client("kms", endpoint_url=endpoint, config=BOTO_CONFIG)


def huawei_kms_client(endpoint: str, project_id: str, access_key: str = DEFAULT_ACCESS_KEY,
                      secret: str = DEFAULT_SECRET):
    """A Huawei SDK KMS client for a kmsim endpoint: plain http, no IAM lookup (the project id is given)."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkkms.v2 import KmsClient

    return (KmsClient.new_builder()
            .with_credentials(BasicCredentials(access_key, secret, project_id))
            .with_endpoints([endpoint])
            .build())


def expect_otc_error(code: str, call: Callable[[Any], Any], request: Any, status: int = 400):
    """Calls ``call(request)`` and asserts that the Huawei SDK raises ``ClientRequestException`` with
    ``status`` and the error ``code`` (and a message); returns the exception."""
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

    with pytest.raises(ClientRequestException) as info:
        call(request)
    error = info.value
    assert (error.status_code, error.error_code) == (status, code), str(error)
    assert error.error_msg, str(error)
    return error


def unique(prefix: str) -> str:
    """A name no other test uses: ``prefix`` and 12 random hex digits."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---- the admin API -------------------------------------------------------------------------------


class SimAdmin:
    """Client of kmsim's admin API under ``/_sim/``, authenticated with the admin token that the
    server printed in its startup line."""

    def __init__(self, endpoint: str, token: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.endpoint + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status in (200, 201, 204), f"{method} {path}: HTTP {response.status}"
            body = response.read()
            return json.loads(body) if body else {}

    def audit(self, **filters: Any) -> list[dict]:
        """Audit events, oldest first. Filters: operation, key, account, access_key, via_service,
        outcome, since_millis, limit."""
        query = urllib.parse.urlencode({k: v for k, v in filters.items() if v is not None})
        return self._call("GET", "/_sim/audit" + (f"?{query}" if query else ""))["events"]

    def clock(self) -> dict:
        return self._call("GET", "/_sim/clock")

    def advance_clock(self, days: int = 0, seconds: int = 0) -> dict:
        """Moves the simulated clock forward and runs the key sweep (purges, rotations) at once."""
        return self._call("POST", "/_sim/clock", {"advance_days": days, "advance_seconds": seconds})

    def reset(self, confirm: str | None = None) -> dict:
        """Resets every service; a server with a data dir wants ``confirm="delete-everything"``."""
        return self._call("POST", "/_sim/reset", {} if confirm is None else {"confirm": confirm})

    def health(self) -> dict:
        return self._call("GET", "/_sim/health")

    def add_fault(self, rule: dict) -> int:
        """Adds a fault rule (docs/testing.md); answers its id."""
        [rule_id] = self._call("POST", "/_sim/faults", rule)["ids"]
        return rule_id

    def faults(self) -> list[dict]:
        """Every fault rule with its counters (matched, fired, expired)."""
        return self._call("GET", "/_sim/faults")["rules"]

    def delete_fault(self, rule_id: int) -> None:
        self._call("DELETE", f"/_sim/faults/{rule_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sim/faults")


# ---- raw requests --------------------------------------------------------------------------------


def http_get(url: str) -> tuple[int, bytes]:
    """A plain GET of ``url`` (a presigned URL, say), as a browser or curl sends it: status and body,
    errors included."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawKms:
    """Hand-built KMS requests (unknown operations, malformed bodies, unsigned requests)."""

    def __init__(self, endpoint: str, region: str = DEFAULT_REGION) -> None:
        self.endpoint = endpoint.rstrip("/") + "/"
        self.region = region

    def send(self, target: str, body: bytes | str | dict, *, sign: bool = True,
             access_key: str = DEFAULT_ACCESS_KEY, secret: str = DEFAULT_SECRET,
             extra_headers: dict[str, str] | None = None) -> RawResponse:
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target, **(extra_headers or {})}
        request = AWSRequest(method="POST", url=self.endpoint, data=body, headers=headers)
        if sign:
            SigV4Auth(Credentials(access_key, secret), "kms", self.region).add_auth(request)
        prepared = request.prepare()
        http_request = urllib.request.Request(prepared.url, data=body, method="POST")
        for name, value in prepared.headers.items():
            http_request.add_header(name, value if isinstance(value, str) else value.decode())
        try:
            with urllib.request.urlopen(http_request, timeout=30) as response:
                return RawResponse(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return RawResponse(error.code, dict(error.headers), error.read())


# ---- the aws CLI ---------------------------------------------------------------------------------


class AwsCli:
    """Runs the aws CLI (v1, ``python -m awscli``) against one endpoint.

    ``aws_cli("create-key", "--description", "x")`` returns ``(returncode, payload)``: on success
    the parsed JSON output (None when the command prints nothing; the raw stdout when ``--output``
    was given explicitly as something other than json), on failure stderr.
    """

    def __init__(self, endpoint: str, access_key: str = DEFAULT_ACCESS_KEY, secret: str = DEFAULT_SECRET,
                 region: str = DEFAULT_REGION, workdir: Path | None = None) -> None:
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret = secret
        self.region = region
        self.workdir = workdir or Path(tempfile.gettempdir())

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret,
            AWS_DEFAULT_REGION=self.region,
            # Never read the developer's own AWS configuration.
            AWS_CONFIG_FILE=str(self.workdir / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(self.workdir / "no-aws-credentials"),
            AWS_EC2_METADATA_DISABLED="true",
            AWS_MAX_ATTEMPTS="1",
            AWS_RETRY_MODE="standard",
        )
        env.update(overrides)
        return env

    def run_raw(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "awscli", "--endpoint-url", self.endpoint, "kms", *args]
        if "--output" not in args:
            argv += ["--output", "json"]
        return subprocess.run(argv, capture_output=True, text=True, env=env or self.env(), timeout=120,
                              cwd=self.workdir)

    def __call__(self, *args: str, **env_overrides: str) -> tuple[int, Any]:
        done = self.run_raw(*args, env=self.env(**env_overrides))
        if done.returncode != 0:
            return done.returncode, done.stderr
        explicit_output = "--output" in args and args[args.index("--output") + 1] != "json"
        if explicit_output:
            return 0, done.stdout
        return 0, json.loads(done.stdout) if done.stdout.strip() else None


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kmsim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmsimProcess]:
    """The shared in-memory server process."""
    server = KmsimProcess(["--in-memory"], tmp_path_factory.mktemp("kmsim-session"))
    yield server
    status = server.stop()
    assert status == 0, f"kmsim exited with {status} on SIGTERM:\n{server.stderr()}"


@pytest.fixture(scope="session")
def kmsim(kmsim_process: KmsimProcess) -> dict[str, Any]:
    """The startup JSON line of the shared in-memory server."""
    return kmsim_process.info


@pytest.fixture(scope="session")
def kms(kmsim: dict[str, Any]):
    """boto3 KMS client for the shared server (default account 000000000000, test/test)."""
    return make_kms_client(kmsim["endpoint"], kmsim["access_key_id"], kmsim["secret_access_key"], kmsim["region"])


@pytest.fixture(scope="session")
def admin(kmsim: dict[str, Any]) -> SimAdmin:
    return SimAdmin(kmsim["endpoint"], kmsim["admin_token"])


@pytest.fixture(scope="session")
def raw_kms(kmsim: dict[str, Any]) -> RawKms:
    return RawKms(kmsim["endpoint"], kmsim["region"])


@pytest.fixture(scope="session")
def aws_cli(kmsim: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> AwsCli:
    return AwsCli(kmsim["endpoint"], kmsim["access_key_id"], kmsim["secret_access_key"], kmsim["region"],
                  workdir=tmp_path_factory.mktemp("aws-cli"))


@pytest.fixture
def client_for() -> Callable[..., Any]:
    """``client_for(server_or_endpoint, access_key=..., secret=..., region=...)``."""

    def make(target: KmsimProcess | dict | str, access_key: str = DEFAULT_ACCESS_KEY, secret: str = DEFAULT_SECRET,
             region: str = DEFAULT_REGION):
        if isinstance(target, KmsimProcess):
            endpoint = target.endpoint
        elif isinstance(target, dict):
            endpoint = target["endpoint"]
        else:
            endpoint = target
        return make_kms_client(endpoint, access_key, secret, region)

    return make


@pytest.fixture
def start_kmsim(tmp_path: Path) -> Iterator[Callable[..., KmsimProcess]]:
    """``start_kmsim(*args, config=None)`` starts a server of its own (in memory unless
    ``--data-dir`` is among ``args``); ``config`` is TOML text written to a file and passed
    with ``--config``. Every server started is stopped after the test."""
    started: list[KmsimProcess] = []
    count = 0

    def start(*args: str, config: str | None = None) -> KmsimProcess:
        nonlocal count
        count += 1
        argv = list(args)
        if config is not None:
            path = tmp_path / f"kmsim-{count}.toml"
            path.write_text(config)
            argv += ["--config", str(path)]
        if "--data-dir" not in argv and "--in-memory" not in argv:
            argv.append("--in-memory")
        server = KmsimProcess(argv, tmp_path / f"server-{count}")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def fresh_kmsim(start_kmsim: Callable[..., KmsimProcess]) -> KmsimProcess:
    """A fresh in-memory server of its own, for tests that move its clock."""
    return start_kmsim()


class DataDirServer:
    """A server on a data dir that outlives restarts."""

    def __init__(self, start: Callable[..., KmsimProcess], data_dir: Path, config: str | None = None) -> None:
        self._start = start
        self.data_dir = data_dir
        self.config = config
        self.process = self._start("--data-dir", str(data_dir), config=config)

    @property
    def endpoint(self) -> str:
        return self.process.endpoint

    def client(self, **kwargs: Any):
        return self.process.client(**kwargs)

    def restart(self, *, crash: bool = False) -> int | None:
        """Stops (SIGTERM, or SIGKILL with ``crash``) and starts again on the same data dir;
        returns the exit status of the graceful stop."""
        status = None
        if crash:
            self.process.kill()
        else:
            status = self.process.stop()
        self.process = self._start("--data-dir", str(self.data_dir), config=self.config)
        return status


@pytest.fixture
def kmsim_data_dir(start_kmsim: Callable[..., KmsimProcess], tmp_path: Path) -> Callable[..., DataDirServer]:
    """``kmsim_data_dir(config=None)``: a server on a fresh ``--data-dir``, with ``.restart()``."""

    def start(config: str | None = None) -> DataDirServer:
        return DataDirServer(start_kmsim, tmp_path / "data", config)

    return start


# ---- S3 (the object store on the same endpoint) --------------------------------------------------


def make_s3_client(endpoint: str, access_key: str = DEFAULT_ACCESS_KEY, secret: str = DEFAULT_SECRET,
                   region: str = DEFAULT_REGION, addressing_style: str = "path",
                   fresh_connection_after_error: bool = False, **config: Any):
    """A boto3 S3 client for a kmsim endpoint (path style unless ``addressing_style="virtual"``),
    independent of any ~/.aws configuration and without retries.

    ``fresh_connection_after_error``: after an error response the client drops its pooled
    connections (off by default: kmsim says ``Connection: close`` when it answers before reading a
    body, which ``test_s3_boto3.py::test_connection_after_early_error`` checks).
    """
    session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret, region_name=region)
    s3_config = BOTO_CONFIG.merge(Config(s3={"addressing_style": addressing_style}, **config))
    client = session.client("s3", endpoint_url=endpoint, config=s3_config)
    if fresh_connection_after_error:
        http_session = client._endpoint.http_session

        def forget_connections(http_response: Any = None, **_: Any) -> None:
            if http_response is not None and http_response.status_code >= 400:
                http_session.close()

        client.meta.events.register("after-call.s3", forget_connections)
    return client


@dataclass
class RawS3Response:
    status: int
    headers: dict[str, str]
    body: bytes
    #: False when the connection ended before Content-Length bytes arrived (a cut-off body), or
    #: before any response (then ``status`` is 0).
    complete: bool = True


class RawS3:
    """Hand-built S3 requests over ``http.client``: any header (SSE headers on a GET, a Host header
    of its own for virtual-host style), bodies boto3 would not send, and bodies read as far as they
    come (a cut-off body is reported, not raised)."""

    def __init__(self, endpoint: str, region: str = DEFAULT_REGION) -> None:
        parsed = urllib.parse.urlsplit(endpoint)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.region = region

    def send(self, method: str, path: str, *, query: str = "", body: bytes = b"",
             headers: dict[str, str] | None = None, sign: bool = True, host: str | None = None,
             access_key: str = DEFAULT_ACCESS_KEY, secret: str = DEFAULT_SECRET,
             sent_body: bytes | None = None, timeout: float = 30) -> RawS3Response:
        """Sends one request; ``body`` is what is signed and, unless ``sent_body`` is given, sent."""
        host_header = host or f"{self.host}:{self.port}"
        target = path + (f"?{query}" if query else "")
        request = AWSRequest(method=method, url=f"http://{host_header}{target}", data=body,
                             headers=dict(headers or {}))
        if sign:
            S3SigV4Auth(Credentials(access_key, secret), "s3", self.region).add_auth(request)
        prepared = {k: (v if isinstance(v, str) else v.decode()) for k, v in request.headers.items()}
        prepared["Host"] = host_header
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, target, body=body if sent_body is None else sent_body, headers=prepared)
            try:
                response = connection.getresponse()
            except (ConnectionError, http.client.HTTPException):
                # The server closed the connection without a status line: status 0, nothing read.
                return RawS3Response(0, {}, b"", complete=False)
            complete = True
            try:
                data = response.read()
            except http.client.IncompleteRead as cut:
                data, complete = cut.partial, False
            except (ConnectionError, http.client.HTTPException):
                data, complete = b"", False
            return RawS3Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data, complete)
        finally:
            connection.close()


class AwsS3Cli(AwsCli):
    """The aws CLI for S3: ``aws_s3_cli("s3", "cp", src, dst)`` or ``aws_s3_cli("s3api", ...)``.

    Returns the ``subprocess.CompletedProcess`` (text mode): ``returncode``, ``stdout``, ``stderr``.
    """

    def run_raw(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "awscli", "--endpoint-url", self.endpoint, *args]
        return subprocess.run(argv, capture_output=True, text=True, env=env or self.env(), timeout=120,
                              cwd=self.workdir)

    def __call__(self, *args: str, **env_overrides: str) -> subprocess.CompletedProcess:  # type: ignore[override]
        return self.run_raw(*args, env=self.env(**env_overrides))


@pytest.fixture(scope="session")
def s3(kmsim: dict[str, Any]):
    """boto3 S3 client (path style) for the shared server, default account, test/test."""
    return make_s3_client(kmsim["endpoint"], kmsim["access_key_id"], kmsim["secret_access_key"], kmsim["region"])


@pytest.fixture
def s3_bucket(s3) -> str:
    """A new bucket of the shared server's default account."""
    name = f"b-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_for() -> Callable[..., Any]:
    """``s3_for(server_or_endpoint, access_key=..., secret=..., region=..., addressing_style="path")``."""

    def make(target: KmsimProcess | dict | str, access_key: str = DEFAULT_ACCESS_KEY, secret: str = DEFAULT_SECRET,
             region: str = DEFAULT_REGION, addressing_style: str = "path", **config: Any):
        if isinstance(target, KmsimProcess):
            endpoint = target.endpoint
        elif isinstance(target, dict):
            endpoint = target["endpoint"]
        else:
            endpoint = target
        return make_s3_client(endpoint, access_key, secret, region, addressing_style=addressing_style, **config)

    return make


@pytest.fixture(scope="session")
def raw_s3(kmsim: dict[str, Any]) -> RawS3:
    return RawS3(kmsim["endpoint"], kmsim["region"])


@pytest.fixture(scope="session")
def aws_s3_cli(kmsim: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> AwsS3Cli:
    """Runs ``python -m awscli --endpoint-url <shared server> <args>`` (``s3`` or ``s3api``)."""
    return AwsS3Cli(kmsim["endpoint"], kmsim["access_key_id"], kmsim["secret_access_key"], kmsim["region"],
                    workdir=tmp_path_factory.mktemp("aws-s3-cli"))


@pytest.fixture(scope="module")
def localhost_subdomains() -> Iterator[None]:
    """Resolves ``*.localhost`` to 127.0.0.1 (RFC 6761), which this machine's resolver does not, for clients
    that address buckets as virtual hosts (esdk-obs-python on a hostname endpoint)."""
    original = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    yield
    socket.getaddrinfo = original


# ---- a browser (Debian's chromium, driven by Playwright for Python; browsers.py has Firefox too) ----


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian's package (no browser download), one per test module: Playwright's Browser."""
    with launch("chromium") as chromium:
        yield chromium.driver
