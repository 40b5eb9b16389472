"""kmsim's EVS block volumes through Huawei's own Python SDKs, with real block clients on the NBD data plane.

The volume API is driven by ``huaweicloudsdkevs`` (``EvsClient``), attach and detach by ``huaweicloudsdkecs``
(``EcsClient``), keys by ``huaweicloudsdkkms`` and boto3; requests the SDKs have no method for (the v2 and v3
create paths, Cinder's volume metadata, malformed bodies, a wrong project or signature) are signed with the SDK's
own ``Signer`` and sent with ``requests``. Data goes through ``qemu-io``, ``qemu-img`` and ``nbdinfo`` over NBD; the
at-rest oracle opens a volume file directly with qemu's LUKS driver and ``cryptsetup luksDump``.

All tests share one server on a ``--data-dir`` (the at-rest test reads its files) and make volumes and keys of
their own. Volumes are 10 GiB (the smallest data disk) and sparse, so they cost next to nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkecs.v2 import (
    AttachServerVolumeOption,
    AttachServerVolumeRequest,
    AttachServerVolumeRequestBody,
    DetachServerVolumeRequest,
    EcsClient,
    ListServerVolumeAttachmentsRequest,
)
from huaweicloudsdkecs.v2 import ShowJobRequest as EcsShowJobRequest
from huaweicloudsdkevs.v2 import (
    CreateSnapshotOption,
    CreateSnapshotRequest,
    CreateSnapshotRequestBody,
    CreateVolumeOption,
    CreateVolumeRequest,
    CreateVolumeRequestBody,
    DeleteSnapshotRequest,
    DeleteVolumeRequest,
    EvsClient,
    ListSnapshotsRequest,
    ListVolumesRequest,
    OsExtend,
    ResizeVolumeRequest,
    ResizeVolumeRequestBody,
    RollbackSnapshotOption,
    RollbackSnapshotRequest,
    RollbackSnapshotRequestBody,
    ShowJobRequest,
    ShowSnapshotRequest,
    ShowVolumeRequest,
    UpdateSnapshotOption,
    UpdateSnapshotRequest,
    UpdateSnapshotRequestBody,
    UpdateVolumeOption,
    UpdateVolumeRequest,
    UpdateVolumeRequestBody,
)
from huaweicloudsdkkms.v2 import (
    CreateKeyRequest,
    CreateKeyRequestBody,
    DisableKeyRequest,
    EnableKeyRequest,
    KmsClient,
    ListGrantsRequest,
    ListGrantsRequestBody,
    ListKeyDetailRequest,
    OperateKeyRequestBody,
)

from conftest import DEFAULT_ACCESS_KEY, DEFAULT_SECRET, KmsimProcess, make_kms_client, unique

GIB = 1 << 30
MIB = 1 << 20
AZ = "eu-de-01"
JOB_TIMEOUT_S = 30


# ---- helpers -------------------------------------------------------------------------------------


def expect_error(status: int, code: str, call: Callable[..., Any], *args: Any) -> ClientRequestException:
    """``call(*args)`` raises ``ClientRequestException`` with ``status`` and ``code`` and the server's request id."""
    with pytest.raises(ClientRequestException) as info:
        call(*args)
    error = info.value
    assert (error.status_code, error.error_code) == (status, code), str(error)
    assert error.error_msg, str(error)
    assert error.request_id, str(error)
    return error


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)


def qemu_io(url: str, *commands: str) -> subprocess.CompletedProcess:
    """``qemu-io -f raw -c <command> ... <url>``."""
    argv = ["qemu-io", "-f", "raw"]
    for command in commands:
        argv += ["-c", command]
    return run(*argv, url)


def assert_io_ok(done: subprocess.CompletedProcess) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Pattern verification failed" not in output, output
    assert "failed" not in output.lower(), output


def nbd_json_url(nbd: str, export: str, size: int) -> str:
    """A qemu ``json:`` filename: the first ``size`` bytes of an NBD export (so that converting out of a 10 GiB
    volume reads only what the test wrote)."""
    parsed = urllib.parse.urlsplit(nbd)
    spec = {"driver": "raw", "size": size,
            "file": {"driver": "nbd", "server": {"type": "inet", "host": parsed.hostname, "port": str(parsed.port)},
                     "export": export}}
    return "json:" + json.dumps(spec)


def data_extents(path: Path) -> Iterator[tuple[int, int]]:
    """The (offset, length) of the data (non-hole) ranges of a sparse file."""
    with open(path, "rb") as file:
        fd = file.fileno()
        end = os.fstat(fd).st_size
        offset = 0
        while offset < end:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:
                return
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            yield start, stop - start
            offset = stop


def file_contains(path: Path, needle: bytes) -> bool:
    """Whether ``needle`` occurs in the data of ``path`` (holes read as zeros and are skipped)."""
    with open(path, "rb") as file:
        for start, length in data_extents(path):
            file.seek(max(0, start - len(needle)))
            remaining = length + min(start, len(needle))
            carry = b""
            while remaining > 0:
                chunk = file.read(min(remaining, 8 * MIB))
                if not chunk:
                    break
                remaining -= len(chunk)
                if needle in carry + chunk:
                    return True
                carry = chunk[-len(needle):]
    return False


@dataclass
class RawResponse:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> tuple[int, str]:
        error = self.json()["error"]
        assert error["message"], self.body
        assert self.headers.get("x-request-id"), self.headers
        return self.status, error["code"]


