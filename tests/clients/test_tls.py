"""``--tls``: HTTPS on the edge port with a certificate from kmsim's own CA, trusted the way each
client is told to trust a CA: boto3 ``verify=``, the aws CLI through ``AWS_CA_BUNDLE``, curl
``--cacert``, Huawei's KMS SDK (``HttpConfig.ssl_ca_cert``) and esdk-obs-python (``ssl_verify``).
The CA made on a data dir survives restarts; clients that do not trust it are refused.
"""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
import sys
import urllib.parse
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkkms.v2 import CreateDatakeyRequest, CreateDatakeyRequestBody, CreateKeyRequest, \
    CreateKeyRequestBody, KmsClient
from obs import ObsClient

from conftest import DEFAULT_REGION

PROJECT_ID = "0" * 32


def boto3_client(service: str, endpoint: str, ca_file: str | bool):
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=DEFAULT_REGION)
    return session.client(service, endpoint_url=endpoint, verify=ca_file,
                          config=Config(retries={"total_max_attempts": 1}))


@pytest.fixture
def tls_server(start_kmsim, tmp_path):
    data_dir = tmp_path / "data"
    server = start_kmsim("--tls", "--data-dir", str(data_dir))
    return server, data_dir


def test_startup_line_names_the_ca_and_the_https_endpoint(tls_server):
    server, data_dir = tls_server
    info = server.info
    assert info["endpoint"].startswith("https://127.0.0.1:")
    ca = Path(info["ca_file"])
    assert ca == data_dir / "tls" / "ca.pem"
    assert info["ca_env"] == {name: str(ca) for name in
                              ["AWS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE"]}
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    key = data_dir / "tls" / "ca.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_boto3_kms_and_s3_over_https(tls_server):
    server, _ = tls_server
    ca = server.info["ca_file"]
    kms = boto3_client("kms", server.endpoint, ca)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    s3 = boto3_client("s3", server.endpoint, ca)
    s3.create_bucket(Bucket="secure")
    s3.put_object(Bucket="secure", Key="k", Body=b"over TLS", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)
    got = s3.get_object(Bucket="secure", Key="k")
    assert (got["Body"].read(), got["ServerSideEncryption"]) == (b"over TLS", "aws:kms")
    # A client that does not trust the CA is refused by its own TLS stack.
    untrusting = boto3_client("s3", server.endpoint, True)
    with pytest.raises(Exception) as error:
        untrusting.list_buckets()
    assert "CERTIFICATE_VERIFY_FAILED" in str(error.value) or "certificate verify failed" in str(error.value)
    # The name the certificate was issued for is checked too: localhost and 127.0.0.1 are in it.
    port = urllib.parse.urlsplit(server.endpoint).port
    assert boto3_client("s3", f"https://localhost:{port}", ca).list_buckets()["Buckets"][0]["Name"] == "secure"
    context = ssl.create_default_context(cafile=ca)
    with context.wrap_socket(__import__("socket").create_connection(("127.0.0.1", port)),
                             server_hostname="localhost") as tls:
        names = [value for kind, value in tls.getpeercert()["subjectAltName"]]
    assert {"localhost", "*.localhost", "127.0.0.1", "0:0:0:0:0:0:0:1"} <= set(names), names


def test_aws_cli_and_curl_with_the_ca(tls_server, tmp_path):
    server, _ = tls_server
    ca = server.info["ca_file"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION=DEFAULT_REGION,
               AWS_CA_BUNDLE=ca, AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "n"))
    cli = [sys.executable, "-m", "awscli", "--endpoint-url", server.endpoint]
    result = subprocess.run(cli + ["kms", "create-key", "--output", "json"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    result = subprocess.run(cli + ["s3", "mb", "s3://from-cli"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # curl trusts it with --cacert, and refuses without.
    health = subprocess.run(["curl", "-sS", "--cacert", ca, f"{server.endpoint}/_sim/health"], capture_output=True,
                            text=True, timeout=30)
    assert health.returncode == 0 and '"status":"ok"' in health.stdout, health.stderr
    refused = subprocess.run(["curl", "-sS", f"{server.endpoint}/_sim/health"], capture_output=True, text=True,
                             timeout=30, env={k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE",
                                                                                              "CURL_CA_BUNDLE")})
    assert refused.returncode == 60, (refused.returncode, refused.stderr)
    # Plain HTTP to the TLS port gets no answer, and the server keeps serving.
    plain = subprocess.run(["curl", "-sS", "-m", "10", server.endpoint.replace("https://", "http://") + "/"],
                           capture_output=True, text=True, timeout=30)
    assert plain.returncode != 0
    assert subprocess.run(["curl", "-sS", "--cacert", ca, f"{server.endpoint}/_sim/health"],
                          capture_output=True, timeout=30).returncode == 0


def test_huawei_sdks_over_https(tls_server, localhost_subdomains):
    server, _ = tls_server
    ca = server.info["ca_file"]
    config = HttpConfig.get_default_config()
    config.ssl_ca_cert = ca
    kms = (KmsClient.new_builder().with_http_config(config)
           .with_credentials(BasicCredentials("test", "test", PROJECT_ID)).with_endpoints([server.endpoint]).build())
    key = kms.create_key(CreateKeyRequest(body=CreateKeyRequestBody(key_alias=f"tls-{os.getpid()}")))
    data_key = kms.create_datakey(CreateDatakeyRequest(body=CreateDatakeyRequestBody(
        key_id=key.key_info.key_id, datakey_length="512")))
    assert len(data_key.plain_text) == 128
    port = urllib.parse.urlsplit(server.endpoint).port
    obs = ObsClient(access_key_id="test", secret_access_key="test", server=f"https://localhost:{port}",
                    ssl_verify=ca)
    assert obs.createBucket("obs-over-tls").status == 200
    assert obs.putContent("obs-over-tls", "k", "secure OBS").status == 200
    got = obs.getObject("obs-over-tls", "k", loadStreamInMemory=True)
    assert (got.status, got.body.buffer) == (200, b"secure OBS")
    obs.close()


def test_the_ca_survives_a_restart(start_kmsim, tmp_path):
    data_dir = tmp_path / "data"
    first = start_kmsim("--tls", "--data-dir", str(data_dir))
    ca_file = first.info["ca_file"]
    pem = Path(ca_file).read_text()
    s3 = boto3_client("s3", first.endpoint, ca_file)
    s3.create_bucket(Bucket="kept")
    s3.put_object(Bucket="kept", Key="k", Body=b"still trusted", ServerSideEncryption="aws:kms")
    assert first.stop() == 0
    second = start_kmsim("--tls", "--data-dir", str(data_dir))
    assert Path(second.info["ca_file"]).read_text() == pem
    s3 = boto3_client("s3", second.endpoint, ca_file)
    assert s3.get_object(Bucket="kept", Key="k")["Body"].read() == b"still trusted"


def test_in_memory_ca_is_temporary(start_kmsim):
    server = start_kmsim("--tls")
    ca = Path(server.info["ca_file"])
    assert ca.is_file() and not (ca.parent / "ca.key").exists()
    assert boto3_client("kms", server.endpoint, str(ca)).list_keys()["Keys"] == []
    assert server.stop() == 0
    assert not ca.parent.exists()
