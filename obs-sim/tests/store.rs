//! The object store's persistence under concurrency and at start: a bucket deletion racing an
//! object commit, records set aside, reset.

use std::sync::Arc;

use object_store::PutPayload;
use object_store::path::Path as StorePath;
use obs_sim::model::{BucketRecord, ObjectRecord, RECORD_FORMAT, SseRecord};
use obs_sim::store::Store;

fn bucket(name: &str) -> BucketRecord {
    BucketRecord {
        format: RECORD_FORMAT,
        name: name.to_owned(),
        account: "000000000000".to_owned(),
        region: "us-east-1".to_owned(),
        created_millis: 0,
        encryption: None,
    }
}

/// A plain object `key` whose body (`bytes`) is already in the store.
async fn object(store: &Store, bucket: &str, key: &str, bytes: &'static [u8]) -> ObjectRecord {
    let blob = Store::new_blob_path(bucket);
    store.backend().put(&blob, PutPayload::from_static(bytes)).await.unwrap();
    ObjectRecord {
        format: RECORD_FORMAT,
        key: key.to_owned(),
        size: bytes.len() as u64,
        etag: "\"0\"".to_owned(),
        last_modified_millis: 0,
        content_type: None,
        headers: Default::default(),
        metadata: Default::default(),
        sse: SseRecord::None,
        blob: blob.to_string(),
        stored_size: bytes.len() as u64,
        envelope_header_len: None,
        checksum: None,
    }
}

/// Files under `dir` of a data dir, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                dirs.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_bucket_and_a_commit_into_it_never_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::local(dir.path()).await.unwrap());
    let (mut committed_first, mut deleted_first) = (0, 0);
    for round in 0..40 {
        store.create_bucket(bucket("race")).await.unwrap().unwrap();
        let record = object(&store, "race", &format!("k{round}"), b"body").await;
        let blob = StorePath::from(record.blob.as_str());
        let commit = {
            let store = store.clone();
            tokio::spawn(async move { store.commit_object("race", record).await })
        };
        let delete = {
            let store = store.clone();
            tokio::spawn(async move { store.delete_bucket("race").await })
        };
        let (committed, deleted) = (commit.await.unwrap(), delete.await.unwrap().unwrap());
        match (committed, deleted) {
            (Ok(()), true) => panic!("round {round}: an object was committed into a bucket that was deleted"),
            (Ok(()), false) => {
                committed_first += 1;
                assert!(store.object("race", &format!("k{round}")).is_some());
                store.delete_object("race", &format!("k{round}")).await.unwrap();
                assert!(store.delete_bucket("race").await.unwrap());
            }
            (Err(e), true) => {
                deleted_first += 1;
                assert_eq!(e.code, "NoSuchBucket");
                assert!(store.backend().head(&blob).await.is_err(), "the refused object's body is left");
            }
            (Err(e), false) => panic!("round {round}: {e}"),
        }
        // The bucket is gone, and nothing of it is left on disk for a re-created one to show.
        assert!(store.bucket("race").is_none());
        let left: Vec<_> = files(&dir.path().join("meta")).into_iter().chain(files(&dir.path().join("data"))).collect();
        assert!(left.is_empty(), "round {round}: left behind {left:?}");
    }
    assert!(committed_first + deleted_first == 40);
    // A re-created bucket of the same name is empty, also after a restart.
    store.create_bucket(bucket("race")).await.unwrap().unwrap();
    drop(store);
    let store = Store::local(dir.path()).await.unwrap();
    assert_eq!(store.list("race", "", None, 10).unwrap().len(), 0);
}
