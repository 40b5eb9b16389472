"""The KMS user guide's envelope-encryption flow, end to end, with Huawei's own SDKs against kmsim.

What a user of Open Telekom Cloud / Huawei Cloud writes, step by step:

1. create-key (``huaweicloudsdkkms``): the customer master key (CMK).
2. create-datakey with ``key_spec=AES_256``: the plaintext DEK (hex) and the ciphertext DEK (hex).
3. Encrypt a local file (a few MiB of random bytes plus a plaintext marker) with the plaintext DEK,
   AES-256-GCM (``cryptography``'s ``AESGCM``; 96-bit random nonce, 128-bit tag appended to the
   ciphertext; the object key is the GCM associated data, so a ciphertext moved to another name
   does not decrypt). Then forget the plaintext DEK.
4. Upload the ciphertext file and the ciphertext DEK as ONE OBS object (``esdk-obs-python``
   ``putFile``), once plain and once with SSE-KMS on the OBS side under the same CMK (doubly
   protected: our GCM layer, then OBS's own envelope).
5. Download (``getObject`` to a file), decrypt-datakey with the ciphertext DEK
   (``datakey_cipher_length="32"``), decrypt locally: bytes identical to the original file.

Object layout: the body is the bare GCM ciphertext (‖ tag); the ciphertext DEK, the nonce, the CMK id
and the algorithm travel as user metadata (``x-obs-meta-*``). Why metadata rather than a container
format: the body stays a plain byte stream (``putFile``/ranged reads/multipart work unchanged), the
envelope can be read with a HEAD (``getObjectMetadata``) without downloading the payload, and OBS
keeps metadata and body atomically together in one object, which is all "one object" needs. The
values are hex, well within OBS's 8 KB header and 2 KB metadata limits.

The server is a durable kmsim on its own ``--data-dir`` (``kmsim_data_dir``), restarted once between
upload and download, so the flow also crosses a restart and everything it wrote is on disk when the
data dir is scanned for the plaintext marker and the plaintext DEK.

Crypto-shredding: with the CMK disabled (``disable-key``), decrypt-datakey fails with KMS.0209 and an
SSE-KMS download fails through esdk-obs; after ``enable-key`` both work again.

The ``*.localhost`` resolver shim is the one of ``test_obs_esdk.py``: the SDK is used with a host-name
endpoint, so it negotiates the OBS dialect (``HEAD /?apiversion``) and addresses buckets
virtual-host style (``bucket.localhost``).
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkkms.v2 import (
    CreateDatakeyRequest,
    CreateDatakeyRequestBody,
    CreateKeyRequest,
    CreateKeyRequestBody,
    DecryptDatakeyRequest,
    DecryptDatakeyRequestBody,
    DisableKeyRequest,
    EnableKeyRequest,
    KmsClient,
    OperateKeyRequestBody,
)
from obs import ObsClient, PutObjectHeader, SseKmsHeader

from conftest import DEFAULT_ACCESS_KEY, DEFAULT_SECRET, DataDirServer

MIB = 1024 * 1024
PAYLOAD_BYTES = 3 * MIB
NONCE_BYTES = 12
ALGORITHM = "AES-256-GCM"
# Metadata names (sent as x-obs-meta-<name>; esdk-obs hands them back without the prefix).
META_DEK = "kms-cipher-dek"
META_CMK = "kms-cmk-id"
META_NONCE = "gcm-nonce"
META_ALG = "enc-alg"


# ---- fixtures ------------------------------------------------------------------------------------

# esdk-obs-python addresses buckets as virtual hosts on a hostname endpoint.
pytestmark = pytest.mark.usefixtures("localhost_subdomains")


class Clients:
    """The two SDK clients for the current process of a data-dir server (they follow restarts)."""

    def __init__(self, server: DataDirServer) -> None:
        self.server = server
        self.kms: KmsClient
        self.obs: ObsClient
        self._connect()

    def _connect(self) -> None:
        info = self.server.process.info
        self.project_id: str = info["project_id"]
        self.domain_id: str = info["domain_id"]
        self.region: str = info["region"]
        self.kms = (KmsClient.new_builder()
                    .with_credentials(BasicCredentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET, self.project_id))
                    .with_endpoints([self.server.endpoint])
                    .build())
        port = urllib.parse.urlsplit(self.server.endpoint).port
        self.obs = ObsClient(access_key_id=DEFAULT_ACCESS_KEY, secret_access_key=DEFAULT_SECRET,
                             server=f"http://localhost:{port}")

    def restart(self) -> None:
        self.obs.close()
        status = self.server.restart()
        assert status == 0, f"kmsim exited with {status} on SIGTERM:\n{self.server.process.stderr()}"
        self._connect()

    def close(self) -> None:
        self.obs.close()

    def obs_key_id(self, key_id: str) -> str:
        """OBS's form of a KMS key id: ``region:domain_id:key/<key id>``."""
        return f"{self.region}:{self.domain_id}:key/{key_id}"


