//! The SSE headers of S3 requests and responses: a write's encryption headers read into an
//! [`SseRequest`] (checked against each other and against the bucket default), SSE-C keys read into
//! a [`CustomerKey`], and the headers echoed on responses. The core's side is [`crate::sse`].

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderMap;
use zeroize::Zeroizing;

use crate::model::{BucketEncryption, SseRecord};
use crate::s3_error::S3Error;
use crate::sse::{CustomerKey, S3_ARN_CONTEXT_KEY, SseRequest};

/// `x-amz-server-side-encryption`.
pub const SSE: &str = "x-amz-server-side-encryption";
/// `x-amz-server-side-encryption-aws-kms-key-id`.
pub const SSE_KMS_KEY_ID: &str = "x-amz-server-side-encryption-aws-kms-key-id";
/// `x-amz-server-side-encryption-context`.
pub const SSE_CONTEXT: &str = "x-amz-server-side-encryption-context";
/// `x-amz-server-side-encryption-bucket-key-enabled`.
pub const SSE_BUCKET_KEY: &str = "x-amz-server-side-encryption-bucket-key-enabled";
/// `x-amz-server-side-encryption-customer-algorithm` (SSE-C).
pub const SSE_C_ALGORITHM: &str = "x-amz-server-side-encryption-customer-algorithm";
/// `x-amz-server-side-encryption-customer-key` (SSE-C, base64 of 32 bytes).
pub const SSE_C_KEY: &str = "x-amz-server-side-encryption-customer-key";
/// `x-amz-server-side-encryption-customer-key-MD5` (base64).
pub const SSE_C_KEY_MD5: &str = "x-amz-server-side-encryption-customer-key-md5";
impl CustomerKey {
    /// Reads the SSE-C headers whose names start with `prefix` (`x-amz-` for the object,
    /// `x-amz-copy-source-` for a copy source). `None` when they are absent.
    pub fn from_headers(headers: &HeaderMap, prefix: &str) -> Result<Option<Self>, S3Error> {
        let name = |suffix: &str| format!("{prefix}server-side-encryption-customer-{suffix}");
        let algorithm = header(headers, &name("algorithm"))?;
        let key = header(headers, &name("key"))?;
        let md5 = header(headers, &name("key-md5"))?;
        let (algorithm, key, md5) = match (algorithm, key, md5) {
            (None, None, None) => return Ok(None),
            (Some(a), Some(k), Some(m)) => (a, k, m),
            _ => {
                return Err(S3Error::invalid_argument(
                    "Requests specifying Server Side Encryption with Customer provided keys must provide the algorithm, the key and its MD5.",
                ));
            }
        };
        if algorithm != "AES256" {
            return Err(S3Error::invalid_argument(
                "The encryption algorithm specified is not valid: only AES256 is supported for customer-provided keys",
            )
            .with("ArgumentName", name("algorithm"))
            .with("ArgumentValue", algorithm));
        }
        let raw = Zeroizing::new(BASE64.decode(key.trim()).unwrap_or_default());
        if raw.len() != 32 {
            return Err(S3Error::invalid_argument("The secret key was invalid for the specified algorithm."));
        }
        let computed = BASE64.encode(<md5::Md5 as md5::Digest>::digest(raw.as_slice()));
        if computed != md5.trim() {
            return Err(S3Error::invalid_argument(
                "The calculated MD5 hash of the key did not match the hash that was provided.",
            ));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&raw);
        Ok(Some(CustomerKey { key: bytes, key_md5: computed }))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, S3Error> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| S3Error::invalid_argument(format!("{name} is not valid text"))))
        .transpose()
}

impl SseRequest {
    /// Reads the SSE headers of a write (PutObject, CopyObject destination, CreateMultipartUpload),
    /// falling back to the bucket default when the request names no encryption.
    pub fn from_headers(headers: &HeaderMap, default: Option<&BucketEncryption>) -> Result<Self, S3Error> {
        let algorithm = header(headers, SSE)?;
        let key_id = header(headers, SSE_KMS_KEY_ID)?;
        let context = header(headers, SSE_CONTEXT)?;
        let bucket_key = match header(headers, SSE_BUCKET_KEY)? {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
            Some(v) => {
                return Err(S3Error::invalid_argument(format!("{SSE_BUCKET_KEY} must be true or false, not {v}")));
            }
        };
        if let Some(customer) = CustomerKey::from_headers(headers, "x-amz-")? {
            if algorithm.is_some() || key_id.is_some() || context.is_some() {
                return Err(S3Error::invalid_argument(
                    "Server Side Encryption with Customer provided key is incompatible with the encryption method specified",
                ));
            }
            return Ok(SseRequest::Customer(customer));
        }
        match algorithm {
            None => {
                if key_id.is_some() || context.is_some() {
                    return Err(S3Error::invalid_argument(
                        "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms",
                    ));
                }
                Ok(match default {
                    Some(d) if d.algorithm == "aws:kms" => SseRequest::Kms {
                        key_id: d.kms_key_id.clone(),
                        user_context: None,
                        bucket_key: bucket_key.unwrap_or(d.bucket_key_enabled),
                    },
                    Some(d) if d.algorithm == "AES256" => SseRequest::S3,
                    _ => SseRequest::None,
                })
            }
            Some("aws:kms") => {
                if key_id.is_some_and(str::is_empty) {
                    return Err(S3Error::invalid_argument(
                        "x-amz-server-side-encryption-aws-kms-key-id must not be empty",
                    ));
                }
                let user_context = context.map(|c| decode_context(c).map(|map| (map, c.to_owned()))).transpose()?;
                let bucket_key = bucket_key.unwrap_or_else(|| default.is_some_and(|d| d.bucket_key_enabled));
                Ok(SseRequest::Kms { key_id: key_id.map(str::to_owned), user_context, bucket_key })
            }
            Some("AES256") => {
                if key_id.is_some() || context.is_some() {
                    return Err(S3Error::invalid_argument(
                        "Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms",
                    ));
                }
                Ok(SseRequest::S3)
            }
            Some("aws:kms:dsse") => Err(S3Error::not_implemented("DSSE-KMS (aws:kms:dsse)")),
            Some(other) => {
                Err(S3Error::invalid_argument(format!("The encryption method specified is not supported: {other}"))
                    .with("ArgumentName", SSE)
                    .with("ArgumentValue", other))
            }
        }
    }
}

