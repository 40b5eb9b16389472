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
use crate::model::{AliasRecord, KeyRecord};

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
    /// Remove a key by id.
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
        txn.commit()?;
        Ok(Store { db })
    }

    /// Every key and alias.
    pub fn load(&self) -> Result<(Vec<KeyRecord>, Vec<AliasRecord>)> {
        let txn = self.db.begin_read()?;
        let keys = read_all(&txn.open_table(KEYS)?)?;
        let aliases = read_all(&txn.open_table(ALIASES)?)?;
        Ok((keys, aliases))
    }

    /// Whether the store holds any key.
    pub fn has_keys(&self) -> Result<bool> {
        let txn = self.db.begin_read()?;
        Ok(!txn.open_table(KEYS)?.is_empty()?)
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
                        keys.insert(record.id.as_str(), encode(record)?.as_slice())?;
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

fn encode<T: serde::Serialize>(record: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| Error::Internal(format!("encoding a record: {e}")))
}

fn read_all<T: serde::de::DeserializeOwned>(table: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        let record = serde_json::from_slice(value.value())
            .map_err(|e| Error::Internal(format!("stored record {} is unreadable: {e}", key.value())))?;
        out.push(record);
    }
    Ok(out)
}
