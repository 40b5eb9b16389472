//! Integrity of stored objects: tampering at rest is caught (never wrong bytes), and `kill -9`
//! during uploads loses nothing acknowledged, shows nothing half-written, and leaves no orphans.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use rand::{Rng, RngCore};

use crate::common::{s3_client, s3_client_at, spawn_binary};

/// The body file of `bucket`/`key` under a data dir, from the object's record.
fn body_path(data_dir: &Path, bucket: &str, key: &str) -> PathBuf {
    let meta_dir = data_dir.join("objects/meta").join(bucket);
    for entry in std::fs::read_dir(meta_dir).unwrap() {
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        if record["key"] == key {
            return data_dir.join("objects").join(record["blob"].as_str().unwrap());
        }
    }
    panic!("no record for {key}");
}

/// GETs an object; returns the bytes if the whole read succeeded.
async fn read_all(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let out = s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| format!("{e:?}"))?;
    out.body.collect().await.map(|b| b.into_bytes().to_vec()).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_stored_objects_give_errors_never_wrong_bytes() {
    let dir = crate::common::private_dir();
    let stack = kmsim::Stack::builder().data_dir(dir.path()).start().await.unwrap();
    let s3 = s3_client(&stack);
    s3.create_bucket().bucket("tamper").send().await.unwrap();
    let mut data = vec![0u8; 3 * 65_536 + 1000];
    rand::thread_rng().fill_bytes(&mut data);
    s3.put_object()
        .bucket("tamper")
        .key("k")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let path = body_path(dir.path(), "tamper", "k");
    let original = std::fs::read(&path).unwrap();
    let frame = 4 + 12 + 65_536 + 16;
    let header_len = original.len() - 3 * frame - (4 + 4 + 12 + 4 + 1000 + 16);
    let boundaries: Vec<usize> = (0..=3).map(|i| header_len + i * frame).collect();
    let mut mutations: Vec<(String, Vec<u8>)> = Vec::new();
    let mut rng = rand::thread_rng();
    for _ in 0..12 {
        let bit = rng.gen_range(0..original.len() * 8);
        let mut m = original.clone();
        m[bit / 8] ^= 1 << (bit % 8);
        mutations.push((format!("flip bit {bit}"), m));
    }
    for &b in &boundaries {
        for cut in [b - 1, b, b + 1] {
            mutations.push((format!("truncate at {cut}"), original[..cut].to_vec()));
        }
    }
    let mut swapped = original.clone();
    swapped[boundaries[0]..boundaries[1]].copy_from_slice(&original[boundaries[1]..boundaries[2]]);
    swapped[boundaries[1]..boundaries[2]].copy_from_slice(&original[boundaries[0]..boundaries[1]]);
    mutations.push(("swap frames 1 and 2".into(), swapped));
    let mut dropped = original[..boundaries[1]].to_vec();
    dropped.extend_from_slice(&original[boundaries[2]..]);
    mutations.push(("drop frame 2".into(), dropped));
    for (what, bytes) in mutations {
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(got) = read_all(&s3, "tamper", "k").await {
            panic!("{what}: a tampered object was served ({} bytes)", got.len());
        }
        // Ranges too: a read of the last frame must fail or be exact.
        let ranged = s3.get_object().bucket("tamper").key("k").range("bytes=-100").send().await;
        if let Ok(out) = ranged
            && let Ok(bytes) = out.body.collect().await
        {
            assert_eq!(
                bytes.into_bytes().to_vec(),
                data[data.len() - 100..].to_vec(),
                "{what}: wrong bytes in a range"
            );
        }
    }
    std::fs::write(&path, &original).unwrap();
    assert_eq!(read_all(&s3, "tamper", "k").await.unwrap(), data, "the server keeps serving");
}

/// The content of version `v` of object `key`: recognisable, and of a size that varies.
fn content(key: &str, v: u32) -> Vec<u8> {
    let len = 1000 + (v as usize * 7919 + key.len() * 104_729) % 150_000;
    format!("{key}#{v}|").into_bytes().into_iter().cycle().take(len).collect()
}

