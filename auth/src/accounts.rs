//! The credentials lookup: the access keys kmsim accepts ([`Accounts`]) and the account and principal each
//! acts for ([`AccessKey`]); a verified signature turns its key into the request's [`Caller`].
//!
//! Two kinds of keys live here. The keys declared at start (the configuration's root keys, and those tests
//! insert) are fixed: a plain map, read without a lock. The keys the IAM store manages at run time — IAM
//! users' access keys and role sessions' temporary keys — are live: [`Accounts::insert_live`] and
//! [`Accounts::remove_live`] take effect for the next request (a short write lock; readers clone an `Arc`
//! under a read lock and hold nothing across an await).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use shared::Caller;
use shared::caller::{DEFAULT_ACCOUNT_ID, default_project_ids, root_principal};
use zeroize::Zeroizing;

use crate::identity::{Identity, PolicySet};

/// The access key id that the default account accepts.
pub const DEFAULT_ACCESS_KEY_ID: &str = "test";
/// The secret of [`DEFAULT_ACCESS_KEY_ID`].
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "test";

/// Gives every [`AccessKey`] a number of its own, so that a cached signing key never outlives its key.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

/// What makes an access key temporary: the session token that must travel with every request it signs
/// (`x-amz-security-token`), and when it expires.
#[derive(Clone)]
pub struct SessionToken {
    /// The token; kept only in memory and zeroized on drop.
    pub token: Zeroizing<String>,
    /// When the credentials expire, in Unix seconds of the simulated clock.
    pub expires_at: i64,
}

/// One access key: the secret that signs requests and the principal it acts as.
#[derive(Clone)]
pub struct AccessKey {
    /// The public half, sent in every signature.
    pub access_key_id: String,
    /// The shared secret; kept only in memory and zeroized on drop.
    pub secret_access_key: Zeroizing<String>,
    /// The 12-digit account the key belongs to.
    pub account_id: String,
    /// The principal the key signs as, as AWS names it: `arn:aws:iam::000000000000:root`,
    /// `arn:aws:iam::ACCOUNT:user/PATH/NAME`, `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub principal_arn: String,
    /// The account's domain id in the OTC / Huawei Cloud dialect (32 hex digits).
    pub domain_id: String,
    /// The account's project id in the OTC / Huawei Cloud dialect (32 hex digits); resources reached through a
    /// project live in the account and the default region.
    pub project_id: String,
    /// Who the key acts as for policy decisions, with its live identity-based policies.
    pub identity: Identity,
    /// Set for the temporary credentials of a role session: the token requests must carry.
    pub session: Option<SessionToken>,
    /// This key's own number (never reused): keys the signing-key cache.
    serial: u64,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("principal_arn", &self.principal_arn)
            .field("domain_id", &self.domain_id)
            .field("project_id", &self.project_id)
            .field("session", &self.session.as_ref().map(|s| s.expires_at))
            .finish_non_exhaustive()
    }
}

impl AccessKey {
    /// An access key of `account_id` acting as the account's root principal (`user` = `None`) or
    /// as the IAM user `user` (path `/`, no policies), with the account's default domain and project ids
    /// ([`default_project_ids`]).
    pub fn new(access_key_id: &str, secret: &str, account_id: &str, user: Option<&str>) -> Self {
        let (principal_arn, identity) = match user {
            None => (root_principal(account_id), Identity::root(account_id)),
            Some(user) => (
                format!("arn:aws:iam::{account_id}:user/{user}"),
                Identity::new(policy::Principal::user(account_id, "/", user), Arc::new(PolicySet::default()), None),
            ),
        };
        AccessKey::with_identity(access_key_id, secret, account_id, principal_arn, identity, None)
    }

    /// An access key of `account_id` acting as `identity`, named `principal_arn`; temporary when `session` is
    /// given. The domain and project ids are the account's defaults.
    pub fn with_identity(
        access_key_id: &str,
        secret: &str,
        account_id: &str,
        principal_arn: String,
        identity: Identity,
        session: Option<SessionToken>,
    ) -> Self {
        let (domain_id, project_id) = default_project_ids(account_id);
        AccessKey {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: Zeroizing::new(secret.to_owned()),
            account_id: account_id.to_owned(),
            principal_arn,
            domain_id,
            project_id,
            identity,
            session,
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The caller this key makes of a request signed in `region`.
    pub fn caller(&self, region: &str) -> Caller {
        Caller {
            account_id: self.account_id.clone(),
            region: region.to_owned(),
            access_key_id: self.access_key_id.clone(),
            principal_arn: self.principal_arn.clone(),
            via_service: None,
            peer: None,
            decisions: Default::default(),
        }
    }

    /// The same key in a domain and project chosen by the configuration.
    pub fn with_project(mut self, domain_id: &str, project_id: &str) -> Self {
        self.domain_id = domain_id.to_owned();
        self.project_id = project_id.to_owned();
        self
    }

    /// This key's own number, never shared with another key (even one of the same id created later).
    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }
}

/// An account's ids in the OTC / Huawei Cloud dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountIds {
    /// The domain id (32 hex digits).
    pub domain_id: String,
    /// The project id (32 hex digits).
    pub project_id: String,
}

/// Every access key kmsim accepts, by access key id, and the accounts they belong to.
#[derive(Debug, Default)]
pub struct Accounts {
    /// The keys declared at start: read without a lock.
    keys: HashMap<String, Arc<AccessKey>>,
    /// The accounts and their OTC ids, declared at start.
    accounts: HashMap<String, AccountIds>,
    /// The keys the IAM store manages at run time (users' keys, role sessions).
    live: RwLock<HashMap<String, Arc<AccessKey>>>,
}

