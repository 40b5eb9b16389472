//! The KMS core: keys, aliases, grants, rotation and the cryptographic operations, with the key
//! state and access rules of AWS KMS. No HTTP and no JSON here: the front ends parse requests into
//! calls of [`Kms`] and render what it returns.
//!
//! Reads (every cryptographic operation) take a read lock just long enough to clone an
//! `Arc<LiveKey>`; the AES key schedules are built once per key version and kept. Mutations are
//! serialized by one writer lock, committed to the [`Store`] (fsynced) *before* they become
//! visible, then swapped into the in-memory state: nothing is acknowledged that a crash can lose.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard};

use shared::entropy::{Entropy, Purpose};
use shared::identity::{AccountWide, Identities};
use shared::{Caller, Clock, RequestContext};
use zeroize::Zeroizing;

use crate::audit::{AuditLog, AuditOptions};
use crate::blob::{self, EncryptionContext};
use crate::crypto::{self, VersionKey};
use crate::error::{Error, Result};
use crate::material::{KeyMaterial, MasterKey};
use crate::model::*;
use crate::spec::{EncryptionAlgorithm, KeySpec, KeyUsage};
use crate::store::{Change, MASTER_CHECK, Store};
use faults::Faults;

mod access;
mod asymmetric;
mod fault;
mod import;
mod multi_region;
mod state;

use access::Access;
pub use state::KmsState;

pub(crate) use asymmetric::check_length;
pub use asymmetric::{DataKeyPair, SignOutput};
pub use import::{
    IMPORT_PARAMETERS_LIFETIME, ImportInput, ImportParametersOutput, ImportType, MAX_VALID_TO_AHEAD, MaterialState,
    WrappingAlgorithm, material_id, materials, parse_wrapping_key_spec,
};
pub use multi_region::ReplicateInput;

/// Largest plaintext Encrypt accepts.
pub const MAX_ENCRYPT_PLAINTEXT: usize = 4096;
/// Largest ciphertext blob Decrypt accepts.
pub const MAX_CIPHERTEXT_BLOB: usize = 6144;
/// Largest data key or random string, in bytes.
pub const MAX_DATA_KEY_BYTES: usize = 1024;
/// On-demand rotations allowed per key.
pub const MAX_ON_DEMAND_ROTATIONS: u32 = 25;
/// Tags allowed per key.
pub const MAX_TAGS: usize = 50;
/// Grant tokens allowed per request.
pub const MAX_GRANT_TOKENS: usize = 10;
/// Automatic rotations a single clock jump may cause per key.
const MAX_CATCH_UP_ROTATIONS: u32 = 100;
/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// A key as the crypto paths use it: its record and the ready-to-use key of each version.
pub struct LiveKey {
    /// The persisted record (without plaintext material).
    pub record: KeyRecord,
    versions: Vec<Arc<VersionKey>>,
    /// The key policy, compiled once per policy text.
    policy: Arc<policy::Policy>,
    /// The key's ARN, the resource every access decision names.
    arn: String,
}

impl LiveKey {
    /// The live key of `record` with its version keys; the compiled key policy is `previous`'s when the policy
    /// did not change.
    fn new(record: KeyRecord, versions: Vec<Arc<VersionKey>>, previous: Option<&LiveKey>) -> LiveKey {
        let policy = match previous {
            Some(previous) if previous.record.policy == record.policy && previous.record.account == record.account => {
                previous.policy.clone()
            }
            _ => access::compile_key_policy(&record),
        };
        let arn = record.arn();
        LiveKey { record, versions, policy, arn }
    }

    /// The version new encryptions and signatures use; an `EXTERNAL` key without material has none.
    fn current(&self) -> Result<&VersionKey> {
        self.versions
            .get(self.record.current_version() as usize)
            .map(|v| v.as_ref())
            .ok_or_else(|| pending_import(&self.record))
    }
}

impl std::fmt::Debug for LiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKey").field("record", &self.record).finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<LiveKey>>,
    /// By `alias_store_key`, so that listing is ordered per account and region.
    aliases: BTreeMap<String, AliasRecord>,
}

/// A key to create at start (from the config file), with fixed id and material so that
/// ciphertexts are stable across runs and machines.
#[derive(Debug, Clone)]
pub struct SeedKey {
    /// Fixed key id.
    pub id: String,
    /// Owning account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Fixed material.
    pub material: KeyMaterial,
    /// Description.
    pub description: String,
    /// Aliases to point at the key (`alias/...`).
    pub aliases: Vec<String>,
    /// Whether the key starts enabled.
    pub enabled: bool,
}

/// Where the KMS keeps its state.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A data dir: `kms.redb`, the master key file, and the audit log (`audit.jsonl` and its
    /// rotations `audit.<n>.jsonl`).
    Dir {
        /// The data dir.
        dir: std::path::PathBuf,
        /// The master key file; default `<dir>/master.key`.
        master_key_file: Option<std::path::PathBuf>,
    },
    /// Nothing on disk; a random master key.
    Memory,
}

/// One entry of ListKeyRotations: a key material, its id and state.
#[derive(Debug, Clone)]
pub struct RotationEntry {
    /// `KeyMaterialId`.
    pub material_id: String,
    /// `KeyMaterialState`.
    pub state: MaterialState,
    /// The version (or the material pending rotation).
    pub version: KeyVersion,
}

/// Parameters of CreateKey that the core keeps.
#[derive(Debug, Clone)]
pub struct CreateKeyInput {
    /// Description (0–8192 characters).
    pub description: String,
    /// Key policy; a default policy when `None`.
    pub policy: Option<String>,
    /// `BypassPolicyLockoutSafetyCheck`: take a policy that would not let the caller change it later.
    pub bypass_policy_lockout_safety_check: bool,
    /// Tags.
    pub tags: Vec<Tag>,
    /// An alias (`alias/...`) created with the key in the same commit, as the OTC dialect's create-key does.
    pub alias: Option<String>,
    /// The kind of key.
    pub spec: KeySpec,
    /// What it is for (checked against the spec).
    pub usage: KeyUsage,
    /// `External`: created without material, PendingImport until ImportKeyMaterial.
    pub origin: Origin,
    /// A multi-Region primary key (`mrk-` id).
    pub multi_region: bool,
}

impl Default for CreateKeyInput {
    fn default() -> Self {
        CreateKeyInput {
            description: String::new(),
            policy: None,
            bypass_policy_lockout_safety_check: false,
            tags: Vec::new(),
            alias: None,
            spec: KeySpec::SymmetricDefault,
            usage: KeyUsage::EncryptDecrypt,
            origin: Origin::AwsKms,
            multi_region: false,
        }
    }
}

/// A fresh data key.
#[derive(Debug)]
pub struct DataKey {
    /// The plaintext key; absent for GenerateDataKeyWithoutPlaintext.
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    /// The data key encrypted under the KMS key.
    pub ciphertext_blob: Vec<u8>,
    /// ARN of the KMS key.
    pub key_arn: String,
}

/// The result of Decrypt.
#[derive(Debug)]
pub struct Decrypted {
    /// The plaintext.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// ARN of the key that decrypted it.
    pub key_arn: String,
}

/// The result of ReEncrypt.
#[derive(Debug)]
pub struct ReEncrypted {
    /// The new blob.
    pub ciphertext_blob: Vec<u8>,
    /// ARN of the key that decrypted.
    pub source_key_arn: String,
    /// ARN of the key that encrypted.
    pub key_arn: String,
}

/// Parameters of ReEncrypt.
#[derive(Debug, Clone, Copy)]
pub struct ReEncryptInput<'a> {
    /// The ciphertext.
    pub ciphertext: &'a [u8],
    /// Its encryption context.
    pub source_context: &'a EncryptionContext,
    /// The key that encrypted it (required for an RSA ciphertext).
    pub source_key_id: Option<&'a str>,
    /// The algorithm that encrypted it.
    pub source_algorithm: EncryptionAlgorithm,
    /// The key to encrypt under.
    pub destination_key_id: &'a str,
    /// The new encryption context.
    pub destination_context: &'a EncryptionContext,
    /// The algorithm to encrypt with.
    pub destination_algorithm: EncryptionAlgorithm,
}

/// Parameters of CreateGrant.
#[derive(Debug, Clone, Default)]
pub struct CreateGrantInput {
    /// Principal receiving the grant.
    pub grantee_principal: String,
    /// Principal allowed to retire it.
    pub retiring_principal: Option<String>,
    /// Granted operations (non-empty).
    pub operations: Vec<GrantOperation>,
    /// Encryption context constraints.
    pub constraints: Option<GrantConstraints>,
    /// Optional name (makes CreateGrant idempotent).
    pub name: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Marker of the next page, if there is one.
    pub next_marker: Option<String>,
}

/// How a RetireGrant names its grant.
#[derive(Debug, Clone)]
pub enum RetireBy<'a> {
    /// By token.
    Token(&'a str),
    /// By key and grant id.
    Id {
        /// Key id or ARN.
        key_id: &'a str,
        /// Grant id.
        grant_id: &'a str,
    },
}

/// The KMS.
pub struct Kms {
    state: RwLock<State>,
    /// Serializes mutations; held across the store commit, never by readers.
    writer: Mutex<()>,
    store: Store,
    master: MasterKey,
    seeds: Vec<SeedKey>,
    /// The KMS clock (simulated time).
    pub clock: Arc<Clock>,
    /// The fault rules in force: for the KMS's own front ends and calls, and for every other service's (they share
    /// the KMS clock, on which rules expire).
    pub faults: Arc<Faults>,
    /// The audit log of every KMS call.
    pub audit: AuditLog,
    /// The stack's source of randomness: key ids, material, data keys, IVs, grant and request ids.
    pub entropy: Arc<Entropy>,
    /// Whose identity policies apply to a caller: kmsim's IAM once plugged in ([`Kms::use_identities`]), else
    /// `account_wide`.
    identities: OnceLock<Arc<dyn Identities>>,
    /// Every principal's identity policies allow everything ([`AccountWide`]) until IAM is plugged in.
    account_wide: AccountWide,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms").finish_non_exhaustive()
    }
}

impl Kms {
    /// Opens the KMS: loads keys from storage and creates the seeded ones that are missing. The
    /// audit log has the default limits ([`AuditOptions::default`]).
    pub fn open(storage: &Storage, seeds: Vec<SeedKey>) -> Result<Self> {
        Self::open_with_audit(storage, seeds, AuditOptions::default())
    }

