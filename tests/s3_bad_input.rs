//! Bad input to the object store over raw HTTP: short bodies, bad digests and chunked framing,
//! forged chunk signatures. Each gets S3's error, nothing is stored, and the server keeps serving.

use std::io::{Read, Write};

use crate::common::{s3_client, stack};

/// Signed request head for `method path` with `headers` (must include the payload mode).
fn signed_head(addr: std::net::SocketAddr, method: &str, path: &str, extra: &[(&str, &str)], payload: &str) -> String {
    let headers = crate::common::s3_signed_headers(addr, method, path, "", extra, payload);
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in &headers {
        head.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap()));
    }
    head
}

/// Sends a request and returns (status, body). When `body` is shorter than announced, the write
/// side is closed after it, as a client that dies mid-upload would.
fn send(addr: std::net::SocketAddr, head: &str, content_length: usize, body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let request = format!("{head}content-length: {content_length}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    if body.len() < content_length {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn short_or_malformed_bodies_store_nothing() {
    let stack = stack().await;
    let addr = stack.addr();
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("bad").send().await.unwrap();

    // Fewer bytes than Content-Length, then the connection closes.
    let head =
        signed_head(addr, "PUT", "/bad/short", &[("x-amz-server-side-encryption", "aws:kms")], "UNSIGNED-PAYLOAD");
    let (status, _) = tokio::task::spawn_blocking(move || send(addr, &head, 1000, &[b'x'; 500])).await.unwrap();
    assert!(status == 400 || status == 0, "status {status}");

    // aws-chunked whose decoded length disagrees with x-amz-decoded-content-length.
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    let head = signed_head(
        addr,
        "PUT",
        "/bad/decoded",
        &[("x-amz-decoded-content-length", "6"), ("content-encoding", "aws-chunked")],
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    );
    let (status, text) = tokio::task::spawn_blocking(move || send(addr, &head, body.len(), body)).await.unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("IncompleteBody"), "{text}");

    // Garbled chunk framing.
    let body = b"zz\r\nhello\r\n0\r\n\r\n";
    let head = signed_head(
        addr,
        "PUT",
        "/bad/garbled",
        &[("x-amz-decoded-content-length", "5")],
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    );
    let (status, _) = tokio::task::spawn_blocking(move || send(addr, &head, body.len(), body)).await.unwrap();
    assert_eq!(status, 400);

    // A forged chunk signature.
    let body = format!("5;chunk-signature={}\r\nhello\r\n0;chunk-signature={}\r\n\r\n", "0".repeat(64), "0".repeat(64));
    let head = signed_head(
        addr,
        "PUT",
        "/bad/forged",
        &[("x-amz-decoded-content-length", "5")],
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    );
    let (status, text) =
        tokio::task::spawn_blocking(move || send(addr, &head, body.len(), body.as_bytes())).await.unwrap();
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");

    // A signed payload hash that does not match the body.
    let digest = auth::sigv4::payload_sha256(b"expected");
    let head = signed_head(addr, "PUT", "/bad/digest", &[], &digest);
    let (status, text) = tokio::task::spawn_blocking(move || send(addr, &head, 8, b"received")).await.unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("XAmzContentSHA256Mismatch"), "{text}");

    // A wrong Content-MD5.
    let head = signed_head(addr, "PUT", "/bad/md5", &[("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")], "UNSIGNED-PAYLOAD");
    let (status, text) = tokio::task::spawn_blocking(move || send(addr, &head, 4, b"data")).await.unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("BadDigest"), "{text}");

    // Nothing of the above is visible, and the server keeps serving.
    let listed = s3.list_objects_v2().bucket("bad").send().await.unwrap();
    assert_eq!(listed.key_count, Some(0), "{:?}", listed.contents);
    s3.put_object()
        .bucket("bad")
        .key("fine")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"ok"))
        .send()
        .await
        .unwrap();
}

