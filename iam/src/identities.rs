//! [`Identities`], the identity store's core: per account, IAM users with their access keys, roles with their
//! trust policies, customer managed policies, inline policies and attachments — and the role sessions STS
//! hands out ([`crate::sts`]). It knows nothing of HTTP or XML.
//!
//! Every change is committed to the [`Store`] (fsynced) before it becomes visible and before the caller is
//! answered; the state lock is held across the commit, so changes apply in commit order. What the rest of kmsim
//! sees follows at once: access keys are added to or removed from the live lookup of [`auth::Accounts`], and a
//! user's or role's [`PolicySet`] — which every key and session of it shares — is replaced whenever its inline
//! or attached policies change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use auth::{AccessKey, Accounts, Identity, PolicySet, SessionClock};
use policy::{Policy, PolicyKind, Principal};
use serde::Deserialize;
use shared::entropy::Entropy;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::ids::{self, IdKind};
use crate::model::{AccessKeyRecord, PolicyRecord, RECORD_FORMAT, RoleRecord, Tag, UserRecord};
use crate::secrets::SecretBox;
use crate::store::{Change, Store};
use crate::validate;

/// Most users an account holds (IAM's quota `UsersPerAccount`).
pub const MAX_USERS: usize = 5000;
/// Most roles an account holds (IAM's default quota `RolesPerAccount`).
pub const MAX_ROLES: usize = 1000;
/// Most customer managed policies an account holds (IAM's default quota `PoliciesPerAccount`).
pub const MAX_POLICIES: usize = 1500;
/// Most access keys a user has (`AccessKeysPerUser`).
pub const MAX_ACCESS_KEYS: usize = 2;
/// Most managed policies attached to one user or role (`PoliciesPerUser`, default `PoliciesPerRole`).
pub const MAX_ATTACHED: usize = 10;
/// Largest sum of a user's inline policies, in characters other than white space.
pub const MAX_USER_INLINE_SIZE: usize = 2048;
/// Largest sum of a role's inline policies.
pub const MAX_ROLE_INLINE_SIZE: usize = 10240;
/// Largest managed policy document.
pub const MAX_MANAGED_POLICY_SIZE: usize = 6144;
/// Largest trust policy (`ACLSizePerRole`, default).
pub const MAX_TRUST_POLICY_SIZE: usize = 2048;
/// Most role sessions an account holds at once (kmsim's own bound; expired sessions make room first).
pub const MAX_SESSIONS: usize = 10_000;
/// The longest session a role may allow (`MaxSessionDuration`), and the default.
pub const MAX_SESSION_DURATION: u32 = 43_200;
/// The default `MaxSessionDuration` of a role.
pub const DEFAULT_MAX_SESSION_DURATION: u32 = 3600;

/// Which user or role an inline policy or an attachment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder<'a> {
    /// The user of this name.
    User(&'a str),
    /// The role of this name.
    Role(&'a str),
}

/// An access key as IAM lists it (the secret is shown only by CreateAccessKey).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyInfo {
    /// The owning user.
    pub user: String,
    /// `AKIA…`.
    pub id: String,
    /// `Active` or `Inactive`.
    pub active: bool,
    /// Unix seconds.
    pub created: i64,
}

/// A managed policy as IAM shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicyInfo {
    /// The stored record.
    pub record: PolicyRecord,
    /// How many users and roles it is attached to.
    pub attachments: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The marker of the next page, when there is one.
    pub next_marker: Option<String>,
}

/// What the configuration declares of one account's identities, applied at every start (and after a reset):
/// what is missing is created; declared access keys, inline policies, attachments, trust policies and managed
/// policy documents are made to match (a role's path and maximum session of an existing role are kept); what
/// was added at run time is kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountDeclaration {
    /// The 12-digit account.
    #[serde(skip)]
    pub account: String,
    /// Customer managed policies.
    #[serde(default)]
    pub policies: Vec<PolicyDeclaration>,
    /// Users.
    #[serde(default)]
    pub users: Vec<UserDeclaration>,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<RoleDeclaration>,
}

/// A customer managed policy in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDeclaration {
    /// The policy's name.
    pub name: String,
    /// Its path (default `/`).
    #[serde(default = "root_path")]
    pub path: String,
    /// The document (JSON text).
    pub document: String,
    /// An optional description.
    pub description: Option<String>,
}

/// A user in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDeclaration {
    /// The user's name.
    pub name: String,
    /// Its path (default `/`).
    #[serde(default = "root_path")]
    pub path: String,
    /// Its access keys (at most two).
    #[serde(default)]
    pub access_keys: Vec<KeyDeclaration>,
    /// Inline policies by name (JSON text).
    #[serde(default)]
    pub policies: BTreeMap<String, String>,
    /// Managed policies attached: names of the account's policies, or ARNs.
    #[serde(default)]
    pub attached_policies: Vec<String>,
}

/// An access key in the configuration (its `Debug` shows no secret).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDeclaration {
    /// The public id.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
}

impl std::fmt::Debug for KeyDeclaration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyDeclaration").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// A role in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDeclaration {
    /// The role's name.
    pub name: String,
    /// Its path (default `/`).
    #[serde(default = "root_path")]
    pub path: String,
    /// Its trust policy (JSON text).
    pub trust_policy: String,
    /// Longest session, 3600–43200 seconds (default 3600).
    pub max_session_duration: Option<u32>,
    /// An optional description.
    pub description: Option<String>,
    /// Inline policies by name (JSON text).
    #[serde(default)]
    pub policies: BTreeMap<String, String>,
    /// Managed policies attached: names of the account's policies, or ARNs.
    #[serde(default)]
    pub attached_policies: Vec<String>,
}

fn root_path() -> String {
    "/".to_owned()
}

/// A user in memory: its record, its keys and its live policy set.
#[derive(Debug)]
pub(crate) struct User {
    pub(crate) record: UserRecord,
    pub(crate) keys: Vec<AccessKeyInfo>,
    pub(crate) policies: Arc<PolicySet>,
}

/// A role in memory.
#[derive(Debug)]
pub(crate) struct Role {
    pub(crate) record: RoleRecord,
    pub(crate) trust: Arc<Policy>,
    pub(crate) policies: Arc<PolicySet>,
}

