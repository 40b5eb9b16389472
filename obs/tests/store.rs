//! The object store's persistence under concurrency and at start: a bucket deletion racing an
//! object commit, records set aside, reset.

use std::sync::Arc;

use object_store::PutPayload;
use object_store::path::Path as StorePath;
use obs::model::{BucketRecord, ObjectRecord, RECORD_FORMAT, WriteCondition};
use obs::store::Store;

fn bucket(name: &str) -> BucketRecord {
    BucketRecord {
        format: RECORD_FORMAT,
        name: name.to_owned(),
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
    }
}

/// A plain object `key` whose body (`bytes`) is already in the store.
async fn object(store: &Store, bucket: &str, key: &str, bytes: &'static [u8]) -> ObjectRecord {
    let blob = store.new_blob_path(bucket).await;
    store.backend().put(&blob, PutPayload::from_static(bytes)).await.unwrap();
    ObjectRecord {
        size: bytes.len() as u64,
        etag: "\"0\"".to_owned(),
        blob: blob.to_string(),
        stored_size: bytes.len() as u64,
        delete_marker: false,
        ..ObjectRecord::new_delete_marker(key, 0)
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
            (Ok(_), true) => panic!("round {round}: an object was committed into a bucket that was deleted"),
            (Ok(_), false) => {
                committed_first += 1;
                assert!(store.object("race", &format!("k{round}")).is_some());
                store.delete_object("race", &format!("k{round}"), 0).await.unwrap();
                assert!(store.delete_bucket("race").await.unwrap());
            }
            (Err(e), true) => {
                deleted_first += 1;
                assert!(matches!(e, obs::Error::NoSuchBucket { .. }), "{e}");
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
    let store = Arc::new(Store::local(dir.path()).await.unwrap());
    assert_eq!(store.list("race", "", None, 10).unwrap().len(), 0);
}

/// The record file of `bucket`/`key` under a local store's root.
fn record_file(root: &std::path::Path, bucket: &str, key: &str) -> std::path::PathBuf {
    for path in files(&root.join("meta").join(bucket)) {
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if record["key"] == key {
            return path;
        }
    }
    panic!("no record for {key}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_records_are_set_aside_and_their_bodies_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut bodies = Vec::new();
    {
        let store = Arc::new(Store::local(root).await.unwrap());
        for name in ["b", "c"] {
            store.create_bucket(bucket(name)).await.unwrap().unwrap();
        }
        for (name, key) in [("b", "good"), ("b", "bad"), ("b", "future"), ("c", "orphaned")] {
            let record = object(&store, name, key, b"body").await;
            bodies.push(root.join(&record.blob));
            store.commit_object(name, record).await.unwrap();
        }
    }
    // A record that is not JSON, one of a newer format, and the record of bucket `c`.
    std::fs::write(record_file(root, "b", "bad"), b"{\"format\":1,\"key\":").unwrap();
    let future = record_file(root, "b", "future");
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&future).unwrap()).unwrap();
    record["format"] = 3.into();
    std::fs::write(&future, serde_json::to_vec(&record).unwrap()).unwrap();
    std::fs::write(root.join("buckets/c.json"), b"garbage").unwrap();

    for start in 0..2 {
        let store = Store::local(root).await.expect("one bad record does not stop the store");
        assert_eq!(store.set_aside_records(), 3, "start {start}");
        assert!(store.object("b", "good").is_some());
        assert!(store.object("b", "bad").is_none() && store.object("b", "future").is_none());
        assert!(store.bucket("c").is_none());
        assert!(root.join("buckets/c.json.unreadable").exists());
        assert!(future.with_extension("json.unreadable").exists() && !future.exists());
        for body in &bodies {
            assert!(body.exists(), "start {start}: body {} was removed", body.display());
        }
    }
}

/// A data dir written before ownership controls and ACLs (format 1) opens: its bucket has no ownership
/// controls (ACLs enabled, as S3's buckets made before April 2023), its objects are its owner's and
/// private, and a record is written in format 2 when it next changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_1_records_are_read_and_rewritten_as_format_2() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let blob = {
        let store = Arc::new(Store::local(root).await.unwrap());
        store.create_bucket(bucket("old")).await.unwrap().unwrap();
        let record = object(&store, "old", "k", b"body").await;
        let blob = record.blob.clone();
        store.commit_object("old", record).await.unwrap();
        blob
    };
    // What kmsim wrote before: format 1, none of the fields format 2 added.
    let bucket_file = root.join("buckets/old.json");
    let v1_bucket = r#"{"format":1,"name":"old","account":"000000000000","region":"us-east-1","created_millis":0,"encryption":null}"#;
    std::fs::write(&bucket_file, v1_bucket).unwrap();
    let object_file = record_file(root, "old", "k");
    let mut object: serde_json::Value = serde_json::from_slice(&std::fs::read(&object_file).unwrap()).unwrap();
    object["format"] = 1.into();
    std::fs::write(&object_file, serde_json::to_vec(&object).unwrap()).unwrap();

    let store = Arc::new(Store::local(root).await.unwrap());
    assert_eq!(store.set_aside_records(), 0);
    let migrated = store.bucket("old").expect("the bucket is read");
    assert_eq!((migrated.format, migrated.ownership, &migrated.acl), (RECORD_FORMAT, None, &None));
    assert_eq!(migrated.public_access_block, None);
    let read = store.object("old", "k").expect("the object is read");
    assert_eq!((read.format, &read.owner, &read.acl, read.blob.as_str()), (RECORD_FORMAT, &None, &None, blob.as_str()));
    store
        .update_bucket("old", |record| {
            record.tags = vec![obs::model::Tag { key: "t".into(), value: "v".into() }];
            Ok(())
        })
        .await
        .unwrap();
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&bucket_file).unwrap()).unwrap();
    assert_eq!((written["format"].as_u64(), written["ownership"].is_null()), (Some(2), true), "{written}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_empties_the_store_but_not_the_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Arc::new(Store::local(root).await.unwrap());
    store.create_bucket(bucket("b")).await.unwrap().unwrap();
    let record = object(&store, "b", "k", b"body").await;
    store.commit_object("b", record).await.unwrap();
    let snapshot = StorePath::from("snapshots/snap-1/data");
    store.backend().put(&snapshot, PutPayload::from_static(b"volume")).await.unwrap();
    store.reset().await.unwrap();
    assert!(store.buckets().is_empty() && store.object("b", "k").is_none());
    for prefix in ["buckets", "meta", "uploads", "data"] {
        assert!(files(&root.join(prefix)).is_empty(), "{prefix} is not empty");
    }
    assert_eq!(store.backend().get(&snapshot).await.unwrap().bytes().await.unwrap().as_ref(), b"volume");

    // Commits racing a reset: each is either wiped by the reset or refused after it; nothing is
    // left that the index does not show.
    store.create_bucket(bucket("b")).await.unwrap().unwrap();
    let mut commits = Vec::new();
    for i in 0..20 {
        let record = object(&store, "b", &format!("k{i}"), b"body").await;
        let store = store.clone();
        commits.push(tokio::spawn(async move { store.commit_object("b", record).await }));
    }
    store.reset().await.unwrap();
    for commit in commits {
        if let Err(e) = commit.await.unwrap() {
            assert!(matches!(e, obs::Error::NoSuchBucket { .. }), "{e}");
        }
    }
    assert!(store.bucket("b").is_none());
    for prefix in ["buckets", "meta", "data"] {
        assert!(files(&root.join(prefix)).is_empty(), "{prefix} is not empty after racing commits");
    }
    let reopened = Store::local(root).await.unwrap();
    assert!(reopened.buckets().is_empty());
    assert_eq!(reopened.set_aside_records(), 0);
    reopened.create_bucket(bucket("b")).await.unwrap().unwrap();
}

