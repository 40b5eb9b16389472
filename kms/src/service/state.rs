//! State fixtures (`kmsim state export` / `import`): every key and alias of the KMS, with each secret the key
//! records hold (version material, material pending rotation, import wrapping keys) re-wrapped from the master key
//! to the archive's key on export, and from the archive's key to this KMS's master key on import.

use super::import::wrapping_key_aad;
use super::*;

/// What a state archive holds of the KMS: the records as stored, their secrets wrapped under the archive's key.
#[derive(Debug, Default)]
pub struct KmsState {
    /// Every key (each multi-Region replica is a record of its own), grants and policies inside.
    pub keys: Vec<KeyRecord>,
    /// Every alias.
    pub aliases: Vec<AliasRecord>,
}

impl Kms {
    /// Whether the KMS holds no key and no alias.
    pub fn is_empty(&self) -> bool {
        let state = self.read_state();
        state.keys.is_empty() && state.aliases.is_empty()
    }

    /// Every key and alias, their secrets re-wrapped from the master key to `archive`. Holds the writer lock
    /// while it reads, so the records are one consistent cut of the KMS.
    pub fn export_state(&self, archive: &MasterKey) -> Result<KmsState> {
        let _writer = self.lock_writer();
        let (mut keys, aliases) = self.store.load()?;
        for record in &mut keys {
            rewrap(record, &self.master, archive)?;
        }
        Ok(KmsState { keys, aliases })
    }

    /// Stores `state` (secrets wrapped under `archive`) in one durable transaction, re-wrapped under the master
    /// key, then loads it. Refused unless the KMS is empty; nothing changes when it fails.
    pub fn import_state(&self, mut state: KmsState, archive: &MasterKey) -> Result<()> {
        let _writer = self.lock_writer();
        if !self.is_empty() {
            return Err(Error::InvalidState("the KMS already holds keys or aliases; import into an empty one".into()));
        }
        for record in &mut state.keys {
            if record.format != RECORD_FORMAT {
                return Err(Error::Validation(format!(
                    "key record {} is of format {}, this build reads format {RECORD_FORMAT}",
                    record.id, record.format
                )));
            }
            rewrap(record, archive, &self.master)?;
        }
        let mut changes: Vec<Change<'_>> = state.keys.iter().map(Change::PutKey).collect();
        changes.extend(state.aliases.iter().map(Change::PutAlias));
        self.store.commit(&changes)?;
        if let Err(e) = self.load() {
            // Leave the KMS as it was: empty.
            self.store.clear()?;
            *self.write_state() = State::default();
            return Err(e);
        }
        Ok(())
    }
}

/// Re-wraps every secret of `record` from `from` to `to`, bound to the same key id and version as before.
fn rewrap(record: &mut KeyRecord, from: &MasterKey, to: &MasterKey) -> Result<()> {
    let id = record.id.clone();
    for (index, version) in record.versions.iter_mut().enumerate() {
        rewrap_material(&id, index as u32, &mut version.wrapped_material, from, to)?;
    }
    let next = record.versions.len() as u32;
    if let Some(import) = &mut record.import {
        if let Some(pending) = &mut import.pending_rotation {
            rewrap_material(&id, next, &mut pending.wrapped_material, from, to)?;
        }
        for parameters in &mut import.parameters {
            let aad_id = wrapping_key_aad(&id, &parameters.token_id);
            rewrap_material(&aad_id, 0, &mut parameters.wrapped_private_key, from, to)?;
        }
    }
    Ok(())
}

fn rewrap_material(id: &str, version: u32, wrapped: &mut String, from: &MasterKey, to: &MasterKey) -> Result<()> {
    if wrapped.is_empty() {
        return Ok(());
    }
    let material = from.unwrap(id, version, wrapped)?;
    *wrapped = to.wrap(id, version, &material);
    Ok(())
}