/// A managed policy in memory.
#[derive(Debug)]
pub(crate) struct Managed {
    pub(crate) record: PolicyRecord,
    pub(crate) policy: Arc<Policy>,
}

/// One role session, as the account keeps it.
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    /// Tags a chained session inherits (AssumeRole's `TransitiveTagKeys`).
    pub(crate) transitive_tags: Vec<Tag>,
}

/// One account's identities.
#[derive(Debug, Default)]
pub(crate) struct AccountState {
    pub(crate) users: BTreeMap<String, User>,
    pub(crate) roles: BTreeMap<String, Role>,
    pub(crate) policies: BTreeMap<String, Managed>,
    pub(crate) sessions: HashMap<String, SessionInfo>,
    /// The sessions by expiry, to make room for new ones.
    pub(crate) session_order: BTreeSet<(i64, String)>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) accounts: HashMap<String, AccountState>,
}

/// The identity store: every account's users, roles, policies and sessions.
pub struct Identities {
    accounts: Arc<Accounts>,
    store: Store,
    secrets: SecretBox,
    clock: SessionClock,
    state: RwLock<State>,
    declarations: Vec<AccountDeclaration>,
    /// Where ids, secrets, session tokens and request ids come from (the stack's; seeded under `--deterministic`).
    entropy: Arc<Entropy>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities").field("store", &self.store).finish_non_exhaustive()
    }
}

/// The name IAM's messages give an entity kind.
fn not_found_user(name: &str) -> Error {
    Error::NoSuchEntity(format!("The user with name {name} cannot be found."))
}

fn not_found_role(name: &str) -> Error {
    Error::NoSuchEntity(format!("The role with name {name} cannot be found."))
}

/// Parses an identity-based policy, refusing it with IAM's `MalformedPolicyDocument`.
pub(crate) fn identity_policy(document: &str) -> Result<Arc<Policy>> {
    Policy::parse(document, PolicyKind::Identity)
        .map(Arc::new)
        .map_err(|e| Error::MalformedPolicyDocument(e.iam_message()))
}

/// Parses a trust policy, refusing it with IAM's `MalformedPolicyDocument`.
fn trust_policy(document: &str) -> Result<Arc<Policy>> {
    if validate::policy_size(document) > MAX_TRUST_POLICY_SIZE {
        return Err(Error::LimitExceeded(format!("Cannot exceed quota for ACLSizePerRole: {MAX_TRUST_POLICY_SIZE}")));
    }
    Policy::parse(document, PolicyKind::Trust)
        .map(Arc::new)
        .map_err(|e| Error::MalformedPolicyDocument(e.iam_message()))
}

/// A managed policy's ARN split into (account, path, name), if it is one.
pub fn parse_policy_arn(arn: &str) -> Option<(&str, String, &str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let resource = resource.strip_prefix("policy")?;
    if !resource.starts_with('/') {
        return None;
    }
    let cut = resource.rfind('/')?;
    let (path, name) = (&resource[..=cut], &resource[cut + 1..]);
    (!name.is_empty()).then(|| (account, path.to_owned(), name))
}

/// A role's ARN split into (account, path, name), if it is one.
pub fn parse_role_arn(arn: &str) -> Option<(&str, String, &str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let resource = resource.strip_prefix("role")?;
    if !resource.starts_with('/') || !shared::caller::is_account_id(account) {
        return None;
    }
    let cut = resource.rfind('/')?;
    let (path, name) = (&resource[..=cut], &resource[cut + 1..]);
    (!name.is_empty()).then(|| (account, path.to_owned(), name))
}

impl Identities {
    /// Opens the store (`<dir>/iam.redb`, secrets wrapped under `<dir>/iam.key`; in memory without `dir`),
    /// registers every stored access key with `accounts`, and applies `declarations`. Session credentials
    /// expire by `clock`.
    pub fn open(
        dir: Option<&Path>,
        accounts: Arc<Accounts>,
        clock: SessionClock,
        declarations: Vec<AccountDeclaration>,
    ) -> Result<Self> {
        Self::open_with(dir, accounts, clock, declarations, Arc::new(Entropy::os()))
    }

    /// [`Identities::open`] drawing ids, secrets, session tokens and request ids from `entropy` (the stack's).
    pub fn open_with(
        dir: Option<&Path>,
        accounts: Arc<Accounts>,
        clock: SessionClock,
        declarations: Vec<AccountDeclaration>,
        entropy: Arc<Entropy>,
    ) -> Result<Self> {
        let (store, secrets) = match dir {
            Some(dir) => {
                let key = shared::secret_file::load_or_create(&dir.join("iam.key"), "identity store key")
                    .map_err(Error::Internal)?;
                (Store::open(&dir.join("iam.redb"))?, SecretBox::new(&key))
            }
            None => (Store::in_memory()?, SecretBox::generate()),
        };
        let identities =
            Identities { accounts, store, secrets, clock, state: RwLock::new(State::default()), declarations, entropy };
        identities.load()?;
        identities.declare()?;
        Ok(identities)
    }

