"""Request quotas (`--quotas aws`, `[quotas]` in the config file; docs/testing.md) through boto3 and the aws CLI.

Rates are lowered in the config file so that a few calls reach them. Without retries a client sees AWS KMS's
ThrottlingException (400, AWS's message) and S3's 503 SlowDown; the symmetric, RSA, ECC and per-operation KMS
quotas, regions and S3 prefixes are counted apart; boto3's standard and adaptive retry modes and the aws CLI back
off and complete (their retries counted in the responses and the audit log); a throttled KMS fails an SSE-KMS PUT
and GET as S3 reports it; without `--quotas` nothing throttles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import DEFAULT_ACCESS_KEY, DEFAULT_SECRET, AwsCli, KmsimProcess, unique

THROTTLED = "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
KMS_SLOWDOWN = "Please reduce your request rate for operations involving AWS KMS."
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


def clients(server: KmsimProcess, config: Config = NO_RETRIES, region: str | None = None) -> tuple[Any, Any]:
    """boto3 KMS and S3 clients of `server` with `config`'s retry mode (none by default)."""
    session = boto3.session.Session(aws_access_key_id=DEFAULT_ACCESS_KEY, aws_secret_access_key=DEFAULT_SECRET,
                                    region_name=region or server.info["region"])
    s3_config = config.merge(Config(s3={"addressing_style": "path"}))
    return (session.client("kms", endpoint_url=server.endpoint, config=config),
            session.client("s3", endpoint_url=server.endpoint, config=s3_config))


def refused(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict:
    with pytest.raises(ClientError) as refusal:
        call(*args, **kwargs)
    return refusal.value.response


def until_throttled(call: Callable[[], Any], limit: int = 100) -> tuple[int, dict]:
    """Calls `call` until it is refused; answers how many calls got through and the refusal."""
    for done in range(limit):
        try:
            call()
        except ClientError as refusal:
            return done, refusal.response
    pytest.fail(f"{limit} calls and no throttling")


def throttles(server: KmsimProcess, operation: str) -> int:
    """The throttled calls of `operation` in the audit log."""
    return len(server.admin.audit(operation=operation, outcome="ThrottlingException"))


def test_kms_quotas_answer_awss_throttling_per_quota_and_region(start_kmsim: Callable[..., KmsimProcess]) -> None:
    server = start_kmsim("--quotas", "aws", config="""
[quotas]
kms = { symmetric = 5, rsa = 2, ecc = 2, DescribeKey = 3 }
""")
    assert server.info["quotas"] == "aws"
    kms, _ = clients(server)
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    ecc = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]

    # One second's worth of calls get through, then AWS's error as AWS sends it.
    passed, answer = until_throttled(lambda: kms.generate_data_key(KeyId=symmetric, KeySpec="AES_256"))
    assert 5 <= passed < 12
    assert answer["Error"] == {"Code": "ThrottlingException", "Message": THROTTLED}
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    # The cryptographic operations on symmetric keys share that quota, GenerateRandom too ...
    assert refused(kms.generate_random, NumberOfBytes=8)["Error"]["Code"] == "ThrottlingException"
    # ... in this account and region only.
    elsewhere, _ = clients(server, region="eu-west-1")
    assert len(elsewhere.generate_random(NumberOfBytes=8)["Plaintext"]) == 8

    # RSA and ECC keys have their own, lower quotas; management operations each their own.
    passed, answer = until_throttled(lambda: kms.encrypt(KeyId=rsa, Plaintext=b"x",
                                                         EncryptionAlgorithm="RSAES_OAEP_SHA_256"))
    assert 2 <= passed < 5 and answer["Error"]["Code"] == "ThrottlingException"
    passed, answer = until_throttled(lambda: kms.sign(KeyId=ecc, Message=b"m", SigningAlgorithm="ECDSA_SHA_256"))
    assert 2 <= passed < 5 and answer["Error"]["Code"] == "ThrottlingException"
    passed, answer = until_throttled(lambda: kms.describe_key(KeyId=symmetric))
    assert 3 <= passed < 6 and answer["Error"] == {"Code": "ThrottlingException", "Message": THROTTLED}

    # A throttled call is audited as a failed call (not as an injected fault).
    [event, *_] = server.admin.audit(operation="DescribeKey", outcome="ThrottlingException")
    assert event["key_arn"].endswith(symmetric) and event.get("fault") is None
    assert throttles(server, "GenerateDataKey") == 1


@pytest.mark.parametrize("mode", ["standard", "adaptive"])
def test_boto3_retry_modes_back_off_and_complete(start_kmsim: Callable[..., KmsimProcess], mode: str) -> None:
    server = start_kmsim("--quotas", "aws", config="[quotas]\nkms = { symmetric = 10 }\n")
    kms, _ = clients(server)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    patient, _ = clients(server, Config(retries={"mode": mode, "max_attempts": 20}))
    # Count the throttled attempts as botocore sees them, too.
    seen: list[str] = []

    def count(response: Any = None, **_: Any) -> None:
        if response is not None and "Error" in response[1]:
            seen.append(response[1]["Error"]["Code"])

    patient.meta.events.register("needs-retry.kms.GenerateDataKey", count)

    answers = [patient.generate_data_key(KeyId=key, KeySpec="AES_256") for _ in range(30)]

    assert all(len(a["Plaintext"]) == 32 for a in answers)
    retries = sum(a["ResponseMetadata"]["RetryAttempts"] for a in answers)
    assert retries > 0, "30 calls at 10 per second must have been throttled"
    assert seen == ["ThrottlingException"] * retries
    assert throttles(server, "GenerateDataKey") == retries


