//! The S3 error codes kmsim answers, each with its HTTP status ([`S3ErrorCode`]), and the wire
//! error made of a code, a message and extra elements ([`S3Error`]), which the front end writes as
//! the XML `<Error>` body in one place (`http::error_response`).

use http::StatusCode;
use shared::key_service::KeyServiceError;

use crate::error::Error;

/// An S3 error code, as the `<Code>` element of an error document names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S3ErrorCode {
    /// 403: the caller may not do this (or a signature refusal S3 reports so).
    AccessDenied,
    /// 400: an ACL for a bucket whose ownership setting disables ACLs.
    AccessControlListNotSupported,
    /// 400: ACLs disabled for a bucket whose ACL grants others, or a new bucket with ACLs disabled
    /// and an ACL that grants others.
    InvalidBucketAclWithObjectOwnership,
    /// 400: an ACL document that is not one.
    MalformedACLError,
    /// 400: PutBucketAcl / PutObjectAcl naming no ACL at all.
    MissingSecurityHeader,
    /// 404: the bucket has no ownership controls.
    OwnershipControlsNotFoundError,
    /// 404: the bucket has no Block Public Access configuration.
    NoSuchPublicAccessBlockConfiguration,
    /// 404: the bucket has no policy.
    NoSuchBucketPolicy,
    /// 400: a bucket policy that is not one.
    MalformedPolicy,
    /// 400: an ACL in headers and in the body at once.
    UnexpectedContent,
    /// 403: a CORS preflight that the bucket's rules do not allow.
    AccessForbidden,
    /// 400: the `Authorization` header (or its scope) is malformed.
    AuthorizationHeaderMalformed,
    /// 400: the authentication parameters of a presigned SigV4 URL are malformed.
    AuthorizationQueryParametersError,
    /// 400: a digest of the body does not match the one sent.
    BadDigest,
    /// 400: a CORS preflight without an `Origin`.
    BadRequest,
    /// 409: another account owns the bucket name.
    BucketAlreadyExists,
    /// 409: a conditional write lost to a concurrent write or delete of the key.
    ConditionalRequestConflict,
    /// 409: the caller already owns the bucket.
    BucketAlreadyOwnedByYou,
    /// 409: the bucket still holds objects or uploads.
    BucketNotEmpty,
    /// 400: a form upload's file is above its policy's `content-length-range`.
    EntityTooLarge,
    /// 400: a part other than the last is below the minimum size (or a form upload's file below its
    /// policy's range).
    EntityTooSmall,
    /// 400: fewer bytes arrived than announced.
    IncompleteBody,
    /// 500: something failed inside kmsim.
    InternalError,
    /// 403: the access key is unknown.
    InvalidAccessKeyId,
    /// 400: the session token does not belong to the access key (or a long-term key sent one).
    InvalidToken,
    /// 400: the session token's credentials have expired.
    ExpiredToken,
    /// 400: a request argument is invalid.
    InvalidArgument,
    /// 400: a tag breaks S3's limits.
    InvalidTag,
    /// 400: the bucket name breaks S3's naming rules.
    InvalidBucketName,
    /// 400: `Content-MD5` is not a base64 MD5.
    InvalidDigest,
    /// 400: a part of a CompleteMultipartUpload is missing or has another ETag.
    InvalidPart,
    /// 416: a read names a part beyond the object's last.
    InvalidPartNumber,
    /// 400: the parts of a CompleteMultipartUpload are not in ascending order.
    InvalidPartOrder,
    /// 416: the range starts beyond the object.
    InvalidRange,
    /// 400: the request is invalid as a whole.
    InvalidRequest,
    /// 400: S3 (or OBS) has no such storage class.
    InvalidStorageClass,
    /// 400: the object key is longer than 1024 bytes.
    KeyTooLongError,
    /// 400: the XML body is malformed.
    MalformedXML,
    /// 400: a form upload's body is not `multipart/form-data`.
    MalformedPOSTRequest,
    /// 400: the fields before a form upload's file exceed 20 KB.
    MaxPostPreDataLengthExceeded,
    /// 400: a form upload's policy is not a policy document.
    InvalidPolicyDocument,
    /// 400: the request body is too large.
    MaxMessageLengthExceeded,
    /// 400: user metadata above the limit.
    MetadataTooLarge,
    /// 405: the method does not apply to the resource.
    MethodNotAllowed,
    /// 411: an aws-chunked body without its decoded length.
    MissingContentLength,
    /// 404: the bucket does not exist.
    NoSuchBucket,
    /// 404: the bucket has no CORS configuration.
    NoSuchCORSConfiguration,
    /// 404: the bucket has no tags.
    NoSuchTagSet,
    /// 404: the key does not exist.
    NoSuchKey,
    /// 404: the multipart upload does not exist.
    NoSuchUpload,
    /// 404: the version does not exist.
    NoSuchVersion,
    /// 501: the operation is not built.
    NotImplemented,
    /// 412: a precondition (`If-Match`, ...) does not hold.
    PreconditionFailed,
    /// 400: the header section is above 8 KB.
    RequestHeaderSectionTooLarge,
    /// 403: the request time is too far from the server's.
    RequestTimeTooSkewed,
    /// 404: the bucket has no default encryption.
    ServerSideEncryptionConfigurationNotFoundError,
    /// 403: the signature does not verify.
    SignatureDoesNotMatch,
    /// 400: the body does not hash to the signed `x-amz-content-sha256`.
    XAmzContentSHA256Mismatch,
    /// 400: the KMS key is disabled.
    KmsDisabled,
    /// 400: the KMS key is in a state that forbids the use (pending deletion).
    KmsInvalidState,
    /// 400: the KMS key does not exist.
    KmsNotFound,
    /// 400: the KMS refused the stored data key.
    KmsInvalidCiphertext,
    /// 500: the KMS failed or could not be reached.
    KmsInternal,
    /// 400: the KMS refused a parameter.
    KmsValidation,
    /// 503: too many requests (or too many to the KMS); the client should back off.
    SlowDown,
    /// 503: the service cannot take the request now.
    ServiceUnavailable,
    /// 400: the connection was idle past S3's timeout.
    RequestTimeout,
}

