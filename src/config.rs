//! The configuration file (`--config FILE`, TOML): accounts, their access keys and IAM identities (users,
//! roles, managed policies; applied at every start and after `/_sim/reset`: what is missing is made; declared
//! keys, inline policies, attachments, trust policies and managed policy documents are made to match; what
//! was added at run time is kept), the default region, the master key file, keys to seed at
//! start, the bounds of the audit log and of NBD, and the request quotas.
//!
//! ```toml
//! region = "us-east-1"
//!
//! [[accounts]]
//! id = "111122223333"
//! # Keys without `user` act as the account's root; with `user`, as that IAM user (made if not declared below).
//! access_keys = [{ access_key_id = "AKIDROOT", secret_access_key = "root-secret" },
//!                { access_key_id = "AKIDALICE", secret_access_key = "alice-secret", user = "alice" }]
//!
//! [[accounts.policies]]                     # customer managed policies
//! name = "kms-use"
//! document = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}'
//!
//! [[accounts.users]]                        # IAM users: path, access keys (at most 2), inline and attached policies
//! name = "bob"
//! path = "/dev/"
//! access_keys = [{ access_key_id = "AKIDBOB", secret_access_key = "bob-secret" }]
//! attached_policies = ["kms-use"]           # names of the account's policies, or ARNs
//! policies = { s3 = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}' }
//!
//! [[accounts.roles]]                        # roles: trust policy, inline and attached policies
//! name = "deployer"
//! max_session_duration = 7200
//! trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/dev/bob"},"Action":"sts:AssumeRole"}]}'
//! attached_policies = ["kms-use"]
//!
//! [[keys]]
//! id = "11111111-2222-3333-4444-555555555555"
//! material_hex = "000102...1f"              # 64 hex digits
//! aliases = ["alias/seeded"]
//!
//! [audit]                                   # the audit log's bounds (these are the defaults)
//! max_file_bytes = 67108864                 # audit.jsonl rotates past 64 MiB ...
//! max_files = 8                             # ... and at most 8 files are kept
//!
//! [nbd]                                     # what NBD clients can make the server hold
//! max_connections = 64
//! handshake_timeout_ms = 10000
//!
//! [server]                                  # what HTTP clients can make the edge listener hold
//! max_connections = 1024
//! header_read_timeout_secs = 30
//! idle_timeout_secs = 60
//! threads = 0                               # 0: connections shared by the runtime's workers; N: N threads of their own
//!
//! [quotas]                                  # AWS's request quotas (off by default; --quotas aws turns them on)
//! mode = "aws"
//! kms = { symmetric = 100, CreateKey = 2 }  # requests per second, replacing AWS's defaults
//! s3 = { write = 50, read = 100 }           # per prefix: the bucket and the key up to its last /
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use auth::{AccessKey, Accounts};
use serde::Deserialize;
use shared::caller;

use crate::serve::ServerLimits;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The region printed at start and used where a request names none.
    #[serde(default = "default_region")]
    pub region: String,
    /// Whether the default account `000000000000` with `test`/`test` is present (default true),
    /// so that test suites written for other local emulators run unchanged.
    #[serde(default = "yes")]
    pub default_account: bool,
    /// Further accounts and their access keys.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// Keys created at start with fixed ids and material, so ciphertexts are stable across runs.
    #[serde(default)]
    pub keys: Vec<SeedKeyConfig>,
    /// The master key file that wraps key material at rest; default `<data dir>/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// Where objects live, instead of `<data dir>/objects`: any S3-compatible service.
    pub object_store: Option<ObjectStoreConfig>,
    /// The audit log's bounds: size per file, files kept, events kept in memory (`[audit]`).
    #[serde(default)]
    pub audit: kms::audit::AuditOptions,
    /// What NBD clients can make the server hold: connections, bytes in flight, deadlines (`[nbd]`).
    #[serde(default)]
    pub nbd: evs::nbd::Limits,
    /// What HTTP clients can make the edge listener hold: connections, head size, timeouts (`[server]`).
    #[serde(default)]
    pub server: ServerConfig,
    /// Request quotas (`[quotas]`): whether AWS's are enforced (`--quotas` wins), and rates replacing AWS's
    /// defaults, so that a test reaches them in a few calls.
    #[serde(default)]
    pub quotas: faults::quotas::QuotaConfig,
}