    /// [`Kms::open`] with the audit log's limits (file rotation, retention, memory) from `audit`.
    ///
    /// A data dir that does not exist is created with mode 0700; `kms.redb` and the audit files
    /// are created with mode 0600. A missing master key file is created only when the store holds
    /// nothing wrapped under a previous one; otherwise opening fails and writes nothing.
    pub fn open_with_audit(storage: &Storage, seeds: Vec<SeedKey>, audit: AuditOptions) -> Result<Self> {
        Self::open_with(storage, seeds, audit, Arc::new(Entropy::os()))
    }

    /// [`Kms::open_with_audit`] drawing every id, key and nonce from `entropy` (the stack's, shared with the other
    /// services; seeded under `--deterministic`).
    pub fn open_with(
        storage: &Storage,
        seeds: Vec<SeedKey>,
        audit: AuditOptions,
        entropy: Arc<Entropy>,
    ) -> Result<Self> {
        let (store, master, audit_path) = match storage {
            Storage::Memory => (Store::in_memory()?, MasterKey::new(&KeyMaterial::generate(&Entropy::os())), None),
            Storage::Dir { dir, master_key_file } => {
                create_private_dir(dir)?;
                let master_path = master_key_file.clone().unwrap_or_else(|| dir.join("master.key"));
                let store_path = dir.join("kms.redb");
                // Decide before writing anything: a store that holds material (or the check value)
                // wrapped under a master key must not get a fresh, useless one.
                let needs_master = || {
                    Store::holds_wrapped_material(&store_path).map_err(|e| {
                        Error::Internal(format!(
                            "the master key file {} is missing, and the key store {} cannot be checked for keys \
                             wrapped under it ({e}): restore the master key file",
                            master_path.display(),
                            store_path.display()
                        ))
                    })
                };
                if !master_path.exists() && store_path.exists() && needs_master()? {
                    return Err(Error::Internal(format!(
                        "the master key file {} is missing, but the key store {} holds keys wrapped under it: \
                         restore the master key file (or remove the store to start afresh)",
                        master_path.display(),
                        store_path.display()
                    )));
                }
                let master = MasterKey::load_or_create(&master_path)?;
                (Store::open(&store_path)?, master, Some(dir.join("audit.jsonl")))
            }
        };
        check_master_key(&store, &master)?;
        let audit =
            AuditLog::new(audit_path, audit).map_err(|e| Error::Internal(format!("opening the audit log: {e}")))?;
        // A deterministic stack's clock stands still (at `DETERMINISTIC_START`) until a test advances it.
        let clock = Arc::new(if entropy.is_deterministic() {
            Clock::frozen(shared::clock::DETERMINISTIC_START)
        } else {
            Clock::wall()
        });
        let faults = {
            let clock = clock.clone();
            Arc::new(Faults::new(Arc::new(move || clock.now_millis())).with_entropy(entropy.clone()))
        };
        let kms = Kms {
            state: RwLock::new(State::default()),
            writer: Mutex::new(()),
            store,
            master,
            seeds,
            clock,
            faults,
            audit,
            entropy,
            identities: OnceLock::new(),
            account_wide: AccountWide::default(),
        };
        kms.load()?;
        kms.apply_seeds()?;
        Ok(kms)
    }

    /// From now on, asks `identities` for callers' identity policies (until then every principal's identity
    /// policies allow everything, [`AccountWide`], so that key policies and grants alone restrict access). Set once:
    /// false (and nothing changes) if identities were already plugged in.
    pub fn use_identities(&self, identities: Arc<dyn Identities>) -> bool {
        self.identities.set(identities).is_ok()
    }

    /// The source of callers' identity policies.
    fn identities(&self) -> &dyn Identities {
        match self.identities.get() {
            Some(identities) => identities.as_ref(),
            None => &self.account_wide,
        }
    }

    /// Opens an in-memory KMS with no seeds (unit tests, benchmarks).
    pub fn in_memory() -> Result<Self> {
        Self::open(&Storage::Memory, Vec::new())
    }

    fn load(&self) -> Result<()> {
        let (keys, aliases) = self.store.load()?;
        let mut state = State::default();
        for record in keys {
            let live = self.live_key(record, None)?;
            state.keys.insert(live.record.store_key(), Arc::new(live));
        }
        for alias in aliases {
            state.aliases.insert(alias.store_key(), alias);
        }
        *self.write_state() = state;
        Ok(())
    }

    /// Builds the version keys of `record`, reusing those of `previous` for the versions it had.
    fn live_key(&self, record: KeyRecord, previous: Option<&LiveKey>) -> Result<LiveKey> {
        // A key missing any of its imported materials is PendingImport (or pending deletion) and usable for nothing.
        if !record.versions.iter().all(KeyVersion::has_material) {
            return Ok(LiveKey::new(record, Vec::new(), previous));
        }
        let mut versions = previous.map(|p| p.versions.clone()).unwrap_or_default();
        versions.truncate(record.versions.len());
        for (version, v) in record.versions.iter().enumerate().skip(versions.len()) {
            let material = self.master.unwrap(&record.id, version as u32, &v.wrapped_material)?;
            let key = VersionKey::new(record.spec, record.usage, &material).map_err(|e| {
                Error::Internal(format!(
                    "key {} version {version} does not hold {} material: {e}",
                    record.id,
                    record.spec.as_str()
                ))
            })?;
            versions.push(Arc::new(key));
        }
        Ok(LiveKey::new(record, versions, previous))
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply_seeds(&self) -> Result<()> {
        let _writer = self.lock_writer();
        let now = self.clock.now();
        for seed in &self.seeds {
            let existing = self.read_state().keys.get(&seed.id).cloned();
            let mut changes_keys = Vec::new();
            if let Some(live) = &existing {
                let stored = self.master.unwrap(&seed.id, 0, &live.record.versions[0].wrapped_material)?;
                if stored.bytes() != seed.material.bytes() || live.record.account != seed.account {
                    return Err(Error::Internal(format!(
                        "seeded key {} exists with other material or in another account; reset the data dir or change the seed",
                        seed.id
                    )));
                }
            } else {
                let record = KeyRecord {
                    format: RECORD_FORMAT,
                    id: seed.id.clone(),
                    account: seed.account.clone(),
                    region: seed.region.clone(),
                    description: seed.description.clone(),
                    spec: KeySpec::SymmetricDefault,
                    usage: KeyUsage::EncryptDecrypt,
                    origin: Origin::AwsKms,
                    import: None,
                    multi_region: None,
                    created: now,
                    state: if seed.enabled { KeyState::Enabled } else { KeyState::Disabled },
                    deletion_date: None,
                    manager: KeyManager::Customer,
                    policy: Some(default_policy(&seed.account)),
                    tags: Vec::new(),
                    rotation: Rotation { period_days: 365, ..Rotation::default() },
                    versions: vec![KeyVersion {
                        created: now,
                        rotation_type: None,
                        wrapped_material: self.master.wrap(&seed.id, 0, &seed.material),
                        imported: None,
                    }],
                    grants: Vec::new(),
                };
                changes_keys.push(record);
            }
            let mut new_aliases = Vec::new();
            for name in &seed.aliases {
                validate_alias_name(name, false)?;
                let key = alias_store_key(&seed.account, &seed.region, name);
                if !self.read_state().aliases.contains_key(&key) {
                    new_aliases.push(AliasRecord::new(name, &seed.account, &seed.region, &seed.id, now));
                }
            }
            let mut changes: Vec<Change<'_>> = changes_keys.iter().map(Change::PutKey).collect();
            changes.extend(new_aliases.iter().map(Change::PutAlias));
            if changes.is_empty() {
                continue;
            }
            self.store.commit(&changes)?;
            drop(changes);
            for record in changes_keys {
                let live = self.live_key(record, None)?;
                self.write_state().keys.insert(live.record.store_key(), Arc::new(live));
            }
            let mut state = self.write_state();
            for alias in new_aliases {
                state.aliases.insert(alias.store_key(), alias);
            }
        }
        Ok(())
    }

    /// Forgets every key, alias and audit event (in memory and the audit files: rotated files
    /// removed, the current one truncated), undoes the clock's advances, and seeds again.
    pub fn reset(&self) -> Result<()> {
        {
            let _writer = self.lock_writer();
            self.store.clear()?;
            *self.write_state() = State::default();
        }
        self.audit.reset();
        self.clock.reset();
        self.apply_seeds()
    }

    // ---- resolving keys and checking access ----------------------------------------------------

    /// Finds the key `key_id` names, from the caller's point of view.
    fn resolve(&self, caller: &Caller, key_id: &str, allow_alias: bool) -> Result<Arc<LiveKey>> {
        let key_ref = KeyRef::parse(key_id)?;
        if key_ref.is_alias() && !allow_alias {
            return Err(Error::NotFound(format!("Invalid keyId {key_id}")));
        }
        let state = self.read_state();
        let (region, account, id) = match key_ref {
            KeyRef::Id(id) => (caller.region.as_str(), caller.account_id.as_str(), id),
            KeyRef::KeyArn { region, account, id } => (region, account, id),
            KeyRef::Alias(name) => {
                let alias = state
                    .aliases
                    .get(&alias_store_key(&caller.account_id, &caller.region, name))
                    .ok_or_else(|| alias_not_found(&caller.region, &caller.account_id, name))?;
                (caller.region.as_str(), caller.account_id.as_str(), alias_target(alias))
            }
            KeyRef::AliasArn { region, account, name } => {
                let alias = state
                    .aliases
                    .get(&alias_store_key(account, region, name))
                    .ok_or_else(|| alias_not_found(region, account, name))?;
                (region, account, alias_target(alias))
            }
        };
        match state.keys.get(&key_store_key(region, id)) {
            Some(live) if live.record.account == account && live.record.region == region && region == caller.region => {
                Ok(live.clone())
            }
            None if matches!(key_ref, KeyRef::Id(_)) && !well_formed_key_id(id) => {
                Err(Error::NotFound(format!("Invalid keyId '{id}'")))
            }
            _ => Err(key_not_found(region, account, id)),
        }
    }

    /// Resolves a key and checks that the caller may use it for `access`.
    fn resolve_for(
        &self,
        caller: &Caller,
        key_id: &str,
        allow_alias: bool,
        access: Access,
        context: &EncryptionContext,
    ) -> Result<Arc<LiveKey>> {
        self.resolve_with(caller, key_id, allow_alias, access, context, &[])
    }

    /// [`Kms::resolve_for`] with the operation's own condition keys (`kms:EncryptionAlgorithm`, ...).
    fn resolve_with(
        &self,
        caller: &Caller,
        key_id: &str,
        allow_alias: bool,
        access: Access,
        context: &EncryptionContext,
        conditions: &[(&'static str, &str)],
    ) -> Result<Arc<LiveKey>> {
        let live = self.resolve(caller, key_id, allow_alias)?;
        self.authorize(caller, &live, access, context, Some(key_id), conditions)?;
        Ok(live)
    }

    /// The aliases of `key` (`alias/...`), for `kms:ResourceAliases`.
    fn aliases_of(&self, key: &KeyRecord) -> Vec<String> {
        let prefix = alias_store_key(&key.account, &key.region, "");
        let state = self.read_state();
        state
            .aliases
            .range(prefix.clone()..)
            .take_while(|(store_key, _)| store_key.starts_with(&prefix))
            .filter(|(_, alias)| alias.target_key_id == key.id)
            .map(|(_, alias)| alias.name.clone())
            .collect()
    }

    /// Checks `GrantTokens`: at most ten, each one kmsim issued.
    pub fn check_grant_tokens(&self, tokens: &[String]) -> Result<()> {
        if tokens.len() > MAX_GRANT_TOKENS {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value at 'grantTokens' failed to satisfy constraint: Member must have length less than or equal to {MAX_GRANT_TOKENS}"
            )));
        }
        if tokens.is_empty() {
            return Ok(());
        }
        let state = self.read_state();
        for token in tokens {
            let known = state.keys.values().any(|k| k.record.grants.iter().any(|g| g.grant_tokens.contains(token)));
            if !known {
                return Err(Error::InvalidGrantToken("The grant token is not valid.".into()));
            }
        }
        Ok(())
    }

