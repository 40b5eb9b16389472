//! [`Error`]: why the identity store refused a request, in IAM's and STS's terms. The front end maps each
//! variant to its wire code and status in one place (the front end's `wire_error`).

/// Why a request to the identity store failed. Messages are AWS's, as clients show them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `NoSuchEntity` (404): a user, role, policy or access key that does not exist.
    #[error("{0}")]
    NoSuchEntity(String),
    /// `EntityAlreadyExists` (409): a name already taken in the account (names ignore case).
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// `MalformedPolicyDocument` (400): a policy the grammar refuses, with IAM's message.
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// `LimitExceeded` (409): a quota (users, roles, policies, access keys, attachments, policy size).
    #[error("{0}")]
    LimitExceeded(String),
    /// `DeleteConflict` (409): an entity that still has access keys, policies or attachments.
    #[error("{0}")]
    DeleteConflict(String),
    /// `ValidationError` (400): a parameter that breaks its constraint, or a missing one.
    #[error("{0}")]
    Validation(String),
    /// `InvalidInput` (400): a parameter that is well-formed but not acceptable (a malformed ARN, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// `AccessDenied` (403): no policy allows the call, or a trust policy does not let the caller in.
    #[error("{0}")]
    AccessDenied(String),
    /// `PackedPolicyTooLarge` (400): session policies or tags beyond what a session carries.
    #[error("{0}")]
    PackedPolicyTooLarge(String),
    /// `Throttling` (400): kmsim's own bound on live role sessions of an account was reached.
    #[error("{0}")]
    Throttling(String),
    /// Something failed inside kmsim (the store): logged once by the front end, answered generically.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Results of the identity store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Error::Internal(format!("identity store: {e}"))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Internal(format!("identity store: {e}"))
            }
        }
    )*};
}

from_redb!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);
