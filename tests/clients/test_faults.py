"""Fault injection (`/_sim/faults`, `--faults FILE`; docs/testing.md) through the clients a test suite uses.

boto3 with its standard and adaptive retry modes backs off through injected KMS throttling and completes; a KMS
fault reaches an S3 client as S3 answers a real KMS failure (503 SlowDown for a throttled KMS, 500
KMS.KMSInternalException); S3's own SlowDown, latency, a connection reset mid-answer (boto3 and curl), the nth
call, a probability, expiry on the simulated clock; the OTC dialect's gateway throttling through Huawei's SDK;
IAM and STS throttling; the audit log marks every injected KMS outcome; refused rules change nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import (DEFAULT_ACCESS_KEY, DEFAULT_SECRET, AwsCli, AwsS3Cli, KmsimProcess, expect_otc_error,
                      huawei_kms_client, unique)

THROTTLED = "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


def clients(server: KmsimProcess, config: Config = NO_RETRIES) -> tuple[Any, Any]:
    """boto3 KMS and S3 clients of `server` with `config`'s retry mode (none by default)."""
    info = server.info
    session = boto3.session.Session(aws_access_key_id=DEFAULT_ACCESS_KEY, aws_secret_access_key=DEFAULT_SECRET,
                                    region_name=info["region"])
    s3_config = config.merge(Config(s3={"addressing_style": "path"}))
    return (session.client("kms", endpoint_url=info["endpoint"], config=config),
            session.client("s3", endpoint_url=info["endpoint"], config=s3_config))


def refused(call: Any, *args: Any, **kwargs: Any) -> dict:
    with pytest.raises(ClientError) as refusal:
        call(*args, **kwargs)
    return refusal.value.response


def test_kms_throttling_and_the_sdks_retry_modes(fresh_kmsim: KmsimProcess) -> None:
    admin = fresh_kmsim.admin
    kms, _ = clients(fresh_kmsim)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    rule = admin.add_fault({"service": "kms", "operation": "GenerateDataKey", "trigger": {"next": 2},
                            "effect": {"type": "error", "code": "ThrottlingException"}})

    # Without retries the client sees AWS's error as AWS sends it.
    answer = refused(kms.generate_data_key, KeyId=key, KeySpec="AES_256")
    assert answer["Error"] == {"Code": "ThrottlingException", "Message": THROTTLED}
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400

    # The standard retry mode backs off and completes: one throttled attempt is left.
    standard, _ = clients(fresh_kmsim, Config(retries={"mode": "standard"}))
    done = standard.generate_data_key(KeyId=key, KeySpec="AES_256")
    assert done["ResponseMetadata"]["RetryAttempts"] == 1
    [listed] = admin.faults()
    assert (listed["id"], listed["matched"], listed["fired"], listed["expired"]) == (rule, 2, 2, True)

    # The adaptive mode too, on a rule that throttles every other call.
    admin.add_fault({"service": "kms", "operation": "Encrypt", "trigger": {"probability": 0.5},
                     "effect": {"type": "error", "code": "ThrottlingException"}})
    adaptive, _ = clients(fresh_kmsim, Config(retries={"mode": "adaptive", "total_max_attempts": 20}))
    for _ in range(10):
        assert adaptive.encrypt(KeyId=key, Plaintext=b"x")["KeyId"].endswith(key)

    # Every injected outcome is marked in the audit log with its rule.
    marked = [e for e in admin.audit(operation="GenerateDataKey") if e.get("fault") == rule]
    assert [e["outcome"] for e in marked] == ["ThrottlingException"] * 2
    assert all(e["key_arn"].endswith(key) for e in marked)
    assert [e.get("fault") for e in admin.audit(operation="GenerateDataKey")][-1] is None