    // ---- mutations -----------------------------------------------------------------------------

    /// Applies `change` to a copy of the key's record, commits it (with the replicas of a multi-Region primary whose
    /// material it changed, see [`Kms::synced_replicas`]), then publishes it.
    fn mutate_key<R>(
        &self,
        caller: &Caller,
        key_id: &str,
        access: Access,
        change: impl FnOnce(&mut KeyRecord, i64) -> Result<R>,
    ) -> Result<(R, KeyRecord)> {
        let _writer = self.lock_writer();
        let live = self.resolve_for(caller, key_id, false, access, &EncryptionContext::new())?;
        let mut record = live.record.clone();
        let result = change(&mut record, self.clock.now())?;
        let mut updates = vec![(live, record.clone())];
        updates.extend(self.synced_replicas(&record));
        self.publish(&updates, &[], &[])?;
        Ok((result, record))
    }

    /// Commits `updates` (each key's current live key and its new record), `deleted_keys` (store keys) and
    /// `deleted_aliases` in one transaction, then publishes them. The caller holds the writer lock.
    fn publish(
        &self,
        updates: &[(Arc<LiveKey>, KeyRecord)],
        deleted_keys: &[String],
        deleted_aliases: &[String],
    ) -> Result<()> {
        let mut changes: Vec<Change<'_>> = deleted_keys.iter().map(|k| Change::DeleteKey(k)).collect();
        changes.extend(deleted_aliases.iter().map(|k| Change::DeleteAlias(k.clone())));
        changes.extend(updates.iter().map(|(_, r)| Change::PutKey(r)));
        self.store.commit(&changes)?;
        let mut published = Vec::with_capacity(updates.len());
        for (live, record) in updates {
            published.push(self.live_key(record.clone(), Some(live))?);
        }
        let mut state = self.write_state();
        for key in deleted_keys {
            state.keys.remove(key);
        }
        for key in deleted_aliases {
            state.aliases.remove(key);
        }
        for live in published {
            state.keys.insert(live.record.store_key(), Arc::new(live));
        }
        Ok(())
    }

    /// CreateKey.
    pub fn create_key(&self, caller: &Caller, input: CreateKeyInput) -> Result<KeyRecord> {
        validate_description(&input.description)?;
        validate_tags(&input.tags)?;
        crate::spec::check_spec_and_usage(input.spec, Some(input.usage))?;
        let now = self.clock.now();
        // A seeded stream draws ids a state made in an earlier run may hold (an archive carried by a kmsim that
        // was not seeded loses the generation it was drawn in): the next draw then, never a key replaced.
        let id = loop {
            let id = if input.multi_region {
                format!("mrk-{}", self.entropy.uuid(Purpose::KeyId).simple())
            } else {
                self.entropy.uuid(Purpose::KeyId).to_string()
            };
            if !self.read_state().keys.contains_key(&key_store_key(&caller.region, &id)) {
                break id;
            }
        };
        if let Some(policy) = &input.policy {
            let arn = format!("arn:aws:kms:{}:{}:key/{id}", caller.region, caller.account_id);
            self.validate_policy(policy, caller, &arn, input.bypass_policy_lockout_safety_check)?;
        }
        // RSA key generation takes up to a second: before the writer lock.
        let material = match input.origin {
            Origin::AwsKms => Some(crypto::generate(input.spec, &self.entropy, Purpose::KeyMaterial)?),
            Origin::External => None,
        };
        let record = KeyRecord {
            format: RECORD_FORMAT,
            id: id.clone(),
            account: caller.account_id.clone(),
            region: caller.region.clone(),
            description: input.description,
            spec: input.spec,
            usage: input.usage,
            origin: input.origin,
            import: (input.origin == Origin::External).then(Import::default),
            multi_region: input
                .multi_region
                .then(|| MultiRegion { primary_region: caller.region.clone(), replica_regions: Vec::new() }),
            created: now,
            state: if material.is_some() { KeyState::Enabled } else { KeyState::PendingImport },
            deletion_date: None,
            manager: KeyManager::Customer,
            policy: Some(input.policy.unwrap_or_else(|| default_policy(&caller.account_id))),
            tags: input.tags,
            rotation: Rotation { period_days: 365, ..Rotation::default() },
            versions: material
                .iter()
                .map(|material| KeyVersion {
                    created: now,
                    rotation_type: None,
                    wrapped_material: self.master.wrap(&id, 0, material),
                    imported: None,
                })
                .collect(),
            grants: Vec::new(),
        };
        let _writer = self.lock_writer();
        let alias = match &input.alias {
            Some(name) => {
                validate_alias_name(name, true)?;
                let store_key = alias_store_key(&caller.account_id, &caller.region, name);
                if self.read_state().aliases.contains_key(&store_key) {
                    return Err(alias_exists(caller, name));
                }
                Some((store_key, AliasRecord::new(name, &caller.account_id, &caller.region, &id, now)))
            }
            None => None,
        };
        match &alias {
            Some((_, alias)) => self.store.commit(&[Change::PutKey(&record), Change::PutAlias(alias)])?,
            None => self.store.commit(&[Change::PutKey(&record)])?,
        }
        let versions = match &material {
            Some(material) => vec![Arc::new(VersionKey::new(input.spec, input.usage, material)?)],
            None => Vec::new(),
        };
        let live = LiveKey::new(record.clone(), versions, None);
        let mut state = self.write_state();
        state.keys.insert(record.store_key(), Arc::new(live));
        if let Some((store_key, alias)) = alias {
            state.aliases.insert(store_key, alias);
        }
        Ok(record)
    }

    /// The ARN of a service-managed alias's key if it exists already (no write).
    pub fn existing_service_managed_key(&self, caller: &Caller, alias: &str) -> Option<String> {
        let state = self.read_state();
        let target = &state.aliases.get(&alias_store_key(&caller.account_id, &caller.region, alias))?.target_key_id;
        state.keys.get(target).map(|k| k.record.arn())
    }

    /// The key of a service-managed alias (`alias/aws/s3`, ...), created on first use.
    pub fn service_managed_key(&self, caller: &Caller, alias: &str, description: &str) -> Result<KeyRecord> {
        let store_key = alias_store_key(&caller.account_id, &caller.region, alias);
        let existing = self.read_state().aliases.get(&store_key).map(|a| a.target_key_id.clone());
        if let Some(id) = existing {
            return Ok(self.resolve(caller, &id, false)?.record.clone());
        }
        let _writer = self.lock_writer();
        if let Some(alias) = self.read_state().aliases.get(&store_key) {
            let id = alias.target_key_id.clone();
            return self
                .read_state()
                .keys
                .get(&id)
                .map(|k| k.record.clone())
                .ok_or_else(|| key_not_found(&caller.region, &caller.account_id, &id));
        }
        let now = self.clock.now();
        let id = self.entropy.uuid(Purpose::KeyId).to_string();
        let material = KeyMaterial::generate(&self.entropy);
        let record = KeyRecord {
            format: RECORD_FORMAT,
            id: id.clone(),
            account: caller.account_id.clone(),
            region: caller.region.clone(),
            description: description.to_owned(),
            spec: KeySpec::SymmetricDefault,
            usage: KeyUsage::EncryptDecrypt,
            origin: Origin::AwsKms,
            import: None,
            multi_region: None,
            created: now,
            state: KeyState::Enabled,
            deletion_date: None,
            manager: KeyManager::Aws,
            policy: Some(default_policy(&caller.account_id)),
            tags: Vec::new(),
            rotation: Rotation {
                enabled: true,
                period_days: 365,
                next_rotation: Some(now + 365 * DAY),
                on_demand_count: 0,
            },
            versions: vec![KeyVersion {
                created: now,
                rotation_type: None,
                wrapped_material: self.master.wrap(&id, 0, &material),
                imported: None,
            }],
            grants: Vec::new(),
        };
        let alias_record = AliasRecord::new(alias, &caller.account_id, &caller.region, &id, now);
        self.store.commit(&[Change::PutKey(&record), Change::PutAlias(&alias_record)])?;
        let versions = vec![Arc::new(VersionKey::new(KeySpec::SymmetricDefault, KeyUsage::EncryptDecrypt, &material)?)];
        let live = LiveKey::new(record.clone(), versions, None);
        let mut state = self.write_state();
        state.keys.insert(record.store_key(), Arc::new(live));
        state.aliases.insert(store_key, alias_record);
        Ok(record)
    }

