//! The credentials lookup: the access keys kmsim accepts ([`Accounts`]) and the account and principal each
//! acts for ([`AccessKey`]); a verified signature turns its key into the request's [`Caller`].

use std::collections::HashMap;
use std::sync::Arc;

use shared::Caller;
use shared::caller::{DEFAULT_ACCOUNT_ID, default_project_ids, root_principal};
use zeroize::Zeroizing;

/// The access key id that the default account accepts.
pub const DEFAULT_ACCESS_KEY_ID: &str = "test";
/// The secret of [`DEFAULT_ACCESS_KEY_ID`].
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "test";

/// One access key: the secret that signs requests and the principal it acts as.
#[derive(Clone)]
pub struct AccessKey {
    /// The public half, sent in every signature.
    pub access_key_id: String,
    /// The shared secret; kept only in memory and zeroized on drop.
    pub secret_access_key: Zeroizing<String>,
    /// The 12-digit account the key belongs to.
    pub account_id: String,
    /// The principal the key signs as, e.g. `arn:aws:iam::000000000000:root`.
    pub principal_arn: String,
    /// The account's domain id in the OTC / Huawei Cloud dialect (32 hex digits).
    pub domain_id: String,
    /// The account's project id in the OTC / Huawei Cloud dialect (32 hex digits); resources reached through a
    /// project live in the account and the default region.
    pub project_id: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("principal_arn", &self.principal_arn)
            .field("domain_id", &self.domain_id)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

impl AccessKey {
    /// An access key of `account_id` acting as the account's root principal (`user` = `None`) or
    /// as the IAM user `user`, with the account's default domain and project ids ([`default_project_ids`]).
    pub fn new(access_key_id: &str, secret: &str, account_id: &str, user: Option<&str>) -> Self {
        let principal_arn = match user {
            None => root_principal(account_id),
            Some(user) => format!("arn:aws:iam::{account_id}:user/{user}"),
        };
        let (domain_id, project_id) = default_project_ids(account_id);
        AccessKey {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: Zeroizing::new(secret.to_owned()),
            account_id: account_id.to_owned(),
            principal_arn,
            domain_id,
            project_id,
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
}

/// Every access key kmsim accepts, by access key id.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    keys: HashMap<String, Arc<AccessKey>>,
}

impl Accounts {
    /// The default setup: account `000000000000` with the access key `test` / `test`.
    pub fn with_defaults() -> Self {
        let mut accounts = Accounts::default();
        accounts.insert(AccessKey::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, DEFAULT_ACCOUNT_ID, None));
        accounts
    }

    /// Adds or replaces an access key.
    pub fn insert(&mut self, key: AccessKey) {
        self.keys.insert(key.access_key_id.clone(), Arc::new(key));
    }

    /// The access key with this id, if kmsim knows it.
    pub fn get(&self, access_key_id: &str) -> Option<&Arc<AccessKey>> {
        self.keys.get(access_key_id)
    }

    /// The account id of an OTC / Huawei Cloud domain id, if an access key of kmsim belongs to it.
    pub fn account_of_domain(&self, domain_id: &str) -> Option<&str> {
        self.keys.values().find(|k| k.domain_id == domain_id).map(|k| k.account_id.as_str())
    }

    /// All known access keys.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<AccessKey>> {
        self.keys.values()
    }
}
