//! The S3 operations kmsim serves, and the ones it answers `NotImplemented`, as one typed enum
//! ([`S3Operation`]) built by one parse function from the method, the bucket and key the request
//! points at ([`Target`]), the query and the headers. Each operation knows its IAM action, whether
//! it mutates, and its resource ARN. OBS requests parse the same way: the OBS dialect differs in
//! headers (translated before parsing), not in operations.
//!
//! To add an operation: a variant here (or take it out of [`Unsupported`]) and its arm in
//! [`S3Operation::parse`]; the compiler then asks for its name, action, mutation and target arms
//! and for its arm in `http`'s dispatch, whose small handler calls a core method on `Obs` (new
//! failures are `error::Error` variants, mapped once in `s3_error`); then its row in
//! `docs/api-coverage.md` (checked by `coverage_doc_lists_the_operations`) and its example in
//! `aws_doc_examples`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, Method};
use percent_encoding::percent_decode_str;

use crate::model::VersionSel;
use crate::s3_error::S3ErrorCode;
use crate::s3_error::{Result, S3Error};

/// Keys per ListObjects page at most.
pub const MAX_KEYS: usize = 1000;
/// Uploads per ListMultipartUploads page and parts per ListParts page at most.
pub const MAX_LIST_ENTRIES: usize = 1000;
/// The query parameters a plain object GET, HEAD, PUT or DELETE may carry.
const OBJECT_QUERY_PREFIXES: [&str; 1] = ["response-"];
/// The query parameters of a ListObjects (v1) request.
const LIST_V1_PARAMS: [&str; 6] = ["prefix", "delimiter", "marker", "max-keys", "encoding-type", "x-id"];
/// The `response-*` query parameters of GetObject and the headers they override.
const RESPONSE_OVERRIDES: [(&str, &str); 6] = [
    ("response-content-type", "content-type"),
    ("response-content-language", "content-language"),
    ("response-expires", "expires"),
    ("response-cache-control", "cache-control"),
    ("response-content-disposition", "content-disposition"),
    ("response-content-encoding", "content-encoding"),
];

/// Where a request points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The bucket, from the host name or the first path segment.
    pub bucket: Option<String>,
    /// The object key: the rest of the path, decoded.
    pub key: Option<String>,
    /// The bucket came from the host name (virtual-host style), as sent; V2 signatures cover it.
    pub virtual_bucket: Option<String>,
}

impl Target {
    /// The bucket and key of a request: virtual-host style (`<bucket>.localhost`,
    /// `<bucket>.s3.<...>`) or path style (`/<bucket>/<key>`).
    pub fn of_request(uri: &http::Uri, headers: &HeaderMap) -> Result<Target> {
        let path = uri.path();
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| S3Error::invalid_argument("the path is not valid UTF-8"))
        };
        let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("");
        let hostname = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map(|(h, _)| h)
            .unwrap_or(host);
        let virtual_bucket = hostname
            .strip_suffix(".localhost")
            .map(|b| b.strip_suffix(".s3").unwrap_or(b))
            .or_else(|| hostname.split_once(".s3.").map(|(b, _)| b))
            .filter(|b| !b.is_empty() && !b.starts_with("s3"));
        if let Some(bucket) = virtual_bucket {
            let key = path.strip_prefix('/').unwrap_or(path);
            return Ok(Target {
                bucket: Some(bucket.to_owned()),
                key: (!key.is_empty()).then(|| decode(key)).transpose()?,
                virtual_bucket: Some(bucket.to_owned()),
            });
        }
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        if trimmed.is_empty() {
            return Ok(Target { bucket: None, key: None, virtual_bucket: None });
        }
        let (bucket, key) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        Ok(Target {
            bucket: Some(decode(bucket)?),
            key: (!key.is_empty()).then(|| decode(key)).transpose()?,
            virtual_bucket: None,
        })
    }
}

/// The query of a request, decoded (`+` as a space), by name; a name without `=` maps to "".
pub fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (decode(k), decode(v))
        })
        .collect()
}

/// Whether a request's body is an HTML form (`multipart/form-data`): a POST Object.
pub fn is_form_upload(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// The parameters of ListObjects and ListObjectsV2.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListObjectsParams {
    /// `prefix` ("" when absent).
    pub prefix: String,
    /// `delimiter`, absent when empty.
    pub delimiter: Option<String>,
    /// `max-keys`, at most [`MAX_KEYS`].
    pub max_keys: usize,
    /// `encoding-type=url`: keys and prefixes are URL-encoded in the answer.
    pub url_encode: bool,
    /// The key the listing starts after: v1's `marker`, v2's decoded `continuation-token` or else
    /// `start-after`.
    pub start_after: Option<String>,
    /// v1's `marker` as sent (echoed as `<Marker>`).
    pub marker: Option<String>,
    /// v2's `continuation-token` as sent (echoed as `<ContinuationToken>`).
    pub continuation_token: Option<String>,
    /// v2's `start-after` as sent (echoed as `<StartAfter>`).
    pub start_after_param: Option<String>,
    /// v2's `fetch-owner=true`: each key's `<Owner>` (v1 always lists it).
    pub fetch_owner: bool,
}

/// The name a continuation token of a listing stands for (kmsim's tokens are base64 names).
fn decode_continuation_token(token: &str) -> Result<String> {
    BASE64
        .decode(token)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(|| S3Error::invalid_argument("The continuation token provided is incorrect"))
}

/// The parameters of ListObjectVersions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListVersionsParams {
    /// `prefix` ("" when absent).
    pub prefix: String,
    /// `delimiter`, absent when empty.
    pub delimiter: Option<String>,
    /// `max-keys`, at most [`MAX_KEYS`].
    pub max_keys: usize,
    /// `encoding-type=url`.
    pub url_encode: bool,
    /// `key-marker` (and `version-id-marker`): where the listing resumes.
    pub after: Option<crate::store::VersionCursor>,
}

impl ListVersionsParams {
    fn parse(query: &BTreeMap<String, String>) -> Result<Self> {
        let list = ListObjectsParams::parse(query, false)?;
        let key_marker = query.get("key-marker").filter(|m| !m.is_empty());
        let version_marker = query.get("version-id-marker").filter(|m| !m.is_empty());
        let after = match (key_marker, version_marker) {
            (None, Some(_)) => {
                return Err(S3Error::invalid_argument("A version-id marker cannot be specified without a key marker.")
                    .with("ArgumentName", "version-id-marker"));
            }
            (None, None) => None,
            (Some(key), version) => Some(crate::store::VersionCursor {
                key: key.clone(),
                version: version.map(|v| parse_version(v).map(|v| v.as_str().to_owned())).transpose()?,
            }),
        };
        Ok(ListVersionsParams {
            prefix: list.prefix,
            delimiter: list.delimiter,
            max_keys: list.max_keys,
            url_encode: list.url_encode,
            after,
        })
    }
}

/// A `versionId` (or `version-id-marker`): `null` or an id kmsim made.
fn parse_version(text: &str) -> Result<VersionSel> {
    if text.is_empty() {
        return Err(S3Error::invalid_argument("Version id cannot be the empty string")
            .with("ArgumentName", "versionId")
            .with("ArgumentValue", ""));
    }
    VersionSel::parse(text).ok_or_else(|| {
        S3Error::invalid_argument("Invalid version id specified")
            .with("ArgumentName", "versionId")
            .with("ArgumentValue", text)
    })
}

/// The `versionId` of a request, if any.
fn version_of(query: &BTreeMap<String, String>) -> Result<Option<VersionSel>> {
    query.get("versionId").map(|v| parse_version(v)).transpose()
}

/// The parameters of ListBuckets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListBucketsParams {
    /// `max-buckets` (1 to 10,000); all buckets when absent.
    pub max_buckets: Option<usize>,
    /// The bucket name the listing starts after (from `continuation-token`).
    pub start_after: Option<String>,
    /// `prefix` of bucket names.
    pub prefix: Option<String>,
    /// `bucket-region`: only buckets of this region.
    pub bucket_region: Option<String>,
}

impl ListBucketsParams {
    fn parse(query: &BTreeMap<String, String>) -> Result<Self> {
        let max_buckets = query
            .get("max-buckets")
            .map(|v| v.parse::<usize>().ok().filter(|n| (1..=10_000).contains(n)))
            .map(|n| {
                n.ok_or_else(|| {
                    S3Error::invalid_argument("Argument max-buckets must be an integer between 1 and 10000")
                })
            })
            .transpose()?;
        Ok(ListBucketsParams {
            max_buckets,
            start_after: query
                .get("continuation-token")
                .filter(|t| !t.is_empty())
                .map(|t| decode_continuation_token(t))
                .transpose()?,
            prefix: query.get("prefix").cloned().filter(|p| !p.is_empty()),
            bucket_region: query.get("bucket-region").cloned().filter(|r| !r.is_empty()),
        })
    }
}