def test_a_throttled_kms_fails_sse_kms_puts_and_gets_as_s3_reports_it(
        start_kmsim: Callable[..., KmsimProcess]) -> None:
    # The mode from the config file alone; one KMS call in 5 seconds.
    server = start_kmsim(config='[quotas]\nmode = "aws"\nkms = { symmetric = 0.2 }\n')
    kms, s3 = clients(server)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = unique("quotas")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"a", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)

    # S3's GenerateDataKey on the caller's behalf counts against the caller's quota, which is spent.
    answer = refused(s3.put_object, Bucket=bucket, Key="b.txt", Body=b"b", ServerSideEncryption="aws:kms",
                     SSEKMSKeyId=key)
    assert (answer["Error"]["Code"], answer["Error"]["Message"]) == ("SlowDown", KMS_SLOWDOWN)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert refused(s3.head_object, Bucket=bucket, Key="b.txt")["ResponseMetadata"]["HTTPStatusCode"] == 404
    answer = refused(s3.get_object, Bucket=bucket, Key="a.txt")
    assert (answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]) == ("SlowDown", 503)
    events = server.admin.audit(via_service="s3.amazonaws.com", outcome="ThrottlingException")
    assert [(e["operation"], e.get("fault")) for e in events] == [("GenerateDataKey", None), ("Decrypt", None)]

    # A client with the standard retry mode waits it out.
    _, patient = clients(server, Config(retries={"mode": "standard", "max_attempts": 20}))
    got = patient.get_object(Bucket=bucket, Key="a.txt")
    assert got["Body"].read() == b"a"


def test_s3_request_rates_are_per_prefix(start_kmsim: Callable[..., KmsimProcess]) -> None:
    server = start_kmsim("--quotas", "aws", config="[quotas]\ns3 = { write = 3, read = 5 }\n")
    _, s3 = clients(server)
    bucket = unique("quotas")
    s3.create_bucket(Bucket=bucket)

    passed, answer = until_throttled(lambda: s3.put_object(Bucket=bucket, Key=unique("logs/2024/x"), Body=b"x"))
    assert 3 <= passed < 6
    assert (answer["Error"]["Code"], answer["Error"]["Message"]) == ("SlowDown", "Please reduce your request rate.")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 503
    # Another prefix, and reads, have rates of their own.
    s3.put_object(Bucket=bucket, Key="logs/2025/x", Body=b"x")
    assert s3.get_object(Bucket=bucket, Key="logs/2025/x")["Body"].read() == b"x"

    _, patient = clients(server, Config(retries={"mode": "standard", "max_attempts": 20}))
    answers = [patient.put_object(Bucket=bucket, Key=f"logs/2024/{i}", Body=b"y") for i in range(12)]
    assert sum(a["ResponseMetadata"]["RetryAttempts"] for a in answers) > 0
    listed = patient.list_objects_v2(Bucket=bucket, Prefix="logs/2024/")["Contents"]
    assert {f"logs/2024/{i}" for i in range(12)} <= {o["Key"] for o in listed}


def test_the_aws_cli_retries_through_throttling(start_kmsim: Callable[..., KmsimProcess], tmp_path: Path) -> None:
    # One CreateKey in 10 seconds: each CLI run below starts well within that after the call before it.
    server = start_kmsim("--quotas", "aws", config="[quotas]\nkms = { CreateKey = 0.1 }\n")
    kms, _ = clients(server)
    kms.create_key()
    cli = AwsCli(server.endpoint, workdir=tmp_path)

    # With its standard retry mode the CLI backs off and completes ...
    status, created = cli("create-key", AWS_MAX_ATTEMPTS="20", AWS_RETRY_MODE="standard")
    assert status == 0, created
    assert created["KeyMetadata"]["KeyState"] == "Enabled"
    outcomes = [e["outcome"] for e in server.admin.audit(operation="CreateKey")]
    assert outcomes.count("Success") == 2 and outcomes.count("ThrottlingException") >= 1
    # ... without retries (the fixture's AWS_MAX_ATTEMPTS=1) it reports AWS's error.
    status, error = cli("create-key")
    assert status != 0 and "ThrottlingException" in error and THROTTLED in error


def test_without_quotas_nothing_throttles(start_kmsim: Callable[..., KmsimProcess]) -> None:
    server = start_kmsim(config="[quotas]\nkms = { symmetric = 0.1, CreateKey = 0.1 }\ns3 = { write = 0.1 }\n")
    assert "quotas" not in server.info
    kms, s3 = clients(server)
    keys = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(3)]
    for _ in range(10):
        kms.generate_data_key(KeyId=keys[0], KeySpec="AES_256")
    bucket = unique("quotas")
    s3.create_bucket(Bucket=bucket)
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"p/{i}", Body=b"x")
    assert throttles(server, "GenerateDataKey") == 0