/// The edge listener's bounds; absent fields keep the defaults of [`ServerLimits`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Connections served at once (capped at half of `ulimit -n`).
    pub max_connections: usize,
    /// Seconds a client has to send a whole request head once it started.
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may stay open without a request in progress.
    pub idle_timeout_secs: u64,
    /// Longest request head in bytes (longer: 431).
    pub max_header_bytes: usize,
    /// Seconds in-flight requests get to finish at shutdown.
    pub shutdown_grace_secs: u64,
    /// Threads of their own serving the connections, each with an event loop of its own; 0 (the default): the
    /// workers of the server's runtime, which share every connection (shorter latency tails on busy cores).
    pub threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let limits = ServerLimits::default();
        ServerConfig {
            max_connections: limits.max_connections,
            header_read_timeout_secs: limits.header_read_timeout.as_secs(),
            idle_timeout_secs: limits.idle_timeout.as_secs(),
            max_header_bytes: limits.max_header_bytes,
            shutdown_grace_secs: limits.shutdown_grace.as_secs(),
            threads: limits.threads,
        }
    }
}

impl ServerConfig {
    /// The limits the edge listener enforces.
    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_header_bytes: self.max_header_bytes,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            threads: self.threads,
        }
    }
}

/// An S3-compatible service that holds the objects (bodies stay encrypted as kmsim writes them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// `s3://<bucket>[/<prefix>]`.
    pub url: String,
    /// The service's endpoint, e.g. `http://minio.local:9000`; AWS when absent.
    pub endpoint: Option<String>,
    /// The service's region.
    #[serde(default = "default_region")]
    pub region: String,
    /// Access key id for the service.
    pub access_key_id: String,
    /// Secret for the service.
    pub secret_access_key: String,
}

impl ObjectStoreConfig {
    /// The settings for `object_store`'s S3 client.
    pub fn options(&self) -> Vec<(String, String)> {
        let mut options = vec![
            ("aws_region".to_owned(), self.region.clone()),
            ("aws_access_key_id".to_owned(), self.access_key_id.clone()),
            ("aws_secret_access_key".to_owned(), self.secret_access_key.clone()),
            ("aws_virtual_hosted_style_request".to_owned(), "false".to_owned()),
        ];
        if let Some(endpoint) = &self.endpoint {
            options.push(("aws_endpoint".to_owned(), endpoint.clone()));
            options.push(("aws_allow_http".to_owned(), endpoint.starts_with("http://").to_string()));
        }
        options
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            region: default_region(),
            default_account: true,
            accounts: Vec::new(),
            keys: Vec::new(),
            master_key_file: None,
            object_store: None,
            audit: kms::audit::AuditOptions::default(),
            nbd: evs::nbd::Limits::default(),
            server: ServerConfig::default(),
            quotas: faults::quotas::QuotaConfig::default(),
        }
    }
}

/// One account.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// 12 digits.
    pub id: String,
    /// The OTC / Huawei Cloud domain id (32 lowercase hex digits); derived from `id` when absent.
    pub domain_id: Option<String>,
    /// The OTC / Huawei Cloud project id (32 lowercase hex digits); derived from `id` when absent.
    pub project_id: Option<String>,
    /// The access keys that act for the account: its root's, or (with `user`) an IAM user's.
    #[serde(default)]
    pub access_keys: Vec<AccessKeyConfig>,
    /// Customer managed policies (`[[accounts.policies]]`).
    #[serde(default)]
    pub policies: Vec<iam::identities::PolicyDeclaration>,
    /// IAM users (`[[accounts.users]]`).
    #[serde(default)]
    pub users: Vec<iam::identities::UserDeclaration>,
    /// IAM roles (`[[accounts.roles]]`).
    #[serde(default)]
    pub roles: Vec<iam::identities::RoleDeclaration>,
}

/// One access key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    /// The public id.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
    /// The IAM user it signs as; the account's root when absent.
    pub user: Option<String>,
}