impl Clone for Accounts {
    fn clone(&self) -> Self {
        Accounts {
            keys: self.keys.clone(),
            accounts: self.accounts.clone(),
            live: RwLock::new(self.live.read().unwrap_or_else(|e| e.into_inner()).clone()),
        }
    }
}

impl Accounts {
    /// The default setup: account `000000000000` with the access key `test` / `test`.
    pub fn with_defaults() -> Self {
        let mut accounts = Accounts::default();
        accounts.insert(AccessKey::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, DEFAULT_ACCOUNT_ID, None));
        accounts
    }

    /// Adds or replaces an access key declared at start (its account too, if new).
    pub fn insert(&mut self, key: AccessKey) {
        self.accounts
            .entry(key.account_id.clone())
            .or_insert_with(|| AccountIds { domain_id: key.domain_id.clone(), project_id: key.project_id.clone() });
        self.keys.insert(key.access_key_id.clone(), Arc::new(key));
    }

    /// Declares an account with its OTC domain and project ids (replacing what an earlier key implied).
    pub fn insert_account(&mut self, account_id: &str, domain_id: &str, project_id: &str) {
        self.accounts.insert(
            account_id.to_owned(),
            AccountIds { domain_id: domain_id.to_owned(), project_id: project_id.to_owned() },
        );
    }

    /// Adds or replaces a key managed at run time; the next request signed with it is accepted. A key
    /// declared at start with the same id keeps precedence. The key takes its account's domain and project.
    pub fn insert_live(&self, mut key: AccessKey) {
        if let Some(ids) = self.accounts.get(&key.account_id) {
            key.domain_id.clone_from(&ids.domain_id);
            key.project_id.clone_from(&ids.project_id);
        }
        self.live.write().unwrap_or_else(|e| e.into_inner()).insert(key.access_key_id.clone(), Arc::new(key));
    }

    /// Removes a key managed at run time: the next request signed with it is refused. Whether it was there.
    pub fn remove_live(&self, access_key_id: &str) -> bool {
        self.live.write().unwrap_or_else(|e| e.into_inner()).remove(access_key_id).is_some()
    }

    /// Removes every key managed at run time that `keep` refuses (the admin reset, sessions past their time).
    pub fn retain_live(&self, mut keep: impl FnMut(&AccessKey) -> bool) {
        self.live.write().unwrap_or_else(|e| e.into_inner()).retain(|_, key| keep(key));
    }

    /// The access key with this id, if kmsim knows it.
    pub fn get(&self, access_key_id: &str) -> Option<Arc<AccessKey>> {
        if let Some(key) = self.keys.get(access_key_id) {
            return Some(key.clone());
        }
        self.live.read().unwrap_or_else(|e| e.into_inner()).get(access_key_id).cloned()
    }

    /// Whether an access key with this id exists (declared or live).
    pub fn contains(&self, access_key_id: &str) -> bool {
        self.keys.contains_key(access_key_id)
            || self.live.read().unwrap_or_else(|e| e.into_inner()).contains_key(access_key_id)
    }

    /// The account id of an OTC / Huawei Cloud domain id, if kmsim knows the account.
    pub fn account_of_domain(&self, domain_id: &str) -> Option<&str> {
        self.accounts.iter().find(|(_, ids)| ids.domain_id == domain_id).map(|(account, _)| account.as_str())
    }

    /// The OTC ids of an account kmsim knows.
    pub fn account(&self, account_id: &str) -> Option<&AccountIds> {
        self.accounts.get(account_id)
    }

    /// The ids of every account kmsim knows.
    pub fn account_ids(&self) -> impl Iterator<Item = &str> {
        self.accounts.keys().map(String::as_str)
    }

    /// Every long-term access key: those declared at start and the IAM users' (not role sessions'), by id.
    pub fn long_term_keys(&self) -> Vec<Arc<AccessKey>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<Arc<AccessKey>> = self
            .keys
            .values()
            .chain(live.values().filter(|key| !self.keys.contains_key(&key.access_key_id)))
            .filter(|key| key.session.is_none())
            .cloned()
            .collect();
        keys.sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
        keys
    }

    /// The access keys declared at start (the configuration's; not the IAM store's nor sessions).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<AccessKey>> {
        self.keys.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_keys_are_found_at_once_and_gone_at_once() {
        let accounts = Accounts::with_defaults();
        assert!(accounts.get("AKIAEXAMPLE").is_none());
        accounts.insert_live(AccessKey::new("AKIAEXAMPLE", "s", DEFAULT_ACCOUNT_ID, Some("alice")));
        let key = accounts.get("AKIAEXAMPLE").unwrap();
        assert_eq!(key.principal_arn, "arn:aws:iam::000000000000:user/alice");
        assert!(accounts.remove_live("AKIAEXAMPLE"));
        assert!(accounts.get("AKIAEXAMPLE").is_none());
        assert!(!accounts.remove_live("AKIAEXAMPLE"));
        assert!(accounts.get(DEFAULT_ACCESS_KEY_ID).is_some(), "declared keys stay");
    }

    #[test]
    fn every_key_has_a_serial_of_its_own() {
        let a = AccessKey::new("A", "s", DEFAULT_ACCOUNT_ID, None);
        let b = AccessKey::new("A", "s", DEFAULT_ACCOUNT_ID, None);
        assert_ne!(a.serial(), b.serial());
        assert_eq!(a.clone().serial(), a.serial());
    }
}