    /// The source of ids, secrets and request ids.
    pub fn entropy(&self) -> &Entropy {
        &self.entropy
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The session clock, Unix seconds.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The live credentials lookup this store feeds.
    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    /// Reads the store into memory and registers the access keys; a record that does not fit stops the start.
    fn load(&self) -> Result<()> {
        let contents = self.store.load()?;
        let mut state = self.write();
        for record in contents.policies {
            let policy = identity_policy(&record.document)
                .map_err(|e| Error::Internal(format!("stored policy {} no longer parses: {e}", record.arn())))?;
            let account = state.accounts.entry(record.account.clone()).or_default();
            account.policies.insert(record.name.to_ascii_lowercase(), Managed { record, policy });
        }
        for record in contents.users {
            let account = state.accounts.entry(record.account.clone()).or_default();
            let user = User { record, keys: Vec::new(), policies: Arc::new(PolicySet::default()) };
            account.users.insert(user.record.name.to_ascii_lowercase(), user);
        }
        for record in contents.roles {
            let trust = trust_policy(&record.trust_policy).map_err(|e| {
                Error::Internal(format!("stored trust policy of {} no longer parses: {e}", record.arn()))
            })?;
            let account = state.accounts.entry(record.account.clone()).or_default();
            let role = Role { record, trust, policies: Arc::new(PolicySet::default()) };
            account.roles.insert(role.record.name.to_ascii_lowercase(), role);
        }
        for record in contents.access_keys {
            let secret = self.secrets.unwrap(&record.id, &record.wrapped_secret)?;
            let Some(user) = state
                .accounts
                .get_mut(&record.account)
                .and_then(|a| a.users.get_mut(&record.user.to_ascii_lowercase()))
            else {
                return Err(Error::Internal(format!(
                    "stored access key {} belongs to user {} of account {}, which is not stored",
                    record.id, record.user, record.account
                )));
            };
            user.keys.push(AccessKeyInfo {
                user: user.record.name.clone(),
                id: record.id.clone(),
                active: record.active,
                created: record.created,
            });
            if record.active {
                self.accounts.insert_live(user_key(&user.record, &user.policies, &record.id, &secret));
            }
        }
        for account in state.accounts.values() {
            for user in account.users.values() {
                user.policies.replace(policies_of(&user.record.inline, &user.record.attached, account)?);
            }
            for role in account.roles.values() {
                role.policies.replace(policies_of(&role.record.inline, &role.record.attached, account)?);
            }
        }
        Ok(())
    }

    /// Applies the configuration's declarations (see [`AccountDeclaration`]).
    fn declare(&self) -> Result<()> {
        for declaration in &self.declarations {
            let account = declaration.account.as_str();
            let context = |what: String| {
                move |e: Error| Error::Validation(format!("configuration of account {account}: {what}: {e}"))
            };
            for policy in &declaration.policies {
                self.declare_policy(account, policy).map_err(context(format!("policy {}", policy.name)))?;
            }
            for user in &declaration.users {
                self.declare_user(account, user).map_err(context(format!("user {}", user.name)))?;
            }
            for role in &declaration.roles {
                self.declare_role(account, role).map_err(context(format!("role {}", role.name)))?;
            }
        }
        Ok(())
    }

    fn declare_policy(&self, account: &str, declared: &PolicyDeclaration) -> Result<()> {
        let existing = self
            .read()
            .accounts
            .get(account)
            .and_then(|a| a.policies.get(&declared.name.to_ascii_lowercase()).map(|m| m.record.clone()));
        match existing {
            None => {
                self.create_policy(
                    account,
                    &declared.name,
                    &declared.path,
                    &declared.document,
                    declared.description.as_deref(),
                    Vec::new(),
                )?;
            }
            Some(record) if record.document != declared.document || record.path != declared.path => {
                validate::path(&declared.path, "path")?;
                let policy = identity_policy(&declared.document)?;
                let updated = PolicyRecord {
                    path: declared.path.clone(),
                    document: declared.document.clone(),
                    description: declared.description.clone(),
                    ..record
                };
                let mut state = self.write();
                self.store.commit(&[Change::PutPolicy(updated.clone())])?;
                let state_account = state.accounts.entry(account.to_owned()).or_default();
                state_account.policies.insert(updated.name.to_ascii_lowercase(), Managed { record: updated, policy });
                refresh_all(state_account)?;
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn declare_user(&self, account: &str, declared: &UserDeclaration) -> Result<()> {
        if self.get_user(account, &declared.name).is_err() {
            self.create_user(account, &declared.name, &declared.path, Vec::new())?;
        }
        if declared.access_keys.len() > MAX_ACCESS_KEYS {
            return Err(Error::LimitExceeded(format!("Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS}")));
        }
        for key in &declared.access_keys {
            self.declare_access_key(account, &declared.name, &key.access_key_id, &key.secret_access_key)?;
        }
        for (name, document) in &declared.policies {
            self.put_inline_policy(account, Holder::User(&declared.name), name, document)?;
        }
        for policy in &declared.attached_policies {
            self.attach_policy(account, Holder::User(&declared.name), &policy_arn_of(account, policy))?;
        }
        Ok(())
    }

    fn declare_role(&self, account: &str, declared: &RoleDeclaration) -> Result<()> {
        let max = declared.max_session_duration.unwrap_or(DEFAULT_MAX_SESSION_DURATION);
        match self.get_role(account, &declared.name) {
            Err(_) => {
                self.create_role(
                    account,
                    &RoleSpec {
                        name: &declared.name,
                        path: &declared.path,
                        trust_policy: &declared.trust_policy,
                        description: declared.description.as_deref(),
                        max_session_duration: Some(max),
                        tags: Vec::new(),
                    },
                )?;
            }
            Ok(role) => {
                if role.trust_policy != declared.trust_policy {
                    self.update_trust_policy(account, &declared.name, &declared.trust_policy)?;
                }
            }
        }
        for (name, document) in &declared.policies {
            self.put_inline_policy(account, Holder::Role(&declared.name), name, document)?;
        }
        for policy in &declared.attached_policies {
            self.attach_policy(account, Holder::Role(&declared.name), &policy_arn_of(account, policy))?;
        }
        Ok(())
    }

    /// Makes a declared access key exist with its declared secret.
    fn declare_access_key(&self, account: &str, user_name: &str, key_id: &str, secret: &str) -> Result<()> {
        validate::length(key_id, "accessKeyId", 1, 128)?;
        let mut state = self.write();
        let owned_here = state
            .accounts
            .get(account)
            .and_then(|a| a.users.get(&user_name.to_ascii_lowercase()))
            .is_some_and(|u| u.keys.iter().any(|k| k.id == key_id));
        if !owned_here && self.accounts.contains(key_id) {
            return Err(Error::EntityAlreadyExists(format!(
                "access key {key_id} is already used by another principal"
            )));
        }
        let user = state
            .accounts
            .get_mut(account)
            .and_then(|a| a.users.get_mut(&user_name.to_ascii_lowercase()))
            .ok_or_else(|| not_found_user(user_name))?;
        if !owned_here && user.keys.len() >= MAX_ACCESS_KEYS {
            return Err(Error::LimitExceeded(format!("Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS}")));
        }
        let created = user.keys.iter().find(|k| k.id == key_id).map_or_else(|| self.now(), |k| k.created);
        let record = AccessKeyRecord {
            format: RECORD_FORMAT,
            account: account.to_owned(),
            user: user.record.name.clone(),
            id: key_id.to_owned(),
            wrapped_secret: self.secrets.wrap(key_id, secret),
            active: true,
            created,
        };
        self.store.commit(&[Change::PutAccessKey(record)])?;
        user.keys.retain(|k| k.id != key_id);
        user.keys.push(AccessKeyInfo { user: user.record.name.clone(), id: key_id.to_owned(), active: true, created });
        self.accounts.insert_live(user_key(&user.record, &user.policies, key_id, secret));
        Ok(())
    }

    /// Empties the store and forgets every session (the admin reset), then applies the declarations again.
    pub fn reset(&self) -> Result<()> {
        {
            let mut state = self.write();
            self.store.clear()?;
            state.accounts.clear();
            self.accounts.retain_live(|_| false);
        }
        self.declare()
    }

    // ---- users ----------------------------------------------------------------------------------------------

    /// CreateUser.
    pub fn create_user(&self, account: &str, name: &str, path: &str, tags: Vec<Tag>) -> Result<UserRecord> {
        validate::name(name, "userName", 1, 64)?;
        validate::path(path, "path")?;
        validate::tags(&tags)?;
        let mut state = self.write();
        let account_state = state.accounts.entry(account.to_owned()).or_default();
        if let Some(existing) = account_state.users.get(&name.to_ascii_lowercase()) {
            return Err(Error::EntityAlreadyExists(format!("User with name {} already exists.", existing.record.name)));
        }
        if account_state.users.len() >= MAX_USERS {
            return Err(Error::LimitExceeded(format!("Cannot exceed quota for UsersPerAccount: {MAX_USERS}")));
        }
        let record = UserRecord {
            format: RECORD_FORMAT,
            account: account.to_owned(),
            name: name.to_owned(),
            path: path.to_owned(),
            id: ids::new_id(IdKind::User, &self.entropy),
            created: self.now(),
            tags,
            inline: BTreeMap::new(),
            attached: Vec::new(),
        };
        self.store.commit(&[Change::PutUser(record.clone())])?;
        account_state.users.insert(
            name.to_ascii_lowercase(),
            User { record: record.clone(), keys: Vec::new(), policies: Arc::new(PolicySet::default()) },
        );
        Ok(record)
    }

    /// GetUser of a named user.
    pub fn get_user(&self, account: &str, name: &str) -> Result<UserRecord> {
        self.read()
            .accounts
            .get(account)
            .and_then(|a| a.users.get(&name.to_ascii_lowercase()))
            .map(|u| u.record.clone())
            .ok_or_else(|| not_found_user(name))
    }

    /// DeleteUser: refused while the user has access keys, inline policies or attached policies.
    pub fn delete_user(&self, account: &str, name: &str) -> Result<()> {
        let mut state = self.write();
        let account_state = state.accounts.get_mut(account).ok_or_else(|| not_found_user(name))?;
        let user = account_state.users.get(&name.to_ascii_lowercase()).ok_or_else(|| not_found_user(name))?;
        if !user.keys.is_empty() {
            return Err(Error::DeleteConflict("Cannot delete entity, must delete access keys first.".into()));
        }
        if !user.record.inline.is_empty() {
            return Err(Error::DeleteConflict("Cannot delete entity, must delete policies first.".into()));
        }
        if !user.record.attached.is_empty() {
            return Err(Error::DeleteConflict("Cannot delete entity, must detach all policies first.".into()));
        }
        self.store.commit(&[Change::DeleteUser(user.record.store_key())])?;
        account_state.users.remove(&name.to_ascii_lowercase());
        Ok(())
    }

    /// ListUsers, by name, under `path_prefix`.
    pub fn list_users(&self, account: &str, path_prefix: &str, marker: Option<&str>, max: usize) -> Page<UserRecord> {
        let state = self.read();
        let users = state.accounts.get(account).map(|a| &a.users);
        page(users.into_iter().flatten().filter(|(_, u)| u.record.path.starts_with(path_prefix)), marker, max, |u| {
            u.record.clone()
        })
    }

    /// The ARN of a user: the stored one, else the one it would have at path `/`.
    pub fn user_arn(&self, account: &str, name: &str) -> String {
        self.get_user(account, name).map(|u| u.arn()).unwrap_or_else(|_| format!("arn:aws:iam::{account}:user/{name}"))
    }

    // ---- access keys ----------------------------------------------------------------------------------------

    /// CreateAccessKey: a fresh `AKIA…` key and its secret (shown only now).
    pub fn create_access_key(&self, account: &str, user_name: &str) -> Result<(AccessKeyInfo, Zeroizing<String>)> {
        let mut state = self.write();
        let user = state
            .accounts
            .get_mut(account)
            .and_then(|a| a.users.get_mut(&user_name.to_ascii_lowercase()))
            .ok_or_else(|| not_found_user(user_name))?;
        if user.keys.len() >= MAX_ACCESS_KEYS {
            return Err(Error::LimitExceeded(format!("Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS}")));
        }
        let id = loop {
            let id = ids::new_id(IdKind::AccessKey, &self.entropy);
            if !self.accounts.contains(&id) {
                break id;
            }
        };
        let secret = ids::new_secret(&self.entropy);
        let info = AccessKeyInfo { user: user.record.name.clone(), id: id.clone(), active: true, created: self.now() };
        let record = AccessKeyRecord {
            format: RECORD_FORMAT,
            account: account.to_owned(),
            user: user.record.name.clone(),
            id: id.clone(),
            wrapped_secret: self.secrets.wrap(&id, &secret),
            active: true,
            created: info.created,
        };
        self.store.commit(&[Change::PutAccessKey(record)])?;
        user.keys.push(info.clone());
        self.accounts.insert_live(user_key(&user.record, &user.policies, &id, &secret));
        Ok((info, secret))
    }

    /// DeleteAccessKey: the key stops signing at once.
    pub fn delete_access_key(&self, account: &str, user_name: &str, key_id: &str) -> Result<()> {
        let mut state = self.write();
        let user = state
            .accounts
            .get_mut(account)
            .and_then(|a| a.users.get_mut(&user_name.to_ascii_lowercase()))
            .ok_or_else(|| not_found_user(user_name))?;
        if !user.keys.iter().any(|k| k.id == key_id) {
            return Err(Error::NoSuchEntity(format!("The Access Key with id {key_id} cannot be found.")));
        }
        self.store.commit(&[Change::DeleteAccessKey(key_id.to_owned())])?;
        user.keys.retain(|k| k.id != key_id);
        self.accounts.remove_live(key_id);
        Ok(())
    }

    /// UpdateAccessKey: an inactive key is refused until made active again.
    pub fn update_access_key(&self, account: &str, user_name: &str, key_id: &str, active: bool) -> Result<()> {
        let mut state = self.write();
        let user = state
            .accounts
            .get_mut(account)
            .and_then(|a| a.users.get_mut(&user_name.to_ascii_lowercase()))
            .ok_or_else(|| not_found_user(user_name))?;
        let Some(index) = user.keys.iter().position(|k| k.id == key_id) else {
            return Err(Error::NoSuchEntity(format!("The Access Key with id {key_id} cannot be found.")));
        };
        if user.keys[index].active == active {
            return Ok(());
        }
        let stored = self
            .store
            .load()?
            .access_keys
            .into_iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| Error::Internal(format!("access key {key_id} is not in the store")))?;
        let secret = self.secrets.unwrap(key_id, &stored.wrapped_secret)?;
        self.store.commit(&[Change::PutAccessKey(AccessKeyRecord { active, ..stored })])?;
        user.keys[index].active = active;
        if active {
            self.accounts.insert_live(user_key(&user.record, &user.policies, key_id, &secret));
        } else {
            self.accounts.remove_live(key_id);
        }
        Ok(())
    }

    /// ListAccessKeys of a user.
    pub fn list_access_keys(&self, account: &str, user_name: &str) -> Result<Vec<AccessKeyInfo>> {
        self.read()
            .accounts
            .get(account)
            .and_then(|a| a.users.get(&user_name.to_ascii_lowercase()))
            .map(|u| u.keys.clone())
            .ok_or_else(|| not_found_user(user_name))
    }

    /// The user (in `account`) that owns access key `key_id`, if any.
    pub fn owner_of_key(&self, account: &str, key_id: &str) -> Option<String> {
        let state = self.read();
        state
            .accounts
            .get(account)?
            .users
            .values()
            .find(|u| u.keys.iter().any(|k| k.id == key_id))
            .map(|u| u.record.name.clone())
    }

    // ---- roles ----------------------------------------------------------------------------------------------

    /// CreateRole.
    pub fn create_role(&self, account: &str, spec: &RoleSpec<'_>) -> Result<RoleRecord> {
        validate::name(spec.name, "roleName", 1, 64)?;
        validate::path(spec.path, "path")?;
        validate::length(spec.trust_policy, "assumeRolePolicyDocument", 1, 131_072)?;
        if let Some(description) = spec.description {
            validate::description(description)?;
        }
        let max_session_duration = spec.max_session_duration.unwrap_or(DEFAULT_MAX_SESSION_DURATION);
        if !(DEFAULT_MAX_SESSION_DURATION..=MAX_SESSION_DURATION).contains(&max_session_duration) {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value '{max_session_duration}' at 'maxSessionDuration' failed to satisfy \
                 constraint: Member must have value {}",
                if max_session_duration < DEFAULT_MAX_SESSION_DURATION {
                    "greater than or equal to 3600"
                } else {
                    "less than or equal to 43200"
                }
            )));
        }
        validate::tags(&spec.tags)?;
        let trust = trust_policy(spec.trust_policy)?;
        let mut state = self.write();
        let account_state = state.accounts.entry(account.to_owned()).or_default();
        if let Some(existing) = account_state.roles.get(&spec.name.to_ascii_lowercase()) {
            return Err(Error::EntityAlreadyExists(format!("Role with name {} already exists.", existing.record.name)));
        }
        if account_state.roles.len() >= MAX_ROLES {
            return Err(Error::LimitExceeded(format!("Cannot exceed quota for RolesPerAccount: {MAX_ROLES}")));
        }
        let record = RoleRecord {
            format: RECORD_FORMAT,
            account: account.to_owned(),
            name: spec.name.to_owned(),
            path: spec.path.to_owned(),
            id: ids::new_id(IdKind::Role, &self.entropy),
            created: self.now(),
            description: spec.description.map(str::to_owned),
            max_session_duration,
            trust_policy: spec.trust_policy.to_owned(),
            tags: spec.tags.clone(),
            inline: BTreeMap::new(),
            attached: Vec::new(),
        };
        self.store.commit(&[Change::PutRole(record.clone())])?;
        account_state.roles.insert(
            spec.name.to_ascii_lowercase(),
            Role { record: record.clone(), trust, policies: Arc::new(PolicySet::default()) },
        );
        Ok(record)
    }