@pytest.fixture
def clients(kmsim_data_dir: Callable[..., DataDirServer]) -> Iterator[Clients]:
    both = Clients(kmsim_data_dir())
    yield both
    both.close()


# ---- helpers -------------------------------------------------------------------------------------


def ok(response: Any) -> Any:
    """Asserts an esdk-obs response succeeded and returns it."""
    assert response.status < 300, (response.status, response.errorCode, response.errorMessage)
    return response


def metadata_of(response: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in response.header}


def op(key_id: str) -> OperateKeyRequestBody:
    return OperateKeyRequestBody(key_id=key_id)


def decrypt_datakey(kms: KmsClient, key_id: str, cipher_dek: str) -> bytes:
    """decrypt-datakey as the guide shows it; returns the plaintext DEK after checking its digest."""
    response = kms.decrypt_datakey(DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
        key_id=key_id, cipher_text=cipher_dek, datakey_cipher_length="32")))
    assert response.datakey_length == "32"
    dek = bytes.fromhex(response.data_key)
    assert len(dek) == 32
    assert response.datakey_dgst == hashlib.sha256(dek).hexdigest()
    return dek


def expect_kms_0209(kms: KmsClient, key_id: str, cipher_dek: str) -> None:
    with pytest.raises(ClientRequestException) as info:
        kms.decrypt_datakey(DecryptDatakeyRequest(body=DecryptDatakeyRequestBody(
            key_id=key_id, cipher_text=cipher_dek, datakey_cipher_length="32")))
    assert (info.value.status_code, info.value.error_code) == (400, "KMS.0209"), str(info.value)


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def find_in_dir(directory: Path, needles: dict[str, bytes]) -> dict[str, list[str]]:
    """Which needles occur in which files under ``directory`` (read whole: the files are small)."""
    found: dict[str, list[str]] = {name: [] for name in needles}
    for path in files_under(directory):
        data = path.read_bytes()
        for name, needle in needles.items():
            if needle in data:
                found[name].append(str(path.relative_to(directory)))
    return {name: paths for name, paths in found.items() if paths}


@dataclass
class Sealed:
    """What the user keeps after step 4: names, never the plaintext DEK."""

    cmk: str
    bucket: str
    key: str
    cipher_dek: str
    original: Path
    marker: bytes