/// Whether `got` is exactly version `v` or a later version of `key` (the version is in the
/// content's prefix).
fn is_whole_version(key: &str, got: &[u8], acknowledged: u32) -> bool {
    let text = String::from_utf8_lossy(&got[..got.len().min(64)]);
    let version = text
        .strip_prefix(&format!("{key}#"))
        .and_then(|rest| rest.split('|').next())
        .and_then(|v| v.parse::<u32>().ok());
    version.is_some_and(|v| v >= acknowledged && got == content(key, v))
}

/// Writers at once in the kill tests.
const WORKERS: u32 = 4;

/// Runs [`WORKERS`] writers (`writer(worker, progress)`, which counts each acknowledged write in
/// `progress` and gives back what was acknowledged) and `kill -9`s the server after a random
/// number of acknowledged writes (or once all writers are done); gives back every writer's
/// acknowledged writes, in each writer's order.
async fn kill_during_writes<T, F, Fut>(child: &mut std::process::Child, writer: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(u32, Arc<AtomicUsize>) -> Fut,
    Fut: std::future::Future<Output = Vec<T>> + Send + 'static,
{
    let (progress, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let kill_after = rand::thread_rng().gen_range(1..8);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let (write, finished) = (writer(worker, progress.clone()), finished.clone());
        tasks.spawn(async move {
            let done = write.await;
            finished.fetch_add(1, Ordering::SeqCst);
            done
        });
    }
    while progress.load(Ordering::SeqCst) < kill_after && finished.load(Ordering::SeqCst) < WORKERS as usize {
        tokio::task::yield_now().await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.unwrap());
    }
    all
}