/// A key to seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedKeyConfig {
    /// The fixed key id (1–64 of `[A-Za-z0-9-]`; a UUID like AWS's is best).
    pub id: String,
    /// The owning account; the default account when absent.
    pub account: Option<String>,
    /// The region; the configured region when absent.
    pub region: Option<String>,
    /// 32 bytes of key material as 64 hex digits.
    pub material_hex: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Aliases (`alias/...`) pointing at the key.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Whether the key starts enabled (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn default_region() -> String {
    caller::DEFAULT_REGION.to_owned()
}

fn yes() -> bool {
    true
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let config: Config =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?;
        config.check()?;
        Ok(config)
    }

    /// Checks values that the types do not.
    pub fn check(&self) -> Result<(), ConfigError> {
        for account in &self.accounts {
            if !caller::is_account_id(&account.id) {
                return Err(ConfigError::Invalid(format!("account id '{}' is not 12 digits", account.id)));
            }
            if account.id == evs::service::SERVICE_ACCOUNT_ID {
                return Err(ConfigError::Invalid(format!(
                    "account id '{}' is reserved for the volume service's own calls to the KMS",
                    account.id
                )));
            }
            for id in [&account.domain_id, &account.project_id].into_iter().flatten() {
                if !caller::is_project_id(id) {
                    return Err(ConfigError::Invalid(format!(
                        "account {}: domain and project ids are 32 lowercase hex digits, not '{id}'",
                        account.id
                    )));
                }
            }
        }
        self.quotas.check().map_err(|e| ConfigError::Invalid(format!("[quotas]: {e}")))?;
        let mut key_ids = std::collections::HashSet::new();
        for (id, _) in self.access_key_ids() {
            if !key_ids.insert(id.clone()) {
                return Err(ConfigError::Invalid(format!("access key id '{id}' is declared twice")));
            }
        }
        for key in &self.keys {
            let id_ok = !key.id.is_empty()
                && key.id.len() <= 64
                && key.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !id_ok {
                return Err(ConfigError::Invalid(format!("seeded key id '{}' must be 1-64 of [A-Za-z0-9-]", key.id)));
            }
            if key.id.starts_with("mrk-") {
                return Err(ConfigError::Invalid(format!(
                    "seeded key id '{}': ids starting with mrk- are multi-Region keys, which are not seeded",
                    key.id
                )));
            }
            if kms::material::KeyMaterial::from_hex(&key.material_hex).is_none() {
                return Err(ConfigError::Invalid(format!("seeded key {}: material_hex must be 64 hex digits", key.id)));
            }
        }
        Ok(())
    }

    /// The accounts and the root access keys kmsim accepts from the start (IAM users' keys are the identity
    /// store's: [`Config::identities`]).
    pub fn accounts(&self) -> Accounts {
        let mut out = if self.default_account { Accounts::with_defaults() } else { Accounts::default() };
        for account in &self.accounts {
            let (default_domain, default_project) = caller::default_project_ids(&account.id);
            let domain_id = account.domain_id.as_deref().unwrap_or(&default_domain);
            let project_id = account.project_id.as_deref().unwrap_or(&default_project);
            out.insert_account(&account.id, domain_id, project_id);
            for key in account.access_keys.iter().filter(|k| k.user.is_none()) {
                out.insert(
                    AccessKey::new(&key.access_key_id, &key.secret_access_key, &account.id, None)
                        .with_project(domain_id, project_id),
                );
            }
        }
        out
    }

    /// What each account declares of its identities: its users (with the keys `access_keys` gives them),
    /// roles and managed policies.
    pub fn identities(&self) -> Vec<iam::AccountDeclaration> {
        self.accounts
            .iter()
            .map(|account| {
                let mut users = account.users.clone();
                for key in &account.access_keys {
                    let Some(user) = &key.user else { continue };
                    let declared = iam::identities::KeyDeclaration {
                        access_key_id: key.access_key_id.clone(),
                        secret_access_key: key.secret_access_key.clone(),
                    };
                    match users.iter_mut().find(|u| u.name.eq_ignore_ascii_case(user)) {
                        Some(existing) => existing.access_keys.push(declared),
                        None => users.push(iam::identities::UserDeclaration {
                            name: user.clone(),
                            path: "/".into(),
                            access_keys: vec![declared],
                            policies: Default::default(),
                            attached_policies: Vec::new(),
                        }),
                    }
                }
                iam::AccountDeclaration {
                    account: account.id.clone(),
                    policies: account.policies.clone(),
                    users,
                    roles: account.roles.clone(),
                }
            })
            .collect()
    }

    /// Every access key id the configuration declares, with its account (for the startup line).
    pub fn access_key_ids(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        if self.default_account {
            out.push((auth::accounts::DEFAULT_ACCESS_KEY_ID.to_owned(), caller::DEFAULT_ACCOUNT_ID.to_owned()));
        }
        for account in &self.accounts {
            let roots = account.access_keys.iter().filter(|k| k.user.is_none());
            out.extend(roots.map(|k| (k.access_key_id.clone(), account.id.clone())));
        }
        for declaration in self.identities() {
            for user in &declaration.users {
                out.extend(user.access_keys.iter().map(|k| (k.access_key_id.clone(), declaration.account.clone())));
            }
        }
        out.sort();
        out
    }

    /// The keys to seed.
    pub fn seeds(&self) -> Vec<kms::SeedKey> {
        self.keys
            .iter()
            .filter_map(|k| {
                Some(kms::SeedKey {
                    id: k.id.clone(),
                    account: k.account.clone().unwrap_or_else(|| caller::DEFAULT_ACCOUNT_ID.to_owned()),
                    region: k.region.clone().unwrap_or_else(|| self.region.clone()),
                    material: kms::material::KeyMaterial::from_hex(&k.material_hex)?,
                    description: k.description.clone(),
                    aliases: k.aliases.clone(),
                    enabled: k.enabled,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[quotas]` of the module's example parses; an unknown quota or a rate of 0 is refused.
    #[test]
    fn quotas_parse_and_are_checked() {
        let config: Config = toml::from_str(
            r#"
            [quotas]
            mode = "aws"
            kms = { symmetric = 100, CreateKey = 2, "GenerateDataKeyPair(RSA_2048)" = 0.5 }
            s3 = { write = 50, read = 100 }
            "#,
        )
        .unwrap();
        config.check().unwrap();
        assert_eq!(config.quotas.mode, faults::quotas::Mode::Aws);
        assert_eq!(config.quotas.kms["CreateKey"], 2.0);
        for bad in ["kms = { Encrypt = 1 }", "kms = { CreateKey = 0 }", "s3 = { list = 1 }"] {
            let config: Config = toml::from_str(&format!("[quotas]\n{bad}")).unwrap();
            assert!(matches!(config.check(), Err(ConfigError::Invalid(m)) if m.starts_with("[quotas]")), "{bad}");
        }
        assert!(toml::from_str::<Config>("[quotas]\nmode = \"gcp\"").is_err());
        assert_eq!(Config::default().quotas.mode, faults::quotas::Mode::Off);
    }

    /// The identities of the module's example: root keys in `Accounts`, user keys with their users.
    #[test]
    fn identities_parse_and_legacy_user_keys_join_their_users() {
        let config: Config = toml::from_str(
            r#"
            [[accounts]]
            id = "111122223333"
            access_keys = [{ access_key_id = "AKIDROOT", secret_access_key = "r" },
                           { access_key_id = "AKIDALICE", secret_access_key = "a", user = "alice" },
                           { access_key_id = "AKIDBOB2", secret_access_key = "b2", user = "bob" }]
            [[accounts.policies]]
            name = "p"
            document = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}'
            [[accounts.users]]
            name = "bob"
            path = "/dev/"
            access_keys = [{ access_key_id = "AKIDBOB", secret_access_key = "b" }]
            attached_policies = ["p"]
            [[accounts.roles]]
            name = "r"
            trust_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}]}'
            "#,
        )
        .unwrap();
        config.check().unwrap();
        let accounts = config.accounts();
        assert!(accounts.get("AKIDROOT").is_some() && accounts.get("AKIDALICE").is_none());
        let declared = config.identities();
        let users: Vec<(&str, Vec<&str>)> = declared[0]
            .users
            .iter()
            .map(|u| (u.name.as_str(), u.access_keys.iter().map(|k| k.access_key_id.as_str()).collect()))
            .collect();
        assert_eq!(users, [("bob", vec!["AKIDBOB", "AKIDBOB2"]), ("alice", vec!["AKIDALICE"])]);
        assert_eq!(declared[0].roles[0].name, "r");
        let ids: Vec<String> = config.access_key_ids().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["AKIDALICE", "AKIDBOB", "AKIDBOB2", "AKIDROOT", "test"]);
        let twice = "[[accounts]]\nid = \"111122223333\"\naccess_keys = [{ access_key_id = \"test\", secret_access_key = \"x\" }]\n";
        assert!(toml::from_str::<Config>(twice).unwrap().check().is_err(), "a key id declared twice");
        assert!(
            toml::from_str::<Config>("[[accounts]]\nid = \"111122223333\"\n[[accounts.users]]\nnam = \"x\"\n").is_err()
        );
    }

    #[test]
    fn bounds_tables_parse_and_keep_defaults_for_what_they_omit() {
        let config: Config = toml::from_str(
            "[audit]\nmax_files = 3\n[nbd]\nhandshake_timeout_ms = 250\n[server]\nidle_timeout_secs = 5\n",
        )
        .unwrap();
        assert_eq!(config.audit.max_files, 3);
        assert_eq!(config.audit.max_file_bytes, kms::audit::AuditOptions::default().max_file_bytes);
        assert_eq!(config.nbd.handshake_timeout, Duration::from_millis(250));
        assert_eq!(config.nbd.max_connections, evs::nbd::Limits::default().max_connections);
        let limits = config.server.limits();
        assert_eq!(limits.idle_timeout, Duration::from_secs(5));
        assert_eq!(limits.max_connections, ServerLimits::default().max_connections);
        assert!(toml::from_str::<Config>("[server]\nmax_conections = 5\n").is_err(), "typos are refused");
    }
}
