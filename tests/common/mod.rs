//! The shared harness: a [`Stack`] on an ephemeral port and an `aws-sdk-kms` client for it.

use aws_credential_types::Credentials;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use kmsim::Stack;

/// An in-memory stack with the default configuration.
pub async fn stack() -> Stack {
    Stack::builder().start().await.expect("stack starts")
}

/// An `aws-sdk-kms` client for `stack` with the default credentials.
pub fn kms_client(stack: &Stack) -> aws_sdk_kms::Client {
    let (ak, sk) = stack.credentials();
    kms_client_with(stack, ak, sk)
}

/// An `aws-sdk-kms` client for `stack` with the given credentials (region of the stack).
pub fn kms_client_with(stack: &Stack, access_key_id: &str, secret: &str) -> aws_sdk_kms::Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(stack.endpoint())
        .region(Region::new(stack.region().to_owned()))
        .credentials_provider(Credentials::new(access_key_id, secret, None, None, "kmsim-tests"))
        .http_client(http)
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// The `kmsim` binary on port 0 with a data dir, and its endpoint (read from its JSON line).
pub fn spawn_binary(dir: &std::path::Path) -> (std::process::Child, String) {
    let (child, line) = spawn_binary_line(dir);
    (child, line["endpoint"].as_str().expect("an endpoint").to_owned())
}

/// The `kmsim` binary on port 0 with a data dir, and the JSON line it prints once it serves (endpoint, nbd, ...).
pub fn spawn_binary_line(dir: &std::path::Path) -> (std::process::Child, serde_json::Value) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kmsim"))
        .args(["--port", "0", "--log", "warn", "--data-dir"])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kmsim starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, serde_json::from_str(&line).expect("a JSON line"))
}

/// An `aws-sdk-kms` client for a spawned binary, without retries (a killed server fails fast).
pub fn kms_client_at(endpoint: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "kmsim-tests"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// An `aws-sdk-s3` client (path style) for a spawned binary, without retries.
pub fn s3_client_at(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "kmsim-tests"))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A raw HTTP response: status and body.
#[derive(Debug)]
pub struct RawResponse {
    /// HTTP status code.
    pub status: u16,
    /// The status line and the headers, as sent.
    pub head: String,
    /// Body as text.
    pub body: String,
}

impl RawResponse {
    /// The `__type` of an AWS JSON error body.
    pub fn error_type(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["__type"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Sends one HTTP/1.1 request for `/` over a fresh connection and reads the whole response.
pub fn raw_request(addr: std::net::SocketAddr, head: &[(String, String)], method: &str, body: &[u8]) -> RawResponse {
    raw_request_to(addr, method, "/", head, body)
}

/// Sends one HTTP/1.1 request for `target` (path and query) over a fresh connection and reads the whole response.
pub fn raw_request_to(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    head: &[(String, String)],
    body: &[u8],
) -> RawResponse {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let mut request = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in head {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).expect("write head");
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    RawResponse { status, head: head.to_owned(), body: dechunk(body) }
}

/// Undoes chunked transfer encoding if the body looks chunked.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else { return body.to_owned() };
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { return body.to_owned() };
        if size == 0 {
            return out;
        }
        if after.len() < size {
            return body.to_owned();
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
}

/// Sends a KMS JSON request signed with `secret` for access key `access_key_id`.
pub fn kms_raw(
    stack_addr: std::net::SocketAddr,
    target: &str,
    body: &[u8],
    access_key_id: &str,
    secret: &str,
) -> RawResponse {
    use auth::sigv4::{SigningParams, UriEncoding, payload_sha256, sign};
    let mut headers = http::HeaderMap::new();
    headers.insert("host", stack_addr.to_string().parse().unwrap());
    headers.insert("content-type", "application/x-amz-json-1.1".parse().unwrap());
    headers.insert("x-amz-target", format!("TrentService.{target}").parse().unwrap());
    let params = SigningParams {
        access_key_id,
        secret_access_key: secret,
        region: "us-east-1",
        service: "kms",
        time: shared::time::now_unix(),
    };
    sign("POST", "/", "", &mut headers, &payload_sha256(body), UriEncoding::Double, &params).unwrap();
    let head: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
    raw_request(stack_addr, &head, "POST", body)
}

/// An EVS (or other OTC-dialect) request to `addr`, signed with SDK-HMAC-SHA256 by the default credentials for the
/// default project; a null `body` sends none.
pub fn evs_raw(addr: std::net::SocketAddr, method: &str, path: &str, body: &serde_json::Value) -> RawResponse {
    use auth::sdk_hmac::{self, Credentials};
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    let mut headers = http::HeaderMap::new();
    headers.insert("host", addr.to_string().parse().unwrap());
    headers.insert("content-type", "application/json;charset=UTF-8".parse().unwrap());
    headers.insert("x-project-id", shared::caller::DEFAULT_PROJECT_ID.parse().unwrap());
    let credentials = Credentials { access_key_id: "test", secret_access_key: "test" };
    sdk_hmac::sign(method, path, "", &mut headers, &body, credentials, shared::time::now_unix()).unwrap();
    let head: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect();
    raw_request_to(addr, method, path, &head, &body)
}

/// An `aws-sdk-s3` client for `stack` (path-style) with the default credentials.
pub fn s3_client(stack: &Stack) -> aws_sdk_s3::Client {
    let (ak, sk) = stack.credentials();
    s3_client_with(stack, ak, sk)
}

/// An `aws-sdk-s3` client for `stack` (path-style) with the given credentials.
pub fn s3_client_with(stack: &Stack, access_key_id: &str, secret: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(stack.endpoint())
        .region(aws_sdk_s3::config::Region::new(stack.region().to_owned()))
        .credentials_provider(Credentials::new(access_key_id, secret, None, None, "kmsim-tests"))
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A temporary directory with mode 0700, as kmsim wants its data dir (it refuses one that others can
/// read; `tempfile::tempdir()` follows the umask).
pub fn private_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .expect("a temporary directory")
}

/// The headers of an S3 request to `addr` signed with SigV4 by the default credentials: `host`,
/// `x-amz-content-sha256: payload`, then `extra` (all signed), `x-amz-date` and `authorization`.
pub fn s3_signed_headers(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    query: &str,
    extra: &[(&str, &str)],
    payload: &str,
) -> http::HeaderMap {
    use auth::sigv4::{SigningParams, UriEncoding, sign};
    let mut headers = http::HeaderMap::new();
    headers.insert("host", addr.to_string().parse().unwrap());
    headers.insert("x-amz-content-sha256", payload.parse().unwrap());
    for (k, v) in extra {
        headers.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let params = SigningParams {
        access_key_id: "test",
        secret_access_key: "test",
        region: "us-east-1",
        service: "s3",
        time: shared::time::now_unix(),
    };
    sign(method, path, query, &mut headers, payload, UriEncoding::Single, &params).unwrap();
    headers
}
