//! How an S3 or OBS request carries its signature ([`Carrier`]): in the `Authorization` header
//! (SigV4, or V2-style `AWS` / `OBS`) or in the query string (a presigned SigV4 URL, or a V2 URL:
//! S3's `AWSAccessKeyId` / `Signature` / `Expires`, OBS's temporary `AccessKeyId` / `Signature` /
//! `Expires`). The carrier decides which verifier runs, how S3 words a refusal (header errors are
//! `AuthorizationHeaderMalformed`, query errors `AuthorizationQueryParametersError` or `AccessDenied`),
//! and which query parameters are authentication or headers in disguise rather than part of the
//! operation.

use std::collections::BTreeMap;

use auth::AuthError;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::s3_error::{Result, S3Error, S3ErrorCode};

/// The parameters of a presigned SigV4 URL (in any case, as S3 matches them).
const SIGV4_QUERY_PARAMS: [&str; 8] = [
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signedheaders",
    "x-amz-signature",
    "x-amz-security-token",
    "x-amz-content-sha256",
];
/// The parameters of V2 query-string authentication.
const V2_QUERY_PARAMS: [&str; 4] = ["AWSAccessKeyId", "AccessKeyId", "Signature", "Expires"];

/// Where a request's signature travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// Nowhere: an unsigned request, made by the anonymous requester (which only what ACLs grant
    /// `AllUsers` allows).
    Unsigned,
    /// `Authorization: AWS4-HMAC-SHA256 ...` (or any other `Authorization` that is not V2's).
    V4Header,
    /// `X-Amz-Algorithm`, `X-Amz-Credential`, ... `X-Amz-Signature` in the query.
    V4Query,
    /// `Authorization: AWS AK:sig` or `OBS AK:sig`.
    V2Header,
    /// `AWSAccessKeyId` (S3) or `AccessKeyId` (OBS), `Expires` and `Signature` in the query.
    V2Query,
}

impl Carrier {
    /// The carrier of a request; S3 refuses a request that carries more than one signature.
    pub fn of_request(headers: &HeaderMap, query: &BTreeMap<String, String>) -> Result<Self> {
        let authorization = headers.get(header::AUTHORIZATION);
        let v4_query = query.contains_key("X-Amz-Algorithm")
            || query.contains_key("X-Amz-Credential")
            || query.contains_key("X-Amz-Signature");
        let v2_query = query.contains_key("Signature")
            || query.contains_key("AWSAccessKeyId")
            || query.contains_key("AccessKeyId");
        if usize::from(authorization.is_some()) + usize::from(v4_query) + usize::from(v2_query) > 1 {
            return Err(S3Error::invalid_argument(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string \
                 parameter or the Authorization header should be specified",
            )
            .with("ArgumentName", "Authorization")
            .with("ArgumentValue", authorization.and_then(|v| v.to_str().ok()).unwrap_or("")));
        }
        let v2_header =
            authorization.and_then(|v| v.to_str().ok()).and_then(auth::sigv2::Dialect::of_authorization).is_some();
        Ok(match () {
            () if v4_query => Carrier::V4Query,
            () if v2_query => Carrier::V2Query,
            () if v2_header => Carrier::V2Header,
            () if authorization.is_some() => Carrier::V4Header,
            () => Carrier::Unsigned,
        })
    }

    /// Whether the signature travels in the query (a presigned URL).
    pub fn is_query(self) -> bool {
        matches!(self, Carrier::V4Query | Carrier::V2Query)
    }