    /// DescribeKey (key id, ARN, alias or alias ARN).
    pub fn describe_key(&self, caller: &Caller, key_id: &str) -> Result<KeyRecord> {
        let live = self.resolve_for(
            caller,
            key_id,
            true,
            Access::Grant(GrantOperation::DescribeKey),
            &EncryptionContext::new(),
        )?;
        Ok(live.record.clone())
    }

    /// ListKeys: the caller's keys in its region, ordered by key id.
    pub fn list_keys(&self, caller: &Caller, limit: usize, marker: Option<&str>) -> Result<Page<(String, String)>> {
        let state = self.read_state();
        let mut keys: Vec<(String, (String, String))> = state
            .keys
            .values()
            .filter(|k| k.record.account == caller.account_id && k.record.region == caller.region)
            .map(|k| (k.record.id.clone(), (k.record.id.clone(), k.record.arn())))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        paginate(keys, limit, marker)
    }

    /// UpdateKeyDescription.
    pub fn update_key_description(&self, caller: &Caller, key_id: &str, description: &str) -> Result<()> {
        validate_description(description)?;
        self.mutate_key(caller, key_id, Access::Admin("kms:UpdateKeyDescription"), |record, _| {
            require_customer_managed(record)?;
            if record.state == KeyState::PendingDeletion {
                return Err(pending_deletion(record));
            }
            record.description = description.to_owned();
            Ok(())
        })
        .map(|_| ())
    }

    /// EnableKey.
    pub fn enable_key(&self, caller: &Caller, key_id: &str) -> Result<()> {
        self.mutate_key(caller, key_id, Access::Admin("kms:EnableKey"), |record, _| {
            require_customer_managed(record)?;
            if record.state == KeyState::PendingDeletion {
                return Err(pending_deletion(record));
            }
            if record.state == KeyState::PendingImport {
                return Err(pending_import(record));
            }
            record.state = KeyState::Enabled;
            Ok(())
        })
        .map(|_| ())
    }

    /// DisableKey.
    pub fn disable_key(&self, caller: &Caller, key_id: &str) -> Result<()> {
        self.mutate_key(caller, key_id, Access::Admin("kms:DisableKey"), |record, _| {
            require_customer_managed(record)?;
            if record.state == KeyState::PendingDeletion {
                return Err(pending_deletion(record));
            }
            if record.state == KeyState::PendingImport {
                return Err(pending_import(record));
            }
            record.state = KeyState::Disabled;
            Ok(())
        })
        .map(|_| ())
    }

    /// ScheduleKeyDeletion: the key is purged `pending_days` from now.
    pub fn schedule_key_deletion(&self, caller: &Caller, key_id: &str, pending_days: u32) -> Result<KeyRecord> {
        self.mutate_key(caller, key_id, Access::Admin("kms:ScheduleKeyDeletion"), |record, now| {
            require_customer_managed(record)?;
            if record.state == KeyState::PendingDeletion {
                return Err(pending_deletion(record));
            }
            if let Some(multi_region) = &record.multi_region
                && multi_region.primary_region == record.region
                && !multi_region.replica_regions.is_empty()
            {
                return Err(Error::UnsupportedOperation(format!(
                    "{} is a multi-Region primary key with replicas in {}; kmsim does not simulate \
                     PendingReplicaDeletion: schedule the deletion of the replicas first.",
                    record.arn(),
                    multi_region.replica_regions.join(", ")
                )));
            }
            record.state = KeyState::PendingDeletion;
            record.deletion_date = Some(now + i64::from(pending_days) * DAY);
            Ok(())
        })
        .map(|(_, record)| record)
    }

    /// CancelKeyDeletion: the key returns to Disabled.
    pub fn cancel_key_deletion(&self, caller: &Caller, key_id: &str) -> Result<KeyRecord> {
        self.mutate_key(caller, key_id, Access::Admin("kms:CancelKeyDeletion"), |record, _| {
            if record.state != KeyState::PendingDeletion {
                return Err(Error::InvalidState(format!("{} is not pending deletion.", record.arn())));
            }
            // A key without material returns to waiting for it.
            record.state = if record.versions.iter().all(KeyVersion::has_material) && !record.versions.is_empty() {
                KeyState::Disabled
            } else {
                KeyState::PendingImport
            };
            record.deletion_date = None;
            Ok(())
        })
        .map(|(_, record)| record)
    }

    // ---- aliases -------------------------------------------------------------------------------

    /// CreateAlias: the caller's identity policies must allow `kms:CreateAlias` on the alias, and the key policy
    /// on the key.
    pub fn create_alias(&self, caller: &Caller, name: &str, target_key_id: &str) -> Result<()> {
        validate_alias_name(name, true)?;
        let _writer = self.lock_writer();
        self.authorize_alias(caller, "kms:CreateAlias", &alias_arn(&caller.region, &caller.account_id, name))?;
        let target = self.alias_target_key(caller, target_key_id, "kms:CreateAlias")?;
        let alias = AliasRecord::new(name, &caller.account_id, &caller.region, &target.id, self.clock.now());
        let store_key = alias.store_key();
        if self.read_state().aliases.contains_key(&store_key) {
            return Err(alias_exists(caller, name));
        }
        self.store.commit(&[Change::PutAlias(&alias)])?;
        self.write_state().aliases.insert(store_key, alias);
        Ok(())
    }

    /// UpdateAlias: points an existing alias at another key of the caller. `kms:UpdateAlias` is needed on the alias
    /// (identity policies) and on both keys (their key policies).
    pub fn update_alias(&self, caller: &Caller, name: &str, target_key_id: &str) -> Result<()> {
        validate_alias_name(name, true)?;
        let _writer = self.lock_writer();
        let mut alias = self.existing_alias(caller, name, "kms:UpdateAlias")?;
        let target = self.alias_target_key(caller, target_key_id, "kms:UpdateAlias")?;
        alias.target_key_id = target.id.clone();
        alias.updated = self.clock.now();
        self.store.commit(&[Change::PutAlias(&alias)])?;
        self.write_state().aliases.insert(alias.store_key(), alias);
        Ok(())
    }

    /// DeleteAlias: `kms:DeleteAlias` is needed on the alias (identity policies) and on its key (key policy).
    pub fn delete_alias(&self, caller: &Caller, name: &str) -> Result<()> {
        validate_alias_name(name, true)?;
        let _writer = self.lock_writer();
        let alias = self.existing_alias(caller, name, "kms:DeleteAlias")?;
        let store_key = alias.store_key();
        self.store.commit(&[Change::DeleteAlias(store_key.clone())])?;
        self.write_state().aliases.remove(&store_key);
        Ok(())
    }

    /// The caller's alias `name`, once `action` is allowed on it (identity policies, before it is looked up) and on
    /// the key it points at (that key's policy).
    fn existing_alias(&self, caller: &Caller, name: &str, action: &'static str) -> Result<AliasRecord> {
        self.authorize_alias(caller, action, &alias_arn(&caller.region, &caller.account_id, name))?;
        let store_key = alias_store_key(&caller.account_id, &caller.region, name);
        let alias = self
            .read_state()
            .aliases
            .get(&store_key)
            .cloned()
            .ok_or_else(|| alias_not_found(&caller.region, &caller.account_id, name))?;
        let current = self.read_state().keys.get(&key_store_key(&alias.region, &alias.target_key_id)).cloned();
        if let Some(current) = current {
            self.authorize(caller, &current, Access::Admin(action), &EncryptionContext::new(), None, &[])?;
        }
        Ok(alias)
    }

