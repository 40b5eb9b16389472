//! Hardening of the object store: listing parameters at the edges of their integer types never
//! panic, stored records that disagree with their bodies or carry an unknown format are errors
//! (or set aside at start), never short bodies.

use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use crate::common::s3_client;

/// Sends a request signed with the default credentials (empty body) and returns (status, text).
pub(crate) fn signed_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    query: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    signed_request_adding(addr, method, path, query, extra, &[])
}

/// [`signed_request`], with `unsigned` headers added after signing.
pub(crate) fn signed_request_adding(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    query: &str,
    extra: &[(&str, &str)],
    unsigned: &[(&str, &str)],
) -> (u16, String) {
    let mut headers = crate::common::s3_signed_headers(addr, method, path, query, extra, auth::sigv4::EMPTY_SHA256);
    for (k, v) in unsigned {
        headers.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    let target = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
    raw(addr, method, &target, &headers)
}

/// Sends `method target` with `headers` and an empty body; returns (status, text).
fn raw(addr: std::net::SocketAddr, method: &str, target: &str, headers: &http::HeaderMap) -> (u16, String) {
    use std::io::{Read, Write};
    let mut request = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap()));
    }
    request.push_str("content-length: 0\r\nconnection: close\r\n\r\n");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

async fn signed(addr: std::net::SocketAddr, method: &str, path: &str, query: &str) -> (u16, String) {
    let (method, path, query) = (method.to_owned(), path.to_owned(), query.to_owned());
    tokio::task::spawn_blocking(move || signed_request(addr, &method, &path, &query, &[])).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_parameters_at_the_limits_of_their_types_do_not_panic() {
    let stack = crate::common::stack().await;
    let addr = stack.addr();
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("limits").send().await.unwrap();
    let upload = s3.create_multipart_upload().bucket("limits").key("k").send().await.unwrap();
    let id = upload.upload_id().unwrap().to_owned();
    s3.upload_part()
        .bucket("limits")
        .key("k")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();

    // ListParts after the highest part number there is: an empty page.
    let (status, text) =
        signed(addr, "GET", "/limits/k", &format!("part-number-marker=4294967295&uploadId={id}")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("<IsTruncated>false</IsTruncated>") && !text.contains("<Part>"), "{text}");
    let (status, text) = signed(addr, "GET", "/limits/k", &format!("max-parts=0&uploadId={id}")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("<IsTruncated>true</IsTruncated>") && !text.contains("<Part>"), "{text}");

    // ListMultipartUploads with max-uploads=0 while an upload is in progress.
    let (status, text) = signed(addr, "GET", "/limits", "max-uploads=0&uploads=").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("<IsTruncated>true</IsTruncated>") && !text.contains("<Upload>"), "{text}");
    let (status, text) = signed(addr, "GET", "/limits", "max-uploads=18446744073709551615&uploads=").await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = signed(addr, "GET", "/limits", "max-uploads=18446744073709551616&uploads=").await;
    assert!(status == 200 || status == 400, "{text}");

    // ListObjects with max-keys 0 and at the top of usize; a part number above u32.
    s3.put_object().bucket("limits").key("o").body(ByteStream::from_static(b"x")).send().await.unwrap();
    let (status, text) = signed(addr, "GET", "/limits", "list-type=2&max-keys=0").await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = signed(addr, "GET", "/limits", "list-type=2&max-keys=18446744073709551615").await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = signed(addr, "GET", "/limits/o", "").await;
    assert_eq!(status, 200, "{text}");
    let range = [("range", "bytes=0-18446744073709551615")];
    let (status, text) =
        tokio::task::spawn_blocking(move || signed_request(addr, "GET", "/limits/o", "", &range)).await.unwrap();
    assert_eq!(status, 206, "{text}");
    let range = [("range", "bytes=-18446744073709551615")];
    let (status, text) =
        tokio::task::spawn_blocking(move || signed_request(addr, "GET", "/limits/o", "", &range)).await.unwrap();
    assert_eq!(status, 206, "{text}");

    // The server still serves.
    s3.list_objects_v2().bucket("limits").send().await.unwrap();
}