impl ListObjectsParams {
    /// The parameters of a v1 (`v2 == false`) or v2 listing.
    fn parse(query: &BTreeMap<String, String>, v2: bool) -> Result<Self> {
        let max_keys = match query.get("max-keys") {
            None => MAX_KEYS,
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| S3Error::invalid_argument("Provided max-keys not an integer or within integer range"))?
                .min(MAX_KEYS),
        };
        let mut params = ListObjectsParams {
            prefix: query.get("prefix").cloned().unwrap_or_default(),
            delimiter: query.get("delimiter").cloned().filter(|d| !d.is_empty()),
            max_keys,
            url_encode: query.get("encoding-type").map(String::as_str) == Some("url"),
            ..ListObjectsParams::default()
        };
        if v2 {
            params.continuation_token = query.get("continuation-token").cloned();
            params.start_after_param = query.get("start-after").cloned();
            params.fetch_owner = query.get("fetch-owner").map(String::as_str) == Some("true");
            params.start_after = match &params.continuation_token {
                Some(token) => Some(decode_continuation_token(token)?),
                None => params.start_after_param.clone(),
            };
        } else {
            params.marker = query.get("marker").cloned();
            params.start_after = params.marker.clone();
        }
        Ok(params)
    }
}

/// A request kmsim understands, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3Operation {
    /// `GET /`.
    ListBuckets {
        /// Paging and filters.
        params: ListBucketsParams,
    },
    /// `PUT /bucket`.
    CreateBucket {
        /// The bucket.
        bucket: String,
    },
    /// `HEAD /bucket`.
    HeadBucket {
        /// The bucket.
        bucket: String,
    },
    /// `DELETE /bucket`.
    DeleteBucket {
        /// The bucket.
        bucket: String,
    },
    /// `GET /bucket?location`.
    GetBucketLocation {
        /// The bucket.
        bucket: String,
    },
    /// `PUT /bucket?encryption`.
    PutBucketEncryption {
        /// The bucket.
        bucket: String,
    },
    /// `GET /bucket?encryption`.
    GetBucketEncryption {
        /// The bucket.
        bucket: String,
    },
    /// `DELETE /bucket?encryption`.
    DeleteBucketEncryption {
        /// The bucket.
        bucket: String,
    },
    /// `PUT /bucket?cors`.
    PutBucketCors {
        /// The bucket.
        bucket: String,
    },
    /// `GET /bucket?cors`.
    GetBucketCors {
        /// The bucket.
        bucket: String,
    },
    /// `DELETE /bucket?cors`.
    DeleteBucketCors {
        /// The bucket.
        bucket: String,
    },
    /// `PUT /bucket?tagging`.
    PutBucketTagging {
        /// The bucket.
        bucket: String,
    },
    /// `GET /bucket?tagging`.
    GetBucketTagging {
        /// The bucket.
        bucket: String,
    },
    /// `DELETE /bucket?tagging`.
    DeleteBucketTagging {
        /// The bucket.
        bucket: String,
    },
    /// `PUT /bucket/key?tagging`.
    PutObjectTagging {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// `versionId`: the tags of this version (else the current object's).
        version: Option<VersionSel>,
    },
    /// `GET /bucket/key?tagging`.
    GetObjectTagging {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// `versionId`: the tags of this version (else the current object's).
        version: Option<VersionSel>,
    },
    /// `DELETE /bucket/key?tagging`.
    DeleteObjectTagging {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// `versionId`: the tags of this version (else the current object's).
        version: Option<VersionSel>,
    },
    /// `PUT /bucket?versioning`.
    PutBucketVersioning {
        /// The bucket.
        bucket: String,
    },
    /// `GET /bucket?versioning`.
    GetBucketVersioning {
        /// The bucket.
        bucket: String,
    },
    /// `GET /bucket?acl`.
    GetBucketAcl {
        /// The bucket.
        bucket: String,
    },
    /// `PUT /bucket?acl`: an ACL in `x-amz-acl`, `x-amz-grant-*` or the body.
    PutBucketAcl {
        /// The bucket.
        bucket: String,
    },
    /// `GET /bucket?ownershipControls`.
    GetBucketOwnershipControls {
        /// The bucket.
        bucket: String,
    },
    /// `PUT /bucket?ownershipControls`.
    PutBucketOwnershipControls {
        /// The bucket.
        bucket: String,
    },
    /// `DELETE /bucket?ownershipControls`.
    DeleteBucketOwnershipControls {
        /// The bucket.
        bucket: String,
    },
    /// `GET /bucket?publicAccessBlock`.
    GetPublicAccessBlock {
        /// The bucket.
        bucket: String,
    },
    /// `PUT /bucket?publicAccessBlock`.
    PutPublicAccessBlock {
        /// The bucket.
        bucket: String,
    },
    /// `DELETE /bucket?publicAccessBlock`.
    DeletePublicAccessBlock {
        /// The bucket.
        bucket: String,
    },
    /// `GET /bucket?policy`.
    GetBucketPolicy {
        /// The bucket.
        bucket: String,
    },
    /// `PUT /bucket?policy`.
    PutBucketPolicy {
        /// The bucket.
        bucket: String,
    },
    /// `DELETE /bucket?policy`.
    DeleteBucketPolicy {
        /// The bucket.
        bucket: String,
    },
    /// `GET /bucket?policyStatus`.
    GetBucketPolicyStatus {
        /// The bucket.
        bucket: String,
    },
    /// `GET /bucket/key?acl`.
    GetObjectAcl {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// `versionId`: this version's ACL (else the current object's).
        version: Option<VersionSel>,
    },
    /// `PUT /bucket/key?acl`: an ACL in `x-amz-acl`, `x-amz-grant-*` or the body.
    PutObjectAcl {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// `versionId`: this version's ACL (else the current object's).
        version: Option<VersionSel>,
    },
    /// `GET /bucket?versions`.
    ListObjectVersions {
        /// The bucket.
        bucket: String,
        /// The listing's parameters.
        params: ListVersionsParams,
    },
    /// `GET /bucket` (with `prefix`, `delimiter`, `marker`, `max-keys`, `encoding-type` only).
    ListObjects {
        /// The bucket.
        bucket: String,
        /// The listing's parameters.
        params: ListObjectsParams,
    },
    /// `GET /bucket?list-type=2`.
    ListObjectsV2 {
        /// The bucket.
        bucket: String,
        /// The listing's parameters.
        params: ListObjectsParams,
    },
    /// `GET /bucket?uploads`.
    ListMultipartUploads {
        /// The bucket.
        bucket: String,
        /// `prefix` ("" when absent).
        prefix: String,
        /// `max-uploads`, at most [`MAX_LIST_ENTRIES`].
        max_uploads: usize,
    },
    /// `POST /bucket?delete`.
    DeleteObjects {
        /// The bucket.
        bucket: String,
    },
    /// `POST /bucket` with a `multipart/form-data` body: a browser form upload, authenticated by
    /// the form's signed policy; the key is a field of the form.
    PostObject {
        /// The bucket.
        bucket: String,
    },
    /// `PUT /bucket/key`.
    PutObject {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// `PUT /bucket/key` with `x-amz-copy-source`.
    CopyObject {
        /// The destination bucket.
        bucket: String,
        /// The destination key.
        key: String,
        /// The `x-amz-copy-source` header as sent (`/bucket/key`, URL-encoded).
        source: String,
    },
    /// `GET /bucket/key`.
    GetObject {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Response headers set by `response-*` query parameters: header name and value.
        overrides: Vec<(&'static str, String)>,
        /// `partNumber`: read one part of a multipart object (1 to 10,000).
        part_number: Option<u32>,
        /// `versionId`: read this version (else the current object).
        version: Option<VersionSel>,
    },
    /// `HEAD /bucket/key`.
    HeadObject {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Response headers set by `response-*` query parameters: header name and value.
        overrides: Vec<(&'static str, String)>,
        /// `partNumber`: read one part of a multipart object (1 to 10,000).
        part_number: Option<u32>,
        /// `versionId`: read this version (else the current object).
        version: Option<VersionSel>,
    },
    /// `GET /bucket/key?attributes` with `x-amz-object-attributes`.
    GetObjectAttributes {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// `versionId`: this version's attributes (else the current object's).
        version: Option<VersionSel>,
    },
    /// `DELETE /bucket/key`.
    DeleteObject {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// `versionId`: delete this version for good (else the key's object, or in a versioned
        /// bucket add a delete marker).
        version: Option<VersionSel>,
    },
    /// `POST /bucket/key?uploads`.
    CreateMultipartUpload {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// `PUT /bucket/key?partNumber=N&uploadId=U`.
    UploadPart {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The upload.
        upload_id: String,
        /// The part number as sent (its range is checked by the core).
        part_number: u32,
    },
    /// `PUT /bucket/key?partNumber=N&uploadId=U` with `x-amz-copy-source`.
    UploadPartCopy {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The upload.
        upload_id: String,
        /// The part number as sent.
        part_number: u32,
        /// The `x-amz-copy-source` header as sent.
        source: String,
    },
    /// `POST /bucket/key?uploadId=U`.
    CompleteMultipartUpload {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The upload.
        upload_id: String,
    },
    /// `DELETE /bucket/key?uploadId=U`.
    AbortMultipartUpload {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The upload.
        upload_id: String,
    },
    /// `GET /bucket/key?uploadId=U`.
    ListParts {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The upload.
        upload_id: String,
        /// `max-parts`, at most [`MAX_LIST_ENTRIES`].
        max_parts: usize,
        /// `part-number-marker` (0 when absent).
        part_number_marker: u32,
    },
    /// An S3 operation kmsim does not implement: answered `NotImplemented`.
    Unsupported {
        /// Which.
        operation: Unsupported,
        /// The bucket.
        bucket: String,
        /// The key, for an object sub-resource.
        key: Option<String>,
    },
}

/// Whether a sub-resource applies to buckets or to objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `/bucket?sub`.
    Bucket,
    /// `/bucket/key?sub`.
    Object,
}

macro_rules! unsupported {
    ($($variant:ident = $method:ident $level:ident $sub:literal $action:literal,)*) => {
        /// The S3 operations kmsim answers `NotImplemented` (`docs/api-coverage.md` lists the
        /// same set; a test checks it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Unsupported {
            $(
                #[doc = concat!("`", stringify!($method), " ?", $sub, "` on a ", stringify!($level), ".")]
                $variant,
            )*
        }

        impl Unsupported {
            /// Every unsupported operation.
            pub const ALL: &[Unsupported] = &[$(Unsupported::$variant,)*];

            /// The operation's name in the S3 API Reference.
            pub fn name(self) -> &'static str {
                match self { $(Unsupported::$variant => stringify!($variant),)* }
            }

            /// The IAM action the Service Authorization Reference names for it.
            pub fn action(self) -> &'static str {
                match self { $(Unsupported::$variant => $action,)* }
            }

            /// The method, level and sub-resource (query parameter) that select it.
            fn selector(self) -> (Method, Level, &'static str) {
                match self { $(Unsupported::$variant => (Method::$method, Level::$level, $sub),)* }
            }
        }
    };
}

