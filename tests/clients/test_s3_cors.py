"""CORS on kmsim's S3: bucket CORS configurations through boto3, preflight and actual requests as
S3 answers them (raw ``http.client``), and a real page in headless Chromium (Debian's ``chromium``,
driven by Playwright) on another origin that uploads objects with SSE-KMS through boto3's default
presigned PUT URL and its default presigned POST (an HTML form upload), and reads them back with
``fetch``.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse
from xml.etree import ElementTree
from typing import Any, Iterator

import pytest
from botocore.exceptions import ClientError

from conftest import make_s3_client

NOT_ALLOWED = ("CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, "
               "request method / Access-Control-Request-Method or Access-Control-Request-Headers are not "
               "whitelisted by the resource's CORS spec.")
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"


def request(endpoint: str, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(endpoint)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    finally:
        connection.close()


def error_field(body: bytes, name: str) -> str | None:
    return ElementTree.fromstring(body).findtext(name)


def cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("access-control-") or k == "vary"}


@pytest.fixture
def bucket(s3_bucket: str) -> str:
    return s3_bucket


RULES = [
    {"AllowedOrigins": ["https://app.example"], "AllowedMethods": ["GET", "PUT"], "MaxAgeSeconds": 3000,
     "AllowedHeaders": ["x-amz-*", "Content-Type"], "ExposeHeaders": ["ETag", "x-amz-server-side-encryption"]},
    {"ID": "anyone-reads", "AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]},
    {"AllowedOrigins": ["http://*.partner.example"], "AllowedMethods": ["DELETE"]},
]


def test_bucket_cors_configuration_round_trip(s3, bucket):
    with pytest.raises(ClientError) as error:
        s3.get_bucket_cors(Bucket=bucket)
    assert error.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    got = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got == RULES
    assert s3.delete_bucket_cors(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as error:
        s3.get_bucket_cors(Bucket=bucket)
    assert error.value.response["Error"]["Code"] == "NoSuchCORSConfiguration"
    # Deleting what is not there is fine too, as in S3.
    assert s3.delete_bucket_cors(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204


@pytest.mark.parametrize("rules, code, message", [
    ([{"AllowedOrigins": ["*"], "AllowedMethods": ["MYMETHOD"]}], "InvalidRequest",
     "Found unsupported HTTP method in CORS config. Unsupported method is MYMETHOD"),
    ([{"AllowedOrigins": ["http://*.*.example"], "AllowedMethods": ["GET"]}], "InvalidRequest",
     'AllowedOrigin "http://*.*.example" can not have more than one wildcard.'),
    ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}] * 101, "InvalidRequest", None),
])
def test_invalid_cors_configurations_are_refused(s3, bucket, rules, code, message):
    with pytest.raises(ClientError) as error:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert (error.value.response["Error"]["Code"], error.value.response["ResponseMetadata"]["HTTPStatusCode"]) == \
        (code, 400)
    if message:
        assert error.value.response["Error"]["Message"] == message
    with pytest.raises(ClientError):
        s3.get_bucket_cors(Bucket=bucket)


def test_empty_configuration_is_malformed(kmsim, raw_s3, bucket):
    body = b'<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></CORSConfiguration>'
    response = raw_s3.send("PUT", f"/{bucket}", query="cors", body=body)
    assert response.status == 400 and b"<Code>MalformedXML</Code>" in response.body


def test_preflight_as_s3_answers_it(kmsim, s3, bucket):
    endpoint = kmsim["endpoint"]
    path = f"/{bucket}/photo.jpg"
    ask = {"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}
    # No Origin; no configuration; no bucket.
    status, _, body = request(endpoint, "OPTIONS", path, {"Access-Control-Request-Method": "PUT"})
    assert (status, b"<Code>BadRequest</Code>" in body) == (400, True)
    assert b"Insufficient information. Origin request header needed." in body
    status, _, body = request(endpoint, "OPTIONS", path, ask)
    assert status == 403 and b"<Code>AccessForbidden</Code>" in body
    assert b"CORSResponse: CORS is not enabled for this bucket." in body
    assert b"<Method>PUT</Method>" in body and b"<ResourceType>OBJECT</ResourceType>" in body
    status, _, body = request(endpoint, "OPTIONS", "/no-such-bucket-here", ask)
    assert status == 403 and b"CORSResponse: Bucket not found" in body and b"<ResourceType>BUCKET</ResourceType>" in body

    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    status, headers, body = request(endpoint, "OPTIONS", path,
                                    {**ask, "Access-Control-Request-Headers": "Content-Type, X-Amz-Server-Side-Encryption"})
    assert (status, body) == (200, b"")
    assert cors_headers(headers) == {
        "access-control-allow-origin": "https://app.example",
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "GET, PUT",
        "access-control-allow-headers": "content-type, x-amz-server-side-encryption",
        "access-control-expose-headers": "ETag, x-amz-server-side-encryption",
        "access-control-max-age": "3000",
        "vary": VARY,
    }
    # Any origin may GET under the `*` rule: `*`, no credentials.
    status, headers, _ = request(endpoint, "OPTIONS", path,
                                 {"Origin": "http://elsewhere.test", "Access-Control-Request-Method": "GET"})
    assert status == 200
    assert cors_headers(headers) == {"access-control-allow-origin": "*", "access-control-allow-methods": "GET, HEAD",
                                     "vary": VARY}
    # A wildcard subdomain; the same origin for another method; a header no rule allows.
    status, headers, _ = request(endpoint, "OPTIONS", path,
                                 {"Origin": "http://eu.partner.example", "Access-Control-Request-Method": "DELETE"})
    assert (status, headers["access-control-allow-origin"]) == (200, "http://eu.partner.example")
    for origin, method, asked_headers in [("http://eu.partner.example", "PUT", ""),
                                          ("https://app.example", "DELETE", ""),
                                          ("https://app.example", "PUT", "authorization-extra"),
                                          ("http://elsewhere.test", "GET", "x-custom")]:
        preflight = {"Origin": origin, "Access-Control-Request-Method": method}
        if asked_headers:
            preflight["Access-Control-Request-Headers"] = asked_headers
        status, headers, body = request(endpoint, "OPTIONS", path, preflight)
        assert (status, error_field(body, "Message")) == (403, NOT_ALLOWED), (origin, method, body)
        assert not cors_headers(headers)


def test_actual_requests_get_cors_headers(kmsim, s3, bucket):
    endpoint = kmsim["endpoint"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"readable", ServerSideEncryption="aws:kms")
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    url = make_s3_client(endpoint).generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    target = urllib.parse.urlsplit(url)
    path = f"{target.path}?{target.query}"
    status, headers, body = request(endpoint, "GET", path, {"Origin": "https://app.example"})
    assert (status, body) == (200, b"readable")
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert headers["access-control-expose-headers"] == "ETag, x-amz-server-side-encryption"
    # Errors carry them too (a browser could not read the error otherwise).
    status, headers, _ = request(endpoint, "GET", f"/{bucket}/missing", {"Origin": "http://elsewhere.test"})
    assert status == 403 and headers["access-control-allow-origin"] == "*"
    # A method no rule allows for the origin, and no Origin at all: no CORS headers.
    status, headers, _ = request(endpoint, "PUT", f"/{bucket}/k", {"Origin": "http://eu.partner.example"}, b"x")
    assert status == 403 and not cors_headers(headers)
    status, headers, _ = request(endpoint, "GET", path)
    assert status == 200 and not cors_headers(headers)


# ---- a real browser ------------------------------------------------------------------------------

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>kmsim CORS upload</title></head>
<body><h1>Upload through a presigned URL</h1>
<script type="module">
window.upload = async (putUrl, getUrl, text) => {
  const put = await fetch(putUrl, { method: "PUT", body: new Blob([text], { type: "text/plain" }) });
  const putStatus = put.status;
  const etag = put.headers.get("ETag");
  const get = await fetch(getUrl);
  return {
    putStatus, etag, getStatus: get.status, body: await get.text(),
    sse: get.headers.get("x-amz-server-side-encryption"), getEtag: get.headers.get("ETag"),
  };
};
window.formUpload = async (url, fields, text) => {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  form.append("file", new Blob([text], { type: "text/plain" }), "from-a-form.txt");
  const response = await fetch(url, { method: "POST", body: form });
  return { status: response.status, etag: response.headers.get("ETag") };
};
window.tryFetch = async (url) => {
  try { const r = await fetch(url, { cache: "no-store" }); return "status " + r.status; } catch (e) { return "blocked: " + e.name; }
};
</script></body></html>"""


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """A page of another origin (another port): kmsim's S3 is cross-origin to it."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_browser_uploads_with_a_presigned_put_and_reads_back(kmsim, s3, kms, bucket, browser, page_origin):
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{
        "AllowedOrigins": [page_origin], "AllowedMethods": ["PUT", "GET", "POST"], "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag", "x-amz-server-side-encryption"], "MaxAgeSeconds": 600}]})
    # boto3's default presigned URLs (Signature V2): the SSE-KMS choice and the content type are in
    # the signed query, so the page sends only its body.
    signer = make_s3_client(kmsim["endpoint"])
    put_url = signer.generate_presigned_url("put_object", Params={
        "Bucket": bucket, "Key": "from-browser.txt", "ContentType": "text/plain",
        "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_id}, ExpiresIn=300)
    get_url = signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "from-browser.txt"})

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(page_origin)
    result = page.evaluate("([put, get]) => window.upload(put, get, 'hello from a browser')", [put_url, get_url])
    assert result["putStatus"] == 200, result
    assert (result["getStatus"], result["body"]) == (200, "hello from a browser")
    assert result["sse"] == "aws:kms"
    assert result["etag"] and result["etag"] == result["getEtag"]
    head = s3.head_object(Bucket=bucket, Key="from-browser.txt")
    assert head["SSEKMSKeyId"].endswith(key_id) and head["ContentType"] == "text/plain"
    assert errors == []

    # An HTML form upload (POST Object) from the page: boto3's default presigned POST, the file
    # named by `${filename}`, SSE-KMS asked for in the form.
    form = signer.generate_presigned_post(
        bucket, "forms/${filename}", Fields={"x-amz-server-side-encryption": "aws:kms"},
        Conditions=[{"x-amz-server-side-encryption": "aws:kms"}, ["starts-with", "$key", "forms/"]])
    result = page.evaluate("([url, fields]) => window.formUpload(url, fields, 'posted by a form')",
                           [form["url"], form["fields"]])
    assert result["status"] == 204, result
    stored = s3.get_object(Bucket=bucket, Key="forms/from-a-form.txt")
    assert (stored["Body"].read(), stored["ServerSideEncryption"]) == (b"posted by a form", "aws:kms")
    assert result["etag"] == stored["ETag"]
    assert errors == []

    # Without a rule for the page's origin the browser blocks the answer.
    s3.delete_bucket_cors(Bucket=bucket)
    assert page.evaluate("(url) => window.tryFetch(url)", get_url) == "blocked: TypeError"
    page.close()