    /// How S3 answers a signature it refuses, carried this way.
    pub fn error(self, error: AuthError) -> S3Error {
        match (self, error) {
            (_, AuthError::Missing) => S3Error::access_denied("Access Denied"),
            (Carrier::V4Query, AuthError::Malformed(m) | AuthError::BadScope(m)) => {
                S3Error::new(S3ErrorCode::AuthorizationQueryParametersError, m)
            }
            (Carrier::V2Query, AuthError::Malformed(m) | AuthError::BadScope(m)) => S3Error::access_denied(m),
            (_, AuthError::Malformed(m) | AuthError::BadScope(m)) => {
                S3Error::new(S3ErrorCode::AuthorizationHeaderMalformed, m)
            }
            (_, AuthError::UnknownAccessKey) => S3Error::new(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.",
            ),
            (_, AuthError::InvalidToken) => {
                S3Error::new(S3ErrorCode::InvalidToken, "The provided token is malformed or otherwise invalid.")
            }
            (_, AuthError::ExpiredToken) => S3Error::new(S3ErrorCode::ExpiredToken, "The provided token has expired."),
            (_, AuthError::Skewed { request_time, server_time }) => S3Error::new(
                S3ErrorCode::RequestTimeTooSkewed,
                "The difference between the request time and the current time is too large.",
            )
            .with("RequestTime", request_time)
            .with("ServerTime", server_time)
            .with("MaxAllowedSkewMilliseconds", "900000"),
            (_, AuthError::Expired { expires, server_time }) => {
                S3Error::access_denied("Request has expired").with("Expires", expires).with("ServerTime", server_time)
            }
            (_, AuthError::PayloadHashMismatch) => S3Error::content_sha256_mismatch(),
            // V2-style signatures have no canonical request.
            (_, AuthError::SignatureMismatch { string_to_sign, canonical_request }) if canonical_request.is_empty() => {
                S3Error::signature_does_not_match().with("StringToSign", string_to_sign)
            }
            (_, AuthError::SignatureMismatch { string_to_sign, canonical_request }) => {
                S3Error::signature_does_not_match()
                    .with("StringToSign", string_to_sign)
                    .with("CanonicalRequest", canonical_request)
            }
        }
    }

    /// Splits a verified request's query into what names the operation and the headers a presigned
    /// URL carries as parameters: the JavaScript SDK v3 puts `x-amz-checksum-crc32`,
    /// `x-amz-sdk-checksum-algorithm` and `x-amz-checksum-mode` there, botocore's V2 URLs every
    /// `x-amz-*` header and `Content-Type` / `Content-MD5`. S3 applies them as headers (a checksum
    /// parameter is verified like the header); a header the request sends itself wins. The
    /// authentication parameters themselves are dropped.
    pub fn split_query(self, query: BTreeMap<String, String>) -> Result<(BTreeMap<String, String>, HeaderMap)> {
        let mut remaining = BTreeMap::new();
        let mut headers = HeaderMap::new();
        for (name, value) in query {
            let lower = name.to_ascii_lowercase();
            let authentication = match self {
                Carrier::V4Query => SIGV4_QUERY_PARAMS.contains(&lower.as_str()),
                Carrier::V2Query => V2_QUERY_PARAMS.contains(&name.as_str()),
                Carrier::Unsigned | Carrier::V4Header | Carrier::V2Header => false,
            };
            let is_header = self.is_query() && (lower.starts_with("x-amz-") || lower.starts_with("x-obs-"))
                || self == Carrier::V2Query && (lower == "content-type" || lower == "content-md5");
            match () {
                () if authentication => {}
                () if is_header => {
                    let header_name = HeaderName::from_bytes(lower.as_bytes()).map_err(|_| bad_parameter(&name))?;
                    let header_value = HeaderValue::from_str(&value).map_err(|_| bad_parameter(&name))?;
                    headers.append(header_name, header_value);
                }
                () => {
                    remaining.insert(name, value);
                }
            }
        }
        Ok((remaining, headers))
    }
}

/// A header-like query parameter that cannot be a header.
fn bad_parameter(name: &str) -> S3Error {
    S3Error::invalid_argument(format!("The query parameter {name} is not a valid header"))
        .with("ArgumentName", name.to_owned())
}

/// The `SignedHeaders=` list of a SigV4 `Authorization` header.
pub fn signed_headers_of(authorization: &str) -> Option<&str> {
    authorization.split([',', ' ']).find_map(|part| part.trim().strip_prefix("SignedHeaders="))
}

