//! Durability of the KMS: restart, `kill -9` at random points, the master key file, and seeded
//! keys that make ciphertexts stable across runs and machines.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_kms::primitives::Blob;
use kmsim::Stack;
use kmsim::config::{Config, SeedKeyConfig};
use rand::Rng;

use crate::common::{kms_client, kms_client_at, spawn_binary};

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_ciphertexts_survive_a_restart() {
    let dir = crate::common::private_dir();
    let stack = Stack::builder().data_dir(dir.path()).start().await.unwrap();
    let kms = kms_client(&stack);
    let id = kms.create_key().description("durable").send().await.unwrap().key_metadata.unwrap().key_id;
    kms.create_alias().alias_name("alias/durable").target_key_id(&id).send().await.unwrap();
    kms.enable_key_rotation().key_id(&id).send().await.unwrap();
    let blob = kms.encrypt().key_id(&id).plaintext(Blob::new("kept")).send().await.unwrap().ciphertext_blob.unwrap();
    kms.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    kms.disable_key().key_id(&id).send().await.unwrap();
    stack.shutdown().await;

    let stack = Stack::builder().data_dir(dir.path()).start().await.unwrap();
    let kms = kms_client(&stack);
    let meta = kms.describe_key().key_id("alias/durable").send().await.unwrap().key_metadata.unwrap();
    assert_eq!(meta.description.as_deref(), Some("durable"));
    assert!(!meta.enabled);
    kms.enable_key().key_id(&id).send().await.unwrap();
    let plain = kms.decrypt().ciphertext_blob(blob).send().await.unwrap().plaintext.unwrap();
    assert_eq!(plain.as_ref(), b"kept");
    assert!(kms.get_key_rotation_status().key_id(&id).send().await.unwrap().key_rotation_enabled);
    assert_eq!(kms.list_key_rotations().key_id(&id).send().await.unwrap().rotations.unwrap().len(), 1);
    // Key material is wrapped at rest: the raw store holds no plaintext marker from the request path.
    let store = std::fs::read(dir.path().join("kms.redb")).unwrap();
    assert!(!store.windows(4).any(|w| w == b"kept"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_key_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::common::private_dir();
    Stack::builder().data_dir(dir.path()).start().await.unwrap().shutdown().await;
    let master = dir.path().join("master.key");
    assert_eq!(std::fs::metadata(&master).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Stack::builder().data_dir(dir.path()).start().await.unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    // A different master key is refused too, instead of failing later at Decrypt.
    std::fs::write(&master, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = Stack::builder().data_dir(dir.path()).start().await.unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
}

fn seeded() -> Config {
    Config {
        keys: vec![SeedKeyConfig {
            id: "11111111-2222-3333-4444-555555555555".into(),
            account: None,
            region: None,
            material_hex: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".into(),
            description: "seeded".into(),
            aliases: vec!["alias/seeded".into()],
            enabled: true,
        }],
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seeded_keys_make_ciphertexts_stable_across_independent_runs() {
    let first = Stack::builder().config(seeded()).start().await.unwrap();
    let blob = kms_client(&first)
        .encrypt()
        .key_id("alias/seeded")
        .plaintext(Blob::new("stable"))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    first.shutdown().await;
    // A second, independent in-memory stack (another master key, nothing shared) decrypts it.
    let second = Stack::builder().config(seeded()).start().await.unwrap();
    let plain = kms_client(&second).decrypt().ciphertext_blob(blob).send().await.unwrap().plaintext.unwrap();
    assert_eq!(plain.as_ref(), b"stable");
    // Reset forgets created keys but seeds again.
    let kms = kms_client(&second);
    kms.create_key().send().await.unwrap();
    second.kms().reset().unwrap();
    let keys = kms.list_keys().send().await.unwrap().keys.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key_id.as_deref(), Some("11111111-2222-3333-4444-555555555555"));
}

/// `kill -9` while CreateKey, Encrypt, rotation and ScheduleKeyDeletion calls are in flight, at a
/// random point: after restart every acknowledged key works and every ciphertext decrypts (I1, I4).
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_points_loses_nothing_acknowledged() {
    let dir = crate::common::private_dir();
    let iterations: usize = std::env::var("KMSIM_KILL_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let mut acknowledged: Vec<(String, Blob)> = Vec::new();
    let mut scheduled: Vec<String> = Vec::new();
    let mut checked = 0;
    for _ in 0..iterations {
        let (mut child, endpoint) = spawn_binary(dir.path());
        let kms = kms_client_at(&endpoint);
        // Every acknowledged key of the previous run still works (earlier ones were checked then).
        for (id, blob) in acknowledged.iter().skip(checked) {
            let plain = kms.decrypt().ciphertext_blob(blob.clone()).send().await;
            match plain {
                Ok(out) => assert_eq!(out.plaintext.unwrap().as_ref(), id.as_bytes()),
                Err(e) => {
                    let code = aws_sdk_kms::error::ProvideErrorMetadata::code(&e).unwrap_or("").to_owned();
                    assert!(scheduled.contains(id) && code == "KMSInvalidStateException", "{id}: {code}");
                }
            }
        }
        checked = acknowledged.len();
        let kill_after = rand::thread_rng().gen_range(1..12);
        let (progress, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..4 {
            let kms = kms.clone();
            let (progress, finished) = (progress.clone(), finished.clone());
            tasks.spawn(async move {
                let mut done = Vec::new();
                for step in 0.. {
                    let Ok(created) = kms.create_key().send().await else { break };
                    let id = created.key_metadata.unwrap().key_id;
                    let Ok(enc) = kms.encrypt().key_id(&id).plaintext(Blob::new(id.clone())).send().await else {
                        break;
                    };
                    let mut pending_deletion = false;
                    if (worker + step) % 3 == 0 && kms.rotate_key_on_demand().key_id(&id).send().await.is_err() {
                        break;
                    }
                    if (worker + step) % 5 == 0 {
                        if kms.schedule_key_deletion().key_id(&id).send().await.is_err() {
                            break;
                        }
                        pending_deletion = true;
                    }
                    done.push((id, enc.ciphertext_blob.unwrap(), pending_deletion));
                    progress.fetch_add(1, Ordering::SeqCst);
                    if done.len() >= 64 {
                        break;
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
                done
            });
        }
        // Kill while the workers are mid-flight: after a random number of acknowledged keys (or
        // when every worker is done, which the bound of 64 keys each makes certain).
        while progress.load(Ordering::SeqCst) < kill_after && finished.load(Ordering::SeqCst) < 4 {
            tokio::task::yield_now().await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        while let Some(done) = tasks.join_next().await {
            for (id, blob, pending) in done.unwrap() {
                if pending {
                    scheduled.push(id.clone());
                }
                acknowledged.push((id, blob));
            }
        }
    }
    assert!(acknowledged.len() >= iterations / 2, "only {} keys acknowledged", acknowledged.len());
    let (mut child, endpoint) = spawn_binary(dir.path());
    let kms = kms_client_at(&endpoint);
    let mut listed = std::collections::HashSet::new();
    let mut marker = None;
    loop {
        let page = kms.list_keys().limit(1000).set_marker(marker).send().await.unwrap();
        listed.extend(page.keys.unwrap().into_iter().filter_map(|k| k.key_id));
        if !page.truncated {
            break;
        }
        marker = page.next_marker;
    }
    for (id, blob) in &acknowledged {
        assert!(listed.contains(id), "{id} lost");
        if !scheduled.contains(id) {
            let plain = kms.decrypt().ciphertext_blob(blob.clone()).send().await.unwrap().plaintext.unwrap();
            assert_eq!(plain.as_ref(), id.as_bytes());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // No temporary files remain beside the store.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(
        names.iter().all(|n| [
            "kms.redb",
            "master.key",
            "audit.jsonl",
            "objects",
            "sse-s3.key",
            "iam.redb",
            "iam.key",
            "volumes",
            "admin.token",
            kmsim::entropy_marker::FILE
        ]
        .contains(&n.as_str())),
        "{names:?}"
    );
}
