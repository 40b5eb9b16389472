//! Architecture invariant, made executable: the volume service's core (the service, its records and errors, the
//! volume format, the block device, the NBD server, the operation list) names no HTTP crate. Only `http.rs` speaks
//! HTTP.

/// The core's source files, as compiled.
const CORE: &[(&str, &str)] = &[
    ("service.rs", include_str!("service.rs")),
    ("model.rs", include_str!("model.rs")),
    ("error.rs", include_str!("error.rs")),
    ("operation.rs", include_str!("operation.rs")),
    ("luks.rs", include_str!("luks.rs")),
    ("extents.rs", include_str!("extents.rs")),
    ("device.rs", include_str!("device.rs")),
    ("nbd.rs", include_str!("nbd.rs")),
];

/// Words that name HTTP machinery.
const FORBIDDEN: &[&str] = &["axum", "http::", "hyper"];

/// Every line of `source` that names a forbidden word, as `file:line: text`.
fn offences(file: &str, source: &str) -> Vec<String> {
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| FORBIDDEN.iter().any(|word| line.contains(word)))
        .map(|(n, line)| format!("{file}:{}: {}", n + 1, line.trim()))
        .collect()
}

#[test]
fn the_core_names_no_http_crate() {
    let found: Vec<String> = CORE.iter().flat_map(|(file, source)| offences(file, source)).collect();
    assert!(found.is_empty(), "the EVS core must not name axum, http:: or hyper:\n{}", found.join("\n"));
}

#[test]
fn the_check_sees_an_offence() {
    let found = offences("x.rs", "use std::io;\nuse axum::http::StatusCode;\n");
    assert_eq!(found, ["x.rs:2: use axum::http::StatusCode;"]);
    assert!(offences("x.rs", "fn f() -> hyper::Body {}").len() == 1);
    assert!(offences("x.rs", "let url = \"https://example.com\";").is_empty());
}
