//! Multi-Region keys: a primary key (`mrk-` id) and its replicas in other Regions, one id and one material. A
//! ciphertext of one decrypts with any of them. ReplicateKey, UpdatePrimaryRegion, and keeping the replicas'
//! material in step with their primary's rotations.

use std::sync::Arc;

use shared::Caller;

use super::{
    Access, Kms, LiveKey, import, key_not_found, pending_deletion, require_customer_managed, validate_description,
};
use crate::blob::EncryptionContext;
use crate::error::{Error, Result};
use crate::model::{Import, KeyRecord, KeyState, Origin, RECORD_FORMAT, Tag, key_store_key};

/// What ReplicateKey takes besides the key.
#[derive(Debug, Clone, Default)]
pub struct ReplicateInput {
    /// The Region of the new replica.
    pub replica_region: String,
    /// The replica's description (default: empty, as AWS leaves it).
    pub description: Option<String>,
    /// The replica's key policy (default: the primary's).
    pub policy: Option<String>,
    /// The replica's tags.
    pub tags: Vec<Tag>,
    /// `BypassPolicyLockoutSafetyCheck` for `policy`.
    pub bypass_policy_lockout_safety_check: bool,
}

/// Whether `region` looks like an AWS Region name (`us-east-1`, `eu-central-2`, `us-gov-west-1`, ...).
fn plausible_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

impl Kms {
    /// The related keys of a multi-Region key, each with its live key (from the in-memory state).
    pub(super) fn related_keys(&self, record: &KeyRecord) -> Vec<Arc<LiveKey>> {
        let Some(multi_region) = &record.multi_region else { return Vec::new() };
        let state = self.read_state();
        std::iter::once(&multi_region.primary_region)
            .chain(&multi_region.replica_regions)
            .filter(|region| **region != record.region)
            .filter_map(|region| state.keys.get(&key_store_key(region, &record.id)).cloned())
            .collect()
    }

    /// The replicas of a multi-Region primary whose material or rotation settings differ from `primary`'s, with the
    /// primary's (rotations reach every Region at once). Replicas of an `EXTERNAL` primary hold imports of their own
    /// and follow it only in on-demand rotation and in deleting material pending rotation
    /// ([`import::sync_imported_replica`]).
    pub(super) fn synced_replicas(&self, primary: &KeyRecord) -> Vec<(Arc<LiveKey>, KeyRecord)> {
        if primary.multi_region.as_ref().is_none_or(|m| m.primary_region != primary.region) {
            return Vec::new();
        }
        if primary.origin == Origin::External {
            return self
                .related_keys(primary)
                .into_iter()
                .filter_map(|replica| {
                    let mut record = replica.record.clone();
                    import::sync_imported_replica(primary, &mut record).then_some((replica, record))
                })
                .collect();
        }
        self.related_keys(primary)
            .into_iter()
            .filter(|replica| {
                replica.record.versions.len() != primary.versions.len() || replica.record.rotation != primary.rotation
            })
            .map(|replica| {
                let mut record = replica.record.clone();
                record.versions = primary.versions.clone();
                record.rotation = primary.rotation.clone();
                (replica, record)
            })
            .collect()
    }

    /// When the key of store key `purged` is a multi-Region replica, its related keys (those not purged too) no
    /// longer list its Region.
    pub(super) fn forget_purged_replica(&self, purged: &str, all_purged: &[String]) -> Vec<(Arc<LiveKey>, KeyRecord)> {
        let Some(live) = self.read_state().keys.get(purged).cloned() else { return Vec::new() };
        let region = live.record.region.clone();
        self.related_keys(&live.record)
            .into_iter()
            .filter(|other| !all_purged.contains(&other.record.store_key()))
            .map(|other| {
                let mut record = other.record.clone();
                if let Some(multi_region) = &mut record.multi_region {
                    multi_region.replica_regions.retain(|r| *r != region);
                }
                (other, record)
            })
            .collect()
    }

