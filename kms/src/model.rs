//! The KMS domain: keys, their versions, aliases, grants, and how requests name keys.
//!
//! These records are what the store persists (as versioned JSON) and what the front ends render.
//! Times are Unix seconds of the KMS clock (which tests may advance).

use serde::{Deserialize, Serialize};

use crate::blob::EncryptionContext;
use crate::error::{Error, Result};

/// Version of the persisted [`KeyRecord`] and [`AliasRecord`] JSON. Changing the shape of these
/// records breaks stored keys: add a field with a default, or bump this and migrate.
pub const RECORD_FORMAT: u32 = 1;

/// The lifecycle state of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    /// Usable for cryptographic operations.
    Enabled,
    /// Refuses cryptographic operations until enabled again.
    Disabled,
    /// Scheduled for deletion; refuses everything but cancellation and reads.
    PendingDeletion,
}

impl KeyState {
    /// The name the AWS API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

/// Who manages a key: the customer, or AWS on behalf of a service (`alias/aws/s3`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyManager {
    /// Created by CreateKey or seeding.
    Customer,
    /// Created on first use by a service.
    Aws,
}

/// How a key version came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RotationType {
    /// The rotation period passed.
    Automatic,
    /// RotateKeyOnDemand.
    OnDemand,
}

impl RotationType {
    /// The name the AWS API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RotationType::Automatic => "AUTOMATIC",
            RotationType::OnDemand => "ON_DEMAND",
        }
    }
}

/// One generation of a key's material. Version 0 is the original; each rotation adds one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyVersion {
    /// When this material was created.
    pub created: i64,
    /// `None` for the original material.
    pub rotation_type: Option<RotationType>,
    /// The material encrypted under the master key (see `material::wrap`), hex.
    pub wrapped_material: String,
}

/// Automatic rotation settings and on-demand rotation count.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rotation {
    /// Whether automatic rotation is on.
    pub enabled: bool,
    /// Days between automatic rotations.
    pub period_days: u32,
    /// When the next automatic rotation happens, while enabled.
    pub next_rotation: Option<i64>,
    /// How many on-demand rotations the key had (AWS allows 10).
    pub on_demand_count: u32,
}

/// A tag on a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// 1–128 characters, not starting with `aws:`.
    pub key: String,
    /// 0–256 characters.
    pub value: String,
}

/// What a grant lets its grantee do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum GrantOperation {
    /// kms:Decrypt
    Decrypt,
    /// kms:Encrypt
    Encrypt,
    /// kms:GenerateDataKey
    GenerateDataKey,
    /// kms:GenerateDataKeyWithoutPlaintext
    GenerateDataKeyWithoutPlaintext,
    /// kms:ReEncryptFrom
    ReEncryptFrom,
    /// kms:ReEncryptTo
    ReEncryptTo,
    /// kms:CreateGrant
    CreateGrant,
    /// kms:RetireGrant
    RetireGrant,
    /// kms:DescribeKey
    DescribeKey,
}

impl GrantOperation {
    /// Every operation a grant on a symmetric encryption key may name.
    pub const ALL: [GrantOperation; 9] = [
        GrantOperation::Decrypt,
        GrantOperation::Encrypt,
        GrantOperation::GenerateDataKey,
        GrantOperation::GenerateDataKeyWithoutPlaintext,
        GrantOperation::ReEncryptFrom,
        GrantOperation::ReEncryptTo,
        GrantOperation::CreateGrant,
        GrantOperation::RetireGrant,
        GrantOperation::DescribeKey,
    ];

    /// The name the AWS API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantOperation::Decrypt => "Decrypt",
            GrantOperation::Encrypt => "Encrypt",
            GrantOperation::GenerateDataKey => "GenerateDataKey",
            GrantOperation::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            GrantOperation::ReEncryptFrom => "ReEncryptFrom",
            GrantOperation::ReEncryptTo => "ReEncryptTo",
            GrantOperation::CreateGrant => "CreateGrant",
            GrantOperation::RetireGrant => "RetireGrant",
            GrantOperation::DescribeKey => "DescribeKey",
        }
    }

    /// Parses an AWS operation name; `None` for names a symmetric key's grant cannot hold.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// Whether this operation takes an encryption context (so grant constraints apply to it).
    pub fn uses_context(self) -> bool {
        !matches!(self, GrantOperation::CreateGrant | GrantOperation::RetireGrant | GrantOperation::DescribeKey)
    }
}

/// Conditions on the encryption context under which a grant applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantConstraints {
    /// The request's context must equal this exactly.
    pub encryption_context_equals: Option<EncryptionContext>,
    /// The request's context must contain all these pairs.
    pub encryption_context_subset: Option<EncryptionContext>,
}

impl GrantConstraints {
    /// Whether a request with `context` satisfies the constraints.
    pub fn allow(&self, context: &EncryptionContext) -> bool {
        let equals = self.encryption_context_equals.as_ref().is_none_or(|eq| eq == context);
        let subset = self
            .encryption_context_subset
            .as_ref()
            .is_none_or(|sub| sub.iter().all(|(k, v)| context.get(k) == Some(v)));
        equals && subset
    }
}