unsupported! {
    GetBucketLifecycleConfiguration = GET Bucket "lifecycle" "s3:GetLifecycleConfiguration",
    PutBucketLifecycleConfiguration = PUT Bucket "lifecycle" "s3:PutLifecycleConfiguration",
    DeleteBucketLifecycle = DELETE Bucket "lifecycle" "s3:PutLifecycleConfiguration",
    GetObjectLockConfiguration = GET Bucket "object-lock" "s3:GetBucketObjectLockConfiguration",
    PutObjectLockConfiguration = PUT Bucket "object-lock" "s3:PutBucketObjectLockConfiguration",
    GetObjectRetention = GET Object "retention" "s3:GetObjectRetention",
    PutObjectRetention = PUT Object "retention" "s3:PutObjectRetention",
    GetObjectLegalHold = GET Object "legal-hold" "s3:GetObjectLegalHold",
    PutObjectLegalHold = PUT Object "legal-hold" "s3:PutObjectLegalHold",
    GetBucketWebsite = GET Bucket "website" "s3:GetBucketWebsite",
    PutBucketWebsite = PUT Bucket "website" "s3:PutBucketWebsite",
    DeleteBucketWebsite = DELETE Bucket "website" "s3:DeleteBucketWebsite",
    GetBucketNotificationConfiguration = GET Bucket "notification" "s3:GetBucketNotification",
    PutBucketNotificationConfiguration = PUT Bucket "notification" "s3:PutBucketNotification",
    SelectObjectContent = POST Object "select" "s3:GetObject",
}

impl Unsupported {
    /// The unsupported operation a method and query select at `level`, if any.
    fn select(method: &Method, level: Level, query: &BTreeMap<String, String>) -> Option<Unsupported> {
        Unsupported::ALL.iter().copied().find(|operation| {
            let (m, l, sub) = operation.selector();
            m == method && l == level && query.contains_key(sub)
        })
    }

    /// Whether it changes state.
    pub fn mutates(self) -> bool {
        let (method, _, _) = self.selector();
        method != Method::GET && self != Unsupported::SelectObjectContent
    }
}

impl S3Operation {
    /// The operation a request asks for, from its method, target, query and (S3-family) headers.
    /// A request for no known operation is `NotImplemented` (naming the method and the first
    /// query parameter), and a non-GET request on the service `MethodNotAllowed`.
    pub fn parse(
        method: &Method,
        target: Target,
        query: &BTreeMap<String, String>,
        headers: &HeaderMap,
    ) -> Result<Self> {
        match (target.bucket, target.key) {
            (None, _) if method == Method::GET => {
                Ok(S3Operation::ListBuckets { params: ListBucketsParams::parse(query)? })
            }
            (None, _) => Err(S3Error::new(
                S3ErrorCode::MethodNotAllowed,
                "The specified method is not allowed against this resource.",
            )),
            (Some(bucket), None) => Self::parse_bucket(method, bucket, query, headers),
            (Some(bucket), Some(key)) => Self::parse_object(method, bucket, key, query, headers),
        }
    }

    fn parse_bucket(
        method: &Method,
        bucket: String,
        query: &BTreeMap<String, String>,
        headers: &HeaderMap,
    ) -> Result<Self> {
        let sub = |name: &str| query.contains_key(name);
        let operation = match *method {
            Method::PUT if sub("encryption") => S3Operation::PutBucketEncryption { bucket },
            Method::PUT if query.is_empty() => S3Operation::CreateBucket { bucket },
            Method::HEAD if query.is_empty() => S3Operation::HeadBucket { bucket },
            Method::DELETE if sub("encryption") => S3Operation::DeleteBucketEncryption { bucket },
            Method::DELETE if query.is_empty() => S3Operation::DeleteBucket { bucket },
            Method::GET if sub("location") => S3Operation::GetBucketLocation { bucket },
            Method::GET if sub("encryption") => S3Operation::GetBucketEncryption { bucket },
            Method::PUT if sub("tagging") => S3Operation::PutBucketTagging { bucket },
            Method::GET if sub("tagging") => S3Operation::GetBucketTagging { bucket },
            Method::DELETE if sub("tagging") => S3Operation::DeleteBucketTagging { bucket },
            Method::PUT if sub("versioning") => S3Operation::PutBucketVersioning { bucket },
            Method::GET if sub("versioning") => S3Operation::GetBucketVersioning { bucket },
            Method::GET if sub("versions") => {
                S3Operation::ListObjectVersions { bucket, params: ListVersionsParams::parse(query)? }
            }
            Method::GET if sub("acl") => S3Operation::GetBucketAcl { bucket },
            Method::PUT if sub("acl") => S3Operation::PutBucketAcl { bucket },
            Method::GET if sub("ownershipControls") => S3Operation::GetBucketOwnershipControls { bucket },
            Method::PUT if sub("ownershipControls") => S3Operation::PutBucketOwnershipControls { bucket },
            Method::DELETE if sub("ownershipControls") => S3Operation::DeleteBucketOwnershipControls { bucket },
            Method::GET if sub("publicAccessBlock") => S3Operation::GetPublicAccessBlock { bucket },
            Method::PUT if sub("publicAccessBlock") => S3Operation::PutPublicAccessBlock { bucket },
            Method::DELETE if sub("publicAccessBlock") => S3Operation::DeletePublicAccessBlock { bucket },
            Method::GET if sub("policy") => S3Operation::GetBucketPolicy { bucket },
            Method::PUT if sub("policy") => S3Operation::PutBucketPolicy { bucket },
            Method::DELETE if sub("policy") => S3Operation::DeleteBucketPolicy { bucket },
            Method::GET if sub("policyStatus") => S3Operation::GetBucketPolicyStatus { bucket },
            Method::PUT if sub("cors") => S3Operation::PutBucketCors { bucket },
            Method::GET if sub("cors") => S3Operation::GetBucketCors { bucket },
            Method::DELETE if sub("cors") => S3Operation::DeleteBucketCors { bucket },
            Method::GET if query.get("list-type").map(String::as_str) == Some("2") => {
                S3Operation::ListObjectsV2 { bucket, params: ListObjectsParams::parse(query, true)? }
            }
            Method::GET if query.keys().all(|k| LIST_V1_PARAMS.contains(&k.as_str())) => {
                S3Operation::ListObjects { bucket, params: ListObjectsParams::parse(query, false)? }
            }
            Method::POST if sub("delete") => S3Operation::DeleteObjects { bucket },
            Method::POST if query.is_empty() && is_form_upload(headers) => S3Operation::PostObject { bucket },
            Method::GET if sub("uploads") => S3Operation::ListMultipartUploads {
                bucket,
                prefix: query.get("prefix").cloned().unwrap_or_default(),
                max_uploads: list_limit(query.get("max-uploads")),
            },
            _ => match Unsupported::select(method, Level::Bucket, query) {
                Some(operation) => S3Operation::Unsupported { operation, bucket, key: None },
                None => return Err(S3Error::not_implemented(&not_implemented_bucket(method, query))),
            },
        };
        Ok(operation)
    }

