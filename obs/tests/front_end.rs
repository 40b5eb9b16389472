//! The S3 front end driven in-process with signed requests: the answers of the paths that read an
//! object through `Obs::read_latest` (conditional GETs, ranges, HEAD, copy-source ranges) and of
//! the operations kmsim answers NotImplemented, status and body byte for byte.

use std::sync::Arc;

use auth::Verifier;
use auth::accounts::{Accounts, DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY};
use auth::sigv4::{self, SigningParams, UriEncoding};
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use obs::S3Api;
use obs::service::Obs;
use obs::sse_s3::SseS3Key;
use obs::store::Store;
use shared::Caller;
use shared::caller::DEFAULT_REGION;
use shared::key_service::{BoxFuture, DataKey, EncryptionContext, KeyService, KeyServiceError};
use zeroize::Zeroizing;

/// A KMS that is never reached: these tests store plain objects only.
#[derive(Debug)]
struct NoKms;

fn unreachable_kms<T: Send + 'static>() -> BoxFuture<'static, Result<T, KeyServiceError>> {
    Box::pin(async { Err(KeyServiceError::Unavailable("no KMS in this test".into())) })
}

impl KeyService for NoKms {
    fn generate_data_key<'a>(
        &'a self,
        _caller: &'a Caller,
        _key_id: &'a str,
        _context: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<DataKey, KeyServiceError>> {
        unreachable_kms()
    }

    fn decrypt<'a>(
        &'a self,
        _caller: &'a Caller,
        _ciphertext_blob: &'a [u8],
        _context: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, KeyServiceError>> {
        unreachable_kms()
    }

    fn service_managed_key<'a>(
        &'a self,
        _caller: &'a Caller,
        _alias: &'a str,
    ) -> BoxFuture<'a, Result<String, KeyServiceError>> {
        unreachable_kms()
    }

    fn grant_service_access<'a>(
        &'a self,
        _caller: &'a Caller,
        _key_id: &'a str,
        _grantee: &'a str,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<String, KeyServiceError>> {
        unreachable_kms()
    }
}

async fn api() -> S3Api {
    let store = Store::in_memory().await.expect("an in-memory store");
    let obs = Arc::new(Obs::new(store, Arc::new(NoKms), SseS3Key::generate(&shared::Entropy::os())));
    S3Api::new(obs, Arc::new(Verifier::new(Arc::new(Accounts::with_defaults()))), DEFAULT_REGION)
}

/// An answer: status, headers and body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The body of an error document without its (random) request id.
    fn error_body(&self) -> &str {
        self.body.split("<RequestId>").next().unwrap_or("")
    }
}