#[tokio::test]
async fn open_errors_say_what_failed_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let e = Store::local(&file.join("objects")).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("cannot create the object store directory") && text.contains("a-file"), "{text}");
    let e = Store::s3("http://nope", &[]).await.unwrap_err();
    assert!(e.to_string().contains("is not of the form s3://bucket"), "{e}");
    let e = Store::s3("s3://b", &[("no_such_option".to_owned(), "1".to_owned())]).await.unwrap_err();
    assert!(e.to_string().contains("no_such_option"), "{e}");
}

/// A store on a fresh data dir holding the bucket `record`.
async fn store_with(record: BucketRecord) -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::local(dir.path()).await.unwrap());
    store.create_bucket(record).await.unwrap().unwrap();
    (dir, store)
}

/// `n` commits of key `k` into `bucket` started at once (each with its own body), `condition` on each; their
/// outcomes in the order they were started.
async fn commit_at_once(
    store: &Arc<Store>,
    bucket: &'static str,
    n: usize,
    condition: WriteCondition,
) -> Vec<Result<Arc<ObjectRecord>, obs::Error>> {
    let mut commits = Vec::new();
    for _ in 0..n {
        let record = object(store, bucket, "k", b"body").await;
        let (store, condition) = (store.clone(), condition.clone());
        commits.push(tokio::spawn(async move {
            store.commit_object_since(bucket, record, store.resets(), &condition).await
        }));
    }
    let mut outcomes = Vec::new();
    for commit in commits {
        outcomes.push(commit.await.unwrap());
    }
    outcomes
}