/// S3 refuses a SigV4 request (header or presigned) that carries `x-amz-*` headers its signature
/// does not cover (`x-obs-*` likewise in the OBS dialect): whoever holds a presigned URL must not
/// add encryption or metadata headers the signer did not choose.
pub fn check_all_signed(headers: &HeaderMap, signed: &str) -> Result<()> {
    let signed: Vec<&str> = signed.split(';').map(str::trim).collect();
    let mut unsigned: Vec<&str> = headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| name.starts_with("x-amz-") || name.starts_with("x-obs-"))
        .filter(|name| !signed.iter().any(|s| s.eq_ignore_ascii_case(name)))
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.dedup();
    Err(S3Error::access_denied("There were headers present in the request which were not signed")
        .with("HeadersNotSigned", unsigned.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn carriers() {
        let none = HeaderMap::new();
        let mut v2 = HeaderMap::new();
        v2.insert(header::AUTHORIZATION, HeaderValue::from_static("AWS ak:sig"));
        let mut v4 = HeaderMap::new();
        v4.insert(header::AUTHORIZATION, HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=..."));
        let presigned_v4 = query(&[("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Signature", "ab")]);
        let presigned_v2 = query(&[("AWSAccessKeyId", "ak"), ("Signature", "s"), ("Expires", "1")]);
        let obs_url = query(&[("AccessKeyId", "ak"), ("Signature", "s"), ("Expires", "1")]);
        assert_eq!(Carrier::of_request(&none, &query(&[])).unwrap(), Carrier::Unsigned);
        assert_eq!(Carrier::of_request(&v4, &query(&[])).unwrap(), Carrier::V4Header);
        assert_eq!(Carrier::of_request(&v2, &query(&[("acl", "")])).unwrap(), Carrier::V2Header);
        assert_eq!(Carrier::of_request(&none, &presigned_v4).unwrap(), Carrier::V4Query);
        assert_eq!(Carrier::of_request(&none, &presigned_v2).unwrap(), Carrier::V2Query);
        assert_eq!(Carrier::of_request(&none, &obs_url).unwrap(), Carrier::V2Query);
        // An `Expires` alone is no signature; two signatures are refused.
        assert_eq!(Carrier::of_request(&none, &query(&[("Expires", "1")])).unwrap(), Carrier::Unsigned);
        let both: BTreeMap<String, String> = presigned_v4.clone().into_iter().chain(presigned_v2.clone()).collect();
        for (headers, q) in [(&v2, &presigned_v4), (&v4, &presigned_v2), (&none, &both)] {
            let error = Carrier::of_request(headers, q).unwrap_err();
            assert_eq!(error.code, S3ErrorCode::InvalidArgument);
        }
    }

    #[test]
    fn presigned_queries_give_up_authentication_and_headers() {
        let q = query(&[
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Signature", "ab"),
            ("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"),
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
            ("x-id", "PutObject"),
            ("versionId", "v1"),
        ]);
        let (rest, headers) = Carrier::V4Query.split_query(q.clone()).unwrap();
        assert_eq!(rest, query(&[("versionId", "v1"), ("x-id", "PutObject")]));
        assert_eq!(headers["x-amz-checksum-crc32"], "AAAAAA==");
        assert_eq!(headers["x-amz-sdk-checksum-algorithm"], "CRC32");
        assert_eq!(headers.len(), 2);
        // A header-signed request keeps its query as it is.
        let (rest, headers) = Carrier::V4Header.split_query(q.clone()).unwrap();
        assert_eq!(rest, q);
        assert!(headers.is_empty());
        let v2 = query(&[
            ("AWSAccessKeyId", "ak"),
            ("Signature", "s"),
            ("Expires", "1"),
            ("x-amz-server-side-encryption", "aws:kms"),
            ("content-type", "text/plain"),
            ("acl", ""),
        ]);
        let (rest, headers) = Carrier::V2Query.split_query(v2).unwrap();
        assert_eq!(rest, query(&[("acl", "")]));
        assert_eq!(headers["x-amz-server-side-encryption"], "aws:kms");
        assert_eq!(headers["content-type"], "text/plain");
        let bad = query(&[("X-Amz-Signature", "ab"), ("x-amz-meta-a", "line\nbreak")]);
        assert_eq!(Carrier::V4Query.split_query(bad).unwrap_err().code, S3ErrorCode::InvalidArgument);
    }

    #[test]
    fn query_errors_are_worded_as_s3_words_them() {
        let malformed = || AuthError::Malformed("m".into());
        let v4 = Carrier::V4Query.error(malformed());
        assert_eq!((v4.code, v4.status().as_u16()), (S3ErrorCode::AuthorizationQueryParametersError, 400));
        let v2 = Carrier::V2Query.error(malformed());
        assert_eq!((v2.code, v2.status().as_u16()), (S3ErrorCode::AccessDenied, 403));
        let header = Carrier::V4Header.error(malformed());
        assert_eq!((header.code, header.status().as_u16()), (S3ErrorCode::AuthorizationHeaderMalformed, 400));
        let expired = Carrier::V2Query.error(AuthError::Expired { expires: "e".into(), server_time: "s".into() });
        assert_eq!((expired.code, expired.message.as_str()), (S3ErrorCode::AccessDenied, "Request has expired"));
    }
}
