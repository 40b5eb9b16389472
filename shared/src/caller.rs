//! Who is calling: the [`Caller`] of a request (account, region, access key, principal), the account and
//! project ids of the two dialects, and the defaults every setup has.

use sha2::{Digest, Sha256};

/// The account every default setup has, as in other local AWS emulators.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
/// The region used when nothing else names one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The Open Telekom Cloud / Huawei Cloud domain id (the account, in that cloud's terms) of the default account.
pub const DEFAULT_DOMAIN_ID: &str = "00000000000000000000000000000000";
/// The project id of the default account: what the OTC dialect's paths (`/v1.0/{project_id}/kms/...`) carry.
pub const DEFAULT_PROJECT_ID: &str = "00000000000000000000000000000000";

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
    /// Where the request came from (`aws:SourceIp`, `aws:SecureTransport`); `None` for a call made in-process,
    /// including a service's call on the caller's behalf.
    pub peer: Option<crate::Peer>,
    /// The access decisions made for the request so far, for its audit entry.
    pub decisions: crate::identity::Decisions,
}

impl Caller {
    /// The root principal of the caller's account.
    pub fn account_root(&self) -> String {
        root_principal(&self.account_id)
    }
}