/// Commits of one key at once, on a data dir: every one is answered, the last committed is the key's
/// object, exactly one record and one body are left (the others' bodies deleted before their commits
/// were answered), and a restart finds the same object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrites_of_one_key_at_once_leave_the_last_one() {
    let (dir, store) = store_with(bucket("b")).await;
    let root = dir.path();
    let committed: Vec<String> = commit_at_once(&store, "b", 32, WriteCondition::None)
        .await
        .into_iter()
        .map(|outcome| outcome.expect("every overwrite commits").blob.clone())
        .collect();
    let current = store.object("b", "k").expect("the key has an object");
    assert!(committed.contains(&current.blob));
    assert_eq!(files(&root.join("meta")), vec![record_file(root, "b", "k")]);
    assert_eq!(files(&root.join("data")), vec![root.join(&current.blob)], "replaced bodies are left");
    drop(store);
    let reopened = Store::local(root).await.unwrap();
    assert_eq!(reopened.object("b", "k").unwrap().blob, current.blob);
}

/// `If-None-Match: *` commits of one key at once: exactly one commits, whether or not they share a
/// batch; the others are refused and their bodies deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_commits_at_once_let_exactly_one_through() {
    let (dir, store) = store_with(bucket("b")).await;
    let mut winners = 0;
    for outcome in commit_at_once(&store, "b", 16, WriteCondition::Absent).await {
        match outcome {
            Ok(_) => winners += 1,
            Err(e) => assert!(matches!(e, obs::Error::ConditionalRequestConflict { .. }), "{e}"),
        }
    }
    assert_eq!(winners, 1);
    let current = store.object("b", "k").unwrap();
    assert_eq!(files(&dir.path().join("data")), vec![dir.path().join(&current.blob)], "refused bodies are left");
}

/// Versions committed at once into a versioned bucket: each its own record, and a restart orders them
/// as they were committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_committed_at_once_are_all_kept_in_order() {
    let (dir, store) =
        store_with(BucketRecord { versioning: Some(obs::model::Versioning::Enabled), ..bucket("v") }).await;
    for outcome in commit_at_once(&store, "v", 16, WriteCondition::None).await {
        outcome.expect("every version commits");
    }
    let ids = |store: &Store| -> Vec<Option<Box<str>>> {
        let page = store.list_versions("v", "", None, 100).expect("the bucket lists");
        page.iter().map(|v| v.record.version_id.clone()).collect()
    };
    let before = ids(&store);
    assert_eq!(before.len(), 16);
    assert_eq!(files(&dir.path().join("meta")).len(), 16);
    drop(store);
    assert_eq!(ids(&Store::local(dir.path()).await.unwrap()), before);
}
