"""What the Python benchmark scripts share: building release binaries, servers on free ports, CPU and memory readings
from /proc, and the JSON-lines results file. Imported by scripts/bench-wrk and scripts/bench-puts."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
NOFILE = 65536
NAME = Path(sys.argv[0]).name


def log(message: str) -> None:
    print(f"[{NAME}] {message}", file=sys.stderr, flush=True)


def fail(message: str) -> None:
    sys.exit(f"{NAME}: {message}")


def raise_file_limit() -> None:
    """Lets this process and its children (servers, load clients) hold 10,000 connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def build(work: Path, benches: list[str]) -> dict[str, Path]:
    """Release builds of kmsim and the named bench targets, copied into `work` so that a concurrent build cannot swap
    them mid-run; by name ("kmsim" and each bench)."""
    log(f"building kmsim and {', '.join(benches)} (release)")
    subprocess.run(["cargo", "build", "--release", "--bin", "kmsim"], cwd=ROOT, check=True)
    argv = ["cargo", "bench", "--no-run", "--message-format=json"]
    for bench in benches:
        argv += ["--bench", bench]
    out = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    exes = {}
    for line in out.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("reason") == "compiler-artifact" and message.get("executable"):
            exes[message["target"]["name"]] = message["executable"]
    copies = {}
    for name in benches:
        if name not in exes:
            fail(f"no {name} executable")
        shutil.copy(exes[name], work / name)
        copies[name] = work / name
    shutil.copy(ROOT / "target/release/kmsim", work / "kmsim")
    copies["kmsim"] = work / "kmsim"
    return copies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server under test, started on a free port: `endpoint` is given, or read from the JSON line kmsim prints
    first."""

    def __init__(self, name: str, argv: list[str], endpoint: str | None, work: Path) -> None:
        self.name = name
        self.out = open(work / f"{name}.out", "w+")
        self.err = open(work / f"{name}.err", "w+")
        self.process = subprocess.Popen(argv, stdout=self.out, stderr=self.err, start_new_session=True)
        self.endpoint = endpoint or self._endpoint_from_json_line()
        self._wait_until_serving()

    def _endpoint_from_json_line(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.out.seek(0)
            line = self.out.readline()
            if line.endswith("\n"):
                return json.loads(line)["endpoint"]
            self._check_alive()
            time.sleep(0.05)
        fail(f"{self.name} printed no endpoint in 30 s")

    def _wait_until_serving(self) -> None:
        host, port = self.endpoint.removeprefix("http://").split(":")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        fail(f"{self.name} does not accept connections")

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            self.err.seek(0)
            fail(f"{self.name} exited: {self.err.read()[-2000:]}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mib(self) -> tuple[float, float]:
        """Current and peak resident memory, in MiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = lambda field: int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))  # noqa: E731
        return kib("VmRSS") / 1024, kib("VmHWM") / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class Results:
    """The raw results, one JSON object per line."""

    def __init__(self, path: Path, shown: tuple[str, ...]) -> None:
        self.path = path
        self.shown = shown
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def record(self, result: dict) -> dict:
        with self.path.open("a") as f:
            f.write(json.dumps(result) + "\n")
        log(json.dumps({k: result.get(k) for k in self.shown}))
        return result


def median(results: list[dict], key: str) -> float:
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
