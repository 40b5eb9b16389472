//! The KMS core's typed error. Each front end maps it to its wire dialect in one place
//! (`aws::error_response` for the AWS JSON API).

/// Result of the KMS core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a KMS operation can refuse. Variants follow the AWS KMS exceptions, whose names the
/// AWS front end sends as `__type`; the message is the one sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key, alias or grant does not exist (in the caller's account and region).
    #[error("{0}")]
    NotFound(String),
    /// The key is disabled.
    #[error("{0}")]
    Disabled(String),
    /// The key's state does not allow the operation (pending deletion, ...).
    #[error("{0}")]
    InvalidState(String),
    /// The ciphertext is malformed, tampered with, or its encryption context does not match.
    #[error("{0}")]
    InvalidCiphertext(String),
    /// Verify found the signature invalid (AWS sends an empty message).
    #[error("{0}")]
    InvalidSignature(String),
    /// VerifyMac found the MAC invalid (AWS sends an empty message).
    #[error("{0}")]
    InvalidMac(String),
    /// The import token is unknown or belongs to another key.
    #[error("{0}")]
    InvalidImportToken(String),
    /// The import token is older than 24 hours.
    #[error("{0}")]
    ExpiredImportToken(String),
    /// The imported material is not of the key's kind, or not the material imported before.
    #[error("{0}")]
    IncorrectKeyMaterial(String),
    /// The key named in the request is not the key that encrypted the ciphertext.
    #[error("{0}")]
    IncorrectKey(String),
    /// The key or algorithm cannot be used this way.
    #[error("{0}")]
    InvalidKeyUsage(String),
    /// A parameter is missing or out of range; the message names it.
    #[error("{0}")]
    Validation(String),
    /// The alias (or grant name) already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The alias name is malformed or reserved.
    #[error("{0}")]
    InvalidAliasName(String),
    /// The ARN is malformed.
    #[error("{0}")]
    InvalidArn(String),
    /// A per-key or per-account limit is reached.
    #[error("{0}")]
    LimitExceeded(String),
    /// The key policy is not a valid policy document.
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// A tag is malformed or reserved.
    #[error("{0}")]
    Tag(String),
    /// kmsim does not simulate this (custom key stores, ...), or the key cannot do it (rotation of an RSA key).
    #[error("{0}")]
    UnsupportedOperation(String),
    /// A grant token is malformed or unknown.
    #[error("{0}")]
    InvalidGrantToken(String),
    /// A grant id is malformed or unknown.
    #[error("{0}")]
    InvalidGrantId(String),
    /// The pagination marker is not one kmsim issued.
    #[error("{0}")]
    InvalidMarker(String),
    /// The caller may not use the key (another account's key without a grant, ...).
    #[error("{0}")]
    AccessDenied(String),
    /// The operation would have succeeded, but `DryRun` was set.
    #[error("The request would have succeeded, but the DryRun option is set.")]
    DryRun,
    /// Storage or another internal failure; logged where it happens, sent as a generic error.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Error::Internal(format!("key store: {e}"))
    }
}

macro_rules! redb_errors {
    ($($ty:ty),*) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::from(redb::Error::from(e))
            }
        }
    )*};
}
redb_errors!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);
