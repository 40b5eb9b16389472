//! The records the identity store keeps durably, one JSON document each, versioned by `format`
//! ([`RECORD_FORMAT`]; `docs/formats.md`). Policies are kept as the text the client sent (IAM returns it
//! verbatim) and compiled again when the store opens. An access key's secret is kept only wrapped
//! ([`crate::secrets`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The format of every record. Changing this breaks stored data: a reader refuses other formats.
pub const RECORD_FORMAT: u32 = 1;

/// A tag of a user, role or policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// 1–128 characters.
    pub key: String,
    /// 0–256 characters.
    pub value: String,
}

/// An IAM user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// The 12-digit account.
    pub account: String,
    /// The name as created (names are unique in an account regardless of case).
    pub name: String,
    /// `/` or `/a/b/`.
    pub path: String,
    /// `AIDA…`.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// Tags, in the order given.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Inline policies by name: the documents as given.
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    /// The ARNs of the attached managed policies, in attachment order.
    #[serde(default)]
    pub attached: Vec<String>,
}

/// An IAM role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRecord {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// The 12-digit account.
    pub account: String,
    /// The name as created.
    pub name: String,
    /// `/` or `/a/b/`.
    pub path: String,
    /// `AROA…`.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// The description, if one was given.
    #[serde(default)]
    pub description: Option<String>,
    /// Longest session AssumeRole grants, 3600–43200 seconds.
    pub max_session_duration: u32,
    /// The trust policy (`AssumeRolePolicyDocument`) as given.
    pub trust_policy: String,
    /// Tags, in the order given.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Inline policies by name.
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    /// The ARNs of the attached managed policies.
    #[serde(default)]
    pub attached: Vec<String>,
}

/// A customer managed policy (one version, `v1`: kmsim does not keep policy versions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// The 12-digit account.
    pub account: String,
    /// The name as created.
    pub name: String,
    /// `/` or `/a/b/`.
    pub path: String,
    /// `ANPA…`.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// The description, if one was given.
    #[serde(default)]
    pub description: Option<String>,
    /// The document of version `v1`, as given.
    pub document: String,
    /// Tags, in the order given.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A user's access key. The secret is stored wrapped, never in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// The 12-digit account.
    pub account: String,
    /// The owning user's name.
    pub user: String,
    /// `AKIA…` (or the id a configuration declared).
    pub id: String,
    /// The secret, AES-256-GCM-wrapped under the store's key with the key id as associated data (base64).
    pub wrapped_secret: String,
    /// Whether the key signs requests.
    pub active: bool,
    /// Unix seconds.
    pub created: i64,
}

impl UserRecord {
    /// The record's key in the `users` table: account and lower-cased name.
    pub fn store_key(&self) -> String {
        entity_key(&self.account, &self.name)
    }

    /// `arn:aws:iam::ACCOUNT:user/PATH/NAME`.
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::{}:user{}{}", self.account, self.path, self.name)
    }
}

impl RoleRecord {
    /// The record's key in the `roles` table.
    pub fn store_key(&self) -> String {
        entity_key(&self.account, &self.name)
    }

    /// `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::{}:role{}{}", self.account, self.path, self.name)
    }
}

impl PolicyRecord {
    /// The record's key in the `policies` table.
    pub fn store_key(&self) -> String {
        entity_key(&self.account, &self.name)
    }

    /// `arn:aws:iam::ACCOUNT:policy/PATH/NAME`.
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::{}:policy{}{}", self.account, self.path, self.name)
    }
}

/// The store key of an entity: `ACCOUNT/lower-cased name` (IAM names are unique regardless of case).
pub fn entity_key(account: &str, name: &str) -> String {
    format!("{account}/{}", name.to_ascii_lowercase())
}