/// The record file of `bucket`/`key` under a data dir.
fn record_path(data_dir: &Path, bucket: &str, key: &str) -> PathBuf {
    for entry in std::fs::read_dir(data_dir.join("objects/meta").join(bucket)).unwrap() {
        let path = entry.unwrap().path();
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if record["key"] == key {
            return path;
        }
    }
    panic!("no record for {key}");
}

/// Rewrites one field of a stored record.
fn edit_record(data_dir: &Path, bucket: &str, key: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = record_path(data_dir, bucket, key);
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut record);
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
}

/// GET of a whole object or a range: `Ok(bytes)` only if a 2xx came with a whole body.
async fn read(s3: &aws_sdk_s3::Client, key: &str, range: Option<&str>) -> Result<Vec<u8>, String> {
    let out = s3.get_object().bucket("edit").key(key).set_range(range.map(str::to_owned)).send().await;
    let out = out.map_err(|e| format!("{e:?}"))?;
    out.body.collect().await.map(|b| b.into_bytes().to_vec()).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lowered_size_in_a_record_is_an_error_never_a_short_body() {
    let dir = crate::common::private_dir();
    let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let stack = kmsim::Stack::builder().data_dir(dir.path()).start().await.unwrap();
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("edit").send().await.unwrap();
    for (key, sse) in
        [("plain", None), ("kms", Some(ServerSideEncryption::AwsKms)), ("s3", Some(ServerSideEncryption::Aes256))]
    {
        s3.put_object()
            .bucket("edit")
            .key(key)
            .set_server_side_encryption(sse)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
    }
    stack.shutdown().await;
    for (key, lowered) in [("plain", 10u64), ("kms", 10), ("s3", 70_000)] {
        edit_record(dir.path(), "edit", key, |r| r["size"] = (data.len() as u64 - lowered).into());
    }
    let stack = kmsim::Stack::builder().data_dir(dir.path()).start().await.unwrap();
    let s3 = s3_client(&stack);
    for key in ["plain", "kms", "s3"] {
        for range in [None, Some("bytes=-100"), Some("bytes=70000-79999")] {
            if let Ok(got) = read(&s3, key, range).await {
                let expected = match range {
                    None => &data[..],
                    Some("bytes=-100") => &data[data.len() - 100..],
                    Some(_) => &data[70_000..80_000],
                };
                assert!(
                    got == expected,
                    "{key} {range:?}: a {}-byte body was served for a record that lies",
                    got.len()
                );
            }
        }
    }
    // The server still serves other objects.
    s3.put_object().bucket("edit").key("fresh").body(ByteStream::from_static(b"ok")).send().await.unwrap();
    assert_eq!(read(&s3, "fresh", None).await.unwrap(), b"ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_or_future_record_is_set_aside_and_the_server_starts() {
    let dir = crate::common::private_dir();
    let stack = kmsim::Stack::builder().data_dir(dir.path()).start().await.unwrap();
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("edit").send().await.unwrap();
    for key in ["good", "damaged", "future"] {
        s3.put_object()
            .bucket("edit")
            .key(key)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .unwrap();
    }
    stack.shutdown().await;
    let damaged = record_path(dir.path(), "edit", "damaged");
    std::fs::write(&damaged, b"{\"format\":1,\"key\":\"damaged\",").unwrap();
    edit_record(dir.path(), "edit", "future", |r| r["format"] = 3.into());
    let stack = kmsim::Stack::builder().data_dir(dir.path()).start().await.expect("the server starts");
    let s3 = s3_client(&stack);
    assert_eq!(read(&s3, "good", None).await.unwrap(), b"data");
    for key in ["damaged", "future"] {
        let e = s3.get_object().bucket("edit").key(key).send().await.unwrap_err();
        assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404), "{key}");
    }
    assert!(damaged.with_extension("json.unreadable").exists());
    // The admin API reports them.
    let health = crate::common::raw_request_to(
        stack.addr(),
        "GET",
        "/_sim/health",
        &[("host".to_owned(), stack.addr().to_string())],
        b"",
    );
    let health: serde_json::Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["services"]["obs"]["records_set_aside"], 2, "{health}");
}

