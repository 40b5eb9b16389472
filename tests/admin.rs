//! The admin API under `/_sim/`: who may call it (token, SigV4, Host, Origin, content type), the
//! reset of every service, the clock's limits, and the binary's startup checks (data dir modes,
//! non-loopback hosts).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use kmsim::Stack;

use crate::common::{self, RawResponse, raw_request_to};

/// Headers of a request to `addr`: `Host` plus `extra`.
fn head(addr: SocketAddr, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut head = vec![("host".to_owned(), addr.to_string())];
    head.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    head
}

/// What a request was, its headers and body, and the status it must get.
type Case<'a> = (&'a str, Vec<(String, String)>, &'a str, u16);

/// An admin call with the stack's bearer token and a JSON body.
fn admin_call(stack: &Stack, method: &str, path: &str, body: &str) -> RawResponse {
    let bearer = format!("Bearer {}", stack.admin_token());
    let headers = head(stack.addr(), &[("authorization", &bearer), ("content-type", "application/json")]);
    raw_request_to(stack.addr(), method, path, &headers, body.as_bytes())
}

async fn key_count(stack: &Stack) -> usize {
    let keys = common::kms_client(stack).list_keys().send().await.unwrap();
    keys.keys().len()
}

/// The attack of the issue: a web page's CORS "simple request" (an empty `text/plain` POST) must
/// not wipe a persistent data dir, nor may any unauthenticated variant of it.
#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_and_cross_origin_resets_change_nothing() {
    let dir = common::private_dir();
    let stack = Stack::builder().data_dir(dir.path()).start().await.unwrap();
    common::kms_client(&stack).create_key().send().await.unwrap();
    let addr = stack.addr();
    let bearer = format!("Bearer {}", stack.admin_token());
    let cases: [Case; 8] = [
        (
            "simple request from a web page",
            head(addr, &[("origin", "http://evil.example"), ("content-type", "text/plain")]),
            "",
            403,
        ),
        ("text/plain without origin", head(addr, &[("content-type", "text/plain")]), "", 415),
        (
            "form post",
            head(addr, &[("content-type", "application/x-www-form-urlencoded")]),
            "confirm=delete-everything",
            415,
        ),
        (
            "JSON without credentials",
            head(addr, &[("content-type", "application/json")]),
            r#"{"confirm":"delete-everything"}"#,
            401,
        ),
        (
            "wrong token",
            head(addr, &[("content-type", "application/json"), ("authorization", "Bearer 00")]),
            r#"{"confirm":"delete-everything"}"#,
            401,
        ),
        (
            "token, foreign origin",
            head(
                addr,
                &[("content-type", "application/json"), ("authorization", &bearer), ("origin", "http://evil.example")],
            ),
            r#"{"confirm":"delete-everything"}"#,
            403,
        ),
        (
            "token, rebound DNS name",
            vec![
                ("host".into(), "evil.example:4566".into()),
                ("content-type".into(), "application/json".into()),
                ("authorization".into(), bearer.clone()),
            ],
            r#"{"confirm":"delete-everything"}"#,
            403,
        ),
        (
            "token, persistent dir, no confirmation",
            head(addr, &[("content-type", "application/json"), ("authorization", &bearer)]),
            "{}",
            400,
        ),
    ];
    for (what, headers, body, status) in cases {
        let response = raw_request_to(addr, "POST", "/_sim/reset", &headers, body.as_bytes());
        assert_eq!(response.status, status, "{what}: {}", response.body);
        assert_eq!(key_count(&stack).await, 1, "{what} changed state");
    }
    let own_origin = format!("http://{addr}");
    let headers =
        head(addr, &[("content-type", "application/json"), ("authorization", &bearer), ("origin", &own_origin)]);
    let response = raw_request_to(addr, "POST", "/_sim/reset", &headers, br#"{"confirm":"delete-everything"}"#);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(key_count(&stack).await, 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_need_credentials_too_but_health_does_not() {
    let stack = common::stack().await;
    let addr = stack.addr();
    for path in ["/_sim/audit", "/_sim/clock"] {
        assert_eq!(raw_request_to(addr, "GET", path, &head(addr, &[]), b"").status, 401, "{path}");
        assert_eq!(admin_call(&stack, "GET", path, "").status, 200, "{path}");
    }
    let health = raw_request_to(addr, "GET", "/_sim/health", &head(addr, &[]), b"");
    assert_eq!(health.status, 200, "{}", health.body);
    let foreign = raw_request_to(addr, "GET", "/_sim/health", &head(addr, &[("origin", "http://evil.example")]), b"");
    assert_eq!(foreign.status, 403);
    let rebound = raw_request_to(addr, "GET", "/_sim/audit", &[("host".into(), "attacker.example".into())], b"");
    assert_eq!(rebound.status, 403);
    stack.shutdown().await;
}