def test_a_kms_fault_reaches_s3_clients_as_s3_reports_kms_failures(fresh_kmsim: KmsimProcess) -> None:
    admin = fresh_kmsim.admin
    kms, s3 = clients(fresh_kmsim)
    hot, cold = kms.create_key()["KeyMetadata"], kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/hot", TargetKeyId=hot["KeyId"])
    bucket = unique("faults")
    s3.create_bucket(Bucket=bucket)
    for name, key in (("hot.txt", hot), ("cold.txt", cold)):
        s3.put_object(Bucket=bucket, Key=name, Body=name.encode(), ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=key["Arn"])

    # The object store's own calls to the KMS have the dialect "internal"; the rule names the key by its alias.
    admin.add_fault({"service": "kms", "dialect": "internal", "operation": "Decrypt", "key": "alias/hot",
                     "effect": {"type": "error", "code": "ThrottlingException"}})
    answer = refused(s3.get_object, Bucket=bucket, Key="hot.txt")
    assert answer["Error"]["Code"] == "SlowDown"
    assert answer["Error"]["Message"] == "Please reduce your request rate for operations involving AWS KMS."
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert s3.get_object(Bucket=bucket, Key="cold.txt")["Body"].read() == b"cold.txt"
    # The KMS API itself is untouched by an "internal" rule.
    blob = kms.encrypt(KeyId=hot["KeyId"], Plaintext=b"direct")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"direct"

    # A failing KMS on a PUT: S3's KMS.KMSInternalException, and no object.
    admin.add_fault({"service": "kms", "operation": "GenerateDataKey", "trigger": {"next": 1},
                     "effect": {"type": "error", "code": "KMSInternalException"}})
    answer = refused(s3.put_object, Bucket=bucket, Key="new.txt", Body=b"new", ServerSideEncryption="aws:kms",
                     SSEKMSKeyId=cold["Arn"])
    assert (answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]) == ("KMS.KMSInternalException", 500)
    assert refused(s3.head_object, Bucket=bucket, Key="new.txt")["ResponseMetadata"]["HTTPStatusCode"] == 404
    events = admin.audit(via_service="s3.amazonaws.com")
    assert [(e["operation"], e["outcome"]) for e in events if e.get("fault")] == [
        ("Decrypt", "ThrottlingException"), ("GenerateDataKey", "KMSInternalException")]

    # An injected key state reaches the S3 client exactly as the real state does: a really disabled key's answer,
    # then the same answer from a rule on an enabled one; likewise a key pending deletion, and a KMS whose key is
    # unavailable (S3's 500 KMS.KMSInternalException).
    kms.disable_key(KeyId=cold["KeyId"])
    real = refused(s3.get_object, Bucket=bucket, Key="cold.txt")
    kms.enable_key(KeyId=cold["KeyId"])
    for code, s3_code, status in (("DisabledException", "KMS.DisabledException", 400),
                                  ("KMSInvalidStateException", "KMS.KMSInvalidStateException", 400),
                                  ("KeyUnavailableException", "KMS.KMSInternalException", 500)):
        admin.add_fault({"service": "kms", "dialect": "internal", "operation": "Decrypt", "trigger": {"next": 1},
                         "effect": {"type": "error", "code": code}})
        injected = refused(s3.get_object, Bucket=bucket, Key="cold.txt")
        assert (injected["Error"]["Code"], injected["ResponseMetadata"]["HTTPStatusCode"]) == (s3_code, status), code
        if code == "DisabledException":
            assert (real["Error"]["Code"], real["ResponseMetadata"]["HTTPStatusCode"]) == (s3_code, status)
    assert s3.get_object(Bucket=bucket, Key="cold.txt")["Body"].read() == b"cold.txt"

    # With the standard retry mode, a client gets through a short throttle.
    admin.clear_faults()
    admin.add_fault({"service": "kms", "dialect": "internal", "trigger": {"next": 2},
                     "effect": {"type": "error", "code": "ThrottlingException"}})
    _, patient = clients(fresh_kmsim, Config(retries={"mode": "standard"}))
    got = patient.get_object(Bucket=bucket, Key="hot.txt")
    assert got["Body"].read() == b"hot.txt" and got["ResponseMetadata"]["RetryAttempts"] == 2