/// A V2-signed request (`AWS` or `OBS` signature over `signed` headers), with `injected` headers added after
/// signing, as someone replaying a captured request would: (status, response).
fn v2_send(
    addr: std::net::SocketAddr,
    method: &str,
    target: (&str, &str),
    dialect: auth::sigv2::Dialect,
    signed: &[(&str, &str)],
    injected: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let (path, query) = target;
    let mut headers = http::HeaderMap::new();
    headers.insert("host", addr.to_string().parse().unwrap());
    headers.insert(dialect.date_header(), shared::time::format_amz_date(shared::time::now_unix()).parse().unwrap());
    for (k, v) in signed {
        headers.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let request = auth::sigv2::SignedRequest {
        parts: auth::RequestParts { method, path, query: "", headers: &headers },
        virtual_bucket: None,
    };
    let to_sign =
        auth::sigv2::string_to_sign(&request, dialect, auth::sigv2::Carrier::Header, auth::sigv2::Convention::Obs)
            .unwrap();
    let scheme = if dialect == auth::sigv2::Dialect::Obs { "OBS" } else { "AWS" };
    let authorization = format!("{scheme} test:{}", auth::sigv2::sign("test", &to_sign));
    let target = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
    let mut head = format!("{method} {target} HTTP/1.1\r\nauthorization: {authorization}\r\n");
    for (k, v) in headers.iter().map(|(k, v)| (k.as_str(), v.to_str().unwrap())).chain(injected.iter().copied()) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    send(addr, &head, body.len(), body)
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_a_signature_does_not_cover_are_refused() {
    use auth::sigv2::Dialect;
    let stack = stack().await;
    let s3 = s3_client(&stack);
    for bucket in ["v2-src", "v2-dst"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    s3.put_object().bucket("v2-src").key("secret").body(b"TOP SECRET".to_vec().into()).send().await.unwrap();
    let addr = stack.addr();

    // Signed requests work as they are.
    let (status, _) = v2_send(addr, "PUT", ("/v2-dst/plain", ""), Dialect::Obs, &[], &[], b"harmless");
    assert_eq!(status, 200);
    // A header of the other family, added to a signed request, would turn a PUT into a copy of another object
    // (or change its encryption): refused, and nothing is written.
    let cases = [
        (Dialect::Obs, ("x-amz-copy-source", "/v2-src/secret")),
        (Dialect::Aws, ("x-obs-copy-source", "/v2-src/secret")),
        (Dialect::Aws, ("x-obs-server-side-encryption", "AES256")),
    ];
    for (dialect, injected) in cases {
        let (status, text) = v2_send(addr, "PUT", ("/v2-dst/injected", ""), dialect, &[], &[injected], b"harmless");
        assert_eq!(status, 400, "{dialect:?} + {injected:?}: {text}");
        assert!(text.contains("InvalidArgument"), "{text}");
    }
    let missing = s3.get_object().bucket("v2-dst").key("injected").send().await.unwrap_err();
    assert!(format!("{missing:?}").contains("NoSuchKey"), "{missing:?}");

    // A V2 signature covers its sub-resources: one made for `PUT /bucket` is no signature for
    // `PUT /bucket?encryption`.
    let config = b"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>\
        <SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>\
        </ServerSideEncryptionConfiguration>";
    let (status, text) = v2_send(addr, "PUT", ("/v2-dst", "encryption"), Dialect::Aws, &[], &[], config);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    // Nothing was configured: the bucket still reports S3's base encryption, SSE-S3 without a key.
    let encryption = s3.get_bucket_encryption().bucket("v2-dst").send().await.unwrap();
    let rules = encryption.server_side_encryption_configuration.unwrap().rules;
    let default = rules[0].apply_server_side_encryption_by_default.as_ref().unwrap();
    assert_eq!((default.sse_algorithm.as_str(), default.kms_master_key_id.as_deref()), ("AES256", None));
}

#[tokio::test(flavor = "multi_thread")]
async fn obs_requests_get_the_limits_of_obs() {
    use auth::sigv2::Dialect;
    let stack = stack().await;
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("obs-limits").send().await.unwrap();
    let addr = stack.addr();
    let put =
        |dialect, header: (&str, &str)| v2_send(addr, "PUT", ("/obs-limits/k", ""), dialect, &[header], &[], b"x");
    // OBS allows 8 KB of user metadata, S3 2 KB.
    let (status, text) = put(Dialect::Obs, ("x-obs-meta-a", &"v".repeat(3000)));
    assert_eq!(status, 200, "{text}");
    let (status, text) = put(Dialect::Obs, ("x-obs-meta-a", &"v".repeat(8200)));
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("<Code>MetadataTooLarge</Code>"), "{text}");
    let (status, text) = put(Dialect::Aws, ("x-amz-meta-a", &"v".repeat(3000)));
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("<Code>MetadataTooLarge</Code>"), "{text}");
    // Storage classes of each service.
    let (status, text) = put(Dialect::Obs, ("x-obs-storage-class", "WARM"));
    assert_eq!(status, 200, "{text}");
    for (dialect, header) in
        [(Dialect::Obs, ("x-obs-storage-class", "GLACIER_IR")), (Dialect::Aws, ("x-amz-storage-class", "WARM"))]
    {
        let (status, text) = put(dialect, header);
        assert_eq!(status, 400, "{header:?}: {text}");
        assert!(text.contains("<Code>InvalidStorageClass</Code>"), "{text}");
    }
}