    /// GetRole.
    pub fn get_role(&self, account: &str, name: &str) -> Result<RoleRecord> {
        self.read()
            .accounts
            .get(account)
            .and_then(|a| a.roles.get(&name.to_ascii_lowercase()))
            .map(|r| r.record.clone())
            .ok_or_else(|| not_found_role(name))
    }

    /// The ARN of a role: the stored one, else the one it would have at path `/`.
    pub fn role_arn(&self, account: &str, name: &str) -> String {
        self.get_role(account, name).map(|r| r.arn()).unwrap_or_else(|_| format!("arn:aws:iam::{account}:role/{name}"))
    }

    /// DeleteRole: refused while the role has inline or attached policies. Its sessions keep their credentials
    /// until they expire, as in AWS, but no policy of the deleted role speaks for them any more.
    pub fn delete_role(&self, account: &str, name: &str) -> Result<()> {
        let mut state = self.write();
        let account_state = state.accounts.get_mut(account).ok_or_else(|| not_found_role(name))?;
        let role = account_state.roles.get(&name.to_ascii_lowercase()).ok_or_else(|| not_found_role(name))?;
        if !role.record.inline.is_empty() {
            return Err(Error::DeleteConflict("Cannot delete entity, must delete policies first.".into()));
        }
        if !role.record.attached.is_empty() {
            return Err(Error::DeleteConflict("Cannot delete entity, must detach all policies first.".into()));
        }
        self.store.commit(&[Change::DeleteRole(role.record.store_key())])?;
        if let Some(role) = account_state.roles.remove(&name.to_ascii_lowercase()) {
            role.policies.replace(Vec::new());
        }
        Ok(())
    }

