//! Memory per stored object (ignored: a measurement, not a check). Commits N SSE-KMS object
//! records (as PutObject makes them) through an in-memory `Store` and reads VmRSS: that is the
//! index (the in-memory store keeps no second copy of object records in its backend); then puts the
//! same records' JSON straight into a bare in-memory backend, to show what such a copy would cost.
//! Run with
//! `OBS_MEMORY_OBJECTS=1000000 cargo test -p obs --test memory -- --ignored --nocapture` (the
//! figures of `docs/benchmarks.md`; `--release` is faster and lays memory out the same).

use std::collections::BTreeMap;

use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use obs::model::{BucketRecord, ObjectRecord, RECORD_FORMAT, SseRecord};
use obs::store::Store;

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// The record PutObject writes for an SSE-KMS object with a CRC32 checksum (as current SDKs send).
fn record(i: usize) -> ObjectRecord {
    let key = format!("photos/2026/12/{i:08}.jpg");
    ObjectRecord {
        format: RECORD_FORMAT,
        key: key.clone(),
        size: 123_456,
        etag: format!("\"{:032x}\"", i as u128 * 0x9e37_79b9_7f4a_7c15),
        last_modified_millis: 1_780_000_000_000,
        content_type: Some("image/jpeg".to_owned()),
        headers: BTreeMap::new(),
        metadata: BTreeMap::new(),
        sse: SseRecord::Kms {
            key_arn: "arn:aws:kms:us-east-1:000000000000:key/2f1b7c9e-4b8a-4d0e-9c6f-3a5d8e7f1b2c".to_owned().into(),
            context: BTreeMap::from([("aws:s3:arn".to_owned(), format!("arn:aws:s3:::memory/{key}"))]).into(),
            user_context: None,
            bucket_key: false,
        },
        blob: format!("data/memory/{}", uuid::Uuid::new_v4()),
        stored_size: 123_456 + 2 * 36 + 500,
        envelope_header_len: Some(500),
        checksum: Some(("x-amz-checksum-crc32".to_owned(), "AAAAAA==".to_owned())),
        tags: Box::default(),
        part_sizes: Box::default(),
        part_checksums: Box::default(),
        version_id: None,
        sequence: 0,
        delete_marker: false,
        owner: None,
        acl: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it by name with --ignored --nocapture"]
async fn memory_per_object() {
    let n: usize = std::env::var("OBS_MEMORY_OBJECTS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let store = std::sync::Arc::new(Store::in_memory().await.unwrap());
    let bucket = BucketRecord {
        format: RECORD_FORMAT,
        name: "memory".to_owned(),
        account: "000000000000".to_owned(),
        region: "us-east-1".to_owned(),
        created_millis: 0,
        encryption: None,
        cors: Vec::new(),
        tags: Vec::new(),
        versioning: None,
        ownership: Some(obs::acl::ObjectOwnership::BucketOwnerEnforced),
        acl: None,
        public_access_block: Some(obs::acl::PublicAccessBlock::ALL),
        policy: None,
        compiled_policy: Default::default(),
    };
    store.create_bucket(bucket).await.unwrap().unwrap();
    let before = rss();
    for i in 0..n {
        store.commit_object("memory", record(i)).await.unwrap();
    }
    let with_store = rss() - before;
    // The same records in a bare in-memory backend: what a copy of them there would cost.
    let backend = InMemory::new();
    let before = rss();
    for i in 0..n {
        let record = record(i);
        let path = StorePath::from(format!("meta/memory/{i:064x}.json"));
        backend.put(&path, serde_json::to_vec(&record).unwrap().into()).await.unwrap();
    }
    let backend_only = rss() - before;
    let per = |bytes: u64| bytes as f64 / n as f64;
    println!(
        "objects: {n}; RSS through the in-memory store (the index): {:.0} B/object; the records' JSON in a bare in-memory backend: {:.0} B/object; record JSON: {} B",
        per(with_store),
        per(backend_only),
        serde_json::to_vec(&record(0)).unwrap().len()
    );
    assert_eq!(store.list("memory", "", None, 2).unwrap().len(), 2.min(n));
}
