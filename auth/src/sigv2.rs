//! V2-style request signatures: AWS Signature Version 2 (`Authorization: AWS AK:sig`) and the OBS
//! signature of Open Telekom Cloud / Huawei Cloud (`Authorization: OBS AK:sig`).
//!
//! Both sign the same string, `base64(HMAC-SHA1(SK, StringToSign))`, with
//!
//! ```text
//! StringToSign = VERB \n Content-MD5 \n Content-Type \n Date \n CanonicalizedHeaders CanonicalizedResource
//! ```
//!
//! and differ only in the header family they canonicalize (`x-amz-*` or `x-obs-*`). `Date` is the
//! empty string when the family's own date header (`x-amz-date`, `x-obs-date`) is sent; that header
//! is then the request time and is signed among the canonical headers. The canonical resource is
//! `/bucket/key` (the bucket of a virtual-host request is put in front of the path) followed by the
//! signed sub-resources (`?acl`, `?uploads`, `?partNumber=1&uploadId=...`, `response-*`
//! overrides...), sorted by name, values decoded. The sub-resource lists come from the S3
//! documentation, botocore's `HmacV1Auth` and esdk-obs-python's `obs/const.py`.
//!
//! Verification ([`Verifier::verify_v2`]) looks the access key up in the verifier's [`crate::Accounts`],
//! checks the clock skew (±15 minutes) and compares signatures in constant time, returning the same
//! [`AuthError`]s as [`crate::sigv4`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use percent_encoding::percent_decode_str;
use sha1::Sha1;
use shared::time::{format_amz_date, parse_amz_date};
use subtle::ConstantTimeEq;

use crate::accounts::AccessKey;
use crate::verifier::{AuthError, MAX_CLOCK_SKEW_SECS, RequestParts, Scheme, Verified, Verifier};

type HmacSha1 = Hmac<Sha1>;

/// Sub-resources AWS signs (S3 developer guide, "Constructing the CanonicalizedResource element",
/// and botocore's `HmacV1Auth.QSAOfInterest`), matched by exact name.
const AWS_SUB_RESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Sub-resources esdk-obs-python signs (`ALLOWED_RESOURCE_PARAMTER_NAMES` in `obs/const.py`),
/// matched by lowercase name, in both its OBS and its AWS V2 mode.
const OBS_SUB_RESOURCES: &[&str] = &[
    "acl",
    "append",
    "backtosource",
    "bucketstatus",
    "cors",
    "delete",
    "deletebucket",
    "directcoldaccess",
    "dispolicy",
    "encryption",
    "fileinterface",
    "inventory",
    "length",
    "lifecycle",
    "location",
    "logging",
    "metadata",
    "modify",
    "name",
    "notification",
    "object-lock",
    "obsalias",
    "obsbucketalias",
    "obscompresspolicy",
    "obsworkflowtriggerpolicy",
    "partnumber",
    "policy",
    "policystatus",
    "position",
    "publicaccessblock",
    "quota",
    "rename",
    "replication",
    "requestpayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "retention",
    "storageclass",
    "storageinfo",
    "storagepolicy",
    "tagging",
    "torrent",
    "truncate",
    "uploadid",
    "uploads",
    "versionid",
    "versioning",
    "versions",
    "website",
    "x-image-process",
    "x-image-save-bucket",
    "x-image-save-object",
    "x-oss-process",
    "x-workflow-execution-state",
    "x-workflow-execution-type",
    "x-workflow-graph-name",
    "x-workflow-limit",
    "x-workflow-next-marker",
    "x-workflow-prefix",
    "x-workflow-start",
    "x-workflow-template-name",
];

/// Which V2-style signature a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `Authorization: AWS AK:signature`, `x-amz-*` headers (S3 SigV2).
    Aws,
    /// `Authorization: OBS AK:signature`, `x-obs-*` headers (Open Telekom Cloud / Huawei Cloud OBS).
    Obs,
}

impl Dialect {
    /// The scheme word before the credentials in the `Authorization` header.
    pub fn scheme(self) -> &'static str {
        match self {
            Dialect::Aws => "AWS",
            Dialect::Obs => "OBS",
        }
    }

    /// The prefix of the headers this dialect canonicalizes.
    pub fn header_prefix(self) -> &'static str {
        match self {
            Dialect::Aws => "x-amz-",
            Dialect::Obs => "x-obs-",
        }
    }

    /// The dialect's own date header, which blanks `Date` in the string to sign.
    pub fn date_header(self) -> &'static str {
        match self {
            Dialect::Aws => "x-amz-date",
            Dialect::Obs => "x-obs-date",
        }
    }

    /// The dialect's header (and query parameter) carrying the session token of temporary credentials.
    pub fn security_token_header(self) -> &'static str {
        match self {
            Dialect::Aws => "x-amz-security-token",
            Dialect::Obs => "x-obs-security-token",
        }
    }

    /// The dialect of an `Authorization` header value, if it is a V2-style one.
    pub fn of_authorization(value: &str) -> Option<Self> {
        if value.starts_with("AWS ") {
            Some(Dialect::Aws)
        } else if value.starts_with("OBS ") {
            Some(Dialect::Obs)
        } else {
            None
        }
    }
}