    /// ListRoles, by name, under `path_prefix`.
    pub fn list_roles(&self, account: &str, path_prefix: &str, marker: Option<&str>, max: usize) -> Page<RoleRecord> {
        let state = self.read();
        let roles = state.accounts.get(account).map(|a| &a.roles);
        page(roles.into_iter().flatten().filter(|(_, r)| r.record.path.starts_with(path_prefix)), marker, max, |r| {
            r.record.clone()
        })
    }

    /// UpdateAssumeRolePolicy.
    pub fn update_trust_policy(&self, account: &str, name: &str, document: &str) -> Result<()> {
        validate::length(document, "policyDocument", 1, 131_072)?;
        let trust = trust_policy(document)?;
        let mut state = self.write();
        let role = state
            .accounts
            .get_mut(account)
            .and_then(|a| a.roles.get_mut(&name.to_ascii_lowercase()))
            .ok_or_else(|| not_found_role(name))?;
        let record = RoleRecord { trust_policy: document.to_owned(), ..role.record.clone() };
        self.store.commit(&[Change::PutRole(record.clone())])?;
        role.record = record;
        role.trust = trust;
        Ok(())
    }

    // ---- inline policies ------------------------------------------------------------------------------------

    /// PutUserPolicy / PutRolePolicy: adds or replaces an inline policy; the holder's keys and sessions see it at
    /// once.
    pub fn put_inline_policy(&self, account: &str, holder: Holder<'_>, name: &str, document: &str) -> Result<()> {
        validate::name(name, "policyName", 1, 128)?;
        validate::length(document, "policyDocument", 1, 131_072)?;
        identity_policy(document)?;
        let mut state = self.write();
        let account_state = state.accounts.get_mut(account).ok_or_else(|| holder.not_found())?;
        let (mut inline, limit) = match holder {
            Holder::User(user) => {
                let user = account_state.users.get(&user.to_ascii_lowercase()).ok_or_else(|| holder.not_found())?;
                (user.record.inline.clone(), MAX_USER_INLINE_SIZE)
            }
            Holder::Role(role) => {
                let role = account_state.roles.get(&role.to_ascii_lowercase()).ok_or_else(|| holder.not_found())?;
                (role.record.inline.clone(), MAX_ROLE_INLINE_SIZE)
            }
        };
        inline.insert(name.to_owned(), document.to_owned());
        let size: usize = inline.values().map(|d| validate::policy_size(d)).sum();
        if size > limit {
            let (kind, holder_name) = match holder {
                Holder::User(n) => ("user", n),
                Holder::Role(n) => ("role", n),
            };
            return Err(Error::LimitExceeded(format!(
                "Maximum policy size of {limit} bytes exceeded for {kind} {holder_name}"
            )));
        }
        self.update_holder(account_state, holder, |inline_map, _| *inline_map = inline.clone())
    }

