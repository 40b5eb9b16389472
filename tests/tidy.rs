//! Architecture invariants, made executable: the domain cores of the KMS, the object store, the
//! volume service and the identity store name no HTTP machinery (`axum`, `http::`, `hyper`); only
//! their front ends (`kms/src/aws.rs`, `kms/src/otc.rs`, `obs/src/http.rs` and its wire modules,
//! `evs/src/http.rs`, `iam/src/http.rs`) speak HTTP. The object store's core also never builds the S3 wire
//! error: it fails with its own `obs::Error`, mapped to the wire in one place.

/// A core source file, as compiled: its path in the workspace and its text.
type Source = (&'static str, &'static str);

macro_rules! sources {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path)))),*]
    };
}

/// Every core module of the four services (and the identity every access key carries).
const CORES: &[Source] = sources![
    "kms/src/service.rs",
    "kms/src/model.rs",
    "kms/src/store.rs",
    "kms/src/blob.rs",
    "kms/src/material.rs",
    "shared/src/clock.rs",
    "kms/src/error.rs",
    "kms/src/audit.rs",
    "kms/src/in_process.rs",
    "kms/src/operation.rs",
    "kms/src/aws/operation.rs",
    "kms/src/otc/verb.rs",
    "obs/src/service.rs",
    "obs/src/store.rs",
    "obs/src/model.rs",
    "obs/src/envelope.rs",
    "obs/src/multipart.rs",
    "obs/src/sse.rs",
    "obs/src/sse_s3.rs",
    "obs/src/bucket_keys.rs",
    "obs/src/checksum.rs",
    "obs/src/error.rs",
    "obs/src/acl.rs",
    "obs/src/access.rs",
    "evs/src/service.rs",
    "evs/src/model.rs",
    "evs/src/error.rs",
    "evs/src/operation.rs",
    "evs/src/luks.rs",
    "evs/src/extents.rs",
    "evs/src/device.rs",
    "evs/src/nbd.rs",
    "iam/src/identities.rs",
    "iam/src/sts.rs",
    "iam/src/store.rs",
    "iam/src/model.rs",
    "iam/src/secrets.rs",
    "iam/src/validate.rs",
    "iam/src/operation.rs",
    "iam/src/error.rs",
    "auth/src/identity.rs",
];

/// Words that name HTTP machinery.
const HTTP: &[&str] = &["axum", "http::", "hyper"];
/// Words that name the S3 wire error, which only the object store's front end builds.
const S3_WIRE: &[&str] = &["S3Error::", "s3_error::", "S3ErrorCode"];

/// Every line of `source` that names one of `words`, as `file:line: text`.
fn offences(file: &str, source: &str, words: &[&str]) -> Vec<String> {
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| words.iter().any(|word| line.contains(word)))
        .map(|(n, line)| format!("{file}:{}: {}", n + 1, line.trim()))
        .collect()
}

#[test]
fn the_cores_name_no_http_machinery() {
    let found: Vec<String> = CORES.iter().flat_map(|(file, source)| offences(file, source, HTTP)).collect();
    assert!(found.is_empty(), "a domain core must not name axum, http:: or hyper:\n{}", found.join("\n"));
}

#[test]
fn the_object_store_core_never_builds_the_s3_wire_error() {
    let found: Vec<String> = CORES
        .iter()
        .filter(|(file, _)| file.starts_with("obs/"))
        .flat_map(|(file, source)| offences(file, source, S3_WIRE))
        .collect();
    assert!(found.is_empty(), "the object store's core fails with obs::Error:\n{}", found.join("\n"));
}

#[test]
fn the_check_sees_an_offence() {
    let found = offences("x.rs", "use std::io;\nuse axum::http::StatusCode;\n", HTTP);
    assert_eq!(found, ["x.rs:2: use axum::http::StatusCode;"]);
    assert_eq!(offences("x.rs", "fn f() -> hyper::Body {}", HTTP).len(), 1);
    assert!(offences("x.rs", "let url = \"https://example.com\";", HTTP).is_empty());
    assert_eq!(offences("x.rs", "Err(S3Error::new(code))", S3_WIRE).len(), 1);
}
