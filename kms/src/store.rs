//! Durable storage of keys and aliases in redb, an embedded transactional store whose commits
//! are fsynced before they return. One [`Store::commit`] is one transaction: a change is either
//! wholly there after a crash or not at all.
//!
//! Tables map a string key to a versioned JSON record (see `model::RECORD_FORMAT`):
//! `keys` by key id, `aliases` by `<account>/<region>/<alias name>`, and `meta` for the master-key
//! check value.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::error::{Error, Result};
use crate::model::{AliasRecord, KeyRecord, RECORD_FORMAT};

const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
const ALIASES: TableDefinition<&str, &[u8]> = TableDefinition::new("aliases");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The `meta` entry holding a value wrapped under the master key, to detect a wrong master key
/// file at start rather than at the first Decrypt.
pub const MASTER_CHECK: &str = "master_check";

/// One change inside a transaction.
#[derive(Debug)]
pub enum Change<'a> {
    /// Insert or replace a key.
    PutKey(&'a KeyRecord),
    /// Remove a key by store key ([`KeyRecord::store_key`]).
    DeleteKey(&'a str),
    /// Insert or replace an alias.
    PutAlias(&'a AliasRecord),
    /// Remove an alias by store key.
    DeleteAlias(String),
    /// Set a meta value.
    PutMeta(&'a str, &'a [u8]),
}

/// The key store.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens or creates the store file at `path` (created with mode 0600).
    pub fn open(path: &Path) -> Result<Self> {
        let existed = path.exists();
        if !existed {
            // redb creates its file with the process umask; create it private first.
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| Error::Internal(format!("creating {}: {e}", path.display())))?;
        }
        let db = Database::create(path)?;
        if !existed {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::Internal(format!("syncing {}: {e}", dir.display())))?;
        }
        Self::init(db)
    }

    /// Whether the existing store at `path` holds anything wrapped under a master key (a key, or
    /// the master check value). Reads only: no table is created and nothing is committed, so a
    /// start refused for a missing master key leaves the store as it was.
    pub fn holds_wrapped_material(path: &Path) -> Result<bool> {
        let db = redb::ReadOnlyDatabase::open(path)?;
        let txn = db.begin_read()?;
        let not_empty = |table: TableDefinition<&str, &[u8]>| -> Result<bool> {
            match txn.open_table(table) {
                Ok(table) => Ok(!table.is_empty()?),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
                Err(e) => Err(e.into()),
            }
        };
        Ok(not_empty(META)? || not_empty(KEYS)?)
    }

    /// A store that lives in memory only (`--in-memory`).
    pub fn in_memory() -> Result<Self> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::init(db)
    }

    fn init(db: Database) -> Result<Self> {
        let txn = db.begin_write()?;
        txn.open_table(KEYS)?;
        txn.open_table(ALIASES)?;
        txn.open_table(META)?;
        migrate(&mut txn.open_table(KEYS)?, "key", |record| {
            // Format 1 knew only symmetric encryption keys.
            record["spec"] = "SymmetricDefault".into();
            record["usage"] = "EncryptDecrypt".into();
            record["origin"] = "AwsKms".into();
        })?;
        migrate(&mut txn.open_table(ALIASES)?, "alias", |_| {})?;
        txn.commit()?;
        Ok(Store { db })
    }

    /// Every key and alias.
    pub fn load(&self) -> Result<(Vec<KeyRecord>, Vec<AliasRecord>)> {
        let txn = self.db.begin_read()?;
        let keys = read_all(&txn.open_table(KEYS)?, "key")?;
        let aliases = read_all(&txn.open_table(ALIASES)?, "alias")?;
        Ok((keys, aliases))
    }

    /// A meta value.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(META)?;
        Ok(table.get(name)?.map(|v| v.value().to_vec()))
    }

    /// Applies `changes` in one durable transaction.
    pub fn commit(&self, changes: &[Change<'_>]) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut keys = txn.open_table(KEYS)?;
            let mut aliases = txn.open_table(ALIASES)?;
            let mut meta = txn.open_table(META)?;
            for change in changes {
                match change {
                    Change::PutKey(record) => {
                        keys.insert(record.store_key().as_str(), encode(record)?.as_slice())?;
                    }
                    Change::DeleteKey(id) => {
                        keys.remove(*id)?;
                    }
                    Change::PutAlias(alias) => {
                        aliases.insert(alias.store_key().as_str(), encode(alias)?.as_slice())?;
                    }
                    Change::DeleteAlias(key) => {
                        aliases.remove(key.as_str())?;
                    }
                    Change::PutMeta(name, value) => {
                        meta.insert(*name, *value)?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes every key and alias (the admin reset), keeping the meta table.
    pub fn clear(&self) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.delete_table(KEYS)?;
        txn.delete_table(ALIASES)?;
        txn.open_table(KEYS)?;
        txn.open_table(ALIASES)?;
        txn.commit()?;
        Ok(())
    }
}

/// Rewrites the table's format 1 records as format [`RECORD_FORMAT`] with `upgrade`, inside the opening
/// transaction: the store is either wholly migrated after a crash or not at all.
fn migrate(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    kind: &str,
    upgrade: impl Fn(&mut serde_json::Value),
) -> Result<()> {
    let mut migrated = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        let FormatOnly { format } = serde_json::from_slice(value.value())
            .map_err(|e| Error::Internal(format!("stored {kind} record {} is unreadable: {e}", key.value())))?;
        if format == Some(1) {
            let mut record: serde_json::Value = serde_json::from_slice(value.value())
                .ok()
                .filter(serde_json::Value::is_object)
                .ok_or_else(|| Error::Internal(format!("stored {kind} record {} is not a JSON object", key.value())))?;
            upgrade(&mut record);
            record["format"] = RECORD_FORMAT.into();
            migrated.push((key.value().to_owned(), encode(&record)?));
        }
    }
    for (key, bytes) in &migrated {
        table.insert(key.as_str(), bytes.as_slice())?;
    }
    if !migrated.is_empty() {
        tracing::info!(records = migrated.len(), "migrated {kind} records to format {RECORD_FORMAT}");
    }
    Ok(())
}

fn encode<T: serde::Serialize>(record: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| Error::Internal(format!("encoding a record: {e}")))
}

/// Reads every record of a table, refusing a record whose `format` is not [`RECORD_FORMAT`]:
/// a newer kmsim's record must not be misread (or rewritten without its new fields) by this one.
/// `kind` names the table's records in errors (`key`, `alias`).
fn read_all<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    kind: &str,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        out.push(decode(kind, key.value(), value.value())?);
    }
    Ok(out)
}

