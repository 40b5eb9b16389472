//! The `KeyService` trait: how the object and volume services reach the KMS.
//!
//! OBS and EVS hold an `Arc<dyn KeyService>` and never the KMS crate itself: in-process by default
//! (`kms::InProcessKeyService`), over HTTP to a remote KMS later, or a faulty or slow one in
//! tests. A service always calls on behalf of a customer: the [`Caller`] it passes is the
//! customer's, with `via_service` naming the service, and the KMS applies the customer's key
//! states and grants and records the call as made via that service.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use zeroize::Zeroizing;

use crate::caller::Caller;

/// A boxed, sendable future (the trait is used as a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An encryption context: string keys to string values, compared exactly.
pub type EncryptionContext = BTreeMap<String, String>;

/// A fresh 256-bit data key.
#[derive(Debug)]
pub struct DataKey {
    /// The plaintext key; zeroized on drop.
    pub plaintext: Zeroizing<[u8; 32]>,
    /// The key encrypted under the KMS key (a KMS ciphertext blob).
    pub ciphertext_blob: Vec<u8>,
    /// ARN of the KMS key that encrypted it.
    pub key_arn: String,
}

/// Why the KMS refused a service's call. The services map these to their own wire errors
/// (S3 sends `KMS.DisabledException`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyServiceError {
    /// The key is disabled.
    #[error("{0}")]
    Disabled(String),
    /// The key's state forbids the call (pending deletion).
    #[error("{0}")]
    InvalidState(String),
    /// No such key (or alias) for this caller.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not use the key.
    #[error("{0}")]
    AccessDenied(String),
    /// The ciphertext blob is invalid or its context does not match.
    #[error("{0}")]
    InvalidCiphertext(String),
    /// The KMS could not be reached or failed internally; the service fails closed.
    #[error("{0}")]
    Unavailable(String),
    /// Any other refusal, with the KMS's error code.
    #[error("{code}: {message}")]
    Rejected {
        /// The KMS error code, e.g. `ValidationException`.
        code: String,
        /// Its message.
        message: String,
    },
}

impl KeyServiceError {
    /// What a KMS answering `code` with `message` means to a storage service: the typed variant where there is
    /// one, so that an injected `KMSInvalidStateException` reaches an S3 or EVS caller exactly as a key pending
    /// deletion would, and [`KeyServiceError::Rejected`] for the rest.
    pub fn from_code(code: &str, message: String) -> Self {
        match code {
            "DisabledException" => KeyServiceError::Disabled(message),
            "KMSInvalidStateException" => KeyServiceError::InvalidState(message),
            "NotFoundException" => KeyServiceError::NotFound(message),
            "AccessDeniedException" => KeyServiceError::AccessDenied(message),
            "InvalidCiphertextException" => KeyServiceError::InvalidCiphertext(message),
            _ => KeyServiceError::Rejected { code: code.to_owned(), message },
        }
    }

    /// The AWS KMS error code (`DisabledException`, ...).
    pub fn code(&self) -> &str {
        match self {
            KeyServiceError::Disabled(_) => "DisabledException",
            KeyServiceError::InvalidState(_) => "KMSInvalidStateException",
            KeyServiceError::NotFound(_) => "NotFoundException",
            KeyServiceError::AccessDenied(_) => "AccessDeniedException",
            KeyServiceError::InvalidCiphertext(_) => "InvalidCiphertextException",
            KeyServiceError::Unavailable(_) => "KMSInternalException",
            KeyServiceError::Rejected { code, .. } => code,
        }
    }
}

/// The KMS as the storage services see it.
pub trait KeyService: Send + Sync + std::fmt::Debug {
    /// A fresh 256-bit data key under `key_id` (id, ARN, alias or alias ARN), bound to `context`.
    fn generate_data_key<'a>(
        &'a self,
        caller: &'a Caller,
        key_id: &'a str,
        context: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<DataKey, KeyServiceError>>;

    /// Decrypts a data key made by [`KeyService::generate_data_key`] under the same `context`.
    fn decrypt<'a>(
        &'a self,
        caller: &'a Caller,
        ciphertext_blob: &'a [u8],
        context: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<Zeroizing<Vec<u8>>, KeyServiceError>>;

    /// The ARN of the caller's service-managed key behind `alias` (e.g. `alias/aws/s3`), created
    /// on first use.
    fn service_managed_key<'a>(
        &'a self,
        caller: &'a Caller,
        alias: &'a str,
    ) -> BoxFuture<'a, Result<String, KeyServiceError>>;

    /// Lets the service principal `grantee` generate and decrypt data keys under the caller's key `key_id` (and
    /// describe it) through a grant named `name`: created the first time, found afterwards — what an OTC project's
    /// agency for a cloud service amounts to. Returns the key's ARN, by which the service then names the key.
    fn grant_service_access<'a>(
        &'a self,
        caller: &'a Caller,
        key_id: &'a str,
        grantee: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<String, KeyServiceError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_read_back_is_the_code_given() {
        for code in [
            "DisabledException",
            "KMSInvalidStateException",
            "NotFoundException",
            "AccessDeniedException",
            "InvalidCiphertextException",
            "ThrottlingException",
            "KMSInternalException",
        ] {
            assert_eq!(KeyServiceError::from_code(code, "m".into()).code(), code);
        }
        assert!(matches!(
            KeyServiceError::from_code("KMSInvalidStateException", "m".into()),
            KeyServiceError::InvalidState(_)
        ));
    }
}