    /// ListAliases of the caller's account and region, optionally only those of one key.
    pub fn list_aliases(
        &self,
        caller: &Caller,
        key_id: Option<&str>,
        limit: usize,
        marker: Option<&str>,
    ) -> Result<Page<AliasRecord>> {
        let target = key_id.map(|k| self.resolve(caller, k, false)).transpose()?;
        let prefix = alias_store_key(&caller.account_id, &caller.region, "");
        let state = self.read_state();
        let aliases: Vec<(String, AliasRecord)> = state
            .aliases
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, a)| target.as_ref().is_none_or(|t| t.record.id == a.target_key_id))
            .map(|(_, a)| (a.name.clone(), a.clone()))
            .collect();
        paginate(aliases, limit, marker)
    }

    /// The key an alias may point at: the caller's own customer-managed key, not pending deletion.
    fn alias_target_key(&self, caller: &Caller, key_id: &str, action: &'static str) -> Result<KeyRecord> {
        let key_ref = KeyRef::parse(key_id)?;
        if key_ref.is_alias() {
            return Err(Error::Validation(format!("Aliases must refer to keys. Not aliases. TargetKeyId={key_id}")));
        }
        let live = self.resolve(caller, key_id, false)?;
        // Key administration: never across accounts.
        self.authorize(caller, &live, Access::Admin(action), &EncryptionContext::new(), None, &[])?;
        if live.record.manager == KeyManager::Aws {
            return Err(Error::Validation(format!(
                "{} is an AWS managed key; aliases of customer managed keys cannot point at it.",
                live.record.arn()
            )));
        }
        if live.record.state == KeyState::PendingDeletion {
            return Err(pending_deletion(&live.record));
        }
        Ok(live.record.clone())
    }

    // ---- cryptographic operations --------------------------------------------------------------

    /// Encrypt (plaintext of 1–4096 bytes): kmsim's ciphertext blob under a symmetric key, or RSA OAEP under an RSA
    /// encryption key. Returns the ciphertext and the key's ARN.
    pub fn encrypt(
        &self,
        caller: &Caller,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
        algorithm: EncryptionAlgorithm,
    ) -> Result<(Vec<u8>, String)> {
        if plaintext.is_empty() || plaintext.len() > MAX_ENCRYPT_PLAINTEXT {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length {}",
                if plaintext.is_empty() {
                    "greater than or equal to 1".to_owned()
                } else {
                    format!("less than or equal to {MAX_ENCRYPT_PLAINTEXT}")
                }
            )));
        }
        let conditions = [("kms:EncryptionAlgorithm", algorithm.as_str())];
        let live =
            self.resolve_with(caller, key_id, true, Access::Grant(GrantOperation::Encrypt), context, &conditions)?;
        require_enabled(&live.record)?;
        let ciphertext = self.seal_with(&live, plaintext, context, algorithm, "Encrypt")?;
        Ok((ciphertext, live.record.arn()))
    }

    /// Encrypts under `live` with `algorithm`, after checking that the key can (`op` names the operation).
    fn seal_with(
        &self,
        live: &LiveKey,
        plaintext: &[u8],
        context: &EncryptionContext,
        algorithm: EncryptionAlgorithm,
        op: &str,
    ) -> Result<Vec<u8>> {
        require_usage(&live.record, KeyUsage::EncryptDecrypt, op)?;
        require_encryption_algorithm(&live.record, algorithm)?;
        if algorithm == EncryptionAlgorithm::SymmetricDefault {
            return self.seal(live, plaintext, context);
        }
        refuse_asymmetric_context(context)?;
        let key = live.current()?;
        let limit = key.max_plaintext(algorithm).unwrap_or(0);
        if plaintext.len() > limit {
            return Err(Error::Validation(format!(
                "Algorithm {} and key spec {} cannot encrypt data larger than {limit} bytes.",
                algorithm.as_str(),
                live.record.spec.as_str()
            )));
        }
        key.rsa_encrypt(algorithm, plaintext, &self.entropy)
    }

    fn seal(&self, live: &LiveKey, plaintext: &[u8], context: &EncryptionContext) -> Result<Vec<u8>> {
        let version = live.record.current_version();
        let cipher = live.current()?.symmetric().ok_or_else(|| not_symmetric(&live.record, "Encrypt"))?;
        Ok(blob::seal(cipher, &live.record.id, version, plaintext, context, &self.entropy))
    }

    /// GenerateDataKey and GenerateDataKeyWithoutPlaintext: `bytes` (1–1024) of fresh key.
    pub fn generate_data_key(
        &self,
        caller: &Caller,
        key_id: &str,
        bytes: usize,
        context: &EncryptionContext,
        with_plaintext: bool,
    ) -> Result<DataKey> {
        if bytes == 0 || bytes > MAX_DATA_KEY_BYTES {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value '{bytes}' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and {MAX_DATA_KEY_BYTES}"
            )));
        }
        let op = if with_plaintext {
            GrantOperation::GenerateDataKey
        } else {
            GrantOperation::GenerateDataKeyWithoutPlaintext
        };
        let conditions = [("kms:EncryptionAlgorithm", EncryptionAlgorithm::SymmetricDefault.as_str())];
        let live = self.resolve_with(caller, key_id, true, Access::Grant(op), context, &conditions)?;
        require_enabled(&live.record)?;
        require_symmetric(&live.record, op.as_str())?;
        let mut plaintext = Zeroizing::new(vec![0u8; bytes]);
        self.entropy.fill(Purpose::DataKey, &mut plaintext);
        let ciphertext_blob = self.seal(&live, &plaintext, context)?;
        Ok(DataKey { plaintext: with_plaintext.then_some(plaintext), ciphertext_blob, key_arn: live.record.arn() })
    }

    /// Decrypt. A symmetric ciphertext names its key; `key_id`, if given, must name that same key. An RSA ciphertext
    /// needs `key_id` and its `algorithm`.
    pub fn decrypt(
        &self,
        caller: &Caller,
        blob_bytes: &[u8],
        context: &EncryptionContext,
        key_id: Option<&str>,
        algorithm: EncryptionAlgorithm,
    ) -> Result<Decrypted> {
        let (plaintext, live) =
            self.open_ciphertext(caller, blob_bytes, context, key_id, algorithm, GrantOperation::Decrypt)?;
        Ok(Decrypted { plaintext, key_arn: live.record.arn() })
    }

    fn open_ciphertext(
        &self,
        caller: &Caller,
        blob_bytes: &[u8],
        context: &EncryptionContext,
        key_id: Option<&str>,
        algorithm: EncryptionAlgorithm,
        op: GrantOperation,
    ) -> Result<(Zeroizing<Vec<u8>>, Arc<LiveKey>)> {
        if blob_bytes.is_empty() || blob_bytes.len() > MAX_CIPHERTEXT_BLOB {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length between 1 and {MAX_CIPHERTEXT_BLOB}"
            )));
        }
        if algorithm == EncryptionAlgorithm::SymmetricDefault {
            return self.open_blob(caller, blob_bytes, context, key_id, op);
        }
        let key_id = key_id.ok_or_else(|| {
            Error::Validation("KeyId is required when decrypting a ciphertext of an asymmetric KMS key.".into())
        })?;
        let live = self.resolve(caller, key_id, true)?;
        let conditions = [("kms:EncryptionAlgorithm", algorithm.as_str())];
        self.authorize(caller, &live, Access::Grant(op), context, Some(key_id), &conditions)?;
        require_enabled(&live.record)?;
        require_usage(&live.record, KeyUsage::EncryptDecrypt, op.as_str())?;
        require_encryption_algorithm(&live.record, algorithm)?;
        refuse_asymmetric_context(context)?;
        let plaintext = live.versions.iter().rev().find_map(|v| v.rsa_decrypt(algorithm, blob_bytes));
        Ok((plaintext.ok_or_else(invalid_ciphertext)?, live))
    }

    fn open_blob(
        &self,
        caller: &Caller,
        blob_bytes: &[u8],
        context: &EncryptionContext,
        key_id: Option<&str>,
        op: GrantOperation,
    ) -> Result<(Zeroizing<Vec<u8>>, Arc<LiveKey>)> {
        let header = blob::parse(blob_bytes).map_err(|_| invalid_ciphertext())?;
        let live = self
            .read_state()
            .keys
            .get(&key_store_key(&caller.region, header.key_id))
            .cloned()
            .ok_or_else(|| key_not_found(&caller.region, &caller.account_id, header.key_id))?;
        if live.record.region != caller.region {
            return Err(invalid_ciphertext());
        }
        if let Some(key_id) = key_id {
            let named = self.resolve(caller, key_id, true)?;
            if named.record.id != live.record.id {
                return Err(Error::IncorrectKey(
                    "The key ID in the request does not identify a KMS key that can perform this operation.".into(),
                ));
            }
        }
        let conditions = [("kms:EncryptionAlgorithm", EncryptionAlgorithm::SymmetricDefault.as_str())];
        self.authorize(caller, &live, Access::Grant(op), context, key_id, &conditions)?;
        require_enabled(&live.record)?;
        let cipher = live
            .versions
            .get(header.key_version as usize)
            .and_then(|v| v.symmetric())
            .ok_or_else(invalid_ciphertext)?;
        let plaintext = header.open(cipher, context).map_err(|_| invalid_ciphertext())?;
        Ok((plaintext, live))
    }

    /// ReEncrypt: decrypts under the source key and encrypts under `destination_key_id`.
    pub fn re_encrypt(&self, caller: &Caller, input: ReEncryptInput<'_>) -> Result<ReEncrypted> {
        let (plaintext, source) = self.open_ciphertext(
            caller,
            input.ciphertext,
            input.source_context,
            input.source_key_id,
            input.source_algorithm,
            GrantOperation::ReEncryptFrom,
        )?;
        let destination = self.resolve_with(
            caller,
            input.destination_key_id,
            true,
            Access::Grant(GrantOperation::ReEncryptTo),
            input.destination_context,
            &[("kms:EncryptionAlgorithm", input.destination_algorithm.as_str())],
        )?;
        require_enabled(&destination.record)?;
        let ciphertext_blob = self.seal_with(
            &destination,
            &plaintext,
            input.destination_context,
            input.destination_algorithm,
            "ReEncrypt",
        )?;
        Ok(ReEncrypted { ciphertext_blob, source_key_arn: source.record.arn(), key_arn: destination.record.arn() })
    }

    /// GenerateRandom (1–1024 bytes).
    pub fn generate_random(&self, bytes: usize) -> Result<Zeroizing<Vec<u8>>> {
        if bytes == 0 || bytes > MAX_DATA_KEY_BYTES {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value '{bytes}' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and {MAX_DATA_KEY_BYTES}"
            )));
        }
        let mut out = Zeroizing::new(vec![0u8; bytes]);
        self.entropy.fill(Purpose::DataKey, &mut out);
        Ok(out)
    }

    // ---- rotation ------------------------------------------------------------------------------

    /// EnableKeyRotation, every `period_days` days (each dialect checks its own range: AWS 90–2560, OTC 30–365).
    pub fn enable_key_rotation(&self, caller: &Caller, key_id: &str, period_days: u32) -> Result<()> {
        if period_days == 0 {
            return Err(Error::Validation("The rotation period must be at least one day.".into()));
        }
        self.mutate_key(caller, key_id, Access::Admin("kms:EnableKeyRotation"), |record, now| {
            require_customer_managed(record)?;
            require_rotatable(record)?;
            require_enabled(record)?;
            record.rotation.enabled = true;
            record.rotation.period_days = period_days;
            record.rotation.next_rotation = Some(now + i64::from(period_days) * DAY);
            Ok(())
        })
        .map(|_| ())
    }

    /// Changes the rotation period of a key (OTC update-key-rotation-interval); an enabled schedule restarts from
    /// now with the new period.
    pub fn update_key_rotation_period(&self, caller: &Caller, key_id: &str, period_days: u32) -> Result<()> {
        if period_days == 0 {
            return Err(Error::Validation("The rotation period must be at least one day.".into()));
        }
        self.mutate_key(caller, key_id, Access::Admin("kms:EnableKeyRotation"), |record, now| {
            require_customer_managed(record)?;
            require_rotatable(record)?;
            require_enabled(record)?;
            record.rotation.period_days = period_days;
            if record.rotation.enabled {
                record.rotation.next_rotation = Some(now + i64::from(period_days) * DAY);
            }
            Ok(())
        })
        .map(|_| ())
    }

    /// DisableKeyRotation.
    pub fn disable_key_rotation(&self, caller: &Caller, key_id: &str) -> Result<()> {
        self.mutate_key(caller, key_id, Access::Admin("kms:DisableKeyRotation"), |record, _| {
            require_customer_managed(record)?;
            require_rotatable(record)?;
            require_enabled(record)?;
            record.rotation.enabled = false;
            record.rotation.next_rotation = None;
            Ok(())
        })
        .map(|_| ())
    }

    /// GetKeyRotationStatus.
    pub fn get_key_rotation_status(&self, caller: &Caller, key_id: &str) -> Result<KeyRecord> {
        let live = self.resolve_for(
            caller,
            key_id,
            false,
            Access::Admin("kms:GetKeyRotationStatus"),
            &EncryptionContext::new(),
        )?;
        Ok(live.record.clone())
    }

    /// RotateKeyOnDemand (at most [`MAX_ON_DEMAND_ROTATIONS`] per key): new material, or for a key with imported
    /// material the material imported for it.
    pub fn rotate_key_on_demand(&self, caller: &Caller, key_id: &str) -> Result<KeyRecord> {
        let material = KeyMaterial::generate(&self.entropy);
        self.mutate_key(caller, key_id, Access::Admin("kms:RotateKeyOnDemand"), |record, now| {
            require_customer_managed(record)?;
            require_symmetric_primary(record)?;
            require_enabled(record)?;
            if record.rotation.on_demand_count >= MAX_ON_DEMAND_ROTATIONS {
                return Err(Error::LimitExceeded(format!(
                    "The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations can be performed for {}",
                    record.arn()
                )));
            }
            if record.origin == Origin::External {
                let missing = self.replicas_missing_pending_material(record);
                if !missing.is_empty() {
                    return Err(Error::InvalidState(format!(
                        "{} has key material pending rotation that its replica keys in {} do not hold yet: import it into each with the ImportType EXISTING_KEY_MATERIAL first.",
                        record.arn(),
                        missing.join(", ")
                    )));
                }
                import::rotate_to_pending_material(record, now)?;
            } else {
                self.add_version(record, now, RotationType::OnDemand, &material);
            }
            record.rotation.on_demand_count += 1;
            Ok(())
        })
        .map(|(_, record)| record)
    }

    fn add_version(&self, record: &mut KeyRecord, created: i64, rotation_type: RotationType, material: &KeyMaterial) {
        let version = record.versions.len() as u32;
        record.versions.push(KeyVersion {
            created,
            rotation_type: Some(rotation_type),
            wrapped_material: self.master.wrap(&record.id, version, material),
            imported: None,
        });
    }

    /// ListKeyRotations: a key's materials, oldest first — those rotations made, or with `all_material` also the
    /// first material and any imported material pending rotation (`IncludeKeyMaterial` `ALL_KEY_MATERIAL`, for
    /// keys that rotate). Also returns the key's record.
    pub fn list_key_rotations(
        &self,
        caller: &Caller,
        key_id: &str,
        all_material: bool,
        limit: usize,
        marker: Option<&str>,
    ) -> Result<(KeyRecord, Page<RotationEntry>)> {
        let live =
            self.resolve_for(caller, key_id, false, Access::Admin("kms:ListKeyRotations"), &EncryptionContext::new())?;
        let record = &live.record;
        if all_material && record.spec != KeySpec::SymmetricDefault {
            return Err(Error::UnsupportedOperation(format!(
                "{} has key spec {}; IncludeKeyMaterial is valid only for keys that rotate.",
                record.arn(),
                record.spec.as_str()
            )));
        }
        let awaiting_replicas = !self.replicas_missing_pending_material(record).is_empty();
        let entries = materials(record)
            .into_iter()
            .map(|(version, state)| match state {
                MaterialState::PendingRotation if awaiting_replicas => {
                    (version, MaterialState::PendingMultiRegionImportAndRotation)
                }
                state => (version, state),
            })
            .enumerate()
            .filter(|(index, (version, _))| all_material || (*index > 0 && version.rotation_type.is_some()))
            .map(|(index, (version, state))| {
                let entry =
                    RotationEntry { material_id: material_id(record, version, index), state, version: version.clone() };
                (format!("{index:010}"), entry)
            })
            .collect();
        Ok((record.clone(), paginate(entries, limit, marker)?))
    }

    // ---- tags and policy -----------------------------------------------------------------------

    /// TagResource: adds tags, replacing the values of existing keys.
    pub fn tag_resource(&self, caller: &Caller, key_id: &str, tags: &[Tag]) -> Result<()> {
        validate_tags(tags)?;
        self.mutate_key(caller, key_id, Access::Admin("kms:TagResource"), |record, _| {
            require_customer_managed(record)?;
            if record.state == KeyState::PendingDeletion {
                return Err(pending_deletion(record));
            }
            for tag in tags {
                match record.tags.iter_mut().find(|t| t.key == tag.key) {
                    Some(existing) => existing.value = tag.value.clone(),
                    None => record.tags.push(tag.clone()),
                }
            }
            if record.tags.len() > MAX_TAGS {
                return Err(Error::Tag(format!("A key may have at most {MAX_TAGS} tags.")));
            }
            Ok(())
        })
        .map(|_| ())
    }

    /// UntagResource.
    pub fn untag_resource(&self, caller: &Caller, key_id: &str, tag_keys: &[String]) -> Result<()> {
        self.mutate_key(caller, key_id, Access::Admin("kms:UntagResource"), |record, _| {
            require_customer_managed(record)?;
            if record.state == KeyState::PendingDeletion {
                return Err(pending_deletion(record));
            }
            record.tags.retain(|t| !tag_keys.contains(&t.key));
            Ok(())
        })
        .map(|_| ())
    }

    /// ListResourceTags, ordered by tag key.
    pub fn list_resource_tags(
        &self,
        caller: &Caller,
        key_id: &str,
        limit: usize,
        marker: Option<&str>,
    ) -> Result<Page<Tag>> {
        let live =
            self.resolve_for(caller, key_id, false, Access::Admin("kms:ListResourceTags"), &EncryptionContext::new())?;
        let mut tags: Vec<(String, Tag)> = live.record.tags.iter().map(|t| (t.key.clone(), t.clone())).collect();
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        paginate(tags, limit, marker)
    }

    /// GetKeyPolicy (the only policy name is `default`).
    pub fn get_key_policy(&self, caller: &Caller, key_id: &str) -> Result<String> {
        let live =
            self.resolve_for(caller, key_id, false, Access::Admin("kms:GetKeyPolicy"), &EncryptionContext::new())?;
        Ok(live.record.policy.clone().unwrap_or_else(|| default_policy(&live.record.account)))
    }

    /// PutKeyPolicy: checks the policy ([`Kms::validate_policy`]; `bypass_lockout_check` is
    /// `BypassPolicyLockoutSafetyCheck`) and stores it.
    pub fn put_key_policy(
        &self,
        caller: &Caller,
        key_id: &str,
        policy: &str,
        bypass_lockout_check: bool,
    ) -> Result<()> {
        self.mutate_key(caller, key_id, Access::Admin("kms:PutKeyPolicy"), |record, _| {
            require_customer_managed(record)?;
            self.validate_policy(policy, caller, &record.arn(), bypass_lockout_check)?;
            record.policy = Some(policy.to_owned());
            Ok(())
        })
        .map(|_| ())
    }

    // ---- grants --------------------------------------------------------------------------------

    /// CreateGrant: returns (grant id, grant token). A named grant with the same parameters as an
    /// existing one returns that grant's id.
    pub fn create_grant(&self, caller: &Caller, key_id: &str, input: CreateGrantInput) -> Result<(String, String)> {
        validate_principal("granteePrincipal", &input.grantee_principal)?;
        if let Some(p) = &input.retiring_principal {
            validate_principal("retiringPrincipal", p)?;
        }
        if input.operations.is_empty() {
            return Err(Error::Validation(
                "1 validation error detected: Value at 'operations' failed to satisfy constraint: Member must have length greater than or equal to 1".into(),
            ));
        }
        if let Some(name) = &input.name {
            validate_grant_name(name)?;
        }
        let _writer = self.lock_writer();
        let mut conditions: Vec<(&'static str, &str)> =
            input.operations.iter().map(|op| ("kms:GrantOperations", op.as_str())).collect();
        conditions.push(("kms:GrantIsForAWSResource", if caller.via_service.is_some() { "true" } else { "false" }));
        conditions.push(("kms:GranteePrincipal", &input.grantee_principal));
        if let Some(retiring) = &input.retiring_principal {
            conditions.push(("kms:RetiringPrincipal", retiring));
        }
        if let Some(constraints) = &input.constraints {
            conditions.push(("kms:GrantConstraintType", constraints.kind()));
        }
        let live = self.resolve_with(
            caller,
            key_id,
            false,
            Access::Grant(GrantOperation::CreateGrant),
            &EncryptionContext::new(),
            &conditions,
        )?;
        if live.record.state == KeyState::PendingDeletion {
            return Err(pending_deletion(&live.record));
        }
        let invalid: Vec<&str> = input
            .operations
            .iter()
            .filter(|op| !op.valid_for(live.record.spec, live.record.usage))
            .map(|op| op.as_str())
            .collect();
        if !invalid.is_empty() {
            return Err(Error::Validation(format!(
                "Grant operations {} are not valid for a KMS key with key spec {} and key usage {}.",
                invalid.join(", "),
                live.record.spec.as_str(),
                live.record.usage.as_str()
            )));
        }
        if input.constraints.is_some() && live.record.spec != KeySpec::SymmetricDefault {
            return Err(Error::Validation(
                "You cannot use an encryption context grant constraint for cryptographic operations with asymmetric KMS keys or HMAC KMS keys."
                    .into(),
            ));
        }
        let mut record = live.record.clone();
        let token = hex::encode(self.entropy.bytes::<48>(Purpose::Grant));
        let mut operations = input.operations.clone();
        operations.sort();
        operations.dedup();
        let existing = record.grants.iter().position(|g| {
            input.name.is_some()
                && g.name == input.name
                && g.grantee_principal == input.grantee_principal
                && g.retiring_principal == input.retiring_principal
                && g.operations == operations
                && g.constraints == input.constraints
        });
        let grant_id = match existing {
            Some(i) => {
                record.grants[i].grant_tokens.push(token.clone());
                record.grants[i].grant_id.clone()
            }
            None => {
                let grant_id = hex::encode(self.entropy.bytes::<32>(Purpose::Grant));
                record.grants.push(Grant {
                    grant_id: grant_id.clone(),
                    grant_tokens: vec![token.clone()],
                    name: input.name,
                    grantee_principal: input.grantee_principal,
                    retiring_principal: input.retiring_principal,
                    operations,
                    constraints: input.constraints,
                    issuing_account: caller.account_root(),
                    created: self.clock.now(),
                });
                grant_id
            }
        };
        self.store.commit(&[Change::PutKey(&record)])?;
        let published = self.live_key(record, Some(&live))?;
        self.write_state().keys.insert(published.record.store_key(), Arc::new(published));
        Ok((grant_id, token))
    }

    /// ListGrants of a key, optionally filtered by grant id or grantee.
    pub fn list_grants(
        &self,
        caller: &Caller,
        key_id: &str,
        grant_id: Option<&str>,
        grantee: Option<&str>,
        limit: usize,
        marker: Option<&str>,
    ) -> Result<(Page<Grant>, String)> {
        let live =
            self.resolve_for(caller, key_id, false, Access::Admin("kms:ListGrants"), &EncryptionContext::new())?;
        let grants = live
            .record
            .grants
            .iter()
            .filter(|g| grant_id.is_none_or(|id| g.grant_id == id) && grantee.is_none_or(|p| g.grantee_principal == p))
            .map(|g| (format!("{:020}{}", g.created, g.grant_id), g.clone()))
            .collect::<Vec<_>>();
        Ok((paginate(sorted(grants), limit, marker)?, live.record.arn()))
    }

    /// ListRetirableGrants: grants, on keys of the caller's region, that `retiring_principal` may retire.
    pub fn list_retirable_grants(
        &self,
        caller: &Caller,
        retiring_principal: &str,
        limit: usize,
        marker: Option<&str>,
    ) -> Result<Page<(Grant, String)>> {
        validate_principal("retiringPrincipal", retiring_principal)?;
        let state = self.read_state();
        let grants = state
            .keys
            .values()
            .filter(|k| k.record.region == caller.region)
            .flat_map(|k| {
                k.record
                    .grants
                    .iter()
                    .filter(|g| g.retiring_principal.as_deref() == Some(retiring_principal))
                    .map(move |g| (format!("{}{}", k.record.id, g.grant_id), (g.clone(), k.record.arn())))
            })
            .collect::<Vec<_>>();
        paginate(sorted(grants), limit, marker)
    }

    /// RetireGrant: by whom the grant names, or its account ([`Kms::authorize_retire`]).
    pub fn retire_grant(&self, caller: &Caller, by: RetireBy<'_>) -> Result<()> {
        let _writer = self.lock_writer();
        let live = match by {
            RetireBy::Token(token) => self
                .read_state()
                .keys
                .values()
                .find(|k| k.record.grants.iter().any(|g| g.grant_tokens.iter().any(|t| t == token)))
                .cloned()
                .ok_or_else(|| Error::InvalidGrantToken("The grant token is not valid.".into()))?,
            RetireBy::Id { key_id, .. } => self.resolve(caller, key_id, false)?,
        };
        let index = match by {
            RetireBy::Token(token) => live.record.grants.iter().position(|g| g.grant_tokens.iter().any(|t| t == token)),
            RetireBy::Id { grant_id, .. } => live.record.grants.iter().position(|g| g.grant_id == grant_id),
        }
        .ok_or_else(|| Error::InvalidGrantId("The grant id is not valid.".into()))?;
        self.authorize_retire(caller, &live.arn, &live.record.grants[index])?;
        self.remove_grant(&live, index)
    }

    /// RevokeGrant: by the key's account.
    pub fn revoke_grant(&self, caller: &Caller, key_id: &str, grant_id: &str) -> Result<()> {
        let _writer = self.lock_writer();
        let live =
            self.resolve_for(caller, key_id, false, Access::Admin("kms:RevokeGrant"), &EncryptionContext::new())?;
        let index = live
            .record
            .grants
            .iter()
            .position(|g| g.grant_id == grant_id)
            .ok_or_else(|| Error::NotFound(format!("Grant ID {grant_id} not found")))?;
        self.remove_grant(&live, index)
    }

    fn remove_grant(&self, live: &Arc<LiveKey>, index: usize) -> Result<()> {
        let mut record = live.record.clone();
        record.grants.remove(index);
        self.store.commit(&[Change::PutKey(&record)])?;
        let published = self.live_key(record, Some(live))?;
        self.write_state().keys.insert(published.record.store_key(), Arc::new(published));
        Ok(())
    }

    // ---- time-driven changes -------------------------------------------------------------------

    /// Purges keys whose deletion window has ended, rotates keys whose rotation period has passed (a multi-Region
    /// primary with its replicas) and drops imported material whose `ValidTo` has passed, as of the KMS clock.
    /// Returns the counts of purged and of otherwise changed keys.
    pub fn sweep(&self) -> Result<(usize, usize)> {
        let _writer = self.lock_writer();
        let now = self.clock.now();
        let (mut purged, mut rotated): (Vec<String>, Vec<(Arc<LiveKey>, KeyRecord)>) = (Vec::new(), Vec::new());
        for live in self.read_state().keys.values() {
            let record = &live.record;
            if record.state == KeyState::PendingDeletion && record.deletion_date.is_some_and(|d| d <= now) {
                purged.push(record.store_key());
            } else if import::next_expiry(record).is_some_and(|t| t <= now) {
                let mut updated = record.clone();
                import::expire_materials(&mut updated, now);
                rotated.push((live.clone(), updated));
            } else if record.state == KeyState::Enabled
                && record.rotation.enabled
                && record.rotation.next_rotation.is_some_and(|t| t <= now)
                && record.multi_region.as_ref().is_none_or(|m| m.primary_region == record.region)
            {
                let mut updated = record.clone();
                let period = i64::from(updated.rotation.period_days.max(1)) * DAY;
                let mut due = updated.rotation.next_rotation.unwrap_or(now);
                let mut count = 0;
                while due <= now && count < MAX_CATCH_UP_ROTATIONS {
                    self.add_version(&mut updated, due, RotationType::Automatic, &KeyMaterial::generate(&self.entropy));
                    due += period;
                    count += 1;
                }
                updated.rotation.next_rotation = Some(due.max(now + 1));
                rotated.push((live.clone(), updated));
            }
        }
        if purged.is_empty() && rotated.is_empty() {
            return Ok((0, 0));
        }
        let dead_aliases: Vec<String> = self
            .read_state()
            .aliases
            .iter()
            .filter(|(_, a)| purged.contains(&key_store_key(&a.region, &a.target_key_id)))
            .map(|(k, _)| k.clone())
            .collect();
        let mut updates = rotated.clone();
        for (_, record) in &rotated {
            updates.extend(self.synced_replicas(record));
        }
        for key in &purged {
            updates.extend(self.forget_purged_replica(key, &purged));
        }
        self.publish(&updates, &purged, &dead_aliases)?;
        tracing::info!(purged = purged.len(), changed = rotated.len(), "key sweep");
        Ok((purged.len(), rotated.len()))
    }

    /// Records a call in the audit log: who made it, from where and in which dialect (`context`), the key it
    /// resolved, its encryption context, and `outcome` (`Success` or the error code).
    pub fn record_call(
        &self,
        context: &RequestContext,
        key_arn: Option<String>,
        encryption_context: Option<EncryptionContext>,
        outcome: &str,
    ) {
        let millis = self.clock.now_millis();
        let caller = &context.caller;
        // A call that failed before it reached its key's ARN (it named a bare id or an alias) is recorded with the
        // ARN of the key it named, when there is one, as CloudTrail names the resource of a failed call.
        let key_arn = key_arn.map(|named| {
            if named.starts_with("arn:") {
                return named;
            }
            self.resolve(caller, &named, true).map(|live| live.record.arn()).unwrap_or(named)
        });
        self.audit.record(crate::audit::AuditEvent {
            time: shared::time::format_rfc3339_millis(millis),
            time_millis: millis,
            account: caller.account_id.clone(),
            access_key: caller.access_key_id.clone(),
            principal: caller.principal_arn.clone(),
            region: caller.region.clone(),
            via_service: caller.via_service.clone(),
            source: context.source(),
            dialect: context.api.name().to_owned(),
            operation: context.operation.to_owned(),
            key_arn,
            encryption_context,
            outcome: outcome.to_owned(),
            decisions: caller
                .decisions
                .take()
                .into_iter()
                .map(|d| crate::audit::AuditDecision {
                    action: d.action.to_owned(),
                    decision: if d.allowed { "Allow" } else { "Deny" }.to_owned(),
                    by: d.by.to_owned(),
                    sid: d.sid.as_deref().map(str::to_owned),
                })
                .collect(),
            fault: context.fault,
            service: None,
            resource: None,
        });
    }

    /// From now on, records in the audit log every fault a rule injects into another service — the service, the
    /// operation, the caller, what the call was on, what was injected, and the rule's id — as the KMS's own front
    /// ends record each of their calls with the rule that fired on it.
    pub fn audit_injected_faults(self: &Arc<Self>) {
        let kms = Arc::downgrade(self);
        self.faults.observe(Box::new(move |service, call, fired| {
            if service == faults::Service::Kms {
                return; // recorded with the call itself
            }
            if let Some(kms) = kms.upgrade() {
                kms.record_injected(service, call, fired);
            }
        }));
    }

    /// The audit event of a fault injected into `service`'s `call`. Its outcome is the injected error's code,
    /// `ConnectionReset`, `EIO`, or `Delayed` when the rule only added latency (the call then ran).
    fn record_injected(&self, service: faults::Service, call: &faults::Call<'_>, fired: &faults::Fired) {
        let millis = self.clock.now_millis();
        let outcome = match (&fired.error, fired.reset, fired.eio) {
            (Some(error), _, _) => error.code,
            (None, true, _) => "ConnectionReset",
            (None, false, true) => "EIO",
            (None, false, false) => "Delayed",
        };
        let resource = match (call.bucket, call.object_key, call.volume, call.range) {
            (Some(bucket), Some(key), _, _) => Some(format!("{bucket}/{key}")),
            (Some(bucket), None, _, _) => Some(bucket.to_owned()),
            (None, _, Some(volume), Some((offset, length))) => Some(format!("{volume} bytes {offset}+{length}")),
            (None, _, Some(volume), None) => Some(volume.to_owned()),
            (None, _, None, _) => None,
        };
        self.audit.record(crate::audit::AuditEvent {
            time: shared::time::format_rfc3339_millis(millis),
            time_millis: millis,
            // The account of an ARN (`arn:aws:iam::ACCOUNT:user/x`); NBD's I/O has no caller.
            account: call.principal.split(':').nth(4).unwrap_or_default().to_owned(),
            access_key: call.access_key.to_owned(),
            principal: call.principal.to_owned(),
            region: call.region.unwrap_or_default().to_owned(),
            via_service: None,
            source: None,
            dialect: call.dialect.to_owned(),
            operation: call.operation.to_owned(),
            key_arn: None,
            encryption_context: None,
            outcome: outcome.to_owned(),
            decisions: Vec::new(),
            fault: Some(fired.rule),
            service: Some(service.name().to_owned()),
            resource,
        });
    }

    /// The record of a single-Region key by id, for views that need no access check (no material).
    pub fn key_record(&self, key_id: &str) -> Option<KeyRecord> {
        self.read_state().keys.get(key_id).map(|k| k.record.clone())
    }

    /// The record of key `key_id` in `region` (any key, multi-Region ones included), for views that need no
    /// access check.
    pub fn key_record_in(&self, region: &str, key_id: &str) -> Option<KeyRecord> {
        self.read_state().keys.get(&key_store_key(region, key_id)).map(|k| k.record.clone())
    }
}

