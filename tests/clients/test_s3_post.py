"""Browser form uploads (POST Object): boto3's ``generate_presigned_post`` (V2 by default, SigV4 when
configured) posted with ``curl -F`` and ``requests``, OBS's form upload from esdk-obs-python's
``createPostSignature``, and every way a policy refuses a form, with S3's codes and messages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from typing import Any
from xml.etree import ElementTree

import pytest
import requests
from botocore.config import Config
from obs import ObsClient

from conftest import make_s3_client


def post(url: str, fields: dict[str, str], content: bytes, filename: str = "upload.bin",
         allow_redirects: bool = False) -> requests.Response:
    """Posts a form as a browser does: the fields in order, the file last."""
    return requests.post(url, data=fields, files={"file": (filename, content)}, allow_redirects=allow_redirects,
                         timeout=30)


def error(response: requests.Response) -> tuple[int, str | None, str | None]:
    document = ElementTree.fromstring(response.content)
    return response.status_code, document.findtext("Code"), document.findtext("Message")


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    return s3_bucket


@pytest.fixture
def default_signer(kmsim: dict[str, Any]):
    """boto3 as users make it: generate_presigned_post signs V2 by default."""
    return make_s3_client(kmsim["endpoint"])


def test_boto3_default_presigned_post_with_curl(s3, kms, bucket, default_signer, tmp_path):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    fields = {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": key_id,
              "Content-Type": "text/plain", "x-amz-meta-origin": "form"}
    form = default_signer.generate_presigned_post(
        bucket, "uploads/${filename}", Fields=fields,
        Conditions=[{k: v} for k, v in fields.items()] + [["starts-with", "$key", "uploads/"],
                                                          ["content-length-range", 1, 1_000_000]],
        ExpiresIn=300)
    assert "AWSAccessKeyId" in form["fields"] and "signature" in form["fields"]
    note = tmp_path / "note.txt"
    note.write_bytes(b"uploaded by an HTML form")
    args = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}"]
    for name, value in form["fields"].items():
        args += ["-F", f"{name}={value}"]
    args += ["-F", f"file=@{note}", form["url"]]
    result = subprocess.run(args, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rsplit(b"\n", 1)[-1] == b"204", result.stdout
    head = s3.head_object(Bucket=bucket, Key="uploads/note.txt")
    assert (head["ServerSideEncryption"], head["ContentType"], head["Metadata"]) == ("aws:kms", "text/plain",
                                                                                     {"origin": "form"})
    assert head["SSEKMSKeyId"].endswith(key_id)
    assert s3.get_object(Bucket=bucket, Key="uploads/note.txt")["Body"].read() == b"uploaded by an HTML form"


def test_sigv4_post_with_status_and_redirect(kmsim, s3, bucket):
    v4 = make_s3_client(kmsim["endpoint"], signature_version="s3v4")
    form = v4.generate_presigned_post(bucket, "v4.bin", Fields={"success_action_status": "201"},
                                      Conditions=[{"success_action_status": "201"}])
    assert form["fields"]["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    data = b"\x00\x01 signed with SigV4"
    response = post(form["url"], form["fields"], data)
    assert response.status_code == 201, response.text
    document = ElementTree.fromstring(response.content)
    assert (document.tag, document.findtext("Bucket"), document.findtext("Key")) == ("PostResponse", bucket, "v4.bin")
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    assert document.findtext("ETag") == etag == response.headers["ETag"]
    assert response.headers["x-amz-server-side-encryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="v4.bin")["Body"].read() == data

    redirect = "http://app.example/done?from=form"
    form = v4.generate_presigned_post(bucket, "redirected", Fields={"success_action_redirect": redirect},
                                      Conditions=[{"success_action_redirect": redirect}])
    response = post(form["url"], form["fields"], b"x")
    assert response.status_code == 303
    assert response.headers["Location"] == \
        f"{redirect}&bucket={bucket}&key=redirected&etag=%22{hashlib.md5(b'x').hexdigest()}%22"


def test_policies_refuse_as_s3_does(kmsim, s3, bucket, default_signer):
    def signed(key: str = "k", fields: dict[str, str] | None = None, conditions: list | None = None,
               expires: int = 300) -> dict:
        return default_signer.generate_presigned_post(bucket, key, Fields=fields or {}, Conditions=conditions or [],
                                                      ExpiresIn=expires)

    # A field the policy does not cover.
    form = signed()
    assert error(post(form["url"], {**form["fields"], "x-amz-meta-sneaky": "1"}, b"x")) == \
        (403, "AccessDenied", "Invalid according to Policy: Extra input fields: x-amz-meta-sneaky")
    # A field whose value breaks a condition.
    form = signed(fields={"Content-Type": "image/png"}, conditions=[["starts-with", "$Content-Type", "image/"]])
    assert post(form["url"], {**form["fields"], "Content-Type": "image/jpeg"}, b"x").status_code == 204
    status, code, message = error(post(form["url"], {**form["fields"], "Content-Type": "text/html"}, b"x"))
    assert (status, code) == (403, "AccessDenied")
    assert message == 'Invalid according to Policy: Policy Condition failed: ["starts-with", "$Content-Type", "image/"]'
    # Another key than signed for.
    form = signed(key="fixed")
    status, code, message = error(post(form["url"], {**form["fields"], "key": "other"}, b"x"))
    assert (status, code, message) == (403, "AccessDenied",
                                       'Invalid according to Policy: Policy Condition failed: ["eq", "$key", "fixed"]')
    # Size range.
    form = signed(conditions=[["content-length-range", 10, 20]])
    status, code, _ = error(post(form["url"], form["fields"], b"y" * 21))
    assert (status, code) == (400, "EntityTooLarge")
    status, code, _ = error(post(form["url"], form["fields"], b"y" * 9))
    assert (status, code) == (400, "EntityTooSmall")
    assert post(form["url"], form["fields"], b"y" * 15).status_code == 204
    # Expired, tampered, unknown key.
    form = signed(expires=-10)
    assert error(post(form["url"], form["fields"], b"x")) == \
        (403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    form = signed()
    status, code, _ = error(post(form["url"], {**form["fields"], "signature": "AAAA" + form["fields"]["signature"][4:]},
                                 b"x"))
    assert (status, code) == (403, "SignatureDoesNotMatch")
    document = json.loads(base64.b64decode(form["fields"]["policy"]))
    document["conditions"].append(["starts-with", "$x-amz-meta-a", ""])
    forged = base64.b64encode(json.dumps(document).encode()).decode()
    status, code, _ = error(post(form["url"], {**form["fields"], "policy": forged, "x-amz-meta-a": "b"}, b"x"))
    assert (status, code) == (403, "SignatureDoesNotMatch")
    stranger = make_s3_client(kmsim["endpoint"], access_key="AKIANOBODY").generate_presigned_post(bucket, "k")
    assert error(post(stranger["url"], stranger["fields"], b"x"))[:2] == (403, "InvalidAccessKeyId")
    # No file, no key, no signature at all.
    form = signed()
    no_file = requests.post(form["url"], files={k: (None, v) for k, v in form["fields"].items()}, timeout=30)
    assert error(no_file)[:2] == (400, "InvalidArgument")
    without_key = {k: v for k, v in form["fields"].items() if k != "key"}
    assert error(post(form["url"], without_key, b"x"))[:2] == (400, "InvalidArgument")
    assert error(post(form["url"], {"key": "anonymous"}, b"x"))[:2] == (403, "AccessDenied")
    # Fields before the file are bounded (20 KB, names included): many empty fields are refused too.
    form = signed()
    many = [(f"x-ignore-{i}", "") for i in range(3000)] + list(form["fields"].items())
    response = requests.post(form["url"], data=many, files={"file": ("f", b"x")}, timeout=30)
    assert error(response)[:2] == (400, "MaxPostPreDataLengthExceeded")
    # Nothing of the refused forms was stored.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["k"], keys


def test_obs_form_upload(kmsim, kms, bucket, localhost_subdomains):
    port = kmsim["endpoint"].rsplit(":", 1)[1]
    client = ObsClient(access_key_id="test", secret_access_key="test", server=f"http://localhost:{port}")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    form_params = {"x-obs-server-side-encryption": "kms", "x-obs-server-side-encryption-kms-key-id": key_id,
                   "content-type": "text/plain"}
    signature = client.createPostSignature(bucket, "obs-form.txt", expires=300, formParams=form_params)
    fields = {"key": "obs-form.txt", "AccessKeyId": "test", "policy": signature["policy"],
              "signature": signature["signature"], **form_params}
    response = post(f"{kmsim['endpoint']}/{bucket}", fields, b"through an OBS form")
    assert response.status_code == 204, response.text
    # Answered in OBS's header family, as OBS answers its form uploads.
    assert response.headers["x-obs-server-side-encryption"] == "kms"
    assert "x-obs-request-id" in response.headers and "x-amz-request-id" not in response.headers
    got = client.getObject(bucket, "obs-form.txt", loadStreamInMemory=True)
    assert got.status == 200 and got.body.buffer == b"through an OBS form"
    assert got.body.sseKms == "kms"
    # A refused OBS form is answered in OBS's family too.
    refused = post(f"{kmsim['endpoint']}/{bucket}", {**fields, "signature": "AAAA" + fields["signature"][4:]}, b"x")
    assert refused.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in refused.text
    assert "x-obs-request-id" in refused.headers and "x-amz-request-id" not in refused.headers
    client.close()