def test_s3_slowdown_on_a_prefix_latency_and_the_nth_call(fresh_kmsim: KmsimProcess) -> None:
    admin = fresh_kmsim.admin
    _, s3 = clients(fresh_kmsim)
    bucket = unique("faults")
    s3.create_bucket(Bucket=bucket)
    admin.add_fault({"service": "s3", "bucket": bucket, "prefix": "logs/", "operation": "PutObject",
                     "effect": {"type": "error", "code": "SlowDown"}})
    answer = refused(s3.put_object, Bucket=bucket, Key="logs/1", Body=b"x")
    assert (answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]) == ("SlowDown", 503)
    assert answer["Error"]["Message"] == "Please reduce your request rate."
    s3.put_object(Bucket=bucket, Key="data/1", Body=b"x")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["data/1"]
    # The injected answer is in the audit log, marked with its rule, beside the KMS's own calls.
    [slowed] = admin.audit(service="s3")
    assert {k: slowed[k] for k in ("operation", "outcome", "resource", "dialect", "region", "account")} == {
        "operation": "PutObject", "outcome": "SlowDown", "resource": f"{bucket}/logs/1", "dialect": "s3",
        "region": fresh_kmsim.info["region"], "account": fresh_kmsim.info["account_id"]}
    assert slowed["fault"] == admin.faults()[0]["id"] and slowed["principal"].startswith("arn:aws:iam::")
    assert all("service" not in e for e in admin.audit(service="kms"))
    admin.clear_faults()

    # Latency before the operation, on the simulated service only.
    admin.add_fault({"service": "s3", "operation": "HeadBucket", "effect": {"type": "latency", "ms": 400}})
    started = time.monotonic()
    s3.head_bucket(Bucket=bucket)
    assert time.monotonic() - started >= 0.4
    admin.clear_faults()

    # The third GetObject, and only it, fails.
    rule = admin.add_fault({"service": "s3", "operation": "GetObject", "trigger": {"nth": 3},
                            "effect": {"type": "error", "code": "InternalError"}})
    outcomes = []
    for _ in range(5):
        try:
            s3.get_object(Bucket=bucket, Key="data/1")["Body"].read()
            outcomes.append("ok")
        except ClientError as e:
            outcomes.append(e.response["Error"]["Code"])
    assert outcomes == ["ok", "ok", "InternalError", "ok", "ok"]
    [listed] = admin.faults()
    assert (listed["id"], listed["matched"], listed["fired"], listed["expired"]) == (rule, 3, 1, True)


def test_a_connection_reset_mid_answer(fresh_kmsim: KmsimProcess, tmp_path: Path) -> None:
    admin = fresh_kmsim.admin
    _, s3 = clients(fresh_kmsim)
    bucket = unique("faults")
    s3.create_bucket(Bucket=bucket)
    body = bytes(range(256)) * 4096  # 1 MiB
    s3.put_object(Bucket=bucket, Key="big.bin", Body=body)
    admin.add_fault({"service": "s3", "operation": "GetObject", "trigger": {"next": 1}, "effect": {"type": "reset"}})
    # boto3 gets the head, then the body stops short.
    answer = s3.get_object(Bucket=bucket, Key="big.bin")
    assert answer["ContentLength"] == len(body)
    with pytest.raises(Exception) as cut:
        answer["Body"].read()
    assert "IncompleteRead" in repr(cut.value) or "ResponseStreamingError" in type(cut.value).__name__, repr(cut.value)
    # The server keeps serving.
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == body
    # curl sees the transfer end early (exit 18: partial file).
    curl = shutil.which("curl")
    assert curl is not None
    admin.add_fault({"service": "s3", "operation": "GetObject", "trigger": {"next": 1}, "effect": {"type": "reset"}})
    done = subprocess.run([curl, "-s", "-o", str(tmp_path / "out"), "--aws-sigv4", "aws:amz:us-east-1:s3",
                           "--user", f"{DEFAULT_ACCESS_KEY}:{DEFAULT_SECRET}",
                           f"{fresh_kmsim.info['endpoint']}/{bucket}/big.bin"], capture_output=True, timeout=60)
    assert done.returncode in (18, 56), done
    assert (tmp_path / "out").stat().st_size < len(body)