/// The parsed `Authorization: AWS|OBS AK:signature` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// AWS or OBS.
    pub dialect: Dialect,
    /// The access key id.
    pub access_key_id: &'a str,
    /// The base64 signature.
    pub signature: &'a str,
}

impl<'a> Authorization<'a> {
    /// Parses the header value.
    pub fn parse(value: &'a str) -> Result<Self, AuthError> {
        let dialect = Dialect::of_authorization(value)
            .ok_or_else(|| AuthError::Malformed("Authorization header requires the AWS or OBS scheme.".into()))?;
        let credentials = value[4..].trim();
        let (access_key_id, signature) = credentials
            .rsplit_once(':')
            .filter(|(ak, sig)| !ak.is_empty() && !sig.is_empty() && !ak.contains(char::is_whitespace))
            .ok_or_else(|| {
                AuthError::Malformed(format!(
                    "{} authorization header is invalid. Expected AccessKeyId:Signature",
                    dialect.scheme()
                ))
            })?;
        Ok(Authorization { dialect, access_key_id, signature })
    }
}

/// Whose rules a V2 string to sign follows. S3 (its developer guide, botocore's `HmacV1Auth`,
/// s3cmd) and esdk-obs-python differ in three places, and kmsim serves both:
///
/// | | S3 | esdk-obs-python |
/// |---|---|---|
/// | sub-resources | S3's list, exact names | OBS's list, any case, and every parameter of the header family |
/// | `x-amz-*` query parameters of a presigned URL | request headers moved into the URL | sub-resources |
/// | a path-style bucket (`/bucket`) | `/bucket/` | `/bucket` |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// Amazon S3's.
    S3,
    /// Huawei's OBS SDK's, in both its OBS and its AWS V2 mode.
    Obs,
}

impl Convention {
    /// The conventions a request of `dialect` may follow, the likelier first: an `AWS` signature
    /// comes from an S3 client or from esdk-obs-python in V2 mode, an `OBS` one only from OBS clients.
    fn candidates(dialect: Dialect) -> &'static [Convention] {
        match dialect {
            Dialect::Aws => &[Convention::S3, Convention::Obs],
            Dialect::Obs => &[Convention::Obs],
        }
    }

    /// Whether a query parameter is a signed sub-resource.
    fn is_sub_resource(self, dialect: Dialect, name: &str) -> bool {
        match self {
            Convention::S3 => AWS_SUB_RESOURCES.contains(&name),
            Convention::Obs => {
                let lower = name.to_ascii_lowercase();
                OBS_SUB_RESOURCES.binary_search(&lower.as_str()).is_ok() || lower.starts_with(dialect.header_prefix())
            }
        }
    }
}

/// The request a signature is checked against.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// Method, path, raw query and headers.
    pub parts: RequestParts<'a>,
    /// The bucket named by the host of a virtual-host-style request (`bucket.localhost`); it is put
    /// in front of the path in the canonical resource.
    pub virtual_bucket: Option<&'a str>,
}

/// Where a V2 signature travels, which decides what stands for `Date` and what the query holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier<'a> {
    /// `Authorization: AWS|OBS AK:signature`; `Date` is the `Date` header, blank when the dialect's
    /// own date header is sent.
    Header,
    /// Query-string authentication (`AWSAccessKeyId` or `AccessKeyId`, `Expires`, `Signature`): `Date` is
    /// the `Expires` time. In the AWS dialect, `x-amz-*` query parameters are request headers that the
    /// client moved into the URL (botocore's `HmacV1QueryAuth` does so for every `x-amz-*` header, and
    /// for `Content-Type` and `Content-MD5`), so they are canonical headers, not sub-resources.
    Query {
        /// The `Expires` parameter as sent (Unix seconds).
        expires: &'a str,
    },
}

/// The query parameters of query-string authentication, never part of the string to sign.
const QUERY_AUTH_PARAMS: [&str; 4] = ["AWSAccessKeyId", "AccessKeyId", "Signature", "Expires"];

