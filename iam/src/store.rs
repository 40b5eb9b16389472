//! Durable storage of the identity store in redb (`iam.redb` in the data dir, or in memory), whose commits
//! are fsynced before they return: one [`Store::commit`] is one transaction, wholly there after a crash or
//! not at all. Tables map a string key to a versioned JSON record ([`crate::model`]): `users`, `roles` and
//! `policies` by `ACCOUNT/lower-cased name`, `access_keys` by access key id.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::model::{AccessKeyRecord, PolicyRecord, RECORD_FORMAT, RoleRecord, UserRecord};

const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const ROLES: TableDefinition<&str, &[u8]> = TableDefinition::new("roles");
const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("policies");
const ACCESS_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("access_keys");

/// One change inside a transaction.
#[derive(Debug, Clone)]
pub enum Change {
    /// Insert or replace a user.
    PutUser(UserRecord),
    /// Remove a user by store key.
    DeleteUser(String),
    /// Insert or replace a role.
    PutRole(RoleRecord),
    /// Remove a role by store key.
    DeleteRole(String),
    /// Insert or replace a managed policy.
    PutPolicy(PolicyRecord),
    /// Remove a managed policy by store key.
    DeletePolicy(String),
    /// Insert or replace an access key.
    PutAccessKey(AccessKeyRecord),
    /// Remove an access key by id.
    DeleteAccessKey(String),
}

/// Everything the store holds.
#[derive(Debug, Default)]
pub struct Contents {
    /// Every user.
    pub users: Vec<UserRecord>,
    /// Every role.
    pub roles: Vec<RoleRecord>,
    /// Every managed policy.
    pub policies: Vec<PolicyRecord>,
    /// Every access key.
    pub access_keys: Vec<AccessKeyRecord>,
}

/// The identity store's file.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens or creates the store file at `path` (created with mode 0600, its directory fsynced).
    pub fn open(path: &Path) -> Result<Self> {
        let existed = path.exists();
        if !existed {
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

    /// A store in memory only (`--in-memory`).
    pub fn in_memory() -> Result<Self> {
        Self::init(Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?)
    }

    fn init(db: Database) -> Result<Self> {
        let txn = db.begin_write()?;
        for table in [USERS, ROLES, POLICIES, ACCESS_KEYS] {
            txn.open_table(table)?;
        }
        txn.commit()?;
        Ok(Store { db })
    }

    /// Every record, each checked for its format.
    pub fn load(&self) -> Result<Contents> {
        let txn = self.db.begin_read()?;
        Ok(Contents {
            users: read_all(&txn.open_table(USERS)?, "user")?,
            roles: read_all(&txn.open_table(ROLES)?, "role")?,
            policies: read_all(&txn.open_table(POLICIES)?, "policy")?,
            access_keys: read_all(&txn.open_table(ACCESS_KEYS)?, "access key")?,
        })
    }

    /// Applies `changes` in one durable transaction.
    pub fn commit(&self, changes: &[Change]) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut users = txn.open_table(USERS)?;
            let mut roles = txn.open_table(ROLES)?;
            let mut policies = txn.open_table(POLICIES)?;
            let mut keys = txn.open_table(ACCESS_KEYS)?;
            for change in changes {
                match change {
                    Change::PutUser(r) => {
                        users.insert(r.store_key().as_str(), encode(r)?.as_slice())?;
                    }
                    Change::DeleteUser(k) => {
                        users.remove(k.as_str())?;
                    }
                    Change::PutRole(r) => {
                        roles.insert(r.store_key().as_str(), encode(r)?.as_slice())?;
                    }
                    Change::DeleteRole(k) => {
                        roles.remove(k.as_str())?;
                    }
                    Change::PutPolicy(r) => {
                        policies.insert(r.store_key().as_str(), encode(r)?.as_slice())?;
                    }
                    Change::DeletePolicy(k) => {
                        policies.remove(k.as_str())?;
                    }
                    Change::PutAccessKey(r) => {
                        keys.insert(r.id.as_str(), encode(r)?.as_slice())?;
                    }
                    Change::DeleteAccessKey(id) => {
                        keys.remove(id.as_str())?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes every record (the admin reset).
    pub fn clear(&self) -> Result<()> {
        let txn = self.db.begin_write()?;
        for table in [USERS, ROLES, POLICIES, ACCESS_KEYS] {
            txn.delete_table(table)?;
            txn.open_table(table)?;
        }
        txn.commit()?;
        Ok(())
    }
}

fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| Error::Internal(format!("encoding an identity record: {e}")))
}

/// Only the version of a record, read first so that a record of another format is refused for its version.
#[derive(serde::Deserialize)]
struct FormatOnly {
    format: Option<u32>,
}

fn read_all<T: DeserializeOwned>(
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

/// Decodes the stored `kind` record `name` after checking its format: a newer kmsim's record is refused by name
/// rather than misread.
fn decode<T: DeserializeOwned>(kind: &str, name: &str, bytes: &[u8]) -> Result<T> {
    let unreadable = |e: serde_json::Error| Error::Internal(format!("stored {kind} record {name} is unreadable: {e}"));
    match serde_json::from_slice::<FormatOnly>(bytes).map_err(unreadable)?.format {
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

    fn user(name: &str) -> UserRecord {
        UserRecord {
            format: RECORD_FORMAT,
            account: "111122223333".into(),
            name: name.into(),
            path: "/".into(),
            id: "AIDAEXAMPLEEXAMPLE123".into(),
            created: 0,
            tags: Vec::new(),
            inline: Default::default(),
            attached: Vec::new(),
        }
    }

    #[test]
    fn commits_survive_reopening_and_other_formats_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("iam.redb");
        {
            let store = Store::open(&path).unwrap();
            store.commit(&[Change::PutUser(user("Alice")), Change::PutUser(user("bob"))]).unwrap();
            store.commit(&[Change::DeleteUser("111122223333/bob".into())]).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let contents = store.load().unwrap();
        assert_eq!(contents.users, vec![user("Alice")]);

        let txn = store.db.begin_write().unwrap();
        txn.open_table(USERS).unwrap().insert("111122223333/x", br#"{"format":9}"#.as_slice()).unwrap();
        txn.commit().unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("user record 111122223333/x has format 9"), "{err}");
        store.clear().unwrap();
        assert!(store.load().unwrap().users.is_empty());
    }
}