    /// GetUserPolicy / GetRolePolicy: the document as given.
    pub fn get_inline_policy(&self, account: &str, holder: Holder<'_>, name: &str) -> Result<String> {
        let state = self.read();
        let inline = inline_of(&state, account, holder)?;
        inline.get(name).cloned().ok_or_else(|| holder.policy_not_found(name))
    }

    /// DeleteUserPolicy / DeleteRolePolicy.
    pub fn delete_inline_policy(&self, account: &str, holder: Holder<'_>, name: &str) -> Result<()> {
        let mut state = self.write();
        let account_state = state.accounts.get_mut(account).ok_or_else(|| holder.not_found())?;
        if !inline_of_account(account_state, holder)?.contains_key(name) {
            return Err(holder.policy_not_found(name));
        }
        self.update_holder(account_state, holder, |inline, _| {
            inline.remove(name);
        })
    }

    /// ListUserPolicies / ListRolePolicies: the inline policies' names.
    pub fn list_inline_policies(
        &self,
        account: &str,
        holder: Holder<'_>,
        marker: Option<&str>,
        max: usize,
    ) -> Result<Page<String>> {
        let state = self.read();
        let inline = inline_of(&state, account, holder)?;
        Ok(page(inline.keys().map(|k| (k, k)), marker, max, |k| (*k).clone()))
    }

    // ---- managed policies -----------------------------------------------------------------------------------

