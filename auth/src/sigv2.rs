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

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use percent_encoding::percent_decode_str;
use sha1::Sha1;
use shared::time::{format_amz_date, parse_amz_date};
use subtle::ConstantTimeEq;

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

/// Whether a query parameter is a signed sub-resource: esdk-obs-python's list (lowercase match), the
/// dialect's prefixed parameters, and for AWS also the S3 documentation's list — what every client
/// this dialect knows signs.
fn is_sub_resource(dialect: Dialect, name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    OBS_SUB_RESOURCES.binary_search(&lower.as_str()).is_ok()
        || lower.starts_with(dialect.header_prefix())
        || (dialect == Dialect::Aws && AWS_SUB_RESOURCES.contains(&name))
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

/// Builds the string to sign of `request` for `dialect`.
pub fn string_to_sign(request: &SignedRequest<'_>, dialect: Dialect) -> Result<String, AuthError> {
    let headers = request.parts.headers;
    let mut out = String::with_capacity(256);
    out.push_str(request.parts.method);
    out.push('\n');
    out.push_str(header_text(headers, "content-md5")?.unwrap_or(""));
    out.push('\n');
    out.push_str(header_text(headers, "content-type")?.unwrap_or(""));
    out.push('\n');
    if !headers.contains_key(dialect.date_header()) {
        out.push_str(header_text(headers, "date")?.unwrap_or(""));
    }
    out.push('\n');
    push_canonical_headers(&mut out, headers, dialect.header_prefix())?;
    push_canonical_resource(&mut out, request, dialect);
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

/// `name:value\n` for each header of the family, lowercase names sorted, repeated headers joined
/// with commas, values trimmed.
fn push_canonical_headers(out: &mut String, headers: &HeaderMap, prefix: &str) -> Result<(), AuthError> {
    let mut names: Vec<&str> =
        headers.keys().map(http::HeaderName::as_str).filter(|name| name.starts_with(prefix)).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        out.push_str(name);
        out.push(':');
        for (i, value) in headers.get_all(name).iter().enumerate() {
            let value = value.to_str().map_err(|_| AuthError::Malformed(format!("header {name} is not valid text")))?;
            if i > 0 {
                out.push(',');
            }
            out.push_str(value.trim());
        }
        out.push('\n');
    }
    Ok(())
}

/// The path as sent (behind `/bucket` for a virtual-host request) and the signed sub-resources,
/// sorted by name, values percent-decoded, `name` alone when the query had no `=`.
fn push_canonical_resource(out: &mut String, request: &SignedRequest<'_>, dialect: Dialect) {
    let path = request.parts.path;
    if let Some(bucket) = request.virtual_bucket {
        out.push('/');
        out.push_str(bucket);
        out.push_str(if path.is_empty() { "/" } else { path });
    } else {
        out.push_str(if path.is_empty() { "/" } else { path });
    }
    let mut signed: Vec<(String, Option<String>)> = request
        .parts
        .query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (name, value) = match pair.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (pair, None),
            };
            let name = percent_decode_str(name).decode_utf8_lossy().into_owned();
            is_sub_resource(dialect, &name)
                .then(|| (name, value.map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned())))
        })
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
        let to_sign = string_to_sign(request, auth.dialect)?;
        if signature_matches(&key.secret_access_key, &to_sign, auth.signature) {
            return Ok(Verified { caller: key.caller(region), key: Arc::clone(key), scheme: Scheme::V2(auth.dialect) });
        }
        // No second try with fewer sub-resources (botocore's V2 list leaves out `?encryption`): a
        // signature that does not cover a sub-resource would let its request be replayed as another
        // operation. Real S3 wants SigV4 for those operations anyway.
        Err(AuthError::SignatureMismatch { string_to_sign: to_sign, canonical_request: String::new() })
    }
}

/// Constant-time comparison of the expected and the given signature.
fn signature_matches(secret: &str, string_to_sign: &str, given: &str) -> bool {
    bool::from(sign(secret, string_to_sign).as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
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
        string_to_sign(&request, d).unwrap()
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
        let s = to_sign("PUT", "/b", "encryption", None, &h, Dialect::Aws);
        assert!(s.ends_with("/b?encryption"), "{s}");
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
}