def test_rules_expire_on_the_simulated_clock_and_by_probability(fresh_kmsim: KmsimProcess) -> None:
    admin = fresh_kmsim.admin
    kms, _ = clients(fresh_kmsim)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    admin.add_fault({"service": "kms", "operation": "DescribeKey", "for_secs": 60,
                     "effect": {"type": "error", "code": "KMSInternalException"}})
    answer = refused(kms.describe_key, KeyId=key)
    assert (answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]) == ("KMSInternalException", 500)
    admin.advance_clock(seconds=61)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyId"] == key
    assert admin.faults()[0]["expired"] is True
    admin.clear_faults()

    admin.add_fault({"service": "kms", "operation": "GenerateRandom", "trigger": {"probability": 0.5},
                     "effect": {"type": "error", "code": "DependencyTimeoutException"}})
    failures = 0
    for _ in range(200):
        try:
            kms.generate_random(NumberOfBytes=8)
        except ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            failures += 1
    [listed] = admin.faults()
    assert (listed["matched"], listed["fired"]) == (200, failures)
    assert 60 <= failures <= 140, failures  # binomial(200, 0.5): 5 standard deviations either side


def test_the_otc_dialect_iam_and_sts(fresh_kmsim: KmsimProcess) -> None:
    admin = fresh_kmsim.admin
    info = fresh_kmsim.info
    otc = huawei_kms_client(info["endpoint"], info["project_id"])
    from huaweicloudsdkkms.v2 import CreateKeyRequest, CreateKeyRequestBody, ListKeysRequest, ListKeysRequestBody

    admin.add_fault({"service": "kms", "dialect": "otc", "operation": "list-keys", "trigger": {"next": 1},
                     "effect": {"type": "error", "code": "APIGW.0308"}})
    expect_otc_error("APIGW.0308", otc.list_keys, ListKeysRequest(body=ListKeysRequestBody()), status=429)
    created = otc.create_key(CreateKeyRequest(body=CreateKeyRequestBody(key_alias=unique("otc"))))
    assert created.key_info.key_id
    assert otc.list_keys(ListKeysRequest(body=ListKeysRequestBody())).keys
    assert [e["outcome"] for e in admin.audit(operation="list-keys")] == ["APIGW.0308", "Success"]

    session = boto3.session.Session(aws_access_key_id=DEFAULT_ACCESS_KEY, aws_secret_access_key=DEFAULT_SECRET,
                                    region_name=info["region"])
    sts = session.client("sts", endpoint_url=info["endpoint"], config=NO_RETRIES)
    iam = session.client("iam", endpoint_url=info["endpoint"], config=NO_RETRIES)
    admin.add_fault({"service": "sts", "operation": "GetCallerIdentity", "trigger": {"next": 1},
                     "effect": {"type": "error", "code": "Throttling"}})
    answer = refused(sts.get_caller_identity)
    assert answer["Error"]["Code"] == "Throttling" and answer["Error"]["Message"] == "Rate exceeded"
    assert [(e["operation"], e["outcome"]) for e in admin.audit(service="sts")] == [
        ("GetCallerIdentity", "Throttling")]
    assert sts.get_caller_identity()["Account"] == info["account_id"]
    admin.add_fault({"service": "iam", "operation": "CreateUser", "trigger": {"next": 1},
                     "effect": {"type": "error", "code": "ServiceFailure"}})
    name = unique("user")
    assert refused(iam.create_user, UserName=name)["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert refused(iam.get_user, UserName=name)["Error"]["Code"] == "NoSuchEntity"
    patient = session.client("iam", endpoint_url=info["endpoint"], config=Config(retries={"mode": "standard"}))
    admin.add_fault({"service": "iam", "operation": "CreateUser", "trigger": {"next": 1},
                     "effect": {"type": "error", "code": "Throttling"}})
    assert patient.create_user(UserName=name)["User"]["UserName"] == name


def test_principal_key_id_counts_and_latency_ranges_after_the_operation(fresh_kmsim: KmsimProcess) -> None:
    admin = fresh_kmsim.admin
    kms, _ = clients(fresh_kmsim)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    root = f"arn:aws:iam::{fresh_kmsim.info['account_id']}:root"

    # A rule for the caller's principal ARN and a bare key id, that expires after firing twice.
    rule = admin.add_fault({"service": "kms", "principal": root, "key": key, "operation": "Encrypt", "times": 2,
                            "effect": {"type": "error", "code": "KeyUnavailableException"}})
    assert kms.encrypt(KeyId=other, Plaintext=b"x")["KeyId"].endswith(other)  # another key: not matched
    for _ in range(2):
        answer = refused(kms.encrypt, KeyId=key, Plaintext=b"x")
        assert (answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]) == (
            "KeyUnavailableException", 500)
    assert kms.encrypt(KeyId=key, Plaintext=b"x")["KeyId"].endswith(key)  # fired twice: expired
    [listed] = [r for r in admin.faults() if r["id"] == rule]
    assert (listed["matched"], listed["fired"], listed["expired"]) == (2, 2, True)

    # Latency drawn from a range, after the operation: the call has happened when the late answer arrives.
    admin.add_fault({"service": "kms", "operation": "CreateAlias",
                     "effect": {"type": "latency", "min_ms": 300, "max_ms": 400, "when": "after"}})
    started = time.monotonic()
    kms.create_alias(AliasName="alias/late", TargetKeyId=key)
    assert 0.3 <= time.monotonic() - started
    assert [a["TargetKeyId"] for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/late"] == [key]


def test_the_aws_cli_with_its_default_retries(fresh_kmsim: KmsimProcess, tmp_path: Path) -> None:
    """The aws CLI as installed (v1: the legacy retry mode, 5 attempts) gets through a short KMS throttle and a
    short S3 SlowDown, and reports the error when the fault lasts."""
    admin = fresh_kmsim.admin
    defaults = {"AWS_RETRY_MODE": "legacy", "AWS_MAX_ATTEMPTS": "5"}
    kms_cli = AwsCli(fresh_kmsim.endpoint, region=fresh_kmsim.info["region"], workdir=tmp_path)
    status, created = kms_cli("create-key", **defaults)
    assert status == 0, created
    key = created["KeyMetadata"]["KeyId"]
    rule = admin.add_fault({"service": "kms", "operation": "GenerateDataKey", "trigger": {"next": 2},
                            "effect": {"type": "error", "code": "ThrottlingException"}})
    status, data_key = kms_cli("generate-data-key", "--key-id", key, "--key-spec", "AES_256", **defaults)
    assert status == 0, data_key
    assert [e["outcome"] for e in admin.audit(fault=rule)] == ["ThrottlingException"] * 2

    s3_cli = AwsS3Cli(fresh_kmsim.endpoint, region=fresh_kmsim.info["region"], workdir=tmp_path)
    bucket = unique("cli-faults")
    assert s3_cli("s3api", "create-bucket", "--bucket", bucket, **defaults).returncode == 0
    (tmp_path / "body.txt").write_text("body")
    rule = admin.add_fault({"service": "s3", "operation": "PutObject", "trigger": {"next": 2},
                            "effect": {"type": "error", "code": "SlowDown"}})
    put = s3_cli("s3", "cp", str(tmp_path / "body.txt"), f"s3://{bucket}/body.txt", **defaults)
    assert put.returncode == 0, put.stderr
    assert [e["outcome"] for e in admin.audit(fault=rule)] == ["SlowDown"] * 2
    admin.add_fault({"service": "s3", "operation": "GetObject", "effect": {"type": "error", "code": "InternalError"}})
    got = s3_cli("s3", "cp", f"s3://{bucket}/body.txt", str(tmp_path / "back.txt"), **defaults)
    assert got.returncode != 0 and "InternalError" in got.stderr, got.stderr


def test_otc_kms_codes_and_the_obs_dialect(fresh_kmsim: KmsimProcess, localhost_subdomains: None) -> None:
    from huaweicloudsdkcore.exceptions.exceptions import ServiceResponseException
    from huaweicloudsdkkms.v2 import (CreateDatakeyRequest, CreateDatakeyRequestBody, CreateKeyRequest,
                                      CreateKeyRequestBody)
    from obs import ObsClient

    admin, info = fresh_kmsim.admin, fresh_kmsim.info
    otc = huawei_kms_client(info["endpoint"], info["project_id"])
    key_id = otc.create_key(CreateKeyRequest(body=CreateKeyRequestBody(key_alias=unique("otc")))).key_info.key_id
    datakey = CreateDatakeyRequest(body=CreateDatakeyRequestBody(key_id=key_id, datakey_length="512"))

    # The OTC API's own codes, with the status and message the real API sends.
    for code, status, message in (("KMS.0209", 400, "The key has been disabled."),
                                  ("KMS.0101", 500, "System error.")):
        rule = admin.add_fault({"service": "kms", "dialect": "otc", "operation": "create-datakey",
                                "trigger": {"next": 1}, "effect": {"type": "error", "code": code}})
        with pytest.raises(ServiceResponseException) as refusal:
            otc.create_datakey(datakey)
        assert (refusal.value.status_code, refusal.value.error_code, refusal.value.error_msg) == (status, code, message)
        assert [e["outcome"] for e in admin.audit(fault=rule)] == [code]
    assert otc.create_datakey(datakey).key_id == key_id

    # A rule on the OBS dialect: Huawei's OBS SDK (negotiating the OBS signature) sees the error; S3 clients of
    # the same bucket do not.
    client = ObsClient(access_key_id=DEFAULT_ACCESS_KEY, secret_access_key=DEFAULT_SECRET,
                       server=info["endpoint"].replace("127.0.0.1", "localhost"))
    try:
        bucket = unique("obs-faults")
        assert client.createBucket(bucket).status < 300
        # The SDK retries a 503 (three times by default) and then reports it.
        rule = admin.add_fault({"service": "obs", "bucket": bucket, "operation": "PutObject",
                                "effect": {"type": "error", "code": "ServiceUnavailable"}})
        failed = client.putContent(bucket, "a.txt", "first")
        assert (failed.status, failed.errorCode, failed.errorMessage) == (
            503, "ServiceUnavailable", "Reduce your request rate.")
        [attempts] = [r["fired"] for r in admin.faults() if r["id"] == rule]
        assert attempts == 4
        assert [(e["dialect"], e["operation"], e["outcome"]) for e in admin.audit(fault=rule)] == [
            ("obs", "PutObject", "ServiceUnavailable")] * attempts
        admin.delete_fault(rule)
        # Through a shorter outage its retries get the object stored.
        admin.add_fault({"service": "obs", "operation": "PutObject", "trigger": {"next": 2},
                         "effect": {"type": "error", "code": "ServiceUnavailable"}})
        assert client.putContent(bucket, "a.txt", "second").status < 300
        _, s3 = clients(fresh_kmsim)
        rule = admin.add_fault({"service": "obs", "bucket": bucket, "operation": "GetObject",
                                "effect": {"type": "error", "code": "InternalError"}})
        assert s3.get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"second"
        assert client.getObject(bucket, "a.txt", loadStreamInMemory=True).status == 500
        assert {e["outcome"] for e in admin.audit(fault=rule)} == {"InternalError"}
    finally:
        client.close()


def test_the_rules_api_refuses_what_it_cannot_carry_out(fresh_kmsim: KmsimProcess) -> None:
    admin = fresh_kmsim.admin
    for rule, phrase in [
        ({"service": "kms", "effect": {"type": "error", "code": "SlowDown"}}, 'no error "SlowDown"'),
        ({"service": "s3", "effect": {"type": "teleport"}}, "unknown variant"),
        ({"service": "kms", "trigger": {"probability": 2}, "effect": {"type": "reset"}}, "0..=1"),
        ({"service": "s3", "key": "alias/x", "effect": {"type": "reset"}}, "key filters KMS"),
        ({"service": "ec2", "effect": {"type": "reset"}}, "unknown variant"),
        ([{"service": "kms", "effect": {"type": "reset"}}, {"service": "nbd", "effect": {"type": "reset"}}],
         "rule 2: NBD I/O takes the effects eio and latency"),
    ]:
        with pytest.raises(urllib.error.HTTPError) as refusal:
            admin._call("POST", "/_sim/faults", rule)  # type: ignore[arg-type]
        assert refusal.value.code == 400
        assert phrase in json.loads(refusal.value.read())["error"], rule
    assert admin.faults() == []
    # Like every admin call, the rules API wants the admin token.
    for method, path, body in (("GET", "/_sim/faults", None), ("POST", "/_sim/faults", b"{}"),
                               ("DELETE", "/_sim/faults", None)):
        with pytest.raises(urllib.error.HTTPError) as unauthenticated:
            urllib.request.urlopen(urllib.request.Request(fresh_kmsim.info["endpoint"] + path, data=body,
                                                          method=method,
                                                          headers={"Content-Type": "application/json"}))
        assert unauthenticated.value.code == 401, (method, path)
    rule = admin.add_fault({"service": "kms", "effect": {"type": "latency", "min_ms": 1, "max_ms": 2}})
    admin.delete_fault(rule)
    with pytest.raises(urllib.error.HTTPError) as missing:
        admin.delete_fault(rule)
    assert missing.value.code == 404
    assert admin.faults() == []


def test_rules_loaded_at_start(start_kmsim: Any, tmp_path: Path) -> None:
    rules = tmp_path / "faults.json"
    rules.write_text(json.dumps({"rules": [
        {"service": "kms", "operation": "CreateKey", "trigger": {"nth": 1},
         "effect": {"type": "error", "code": "LimitExceededException"}},
    ]}))
    server = start_kmsim("--faults", str(rules))
    kms, _ = clients(server)
    assert refused(kms.create_key)["Error"]["Code"] == "LimitExceededException"
    assert kms.create_key()["KeyMetadata"]["Enabled"] is True
    rules.write_text('{"rules": [{"service": "kms", "effect": {"type": "error", "code": "Nope"}}]}')
    with pytest.raises(pytest.fail.Exception) as refused_start:
        start_kmsim("--faults", str(rules))
    assert "the fault rules" in str(refused_start.value) and "Nope" in str(refused_start.value)


def test_evs_jobs_fail_as_the_rules_say_and_nbd_io_gets_eio(start_kmsim: Any, tmp_path: Path) -> None:
    from huaweicloudsdkecs.v2 import DetachServerVolumeRequest
    from huaweicloudsdkevs.v2 import DeleteVolumeRequest

    from test_evs_huawei import Env, assert_io_ok, qemu_io

    server = start_kmsim("--data-dir", str(tmp_path / "data"))
    env, admin = Env(server, tmp_path / "data"), server.admin

    # A rule naming another caller leaves this one's jobs alone.
    elsewhere = admin.add_fault({"service": "evs", "operation": "createVolume", "principal": "AKIDSOMEONEELSE",
                                 "effect": {"type": "error", "code": "EVS.5500"}})
    env.new_volume(cmk=env.create_key())
    assert [(r["matched"], r["fired"]) for r in admin.faults() if r["id"] == elsewhere] == [(0, 0)]
    admin.delete_fault(elsewhere)

    # A creation that fails: the job ends FAIL with the rule's code, the volume is in error, as after a real
    # failure; the next creation works.
    admin.add_fault({"service": "evs", "operation": "createVolume", "principal": DEFAULT_ACCESS_KEY,
                     "trigger": {"next": 1}, "effect": {"type": "error", "code": "EVS.5500"}})
    job, seen = env.wait_job(env.create_volume(cmk=env.create_key()).job_id)
    assert (job.status, job.error_code, job.fail_reason) == ("FAIL", "EVS.5500", "Internal server error.")
    assert seen[-1] == "FAIL"
    assert env.show(job.entities.volume_id).status == "error"
    [failed_job] = admin.audit(service="evs")
    assert (failed_job["operation"], failed_job["outcome"], failed_job["resource"]) == (
        "createVolume", "EVS.5500", job.entities.volume_id)
    volume_id = env.new_volume(cmk=env.create_key())

    # An attach that fails leaves the volume available and unexported; a detach that fails leaves it in use.
    admin.add_fault({"service": "evs", "operation": "attachVolume", "volume": volume_id, "trigger": {"next": 1},
                     "effect": {"type": "error", "code": "EVS.2040", "message": "the CMK went away"}})
    job, _ = env.wait_job(env.attach_request(volume_id).job_id, ecs=True)
    assert (job.status, job.error_code, job.fail_reason) == ("FAIL", "EVS.2040", "the CMK went away")
    assert env.show(volume_id).status == "available" and volume_id not in env.exports()
    # A throttled KMS when the volume service decrypts the volume's data key fails the attach the same way.
    kms_rule = admin.add_fault({"service": "kms", "dialect": "internal", "operation": "Decrypt", "trigger": {"next": 1},
                                "effect": {"type": "error", "code": "ThrottlingException"}})
    job, _ = env.wait_job(env.attach_request(volume_id).job_id, ecs=True)
    assert (job.status, job.error_code) == ("FAIL", "EVS.5500")
    [marked] = [e for e in admin.audit(operation="Decrypt") if e.get("fault") == kms_rule]
    assert marked["outcome"] == "ThrottlingException" and marked["via_service"]
    env.attach(volume_id)
    url = env.url(volume_id)
    assert_io_ok(qemu_io(url, "write -P 0x11 0 8k"))

    # NBD: reads that touch the failing range get EIO; the rest of the volume, and writes, work.
    rule = admin.add_fault({"service": "nbd", "operation": "read", "volume": volume_id,
                            "effect": {"type": "eio", "offset": 4096, "length": 512}})
    assert_io_ok(qemu_io(url, "read -P 0x11 0 4k"))
    failed = qemu_io(url, "read 4096 4k")
    assert "Input/output error" in failed.stdout + failed.stderr, failed
    assert_io_ok(qemu_io(url, "write -P 0x22 4096 4k"))
    assert [(r["matched"], r["fired"]) for r in admin.faults() if r["id"] == rule] == [(1, 1)]
    [io] = admin.audit(fault=rule)
    assert (io["service"], io["operation"], io["outcome"], io["resource"]) == (
        "nbd", "read", "EIO", f"{volume_id} bytes 4096+4096")
    admin.delete_fault(rule)
    assert_io_ok(qemu_io(url, "read -P 0x22 4096 4k"))

    admin.add_fault({"service": "evs", "operation": "detachVolume", "trigger": {"next": 1},
                     "effect": {"type": "error", "code": "EVS.5500"}})
    detach = env.ecs.detach_server_volume(DetachServerVolumeRequest(server_id="srv-1", volume_id=volume_id))
    job, _ = env.wait_job(detach.job_id, ecs=True)
    assert (job.status, job.error_code) == ("FAIL", "EVS.5500")
    assert env.show(volume_id).status == "in-use" and volume_id in env.exports()
    assert_io_ok(qemu_io(url, "read -P 0x11 0 4k"))
    env.detach(volume_id)

    # A deletion that fails leaves the volume in error, from which it can be deleted.
    admin.add_fault({"service": "evs", "operation": "deleteVolume", "trigger": {"next": 1},
                     "effect": {"type": "error", "code": "EVS.1046"}})
    job, _ = env.wait_job(env.evs.delete_volume(DeleteVolumeRequest(volume_id=volume_id)).job_id)
    assert (job.status, job.error_code) == ("FAIL", "EVS.1046")
    assert env.show(volume_id).status == "error"
    env.ok_job(env.evs.delete_volume(DeleteVolumeRequest(volume_id=volume_id)).job_id)
