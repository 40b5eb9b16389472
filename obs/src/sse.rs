//! Server-side encryption as a write asks for it ([`SseRequest`]) and customer-provided keys
//! ([`CustomerKey`]); the S3 front end reads them from headers in `sse_headers`.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

/// The encryption-context key S3 binds every SSE-KMS data key to.
pub const S3_ARN_CONTEXT_KEY: &str = "aws:s3:arn";
/// The service-managed key of S3.
pub const S3_MANAGED_ALIAS: &str = "alias/aws/s3";
/// The service-managed key of OBS (`obs/default` in the OTC dialect), used when an OBS request asks
/// for SSE-KMS without naming a key; created on first use like [`S3_MANAGED_ALIAS`].
pub const OBS_MANAGED_ALIAS: &str = "alias/obs/default";

/// A customer-provided key (SSE-C), as given on a request. Never printed, zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerKey {
    /// The 256-bit key.
    pub key: Zeroizing<[u8; 32]>,
    /// The base64 MD5 of the key the client sent, echoed on responses.
    pub key_md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKey(..)")
    }
}

/// The encryption a write asks for, after defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SseRequest {
    /// No encryption.
    #[default]
    None,
    /// SSE-S3 (`AES256`).
    S3,
    /// SSE-C: the customer's key, given on every request.
    Customer(CustomerKey),
    /// SSE-KMS with this key (`None`: the service-managed `alias/aws/s3`).
    Kms {
        /// Key id, ARN, alias or alias ARN.
        key_id: Option<String>,
        /// The user context, decoded, and as sent (base64 JSON).
        user_context: Option<(BTreeMap<String, String>, String)>,
        /// S3 Bucket Key requested.
        bucket_key: bool,
    },
}