/// Only the version of a record, read before the rest so that a record of another format is
/// refused for its version, not for a field this kmsim does not know.
#[derive(serde::Deserialize)]
struct FormatOnly {
    format: Option<u32>,
}

/// Decodes the stored `kind` record `name` after checking its format.
fn decode<T: serde::de::DeserializeOwned>(kind: &str, name: &str, bytes: &[u8]) -> Result<T> {
    let unreadable = |e: serde_json::Error| Error::Internal(format!("stored {kind} record {name} is unreadable: {e}"));
    let FormatOnly { format } = serde_json::from_slice(bytes).map_err(unreadable)?;
    match format {
        Some(RECORD_FORMAT) => serde_json::from_slice(bytes).map_err(unreadable),
        Some(other) => Err(Error::Internal(format!(
            "stored {kind} record {name} has format {other}, but this kmsim reads format {RECORD_FORMAT} only \
             (was the store written by a newer kmsim?)"
        ))),
        None => Err(Error::Internal(format!("stored {kind} record {name} has no format field"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AliasRecord;
    use crate::spec::{KeySpec, KeyUsage};

    /// A stored record of another format, as a newer kmsim might write it.
    fn with_format(record: &impl serde::Serialize, format: serde_json::Value) -> Vec<u8> {
        let mut value = serde_json::to_value(record).unwrap();
        value["format"] = format;
        serde_json::to_vec(&value).unwrap()
    }

    fn put_raw(store: &Store, table: TableDefinition<&str, &[u8]>, key: &str, bytes: &[u8]) {
        let txn = store.db.begin_write().unwrap();
        txn.open_table(table).unwrap().insert(key, bytes).unwrap();
        txn.commit().unwrap();
    }

    #[test]
    fn records_of_an_unknown_format_are_refused_by_name() {
        let alias = AliasRecord::new("alias/a", "000000000000", "us-east-1", "k1", 0);
        let store = Store::in_memory().unwrap();
        store.commit(&[Change::PutAlias(&alias)]).unwrap();
        assert_eq!(store.load().unwrap().1.len(), 1);

        put_raw(&store, ALIASES, &alias.store_key(), &with_format(&alias, 3.into()));
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("alias record 000000000000/us-east-1/alias/a has format 3"), "{err}");

        put_raw(&store, ALIASES, &alias.store_key(), &with_format(&alias, serde_json::Value::Null));
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("has no format field"), "{err}");

        store.clear().unwrap();
        put_raw(&store, KEYS, "k2", br#"{"format": 7, "a field of format 7": true}"#);
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("key record k2 has format 7"), "{err}");
    }

    /// A format 1 store (symmetric keys only) opens as format 2, its keys symmetric encryption keys.
    #[test]
    fn format_1_records_are_migrated_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kms.redb");
        let key_v1 = br#"{"format":1,"id":"k1","account":"000000000000","region":"us-east-1","description":"",
            "created":0,"state":"Enabled","deletion_date":null,"manager":"Customer","policy":null,"tags":[],
            "rotation":{"enabled":false,"period_days":365,"next_rotation":null,"on_demand_count":0},
            "versions":[{"created":0,"rotation_type":null,"wrapped_material":"00"}],"grants":[]}"#;
        let alias = AliasRecord::new("alias/a", "000000000000", "us-east-1", "k1", 0);
        {
            let store = Store::open(&path).unwrap();
            put_raw(&store, KEYS, "k1", key_v1);
            put_raw(&store, ALIASES, &alias.store_key(), &with_format(&alias, 1.into()));
        }
        let store = Store::open(&path).unwrap();
        let (keys, aliases) = store.load().unwrap();
        assert_eq!(
            (keys[0].format, keys[0].spec, keys[0].usage),
            (2, KeySpec::SymmetricDefault, KeyUsage::EncryptDecrypt)
        );
        assert_eq!((aliases[0].format, aliases[0].target_key_id.as_str()), (2, "k1"));
    }
}