/// A grant: permission for a principal (of any account) to use a key for some operations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    /// 64 hex characters.
    pub grant_id: String,
    /// The tokens CreateGrant returned (a repeated named CreateGrant adds one); each is accepted
    /// in `GrantTokens` and by RetireGrant, interchangeably.
    pub grant_tokens: Vec<String>,
    /// Optional name; CreateGrant with the same name and parameters is idempotent.
    pub name: Option<String>,
    /// The principal the grant is for.
    pub grantee_principal: String,
    /// The principal that may retire the grant, if any.
    pub retiring_principal: Option<String>,
    /// The operations granted.
    pub operations: Vec<GrantOperation>,
    /// Encryption context conditions.
    pub constraints: Option<GrantConstraints>,
    /// The account that created the grant.
    pub issuing_account: String,
    /// When the grant was created.
    pub created: i64,
}

/// A key, as persisted. The plaintext material is never part of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    /// [`RECORD_FORMAT`] at the time of writing.
    pub format: u32,
    /// The key id (a UUID, or the fixed id of a seeded key); unique across accounts.
    pub id: String,
    /// Owning account.
    pub account: String,
    /// Region the key lives in.
    pub region: String,
    /// Free text, 0–8192 characters.
    pub description: String,
    /// Creation time.
    pub created: i64,
    /// Lifecycle state.
    pub state: KeyState,
    /// When a key pending deletion is purged.
    pub deletion_date: Option<i64>,
    /// Customer or AWS managed.
    pub manager: KeyManager,
    /// The key policy document, stored and returned (not evaluated).
    pub policy: Option<String>,
    /// Tags, in insertion order.
    pub tags: Vec<Tag>,
    /// Rotation settings.
    pub rotation: Rotation,
    /// Material generations; the last one encrypts.
    pub versions: Vec<KeyVersion>,
    /// Grants on this key.
    pub grants: Vec<Grant>,
}

impl KeyRecord {
    /// `arn:aws:kms:<region>:<account>:key/<id>`.
    pub fn arn(&self) -> String {
        key_arn(&self.region, &self.account, &self.id)
    }

    /// The version new encryptions use.
    pub fn current_version(&self) -> u32 {
        (self.versions.len() as u32).saturating_sub(1)
    }
}

/// A key ARN.
pub fn key_arn(region: &str, account: &str, id: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{id}")
}

/// An alias, as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AliasRecord {
    /// [`RECORD_FORMAT`] at the time of writing.
    pub format: u32,
    /// `alias/...`
    pub name: String,
    /// Owning account.
    pub account: String,
    /// Region.
    pub region: String,
    /// The key it points to.
    pub target_key_id: String,
    /// Creation time.
    pub created: i64,
    /// Last UpdateAlias.
    pub updated: i64,
}

impl AliasRecord {
    /// A new alias `name` of `account` in `region` for the key `target_key_id`, created at `now`.
    pub fn new(name: &str, account: &str, region: &str, target_key_id: &str, now: i64) -> Self {
        AliasRecord {
            format: RECORD_FORMAT,
            name: name.to_owned(),
            account: account.to_owned(),
            region: region.to_owned(),
            target_key_id: target_key_id.to_owned(),
            created: now,
            updated: now,
        }
    }

    /// `arn:aws:kms:<region>:<account>:alias/<name>`.
    pub fn arn(&self) -> String {
        format!("arn:aws:kms:{}:{}:{}", self.region, self.account, self.name)
    }

    /// The store key of this alias.
    pub fn store_key(&self) -> String {
        alias_store_key(&self.account, &self.region, &self.name)
    }
}

/// The store key of an alias: `<account>/<region>/<alias name>`.
pub fn alias_store_key(account: &str, region: &str, name: &str) -> String {
    format!("{account}/{region}/{name}")
}

/// How a request names a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef<'a> {
    /// A bare key id, in the caller's account and region.
    Id(&'a str),
    /// A key ARN.
    KeyArn {
        /// Region of the ARN.
        region: &'a str,
        /// Account of the ARN.
        account: &'a str,
        /// Key id.
        id: &'a str,
    },
    /// `alias/...`, in the caller's account and region.
    Alias(&'a str),
    /// An alias ARN.
    AliasArn {
        /// Region of the ARN.
        region: &'a str,
        /// Account of the ARN.
        account: &'a str,
        /// `alias/...`
        name: &'a str,
    },
}

impl<'a> KeyRef<'a> {
    /// Parses any of the four forms. Malformed ARNs are refused as NotFound, as AWS does.
    pub fn parse(text: &'a str) -> Result<Self> {
        if text.is_empty() || text.len() > 2048 {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value '{text}' at 'keyId' failed to satisfy constraint: Member must have length between 1 and 2048"
            )));
        }
        if let Some(rest) = text.strip_prefix("arn:") {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            if parts.len() != 5 || !parts[0].starts_with("aws") || parts[1] != "kms" || parts[2].is_empty() {
                return Err(Error::NotFound(format!("Invalid arn {text}")));
            }
            let (region, account, resource) = (parts[2], parts[3], parts[4]);
            if let Some(id) = resource.strip_prefix("key/").filter(|id| !id.is_empty()) {
                return Ok(KeyRef::KeyArn { region, account, id });
            }
            if resource.starts_with("alias/") {
                return Ok(KeyRef::AliasArn { region, account, name: resource });
            }
            return Err(Error::NotFound(format!("Invalid arn {text}")));
        }
        if text.starts_with("alias/") {
            return Ok(KeyRef::Alias(text));
        }
        Ok(KeyRef::Id(text))
    }

    /// Whether the reference goes through an alias.
    pub fn is_alias(&self) -> bool {
        matches!(self, KeyRef::Alias(_) | KeyRef::AliasArn { .. })
    }
}