    /// ReplicateKey: a replica of the caller's multi-Region primary key in another Region.
    pub fn replicate_key(&self, caller: &Caller, key_id: &str, input: ReplicateInput) -> Result<KeyRecord> {
        if !plausible_region(&input.replica_region) {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value '{}' at 'replicaRegion' failed to satisfy constraint: Member must satisfy regular expression pattern: ^([a-z]+-){{2,3}}\\d+$",
                input.replica_region
            )));
        }
        if let Some(description) = &input.description {
            validate_description(description)?;
        }
        super::validate_tags(&input.tags)?;
        let _writer = self.lock_writer();
        let primary =
            self.resolve_for(caller, key_id, false, Access::Admin("kms:ReplicateKey"), &EncryptionContext::new())?;
        require_customer_managed(&primary.record)?;
        if let Some(policy) = &input.policy {
            let replica_arn =
                format!("arn:aws:kms:{}:{}:key/{}", input.replica_region, primary.record.account, primary.record.id);
            self.validate_policy(policy, caller, &replica_arn, input.bypass_policy_lockout_safety_check)?;
        }
        let Some(multi_region) = primary.record.multi_region.clone() else {
            return Err(Error::UnsupportedOperation(format!("{} is not a multi-Region key.", primary.record.arn())));
        };
        if multi_region.primary_region != primary.record.region {
            return Err(Error::UnsupportedOperation(format!(
                "{} is a replica key; replicate its primary key in {}.",
                primary.record.arn(),
                multi_region.primary_region
            )));
        }
        if primary.record.state == KeyState::PendingDeletion {
            return Err(pending_deletion(&primary.record));
        }
        let region = input.replica_region;
        if region == primary.record.region || multi_region.replica_regions.contains(&region) {
            return Err(Error::AlreadyExists(format!(
                "Multi-Region key {} already has a key in {region}.",
                primary.record.id
            )));
        }
        let now = self.clock.now();
        let mut configuration = multi_region;
        configuration.replica_regions.push(region.clone());
        let external = primary.record.origin == Origin::External;
        let replica = KeyRecord {
            format: RECORD_FORMAT,
            region: region.clone(),
            description: input.description.unwrap_or_default(),
            created: now,
            // Key states are independent: a replica ends Enabled even when its primary is disabled, or PendingImport
            // for a replica of an imported key, which gets its own import of the same material.
            state: if external { KeyState::PendingImport } else { KeyState::Enabled },
            deletion_date: None,
            policy: input.policy.or_else(|| primary.record.policy.clone()),
            tags: input.tags,
            rotation: primary.record.rotation.clone(),
            // The imported materials' ids without the materials: the replica takes only the same materials.
            versions: primary
                .record
                .versions
                .iter()
                .cloned()
                .map(|mut version| {
                    if let Some(imported) = version.imported.as_mut() {
                        imported.valid_to = None;
                        version.wrapped_material.clear();
                    }
                    version
                })
                .collect(),
            import: external.then(Import::default),
            grants: Vec::new(),
            multi_region: Some(configuration.clone()),
            ..primary.record.clone()
        };
        let mut updates: Vec<(Arc<LiveKey>, KeyRecord)> = std::iter::once(primary.clone())
            .chain(self.related_keys(&primary.record))
            .map(|live| {
                let mut record = live.record.clone();
                record.multi_region = Some(configuration.clone());
                (live, record)
            })
            .collect();
        let empty = Arc::new(LiveKey::new(replica.clone(), Vec::new(), None));
        updates.push((empty, replica.clone()));
        self.publish(&updates, &[], &[])?;
        Ok(replica)
    }

    /// UpdatePrimaryRegion: the replica in `primary_region` becomes the primary, the old primary a replica.
    pub fn update_primary_region(&self, caller: &Caller, key_id: &str, primary_region: &str) -> Result<()> {
        let _writer = self.lock_writer();
        let current = self.resolve_for(
            caller,
            key_id,
            false,
            Access::Admin("kms:UpdatePrimaryRegion"),
            &EncryptionContext::new(),
        )?;
        require_customer_managed(&current.record)?;
        let Some(multi_region) = current.record.multi_region.clone() else {
            return Err(Error::UnsupportedOperation(format!("{} is not a multi-Region key.", current.record.arn())));
        };
        if multi_region.primary_region != current.record.region {
            return Err(Error::UnsupportedOperation(format!(
                "{} is a replica key; update the primary Region from the primary key in {}.",
                current.record.arn(),
                multi_region.primary_region
            )));
        }
        if !multi_region.replica_regions.iter().any(|r| r == primary_region) {
            return Err(key_not_found(primary_region, &current.record.account, &current.record.id));
        }
        // "Both the primary key and the replica key must be in the Enabled key state."
        let replica = self.related_keys(&current.record).into_iter().find(|k| k.record.region == primary_region);
        for record in std::iter::once(&current.record).chain(replica.as_ref().map(|k| &k.record)) {
            if record.state != KeyState::Enabled {
                return Err(Error::InvalidState(format!(
                    "{} is {}; the primary and the new primary key must both be Enabled.",
                    record.arn(),
                    record.state.as_str()
                )));
            }
        }
        let mut configuration = multi_region;
        configuration.replica_regions.retain(|r| r != primary_region);
        configuration.replica_regions.push(std::mem::replace(&mut configuration.primary_region, primary_region.into()));
        let updates: Vec<(Arc<LiveKey>, KeyRecord)> = std::iter::once(current.clone())
            .chain(self.related_keys(&current.record))
            .map(|live| {
                let mut record = live.record.clone();
                record.multi_region = Some(configuration.clone());
                (live, record)
            })
            .collect();
        self.publish(&updates, &[], &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_are_checked_for_shape() {
        for region in ["us-east-1", "eu-central-2", "us-gov-west-1", "ap-southeast-4"] {
            assert!(plausible_region(region), "{region}");
        }
        for region in ["", "useast1", "us-east", "US-EAST-1", "us--1", "us-east-1a"] {
            assert!(!plausible_region(region), "{region}");
        }
    }
}