/// The decoded query parameters of a request, in order: name and value (`None` without `=`).
fn query_params(query: &str) -> Vec<(String, Option<String>)> {
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (decode(name), Some(decode(value))),
            None => (decode(pair), None),
        })
        .collect()
}

/// Builds the string to sign of `request` for `dialect`, signed the way `carrier` says and by the
/// rules of `convention`.
pub fn string_to_sign(
    request: &SignedRequest<'_>,
    dialect: Dialect,
    carrier: Carrier<'_>,
    convention: Convention,
) -> Result<String, AuthError> {
    let headers = request.parts.headers;
    let query = query_params(request.parts.query);
    let query_headers = matches!(carrier, Carrier::Query { .. }) && convention == Convention::S3;
    // A standard header, or in S3's query form its copy in the query.
    let standard = |name: &str| -> Result<String, AuthError> {
        if let Some(value) = header_text(headers, name)? {
            return Ok(value.to_owned());
        }
        let from_query = query_headers
            .then(|| query.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.clone()))
            .flatten();
        Ok(from_query.unwrap_or_default())
    };
    let mut out = String::with_capacity(256);
    out.push_str(request.parts.method);
    out.push('\n');
    out.push_str(&standard("content-md5")?);
    out.push('\n');
    out.push_str(&standard("content-type")?);
    out.push('\n');
    match carrier {
        Carrier::Query { expires } => out.push_str(expires),
        Carrier::Header if !headers.contains_key(dialect.date_header()) => {
            out.push_str(header_text(headers, "date")?.unwrap_or(""))
        }
        Carrier::Header => {}
    }
    out.push('\n');
    let mut canonical = canonical_headers(headers, dialect.header_prefix())?;
    if query_headers {
        for (name, value) in &query {
            let lower = name.to_ascii_lowercase();
            if lower.starts_with(dialect.header_prefix()) && !canonical.iter().any(|(n, _)| *n == lower) {
                canonical.push((lower, value.clone().unwrap_or_default()));
            }
        }
        canonical.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
    for (name, value) in &canonical {
        out.push_str(name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }

    // The canonical resource: the path (behind `/bucket` for a virtual-host request), then the
    // signed sub-resources sorted by name, values decoded, `name` alone when it had no `=`.
    let path = request.parts.path;
    match request.virtual_bucket {
        Some(bucket) => {
            out.push('/');
            out.push_str(bucket);
            out.push_str(if path.is_empty() { "/" } else { path });
        }
        None if path.is_empty() => out.push('/'),
        None => {
            out.push_str(path);
            let bucket_only = path.len() > 1 && !path[1..].contains('/');
            if bucket_only && convention == Convention::S3 {
                out.push('/');
            }
        }
    }
    let mut signed: Vec<(String, Option<String>)> = query
        .into_iter()
        .filter(|(name, _)| !matches!(carrier, Carrier::Query { .. }) || !QUERY_AUTH_PARAMS.contains(&name.as_str()))
        .filter(|(name, _)| convention.is_sub_resource(dialect, name))
        .collect();
    signed.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (name, value)) in signed.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        if let Some(value) = value {
            out.push('=');
            out.push_str(value);
        }
    }
    Ok(out)
}

/// `base64(HMAC-SHA1(secret, string_to_sign))`.
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let mut mac = HmacSha1::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// A header's value as text, trimmed; an error when it is not text.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str().map(str::trim).map_err(|_| AuthError::Malformed(format!("header {name} is not valid text")))
        })
        .transpose()
}

/// `(name, value)` of each header of the family: lowercase names sorted, repeated headers joined
/// with commas, values trimmed.
fn canonical_headers(headers: &HeaderMap, prefix: &str) -> Result<Vec<(String, String)>, AuthError> {
    let mut names: Vec<&str> =
        headers.keys().map(http::HeaderName::as_str).filter(|name| name.starts_with(prefix)).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let mut joined = String::new();
            for (i, value) in headers.get_all(name).iter().enumerate() {
                let value = std::str::from_utf8(value.as_bytes())
                    .map_err(|_| AuthError::Malformed(format!("header {name} is not valid text")))?;
                if i > 0 {
                    joined.push(',');
                }
                joined.push_str(value.trim());
            }
            Ok((name.to_owned(), joined))
        })
        .collect()
}