/// Runs [`signed_request_adding`] off the runtime.
async fn send(
    addr: std::net::SocketAddr,
    method: &'static str,
    path: &'static str,
    signed: Vec<(&'static str, String)>,
    unsigned: Vec<(&'static str, String)>,
) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let signed: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let unsigned: Vec<(&str, &str)> = unsigned.iter().map(|(k, v)| (*k, v.as_str())).collect();
        signed_request_adding(addr, method, path, "", &signed, &unsigned)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_s3_refuses_are_refused_with_s3_errors() {
    let stack = crate::common::stack().await;
    let addr = stack.addr();
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("refuse").send().await.unwrap();

    // User metadata: 2 KB of names and values at most.
    let (status, text) = send(addr, "PUT", "/refuse/meta", vec![("x-amz-meta-a", "v".repeat(2047))], vec![]).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = send(addr, "PUT", "/refuse/meta", vec![("x-amz-meta-ab", "v".repeat(2047))], vec![]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("<Code>MetadataTooLarge</Code>"), "{text}");

    // Storage classes S3 has, and one it has not.
    let (status, text) =
        send(addr, "PUT", "/refuse/class", vec![("x-amz-storage-class", "STANDARD_IA".into())], vec![]).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) =
        send(addr, "PUT", "/refuse/class", vec![("x-amz-storage-class", "PLATINUM".into())], vec![]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("<Code>InvalidStorageClass</Code>"), "{text}");

    // More than 8 KB of request headers.
    let (status, text) = send(addr, "PUT", "/refuse/big", vec![("x-big", "b".repeat(9000))], vec![]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("<Code>RequestHeaderSectionTooLarge</Code>"), "{text}");

    // x-amz-* headers the signature does not cover.
    let (status, text) =
        send(addr, "PUT", "/refuse/unsigned", vec![], vec![("x-amz-server-side-encryption", "AES256".into())]).await;
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("<Code>AccessDenied</Code>") && text.contains("<HeadersNotSigned>x-amz-server-side-encryption"),
        "{text}"
    );
    let presigned = s3
        .get_object()
        .bucket("refuse")
        .key("meta")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let target = presigned.uri().strip_prefix(&stack.endpoint()).unwrap().to_owned();
    let mut headers = http::HeaderMap::new();
    headers.insert("host", addr.to_string().parse().unwrap());
    for (name, value) in presigned.headers() {
        headers.insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    let (plain, with_extra) = tokio::task::spawn_blocking(move || {
        let plain = raw(addr, "GET", &target, &headers);
        headers.insert("x-amz-checksum-mode", "ENABLED".parse().unwrap());
        (plain, raw(addr, "GET", &target, &headers))
    })
    .await
    .unwrap();
    assert_eq!(plain.0, 200, "{}", plain.1);
    assert_eq!(with_extra.0, 403, "{}", with_extra.1);
    assert!(with_extra.1.contains("<HeadersNotSigned>x-amz-checksum-mode</HeadersNotSigned>"), "{}", with_extra.1);

    // aws-chunked is not stored as a content coding; other codings are.
    for (sent, stored) in [("aws-chunked,gzip", Some("gzip")), ("aws-chunked", None), ("br", Some("br"))] {
        let (status, text) = send(addr, "PUT", "/refuse/coded", vec![("content-encoding", sent.into())], vec![]).await;
        assert_eq!(status, 200, "{text}");
        let head = s3.head_object().bucket("refuse").key("coded").send().await.unwrap();
        assert_eq!(head.content_encoding(), stored, "{sent}");
    }
}