/// Any configured access key can sign admin calls with SigV4, as `curl --aws-sigv4` does.
#[tokio::test(flavor = "multi_thread")]
async fn sigv4_signed_admin_calls_are_accepted() {
    use auth::sigv4::{SigningParams, UriEncoding, payload_sha256, sign};
    let stack = common::stack().await;
    common::kms_client(&stack).create_key().send().await.unwrap();
    let signed = |secret: &str, body: &[u8]| {
        let mut headers = http::HeaderMap::new();
        headers.insert("host", stack.addr().to_string().parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        let params = SigningParams {
            access_key_id: "test",
            secret_access_key: secret,
            region: "us-east-1",
            service: "kmsim",
            time: shared::time::now_unix(),
        };
        sign("POST", "/_sim/reset", "", &mut headers, &payload_sha256(body), UriEncoding::Double, &params).unwrap();
        headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect::<Vec<_>>()
    };
    let wrong = raw_request_to(stack.addr(), "POST", "/_sim/reset", &signed("not-the-secret", b"{}"), b"{}");
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(key_count(&stack).await, 1);
    // A signature over another body does not carry over.
    let swapped = raw_request_to(stack.addr(), "POST", "/_sim/reset", &signed("test", b"{ }"), b"{}");
    assert_eq!(swapped.status, 401, "{}", swapped.body);
    let ok = raw_request_to(stack.addr(), "POST", "/_sim/reset", &signed("test", b"{}"), b"{}");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(key_count(&stack).await, 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clock_never_goes_back_or_overflows() {
    let stack = common::stack().await;
    for body in [
        r#"{"advance_seconds": -1}"#,
        r#"{"advance_days": -1, "advance_seconds": 86401}"#,
        r#"{"advance_days": 9223372036854775807}"#,
        r#"{"advance_seconds": 9223372036854775807}"#,
        r#"{"advance_days": 106751991167300}"#,
        r#"{"advance_days": 3000000}"#,
    ] {
        let response = admin_call(&stack, "POST", "/_sim/clock", body);
        assert_eq!(response.status, 400, "{body}: {}", response.body);
        assert_eq!(stack.kms().clock.offset(), 0, "{body} moved the clock");
    }
    let response = admin_call(&stack, "POST", "/_sim/clock", r#"{"advance_days": 30}"#);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(stack.kms().clock.offset(), 30 * 86_400);
    stack.shutdown().await;
}

/// The modes of everything in `dir`: each directory 0700 and each file 0600.
fn assert_private(dir: &std::path::Path) {
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{} has mode {mode:o}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            assert_private(&entry.path());
        } else {
            let mode = meta.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} has mode {mode:o}", entry.path().display());
        }
    }
}

/// The binary creates its data dir 0700 and every file in it 0600, writes the admin token it prints,
/// and refuses a data dir that others can read.
#[tokio::test(flavor = "multi_thread")]
async fn the_binary_keeps_its_files_private() {
    use aws_sdk_s3::primitives::ByteStream;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let (mut child, line) = common::spawn_binary_line(&dir);
    let endpoint = line["endpoint"].as_str().unwrap();
    let key = common::kms_client_at(endpoint).create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let s3 = common::s3_client_at(endpoint);
    s3.create_bucket().bucket("private").send().await.unwrap();
    s3.put_object()
        .bucket("private")
        .key("a/b.txt")
        .body(ByteStream::from_static(b"secret"))
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
        .ssekms_key_id(key_id)
        .send()
        .await
        .unwrap();
    let token = std::fs::read_to_string(dir.join(kmsim::ADMIN_TOKEN_FILE)).unwrap();
    assert_eq!(token.trim(), line["admin_token"].as_str().unwrap());
    assert_private(&dir);
    child.kill().unwrap();
    child.wait().unwrap();

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kmsim"))
        .args(["--port", "0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&dir.display().to_string()) && stderr.contains("chmod 700"), "{stderr}");
}

/// A non-loopback `--host` is announced with what it exposes, and the default credentials are
/// refused there unless explicitly allowed.
#[test]
fn a_public_host_warns_and_refuses_default_credentials() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kmsim"))
        .args(["--host", "0.0.0.0", "--port", "0", "--in-memory"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for what in ["WARNING", "test / test", "NBD", "no authentication", "admin API", "--allow-default-credentials"] {
        assert!(stderr.contains(what), "missing {what:?} in: {stderr}");
    }
    assert!(output.stdout.is_empty(), "it must not have started: {}", String::from_utf8_lossy(&output.stdout));
}

/// Without the default account, the startup line names no default credentials.
#[test]
fn the_startup_line_lists_only_enabled_credentials() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kmsim.toml");
    std::fs::write(
        &config,
        "default_account = false\n[[accounts]]\nid = \"111122223333\"\n\
         access_keys = [{ access_key_id = \"AKIDALICE\", secret_access_key = \"alice-secret\" }]\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kmsim"))
        .args(["--port", "0", "--in-memory", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["access_key_ids"], serde_json::json!(["AKIDALICE"]));
    assert!(line.get("access_key_id").is_none() && line.get("secret_access_key").is_none(), "{line}");
    assert!(!line.to_string().contains("alice-secret"));
}
