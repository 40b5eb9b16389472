//! The audit log's size on disk after many KMS calls: drives [`kms::Kms`] directly (no HTTP) with
//! audited GenerateDataKey calls, as the in-process key service makes them, then prints the
//! audit files, their total size, and the bound the retention cap sets (`max_files × max_file_bytes`).
//!
//! `cargo run --release -p kms --example audit_disk -- [calls] [max_file_bytes] [max_files]`
//! (defaults: 1,000,000 calls and the defaults of `AuditOptions`).

use std::time::Instant;

use auth::accounts::{Accounts, DEFAULT_ACCESS_KEY_ID};
use kms::audit::AuditOptions;
use kms::blob::EncryptionContext;
use kms::service::CreateKeyInput;
use kms::{Kms, Storage};
use shared::caller::DEFAULT_REGION;
use shared::{Caller, RequestContext};

fn main() {
    let mut args = std::env::args().skip(1);
    let calls: u64 = args.next().map_or(1_000_000, |a| a.parse().expect("calls: a number"));
    let defaults = AuditOptions::default();
    let max_file_bytes = args.next().map_or(defaults.max_file_bytes, |a| a.parse().expect("max_file_bytes: a number"));
    let max_files = args.next().map_or(defaults.max_files, |a| a.parse().expect("max_files: a number"));
    let options = AuditOptions { max_file_bytes, max_files, ..defaults };

    let dir = tempfile::tempdir().expect("a temporary dir");
    let storage = Storage::Dir { dir: dir.path().to_path_buf(), master_key_file: None };
    let kms = Kms::open_with_audit(&storage, Vec::new(), options.clone()).expect("opening the KMS");
    let caller = Caller {
        via_service: Some("s3.amazonaws.com".into()),
        peer: None,
        decisions: Default::default(),
        ..Accounts::with_defaults().get(DEFAULT_ACCESS_KEY_ID).expect("the default key").caller(DEFAULT_REGION)
    };
    let key = kms.create_key(&caller, CreateKeyInput::default()).expect("CreateKey");
    let context =
        EncryptionContext::from([("aws:s3:arn".to_owned(), "arn:aws:s3:::bench-bucket/objects/0000001".to_owned())]);

    let audited = RequestContext::internal(caller.clone(), "GenerateDataKey", "kms:GenerateDataKey");
    let start = Instant::now();
    for _ in 0..calls {
        let data_key = kms.generate_data_key(&caller, &key.id, 32, &context, true).expect("GenerateDataKey");
        kms.record_call(&audited, Some(data_key.key_arn), Some(context.clone()), "Success");
    }
    let calls_secs = start.elapsed().as_secs_f64();
    kms.audit.flush();
    let total_secs = start.elapsed().as_secs_f64();

    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir.path())
        .expect("listing the data dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.starts_with("audit").then(|| (name, e.metadata().map(|m| m.len()).unwrap_or(0)))
        })
        .collect();
    files.sort();
    let on_disk: u64 = files.iter().map(|(_, len)| len).sum();
    let bound = u64::from(options.max_files) * options.max_file_bytes;
    let health = kms.audit.health();
    println!(
        "calls: {calls} in {calls_secs:.2} s ({:.0}/s); all written after {total_secs:.2} s",
        calls as f64 / calls_secs
    );
    for (name, len) in &files {
        println!("  {name}: {len} bytes");
    }
    println!(
        "audit on disk: {on_disk} bytes ({:.1} MiB) in {} files; bound {bound} bytes ({:.1} MiB); {:.0} bytes per call",
        on_disk as f64 / 1048576.0,
        files.len(),
        bound as f64 / 1048576.0,
        on_disk as f64 / calls.max(1) as f64
    );
    println!(
        "in memory: {} events, {} bytes ({:.0} per event); health: {}",
        health.events_in_memory,
        health.memory_bytes,
        health.memory_bytes as f64 / health.events_in_memory.max(1) as f64,
        serde_json::to_string(&health).unwrap_or_default()
    );
    assert!(on_disk <= bound, "the audit exceeds its retention cap");
    assert!(!health.degraded && health.events_not_written == 0, "{health:?}");
}