/// Parses an RFC 1123 date (`Tue, 27 Mar 2007 19:36:42 +0000` or `... GMT`) or SigV4's
/// `YYYYMMDDTHHMMSSZ` into Unix seconds.
pub fn parse_request_date(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some(secs) = parse_amz_date(text) {
        return Some(secs);
    }
    // Day name optional; zone GMT, UTC, Z or +0000.
    let rest = text.split_once(", ").map(|(_, rest)| rest).unwrap_or(text);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let [day, month, year, time, zone] = fields.as_slice() else { return None };
    if !matches!(*zone, "GMT" | "UTC" | "Z" | "+0000" | "-0000") {
        return None;
    }
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? + 1;
    let day: u32 = day.parse().ok()?;
    let year: u32 = year.parse().ok()?;
    let hms: Vec<&str> = time.split(':').collect();
    let [h, m, s] = hms.as_slice() else { return None };
    let two = |t: &str| (t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.to_owned());
    parse_amz_date(&format!("{year:04}{month:02}{day:02}T{}{}{}Z", two(h)?, two(m)?, two(s)?))
}

impl Verifier {
    /// Verifies the `Authorization: AWS|OBS AK:signature` header of `request`. V2 signatures name
    /// no region: the caller acts in `region` (the service's default). `now` is the server's
    /// wall-clock time in Unix seconds.
    pub fn verify_v2(&self, request: &SignedRequest<'_>, region: &str, now: i64) -> Result<Verified, AuthError> {
        let headers = request.parts.headers;
        let value = headers
            .get(http::header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Malformed("Authorization header is not valid text.".into()))?;
        let auth = Authorization::parse(value)?;
        let key = self.accounts.get(auth.access_key_id).ok_or(AuthError::UnknownAccessKey)?;
        let token = match header_text(headers, auth.dialect.security_token_header())? {
            Some(token) => Some(token),
            None => header_text(headers, "x-amz-security-token")?,
        };
        self.check_token(&key, token)?;
        let date_header = auth.dialect.date_header();
        let date = match header_text(headers, date_header)? {
            Some(date) => date,
            None => header_text(headers, "date")?.ok_or_else(|| {
                AuthError::Malformed(format!(
                    "{} authentication requires a valid Date or {date_header} header",
                    auth.dialect.scheme()
                ))
            })?,
        };
        let request_time = parse_request_date(date)
            .ok_or_else(|| AuthError::Malformed(format!("the request date '{date}' is not a valid HTTP date")))?;
        if (now - request_time).abs() > MAX_CLOCK_SKEW_SECS {
            return Err(AuthError::Skewed { request_time: date.to_owned(), server_time: format_amz_date(now) });
        }
        check_signature(&key, request, auth.dialect, Carrier::Header, auth.signature)?;
        Ok(Verified::new(&key, region, Scheme::V2(auth.dialect)))
    }

    /// Verifies V2 query-string authentication: S3's `AWSAccessKeyId` / `Expires` / `Signature` (boto3's
    /// default presigned URL, `aws s3 presign`, s3cmd, s3fs) or OBS's temporary URL `AccessKeyId` /
    /// `Expires` / `Signature` (esdk-obs-python `createSignedUrl`). `Expires` is a Unix time; the URL
    /// is refused once `now` has passed it.
    pub fn verify_v2_query(&self, request: &SignedRequest<'_>, region: &str, now: i64) -> Result<Verified, AuthError> {
        let params = query_params(request.parts.query);
        let param = |name: &str| params.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref());
        let (dialect, access_key_id) = match (param("AWSAccessKeyId"), param("AccessKeyId")) {
            (Some(ak), _) => (Dialect::Aws, ak),
            (None, Some(ak)) => (Dialect::Obs, ak),
            (None, None) => return Err(incomplete_query()),
        };
        let (Some(expires), Some(signature)) = (param("Expires"), param("Signature")) else {
            return Err(incomplete_query());
        };
        let key = self.accounts.get(access_key_id).ok_or(AuthError::UnknownAccessKey)?;
        let token = param(dialect.security_token_header()).or_else(|| param("x-amz-security-token"));
        self.check_token(&key, token)?;
        let expires_at: i64 = expires
            .parse()
            .map_err(|_| AuthError::Malformed(format!("Invalid date (should be seconds since epoch): {expires}")))?;
        if now > expires_at {
            return Err(AuthError::Expired {
                expires: shared::time::format_rfc3339(expires_at),
                server_time: shared::time::format_rfc3339(now),
            });
        }
        check_signature(&key, request, dialect, Carrier::Query { expires }, signature)?;
        Ok(Verified::new(&key, region, Scheme::V2(dialect)))
    }
}

/// S3's answer to a query that carries some of the query-string authentication parameters only.
fn incomplete_query() -> AuthError {
    AuthError::Malformed(
        "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters".into(),
    )
}

