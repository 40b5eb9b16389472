//! Opening a KMS data dir: what is refused (a missing master key next to a store that needs it)
//! without writing anything, the modes of the files and dir it creates, what a reset clears, and a state export and
//! import (material re-wrapped to the archive's key and back, only into an empty KMS).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use auth::accounts::{Accounts, DEFAULT_ACCESS_KEY_ID};
use kms::audit::{AuditOptions, AuditQuery};
use kms::service::CreateKeyInput;
use kms::{Kms, KmsOperation};
use kms::{SeedKey, Storage};
use shared::caller::DEFAULT_REGION;
use shared::{Api, Caller, RequestContext};

fn caller() -> Caller {
    Accounts::with_defaults().get(DEFAULT_ACCESS_KEY_ID).unwrap().caller(DEFAULT_REGION)
}

/// The context of a call of `operation` by the default account's root, made in the AWS dialect.
fn call(operation: KmsOperation) -> RequestContext {
    RequestContext::new(caller(), None, Api::AwsKms, operation.name(), operation.action())
}

fn dir_storage(dir: &Path) -> Storage {
    Storage::Dir { dir: dir.to_path_buf(), master_key_file: None }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn a_missing_master_key_next_to_a_store_is_refused_without_writing_one() {
    let dir = tempfile::tempdir().unwrap();
    let kms = Kms::open(&dir_storage(dir.path()), Vec::<SeedKey>::new()).unwrap();
    kms.create_key(&caller(), CreateKeyInput::default()).unwrap();
    drop(kms);
    let master = dir.path().join("master.key");
    std::fs::remove_file(&master).unwrap();
    let store_before = std::fs::read(dir.path().join("kms.redb")).unwrap();
    let err = Kms::open(&dir_storage(dir.path()), Vec::new()).unwrap_err().to_string();
    assert!(err.contains(&master.display().to_string()) && err.contains("is missing"), "{err}");
    assert!(!master.exists(), "no fresh, useless master key was written");
    assert!(std::fs::read(dir.path().join("kms.redb")).unwrap() == store_before, "the store is left as it was");
    // Also when the key file is configured elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let configured = elsewhere.path().join("kms-master.key");
    let storage = Storage::Dir { dir: dir.path().to_path_buf(), master_key_file: Some(configured.clone()) };
    let err = Kms::open(&storage, Vec::new()).unwrap_err().to_string();
    assert!(err.contains(&configured.display().to_string()), "{err}");
    assert!(!configured.exists());
}

#[test]
fn a_fresh_store_without_a_master_key_gets_one() {
    let dir = tempfile::tempdir().unwrap();
    drop(Kms::open(&dir_storage(dir.path()), Vec::new()).unwrap());
    // A store that was created but never held anything wrapped is not in the way.
    std::fs::remove_file(dir.path().join("master.key")).unwrap();
    std::fs::remove_file(dir.path().join("kms.redb")).unwrap();
    Kms::open(&dir_storage(dir.path()), Vec::new()).unwrap();
    assert!(dir.path().join("master.key").exists());
}

#[test]
fn the_data_dir_and_the_files_kms_creates_are_private() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data").join("kms");
    let kms = Kms::open(&dir_storage(&dir), Vec::new()).unwrap();
    kms.record_call(&call(KmsOperation::ListKeys), None, None, "Success");
    kms.audit.flush();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&parent.path().join("data")), 0o700);
    for name in ["kms.redb", "master.key", "audit.jsonl"] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
}

#[test]
fn reset_clears_the_audit_files_the_index_and_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let options = AuditOptions { max_file_bytes: 1000, max_files: 4, ..AuditOptions::default() };
    let kms = Kms::open_with_audit(&dir_storage(dir.path()), Vec::new(), options).unwrap();
    for _ in 0..20 {
        kms.record_call(&call(KmsOperation::ListKeys), None, None, "Success");
    }
    kms.clock.try_advance(3 * 86_400).unwrap();
    kms.audit.flush();
    assert!(file_names(dir.path()).contains(&"audit.3.jsonl".to_owned()), "{:?}", file_names(dir.path()));
    kms.reset().unwrap();
    assert_eq!(kms.clock.offset(), 0);
    assert!(kms.audit.query(&AuditQuery::default()).is_empty());
    assert_eq!(file_names(dir.path()), ["audit.jsonl", "kms.redb", "master.key"]);
    assert_eq!(std::fs::metadata(dir.path().join("audit.jsonl")).unwrap().len(), 0);
    let health = kms.audit.health();
    assert_eq!((health.events_in_memory, health.file_bytes, health.degraded), (0, 0, false));
    // Events after the reset go to the emptied file.
    kms.record_call(&call(KmsOperation::CreateKey), None, None, "Success");
    kms.audit.flush();
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains("\"CreateKey\""));
}

#[test]
fn a_state_export_rewraps_material_and_an_import_needs_an_empty_kms() {
    use kms::material::{KeyMaterial, MasterKey};
    use kms::spec::EncryptionAlgorithm;
    let archive_key = KeyMaterial::generate(&shared::entropy::Entropy::os());
    let archive = MasterKey::new(&archive_key);
    let source = Kms::in_memory().unwrap();
    let key = source.create_key(&caller(), CreateKeyInput::default()).unwrap();
    let context = kms::blob::EncryptionContext::new();
    let (blob, _) =
        source.encrypt(&caller(), &key.id, b"fixture", &context, EncryptionAlgorithm::SymmetricDefault).unwrap();
    let state = source.export_state(&archive).unwrap();
    let exported = &state.keys[0].versions[0].wrapped_material;
    assert_ne!(exported, &key.versions[0].wrapped_material, "re-wrapped, not copied");
    assert!(archive.unwrap(&key.id, 0, exported).is_ok(), "wrapped under the archive's key, bound to id and version");

    // Under another archive key nothing is imported, and the KMS stays empty.
    let target = Kms::in_memory().unwrap();
    let wrong = MasterKey::new(&KeyMaterial::generate(&shared::entropy::Entropy::os()));
    let again = || source.export_state(&archive).unwrap();
    assert!(target.import_state(again(), &wrong).is_err());
    assert!(target.is_empty());
    target.import_state(again(), &archive).unwrap();
    let decrypted = target.decrypt(&caller(), &blob, &context, None, EncryptionAlgorithm::SymmetricDefault).unwrap();
    assert_eq!(decrypted.plaintext.as_slice(), b"fixture");
    // Only into an empty KMS.
    assert!(target.import_state(again(), &archive).is_err());
    assert_eq!(target.export_state(&archive).unwrap().keys.len(), 1);
}
