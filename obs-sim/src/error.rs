//! The object store's typed error, with the S3 code and HTTP status of each variant. The S3 front
//! end turns it into the XML `<Error>` body in one place (`http::error_response`).

use http::StatusCode;
use shared::key_service::KeyServiceError;

/// Result of the object store.
pub type Result<T, E = S3Error> = std::result::Result<T, E>;

/// An S3 error: code, message, and what resource it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    /// The S3 error code, e.g. `NoSuchKey`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// HTTP status.
    pub status: StatusCode,
    /// Extra XML elements (`<BucketName>`, `<Key>`, ...), already escaped.
    pub extra: Vec<(&'static str, String)>,
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for S3Error {}

impl S3Error {
    /// An error with a code, status and message.
    pub fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        S3Error { code, message: message.into(), status, extra: Vec::new() }
    }

    /// Adds an extra element to the error body.
    pub fn with(mut self, element: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((element, value.into()));
        self
    }

    /// The bucket does not exist.
    pub fn no_such_bucket(bucket: &str) -> Self {
        Self::new("NoSuchBucket", StatusCode::NOT_FOUND, "The specified bucket does not exist")
            .with("BucketName", bucket)
    }

    /// The key does not exist.
    pub fn no_such_key(key: &str) -> Self {
        Self::new("NoSuchKey", StatusCode::NOT_FOUND, "The specified key does not exist.").with("Key", key)
    }

    /// A request argument is invalid.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new("InvalidArgument", StatusCode::BAD_REQUEST, message)
    }

    /// The XML body is malformed.
    pub fn malformed_xml() -> Self {
        Self::new(
            "MalformedXML",
            StatusCode::BAD_REQUEST,
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    }

    /// The operation is not built.
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            "NotImplemented",
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "A header you provided implies functionality that is not implemented: {what} (see docs/api-coverage.md)"
            ),
        )
    }

    /// The signature (of the request or of a chunk) does not verify.
    pub fn signature_does_not_match() -> Self {
        Self::new(
            "SignatureDoesNotMatch",
            StatusCode::FORBIDDEN,
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        )
    }

    /// The body does not hash to the signed `x-amz-content-sha256`.
    pub fn content_sha256_mismatch() -> Self {
        Self::new(
            "XAmzContentSHA256Mismatch",
            StatusCode::BAD_REQUEST,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    }

    /// Access is denied.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new("AccessDenied", StatusCode::FORBIDDEN, message)
    }

    /// Something failed inside kmsim; the details are logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error in the object store");
        Self::new(
            "InternalError",
            StatusCode::INTERNAL_SERVER_ERROR,
            "We encountered an internal error. Please try again.",
        )
    }

    /// How S3 reports a refusal of the KMS: `KMS.DisabledException` and friends with 400, and
    /// AccessDenied (403) when the caller may not use the key.
    pub fn from_kms(error: KeyServiceError) -> Self {
        match &error {
            KeyServiceError::Disabled(m) => Self::new("KMS.DisabledException", StatusCode::BAD_REQUEST, m.clone()),
            KeyServiceError::InvalidState(m) => {
                Self::new("KMS.KMSInvalidStateException", StatusCode::BAD_REQUEST, m.clone())
            }
            KeyServiceError::NotFound(m) => Self::new("KMS.NotFoundException", StatusCode::BAD_REQUEST, m.clone()),
            KeyServiceError::AccessDenied(m) => Self::access_denied(m.clone()),
            KeyServiceError::InvalidCiphertext(m) => {
                Self::new("KMS.InvalidCiphertextException", StatusCode::BAD_REQUEST, m.clone())
            }
            KeyServiceError::Unavailable(m) => {
                Self::new("KMS.KMSInternalException", StatusCode::INTERNAL_SERVER_ERROR, m.clone())
            }
            KeyServiceError::Rejected { message, .. } => {
                Self::new("KMS.ValidationException", StatusCode::BAD_REQUEST, message.clone())
            }
        }
    }
}

impl From<object_store::Error> for S3Error {
    fn from(e: object_store::Error) -> Self {
        S3Error::internal(format!("object store: {e}"))
    }
}

/// Why the object store's persistence could not be opened or reset. Said in plain words, naming
/// the place: these are the operator's errors, never a client's, so they never go through
/// [`S3Error`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory of a local store could not be created.
    #[error("cannot create the object store directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The remote store's URL is not `s3://bucket[/prefix]`.
    #[error("the object store URL {url} is not of the form s3://bucket[/prefix]")]
    BadUrl {
        /// The URL as configured.
        url: String,
    },
    /// A remote store option is unknown or has a bad value.
    #[error("object store option {key}: {reason}")]
    BadOption {
        /// The option name.
        key: String,
        /// Why it was refused.
        reason: String,
    },
    /// The backend could not be set up.
    #[error("cannot open the object store at {location}: {source}")]
    Backend {
        /// Where the store is.
        location: String,
        /// Why.
        source: object_store::Error,
    },
    /// Listing, reading, moving or deleting a path of the store failed.
    #[error("cannot {action} {path} in the object store at {location}: {reason}")]
    Io {
        /// What was being done (`list`, `read`, `set aside`, `delete`, `fsync`).
        action: &'static str,
        /// The path within the store.
        path: String,
        /// Where the store is.
        location: String,
        /// Why.
        reason: String,
    },
}