/// Sends a SigV4-signed request with `extra` headers and `body`.
async fn send(api: &S3Api, method: &str, path_and_query: &str, extra: &[(&'static str, &str)], body: &[u8]) -> Answer {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut headers = HeaderMap::new();
    headers.insert("host", "localhost".parse().unwrap());
    for (name, value) in extra {
        headers.insert(*name, value.parse().unwrap());
    }
    let payload_hash = sigv4::payload_sha256(body);
    headers.insert("x-amz-content-sha256", payload_hash.parse().unwrap());
    if !body.is_empty() {
        headers.insert("content-length", body.len().to_string().parse().unwrap());
    }
    let params = SigningParams {
        access_key_id: DEFAULT_ACCESS_KEY_ID,
        secret_access_key: DEFAULT_SECRET_ACCESS_KEY,
        region: DEFAULT_REGION,
        service: "s3",
        time: shared::time::now_unix(),
    };
    sigv4::sign(method, path, query, &mut headers, &payload_hash, UriEncoding::Single, &params).unwrap();
    let mut request = Request::builder().method(method.parse::<Method>().unwrap()).uri(path_and_query);
    *request.headers_mut().unwrap() = headers;
    let response = api.handle(request.body(Body::from(body.to_vec())).unwrap()).await;
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    Answer { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(&body).into_owned() }
}

#[tokio::test]
async fn reads_answer_from_the_current_record() {
    let api = api().await;
    assert_eq!(send(&api, "PUT", "/bkt", &[], b"").await.status, StatusCode::OK);
    let put = send(&api, "PUT", "/bkt/k", &[], b"hello world").await;
    assert_eq!(put.status, StatusCode::OK);
    let etag = put.header("etag").to_owned();

    let not_modified = send(&api, "GET", "/bkt/k", &[("if-none-match", &etag)], b"").await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.header("etag"), etag);
    assert!(!not_modified.header("last-modified").is_empty());
    assert_eq!(not_modified.body, "");

    let failed = send(&api, "GET", "/bkt/k", &[("if-match", "\"other\"")], b"").await;
    assert_eq!(failed.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        failed.error_body(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-Match</Condition>"
    );

    let range = send(&api, "GET", "/bkt/k", &[("range", "bytes=0-4")], b"").await;
    assert_eq!((range.status, range.body.as_str()), (StatusCode::PARTIAL_CONTENT, "hello"));
    assert_eq!(range.header("content-range"), "bytes 0-4/11");

    let head = send(&api, "HEAD", "/bkt/k?response-content-type=text/plain", &[], b"").await;
    assert_eq!((head.status, head.body.as_str()), (StatusCode::OK, ""));
    assert_eq!((head.header("content-length"), head.header("content-type")), ("11", "text/plain"));

    let whole = send(&api, "GET", "/bkt/k", &[], b"").await;
    assert_eq!((whole.status, whole.body.as_str()), (StatusCode::OK, "hello world"));

    let missing = send(&api, "GET", "/bkt/nothing", &[], b"").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("<Code>NoSuchKey</Code>"), "{}", missing.body);
    assert!(missing.body.contains("<Key>nothing</Key>"), "{}", missing.body);
}

#[tokio::test]
async fn upload_part_copy_reads_its_source_range() {
    let api = api().await;
    send(&api, "PUT", "/bkt", &[], b"").await;
    send(&api, "PUT", "/bkt/source", &[], b"hello world").await;
    let created = send(&api, "POST", "/bkt/k?uploads", &[], b"").await;
    assert_eq!(created.status, StatusCode::OK);
    let upload_id = created.body.split("<UploadId>").nth(1).and_then(|s| s.split('<').next()).unwrap().to_owned();
    let part = format!("/bkt/k?partNumber=1&uploadId={upload_id}");

    let bad =
        send(&api, "PUT", &part, &[("x-amz-copy-source", "/bkt/source"), ("x-amz-copy-source-range", "chars=1")], b"")
            .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("<Code>InvalidArgument</Code><Message>The x-amz-copy-source-range value must be of the form bytes=first-last"), "{}", bad.body);

    let copied = send(
        &api,
        "PUT",
        &part,
        &[("x-amz-copy-source", "/bkt/source"), ("x-amz-copy-source-range", "bytes=0-4")],
        b"",
    )
    .await;
    assert_eq!(copied.status, StatusCode::OK);
    assert!(copied.body.contains("<CopyPartResult"), "{}", copied.body);
    let listed = send(&api, "GET", &format!("/bkt/k?uploadId={upload_id}"), &[], b"").await;
    assert!(listed.body.contains("<Size>5</Size>"), "{}", listed.body);
}

#[tokio::test]
async fn unsupported_operations_answer_not_implemented() {
    let api = api().await;
    send(&api, "PUT", "/bkt", &[], b"").await;
    for (method, path, what) in [
        ("GET", "/bkt?notification", "bucket operation GET ?notification"),
        ("PUT", "/bkt?lifecycle", "bucket operation PUT ?lifecycle"),
        ("GET", "/bkt?website", "bucket operation GET ?website"),
        ("GET", "/bkt?unknown-thing", "bucket operation GET ?unknown-thing"),
        ("DELETE", "/bkt/k?retention", "object operation DELETE ?retention"),
        ("POST", "/bkt/k?select&select-type=2", "object operation POST ?select"),
    ] {
        let answer = send(&api, method, path, &[], b"").await;
        assert_eq!(answer.status, StatusCode::NOT_IMPLEMENTED, "{method} {path}");
        assert_eq!(
            answer.error_body(),
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented: {what} (see docs/api-coverage.md)</Message>"
            ),
            "{method} {path}"
        );
    }
    let answer = send(&api, "POST", "/", &[], b"").await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
}