/// Creates the data dir with mode 0700 (the directories it creates; an existing dir is left as
/// it is).
fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::Internal(format!("creating {}: {e}", dir.display())))
}

fn check_master_key(store: &Store, master: &MasterKey) -> Result<()> {
    const CHECK_ID: &str = "kmsim-master-check";
    match store.meta(MASTER_CHECK)? {
        Some(value) => {
            let text = String::from_utf8(value).map_err(|_| Error::Internal("master check value is corrupt".into()))?;
            master.unwrap(CHECK_ID, 0, &text).map_err(|_| {
                Error::Internal("the master key file does not match the key store (was master.key replaced?)".into())
            })?;
        }
        None => {
            let wrapped = master.wrap(CHECK_ID, 0, &KeyMaterial::generate(&Entropy::os()));
            store.commit(&[Change::PutMeta(MASTER_CHECK, wrapped.as_bytes())])?;
        }
    }
    Ok(())
}

/// The key's usage must be `usage` for `op`.
fn require_usage(record: &KeyRecord, usage: KeyUsage, op: &str) -> Result<()> {
    if record.usage == usage {
        return Ok(());
    }
    Err(Error::InvalidKeyUsage(format!(
        "{} key usage is {} which is not valid for {op}.",
        record.arn(),
        record.usage.as_str()
    )))
}