    /// CreatePolicy: version `v1`, the default.
    pub fn create_policy(
        &self,
        account: &str,
        name: &str,
        path: &str,
        document: &str,
        description: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<ManagedPolicyInfo> {
        validate::name(name, "policyName", 1, 128)?;
        validate::path(path, "path")?;
        validate::length(document, "policyDocument", 1, 131_072)?;
        if let Some(description) = description {
            validate::description(description)?;
        }
        validate::tags(&tags)?;
        if validate::policy_size(document) > MAX_MANAGED_POLICY_SIZE {
            return Err(Error::LimitExceeded(format!("Cannot exceed quota for PolicySize: {MAX_MANAGED_POLICY_SIZE}")));
        }
        let policy = identity_policy(document)?;
        let mut state = self.write();
        let account_state = state.accounts.entry(account.to_owned()).or_default();
        if account_state.policies.contains_key(&name.to_ascii_lowercase()) {
            return Err(Error::EntityAlreadyExists(format!(
                "A policy called {name} already exists. Duplicate names are not allowed."
            )));
        }
        if account_state.policies.len() >= MAX_POLICIES {
            return Err(Error::LimitExceeded(format!("Cannot exceed quota for PoliciesPerAccount: {MAX_POLICIES}")));
        }
        let now = self.now();
        let record = PolicyRecord {
            format: RECORD_FORMAT,
            account: account.to_owned(),
            name: name.to_owned(),
            path: path.to_owned(),
            id: ids::new_id(IdKind::Policy, &self.entropy),
            created: now,
            description: description.map(str::to_owned),
            document: document.to_owned(),
            tags,
        };
        self.store.commit(&[Change::PutPolicy(record.clone())])?;
        account_state.policies.insert(name.to_ascii_lowercase(), Managed { record: record.clone(), policy });
        Ok(ManagedPolicyInfo { record, attachments: 0 })
    }

    /// GetPolicy (and GetPolicyVersion's document): a policy of the caller's account by ARN.
    pub fn get_policy(&self, account: &str, arn: &str) -> Result<ManagedPolicyInfo> {
        let state = self.read();
        let account_state = state.accounts.get(account).ok_or_else(|| policy_not_found(arn))?;
        let managed = find_policy(account_state, account, arn).ok_or_else(|| policy_not_found(arn))?;
        Ok(ManagedPolicyInfo { record: managed.record.clone(), attachments: attachments(account_state, arn) })
    }

    /// DeletePolicy: refused while attached.
    pub fn delete_policy(&self, account: &str, arn: &str) -> Result<()> {
        let mut state = self.write();
        let account_state = state.accounts.get_mut(account).ok_or_else(|| policy_not_found(arn))?;
        let managed = find_policy(account_state, account, arn).ok_or_else(|| policy_not_found(arn))?;
        if attachments(account_state, arn) > 0 {
            return Err(Error::DeleteConflict("Cannot delete a policy attached to entities.".into()));
        }
        let key = managed.record.store_key();
        self.store.commit(&[Change::DeletePolicy(key)])?;
        account_state.policies.remove(&managed_name_key(arn));
        Ok(())
    }

    /// ListPolicies (the account's own, `Scope=Local`): by name, under `path_prefix`, optionally only attached
    /// ones.
    pub fn list_policies(
        &self,
        account: &str,
        path_prefix: &str,
        only_attached: bool,
        marker: Option<&str>,
        max: usize,
    ) -> Page<ManagedPolicyInfo> {
        let state = self.read();
        let Some(account_state) = state.accounts.get(account) else {
            return Page { items: Vec::new(), next_marker: None };
        };
        let infos: Vec<(String, ManagedPolicyInfo)> = account_state
            .policies
            .iter()
            .map(|(key, m)| {
                let arn = m.record.arn();
                (
                    key.clone(),
                    ManagedPolicyInfo { record: m.record.clone(), attachments: attachments(account_state, &arn) },
                )
            })
            .filter(|(_, info)| info.record.path.starts_with(path_prefix) && (!only_attached || info.attachments > 0))
            .collect();
        page(infos.iter().map(|(k, v)| (k, v)), marker, max, |info| (*info).clone())
    }

    /// AttachUserPolicy / AttachRolePolicy (attaching twice changes nothing).
    pub fn attach_policy(&self, account: &str, holder: Holder<'_>, arn: &str) -> Result<()> {
        let mut state = self.write();
        let account_state = state.accounts.entry(account.to_owned()).or_default();
        let attached = attached_of(account_state, holder)?;
        if attached.iter().any(|a| a == arn) {
            return Ok(());
        }
        if find_policy(account_state, account, arn).is_none() {
            return Err(Error::NoSuchEntity(format!("Policy {arn} does not exist or is not attachable.")));
        }
        if attached.len() >= MAX_ATTACHED {
            let quota = match holder {
                Holder::User(_) => "PoliciesPerUser",
                Holder::Role(_) => "PoliciesPerRole",
            };
            return Err(Error::LimitExceeded(format!("Cannot exceed quota for {quota}: {MAX_ATTACHED}")));
        }
        self.update_holder(account_state, holder, |_, attached| attached.push(arn.to_owned()))
    }

    /// DetachUserPolicy / DetachRolePolicy.
    pub fn detach_policy(&self, account: &str, holder: Holder<'_>, arn: &str) -> Result<()> {
        let mut state = self.write();
        let account_state = state.accounts.get_mut(account).ok_or_else(|| holder.not_found())?;
        if !attached_of(account_state, holder)?.iter().any(|a| a == arn) {
            return Err(Error::NoSuchEntity(format!("Policy {arn} was not found.")));
        }
        self.update_holder(account_state, holder, |_, attached| attached.retain(|a| a != arn))
    }

    /// ListAttachedUserPolicies / ListAttachedRolePolicies: (name, ARN) of each, in attachment order.
    pub fn list_attached_policies(
        &self,
        account: &str,
        holder: Holder<'_>,
        path_prefix: &str,
        marker: Option<&str>,
        max: usize,
    ) -> Result<Page<(String, String)>> {
        let state = self.read();
        let account_state = state.accounts.get(account).ok_or_else(|| holder.not_found())?;
        let attached = attached_of(account_state, holder)?;
        let items: Vec<(String, (String, String))> = attached
            .iter()
            .enumerate()
            .filter_map(|(i, arn)| {
                let (_, path, name) = parse_policy_arn(arn)?;
                path.starts_with(path_prefix).then(|| (format!("{i:05}"), (name.to_owned(), arn.clone())))
            })
            .collect();
        Ok(page(items.iter().map(|(k, v)| (k, v)), marker, max, |v| (*v).clone()))
    }

    /// Changes a user's or role's inline policies or attachments with `change`, commits the new record and
    /// refreshes its policy set.
    fn update_holder(
        &self,
        account_state: &mut AccountState,
        holder: Holder<'_>,
        change: impl FnOnce(&mut BTreeMap<String, String>, &mut Vec<String>),
    ) -> Result<()> {
        match holder {
            Holder::User(name) => {
                let user = account_state.users.get(&name.to_ascii_lowercase()).ok_or_else(|| holder.not_found())?;
                let mut record = user.record.clone();
                change(&mut record.inline, &mut record.attached);
                let policies = policies_of(&record.inline, &record.attached, account_state)?;
                self.store.commit(&[Change::PutUser(record.clone())])?;
                let user = account_state.users.get_mut(&name.to_ascii_lowercase()).expect("looked up above");
                user.record = record;
                user.policies.replace(policies);
            }
            Holder::Role(name) => {
                let role = account_state.roles.get(&name.to_ascii_lowercase()).ok_or_else(|| holder.not_found())?;
                let mut record = role.record.clone();
                change(&mut record.inline, &mut record.attached);
                let policies = policies_of(&record.inline, &record.attached, account_state)?;
                self.store.commit(&[Change::PutRole(record.clone())])?;
                let role = account_state.roles.get_mut(&name.to_ascii_lowercase()).expect("looked up above");
                role.record = record;
                role.policies.replace(policies);
            }
        }
        Ok(())
    }
}

/// What CreateRole takes.
#[derive(Debug, Clone)]
pub struct RoleSpec<'a> {
    /// The role's name.
    pub name: &'a str,
    /// Its path.
    pub path: &'a str,
    /// The trust policy (`AssumeRolePolicyDocument`).
    pub trust_policy: &'a str,
    /// An optional description.
    pub description: Option<&'a str>,
    /// Longest session (default 3600).
    pub max_session_duration: Option<u32>,
    /// Tags.
    pub tags: Vec<Tag>,
}