impl S3ErrorCode {
    /// The code as S3 writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            S3ErrorCode::AccessDenied => "AccessDenied",
            S3ErrorCode::AccessControlListNotSupported => "AccessControlListNotSupported",
            S3ErrorCode::InvalidBucketAclWithObjectOwnership => "InvalidBucketAclWithObjectOwnership",
            S3ErrorCode::MalformedACLError => "MalformedACLError",
            S3ErrorCode::MissingSecurityHeader => "MissingSecurityHeader",
            S3ErrorCode::OwnershipControlsNotFoundError => "OwnershipControlsNotFoundError",
            S3ErrorCode::NoSuchPublicAccessBlockConfiguration => "NoSuchPublicAccessBlockConfiguration",
            S3ErrorCode::NoSuchBucketPolicy => "NoSuchBucketPolicy",
            S3ErrorCode::MalformedPolicy => "MalformedPolicy",
            S3ErrorCode::UnexpectedContent => "UnexpectedContent",
            S3ErrorCode::AuthorizationHeaderMalformed => "AuthorizationHeaderMalformed",
            S3ErrorCode::AuthorizationQueryParametersError => "AuthorizationQueryParametersError",
            S3ErrorCode::BadDigest => "BadDigest",
            S3ErrorCode::InvalidPartNumber => "InvalidPartNumber",
            S3ErrorCode::EntityTooLarge => "EntityTooLarge",
            S3ErrorCode::MalformedPOSTRequest => "MalformedPOSTRequest",
            S3ErrorCode::MaxPostPreDataLengthExceeded => "MaxPostPreDataLengthExceeded",
            S3ErrorCode::InvalidPolicyDocument => "InvalidPolicyDocument",
            S3ErrorCode::BadRequest => "BadRequest",
            S3ErrorCode::AccessForbidden => "AccessForbidden",
            S3ErrorCode::NoSuchCORSConfiguration => "NoSuchCORSConfiguration",
            S3ErrorCode::NoSuchTagSet => "NoSuchTagSet",
            S3ErrorCode::InvalidTag => "InvalidTag",
            S3ErrorCode::BucketAlreadyExists => "BucketAlreadyExists",
            S3ErrorCode::ConditionalRequestConflict => "ConditionalRequestConflict",
            S3ErrorCode::BucketAlreadyOwnedByYou => "BucketAlreadyOwnedByYou",
            S3ErrorCode::BucketNotEmpty => "BucketNotEmpty",
            S3ErrorCode::EntityTooSmall => "EntityTooSmall",
            S3ErrorCode::IncompleteBody => "IncompleteBody",
            S3ErrorCode::InternalError => "InternalError",
            S3ErrorCode::InvalidAccessKeyId => "InvalidAccessKeyId",
            S3ErrorCode::InvalidToken => "InvalidToken",
            S3ErrorCode::ExpiredToken => "ExpiredToken",
            S3ErrorCode::InvalidArgument => "InvalidArgument",
            S3ErrorCode::InvalidBucketName => "InvalidBucketName",
            S3ErrorCode::InvalidDigest => "InvalidDigest",
            S3ErrorCode::InvalidPart => "InvalidPart",
            S3ErrorCode::InvalidPartOrder => "InvalidPartOrder",
            S3ErrorCode::InvalidRange => "InvalidRange",
            S3ErrorCode::InvalidRequest => "InvalidRequest",
            S3ErrorCode::InvalidStorageClass => "InvalidStorageClass",
            S3ErrorCode::KeyTooLongError => "KeyTooLongError",
            S3ErrorCode::MalformedXML => "MalformedXML",
            S3ErrorCode::MaxMessageLengthExceeded => "MaxMessageLengthExceeded",
            S3ErrorCode::MetadataTooLarge => "MetadataTooLarge",
            S3ErrorCode::MethodNotAllowed => "MethodNotAllowed",
            S3ErrorCode::MissingContentLength => "MissingContentLength",
            S3ErrorCode::NoSuchBucket => "NoSuchBucket",
            S3ErrorCode::NoSuchKey => "NoSuchKey",
            S3ErrorCode::NoSuchUpload => "NoSuchUpload",
            S3ErrorCode::NoSuchVersion => "NoSuchVersion",
            S3ErrorCode::NotImplemented => "NotImplemented",
            S3ErrorCode::PreconditionFailed => "PreconditionFailed",
            S3ErrorCode::RequestHeaderSectionTooLarge => "RequestHeaderSectionTooLarge",
            S3ErrorCode::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError => {
                "ServerSideEncryptionConfigurationNotFoundError"
            }
            S3ErrorCode::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            S3ErrorCode::XAmzContentSHA256Mismatch => "XAmzContentSHA256Mismatch",
            S3ErrorCode::KmsDisabled => "KMS.DisabledException",
            S3ErrorCode::KmsInvalidState => "KMS.KMSInvalidStateException",
            S3ErrorCode::KmsNotFound => "KMS.NotFoundException",
            S3ErrorCode::KmsInvalidCiphertext => "KMS.InvalidCiphertextException",
            S3ErrorCode::KmsInternal => "KMS.KMSInternalException",
            S3ErrorCode::KmsValidation => "KMS.ValidationException",
            S3ErrorCode::SlowDown => "SlowDown",
            S3ErrorCode::ServiceUnavailable => "ServiceUnavailable",
            S3ErrorCode::RequestTimeout => "RequestTimeout",
        }
    }

    /// The code a fault rule injects by name (`faults::catalog`'s S3 errors).
    pub fn injected(name: &str) -> Option<Self> {
        Some(match name {
            "SlowDown" => S3ErrorCode::SlowDown,
            "InternalError" => S3ErrorCode::InternalError,
            "ServiceUnavailable" => S3ErrorCode::ServiceUnavailable,
            "RequestTimeout" => S3ErrorCode::RequestTimeout,
            "AccessDenied" => S3ErrorCode::AccessDenied,
            _ => return None,
        })
    }

    /// The HTTP status S3 answers the code with.
    pub fn status(self) -> StatusCode {
        match self {
            S3ErrorCode::AccessDenied
            | S3ErrorCode::AccessForbidden
            | S3ErrorCode::InvalidAccessKeyId
            | S3ErrorCode::RequestTimeTooSkewed
            | S3ErrorCode::SignatureDoesNotMatch => StatusCode::FORBIDDEN,
            S3ErrorCode::BucketAlreadyExists
            | S3ErrorCode::BucketAlreadyOwnedByYou
            | S3ErrorCode::BucketNotEmpty
            | S3ErrorCode::ConditionalRequestConflict => StatusCode::CONFLICT,
            S3ErrorCode::InternalError | S3ErrorCode::KmsInternal => StatusCode::INTERNAL_SERVER_ERROR,
            S3ErrorCode::SlowDown | S3ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            S3ErrorCode::NoSuchBucket
            | S3ErrorCode::OwnershipControlsNotFoundError
            | S3ErrorCode::NoSuchPublicAccessBlockConfiguration
            | S3ErrorCode::NoSuchBucketPolicy
            | S3ErrorCode::NoSuchCORSConfiguration
            | S3ErrorCode::NoSuchTagSet
            | S3ErrorCode::NoSuchKey
            | S3ErrorCode::NoSuchUpload
            | S3ErrorCode::NoSuchVersion
            | S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError => StatusCode::NOT_FOUND,
            S3ErrorCode::InvalidRange | S3ErrorCode::InvalidPartNumber => StatusCode::RANGE_NOT_SATISFIABLE,
            S3ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            S3ErrorCode::MissingContentLength => StatusCode::LENGTH_REQUIRED,
            S3ErrorCode::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            S3ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            S3ErrorCode::AuthorizationHeaderMalformed
            | S3ErrorCode::AuthorizationQueryParametersError
            | S3ErrorCode::AccessControlListNotSupported
            | S3ErrorCode::InvalidBucketAclWithObjectOwnership
            | S3ErrorCode::MalformedACLError
            | S3ErrorCode::MalformedPolicy
            | S3ErrorCode::MissingSecurityHeader
            | S3ErrorCode::UnexpectedContent
            | S3ErrorCode::InvalidToken
            | S3ErrorCode::ExpiredToken
            | S3ErrorCode::BadDigest
            | S3ErrorCode::BadRequest
            | S3ErrorCode::EntityTooLarge
            | S3ErrorCode::MalformedPOSTRequest
            | S3ErrorCode::MaxPostPreDataLengthExceeded
            | S3ErrorCode::InvalidPolicyDocument
            | S3ErrorCode::EntityTooSmall
            | S3ErrorCode::IncompleteBody
            | S3ErrorCode::InvalidArgument
            | S3ErrorCode::InvalidTag
            | S3ErrorCode::InvalidBucketName
            | S3ErrorCode::InvalidDigest
            | S3ErrorCode::InvalidPart
            | S3ErrorCode::InvalidPartOrder
            | S3ErrorCode::InvalidRequest
            | S3ErrorCode::InvalidStorageClass
            | S3ErrorCode::KeyTooLongError
            | S3ErrorCode::MalformedXML
            | S3ErrorCode::MaxMessageLengthExceeded
            | S3ErrorCode::MetadataTooLarge
            | S3ErrorCode::RequestHeaderSectionTooLarge
            | S3ErrorCode::XAmzContentSHA256Mismatch
            | S3ErrorCode::KmsDisabled
            | S3ErrorCode::KmsInvalidState
            | S3ErrorCode::KmsNotFound
            | S3ErrorCode::KmsInvalidCiphertext
            | S3ErrorCode::KmsValidation
            | S3ErrorCode::RequestTimeout => StatusCode::BAD_REQUEST,
        }
    }
}