def seal_and_upload(clients: Clients, tmp_path: Path, sse_kms: bool) -> Sealed:
    """Steps 1–4 of the guide."""
    kms, obs = clients.kms, clients.obs
    # 1. The CMK.
    cmk = kms.create_key(CreateKeyRequest(body=CreateKeyRequestBody(
        key_alias=f"envelope-{uuid.uuid4().hex[:12]}", key_description="envelope encryption guide"))).key_info.key_id

    # 2. A data key: plaintext and ciphertext.
    datakey = kms.create_datakey(CreateDatakeyRequest(body=CreateDatakeyRequestBody(key_id=cmk, key_spec="AES_256")))
    assert datakey.key_id == cmk
    cipher_dek: str = datakey.cipher_text
    dek = bytes.fromhex(datakey.plain_text)
    assert len(dek) == 32 and dek not in bytes.fromhex(cipher_dek)

    # 3. A local file, encrypted locally with the plaintext DEK.
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    marker = f"PLAINTEXT-MARKER-{uuid.uuid4().hex}-do-not-store".encode()
    original = work / "report.bin"
    original.write_bytes(os.urandom(PAYLOAD_BYTES // 2) + marker + os.urandom(PAYLOAD_BYTES // 2))
    bucket = f"envelope-{uuid.uuid4().hex[:16]}"
    key = "reports/report.bin.enc"
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(dek).encrypt(nonce, original.read_bytes(), key.encode())
    encrypted = work / "report.bin.enc"
    encrypted.write_bytes(ciphertext)
    assert marker not in ciphertext

    # Forget the plaintext DEK: from here on only the ciphertext DEK exists on the client.
    del dek, datakey

    # 4. One object: the ciphertext as the body, the ciphertext DEK (+ nonce, CMK, algorithm) as metadata.
    ok(obs.createBucket(bucket))
    metadata = {META_DEK: cipher_dek, META_CMK: cmk, META_NONCE: nonce.hex(), META_ALG: ALGORITHM}
    headers = PutObjectHeader(sseHeader=SseKmsHeader.getInstance(key=clients.obs_key_id(cmk))) if sse_kms else None
    put = ok(obs.putFile(bucket, key, str(encrypted), metadata=metadata, headers=headers))
    if sse_kms:
        assert (put.body.sseKms, put.body.sseKmsKey) == ("kms", clients.obs_key_id(cmk))
    else:
        assert put.body.sseKms is None
    encrypted.unlink()  # the user keeps only the original (for the comparison) and the names
    return Sealed(cmk, bucket, key, cipher_dek, original, marker)


def download(clients: Clients, sealed: Sealed, target: Path) -> Any:
    """esdk-obs getObject to a file; returns the SDK response (status checked by the caller)."""
    return clients.obs.getObject(sealed.bucket, sealed.key, downloadPath=str(target))


def open_envelope(clients: Clients, sealed: Sealed, response: Any, downloaded: Path) -> bytes:
    """Step 5 after the download: decrypt-datakey with the ciphertext DEK from the metadata, then GCM."""
    meta = metadata_of(response)
    assert meta[META_ALG] == ALGORITHM
    dek = decrypt_datakey(clients.kms, meta[META_CMK], meta[META_DEK])
    return AESGCM(dek).decrypt(bytes.fromhex(meta[META_NONCE]), downloaded.read_bytes(), sealed.key.encode())


# ---- the flow ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sse_kms", [False, True], ids=["plain", "sse-kms"])
def test_envelope_flow_end_to_end(clients: Clients, tmp_path: Path, sse_kms: bool) -> None:
    sealed = seal_and_upload(clients, tmp_path, sse_kms)
    # Across a graceful restart of the durable server.
    clients.restart()

    # HEAD: the envelope is readable without the payload, and is exactly what create-datakey gave.
    head = ok(clients.obs.getObjectMetadata(sealed.bucket, sealed.key))
    head_meta = metadata_of(head)
    assert head_meta[META_DEK] == sealed.cipher_dek
    assert head_meta[META_CMK] == sealed.cmk
    assert int(head.body.contentLength) == sealed.original.stat().st_size + 16  # GCM tag
    if sse_kms:
        assert (head.body.sseKms, head.body.sseKmsKey) == ("kms", clients.obs_key_id(sealed.cmk))

    downloaded = tmp_path / "work" / "downloaded.enc"
    got = ok(download(clients, sealed, downloaded))
    assert metadata_of(got)[META_DEK] == sealed.cipher_dek
    if sse_kms:
        assert (got.body.sseKms, got.body.sseKmsKey) == ("kms", clients.obs_key_id(sealed.cmk))
    else:
        assert got.body.sseKms is None
    downloaded_bytes = downloaded.read_bytes()
    assert sealed.marker not in downloaded_bytes
    assert len(downloaded_bytes) == sealed.original.stat().st_size + 16

    plaintext = open_envelope(clients, sealed, got, downloaded)
    assert plaintext == sealed.original.read_bytes()

    # The GCM layer binds the object name: the same bytes under another name do not open.
    meta = metadata_of(got)
    dek = decrypt_datakey(clients.kms, sealed.cmk, meta[META_DEK])
    with pytest.raises(InvalidTag):
        AESGCM(dek).decrypt(bytes.fromhex(meta[META_NONCE]), downloaded_bytes, b"reports/other-name")

    # At rest, in kmsim's data dir: no plaintext marker, no plaintext DEK (raw or hex).
    data_dir = clients.server.data_dir
    stored = files_under(data_dir)
    assert stored and sum(p.stat().st_size for p in stored) >= len(downloaded_bytes), \
        "the object is not stored under the data dir"
    needles = {"marker": sealed.marker, "dek": dek, "dek-hex": dek.hex().encode(),
               "DEK-HEX": dek.hex().upper().encode()}
    client_ciphertext = {"client-ciphertext": downloaded_bytes[4096:4096 + 64]}
    if sse_kms:
        # Doubly protected: OBS did not store our (GCM) ciphertext as is either.
        needles.update(client_ciphertext)
    else:
        # A plain object's body is stored as sent: the scan does cover the object bodies.
        assert find_in_dir(data_dir, client_ciphertext), "the scan does not reach the object bodies"
    assert find_in_dir(data_dir, needles) == {}
    # The scan does find what is there (the check is not vacuous): the plaintext file itself.
    assert find_in_dir(sealed.original.parent, {"marker": sealed.marker}) == {"marker": [sealed.original.name]}


# ---- crypto-shredding ----------------------------------------------------------------------------


@pytest.mark.parametrize("sse_kms", [False, True], ids=["plain", "sse-kms"])
def test_disabled_cmk_shreds_the_object(clients: Clients, tmp_path: Path, sse_kms: bool) -> None:
    sealed = seal_and_upload(clients, tmp_path, sse_kms)
    kms, obs = clients.kms, clients.obs

    disabled = kms.disable_key(DisableKeyRequest(body=op(sealed.cmk)))
    assert (disabled.key_info.key_id, disabled.key_info.key_state) == (sealed.cmk, "3")
    try:
        # The ciphertext DEK cannot be opened any more.
        expect_kms_0209(kms, sealed.cmk, sealed.cipher_dek)
        refused_target = tmp_path / "work" / "refused.enc"
        response = download(clients, sealed, refused_target)
        if sse_kms:
            # OBS cannot open its own layer either: the download itself fails.
            assert (response.status, response.errorCode) == (400, "KMS.DisabledException"), \
                (response.status, response.errorCode, response.errorMessage)
            assert not refused_target.exists() or refused_target.stat().st_size == 0
        else:
            # A plain object still downloads, but what comes back is only ciphertext whose DEK
            # nobody can decrypt.
            ok(response)
            meta = metadata_of(response)
            assert meta[META_DEK] == sealed.cipher_dek
            assert sealed.marker not in refused_target.read_bytes()
            expect_kms_0209(kms, meta[META_CMK], meta[META_DEK])
    finally:
        enabled = kms.enable_key(EnableKeyRequest(body=op(sealed.cmk)))
    assert enabled.key_info.key_state == "2"

    # Enabled again: both the DEK and the (SSE-KMS) download work, and the file comes back.
    downloaded = tmp_path / "work" / "downloaded.enc"
    got = ok(download(clients, sealed, downloaded))
    assert open_envelope(clients, sealed, got, downloaded) == sealed.original.read_bytes()
    # The shredding is reversible only because the key was disabled, not deleted.
    assert obs.getObjectMetadata(sealed.bucket, sealed.key).status == 200