    fn parse_object(
        method: &Method,
        bucket: String,
        key: String,
        query: &BTreeMap<String, String>,
        headers: &HeaderMap,
    ) -> Result<Self> {
        let plain_query = query
            .keys()
            .all(|k| k == "x-id" || k == "versionId" || OBJECT_QUERY_PREFIXES.iter().any(|p| k.starts_with(p)));
        let version = version_of(query)?;
        // A copy source that is not text copies nothing: UploadPart takes the body, CopyObject
        // refuses the empty source.
        let copy_source = headers.get("x-amz-copy-source").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let copies = headers.contains_key("x-amz-copy-source");
        let overrides = || {
            RESPONSE_OVERRIDES
                .iter()
                .filter_map(|(param, header)| query.get(*param).map(|v| (*header, v.clone())))
                .collect::<Vec<_>>()
        };
        // A read may also name one part of a multipart object.
        let read_query = query.keys().all(|k| {
            k == "x-id"
                || k == "partNumber"
                || k == "versionId"
                || OBJECT_QUERY_PREFIXES.iter().any(|p| k.starts_with(p))
        });
        let read_part = || {
            query
                .get("partNumber")
                .map(|n| {
                    n.parse::<u32>().ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| {
                        S3Error::invalid_argument("Part number must be an integer between 1 and 10000, inclusive")
                    })
                })
                .transpose()
        };
        let upload_id = query.get("uploadId").cloned();
        if query.contains_key("attributes") && upload_id.is_none() && *method == Method::GET {
            return Ok(S3Operation::GetObjectAttributes { bucket, key, version });
        }
        if query.contains_key("acl") && upload_id.is_none() {
            match *method {
                Method::PUT => return Ok(S3Operation::PutObjectAcl { bucket, key, version }),
                Method::GET => return Ok(S3Operation::GetObjectAcl { bucket, key, version }),
                _ => {}
            }
        }
        if query.contains_key("tagging") && upload_id.is_none() {
            match *method {
                Method::PUT => return Ok(S3Operation::PutObjectTagging { bucket, key, version }),
                Method::GET => return Ok(S3Operation::GetObjectTagging { bucket, key, version }),
                Method::DELETE => return Ok(S3Operation::DeleteObjectTagging { bucket, key, version }),
                _ => {}
            }
        }
        let operation = match (method.clone(), upload_id) {
            (Method::POST, None) if query.contains_key("uploads") => S3Operation::CreateMultipartUpload { bucket, key },
            (Method::PUT, Some(upload_id)) => {
                let part_number = query.get("partNumber").and_then(|n| n.parse::<u32>().ok()).ok_or_else(|| {
                    S3Error::invalid_argument("Part number must be an integer between 1 and 10000, inclusive")
                })?;
                match copy_source {
                    Some(source) => S3Operation::UploadPartCopy { bucket, key, upload_id, part_number, source },
                    None => S3Operation::UploadPart { bucket, key, upload_id, part_number },
                }
            }
            (Method::POST, Some(upload_id)) => S3Operation::CompleteMultipartUpload { bucket, key, upload_id },
            (Method::DELETE, Some(upload_id)) => S3Operation::AbortMultipartUpload { bucket, key, upload_id },
            (Method::GET, Some(upload_id)) => S3Operation::ListParts {
                bucket,
                key,
                upload_id,
                max_parts: list_limit(query.get("max-parts")),
                part_number_marker: query.get("part-number-marker").and_then(|v| v.parse::<u32>().ok()).unwrap_or(0),
            },
            (Method::PUT, None) if copies => {
                S3Operation::CopyObject { bucket, key, source: copy_source.unwrap_or_default() }
            }
            // A write makes a version; it cannot name one.
            (Method::PUT, None) if plain_query && version.is_none() => S3Operation::PutObject { bucket, key },
            (Method::GET, None) if read_query => {
                S3Operation::GetObject { bucket, key, overrides: overrides(), part_number: read_part()?, version }
            }
            (Method::HEAD, None) if read_query => {
                S3Operation::HeadObject { bucket, key, overrides: overrides(), part_number: read_part()?, version }
            }
            (Method::DELETE, None) if plain_query => S3Operation::DeleteObject { bucket, key, version },
            _ => match Unsupported::select(method, Level::Object, query) {
                Some(operation) => S3Operation::Unsupported { operation, bucket, key: Some(key) },
                None => return Err(S3Error::not_implemented(&not_implemented_object(method, query))),
            },
        };
        Ok(operation)
    }

    /// The operation's name in the S3 API Reference.
    pub fn name(&self) -> &'static str {
        match self {
            S3Operation::ListBuckets { .. } => "ListBuckets",
            S3Operation::CreateBucket { .. } => "CreateBucket",
            S3Operation::HeadBucket { .. } => "HeadBucket",
            S3Operation::DeleteBucket { .. } => "DeleteBucket",
            S3Operation::GetBucketLocation { .. } => "GetBucketLocation",
            S3Operation::PutBucketEncryption { .. } => "PutBucketEncryption",
            S3Operation::GetBucketEncryption { .. } => "GetBucketEncryption",
            S3Operation::DeleteBucketEncryption { .. } => "DeleteBucketEncryption",
            S3Operation::PutBucketCors { .. } => "PutBucketCors",
            S3Operation::PutBucketTagging { .. } => "PutBucketTagging",
            S3Operation::GetBucketTagging { .. } => "GetBucketTagging",
            S3Operation::DeleteBucketTagging { .. } => "DeleteBucketTagging",
            S3Operation::PutObjectTagging { .. } => "PutObjectTagging",
            S3Operation::GetObjectTagging { .. } => "GetObjectTagging",
            S3Operation::DeleteObjectTagging { .. } => "DeleteObjectTagging",
            S3Operation::GetBucketCors { .. } => "GetBucketCors",
            S3Operation::DeleteBucketCors { .. } => "DeleteBucketCors",
            S3Operation::PutBucketVersioning { .. } => "PutBucketVersioning",
            S3Operation::GetBucketVersioning { .. } => "GetBucketVersioning",
            S3Operation::ListObjectVersions { .. } => "ListObjectVersions",
            S3Operation::GetBucketAcl { .. } => "GetBucketAcl",
            S3Operation::PutBucketAcl { .. } => "PutBucketAcl",
            S3Operation::GetBucketOwnershipControls { .. } => "GetBucketOwnershipControls",
            S3Operation::PutBucketOwnershipControls { .. } => "PutBucketOwnershipControls",
            S3Operation::DeleteBucketOwnershipControls { .. } => "DeleteBucketOwnershipControls",
            S3Operation::GetPublicAccessBlock { .. } => "GetPublicAccessBlock",
            S3Operation::PutPublicAccessBlock { .. } => "PutPublicAccessBlock",
            S3Operation::DeletePublicAccessBlock { .. } => "DeletePublicAccessBlock",
            S3Operation::GetBucketPolicy { .. } => "GetBucketPolicy",
            S3Operation::PutBucketPolicy { .. } => "PutBucketPolicy",
            S3Operation::DeleteBucketPolicy { .. } => "DeleteBucketPolicy",
            S3Operation::GetBucketPolicyStatus { .. } => "GetBucketPolicyStatus",
            S3Operation::GetObjectAcl { .. } => "GetObjectAcl",
            S3Operation::PutObjectAcl { .. } => "PutObjectAcl",
            S3Operation::ListObjects { .. } => "ListObjects",
            S3Operation::ListObjectsV2 { .. } => "ListObjectsV2",
            S3Operation::ListMultipartUploads { .. } => "ListMultipartUploads",
            S3Operation::DeleteObjects { .. } => "DeleteObjects",
            S3Operation::PutObject { .. } => "PutObject",
            S3Operation::PostObject { .. } => "PostObject",
            S3Operation::CopyObject { .. } => "CopyObject",
            S3Operation::GetObject { .. } => "GetObject",
            S3Operation::HeadObject { .. } => "HeadObject",
            S3Operation::GetObjectAttributes { .. } => "GetObjectAttributes",
            S3Operation::DeleteObject { .. } => "DeleteObject",
            S3Operation::CreateMultipartUpload { .. } => "CreateMultipartUpload",
            S3Operation::UploadPart { .. } => "UploadPart",
            S3Operation::UploadPartCopy { .. } => "UploadPartCopy",
            S3Operation::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            S3Operation::AbortMultipartUpload { .. } => "AbortMultipartUpload",
            S3Operation::ListParts { .. } => "ListParts",
            S3Operation::Unsupported { operation, .. } => operation.name(),
        }
    }

    /// The IAM action the AWS Service Authorization Reference names for the operation.
    pub fn action(&self) -> &'static str {
        match self {
            S3Operation::ListBuckets { .. } => "s3:ListAllMyBuckets",
            S3Operation::CreateBucket { .. } => "s3:CreateBucket",
            S3Operation::HeadBucket { .. } => "s3:ListBucket",
            S3Operation::DeleteBucket { .. } => "s3:DeleteBucket",
            S3Operation::GetBucketLocation { .. } => "s3:GetBucketLocation",
            S3Operation::PutBucketEncryption { .. } | S3Operation::DeleteBucketEncryption { .. } => {
                "s3:PutEncryptionConfiguration"
            }
            S3Operation::GetBucketEncryption { .. } => "s3:GetEncryptionConfiguration",
            S3Operation::PutBucketCors { .. } | S3Operation::DeleteBucketCors { .. } => "s3:PutBucketCORS",
            S3Operation::GetBucketCors { .. } => "s3:GetBucketCORS",
            S3Operation::PutBucketTagging { .. } | S3Operation::DeleteBucketTagging { .. } => "s3:PutBucketTagging",
            S3Operation::GetBucketTagging { .. } => "s3:GetBucketTagging",
            S3Operation::PutObjectTagging { version: None, .. } => "s3:PutObjectTagging",
            S3Operation::PutObjectTagging { version: Some(_), .. } => "s3:PutObjectVersionTagging",
            S3Operation::GetObjectTagging { version: None, .. } => "s3:GetObjectTagging",
            S3Operation::GetObjectTagging { version: Some(_), .. } => "s3:GetObjectVersionTagging",
            S3Operation::DeleteObjectTagging { version: None, .. } => "s3:DeleteObjectTagging",
            S3Operation::DeleteObjectTagging { version: Some(_), .. } => "s3:DeleteObjectVersionTagging",
            S3Operation::PutBucketVersioning { .. } => "s3:PutBucketVersioning",
            S3Operation::GetBucketVersioning { .. } => "s3:GetBucketVersioning",
            S3Operation::ListObjectVersions { .. } => "s3:ListBucketVersions",
            S3Operation::GetBucketAcl { .. } => "s3:GetBucketAcl",
            S3Operation::PutBucketAcl { .. } => "s3:PutBucketAcl",
            S3Operation::GetBucketOwnershipControls { .. } => "s3:GetBucketOwnershipControls",
            S3Operation::PutBucketOwnershipControls { .. } | S3Operation::DeleteBucketOwnershipControls { .. } => {
                "s3:PutBucketOwnershipControls"
            }
            S3Operation::GetPublicAccessBlock { .. } => "s3:GetBucketPublicAccessBlock",
            S3Operation::GetBucketPolicy { .. } => "s3:GetBucketPolicy",
            S3Operation::PutBucketPolicy { .. } => "s3:PutBucketPolicy",
            S3Operation::DeleteBucketPolicy { .. } => "s3:DeleteBucketPolicy",
            S3Operation::GetBucketPolicyStatus { .. } => "s3:GetBucketPolicyStatus",
            S3Operation::PutPublicAccessBlock { .. } | S3Operation::DeletePublicAccessBlock { .. } => {
                "s3:PutBucketPublicAccessBlock"
            }
            S3Operation::GetObjectAcl { version: None, .. } => "s3:GetObjectAcl",
            S3Operation::GetObjectAcl { version: Some(_), .. } => "s3:GetObjectVersionAcl",
            S3Operation::PutObjectAcl { version: None, .. } => "s3:PutObjectAcl",
            S3Operation::PutObjectAcl { version: Some(_), .. } => "s3:PutObjectVersionAcl",
            S3Operation::ListObjects { .. } | S3Operation::ListObjectsV2 { .. } => "s3:ListBucket",
            S3Operation::ListMultipartUploads { .. } => "s3:ListBucketMultipartUploads",
            S3Operation::DeleteObjects { .. } | S3Operation::DeleteObject { version: None, .. } => "s3:DeleteObject",
            S3Operation::DeleteObject { version: Some(_), .. } => "s3:DeleteObjectVersion",
            S3Operation::PutObject { .. }
            | S3Operation::PostObject { .. }
            | S3Operation::CopyObject { .. }
            | S3Operation::CreateMultipartUpload { .. }
            | S3Operation::UploadPart { .. }
            | S3Operation::UploadPartCopy { .. }
            | S3Operation::CompleteMultipartUpload { .. } => "s3:PutObject",
            S3Operation::GetObject { version: None, .. } | S3Operation::HeadObject { version: None, .. } => {
                "s3:GetObject"
            }
            S3Operation::GetObject { version: Some(_), .. } | S3Operation::HeadObject { version: Some(_), .. } => {
                "s3:GetObjectVersion"
            }
            S3Operation::GetObjectAttributes { version: None, .. } => "s3:GetObjectAttributes",
            S3Operation::GetObjectAttributes { version: Some(_), .. } => "s3:GetObjectVersionAttributes",
            S3Operation::AbortMultipartUpload { .. } => "s3:AbortMultipartUpload",
            S3Operation::ListParts { .. } => "s3:ListMultipartUploadParts",
            S3Operation::Unsupported { operation, .. } => operation.action(),
        }
    }

    /// Whether the operation changes state.
    pub fn mutates(&self) -> bool {
        match self {
            S3Operation::ListBuckets { .. }
            | S3Operation::HeadBucket { .. }
            | S3Operation::GetBucketLocation { .. }
            | S3Operation::GetBucketEncryption { .. }
            | S3Operation::GetBucketCors { .. }
            | S3Operation::GetBucketTagging { .. }
            | S3Operation::GetObjectTagging { .. }
            | S3Operation::GetBucketVersioning { .. }
            | S3Operation::ListObjectVersions { .. }
            | S3Operation::GetBucketAcl { .. }
            | S3Operation::GetBucketOwnershipControls { .. }
            | S3Operation::GetPublicAccessBlock { .. }
            | S3Operation::GetBucketPolicy { .. }
            | S3Operation::GetBucketPolicyStatus { .. }
            | S3Operation::GetObjectAcl { .. }
            | S3Operation::ListObjects { .. }
            | S3Operation::ListObjectsV2 { .. }
            | S3Operation::ListMultipartUploads { .. }
            | S3Operation::GetObject { .. }
            | S3Operation::HeadObject { .. }
            | S3Operation::GetObjectAttributes { .. }
            | S3Operation::ListParts { .. } => false,
            S3Operation::CreateBucket { .. }
            | S3Operation::DeleteBucket { .. }
            | S3Operation::PutBucketEncryption { .. }
            | S3Operation::DeleteBucketEncryption { .. }
            | S3Operation::PutBucketCors { .. }
            | S3Operation::DeleteBucketCors { .. }
            | S3Operation::PutBucketTagging { .. }
            | S3Operation::DeleteBucketTagging { .. }
            | S3Operation::PutObjectTagging { .. }
            | S3Operation::DeleteObjectTagging { .. }
            | S3Operation::PutBucketVersioning { .. }
            | S3Operation::PutBucketAcl { .. }
            | S3Operation::PutBucketOwnershipControls { .. }
            | S3Operation::DeleteBucketOwnershipControls { .. }
            | S3Operation::PutPublicAccessBlock { .. }
            | S3Operation::DeletePublicAccessBlock { .. }
            | S3Operation::PutBucketPolicy { .. }
            | S3Operation::DeleteBucketPolicy { .. }
            | S3Operation::PutObjectAcl { .. }
            | S3Operation::DeleteObjects { .. }
            | S3Operation::PostObject { .. }
            | S3Operation::PutObject { .. }
            | S3Operation::CopyObject { .. }
            | S3Operation::DeleteObject { .. }
            | S3Operation::CreateMultipartUpload { .. }
            | S3Operation::UploadPart { .. }
            | S3Operation::UploadPartCopy { .. }
            | S3Operation::CompleteMultipartUpload { .. }
            | S3Operation::AbortMultipartUpload { .. } => true,
            S3Operation::Unsupported { operation, .. } => operation.mutates(),
        }
    }

    /// The bucket the operation acts on (none for ListBuckets).
    pub fn bucket(&self) -> Option<&str> {
        match self {
            S3Operation::ListBuckets { .. } => None,
            S3Operation::CreateBucket { bucket }
            | S3Operation::HeadBucket { bucket }
            | S3Operation::DeleteBucket { bucket }
            | S3Operation::GetBucketLocation { bucket }
            | S3Operation::PutBucketEncryption { bucket }
            | S3Operation::GetBucketEncryption { bucket }
            | S3Operation::DeleteBucketEncryption { bucket }
            | S3Operation::PutBucketCors { bucket }
            | S3Operation::GetBucketCors { bucket }
            | S3Operation::DeleteBucketCors { bucket }
            | S3Operation::PutBucketTagging { bucket }
            | S3Operation::GetBucketTagging { bucket }
            | S3Operation::DeleteBucketTagging { bucket }
            | S3Operation::PutBucketVersioning { bucket }
            | S3Operation::GetBucketVersioning { bucket }
            | S3Operation::ListObjectVersions { bucket, .. }
            | S3Operation::GetBucketAcl { bucket }
            | S3Operation::PutBucketAcl { bucket }
            | S3Operation::GetBucketOwnershipControls { bucket }
            | S3Operation::PutBucketOwnershipControls { bucket }
            | S3Operation::DeleteBucketOwnershipControls { bucket }
            | S3Operation::GetPublicAccessBlock { bucket }
            | S3Operation::PutPublicAccessBlock { bucket }
            | S3Operation::DeletePublicAccessBlock { bucket }
            | S3Operation::GetBucketPolicy { bucket }
            | S3Operation::PutBucketPolicy { bucket }
            | S3Operation::DeleteBucketPolicy { bucket }
            | S3Operation::GetBucketPolicyStatus { bucket }
            | S3Operation::GetObjectAcl { bucket, .. }
            | S3Operation::PutObjectAcl { bucket, .. }
            | S3Operation::PutObjectTagging { bucket, .. }
            | S3Operation::GetObjectTagging { bucket, .. }
            | S3Operation::DeleteObjectTagging { bucket, .. }
            | S3Operation::ListObjects { bucket, .. }
            | S3Operation::ListObjectsV2 { bucket, .. }
            | S3Operation::ListMultipartUploads { bucket, .. }
            | S3Operation::DeleteObjects { bucket }
            | S3Operation::PostObject { bucket }
            | S3Operation::PutObject { bucket, .. }
            | S3Operation::CopyObject { bucket, .. }
            | S3Operation::GetObject { bucket, .. }
            | S3Operation::HeadObject { bucket, .. }
            | S3Operation::GetObjectAttributes { bucket, .. }
            | S3Operation::DeleteObject { bucket, .. }
            | S3Operation::CreateMultipartUpload { bucket, .. }
            | S3Operation::UploadPart { bucket, .. }
            | S3Operation::UploadPartCopy { bucket, .. }
            | S3Operation::CompleteMultipartUpload { bucket, .. }
            | S3Operation::AbortMultipartUpload { bucket, .. }
            | S3Operation::ListParts { bucket, .. }
            | S3Operation::Unsupported { bucket, .. } => Some(bucket),
        }
    }

    /// The object key the operation acts on (none for a bucket operation).
    pub fn key(&self) -> Option<&str> {
        match self {
            S3Operation::PutObject { key, .. }
            | S3Operation::GetObjectAcl { key, .. }
            | S3Operation::PutObjectAcl { key, .. }
            | S3Operation::PutObjectTagging { key, .. }
            | S3Operation::GetObjectTagging { key, .. }
            | S3Operation::DeleteObjectTagging { key, .. }
            | S3Operation::CopyObject { key, .. }
            | S3Operation::GetObject { key, .. }
            | S3Operation::HeadObject { key, .. }
            | S3Operation::GetObjectAttributes { key, .. }
            | S3Operation::DeleteObject { key, .. }
            | S3Operation::CreateMultipartUpload { key, .. }
            | S3Operation::UploadPart { key, .. }
            | S3Operation::UploadPartCopy { key, .. }
            | S3Operation::CompleteMultipartUpload { key, .. }
            | S3Operation::AbortMultipartUpload { key, .. }
            | S3Operation::ListParts { key, .. } => Some(key),
            S3Operation::Unsupported { key, .. } => key.as_deref(),
            _ => None,
        }
    }

    /// The ARN of the resource the operation acts on: `arn:aws:s3:::bucket` or
    /// `arn:aws:s3:::bucket/key`; `*` for ListBuckets, which acts on no resource.
    pub fn resource_arn(&self) -> String {
        match (self.bucket(), self.key()) {
            (None, _) => "*".to_owned(),
            (Some(bucket), None) => format!("arn:aws:s3:::{bucket}"),
            (Some(bucket), Some(key)) => format!("arn:aws:s3:::{bucket}/{key}"),
        }
    }

    /// The S3 condition keys of the request (the Service Authorization Reference's names), in the order a
    /// policy reader expects them: for object writes the SSE, ACL, storage-class and copy headers, for listings
    /// their `prefix`, `delimiter` and `max-keys`, and `s3:x-amz-content-sha256` whenever the header is sent.
    /// The keys of the signature (`s3:signatureversion`, `s3:authType`) are the front end's to add.
    pub fn condition_keys(&self, headers: &HeaderMap, query: &BTreeMap<String, String>) -> Vec<(String, String)> {
        // An object write's headers; a copy's add its source and metadata directive.
        const WRITE_HEADERS: [&str; 6] = [
            "x-amz-server-side-encryption",
            "x-amz-server-side-encryption-aws-kms-key-id",
            "x-amz-acl",
            "x-amz-storage-class",
            "x-amz-copy-source",
            "x-amz-metadata-directive",
        ];
        // An SSE-C write's algorithm (`s3:x-amz-server-side-encryption-customer-algorithm`).
        const SSE_C_ALGORITHM: &str = "x-amz-server-side-encryption-customer-algorithm";
        // The explicit grants of a write, a new bucket or an ACL.
        const GRANT_HEADERS: [&str; 5] = [
            "x-amz-grant-full-control",
            "x-amz-grant-read",
            "x-amz-grant-read-acp",
            "x-amz-grant-write",
            "x-amz-grant-write-acp",
        ];
        let with_grants = |names: &[&'static str]| names.iter().chain(GRANT_HEADERS.iter()).copied().collect();
        let (header_names, query_names): (Vec<&str>, &[&str]) = match self {
            S3Operation::PutObject { .. } | S3Operation::CreateMultipartUpload { .. } => {
                let mut names: Vec<&str> = with_grants(&WRITE_HEADERS[..4]);
                names.push(SSE_C_ALGORITHM);
                (names, &[])
            }
            S3Operation::CopyObject { .. } => {
                let mut names: Vec<&str> = with_grants(&WRITE_HEADERS);
                names.push(SSE_C_ALGORITHM);
                (names, &[])
            }
            S3Operation::UploadPartCopy { .. } => (WRITE_HEADERS[4..5].to_vec(), &[]),
            S3Operation::CreateBucket { .. } => (with_grants(&["x-amz-acl", "x-amz-object-ownership"]), &[]),
            S3Operation::PutBucketAcl { .. } | S3Operation::PutObjectAcl { .. } => (with_grants(&["x-amz-acl"]), &[]),
            S3Operation::ListObjects { .. }
            | S3Operation::ListObjectsV2 { .. }
            | S3Operation::ListObjectVersions { .. } => (Vec::new(), &["prefix", "delimiter", "max-keys"]),
            _ => (Vec::new(), &[]),
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut keys = Vec::new();
        for name in header_names.iter().copied().chain(["x-amz-content-sha256"]) {
            if let Some(value) = header(name) {
                keys.push((format!("s3:{name}"), value));
            }
        }
        for name in query_names {
            if let Some(value) = query.get(*name) {
                keys.push((format!("s3:{name}"), value.clone()));
            }
        }
        // The tags an object write asks for (`s3:RequestObjectTag/<key>`, `s3:RequestObjectTagKeys`); a malformed
        // header is refused later, by the write itself. PutObjectTagging's come from its body (the service adds
        // them).
        let writes_tags = matches!(
            self,
            S3Operation::PutObject { .. } | S3Operation::CopyObject { .. } | S3Operation::CreateMultipartUpload { .. }
        );
        if writes_tags && let Some(tags) = header("x-amz-tagging").and_then(|h| crate::tagging::parse_header(&h).ok()) {
            keys.extend(crate::tagging::request_condition_keys(&tags));
        }
        keys
    }

    /// What the `NotImplemented` answer to this operation names: the method and the first query
    /// parameter of the request.
    pub fn not_implemented_detail(&self, method: &Method, query: &BTreeMap<String, String>) -> String {
        match self.key() {
            None => not_implemented_bucket(method, query),
            Some(_) => not_implemented_object(method, query),
        }
    }
}

/// `max-uploads` / `max-parts`: 1000 when absent or not a number, at most 1000.
fn list_limit(value: Option<&String>) -> usize {
    value.and_then(|v| v.parse::<usize>().ok()).unwrap_or(MAX_LIST_ENTRIES).min(MAX_LIST_ENTRIES)
}

fn not_implemented_bucket(method: &Method, query: &BTreeMap<String, String>) -> String {
    let name = query.keys().next().cloned().unwrap_or_else(|| method.to_string());
    format!("bucket operation {method} ?{name}")
}

fn not_implemented_object(method: &Method, query: &BTreeMap<String, String>) -> String {
    let name = query.keys().next().cloned().unwrap_or_default();
    format!("object operation {method} ?{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a request as S3 receives it: method, `Host`, path and query, extra headers.
    fn parse(method: &str, host: &str, path_and_query: &str, extra: &[(&str, &str)]) -> Result<S3Operation> {
        let uri: http::Uri = path_and_query.parse().expect("a valid URI");
        let mut headers = HeaderMap::new();
        headers.insert("host", host.parse().expect("a valid host"));
        for (name, value) in extra {
            let name = http::HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
            headers.insert(name, value.parse().expect("a valid header value"));
        }
        let method: Method = method.parse().expect("a valid method");
        let target = Target::of_request(&uri, &headers)?;
        S3Operation::parse(&method, target, &parse_query(uri.query().unwrap_or("")), &headers)
    }

    /// Method, host, path and query, headers; then the operation, action and resource expected.
    type Example<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);

    /// The request examples of the Amazon S3 API Reference (path style on `s3.amazonaws.com`,
    /// virtual-host style on `examplebucket.s3.amazonaws.com`): operation, IAM action, resource.
    #[test]
    fn aws_doc_examples() {
        const PATH: &str = "s3.amazonaws.com";
        const VHOST: &str = "examplebucket.s3.amazonaws.com";
        const COPY: (&str, &str) = ("x-amz-copy-source", "/source-bucket/source-object");
        const FORM: (&str, &str) = ("content-type", "multipart/form-data; boundary=9431149156168");
        const UPLOAD: &str = "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA";
        let bucket_arn = "arn:aws:s3:::examplebucket";
        let object_arn = "arn:aws:s3:::examplebucket/my-image.jpg";
        let cases: &[Example] = &[
            ("GET", PATH, "/", &[], "ListBuckets", "s3:ListAllMyBuckets", "*"),
            ("PUT", VHOST, "/", &[], "CreateBucket", "s3:CreateBucket", bucket_arn),
            ("PUT", PATH, "/examplebucket", &[], "CreateBucket", "s3:CreateBucket", bucket_arn),
            ("HEAD", VHOST, "/", &[], "HeadBucket", "s3:ListBucket", bucket_arn),
            ("DELETE", VHOST, "/", &[], "DeleteBucket", "s3:DeleteBucket", bucket_arn),
            ("GET", VHOST, "/?location", &[], "GetBucketLocation", "s3:GetBucketLocation", bucket_arn),
            ("PUT", VHOST, "/?encryption", &[], "PutBucketEncryption", "s3:PutEncryptionConfiguration", bucket_arn),
            ("GET", VHOST, "/?encryption", &[], "GetBucketEncryption", "s3:GetEncryptionConfiguration", bucket_arn),
            (
                "DELETE",
                VHOST,
                "/?encryption",
                &[],
                "DeleteBucketEncryption",
                "s3:PutEncryptionConfiguration",
                bucket_arn,
            ),
            ("GET", VHOST, "/?list-type=2&prefix=x", &[], "ListObjectsV2", "s3:ListBucket", bucket_arn),
            (
                "GET",
                VHOST,
                "/?list-type=2&max-keys=3&prefix=E&start-after=ExampleGuide.pdf",
                &[],
                "ListObjectsV2",
                "s3:ListBucket",
                bucket_arn,
            ),
            ("GET", VHOST, "/", &[], "ListObjects", "s3:ListBucket", bucket_arn),
            ("GET", VHOST, "/?prefix=N&marker=Ned&max-keys=40", &[], "ListObjects", "s3:ListBucket", bucket_arn),
            ("GET", VHOST, "/?delimiter=/&prefix=photos/2006/", &[], "ListObjects", "s3:ListBucket", bucket_arn),
            (
                "GET",
                VHOST,
                "/?uploads&max-uploads=3",
                &[],
                "ListMultipartUploads",
                "s3:ListBucketMultipartUploads",
                bucket_arn,
            ),
            ("POST", VHOST, "/?delete", &[], "DeleteObjects", "s3:DeleteObject", bucket_arn),
            ("PUT", VHOST, "/my-image.jpg", &[], "PutObject", "s3:PutObject", object_arn),
            ("PUT", PATH, "/examplebucket/my-image.jpg", &[], "PutObject", "s3:PutObject", object_arn),
            ("PUT", VHOST, "/my-image.jpg", &[COPY], "CopyObject", "s3:PutObject", object_arn),
            ("GET", VHOST, "/my-image.jpg", &[], "GetObject", "s3:GetObject", object_arn),
            (
                "GET",
                VHOST,
                "/my-image.jpg?response-content-type=text/plain",
                &[],
                "GetObject",
                "s3:GetObject",
                object_arn,
            ),
            ("HEAD", VHOST, "/my-image.jpg", &[], "HeadObject", "s3:GetObject", object_arn),
            ("DELETE", VHOST, "/my-image.jpg", &[], "DeleteObject", "s3:DeleteObject", object_arn),
            ("POST", VHOST, "/my-image.jpg?uploads", &[], "CreateMultipartUpload", "s3:PutObject", object_arn),
            (
                "PUT",
                VHOST,
                &format!("/my-image.jpg?partNumber=1&uploadId={UPLOAD}"),
                &[],
                "UploadPart",
                "s3:PutObject",
                object_arn,
            ),
            (
                "PUT",
                VHOST,
                &format!("/my-image.jpg?partNumber=2&uploadId={UPLOAD}"),
                &[COPY],
                "UploadPartCopy",
                "s3:PutObject",
                object_arn,
            ),
            (
                "POST",
                VHOST,
                &format!("/my-image.jpg?uploadId={UPLOAD}"),
                &[],
                "CompleteMultipartUpload",
                "s3:PutObject",
                object_arn,
            ),
            (
                "DELETE",
                VHOST,
                &format!("/my-image.jpg?uploadId={UPLOAD}"),
                &[],
                "AbortMultipartUpload",
                "s3:AbortMultipartUpload",
                object_arn,
            ),
            (
                "GET",
                VHOST,
                &format!("/my-image.jpg?max-parts=2&part-number-marker=1&uploadId={UPLOAD}"),
                &[],
                "ListParts",
                "s3:ListMultipartUploadParts",
                object_arn,
            ),
            ("PUT", VHOST, "/?cors", &[], "PutBucketCors", "s3:PutBucketCORS", bucket_arn),
            ("POST", VHOST, "/", &[FORM], "PostObject", "s3:PutObject", bucket_arn),
            ("GET", VHOST, "/?cors", &[], "GetBucketCors", "s3:GetBucketCORS", bucket_arn),
            ("DELETE", VHOST, "/?cors", &[], "DeleteBucketCors", "s3:PutBucketCORS", bucket_arn),
            ("GET", VHOST, "/?acl", &[], "GetBucketAcl", "s3:GetBucketAcl", bucket_arn),
            ("PUT", VHOST, "/?acl", &[], "PutBucketAcl", "s3:PutBucketAcl", bucket_arn),
            ("GET", VHOST, "/my-image.jpg?acl", &[], "GetObjectAcl", "s3:GetObjectAcl", object_arn),
            (
                "GET",
                VHOST,
                "/my-image.jpg?acl&versionId=3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrH",
                &[],
                "GetObjectAcl",
                "s3:GetObjectVersionAcl",
                object_arn,
            ),
            ("PUT", VHOST, "/my-image.jpg?acl", &[], "PutObjectAcl", "s3:PutObjectAcl", object_arn),
            (
                "GET",
                VHOST,
                "/?ownershipControls",
                &[],
                "GetBucketOwnershipControls",
                "s3:GetBucketOwnershipControls",
                bucket_arn,
            ),
            (
                "PUT",
                VHOST,
                "/?ownershipControls",
                &[],
                "PutBucketOwnershipControls",
                "s3:PutBucketOwnershipControls",
                bucket_arn,
            ),
            (
                "DELETE",
                VHOST,
                "/?ownershipControls",
                &[],
                "DeleteBucketOwnershipControls",
                "s3:PutBucketOwnershipControls",
                bucket_arn,
            ),
            (
                "GET",
                VHOST,
                "/?publicAccessBlock",
                &[],
                "GetPublicAccessBlock",
                "s3:GetBucketPublicAccessBlock",
                bucket_arn,
            ),
            (
                "PUT",
                VHOST,
                "/?publicAccessBlock",
                &[],
                "PutPublicAccessBlock",
                "s3:PutBucketPublicAccessBlock",
                bucket_arn,
            ),
            (
                "DELETE",
                VHOST,
                "/?publicAccessBlock",
                &[],
                "DeletePublicAccessBlock",
                "s3:PutBucketPublicAccessBlock",
                bucket_arn,
            ),
            // Unsupported sub-resources parse to their own operations.
            ("GET", VHOST, "/?policyStatus", &[], "GetBucketPolicyStatus", "s3:GetBucketPolicyStatus", bucket_arn),
            ("PUT", VHOST, "/?tagging", &[], "PutBucketTagging", "s3:PutBucketTagging", bucket_arn),
            ("GET", VHOST, "/my-image.jpg?tagging", &[], "GetObjectTagging", "s3:GetObjectTagging", object_arn),
            (
                "GET",
                VHOST,
                "/my-image.jpg?attributes",
                &[],
                "GetObjectAttributes",
                "s3:GetObjectAttributes",
                object_arn,
            ),
            ("GET", VHOST, "/?versioning", &[], "GetBucketVersioning", "s3:GetBucketVersioning", bucket_arn),
            ("GET", VHOST, "/?versions&prefix=x", &[], "ListObjectVersions", "s3:ListBucketVersions", bucket_arn),
            ("DELETE", VHOST, "/?policy", &[], "DeleteBucketPolicy", "s3:DeleteBucketPolicy", bucket_arn),
            (
                "PUT",
                VHOST,
                "/?lifecycle",
                &[],
                "PutBucketLifecycleConfiguration",
                "s3:PutLifecycleConfiguration",
                bucket_arn,
            ),
            ("PUT", VHOST, "/my-image.jpg?retention", &[], "PutObjectRetention", "s3:PutObjectRetention", object_arn),
            (
                "POST",
                VHOST,
                "/my-image.jpg?select&select-type=2",
                &[],
                "SelectObjectContent",
                "s3:GetObject",
                object_arn,
            ),
        ];
        for (method, host, path, headers, name, action, resource) in cases {
            let operation = parse(method, host, path, headers).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            assert_eq!(
                (operation.name(), operation.action(), operation.resource_arn().as_str()),
                (*name, *action, *resource),
                "{method} {host} {path}"
            );
            let reads = operation.name().starts_with("Get")
                || operation.name().starts_with("Head")
                || operation.name().starts_with("List")
                || operation.name() == "SelectObjectContent";
            assert_eq!(operation.mutates(), !reads, "{method} {path}");
        }
    }

    /// The condition keys a policy sees for the requests of the IAM documentation's S3 examples (an SSE-KMS PUT,
    /// a copy, a listing by prefix): each header or parameter once, under its `s3:` name.
    #[test]
    fn condition_keys_of_the_iam_examples() {
        const HOST: &str = "examplebucket.s3.amazonaws.com";
        let key_arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let sse_put = [
            ("x-amz-server-side-encryption", "aws:kms"),
            ("x-amz-server-side-encryption-aws-kms-key-id", key_arn),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ];
        let copy = [("x-amz-copy-source", "/source-bucket/a"), ("x-amz-metadata-directive", "REPLACE")];
        type Pairs<'a> = &'a [(&'static str, &'static str)];
        // (method, path and query, request headers, the condition keys they yield)
        let cases: &[(&str, &str, Pairs, Pairs)] = &[
            (
                "PUT",
                "/doc.txt",
                &sse_put,
                &[
                    ("s3:x-amz-server-side-encryption", "aws:kms"),
                    ("s3:x-amz-server-side-encryption-aws-kms-key-id", key_arn),
                    ("s3:x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                ],
            ),
            (
                "PUT",
                "/doc.txt",
                &copy,
                &[("s3:x-amz-copy-source", "/source-bucket/a"), ("s3:x-amz-metadata-directive", "REPLACE")],
            ),
            ("PUT", "/doc.txt?partNumber=1&uploadId=U", &copy, &[("s3:x-amz-copy-source", "/source-bucket/a")]),
            (
                "GET",
                "/?list-type=2&prefix=home/alice/&delimiter=/&max-keys=10",
                &[],
                &[("s3:prefix", "home/alice/"), ("s3:delimiter", "/"), ("s3:max-keys", "10")],
            ),
            // A read carries no write header even when a client sends one.
            ("GET", "/doc.txt", &sse_put[..1], &[]),
            // The ACL of a write (the IAM documentation's bucket-owner-full-control policy), of a new
            // bucket and its ownership, of an ACL change.
            (
                "PUT",
                "/doc.txt",
                &[("x-amz-acl", "bucket-owner-full-control")],
                &[("s3:x-amz-acl", "bucket-owner-full-control")],
            ),
            (
                "PUT",
                "/",
                &[("x-amz-object-ownership", "BucketOwnerEnforced"), ("x-amz-grant-read", "id=\"abc\"")],
                &[("s3:x-amz-object-ownership", "BucketOwnerEnforced"), ("s3:x-amz-grant-read", "id=\"abc\"")],
            ),
            (
                "PUT",
                "/doc.txt?acl",
                &[("x-amz-grant-full-control", "id=\"abc\"")],
                &[("s3:x-amz-grant-full-control", "id=\"abc\"")],
            ),
        ];
        for (method, path, headers, want) in cases {
            let mut header_map = HeaderMap::new();
            for (name, value) in *headers {
                header_map.insert(*name, value.parse().expect("a header value"));
            }
            let operation = parse(method, HOST, path, headers).expect("a served operation");
            let query = parse_query(path.split_once('?').map_or("", |(_, q)| q));
            let keys = operation.condition_keys(&header_map, &query);
            let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(keys, *want, "{method} {path}");
        }
    }

    #[test]
    fn parameters_are_parsed() {
        let operation = parse("PUT", "s3.amazonaws.com", "/b/k?partNumber=7&uploadId=U", &[]).expect("UploadPart");
        assert_eq!(
            operation,
            S3Operation::UploadPart { bucket: "b".into(), key: "k".into(), upload_id: "U".into(), part_number: 7 }
        );
        let token = BASE64.encode("photos/2");
        let operation = parse(
            "GET",
            "b.localhost:4566",
            &format!("/?list-type=2&continuation-token={token}&start-after=a&delimiter=/&encoding-type=url"),
            &[],
        )
        .expect("ListObjectsV2");
        let S3Operation::ListObjectsV2 { bucket, params } = operation else { panic!("{operation:?}") };
        assert_eq!(bucket, "b");
        assert_eq!(params.start_after.as_deref(), Some("photos/2"));
        assert_eq!(params.start_after_param.as_deref(), Some("a"));
        assert_eq!((params.delimiter.as_deref(), params.url_encode, params.max_keys), (Some("/"), true, MAX_KEYS));
        let operation = parse("GET", "s3.amazonaws.com", "/b/a%20b?response-expires=x", &[]).expect("GetObject");
        assert_eq!(
            operation,
            S3Operation::GetObject {
                bucket: "b".into(),
                key: "a b".into(),
                overrides: vec![("expires", "x".into())],
                part_number: None,
                version: None
            }
        );
        let operation = parse("GET", "s3.amazonaws.com", "/b/k?uploadId=U&max-parts=5000", &[]).expect("ListParts");
        assert!(matches!(operation, S3Operation::ListParts { max_parts: 1000, part_number_marker: 0, .. }));
    }

    #[test]
    fn refusals_keep_their_answers() {
        let refused = |method, path| parse(method, "s3.amazonaws.com", path, &[]).expect_err(path);
        let e = refused("POST", "/");
        assert_eq!((e.code, e.status()), (S3ErrorCode::MethodNotAllowed, http::StatusCode::METHOD_NOT_ALLOWED));
        let e = refused("GET", "/b?foo&bar");
        assert_eq!(e.code, crate::S3ErrorCode::NotImplemented);
        assert!(e.message.contains("bucket operation GET ?bar"), "{}", e.message);
        let e = refused("HEAD", "/b/k?uploadId=U");
        assert!(e.message.contains("object operation HEAD ?uploadId"), "{}", e.message);
        let e = refused("PUT", "/b/k?partNumber=x&uploadId=U");
        assert_eq!(e.code, crate::S3ErrorCode::InvalidArgument);
        let e = refused("GET", "/b?list-type=2&continuation-token=%21");
        assert_eq!(e.message, "The continuation token provided is incorrect");
        let e = refused("GET", "/b?max-keys=-1");
        assert_eq!(e.code, crate::S3ErrorCode::InvalidArgument);
        // A copy source on a plain PUT wins over an unsupported sub-resource, as before operations were
        // typed; a supported sub-resource names its operation, as in S3.
        let copy = parse("PUT", "s3.amazonaws.com", "/b/k?retention", &[("x-amz-copy-source", "/a/b")]).unwrap();
        assert_eq!(copy.name(), "CopyObject");
        for (sub, name) in [("tagging", "PutObjectTagging"), ("acl", "PutObjectAcl")] {
            let path = format!("/b/k?{sub}");
            let operation = parse("PUT", "s3.amazonaws.com", &path, &[("x-amz-copy-source", "/a/b")]).unwrap();
            assert_eq!(operation.name(), name);
        }
    }

    /// The operation names of the rows of docs/api-coverage.md's S3 table whose status is `status`.
    fn documented(status: &str) -> Vec<&'static str> {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api-coverage.md"));
        let section = doc.split("\n## S3 ").nth(1).and_then(|s| s.split("\n## ").next()).expect("an S3 section");
        let mut names: Vec<&str> = section
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                (cells.len() > 3 && cells[2] == status).then(|| cells[1])
            })
            .flat_map(|names| names.split(',').map(str::trim))
            .collect();
        names.sort_unstable();
        names
    }

    /// docs/api-coverage.md's S3 table lists, as "not supported", exactly the operations kmsim
    /// answers NotImplemented, and as "supported" every operation it serves.
    #[test]
    fn coverage_doc_lists_the_operations() {
        let mut unsupported: Vec<&str> = Unsupported::ALL.iter().map(|u| u.name()).collect();
        unsupported.sort_unstable();
        assert_eq!(documented("not supported"), unsupported);
        let supported = documented("supported");
        let served = [
            ("GET", "/"),
            ("PUT", "/b"),
            ("HEAD", "/b"),
            ("DELETE", "/b"),
            ("GET", "/b?location"),
            ("PUT", "/b?encryption"),
            ("GET", "/b?encryption"),
            ("DELETE", "/b?encryption"),
            ("GET", "/b"),
            ("GET", "/b?list-type=2"),
            ("GET", "/b?uploads"),
            ("POST", "/b?delete"),
            ("PUT", "/b/k"),
            ("GET", "/b/k"),
            ("HEAD", "/b/k"),
            ("DELETE", "/b/k"),
            ("POST", "/b/k?uploads"),
            ("PUT", "/b/k?partNumber=1&uploadId=U"),
            ("POST", "/b/k?uploadId=U"),
            ("DELETE", "/b/k?uploadId=U"),
            ("GET", "/b/k?uploadId=U"),
            ("GET", "/b?acl"),
            ("PUT", "/b?acl"),
            ("GET", "/b/k?acl"),
            ("PUT", "/b/k?acl"),
            ("GET", "/b?ownershipControls"),
            ("PUT", "/b?ownershipControls"),
            ("DELETE", "/b?ownershipControls"),
            ("GET", "/b?publicAccessBlock"),
            ("PUT", "/b?publicAccessBlock"),
            ("DELETE", "/b?publicAccessBlock"),
        ];
        let copies = [("PUT", "/b/k"), ("PUT", "/b/k?partNumber=1&uploadId=U")];
        let requests =
            served.iter().map(|r| (r, &[][..])).chain(copies.iter().map(|r| (r, &[("x-amz-copy-source", "/a/b")][..])));
        for ((method, path), headers) in requests {
            let operation = parse(method, "s3.amazonaws.com", path, headers).expect(path);
            assert!(supported.contains(&operation.name()), "{} is not documented as supported", operation.name());
        }
    }
}