impl PartialEq<&str> for S3ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for S3ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result of the S3 front end.
pub type Result<T, E = S3Error> = std::result::Result<T, E>;

/// An S3 error: code, message, and what resource it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    /// The S3 error code, e.g. `NoSuchKey`, which says the HTTP status.
    pub code: S3ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// Extra XML elements (`<BucketName>`, `<Key>`, ...), already escaped.
    pub extra: Vec<(&'static str, String)>,
    /// For an InternalError: what failed, which the front end logs once with the request id; never
    /// sent.
    pub internal_detail: Option<String>,
    /// Response headers of the error (`x-amz-delete-marker`, ...).
    pub headers: Vec<(&'static str, String)>,
    /// The header family to answer in when the request's headers do not say it (a form upload's
    /// is in its fields).
    pub family: Option<crate::dialect::Family>,
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for S3Error {}

impl S3Error {
    /// An error with a code and message.
    pub fn new(code: S3ErrorCode, message: impl Into<String>) -> Self {
        S3Error {
            code,
            message: message.into(),
            extra: Vec::new(),
            internal_detail: None,
            headers: Vec::new(),
            family: None,
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// Adds an extra element to the error body.
    pub fn with(mut self, element: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((element, value.into()));
        self
    }

    /// The error, answered in `family`'s headers.
    pub fn in_family(mut self, family: crate::dialect::Family) -> Self {
        self.family = Some(family);
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The bucket does not exist.
    pub fn no_such_bucket(bucket: &str) -> Self {
        Self::new(S3ErrorCode::NoSuchBucket, "The specified bucket does not exist").with("BucketName", bucket)
    }

    /// The key does not exist.
    pub fn no_such_key(key: &str) -> Self {
        Self::new(S3ErrorCode::NoSuchKey, "The specified key does not exist.").with("Key", key)
    }

    /// A request argument is invalid.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(S3ErrorCode::InvalidArgument, message)
    }

    /// The XML body is malformed.
    pub fn malformed_xml() -> Self {
        Self::new(
            S3ErrorCode::MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    }

    /// The operation is not built.
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            S3ErrorCode::NotImplemented,
            format!(
                "A header you provided implies functionality that is not implemented: {what} (see docs/api-coverage.md)"
            ),
        )
    }

    /// The signature (of the request or of a chunk) does not verify.
    pub fn signature_does_not_match() -> Self {
        Self::new(
            S3ErrorCode::SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        )
    }

    /// The body does not hash to the signed `x-amz-content-sha256`.
    pub fn content_sha256_mismatch() -> Self {
        Self::new(
            S3ErrorCode::XAmzContentSHA256Mismatch,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    }

    /// Access is denied.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(S3ErrorCode::AccessDenied, message)
    }

    /// Something failed inside kmsim; the details are logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let mut error = Self::new(S3ErrorCode::InternalError, "We encountered an internal error. Please try again.");
        error.internal_detail = Some(detail.to_string());
        error
    }

    /// How S3 reports a refusal of the KMS: `KMS.DisabledException` and friends with 400, and
    /// AccessDenied (403) when the caller may not use the key.
    pub fn from_kms(error: KeyServiceError) -> Self {
        match &error {
            KeyServiceError::Disabled(m) => Self::new(S3ErrorCode::KmsDisabled, m.clone()),
            KeyServiceError::InvalidState(m) => Self::new(S3ErrorCode::KmsInvalidState, m.clone()),
            KeyServiceError::NotFound(m) => Self::new(S3ErrorCode::KmsNotFound, m.clone()),
            KeyServiceError::AccessDenied(m) => Self::access_denied(m.clone()),
            KeyServiceError::InvalidCiphertext(m) => Self::new(S3ErrorCode::KmsInvalidCiphertext, m.clone()),
            KeyServiceError::Unavailable(m) => Self::new(S3ErrorCode::KmsInternal, m.clone()),
            // S3 answers a throttled KMS with its own 503 SlowDown, as it does for its own rates.
            KeyServiceError::Rejected { code, .. } if code == "ThrottlingException" => {
                Self::new(S3ErrorCode::SlowDown, "Please reduce your request rate for operations involving AWS KMS.")
            }
            KeyServiceError::Rejected { code, message }
                if matches!(
                    code.as_str(),
                    "KMSInternalException" | "DependencyTimeoutException" | "KeyUnavailableException"
                ) =>
            {
                Self::new(S3ErrorCode::KmsInternal, message.clone())
            }
            KeyServiceError::Rejected { message, .. } => Self::new(S3ErrorCode::KmsValidation, message.clone()),
        }
    }
}

impl From<Error> for S3Error {
    /// How S3 (and OBS, which answers the same codes) reports each error of the core: the one
    /// place where a domain error becomes a code, a message and extra elements.
    fn from(error: Error) -> Self {
        match error {
            Error::NoSuchBucket { bucket } => S3Error::no_such_bucket(&bucket),
            Error::NoSuchKey { key } => S3Error::no_such_key(&key),
            Error::NoSuchVersion { key, version_id } => {
                S3Error::new(S3ErrorCode::NoSuchVersion, "The specified version does not exist.")
                    .with("Key", key)
                    .with("VersionId", version_id)
            }
            Error::DeleteMarker { key, version_id, last_modified_millis, addressed } => {
                let error = match addressed {
                    true => S3Error::new(
                        S3ErrorCode::MethodNotAllowed,
                        "The specified method is not allowed against this resource.",
                    )
                    .with("ResourceType", "DeleteMarker")
                    .with_header("last-modified", crate::http::http_date(last_modified_millis)),
                    false => S3Error::no_such_key(&key),
                };
                error.with_header("x-amz-delete-marker", "true").with_header("x-amz-version-id", version_id)
            }
            Error::InvalidTag { message } => S3Error::new(S3ErrorCode::InvalidTag, message),
            Error::TooManyTags { max } if max == crate::tagging::MAX_OBJECT_TAGS => {
                S3Error::new(S3ErrorCode::BadRequest, "Object tags cannot be greater than 10")
            }
            Error::TooManyTags { max } => {
                S3Error::new(S3ErrorCode::InvalidTag, format!("Bucket tag count cannot be greater than {max}"))
            }
            Error::InvalidTaggingHeader => S3Error::invalid_argument(
                "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag \
                 name duplicates.",
            ),
            Error::NoSuchTagSet { bucket } => {
                S3Error::new(S3ErrorCode::NoSuchTagSet, "The TagSet does not exist").with("BucketName", bucket)
            }
            Error::PreconditionFailed { header } => {
                S3Error::new(S3ErrorCode::PreconditionFailed, "At least one of the pre-conditions you specified did not hold")
                    .with("Condition", header)
            }
            Error::ConditionalRequestConflict { .. } => S3Error::new(
                S3ErrorCode::ConditionalRequestConflict,
                "A conflicting operation occurred. If using PutObject you can retry the request. If using multipart \
                 upload you should initiate another CreateMultipartUpload request and re-upload each part.",
            ),
            Error::NoSuchUpload { upload_id } => S3Error::new(
                S3ErrorCode::NoSuchUpload,
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
            )
            .with("UploadId", upload_id),
            Error::AccessDenied => S3Error::access_denied("Access Denied"),
            Error::PolicyDenied(message) => S3Error::access_denied(message.clone()),
            Error::NoSuchBucketPolicy { bucket } => {
                S3Error::new(S3ErrorCode::NoSuchBucketPolicy, "The bucket policy does not exist").with("BucketName", bucket)
            }
            Error::MalformedPolicy(message) => S3Error::new(S3ErrorCode::MalformedPolicy, message.clone()),
            Error::AccessControlListNotSupported => {
                S3Error::new(S3ErrorCode::AccessControlListNotSupported, "The bucket does not allow ACLs")
            }
            Error::InvalidBucketAclWithObjectOwnership => S3Error::new(
                S3ErrorCode::InvalidBucketAclWithObjectOwnership,
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
            ),
            Error::OwnershipControlsNotFound { bucket } => S3Error::new(
                S3ErrorCode::OwnershipControlsNotFoundError,
                "The bucket ownership controls were not found",
            )
            .with("BucketName", bucket),
            Error::NoSuchPublicAccessBlockConfiguration { bucket } => S3Error::new(
                S3ErrorCode::NoSuchPublicAccessBlockConfiguration,
                "The public access block configuration was not found",
            )
            .with("BucketName", bucket),
            Error::KmsNeedsSignature => {
                S3Error::invalid_argument("Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature Version 4.")
                    .with("ArgumentName", "Authorization")
                    .with("ArgumentValue", "null")
            }
            Error::BucketAlreadyOwnedByYou { bucket } => S3Error::new(
                S3ErrorCode::BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it.",
            )
            .with("BucketName", bucket),
            Error::BucketAlreadyExists { bucket } => S3Error::new(
                S3ErrorCode::BucketAlreadyExists,
                "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
            )
            .with("BucketName", bucket),
            Error::BucketNotEmpty { bucket } => {
                S3Error::new(S3ErrorCode::BucketNotEmpty, "The bucket you tried to delete is not empty")
                    .with("BucketName", bucket)
            }
            Error::InvalidBucketName { bucket } => {
                S3Error::new(S3ErrorCode::InvalidBucketName, "The specified bucket is not valid.")
                    .with("BucketName", bucket)
            }
            Error::KeyTooLong => S3Error::new(S3ErrorCode::KeyTooLongError, "Your key is too long"),
            Error::InvalidRange { range, size } => {
                S3Error::new(S3ErrorCode::InvalidRange, "The requested range is not satisfiable")
                    .with("RangeRequested", range)
                    .with("ActualObjectSize", size.to_string())
            }
            Error::ObjectChanged { key } => {
                S3Error::new(S3ErrorCode::InternalError, "The object changed while it was being read. Please try again.")
                    .with("Key", key)
            }
            Error::EncryptionNotApplicable => {
                S3Error::new(S3ErrorCode::InvalidRequest, "The encryption parameters are not applicable to this object.")
            }
            Error::CustomerKeyRequired => S3Error::new(
                S3ErrorCode::InvalidRequest,
                "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
            ),
            Error::DecodedLengthMismatch => S3Error::new(
                S3ErrorCode::IncompleteBody,
                "You did not provide the number of bytes specified by the x-amz-decoded-content-length HTTP header",
            ),
            Error::BodyInterrupted { reason } => {
                S3Error::new(S3ErrorCode::IncompleteBody, format!("The request body terminated unexpectedly: {reason}"))
            }
            Error::SourceFailed { error } => {
                let source = S3Error::from(*error);
                let mut error = S3Error::new(
                    S3ErrorCode::IncompleteBody,
                    format!("The request body terminated unexpectedly: {source}"),
                );
                error.internal_detail = source.internal_detail;
                error
            }
            Error::MalformedChunks { reason } => S3Error::new(S3ErrorCode::IncompleteBody, reason),
            Error::ChunkSignatureMismatch => S3Error::signature_does_not_match(),
            Error::ContentMd5Mismatch => {
                S3Error::new(S3ErrorCode::BadDigest, "The Content-MD5 you specified did not match what we received.")
            }
            Error::ChecksumMismatch { header } => S3Error::new(
                S3ErrorCode::BadDigest,
                format!("The {header} you specified did not match the calculated checksum."),
            ),
            Error::ContentSha256Mismatch => S3Error::content_sha256_mismatch(),
            Error::TrailerMissing { header } => S3Error::new(
                S3ErrorCode::InvalidRequest,
                format!("The trailer {header} announced in x-amz-trailer was not sent"),
            ),
            Error::InvalidPartNumber { part_number } => {
                S3Error::invalid_argument("Part number must be an integer between 1 and 10000, inclusive")
                    .with("ArgumentName", "partNumber")
                    .with("ArgumentValue", part_number.to_string())
            }
            Error::NoParts => S3Error::malformed_xml(),
            Error::InvalidPartOrder => S3Error::new(
                S3ErrorCode::InvalidPartOrder,
                "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
            ),
            Error::InvalidPart { upload_id, part_number, etag } => S3Error::new(
                S3ErrorCode::InvalidPart,
                "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not have matched the part's entity tag.",
            )
            .with("UploadId", upload_id)
            .with("PartNumber", part_number.to_string())
            .with("ETag", etag),
            Error::EntityTooSmall { size, min_size, part_number } => S3Error::new(
                S3ErrorCode::EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size.",
            )
            .with("ProposedSize", size.to_string())
            .with("MinSizeAllowed", min_size.to_string())
            .with("PartNumber", part_number.to_string()),
            Error::Kms(error) => S3Error::from_kms(error),
            Error::Internal { detail } => S3Error::internal(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core error, then the code, status, message and extra elements it is answered with.
    type Case = (Error, S3ErrorCode, u16, &'static str, Vec<(&'static str, &'static str)>);

    /// Each error of the core reaches the client with the code, status, message and extra elements
    /// S3 sends.
    #[test]
    fn core_errors_map_to_s3_answers() {
        let cases: Vec<Case> = vec![
            (
                Error::no_such_bucket("b"),
                S3ErrorCode::NoSuchBucket,
                404,
                "The specified bucket does not exist",
                vec![("BucketName", "b")],
            ),
            (
                Error::NoSuchKey { key: "k".into() },
                S3ErrorCode::NoSuchKey,
                404,
                "The specified key does not exist.",
                vec![("Key", "k")],
            ),
            (
                Error::BucketNotEmpty { bucket: "b".into() },
                S3ErrorCode::BucketNotEmpty,
                409,
                "The bucket you tried to delete is not empty",
                vec![("BucketName", "b")],
            ),
            (Error::AccessDenied, S3ErrorCode::AccessDenied, 403, "Access Denied", vec![]),
            (
                Error::AccessControlListNotSupported,
                S3ErrorCode::AccessControlListNotSupported,
                400,
                "The bucket does not allow ACLs",
                vec![],
            ),
            (
                Error::InvalidBucketAclWithObjectOwnership,
                S3ErrorCode::InvalidBucketAclWithObjectOwnership,
                400,
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
                vec![],
            ),
            (
                Error::OwnershipControlsNotFound { bucket: "b".into() },
                S3ErrorCode::OwnershipControlsNotFoundError,
                404,
                "The bucket ownership controls were not found",
                vec![("BucketName", "b")],
            ),
            (
                Error::NoSuchPublicAccessBlockConfiguration { bucket: "b".into() },
                S3ErrorCode::NoSuchPublicAccessBlockConfiguration,
                404,
                "The public access block configuration was not found",
                vec![("BucketName", "b")],
            ),
            (
                Error::KmsNeedsSignature,
                S3ErrorCode::InvalidArgument,
                400,
                "Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature Version 4.",
                vec![("ArgumentName", "Authorization"), ("ArgumentValue", "null")],
            ),
            (
                Error::InvalidRange { range: "bytes=9-".into(), size: 3 },
                S3ErrorCode::InvalidRange,
                416,
                "The requested range is not satisfiable",
                vec![("RangeRequested", "bytes=9-"), ("ActualObjectSize", "3")],
            ),
            (
                Error::ChecksumMismatch { header: "x-amz-checksum-crc32" },
                S3ErrorCode::BadDigest,
                400,
                "The x-amz-checksum-crc32 you specified did not match the calculated checksum.",
                vec![],
            ),
            (
                Error::InvalidPartNumber { part_number: 0 },
                S3ErrorCode::InvalidArgument,
                400,
                "Part number must be an integer between 1 and 10000, inclusive",
                vec![("ArgumentName", "partNumber"), ("ArgumentValue", "0")],
            ),
            (
                Error::EntityTooSmall { size: 1, min_size: 5, part_number: 2 },
                S3ErrorCode::EntityTooSmall,
                400,
                "Your proposed upload is smaller than the minimum allowed object size.",
                vec![("ProposedSize", "1"), ("MinSizeAllowed", "5"), ("PartNumber", "2")],
            ),
            (
                Error::Kms(KeyServiceError::Disabled("key is disabled".into())),
                S3ErrorCode::KmsDisabled,
                400,
                "key is disabled",
                vec![],
            ),
            (
                Error::Kms(KeyServiceError::AccessDenied("no grant".into())),
                S3ErrorCode::AccessDenied,
                403,
                "no grant",
                vec![],
            ),
            (
                Error::MalformedChunks { reason: "invalid chunk size" },
                S3ErrorCode::IncompleteBody,
                400,
                "invalid chunk size",
                vec![],
            ),
        ];
        for (error, code, status, message, extra) in cases {
            let wire = S3Error::from(error);
            assert_eq!((wire.code, wire.status().as_u16(), wire.message.as_str()), (code, status, message));
            let extra_wire: Vec<(&str, &str)> = wire.extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
            assert_eq!(extra_wire, extra, "{code}");
            assert!(wire.internal_detail.is_none());
        }
        let source = S3Error::from(Error::SourceFailed { error: Box::new(Error::internal("part p is gone")) });
        assert_eq!(
            source.message,
            "The request body terminated unexpectedly: InternalError: We encountered an internal error. Please try again."
        );
        assert_eq!(
            (source.code, source.internal_detail.as_deref()),
            (S3ErrorCode::IncompleteBody, Some("part p is gone"))
        );
        let internal = S3Error::from(Error::internal("disk on fire"));
        assert_eq!(internal.code.as_str(), "InternalError");
        assert_eq!(internal.message, "We encountered an internal error. Please try again.");
        assert_eq!(internal.internal_detail.as_deref(), Some("disk on fire"), "logged at the edge, never sent");
    }
}