/// Data keys and kmsim's blobs need a symmetric encryption key.
fn require_symmetric(record: &KeyRecord, op: &str) -> Result<()> {
    require_usage(record, KeyUsage::EncryptDecrypt, op)?;
    if record.spec == KeySpec::SymmetricDefault { Ok(()) } else { Err(not_symmetric(record, op)) }
}

fn not_symmetric(record: &KeyRecord, op: &str) -> Error {
    Error::InvalidKeyUsage(format!(
        "{} key spec is {} which is not valid for {op}. {op} requires a symmetric encryption KMS key.",
        record.arn(),
        record.spec.as_str()
    ))
}

fn require_encryption_algorithm(record: &KeyRecord, algorithm: EncryptionAlgorithm) -> Result<()> {
    if record.spec.encryption_algorithms(record.usage).contains(&algorithm) {
        return Ok(());
    }
    Err(incompatible_algorithm(algorithm.as_str(), record.spec))
}

fn incompatible_algorithm(algorithm: &str, spec: KeySpec) -> Error {
    Error::InvalidKeyUsage(format!("Algorithm {algorithm} is incompatible with key spec {}.", spec.as_str()))
}

/// Asymmetric encryption takes no encryption context.
fn refuse_asymmetric_context(context: &EncryptionContext) -> Result<()> {
    if context.is_empty() {
        return Ok(());
    }
    Err(Error::Validation("EncryptionContext is not supported when encrypting/decrypting with asymmetric CMKs.".into()))
}

