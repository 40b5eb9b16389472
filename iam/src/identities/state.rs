//! State fixtures (`kmsim state export` / `import`): every user, role, managed policy and access key of the
//! identity store, each secret access key re-wrapped from the store's key to the archive's on export, and from the
//! archive's to the store's on import. Sessions live in memory only and are not part of the state.

use super::*;
use crate::store::Contents;

impl Identities {
    /// Whether the store holds no user, role or managed policy.
    pub fn is_empty(&self) -> bool {
        self.read().accounts.values().all(|a| a.users.is_empty() && a.roles.is_empty() && a.policies.is_empty())
    }

    /// Every record, each secret access key re-wrapped under `archive`. Reads under the state lock, which every
    /// change holds while it commits, so the records are one consistent cut.
    pub fn export_state(&self, archive: &SecretBox) -> Result<Contents> {
        let _state = self.write();
        let mut contents = self.store.load()?;
        for key in &mut contents.access_keys {
            let secret = self.secrets.unwrap(&key.id, &key.wrapped_secret)?;
            key.wrapped_secret = archive.wrap(&key.id, &secret);
        }
        Ok(contents)
    }

    /// Stores `contents` (secrets wrapped under `archive`) in one durable transaction, re-wrapped under the
    /// store's key, then loads it and registers its access keys. Refused unless the store is empty; nothing
    /// changes when it fails.
    pub fn import_state(&self, mut contents: Contents, archive: &SecretBox) -> Result<()> {
        if !self.is_empty() {
            return Err(Error::Validation("the identity store is not empty; import into an empty one".into()));
        }
        for key in &mut contents.access_keys {
            let secret = archive.unwrap(&key.id, &key.wrapped_secret)?;
            key.wrapped_secret = self.secrets.wrap(&key.id, &secret);
        }
        let mut changes = Vec::new();
        changes.extend(contents.policies.into_iter().map(Change::PutPolicy));
        changes.extend(contents.users.into_iter().map(Change::PutUser));
        changes.extend(contents.roles.into_iter().map(Change::PutRole));
        changes.extend(contents.access_keys.into_iter().map(Change::PutAccessKey));
        self.store.commit(&changes)?;
        if let Err(e) = self.load() {
            // Leave the store as it was: empty.
            self.reset()?;
            return Err(e);
        }
        Ok(())
    }
}