/// Decodes `x-amz-server-side-encryption-context`: base64 of a JSON object of strings.
fn decode_context(value: &str) -> Result<BTreeMap<String, String>, S3Error> {
    let bad = || {
        S3Error::invalid_argument(
            "The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string holding JSON which represents a string-string map",
        )
    };
    let raw = BASE64.decode(value).map_err(|_| bad())?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if map.contains_key(S3_ARN_CONTEXT_KEY) {
        return Err(S3Error::invalid_argument("The encryption context may not name aws:s3:arn; S3 sets it"));
    }
    Ok(map)
}

/// The headers a response about an object with `sse` carries.
pub fn response_headers(sse: &SseRecord) -> Vec<(&'static str, String)> {
    match sse {
        SseRecord::None => Vec::new(),
        SseRecord::S3 => vec![(SSE, "AES256".to_owned())],
        // The key's MD5 is not stored; the front end echoes the request's.
        SseRecord::Customer { .. } => vec![(SSE_C_ALGORITHM, "AES256".to_owned())],
        SseRecord::Kms { key_arn, user_context, bucket_key, .. } => {
            let mut out = vec![(SSE, "aws:kms".to_owned()), (SSE_KMS_KEY_ID, key_arn.to_string())];
            if let Some(context) = user_context {
                out.push((SSE_CONTEXT, context.clone()));
            }
            if *bucket_key {
                out.push((SSE_BUCKET_KEY, "true".to_owned()));
            }
            out
        }
    }
}

/// GET and HEAD of an SSE-KMS object must not carry SSE headers (only SSE-C ones).
pub fn refuse_on_read(headers: &HeaderMap) -> Result<(), S3Error> {
    for name in [SSE, SSE_KMS_KEY_ID, SSE_CONTEXT] {
        if headers.contains_key(name) {
            return Err(S3Error::invalid_argument(format!("The {name} header is not supported for this operation.")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn conflicting_headers_are_refused() {
        let cases: &[&[(&'static str, &str)]] = &[
            &[(SSE_KMS_KEY_ID, "k")],
            &[(SSE, "AES256"), (SSE_KMS_KEY_ID, "k")],
            &[(SSE, "rot13")],
            &[(SSE, "aws:kms"), (SSE_CONTEXT, "not base64!")],
            &[
                (SSE, "aws:kms"),
                (SSE_C_ALGORITHM, "AES256"),
                (SSE_C_KEY, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                (SSE_C_KEY_MD5, "cLyPS3KoaSFGi/joRB3OUQ=="),
            ],
            &[(SSE_C_ALGORITHM, "AES256")],
            &[
                (SSE_C_ALGORITHM, "AES128"),
                (SSE_C_KEY, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                (SSE_C_KEY_MD5, "zZ2D0dl2VF1KqHkpNDkAGg=="),
            ],
            &[(SSE_C_ALGORITHM, "AES256"), (SSE_C_KEY, "c2hvcnQ="), (SSE_C_KEY_MD5, "zZ2D0dl2VF1KqHkpNDkAGg==")],
            &[
                (SSE_C_ALGORITHM, "AES256"),
                (SSE_C_KEY, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
                (SSE_C_KEY_MD5, "AAAAAAAAAAAAAAAAAAAAAA=="),
            ],
            &[(SSE, "aws:kms"), (SSE_BUCKET_KEY, "maybe")],
        ];
        for case in cases {
            assert_eq!(
                SseRequest::from_headers(&headers(case), None).unwrap_err().code,
                crate::S3ErrorCode::InvalidArgument,
                "{case:?}"
            );
        }
    }

    #[test]
    fn kms_with_context_and_bucket_default() {
        let context = BASE64.encode(r#"{"team":"x"}"#);
        let sse = SseRequest::from_headers(&headers(&[(SSE, "aws:kms"), (SSE_CONTEXT, &context)]), None).unwrap();
        let SseRequest::Kms { key_id: None, user_context: Some((map, raw)), bucket_key: false } = sse else {
            panic!("{sse:?}")
        };
        assert_eq!(map["team"], "x");
        assert_eq!(raw, context);
        let default = BucketEncryption {
            algorithm: "aws:kms".into(),
            kms_key_id: Some("alias/b".into()),
            bucket_key_enabled: true,
        };
        let sse = SseRequest::from_headers(&HeaderMap::new(), Some(&default)).unwrap();
        assert_eq!(sse, SseRequest::Kms { key_id: Some("alias/b".into()), user_context: None, bucket_key: true });
    }
}