/// Cryptographic operations need an enabled key.
fn require_enabled(record: &KeyRecord) -> Result<()> {
    match record.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(Error::Disabled(format!("{} is disabled.", record.arn()))),
        KeyState::PendingDeletion => Err(pending_deletion(record)),
        KeyState::PendingImport => Err(pending_import(record)),
    }
}

fn pending_import(record: &KeyRecord) -> Error {
    Error::InvalidState(format!("{} is pending import.", record.arn()))
}

/// Only symmetric encryption keys with material from KMS rotate; a multi-Region key rotates through its primary.
/// Automatic rotation: symmetric keys with material KMS made, rotated through their primary if multi-Region.
fn require_rotatable(record: &KeyRecord) -> Result<()> {
    require_symmetric_primary(record)?;
    if record.origin == Origin::External {
        return Err(Error::UnsupportedOperation(format!(
            "{} has imported key material; it rotates only on demand, to key material imported for it.",
            record.arn()
        )));
    }
    Ok(())
}

/// On-demand rotation: symmetric keys, rotated through their primary if multi-Region.
fn require_symmetric_primary(record: &KeyRecord) -> Result<()> {
    if record.spec != KeySpec::SymmetricDefault {
        return Err(Error::UnsupportedOperation(format!(
            "{} has key spec {}; only symmetric encryption KMS keys support key rotation.",
            record.arn(),
            record.spec.as_str()
        )));
    }
    if let Some(multi_region) = &record.multi_region
        && multi_region.primary_region != record.region
    {
        return Err(Error::UnsupportedOperation(format!(
            "{} is a replica key; rotate its primary key in {}.",
            record.arn(),
            multi_region.primary_region
        )));
    }
    Ok(())
}

fn require_customer_managed(record: &KeyRecord) -> Result<()> {
    match record.manager {
        KeyManager::Customer => Ok(()),
        KeyManager::Aws => {
            Err(Error::UnsupportedOperation(format!("{} is an AWS managed key and cannot be modified.", record.arn())))
        }
    }
}

fn pending_deletion(record: &KeyRecord) -> Error {
    Error::InvalidState(format!("{} is pending deletion.", record.arn()))
}

fn invalid_ciphertext() -> Error {
    Error::InvalidCiphertext(
        "The ciphertext is invalid, was tampered with, or does not match the encryption context.".into(),
    )
}

/// Whether `id` has the shape of a KMS key id: a UUID, or `mrk-` and 32 hex digits. (Seeded keys may have other
/// ids; they are found before this is asked.)
fn well_formed_key_id(id: &str) -> bool {
    match id.strip_prefix("mrk-") {
        Some(hex) => hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => uuid::Uuid::try_parse(id).is_ok_and(|u| u.hyphenated().to_string() == id.to_ascii_lowercase()),
    }
}

fn key_not_found(region: &str, account: &str, id: &str) -> Error {
    Error::NotFound(format!("Key '{}' does not exist", key_arn(region, account, id)))
}

fn alias_not_found(region: &str, account: &str, name: &str) -> Error {
    Error::NotFound(format!("Alias arn:aws:kms:{region}:{account}:{name} is not found."))
}

fn alias_target(alias: &AliasRecord) -> &str {
    &alias.target_key_id
}

fn default_policy(account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Id":"key-default-1","Statement":[{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    )
}

fn validate_description(description: &str) -> Result<()> {
    if description.chars().count() > 8192 {
        return Err(Error::Validation(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192".into(),
        ));
    }
    Ok(())
}

fn validate_tags(tags: &[Tag]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::Tag(format!("A key may have at most {MAX_TAGS} tags.")));
    }
    for tag in tags {
        let len = tag.key.chars().count();
        if len == 0 || len > 128 {
            return Err(Error::Tag(format!("Tag key '{}' must have length between 1 and 128", tag.key)));
        }
        if tag.value.chars().count() > 256 {
            return Err(Error::Tag(format!("Tag value of '{}' must have length of at most 256", tag.key)));
        }
        if tag.key.starts_with("aws:") {
            return Err(Error::Tag("Tags beginning with aws: are reserved".into()));
        }
    }
    Ok(())
}

/// Alias names: `alias/` then 1–250 of `[A-Za-z0-9/_-]`; `alias/aws/` is for service keys.
/// Aliases of the OTC services' default keys, created only by the services (on first use).
const RESERVED_SERVICE_ALIASES: &[&str] = &["alias/obs/default", "alias/evs/default"];

fn alias_exists(caller: &Caller, name: &str) -> Error {
    Error::AlreadyExists(format!(
        "An alias with the name arn:aws:kms:{}:{}:{name} already exists",
        caller.region, caller.account_id
    ))
}

fn validate_alias_name(name: &str, customer: bool) -> Result<()> {
    if !name.starts_with("alias/") {
        return Err(Error::Validation(
            "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
                .into(),
        ));
    }
    let valid = name.len() <= 256
        && name.strip_prefix("alias/").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
        });
    if !valid {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value '{name}' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$"
        )));
    }
    if customer && name.starts_with("alias/aws/") {
        return Err(Error::InvalidAliasName(format!("Alias must not begin with 'alias/aws/': {name}")));
    }
    // The OTC services' default keys (`obs/default`, `evs/default`) are service-managed like `alias/aws/*`.
    if customer && RESERVED_SERVICE_ALIASES.contains(&name) {
        return Err(Error::InvalidAliasName(format!("{name} is reserved for a service's default key")));
    }
    Ok(())
}

fn validate_principal(field: &str, principal: &str) -> Result<()> {
    if principal.is_empty() || principal.len() > 256 {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must have length between 1 and 256"
        )));
    }
    Ok(())
}

fn validate_grant_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 256 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b)) {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
        )));
    }
    Ok(())
}

fn sorted<T>(mut items: Vec<(String, T)>) -> Vec<(String, T)> {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items
}

/// One page of `items` (sorted by their string key) after `marker`. The marker is the hex of the
/// next item's key, so a page survives concurrent deletions.
fn paginate<T>(items: Vec<(String, T)>, limit: usize, marker: Option<&str>) -> Result<Page<T>> {
    let start = match marker {
        None => String::new(),
        Some(marker) => hex::decode(marker)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::InvalidMarker("The marker is not valid.".into()))?,
    };
    let mut rest = items.into_iter().filter(|(k, _)| *k >= start).peekable();
    let items: Vec<T> = rest.by_ref().take(limit).map(|(_, v)| v).collect();
    let next_marker = rest.peek().map(|(k, _)| hex::encode(k));
    Ok(Page { items, next_marker })
}
