//! The accounts kmsim knows, the access keys that act for them, and the authenticated [`Caller`]
//! of a request.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The account every default setup has, as in other local AWS emulators.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
/// The access key id that the default account accepts.
pub const DEFAULT_ACCESS_KEY_ID: &str = "test";
/// The secret of [`DEFAULT_ACCESS_KEY_ID`].
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "test";
/// The region used when nothing else names one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The Open Telekom Cloud / Huawei Cloud domain id (the account, in that cloud's terms) of the default account.
pub const DEFAULT_DOMAIN_ID: &str = "00000000000000000000000000000000";
/// The project id of the default account: what the OTC dialect's paths (`/v1.0/{project_id}/kms/...`) carry.
pub const DEFAULT_PROJECT_ID: &str = "00000000000000000000000000000000";

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

    /// The same key in a domain and project chosen by the configuration.
    pub fn with_project(mut self, domain_id: &str, project_id: &str) -> Self {
        self.domain_id = domain_id.to_owned();
        self.project_id = project_id.to_owned();
        self
    }
}

/// The domain id and project id an account has unless the configuration names them: 32 zeros for the default
/// account (so scripts need no lookup), otherwise 32 hex digits derived from the account id, stable across runs.
pub fn default_project_ids(account_id: &str) -> (String, String) {
    if account_id == DEFAULT_ACCOUNT_ID {
        return (DEFAULT_DOMAIN_ID.to_owned(), DEFAULT_PROJECT_ID.to_owned());
    }
    let derive = |what: &str| {
        let digest = Sha256::digest(format!("kmsim {what} of account {account_id}"));
        hex::encode(&digest[..16])
    };
    (derive("domain"), derive("project"))
}

/// Whether `text` is an OTC domain or project id: 32 lowercase hex digits.
pub fn is_project_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The root principal ARN of an account.
pub fn root_principal(account_id: &str) -> String {
    format!("arn:aws:iam::{account_id}:root")
}

/// Whether `text` is a 12-digit AWS account id.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
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

/// Who made a request, established by a verified signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account the request acts in.
    pub account_id: String,
    /// The region named in the signature's credential scope; resources are per account and region.
    pub region: String,
    /// The access key that signed the request.
    pub access_key_id: String,
    /// The principal the access key acts as.
    pub principal_arn: String,
    /// The service that made the call on the caller's behalf (`s3.amazonaws.com`, ...), if any.
    pub via_service: Option<String>,
}

impl Caller {
    /// A caller signed with `key` in `region`.
    pub fn new(key: &AccessKey, region: &str) -> Self {
        Caller {
            account_id: key.account_id.clone(),
            region: region.to_owned(),
            access_key_id: key.access_key_id.clone(),
            principal_arn: key.principal_arn.clone(),
            via_service: None,
        }
    }

    /// The root principal of the caller's account.
    pub fn account_root(&self) -> String {
        root_principal(&self.account_id)
    }
}