/// `kill -9` while PUTs (some SSE-KMS, some overwriting) are in flight: after restart every
/// acknowledged write reads back exactly, every visible object is one whole written version, and
/// no body is left that no record refers to (I1, I2, I5).
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_uploads_loses_nothing_and_tears_nothing() {
    let dir = crate::common::private_dir();
    let iterations: usize = std::env::var("KMSIM_KILL_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
    let (mut child, endpoint) = spawn_binary(dir.path());
    s3_client_at(&endpoint).create_bucket().bucket("crash").send().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // The latest acknowledged version of each key, and every version ever attempted.
    let mut acknowledged: std::collections::HashMap<String, u32> = Default::default();
    let mut version = 0u32;
    for _ in 0..iterations {
        let (mut child, endpoint) = spawn_binary(dir.path());
        let s3 = s3_client_at(&endpoint);
        for (key, v) in &acknowledged {
            let got = read_all(&s3, "crash", key).await.unwrap();
            // A later unacknowledged write may have landed; any visible version is whole.
            assert!(is_whole_version(key, &got, *v), "{key}: torn or lost (acknowledged version {v})");
        }
        let done = kill_during_writes(&mut child, |worker, progress| {
            let s3 = s3.clone();
            let base = version + worker * 1000;
            async move {
                let mut done = Vec::new();
                for step in 0..16u32 {
                    // Keys are per worker, so a key's versions are written in order.
                    let key = format!("k{worker}-{}", step % 3);
                    let v = base + step + 1;
                    let mut put = s3.put_object().bucket("crash").key(&key).body(ByteStream::from(content(&key, v)));
                    if step % 2 == 0 {
                        put = put.server_side_encryption(ServerSideEncryption::AwsKms);
                    }
                    if put.send().await.is_err() {
                        break;
                    }
                    done.push((key, v));
                    progress.fetch_add(1, Ordering::SeqCst);
                }
                done
            }
        })
        .await;
        for (key, v) in done {
            let entry = acknowledged.entry(key).or_insert(v);
            *entry = (*entry).max(v);
        }
        version += WORKERS * 1000;
    }
    let (mut child, endpoint) = spawn_binary(dir.path());
    let s3 = s3_client_at(&endpoint);
    for (key, v) in &acknowledged {
        let got = read_all(&s3, "crash", key).await.unwrap();
        assert!(is_whole_version(key, &got, *v), "{key} lost or torn");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // After a restart's sweep, every body belongs to a record.
    let (mut child, _) = spawn_binary(dir.path());
    child.kill().unwrap();
    child.wait().unwrap();
    let bodies = std::fs::read_dir(dir.path().join("objects/data/crash")).map(|d| d.count()).unwrap_or(0);
    let records = std::fs::read_dir(dir.path().join("objects/meta/crash")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(bodies, records, "orphan bodies remain");
}

/// `kill -9` while PUTs and deletes go into a versioned bucket: after each restart every
/// acknowledged version reads back exactly by its version id, each key's versions are listed in
/// the order they were written (an unacknowledged one, if it landed, whole and in its place), and
/// after a sweep every body belongs to a version's record (I1, I2, I5 with versioning).
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_versioned_uploads_keeps_every_acknowledged_version() {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};

    let dir = crate::common::private_dir();
    let iterations: usize =
        std::env::var("KMSIM_KILL_ITERATIONS").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(25).div_ceil(2);
    let (mut child, endpoint) = spawn_binary(dir.path());
    let s3 = s3_client_at(&endpoint);
    s3.create_bucket().bucket("versions").send().await.unwrap();
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning().bucket("versions").versioning_configuration(enabled).send().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // Per key, the acknowledged versions in the order written: (version id, content version).
    let mut acknowledged: std::collections::HashMap<String, Vec<(String, u32)>> = Default::default();
    let mut version = 0u32;
    for _ in 0..iterations {
        let (mut child, endpoint) = spawn_binary(dir.path());
        let s3 = s3_client_at(&endpoint);
        check_versions(&s3, &acknowledged).await;
        let done = kill_during_writes(&mut child, |worker, progress| {
            let s3 = s3.clone();
            let base = version + worker * 1000;
            async move {
                let mut done = Vec::new();
                for step in 0..12u32 {
                    let key = format!("k{worker}-{}", step % 2);
                    let v = base + step + 1;
                    let mut put = s3.put_object().bucket("versions").key(&key).body(ByteStream::from(content(&key, v)));
                    if step % 2 == 0 {
                        put = put.server_side_encryption(ServerSideEncryption::AwsKms);
                    }
                    let Ok(out) = put.send().await else { break };
                    done.push((key, out.version_id.expect("a versioned PUT names its version"), v));
                    progress.fetch_add(1, Ordering::SeqCst);
                }
                done
            }
        })
        .await;
        for (key, id, v) in done {
            acknowledged.entry(key).or_default().push((id, v));
        }
        version += WORKERS * 1000;
    }
    let (mut child, endpoint) = spawn_binary(dir.path());
    check_versions(&s3_client_at(&endpoint), &acknowledged).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, _) = spawn_binary(dir.path());
    child.kill().unwrap();
    child.wait().unwrap();
    let bodies = std::fs::read_dir(dir.path().join("objects/data/versions")).map(|d| d.count()).unwrap_or(0);
    let records = std::fs::read_dir(dir.path().join("objects/meta/versions")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(bodies, records, "orphan bodies remain");
}

/// Every acknowledged version reads back exactly by its id, and each key's versions are listed
/// newest first in the order they were written, any unacknowledged one that landed whole.
async fn check_versions(s3: &aws_sdk_s3::Client, acknowledged: &std::collections::HashMap<String, Vec<(String, u32)>>) {
    let listed = s3.list_object_versions().bucket("versions").send().await.unwrap();
    for (key, versions) in acknowledged {
        for (id, v) in versions {
            let out = s3.get_object().bucket("versions").key(key).version_id(id).send().await.unwrap();
            let got = out.body.collect().await.unwrap().into_bytes();
            assert_eq!(&got[..], &content(key, *v)[..], "{key} version {id} lost or torn");
        }
        let order: Vec<&str> = listed
            .versions()
            .iter()
            .filter(|entry| entry.key() == Some(key.as_str()))
            .filter_map(|entry| entry.version_id())
            .collect();
        let acknowledged_order: Vec<&str> = versions.iter().rev().map(|(id, _)| id.as_str()).collect();
        let kept: Vec<&str> = order.iter().copied().filter(|id| acknowledged_order.contains(id)).collect();
        assert_eq!(kept, acknowledged_order, "{key}: versions out of order after a restart");
        for id in order.iter().filter(|id| !acknowledged_order.contains(id)) {
            let out = s3.get_object().bucket("versions").key(key).version_id(*id).send().await.unwrap();
            let got = out.body.collect().await.unwrap().into_bytes();
            assert!(is_whole_version(key, &got, 0), "{key}: an unacknowledged version {id} is torn");
        }
    }
}