class RawEvs:
    """Hand-built EVS / ECS requests, signed with the SDK's own ``Signer``."""

    def __init__(self, endpoint: str, project_id: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.host = urllib.parse.urlsplit(endpoint).netloc
        self.project_id = project_id

    def send(self, method: str, path: str, body: bytes | dict | None = None, *, query: list | None = None,
             project_id: str | None = None, path_project: str | None = None,
             secret: str = DEFAULT_SECRET) -> RawResponse:
        """``path`` is relative to ``/{version}/{project}``: e.g. ``send("GET", "/v2/{p}/cloudvolumes/detail")``."""
        project_id = project_id or self.project_id
        resource = path.replace("{p}", path_project or project_id)
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        headers = {"X-Project-Id": project_id}
        headers["Content-Type"] = "application/json;charset=utf-8" if body else "application/json"
        request = SdkRequest(method=method, schema="http", host=self.host, resource_path=resource,
                             query_params=query or [], header_params=headers, body=body or b"")
        Signer(BasicCredentials(DEFAULT_ACCESS_KEY, secret, project_id)).sign(request)
        response = requests.request(method, self.endpoint + request.uri, headers=request.header_params,
                                    data=request.body, timeout=30)
        return RawResponse(response.status_code, response.content, {k.lower(): v for k, v in response.headers.items()})


class Env:
    """The shared server and its clients."""

    def __init__(self, server: KmsimProcess, data_dir: Path) -> None:
        info = server.info
        self.server = server
        self.data_dir = data_dir
        self.endpoint: str = info["endpoint"]
        self.nbd: str = info["nbd"]
        self.project: str = info["project_id"]
        credentials = lambda: BasicCredentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET, self.project)  # noqa: E731
        self.evs = EvsClient.new_builder().with_credentials(credentials()).with_endpoints([self.endpoint]).build()
        self.ecs = EcsClient.new_builder().with_credentials(credentials()).with_endpoints([self.endpoint]).build()
        self.kms = KmsClient.new_builder().with_credentials(credentials()).with_endpoints([self.endpoint]).build()
        self.boto_kms = make_kms_client(self.endpoint, region=info["region"])
        self.raw = RawEvs(self.endpoint, self.project)

    # -- keys

    def create_key(self) -> str:
        created = self.kms.create_key(CreateKeyRequest(body=CreateKeyRequestBody(key_alias=unique("evs"))))
        return created.key_info.key_id

    # -- jobs

    def wait_job(self, job_id: str, ecs: bool = False) -> tuple[Any, list[str]]:
        """Polls a job until it ends; returns the last answer and every status seen."""
        seen: list[str] = []
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            job = (self.ecs.show_job(EcsShowJobRequest(job_id=job_id)) if ecs
                   else self.evs.show_job(ShowJobRequest(job_id=job_id)))
            if not seen or seen[-1] != job.status:
                seen.append(job.status)
            if job.status in ("SUCCESS", "FAIL"):
                return job, seen
            assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
            time.sleep(0.02)

    def wait_status(self, show: Callable[[], Any], wanted: str) -> Any:
        """Polls ``show()`` (a volume or a snapshot) until its status is ``wanted``; snapshots and rollbacks run in
        the background as in the real service."""
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            shown = show()
            if shown.status == wanted:
                return shown
            assert shown.status not in ("error", "FAIL") and time.monotonic() < deadline, shown.status
            time.sleep(0.02)

    def ok_job(self, job_id: str, ecs: bool = False) -> Any:
        job, seen = self.wait_job(job_id, ecs)
        assert job.status == "SUCCESS", (job.error_code, job.fail_reason)
        assert set(seen) <= {"INIT", "RUNNING", "SUCCESS"}, seen
        return job

    # -- volumes

    def create_volume(self, name: str | None = None, cmk: str | None = None, size: int = 10, count: int | None = None,
                      metadata: dict[str, str] | None = None, snapshot_id: str | None = None) -> Any:
        """Creates a volume through the SDK (``POST /v2.1/{p}/cloudvolumes``); returns the create response."""
        metadata = dict(metadata or {})
        if cmk is not None:
            metadata.update({"__system__encrypted": "1", "__system__cmkid": cmk})
        option = CreateVolumeOption(availability_zone=AZ, volume_type="SSD", size=size, name=name or unique("vol"),
                                    count=count, metadata=metadata or None, snapshot_id=snapshot_id)
        return self.evs.create_volume(CreateVolumeRequest(body=CreateVolumeRequestBody(volume=option)))

    def new_volume(self, cmk: str | None = None, **kwargs: Any) -> str:
        job = self.ok_job(self.create_volume(cmk=cmk, **kwargs).job_id)
        return job.entities.volume_id

    def show(self, volume_id: str) -> Any:
        return self.evs.show_volume(ShowVolumeRequest(volume_id=volume_id)).volume

    def attach_request(self, volume_id: str, server: str = "srv-1", device: str | None = None) -> Any:
        option = AttachServerVolumeOption(volume_id=volume_id, device=device)
        return self.ecs.attach_server_volume(AttachServerVolumeRequest(
            server_id=server, body=AttachServerVolumeRequestBody(volume_attachment=option)))

    def attach(self, volume_id: str, server: str = "srv-1", device: str | None = None) -> Any:
        return self.ok_job(self.attach_request(volume_id, server, device).job_id, ecs=True)

    def detach(self, volume_id: str, server: str = "srv-1") -> Any:
        response = self.ecs.detach_server_volume(DetachServerVolumeRequest(server_id=server, volume_id=volume_id))
        return self.ok_job(response.job_id, ecs=True)

    def url(self, volume_id: str) -> str:
        return f"{self.nbd}/{volume_id}"

    def exports(self) -> str:
        done = run("nbdinfo", "--list", self.nbd + "/")
        assert done.returncode == 0, done.stderr
        return done.stdout

    def audit(self, **filters: Any) -> list[dict]:
        return self.server.admin.audit(**filters)


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One server on a data dir for the whole module."""
    workdir = tmp_path_factory.mktemp("kmsim-evs")
    data_dir = workdir / "data"
    server = KmsimProcess(["--data-dir", str(data_dir)], workdir / "server")
    assert server.info["nbd"].startswith("nbd://127.0.0.1:"), server.info
    yield Env(server, data_dir)
    status = server.stop()
    assert status == 0, f"kmsim exited with {status} on SIGTERM:\n{server.stderr()}"


# ---- 1. the volume API ---------------------------------------------------------------------------


def test_create_volume_job_and_show(env: Env) -> None:
    key = env.create_key()
    name = unique("plain")
    created = env.create_volume(name=name)
    assert created.job_id and len(created.volume_ids) == 1
    job, seen = env.wait_job(created.job_id)
    assert seen[-1] == "SUCCESS" and set(seen) <= {"INIT", "RUNNING", "SUCCESS"}, seen
    assert job.job_type == "createVolume"
    assert job.entities.volume_id == created.volume_ids[0]
    assert job.begin_time and job.end_time and job.error_code is None
    volume = env.show(job.entities.volume_id)
    assert (volume.id, volume.name, volume.status, volume.size) == (job.entities.volume_id, name, "available", 10)
    assert (volume.volume_type, volume.availability_zone, volume.encrypted) == ("SSD", AZ, False)
    assert volume.attachments == [] and volume.bootable == "false" and volume.multiattach is False
    assert not any(k.startswith("__system__") for k in volume.metadata or {})

    # Encrypted through the SDK (v2.1): the metadata names the CMK, `encrypted` is true.
    encrypted = env.show(env.new_volume(cmk=key))
    assert encrypted.encrypted is True
    assert encrypted.metadata["__system__encrypted"] == "1"
    assert encrypted.metadata["__system__cmkid"] == key

    # The v2 and v3 create paths, raw.
    for version, cmk in (("v2", key), ("v3", None)):
        metadata = {"__system__encrypted": "1", "__system__cmkid": cmk} if cmk else {}
        body = {"volume": {"availability_zone": AZ, "volume_type": "SAS", "size": 10, "name": f"raw-{version}",
                           "metadata": metadata}}
        response = env.raw.send("POST", f"/{version}/{{p}}/cloudvolumes", body)
        assert response.status in (200, 202), response.body
        volume_id = env.ok_job(response.json()["job_id"]).entities.volume_id
        volume = env.show(volume_id)
        assert (volume.name, volume.volume_type, volume.encrypted) == (f"raw-{version}", "SAS", cmk is not None)
        assert volume.metadata.get("__system__cmkid") == cmk


def test_batch_create(env: Env) -> None:
    name = unique("batch")
    created = env.create_volume(name=name, count=2)
    assert len(created.volume_ids) == 2
    job = env.ok_job(created.job_id)
    assert job.job_type == "batchCreateVolume"
    sub_ids = [sub.entities.volume_id for sub in job.entities.sub_jobs]
    assert sorted(sub_ids) == sorted(created.volume_ids)
    assert all(sub.status == "SUCCESS" and sub.job_id for sub in job.entities.sub_jobs)
    names = sorted(env.show(volume_id).name for volume_id in sub_ids)
    assert names == [f"{name}-0001", f"{name}-0002"]


def test_list_filters_and_pagination(env: Env) -> None:
    tag = unique("suite")
    name = unique("listed")
    created = env.create_volume(name=name, count=3, metadata={"suite": tag})
    env.ok_job(created.job_id)
    ids = sorted(created.volume_ids)
    assert len(ids) == 3

    def listing(**query: Any):
        return env.evs.list_volumes(ListVolumesRequest(metadata=json.dumps({"suite": tag}), **query))

    everything = listing()
    assert everything.count == 3 and sorted(v.id for v in everything.volumes) == ids
    assert all(v.metadata["suite"] == tag for v in everything.volumes)
    page = listing(limit=2)
    assert (page.count, len(page.volumes)) == (3, 2)
    rest = listing(limit=2, offset=2)
    assert (rest.count, len(rest.volumes)) == (3, 1)
    assert {v.id for v in page.volumes} | {v.id for v in rest.volumes} == set(ids)
    after = listing(marker=ids[0])
    assert sorted(v.id for v in after.volumes) == ids[1:]
    assert after.count == 3
    one = env.evs.list_volumes(ListVolumesRequest(name=f"{name}-0002"))
    assert (one.count, [v.name for v in one.volumes]) == (1, [f"{name}-0002"])
    assert listing(status="available").count == 3
    assert listing(status="in-use").count == 0
    assert env.evs.list_volumes(ListVolumesRequest(metadata=json.dumps({"suite": unique("none")}))).count == 0

    expect_error(400, "EVS.1023", env.evs.list_volumes, ListVolumesRequest(limit=0))
    expect_error(400, "EVS.1024", env.evs.list_volumes, ListVolumesRequest(marker="not-a-uuid"))
    expect_error(400, "EVS.1058", env.evs.list_volumes, ListVolumesRequest(metadata="{not json"))


def test_update_extend_metadata_and_delete(env: Env) -> None:
    key = env.create_key()
    volume_id = env.new_volume(cmk=key, metadata={"team": "blue"})

    # update answers flat.
    updated = env.evs.update_volume(UpdateVolumeRequest(volume_id=volume_id, body=UpdateVolumeRequestBody(
        volume=UpdateVolumeOption(name="renamed", description="described"))))
    assert (updated.id, updated.name, updated.description, updated.size) == (volume_id, "renamed", "described", 10)
    assert env.show(volume_id).name == "renamed"

    # os-extend (SDK: POST /v2.1/.../action), then the size shows over NBD after attaching.
    expect_error(400, "EVS.1015", env.evs.resize_volume, ResizeVolumeRequest(
        volume_id=volume_id, body=ResizeVolumeRequestBody(os_extend=OsExtend(new_size=10))))
    resized = env.evs.resize_volume(ResizeVolumeRequest(
        volume_id=volume_id, body=ResizeVolumeRequestBody(os_extend=OsExtend(new_size=20))))
    assert env.ok_job(resized.job_id).job_type == "extendVolume"
    assert env.show(volume_id).size == 20
    env.attach(volume_id)
    done = run("nbdinfo", "--size", env.url(volume_id))
    assert (done.returncode, done.stdout.strip()) == (0, str(20 * GIB)), done.stderr
    assert_io_ok(qemu_io(env.url(volume_id), f"write -P 0x61 {20 * GIB - MIB} 1M", f"read -P 0x61 {20 * GIB - MIB} 1M"))
    # An attached volume grows too, and stays in use; new NBD connections see the new size.
    resized = env.evs.resize_volume(ResizeVolumeRequest(
        volume_id=volume_id, body=ResizeVolumeRequestBody(os_extend=OsExtend(new_size=30))))
    env.ok_job(resized.job_id)
    volume = env.show(volume_id)
    assert (volume.status, volume.size) == ("in-use", 30)
    done = run("nbdinfo", "--size", env.url(volume_id))
    assert (done.returncode, done.stdout.strip()) == (0, str(30 * GIB)), done.stderr
    assert_io_ok(qemu_io(env.url(volume_id), f"read -P 0x61 {20 * GIB - MIB} 1M",
                         f"write -P 0x62 {30 * GIB - MIB} 1M", f"read -P 0x62 {30 * GIB - MIB} 1M"))
    env.detach(volume_id)

    # Cinder's metadata paths.
    base = f"/v2/{{p}}/volumes/{volume_id}/metadata"
    got = env.raw.send("GET", base)
    assert got.status == 200 and got.json()["metadata"]["team"] == "blue"
    assert got.json()["metadata"]["__system__cmkid"] == key
    merged = env.raw.send("POST", base, {"metadata": {"env": "test"}})
    assert merged.status == 200, merged.body
    assert {k: merged.json()["metadata"][k] for k in ("team", "env")} == {"team": "blue", "env": "test"}
    replaced = env.raw.send("PUT", base, {"metadata": {"owner": "me"}})
    assert replaced.status == 200, replaced.body
    assert replaced.json()["metadata"] == {"owner": "me", "__system__encrypted": "1", "__system__cmkid": key}
    item = env.raw.send("GET", base + "/owner")
    assert (item.status, item.json()) == (200, {"meta": {"owner": "me"}})
    put_item = env.raw.send("PUT", base + "/stage", {"meta": {"stage": "2"}})
    assert (put_item.status, put_item.json()) == (200, {"meta": {"stage": "2"}})
    assert env.raw.send("PUT", base + "/stage", {"meta": {"other": "2"}}).error() == (400, "EVS.5400")
    assert env.raw.send("DELETE", base + "/owner").status == 200
    assert env.raw.send("GET", base + "/owner").error() == (404, "EVS.5404")
    assert env.show(volume_id).metadata == {"stage": "2", "__system__encrypted": "1", "__system__cmkid": key}
    for refused in (env.raw.send("POST", base, {"metadata": {"__system__encrypted": "0"}}),
                    env.raw.send("PUT", base + "/__system__cmkid", {"meta": {"__system__cmkid": str(uuid.uuid4())}}),
                    env.raw.send("DELETE", base + "/__system__cmkid")):
        assert refused.error() == (400, "EVS.2047")
    assert env.show(volume_id).metadata["__system__cmkid"] == key

    # delete: a job; gone afterwards, files too.
    deleted = env.evs.delete_volume(DeleteVolumeRequest(volume_id=volume_id))
    assert env.ok_job(deleted.job_id).job_type == "deleteVolume"
    expect_error(404, "EVS.5404", env.show, volume_id)
    assert not (env.data_dir / "volumes" / f"{volume_id}.img").exists()
    assert not (env.data_dir / "volumes" / f"{volume_id}.json").exists()
    assert volume_id not in [v.id for v in env.evs.list_volumes(ListVolumesRequest()).volumes]


def test_delete_with_cascade_takes_the_snapshots_along(env: Env) -> None:
    volume_id = env.new_volume()
    created = env.evs.create_snapshot(CreateSnapshotRequest(body=CreateSnapshotRequestBody(
        snapshot=CreateSnapshotOption(volume_id=volume_id, name=unique("snap")))))
    snapshot_id = created.snapshot.id
    show_snapshot = lambda: env.evs.show_snapshot(ShowSnapshotRequest(snapshot_id=snapshot_id)).snapshot
    env.wait_status(show_snapshot, "available")
    snapshot_data = env.data_dir / "objects" / "snapshots" / f"{snapshot_id}.img"
    assert snapshot_data.exists()

    # Without cascade (or with cascade=false) a volume with snapshots stays; a cascade that is not a boolean is
    # refused. Nothing changes.
    expect_error(400, "EVS.1046", env.evs.delete_volume, DeleteVolumeRequest(volume_id=volume_id))
    path = f"/v2/{{p}}/cloudvolumes/{volume_id}"
    assert env.raw.send("DELETE", path, query=[("cascade", "false")]).error() == (400, "EVS.1046")
    assert env.raw.send("DELETE", path, query=[("cascade", "yes")]).error() == (400, "EVS.5400")
    assert (env.show(volume_id).status, show_snapshot().status) == ("available", "available")

    deleted = env.raw.send("DELETE", path, query=[("cascade", "true")])
    assert deleted.status == 200, deleted.body
    assert env.ok_job(deleted.json()["job_id"]).job_type == "deleteVolume"
    expect_error(404, "EVS.5404", env.show, volume_id)
    expect_error(404, "EVS.5404", show_snapshot)
    assert not snapshot_data.exists()
    assert not (env.data_dir / "volumes" / f"{volume_id}.img").exists()


# ---- 2. snapshots --------------------------------------------------------------------------------


def test_snapshots_rollback_and_volume_from_snapshot(env: Env) -> None:
    key = env.create_key()
    source = env.new_volume(cmk=key)
    env.attach(source)
    assert_io_ok(qemu_io(env.url(source), "write -P 0x11 0 1M", "write -P 0x12 3M 64k"))
    env.detach(source)

    name = unique("snap")
    created = env.evs.create_snapshot(CreateSnapshotRequest(body=CreateSnapshotRequestBody(
        snapshot=CreateSnapshotOption(volume_id=source, name=name, description="before", force=False))))
    snapshot = created.snapshot
    assert (snapshot.volume_id, snapshot.name, snapshot.size, snapshot.status) == (source, name, 10, "creating")
    snapshot_id = snapshot.id
    show_snapshot = lambda: env.evs.show_snapshot(ShowSnapshotRequest(snapshot_id=snapshot_id)).snapshot
    env.wait_status(show_snapshot, "available")

    listed = env.evs.list_snapshots(ListSnapshotsRequest(volume_id=source))
    assert (listed.count, [s.id for s in listed.snapshots]) == (1, [snapshot_id])
    assert env.evs.list_snapshots(ListSnapshotsRequest(name=name)).count == 1
    shown = env.evs.show_snapshot(ShowSnapshotRequest(snapshot_id=snapshot_id)).snapshot
    assert (shown.id, shown.description, shown.status) == (snapshot_id, "before", "available")
    updated = env.evs.update_snapshot(UpdateSnapshotRequest(snapshot_id=snapshot_id, body=UpdateSnapshotRequestBody(
        snapshot=UpdateSnapshotOption(name=name + "-2", description="after"))))
    assert (updated.snapshot.name, updated.snapshot.description) == (name + "-2", "after")

    # A volume from the snapshot: same encryption and CMK, same data; its file stays sparse.
    copy = env.new_volume(snapshot_id=snapshot_id)
    volume = env.show(copy)
    assert volume.encrypted is True and volume.snapshot_id == snapshot_id
    assert volume.metadata["__system__encrypted"] == "1" and volume.metadata["__system__cmkid"] == key
    image = env.data_dir / "volumes" / f"{copy}.img"
    assert image.stat().st_size >= 10 * GIB and image.stat().st_blocks * 512 < 64 * MIB
    env.attach(copy)
    assert_io_ok(qemu_io(env.url(copy), "read -P 0x11 0 1M", "read -P 0x12 3M 64k"))
    env.detach(copy)

    # Encryption parameters together with a snapshot: EVS.1043.
    expect_error(400, "EVS.1043", lambda: env.create_volume(cmk=key, snapshot_id=snapshot_id))

    # Rollback: what was written after the snapshot disappears.
    env.attach(source)
    assert_io_ok(qemu_io(env.url(source), "write -P 0x22 0 1M", "read -P 0x22 0 1M"))
    env.detach(source)
    # A name the API refuses: EVS.1003, and the rollback never starts (the volume keeps what was written).
    expect_error(400, "EVS.1003", env.evs.rollback_snapshot, RollbackSnapshotRequest(
        snapshot_id=snapshot_id, body=RollbackSnapshotRequestBody(
            rollback=RollbackSnapshotOption(volume_id=source, name="n" * 65))))
    assert env.show(source).status == "available" and show_snapshot().status == "available"
    expect_error(400, "EVS.1003", env.evs.update_snapshot, UpdateSnapshotRequest(
        snapshot_id=snapshot_id, body=UpdateSnapshotRequestBody(snapshot=UpdateSnapshotOption(name="n" * 65))))
    assert show_snapshot().name == name + "-2"
    env.attach(source)
    assert_io_ok(qemu_io(env.url(source), "read -P 0x22 0 1M"))
    env.detach(source)
    rolled = env.evs.rollback_snapshot(RollbackSnapshotRequest(
        snapshot_id=snapshot_id, body=RollbackSnapshotRequestBody(rollback=RollbackSnapshotOption(volume_id=source))))
    assert rolled.rollback.volume_id == source
    env.wait_status(lambda: env.show(source), "available")
    env.attach(source)
    assert_io_ok(qemu_io(env.url(source), "read -P 0x11 0 1M", "read -P 0x12 3M 64k"))
    env.detach(source)

    # Delete: gone.
    env.evs.delete_snapshot(DeleteSnapshotRequest(snapshot_id=snapshot_id))
    expect_error(404, "EVS.5404", env.evs.show_snapshot, ShowSnapshotRequest(snapshot_id=snapshot_id))
    assert env.evs.list_snapshots(ListSnapshotsRequest(volume_id=source)).count == 0


# ---- 3. attach and detach ------------------------------------------------------------------------


def test_attach_detach_statuses_and_exports(env: Env) -> None:
    volume_id = env.new_volume()
    server = unique("srv")
    assert env.show(volume_id).status == "available"
    assert volume_id not in env.exports()

    attached = env.attach(volume_id, server, "/dev/vdc")
    assert attached.job_type == "attachVolume" and attached.entities.server_id == server
    volume = env.show(volume_id)
    assert volume.status == "in-use"
    assert [(a.server_id, a.device, a.volume_id) for a in volume.attachments] == [(server, "/dev/vdc", volume_id)]
    listed = env.ecs.list_server_volume_attachments(ListServerVolumeAttachmentsRequest(server_id=server))
    assert [(a.volume_id, a.server_id, a.device) for a in listed.volume_attachments] == [
        (volume_id, server, "/dev/vdc")]
    assert volume_id in env.exports()
    assert env.evs.list_volumes(ListVolumesRequest(status="in-use")).count >= 1

    # Attached already: Ecs.0017; in use: cannot be deleted (EVS.1046). Nothing changes.
    expect_error(400, "Ecs.0017", env.attach_request, volume_id, unique("srv"))
    expect_error(400, "EVS.1046", env.evs.delete_volume, DeleteVolumeRequest(volume_id=volume_id))
    assert env.show(volume_id).status == "in-use"
    assert_io_ok(qemu_io(env.url(volume_id), "write -P 0x01 0 4k", "read -P 0x01 0 4k"))

    detached = env.detach(volume_id, server)
    assert detached.job_type == "detachVolume" and detached.entities.server_id == server
    volume = env.show(volume_id)
    assert (volume.status, volume.attachments) == ("available", [])
    assert env.ecs.list_server_volume_attachments(
        ListServerVolumeAttachmentsRequest(server_id=server)).volume_attachments == []
    assert volume_id not in env.exports()
    done = qemu_io(env.url(volume_id), "read 0 4k")
    assert done.returncode != 0 or "read 4096/4096" not in done.stdout, done.stdout

    # Re-attached, the data is there.
    env.attach(volume_id, server)
    assert_io_ok(qemu_io(env.url(volume_id), "read -P 0x01 0 4k"))
    env.detach(volume_id, server)
    env.ok_job(env.evs.delete_volume(DeleteVolumeRequest(volume_id=volume_id)).job_id)


# ---- 4. the data plane ---------------------------------------------------------------------------


def test_data_plane_with_qemu_and_nbdinfo(env: Env, tmp_path: Path) -> None:
    key = env.create_key()
    volume_id = env.new_volume(cmk=key)
    env.attach(volume_id)
    url = env.url(volume_id)

    assert_io_ok(qemu_io(url, "write -P 0x5a 0 1M", "read -P 0x5a 0 1M"))

    listing = env.exports()
    assert volume_id in listing
    info = run("nbdinfo", "--json", url)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["exports"][0]["export-size"] == 10 * GIB

    # qemu-img convert in and out: byte for byte.
    source = tmp_path / "in.raw"
    payload = os.urandom(4 * MIB)
    source.write_bytes(payload)
    target = nbd_json_url(env.nbd, volume_id, 4 * MIB)
    done = run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(source), target)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out.raw"
    done = run("qemu-img", "convert", "-O", "raw", nbd_json_url(env.nbd, volume_id, 4 * MIB), str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == payload

    # write -z reads back as zeros; a discard punches a hole, whose content NBD leaves undefined (on an
    # encrypted volume: the decryption of zeros); the neighbours of both are untouched.
    assert_io_ok(qemu_io(url, "write -P 0x33 8M 256k", "discard 8M 64k", "write -z 8256k 64k",
                         "read -P 0 8256k 64k", "read -P 0x33 8320k 128k"))
    # The data survives reconnecting.
    assert_io_ok(qemu_io(url, "read -P 0 8256k 64k", "read -P 0x33 8320k 128k"))
    env.detach(volume_id)


# ---- 5. at rest ----------------------------------------------------------------------------------


def test_at_rest_luks_container_opens_with_the_customers_dek(env: Env, tmp_path: Path) -> None:
    key = env.boto_kms.create_key(Description="evs at rest")["KeyMetadata"]["KeyId"]
    volume_id = env.new_volume(cmk=key)
    env.attach(volume_id)
    marker = f"kmsim-evs-plaintext-marker-{uuid.uuid4().hex}".encode()
    block = (marker * (4096 // len(marker) + 1))[:4096]
    source = tmp_path / "marker.bin"
    source.write_bytes(block)
    assert_io_ok(qemu_io(env.url(volume_id), "write -P 0x5a 0 1M", f"write -s {source} 4M 4k", "flush"))
    env.detach(volume_id)

    record = json.loads((env.data_dir / "volumes" / f"{volume_id}.json").read_text())
    encryption = record["encryption"]
    dek = env.boto_kms.decrypt(CiphertextBlob=bytes.fromhex(encryption["dek_ciphertext"]),
                               EncryptionContext=encryption["context"])
    assert dek["KeyId"].endswith(key)
    secret = dek["Plaintext"].hex()
    image = env.data_dir / "volumes" / f"{volume_id}.img"

    secret_object = f"secret,id=sec0,data={secret}"
    luks = f"driver=luks,key-secret=sec0,file.filename={image}"
    done = run("qemu-io", "--object", secret_object, "--image-opts", luks, "-c", "read -P 0x5a 0 1M")
    assert_io_ok(done)
    out = tmp_path / "out.raw"
    window = f"driver=raw,size={5 * MIB},file.driver=luks,file.key-secret=sec0,file.file.filename={image}"
    done = run("qemu-img", "convert", "--object", secret_object, "--image-opts", window, "-O", "raw", str(out))
    assert done.returncode == 0, done.stderr
    plain = out.read_bytes()
    assert plain[:MIB] == b"\x5a" * MIB
    assert plain[4 * MIB:4 * MIB + 4096] == block
    # A wrong key does not open it.
    wrong = f"secret,id=sec0,data={os.urandom(32).hex()}"
    assert run("qemu-io", "--object", wrong, "--image-opts", luks, "-c", "read 0 4k").returncode != 0

    dump = run("cryptsetup", "luksDump", str(image))
    assert dump.returncode == 0, dump.stderr
    fields = dict(re.findall(r"^([A-Za-z ]+):\s+(\S+)", dump.stdout, re.MULTILINE))
    assert (fields["Version"], fields["Cipher name"], fields["Cipher mode"], fields["Hash spec"],
            fields["MK bits"]) == ("1", "aes", "xts-plain64", "sha256", "512"), dump.stdout

    # The plaintext is nowhere on disk; the volume file is sparse. (Control: on an unencrypted volume, the scan
    # finds the marker.)
    plain_volume = env.new_volume()
    env.attach(plain_volume)
    assert_io_ok(qemu_io(env.url(plain_volume), f"write -s {source} 4M 4k"))
    env.detach(plain_volume)
    assert file_contains(env.data_dir / "volumes" / f"{plain_volume}.img", marker)
    env.ok_job(env.evs.delete_volume(DeleteVolumeRequest(volume_id=plain_volume)).job_id)
    files = [p for p in env.data_dir.rglob("*") if p.is_file()]
    assert image in files
    assert [p for p in files if file_contains(p, marker)] == []
    stat = image.stat()
    assert stat.st_size >= 10 * GIB and stat.st_blocks * 512 < 32 * MIB, (stat.st_size, stat.st_blocks)


# ---- 6. keys -------------------------------------------------------------------------------------


def test_key_rules_on_create(env: Env) -> None:
    key = env.create_key()
    env.kms.disable_key(DisableKeyRequest(body=OperateKeyRequestBody(key_id=key)))
    before = env.evs.list_volumes(ListVolumesRequest()).count
    expect_error(400, "EVS.2040", lambda: env.create_volume(cmk=key))
    expect_error(400, "EVS.2041", lambda: env.create_volume(cmk=str(uuid.uuid4())))
    expect_error(400, "EVS.2041", lambda: env.create_volume(metadata={"__system__cmkid": key}))
    expect_error(400, "EVS.2041", lambda: env.create_volume(metadata={"__system__encrypted": "yes"}))
    assert env.evs.list_volumes(ListVolumesRequest()).count == before


def test_encryption_without_a_cmk_uses_the_default_key_evs_default(env: Env) -> None:
    """``__system__encrypted`` without ``__system__cmkid``: the project's service default key ``evs/default``,
    created on first use, visible through the OTC KMS API (default_key_flag "1")."""
    volume_id = env.new_volume(metadata={"__system__encrypted": "1"})
    volume = env.show(volume_id)
    assert volume.encrypted is True
    default_key = volume.metadata["__system__cmkid"]
    detail = env.kms.list_key_detail(ListKeyDetailRequest(body=OperateKeyRequestBody(key_id=default_key))).key_info
    assert (detail.key_alias, detail.default_key_flag, detail.key_state) == ("evs/default", "1", "2")
    # The second volume uses the same default key.
    other = env.show(env.new_volume(metadata={"__system__encrypted": "1"}))
    assert other.metadata["__system__cmkid"] == default_key
    env.attach(volume_id)
    assert_io_ok(qemu_io(env.url(volume_id), "write -P 0x17 0 64k", "read -P 0x17 0 64k"))
    env.detach(volume_id)


def test_disabled_key_keeps_attached_volume_and_blocks_attach(env: Env) -> None:
    key = env.create_key()
    volume_id = env.new_volume(cmk=key)
    env.attach(volume_id)
    assert_io_ok(qemu_io(env.url(volume_id), "write -P 0x42 0 64k"))
    env.kms.disable_key(DisableKeyRequest(body=OperateKeyRequestBody(key_id=key)))
    assert_io_ok(qemu_io(env.url(volume_id), "read -P 0x42 0 64k", "write -P 0x43 64k 64k"))
    env.detach(volume_id)

    job, _ = env.wait_job(env.attach_request(volume_id).job_id, ecs=True)
    assert (job.status, job.error_code) == ("FAIL", "EVS.2040"), job
    assert job.fail_reason
    assert env.show(volume_id).status == "available"
    assert volume_id not in env.exports()

    env.kms.enable_key(EnableKeyRequest(body=OperateKeyRequestBody(key_id=key)))
    env.attach(volume_id)
    assert_io_ok(qemu_io(env.url(volume_id), "read -P 0x42 0 64k", "read -P 0x43 64k 64k"))
    env.detach(volume_id)


def test_grant_and_audit_trail(env: Env) -> None:
    key = env.create_key()
    since = int(time.time() * 1000) - 1000
    volume_id = env.new_volume(cmk=key)
    env.attach(volume_id)
    env.detach(volume_id)

    events = [e for e in env.audit(key=key, since_millis=since) if e.get("via_service") == "evs"]
    operations = [e["operation"] for e in events]
    for operation in ("CreateGrant", "GenerateDataKey", "Decrypt"):
        assert operation in operations, operations
    assert all(e["dialect"] == "internal" and e["outcome"] == "Success" for e in events), events
    by_operation = {e["operation"]: e for e in events}
    assert by_operation["GenerateDataKey"]["encryption_context"] == {"evs:volume_id": volume_id}
    assert by_operation["Decrypt"]["encryption_context"] == {"evs:volume_id": volume_id}

    # The grant is the project's EVSAccessKMS agency, visible to the customer (both KMS dialects).
    grants = env.boto_kms.list_grants(KeyId=key)["Grants"]
    agency = [g for g in grants if g.get("Name") == "EVSAccessKMS"]
    assert len(agency) == 1, grants
    assert {"Decrypt", "GenerateDataKey"} <= set(agency[0]["Operations"])
    huawei_grants = env.kms.list_grants(ListGrantsRequest(body=ListGrantsRequestBody(key_id=key))).grants
    assert agency[0]["GrantId"] in [g.grant_id for g in huawei_grants]

    # Revoked, EVS cannot attach the key's volumes any more.
    env.boto_kms.revoke_grant(KeyId=key, GrantId=agency[0]["GrantId"])
    job, _ = env.wait_job(env.attach_request(volume_id).job_id, ecs=True)
    assert (job.status, job.error_code) == ("FAIL", "EVS.2055"), job
    assert env.show(volume_id).status == "available"
    failed = env.audit(key=key, since_millis=since, operation="Decrypt")
    assert failed and failed[-1]["outcome"] != "Success", failed


# ---- 7. bad input --------------------------------------------------------------------------------


def test_bad_input_on_the_api(env: Env) -> None:
    before = env.evs.list_volumes(ListVolumesRequest()).count
    for body in (b"{not json", b"[]", b""):
        assert env.raw.send("POST", "/v2.1/{p}/cloudvolumes", body).error() == (400, "EVS.5400")
    for size in (5, 40000):
        expect_error(400, "EVS.1010", lambda: env.create_volume(size=size))
    expect_error(404, "EVS.5404", env.show, str(uuid.uuid4()))
    expect_error(404, "EVS.5404", env.evs.delete_volume, DeleteVolumeRequest(volume_id=str(uuid.uuid4())))
    expect_error(400, "EVS.2045", lambda: env.create_volume(snapshot_id=str(uuid.uuid4())))
    expect_error(400, "Common.0011", env.evs.show_job, ShowJobRequest(job_id=uuid.uuid4().hex))
    assert env.evs.list_volumes(ListVolumesRequest()).count == before

    wrong_project = env.raw.send("GET", "/v2/{p}/cloudvolumes/detail", path_project="1" * 32)
    assert wrong_project.error() == (400, "Common.0018")
    bad_signature = env.raw.send("GET", "/v2/{p}/cloudvolumes/detail", secret="not-the-secret")
    assert bad_signature.status == 401, bad_signature.body
    assert env.raw.send("GET", "/v2/{p}/cloudvolumes/detail").status == 200


def test_nbd_read_beyond_the_end(env: Env) -> None:
    volume_id = env.new_volume()
    env.attach(volume_id)
    url = env.url(volume_id)
    assert_io_ok(qemu_io(url, "write -P 0x7e 0 4k"))
    beyond = qemu_io(url, f"read {10 * GIB} 4k")
    output = beyond.stdout + beyond.stderr
    assert "read failed" in output or beyond.returncode != 0, output
    assert "read 4096/4096" not in output, output
    # The server keeps serving this client and the next.
    assert_io_ok(qemu_io(url, f"read {10 * GIB - 4096} 4k", "read -P 0x7e 0 4k"))
    assert volume_id in env.exports()
    env.detach(volume_id)