/// Compares `given`, in constant time, with the signature of the request's string to sign by each
/// convention its dialect's clients follow ([`Convention::candidates`]).
///
/// Nothing looser is tried: a signature that does not cover a sub-resource that both conventions
/// sign would let its request be replayed as another operation.
fn check_signature(
    key: &AccessKey,
    request: &SignedRequest<'_>,
    dialect: Dialect,
    carrier: Carrier<'_>,
    given: &str,
) -> Result<(), AuthError> {
    let mut first = None;
    for &convention in Convention::candidates(dialect) {
        let to_sign = string_to_sign(request, dialect, carrier, convention)?;
        if signature_matches(&key.secret_access_key, &to_sign, given) {
            return Ok(());
        }
        first.get_or_insert(to_sign);
    }
    Err(AuthError::SignatureMismatch { string_to_sign: first.unwrap_or_default(), canonical_request: String::new() })
}

/// Constant-time comparison of the expected and the given signature.
fn signature_matches(secret: &str, string_to_sign: &str, given: &str) -> bool {
    bool::from(sign(secret, string_to_sign).as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::HeaderValue;

    use super::*;
    use crate::accounts::{AccessKey, Accounts};

    /// The example credentials of the S3 developer guide (Signature Version 2 appendix).
    const DOC_AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const DOC_SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn to_sign(method: &str, path: &str, query: &str, vbucket: Option<&str>, h: &HeaderMap, d: Dialect) -> String {
        let request =
            SignedRequest { parts: RequestParts { method, path, query, headers: h }, virtual_bucket: vbucket };
        let convention = if d == Dialect::Aws { Convention::S3 } else { Convention::Obs };
        string_to_sign(&request, d, Carrier::Header, convention).unwrap()
    }

    #[test]
    fn aws_documentation_examples() {
        // (method, path, query, virtual bucket, headers, string to sign, signature)
        type Case =
            (&'static str, &'static str, &'static str, Option<&'static str>, HeaderMap, &'static str, &'static str);
        let cases: Vec<Case> = vec![
            (
                "GET",
                "/photos/puppy.jpg",
                "",
                Some("johnsmith"),
                headers(&[("date", "Tue, 27 Mar 2007 19:36:42 +0000")]),
                "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg",
                "bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
            ),
            (
                "PUT",
                "/photos/puppy.jpg",
                "",
                Some("johnsmith"),
                headers(&[("content-type", "image/jpeg"), ("date", "Tue, 27 Mar 2007 21:15:45 +0000")]),
                "PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n/johnsmith/photos/puppy.jpg",
                "MyyxeRY7whkBe+bq8fHCL/2kKUg=",
            ),
            (
                "GET",
                "/",
                "prefix=photos&max-keys=50&marker=puppy",
                Some("johnsmith"),
                headers(&[("date", "Tue, 27 Mar 2007 19:42:41 +0000")]),
                "GET\n\n\nTue, 27 Mar 2007 19:42:41 +0000\n/johnsmith/",
                "htDYFYduRNen8P9ZfE/s9SuKy0U=",
            ),
            (
                "GET",
                "/",
                "acl",
                Some("johnsmith"),
                headers(&[("date", "Tue, 27 Mar 2007 19:44:46 +0000")]),
                "GET\n\n\nTue, 27 Mar 2007 19:44:46 +0000\n/johnsmith/?acl",
                "c2WLPFtWHVgbEmeEG93a4cG37dM=",
            ),
            (
                "PUT",
                "/db-backup.dat.gz",
                "",
                Some("static.johnsmith.net"),
                headers(&[
                    ("date", "Tue, 27 Mar 2007 21:06:08 +0000"),
                    ("x-amz-acl", "public-read"),
                    ("content-type", "application/x-download"),
                    ("content-md5", "4gJE4saaMU4BqNR0kLY+lw=="),
                    ("x-amz-meta-reviewedby", "joe@johnsmith.net"),
                    ("x-amz-meta-reviewedby", "jane@johnsmith.net"),
                    ("x-amz-meta-filechecksum", "0x02661779"),
                    ("x-amz-meta-checksumalgorithm", "crc32"),
                ]),
                "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\nTue, 27 Mar 2007 21:06:08 +0000\nx-amz-acl:public-read\nx-amz-meta-checksumalgorithm:crc32\nx-amz-meta-filechecksum:0x02661779\nx-amz-meta-reviewedby:joe@johnsmith.net,jane@johnsmith.net\n/static.johnsmith.net/db-backup.dat.gz",
                "ilyl83RwaSoYIEdixDQcA4OnAnc=",
            ),
            (
                "GET",
                "/",
                "",
                None,
                headers(&[("date", "Wed, 28 Mar 2007 01:29:59 +0000")]),
                "GET\n\n\nWed, 28 Mar 2007 01:29:59 +0000\n/",
                "qGdzdERIC03wnaRNKh6OqZehG9s=",
            ),
            (
                "GET",
                "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
                "",
                None,
                headers(&[("date", "Wed, 28 Mar 2007 01:49:49 +0000")]),
                "GET\n\n\nWed, 28 Mar 2007 01:49:49 +0000\n/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
                "DNEZGsoieTZ92F3bUfSPQcbGmlM=",
            ),
        ];
        for (method, path, query, vbucket, h, expected, signature) in cases {
            let s = to_sign(method, path, query, vbucket, &h, Dialect::Aws);
            assert_eq!(s, expected);
            assert_eq!(sign(DOC_SK, &s), signature, "{expected}");
        }
    }

    #[test]
    fn date_header_of_the_dialect_blanks_date() {
        let h = headers(&[
            ("date", "Tue, 27 Mar 2007 21:20:27 +0000"),
            ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
            ("x-obs-date", "Tue, 27 Mar 2007 21:20:25 +0000"),
        ]);
        assert_eq!(
            to_sign("DELETE", "/b/k", "", None, &h, Dialect::Aws),
            "DELETE\n\n\n\nx-amz-date:Tue, 27 Mar 2007 21:20:26 +0000\n/b/k"
        );
        assert_eq!(
            to_sign("DELETE", "/b/k", "", None, &h, Dialect::Obs),
            "DELETE\n\n\n\nx-obs-date:Tue, 27 Mar 2007 21:20:25 +0000\n/b/k"
        );
    }

    #[test]
    fn obs_headers_and_virtual_bucket() {
        // A PUT with x-obs-acl and user metadata to a virtual-host bucket.
        let h = headers(&[
            ("date", "Mon, 14 Oct 2015 12:08:34 GMT"),
            ("content-type", "text/plain"),
            ("content-md5", "I5pU0r4+sgO9Emgl1KMQUg=="),
            ("x-obs-acl", "public-read"),
            ("x-obs-meta-author", "hello"),
        ]);
        assert_eq!(
            to_sign("PUT", "/object.txt", "", Some("bucket"), &h, Dialect::Obs),
            "PUT\nI5pU0r4+sgO9Emgl1KMQUg==\ntext/plain\nMon, 14 Oct 2015 12:08:34 GMT\nx-obs-acl:public-read\nx-obs-meta-author:hello\n/bucket/object.txt"
        );
    }

    #[test]
    fn sub_resources_are_sorted_decoded_and_filtered() {
        let h = headers(&[("date", "Wed, 28 Mar 2007 01:49:49 +0000")]);
        let s = to_sign("PUT", "/b/k", "uploadId=a%2Bb&partNumber=2&x-id=UploadPart", None, &h, Dialect::Obs);
        assert!(s.ends_with("/b/k?partNumber=2&uploadId=a+b"), "{s}");
        let s = to_sign("POST", "/b/k", "uploads", None, &h, Dialect::Aws);
        assert!(s.ends_with("/b/k?uploads"), "{s}");
        // S3 signs a bucket as `/b/` and knows no `?encryption` sub-resource; esdk-obs-python signs
        // both as sent, in its AWS V2 mode too.
        let s = to_sign("PUT", "/b", "encryption", None, &h, Dialect::Aws);
        assert!(s.ends_with("\n/b/"), "{s}");
        let request = SignedRequest {
            parts: RequestParts { method: "PUT", path: "/b", query: "encryption", headers: &h },
            virtual_bucket: None,
        };
        let s = string_to_sign(&request, Dialect::Aws, Carrier::Header, Convention::Obs).unwrap();
        assert!(s.ends_with("\n/b?encryption"), "{s}");
        let s = to_sign("GET", "/b/k", "response-content-type=text%2Fplain&apiversion", None, &h, Dialect::Obs);
        assert!(s.ends_with("/b/k?response-content-type=text/plain"), "{s}");
    }

    #[test]
    fn sub_resource_list_is_sorted() {
        assert!(OBS_SUB_RESOURCES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_request_date("Tue, 27 Mar 2007 19:36:42 +0000"), Some(1_175_024_202));
        assert_eq!(parse_request_date("Tue, 27 Mar 2007 19:36:42 GMT"), Some(1_175_024_202));
        assert_eq!(parse_request_date("20070327T193642Z"), Some(1_175_024_202));
        for bad in ["", "Tue, 27 Mar 2007 19:36:42 +0100", "Tue, 27 Foo 2007 19:36:42 GMT", "27 Mar 2007 1:2:3 GMT"] {
            assert_eq!(parse_request_date(bad), None, "{bad}");
        }
    }

    fn verifier() -> Verifier {
        let mut accounts = Accounts::with_defaults();
        accounts.insert(AccessKey::new(DOC_AK, DOC_SK, "111122223333", None));
        Verifier::new(Arc::new(accounts))
    }

    fn signed(dialect: Dialect, ak: &str, sk: &str, date: &str, path: &str, query: &str) -> HeaderMap {
        let mut h = headers(&[("date", date), ("x-obs-meta-a", " b "), ("x-amz-meta-c", "d")]);
        let s = to_sign("GET", path, query, None, &h, dialect);
        let value = format!("{} {ak}:{}", dialect.scheme(), sign(sk, &s));
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
        h
    }

    fn verify(h: &HeaderMap, path: &str, query: &str, now: i64) -> Result<Verified, AuthError> {
        let request =
            SignedRequest { parts: RequestParts { method: "GET", path, query, headers: h }, virtual_bucket: None };
        verifier().verify_v2(&request, "eu-de", now)
    }

    #[test]
    fn verifies_both_dialects() {
        let now = 1_175_024_202;
        let date = "Tue, 27 Mar 2007 19:36:42 GMT";
        for dialect in [Dialect::Aws, Dialect::Obs] {
            let h = signed(dialect, DOC_AK, DOC_SK, date, "/b/k", "acl");
            let verified = verify(&h, "/b/k", "acl", now + 60).unwrap();
            assert!(matches!(verified.scheme, Scheme::V2(d) if d == dialect));
            assert_eq!(verified.caller.account_id, "111122223333");
            assert_eq!(verified.caller.region, "eu-de");
            // Another resource, a wrong secret, an unknown key, a skewed clock.
            assert!(matches!(verify(&h, "/b/other", "acl", now), Err(AuthError::SignatureMismatch { .. })));
            assert!(matches!(verify(&h, "/b/k", "", now), Err(AuthError::SignatureMismatch { .. })));
            let h = signed(dialect, DOC_AK, "wrong", date, "/b/k", "");
            assert!(matches!(verify(&h, "/b/k", "", now), Err(AuthError::SignatureMismatch { .. })));
            let h = signed(dialect, "nobody", DOC_SK, date, "/b/k", "");
            assert_eq!(verify(&h, "/b/k", "", now).unwrap_err(), AuthError::UnknownAccessKey);
            let h = signed(dialect, DOC_AK, DOC_SK, date, "/b/k", "");
            assert!(matches!(verify(&h, "/b/k", "", now + 16 * 60), Err(AuthError::Skewed { .. })));
            assert!(verify(&h, "/b/k", "", now - 14 * 60).is_ok());
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        for value in ["AWS", "AWS nocolon", "OBS :sig", "OBS ak:", "Basic abc"] {
            let h = headers(&[("date", "Tue, 27 Mar 2007 19:36:42 GMT"), ("authorization", value)]);
            assert!(matches!(verify(&h, "/", "", 1_175_024_202), Err(AuthError::Malformed(_))), "{value}");
        }
        let mut h = signed(Dialect::Obs, DOC_AK, DOC_SK, "Tue, 27 Mar 2007 19:36:42 GMT", "/", "");
        h.remove("date");
        assert!(matches!(verify(&h, "/", "", 1_175_024_202), Err(AuthError::Malformed(_))));
        assert_eq!(verify(&HeaderMap::new(), "/", "", 0).unwrap_err(), AuthError::Missing);
    }

    fn verify_query(
        path: &str,
        query: &str,
        vbucket: Option<&str>,
        h: &HeaderMap,
        now: i64,
    ) -> Result<Verified, AuthError> {
        let request =
            SignedRequest { parts: RequestParts { method: "GET", path, query, headers: h }, virtual_bucket: vbucket };
        verifier().verify_v2_query(&request, "eu-de", now)
    }

    #[test]
    fn query_string_authentication_documentation_example() {
        // S3 developer guide, "Query string request authentication alternative".
        let query = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D";
        let h = HeaderMap::new();
        let request = SignedRequest {
            parts: RequestParts { method: "GET", path: "/photos/puppy.jpg", query, headers: &h },
            virtual_bucket: Some("johnsmith"),
        };
        let s =
            string_to_sign(&request, Dialect::Aws, Carrier::Query { expires: "1175139620" }, Convention::S3).unwrap();
        assert_eq!(s, "GET\n\n\n1175139620\n/johnsmith/photos/puppy.jpg");
        assert_eq!(sign(DOC_SK, &s), "NpgCjnDzrM+WFzoENXmpNDUsSn8=");
        let verified = verify_query("/photos/puppy.jpg", query, Some("johnsmith"), &h, 1_175_139_000).unwrap();
        assert!(matches!(verified.scheme, Scheme::V2(Dialect::Aws)));
        // Expired, tampered, an unknown key, a missing parameter.
        let expired = verify_query("/photos/puppy.jpg", query, Some("johnsmith"), &h, 1_175_139_621).unwrap_err();
        assert_eq!(
            expired,
            AuthError::Expired { expires: "2007-03-29T03:40:20Z".into(), server_time: "2007-03-29T03:40:21Z".into() }
        );
        let tampered = verify_query("/photos/kitten.jpg", query, Some("johnsmith"), &h, 1_175_139_000);
        assert!(matches!(tampered, Err(AuthError::SignatureMismatch { .. })));
        let unknown = query.replace("AKIAIOSFODNN7EXAMPLE", "NOBODY");
        assert_eq!(verify_query("/p", &unknown, None, &h, 0).unwrap_err(), AuthError::UnknownAccessKey);
        for partial in ["AWSAccessKeyId=a&Expires=1", "Signature=x&Expires=1", "AccessKeyId=a&Signature=x"] {
            assert!(matches!(verify_query("/p", partial, None, &h, 0), Err(AuthError::Malformed(_))), "{partial}");
        }
    }

    #[test]
    fn query_form_moves_amz_headers_and_keeps_obs_sub_resources() {
        // botocore's HmacV1QueryAuth moves x-amz-* headers and Content-Type into the query.
        let h = HeaderMap::new();
        let query = "x-amz-server-side-encryption=aws%3Akms&content-type=text%2Fplain&versionId=v1\
                     &AWSAccessKeyId=AK&Expires=100&Signature=sig";
        let request = SignedRequest {
            parts: RequestParts { method: "PUT", path: "/b/k", query, headers: &h },
            virtual_bucket: None,
        };
        assert_eq!(
            string_to_sign(&request, Dialect::Aws, Carrier::Query { expires: "100" }, Convention::S3).unwrap(),
            "PUT\n\ntext/plain\n100\nx-amz-server-side-encryption:aws:kms\n/b/k?versionId=v1"
        );
        // An OBS temporary URL keeps its headers in headers and signs x-obs-* parameters as sub-resources.
        let h = headers(&[("x-obs-server-side-encryption", "kms"), ("content-type", "text/plain")]);
        let query = "x-obs-security-token=t&AccessKeyId=AK&Expires=100&Signature=sig";
        let request = SignedRequest {
            parts: RequestParts { method: "PUT", path: "/b/k", query, headers: &h },
            virtual_bucket: None,
        };
        assert_eq!(
            string_to_sign(&request, Dialect::Obs, Carrier::Query { expires: "100" }, Convention::Obs).unwrap(),
            "PUT\n\ntext/plain\n100\nx-obs-server-side-encryption:kms\n/b/k?x-obs-security-token=t"
        );
    }

    #[test]
    fn bucket_paths_verify_by_either_convention() {
        let now = 1_175_024_202;
        let date = "Tue, 27 Mar 2007 19:36:42 GMT";
        for (signed_path, convention) in [("/bucket/", Convention::S3), ("/bucket", Convention::Obs)] {
            let mut h = headers(&[("date", date)]);
            let request = SignedRequest {
                parts: RequestParts { method: "GET", path: "/bucket", query: "acl&encryption", headers: &h },
                virtual_bucket: None,
            };
            let s = string_to_sign(&request, Dialect::Aws, Carrier::Header, convention).unwrap();
            assert!(s.contains(signed_path), "{s}");
            h.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(&format!("AWS {DOC_AK}:{}", sign(DOC_SK, &s))).unwrap(),
            );
            assert!(verify(&h, "/bucket", "acl&encryption", now).is_ok(), "{signed_path}");
            assert!(matches!(verify(&h, "/other", "acl&encryption", now), Err(AuthError::SignatureMismatch { .. })));
            // Neither convention drops `?acl`.
            assert!(matches!(verify(&h, "/bucket", "encryption", now), Err(AuthError::SignatureMismatch { .. })));
        }
        // A key's path is never spelled another way.
        let mut h = headers(&[("date", date)]);
        let s = to_sign("GET", "/bucket/key/", "", None, &h, Dialect::Aws);
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("AWS {DOC_AK}:{}", sign(DOC_SK, &s))).unwrap(),
        );
        assert!(matches!(verify(&h, "/bucket/key", "", now), Err(AuthError::SignatureMismatch { .. })));
    }
}
