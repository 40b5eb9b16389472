//! The object store's errors, which know nothing of HTTP: what went wrong in the core ([`Error`],
//! which each front end maps to its wire error in one place: `s3_error`'s `From<Error> for S3Error`
//! for S3 and OBS) and the operator's errors of opening or resetting the store ([`StoreError`]).

use shared::key_service::KeyServiceError;

/// Result of the object store's core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an operation of the object store failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bucket does not exist.
    #[error("bucket {bucket} does not exist")]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
    },
    /// The key does not exist.
    #[error("key {key} does not exist")]
    NoSuchKey {
        /// The key.
        key: String,
    },
    /// The version of the key does not exist.
    #[error("version {version_id} of key {key} does not exist")]
    NoSuchVersion {
        /// The key.
        key: String,
        /// The version asked for.
        version_id: String,
    },
    /// A read found a delete marker: the key's newest version (`addressed` false: the key is
    /// gone, 404), or the version the request named (`addressed`: 405, a marker has no body).
    #[error("version {version_id} of key {key} is a delete marker")]
    DeleteMarker {
        /// The key.
        key: String,
        /// The marker's version id.
        version_id: String,
        /// When the marker was made, Unix milliseconds.
        last_modified_millis: i64,
        /// Whether the request named the marker's version.
        addressed: bool,
    },
    /// The multipart upload does not exist (any more).
    #[error("upload {upload_id} does not exist")]
    NoSuchUpload {
        /// The upload.
        upload_id: String,
    },
    /// The caller may not do this (no ownership, no grant; or an SSE-C key that does not match; or
    /// a public ACL that Block Public Access blocks).
    #[error("access denied")]
    AccessDenied,
    /// A policy decided against the caller: AWS's message, "User: ARN is not authorized to perform: ACTION on
    /// resource: \"ARN\"" and why.
    #[error("{0}")]
    PolicyDenied(String),
    /// GetBucketPolicy or GetBucketPolicyStatus of a bucket without a policy.
    #[error("bucket {bucket} has no policy")]
    NoSuchBucketPolicy {
        /// The bucket.
        bucket: String,
    },
    /// PutBucketPolicy of a document that is not a valid bucket policy: S3's message.
    #[error("malformed policy: {0}")]
    MalformedPolicy(String),
    /// An ACL set or written while the bucket's ownership setting disables ACLs
    /// (`BucketOwnerEnforced`).
    #[error("the bucket does not allow ACLs")]
    AccessControlListNotSupported,
    /// ACLs disabled (`BucketOwnerEnforced`) for a bucket whose ACL grants others than its owner.
    #[error("a bucket with ACLs disabled cannot have an ACL that grants others")]
    InvalidBucketAclWithObjectOwnership,
    /// GetBucketOwnershipControls of a bucket without ownership controls.
    #[error("bucket {bucket} has no ownership controls")]
    OwnershipControlsNotFound {
        /// The bucket.
        bucket: String,
    },
    /// GetPublicAccessBlock of a bucket without a Block Public Access configuration.
    #[error("bucket {bucket} has no public access block configuration")]
    NoSuchPublicAccessBlockConfiguration {
        /// The bucket.
        bucket: String,
    },
    /// An unsigned request for an SSE-KMS object (or an SSE-KMS write): the KMS is only called on a
    /// signer's behalf.
    #[error("SSE-KMS needs a signed request")]
    KmsNeedsSignature,
    /// CreateBucket of a bucket the caller already owns.
    #[error("the caller already owns bucket {bucket}")]
    BucketAlreadyOwnedByYou {
        /// The bucket.
        bucket: String,
    },
    /// CreateBucket of a bucket another account owns.
    #[error("bucket {bucket} belongs to another account")]
    BucketAlreadyExists {
        /// The bucket.
        bucket: String,
    },
    /// DeleteBucket of a bucket that still holds objects or uploads.
    #[error("bucket {bucket} is not empty")]
    BucketNotEmpty {
        /// The bucket.
        bucket: String,
    },
    /// The bucket name breaks S3's naming rules.
    #[error("invalid bucket name {bucket}")]
    InvalidBucketName {
        /// The name.
        bucket: String,
    },
    /// The key is longer than 1024 bytes.
    #[error("the key is longer than 1024 bytes")]
    KeyTooLong,
    /// The range starts beyond the object.
    #[error("range {range} is not satisfiable for an object of {size} bytes")]
    InvalidRange {
        /// The `Range` header as sent.
        range: String,
        /// The object's size.
        size: u64,
    },
    /// The object was replaced or deleted while its body was being opened, again and again.
    #[error("object {key} changed while it was being read")]
    ObjectChanged {
        /// The key.
        key: String,
    },
    /// SSE-C parameters for an object not stored with SSE-C.
    #[error("SSE-C parameters for an object not stored with SSE-C")]
    EncryptionNotApplicable,
    /// An SSE-C object read without its key.
    #[error("the object is stored with SSE-C and its key was not given")]
    CustomerKeyRequired,
    /// An aws-chunked body decoded to another length than `x-amz-decoded-content-length`.
    #[error("the body's length is not its announced decoded length")]
    DecodedLengthMismatch,
    /// The body stopped before its end.
    #[error("the body terminated unexpectedly: {reason}")]
    BodyInterrupted {
        /// Why reading it failed.
        reason: String,
    },
    /// The stored bytes a body is made of (the parts of CompleteMultipartUpload) could not be read.
    #[error("the body's source failed: {error}")]
    SourceFailed {
        /// Why.
        error: Box<Error>,
    },
    /// The aws-chunked body is malformed.
    #[error("malformed aws-chunked body: {reason}")]
    MalformedChunks {
        /// What is wrong, in S3's words.
        reason: &'static str,
    },
    /// A chunk or trailer signature of an aws-chunked body does not verify.
    #[error("a chunk signature does not verify")]
    ChunkSignatureMismatch,
    /// The body does not hash to its `Content-MD5`.
    #[error("the body does not match its Content-MD5")]
    ContentMd5Mismatch,
    /// The body does not match its flexible checksum.
    #[error("the body does not match its {header}")]
    ChecksumMismatch {
        /// The checksum's header name (`x-amz-checksum-crc32`, ...).
        header: &'static str,
    },
    /// The body does not hash to the signed `x-amz-content-sha256`.
    #[error("the body does not hash to the signed x-amz-content-sha256")]
    ContentSha256Mismatch,
    /// A checksum announced in `x-amz-trailer` was not sent.
    #[error("the trailer {header} was announced but not sent")]
    TrailerMissing {
        /// The checksum's header name.
        header: &'static str,
    },
    /// A part number outside 1..=10000.
    #[error("part number {part_number} is not between 1 and 10000")]
    InvalidPartNumber {
        /// The part number as sent.
        part_number: u32,
    },
    /// CompleteMultipartUpload naming no parts.
    #[error("CompleteMultipartUpload names no parts")]
    NoParts,
    /// CompleteMultipartUpload's parts are not in ascending order.
    #[error("the parts are not in ascending order")]
    InvalidPartOrder,
    /// A part of CompleteMultipartUpload is missing or has another ETag.
    #[error("part {part_number} ({etag}) of upload {upload_id} was not found")]
    InvalidPart {
        /// The upload.
        upload_id: String,
        /// The part number.
        part_number: u32,
        /// The ETag given for it.
        etag: String,
    },
    /// A part other than the last is smaller than the minimum.
    #[error("part {part_number} has {size} bytes, fewer than {min_size}")]
    EntityTooSmall {
        /// The part's size.
        size: u64,
        /// The minimum part size.
        min_size: u64,
        /// The part.
        part_number: u32,
    },
    /// A conditional write's condition did not hold when it began (`If-None-Match: *` and the key
    /// exists, `If-Match` and another ETag).
    #[error("the condition {header} did not hold")]
    PreconditionFailed {
        /// The header whose condition failed.
        header: &'static str,
    },
    /// A conditional write's condition held when it began but not when it was to commit: another
    /// write or a delete of the key finished in between.
    #[error("a conflicting write to {key} finished first")]
    ConditionalRequestConflict {
        /// The key.
        key: String,
    },
    /// A tag breaks S3's limits (key length, value length, a key twice).
    #[error("{message}")]
    InvalidTag {
        /// S3's message.
        message: String,
    },
    /// More tags than an object or a bucket may have.
    #[error("more than {max} tags")]
    TooManyTags {
        /// The limit.
        max: usize,
    },
    /// `x-amz-tagging` is not a URL-encoded query of distinct tags.
    #[error("malformed x-amz-tagging header")]
    InvalidTaggingHeader,
    /// The object or bucket has no tags (GetBucketTagging).
    #[error("no tag set")]
    NoSuchTagSet {
        /// The bucket.
        bucket: String,
    },
    /// The KMS refused or failed a call made on the caller's behalf.
    #[error("KMS: {0}")]
    Kms(#[from] KeyServiceError),
    /// Something failed inside kmsim (a stored object that does not decrypt, the backend...); the
    /// front end logs the detail with the request id and sends a generic internal error.
    #[error("internal error: {detail}")]
    Internal {
        /// What failed, for the log.
        detail: String,
    },
}

impl Error {
    /// An internal error with its detail (logged by the front end, never sent).
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal { detail: detail.to_string() }
    }

    /// The bucket does not exist.
    pub fn no_such_bucket(bucket: &str) -> Self {
        Error::NoSuchBucket { bucket: bucket.to_owned() }
    }
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        Error::internal(format!("object store: {e}"))
    }
}

/// Why the object store's persistence could not be opened or reset. Said in plain words, naming
/// the place: these are the operator's errors, never a client's, so they never go through
/// [`crate::S3Error`].
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