impl Holder<'_> {
    fn not_found(self) -> Error {
        match self {
            Holder::User(name) => not_found_user(name),
            Holder::Role(name) => not_found_role(name),
        }
    }

    fn policy_not_found(self, policy: &str) -> Error {
        match self {
            Holder::User(_) => Error::NoSuchEntity(format!("The user policy with name {policy} cannot be found.")),
            Holder::Role(_) => Error::NoSuchEntity(format!("The role policy with name {policy} cannot be found.")),
        }
    }
}

fn policy_not_found(arn: &str) -> Error {
    Error::NoSuchEntity(format!("Policy {arn} was not found."))
}

/// A policy named in the configuration: an ARN as it is, a bare name as the account's policy at `/`.
fn policy_arn_of(account: &str, policy: &str) -> String {
    if policy.starts_with("arn:") { policy.to_owned() } else { format!("arn:aws:iam::{account}:policy/{policy}") }
}

/// The key of a managed policy's ARN in the account's map (its lower-cased name).
fn managed_name_key(arn: &str) -> String {
    parse_policy_arn(arn).map(|(_, _, name)| name.to_ascii_lowercase()).unwrap_or_default()
}

/// The account's managed policy of ARN `arn` (account, path and name must all match).
fn find_policy<'a>(account_state: &'a AccountState, account: &str, arn: &str) -> Option<&'a Managed> {
    let (arn_account, path, name) = parse_policy_arn(arn)?;
    let managed = account_state.policies.get(&name.to_ascii_lowercase())?;
    (arn_account == account && managed.record.path == path && managed.record.name == name).then_some(managed)
}

/// How many users and roles have `arn` attached.
fn attachments(account_state: &AccountState, arn: &str) -> usize {
    account_state.users.values().filter(|u| u.record.attached.iter().any(|a| a == arn)).count()
        + account_state.roles.values().filter(|r| r.record.attached.iter().any(|a| a == arn)).count()
}

fn inline_of<'a>(state: &'a State, account: &str, holder: Holder<'_>) -> Result<&'a BTreeMap<String, String>> {
    inline_of_account(state.accounts.get(account).ok_or_else(|| holder.not_found())?, holder)
}

fn inline_of_account<'a>(account_state: &'a AccountState, holder: Holder<'_>) -> Result<&'a BTreeMap<String, String>> {
    match holder {
        Holder::User(name) => account_state.users.get(&name.to_ascii_lowercase()).map(|u| &u.record.inline),
        Holder::Role(name) => account_state.roles.get(&name.to_ascii_lowercase()).map(|r| &r.record.inline),
    }
    .ok_or_else(|| holder.not_found())
}

fn attached_of<'a>(account_state: &'a AccountState, holder: Holder<'_>) -> Result<&'a Vec<String>> {
    match holder {
        Holder::User(name) => account_state.users.get(&name.to_ascii_lowercase()).map(|u| &u.record.attached),
        Holder::Role(name) => account_state.roles.get(&name.to_ascii_lowercase()).map(|r| &r.record.attached),
    }
    .ok_or_else(|| holder.not_found())
}

/// The compiled identity-based policies of a holder: its inline ones, then its attached ones.
fn policies_of(
    inline: &BTreeMap<String, String>,
    attached: &[String],
    account_state: &AccountState,
) -> Result<Vec<Arc<Policy>>> {
    let mut out = Vec::with_capacity(inline.len() + attached.len());
    for document in inline.values() {
        out.push(identity_policy(document)?);
    }
    for arn in attached {
        if let Some(managed) = account_state.policies.get(&managed_name_key(arn)) {
            out.push(managed.policy.clone());
        }
    }
    Ok(out)
}

/// Refreshes every user's and role's policy set of an account (after a managed policy changed).
fn refresh_all(account_state: &AccountState) -> Result<()> {
    for user in account_state.users.values() {
        user.policies.replace(policies_of(&user.record.inline, &user.record.attached, account_state)?);
    }
    for role in account_state.roles.values() {
        role.policies.replace(policies_of(&role.record.inline, &role.record.attached, account_state)?);
    }
    Ok(())
}

/// The access key `key_id` of `user`, as the verifier knows it: the user's principal (path, unique id, tags)
/// and its live policy set.
fn user_key(user: &UserRecord, policies: &Arc<PolicySet>, key_id: &str, secret: &str) -> AccessKey {
    let principal = Principal::user(&user.account, &user.path, &user.name)
        .with_unique_id(&user.id)
        .with_tags(user.tags.iter().map(|t| (t.key.as_str(), t.value.clone())));
    let identity = Identity::new(principal, policies.clone(), None);
    AccessKey::with_identity(key_id, secret, &user.account, user.arn(), identity, None)
}

/// One page of `items` (sorted by their key): those after `marker`, at most `max`.
fn page<'a, K, V, T>(
    items: impl Iterator<Item = (&'a K, V)>,
    marker: Option<&str>,
    max: usize,
    view: impl Fn(&V) -> T,
) -> Page<T>
where
    K: AsRef<str> + 'a + ?Sized,
{
    let mut out = Vec::new();
    let mut next_marker = None;
    for (key, value) in items {
        if marker.is_some_and(|m| key.as_ref() <= m) {
            continue;
        }
        if out.len() == max {
            next_marker = out.last().map(|_| String::new());
            break;
        }
        out.push((key.as_ref().to_owned(), view(&value)));
    }
    if next_marker.is_some() {
        next_marker = out.last().map(|(k, _)| k.clone());
    }
    Page { items: out.into_iter().map(|(_, v)| v).collect(), next_marker }
}

mod state;

#[cfg(test)]
mod tests;
