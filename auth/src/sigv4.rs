//! AWS Signature Version 4 in header form: verifying incoming requests and signing outgoing ones.
//!
//! Both sides build the same canonical request ([`canonical_request`]), so a change to one is a
//! change to the other. Verification ([`Verifier::verify_sigv4`], [`Verifier::verify_sigv4_presigned`])
//! looks the access key up in the verifier's [`crate::Accounts`], checks the clock skew (±15 minutes) and
//! the credential scope, and compares signatures in constant time. Derived signing keys are cached per
//! access key, day, region and service: four HMACs saved per request. A verified request keeps its
//! [`Seed`], on which the chunk and trailer signatures of an aws-chunked body chain.

use std::collections::HashMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use shared::time::format_amz_date;

use crate::accounts::AccessKey;
use crate::verifier::{AuthError, MAX_CLOCK_SKEW_SECS, RequestParts, Scheme, Verified, Verifier};

/// The only algorithm of SigV4 in header form.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Hex SHA-256 of the empty string.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Characters SigV4 leaves unencoded: `A-Z a-z 0-9 - _ . ~`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

type HmacSha256 = Hmac<Sha256>;

/// How the canonical URI is encoded: S3 encodes the path once, every other service twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriEncoding {
    /// Each path segment is URI-encoded once (S3).
    Single,
    /// The already-encoded path is encoded again (KMS and every other service).
    Double,
}

/// The parsed `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// Access key id from the credential.
    pub access_key_id: &'a str,
    /// `yyyymmdd` from the credential scope.
    pub date: &'a str,
    /// Region from the credential scope.
    pub region: &'a str,
    /// Service from the credential scope.
    pub service: &'a str,
    /// The `SignedHeaders` list, `;`-separated lowercase names.
    pub signed_headers: &'a str,
    /// The hex signature.
    pub signature: &'a str,
}

impl<'a> Authorization<'a> {
    /// Parses the header value; the error names what is missing, as AWS's messages do.
    pub fn parse(value: &'a str) -> Result<Self, AuthError> {
        let rest = value
            .strip_prefix(ALGORITHM)
            .filter(|rest| rest.starts_with(' '))
            .ok_or_else(|| AuthError::Malformed(format!("Authorization header requires the {ALGORITHM} algorithm.")))?;
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed_headers = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                signature = Some(v);
            } else if !part.is_empty() {
                return Err(AuthError::Malformed(format!(
                    "'{part}' not a valid key=value pair (missing equal-sign) in Authorization header"
                )));
            }
        }
        let mut missing = Vec::new();
        if credential.is_none() {
            missing.push("Credential");
        }
        if signed_headers.is_none() {
            missing.push("SignedHeaders");
        }
        if signature.is_none() {
            missing.push("Signature");
        }
        if !missing.is_empty() {
            return Err(AuthError::Malformed(format!(
                "Authorization header requires '{}' parameter{}.",
                missing.join("', '"),
                if missing.len() > 1 { "s" } else { "" }
            )));
        }
        let (credential, signed_headers, signature) =
            (credential.unwrap_or_default(), signed_headers.unwrap_or_default(), signature.unwrap_or_default());
        let scope: Vec<&str> = credential.split('/').collect();
        if scope.len() != 5 || scope[4] != "aws4_request" || scope.iter().any(|s| s.is_empty()) {
            return Err(AuthError::Malformed(format!(
                "Credential should be scoped to a valid region, and be of the form <access key>/<date>/<region>/<service>/aws4_request, not '{credential}'."
            )));
        }
        if signed_headers.is_empty() || !signature.bytes().all(|b| b.is_ascii_hexdigit()) || signature.len() != 64 {
            return Err(AuthError::Malformed("Authorization header has an invalid SignedHeaders or Signature.".into()));
        }
        Ok(Authorization {
            access_key_id: scope[0],
            date: scope[1],
            region: scope[2],
            service: scope[3],
            signed_headers,
            signature,
        })
    }
}

/// Builds the canonical request of SigV4 for `parts`, signing `signed_headers` (`;`-separated).
pub fn canonical_request(
    parts: &RequestParts<'_>,
    signed_headers: &str,
    payload_hash: &str,
    encoding: UriEncoding,
) -> Result<String, AuthError> {
    let mut out = String::with_capacity(256);
    out.push_str(parts.method);
    out.push('\n');
    push_canonical_uri(&mut out, parts.path, encoding);
    out.push('\n');
    push_canonical_query(&mut out, parts.query);
    out.push('\n');
    for name in signed_headers.split(';') {
        out.push_str(name);
        out.push(':');
        let mut first = true;
        let mut found = false;
        for value in parts.headers.get_all(name) {
            found = true;
            // UTF-8 beyond US-ASCII is signed as sent (user metadata, which S3 stores decoded).
            let value = std::str::from_utf8(value.as_bytes())
                .map_err(|_| AuthError::Malformed(format!("header {name} is not valid text")))?;
            if !first {
                out.push(',');
            }
            first = false;
            push_collapsed(&mut out, value);
        }
        if !found {
            return Err(AuthError::Malformed(format!("signed header {name} is not in the request")));
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

/// Trims a header value and collapses runs of spaces to one, as SigV4 asks.
fn push_collapsed(out: &mut String, value: &str) {
    let mut last_space = false;
    for c in value.trim().chars() {
        if c == ' ' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
}

fn push_canonical_uri(out: &mut String, raw_path: &str, encoding: UriEncoding) {
    if raw_path.is_empty() {
        out.push('/');
        return;
    }
    for (i, segment) in raw_path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let decoded = percent_decode_str(segment).collect::<Vec<u8>>();
        let once: String = percent_encoding::percent_encode(&decoded, UNRESERVED).collect();
        match encoding {
            UriEncoding::Single => out.push_str(&once),
            UriEncoding::Double => out.extend(utf8_percent_encode(&once, UNRESERVED)),
        }
    }
}

/// Appends the canonical query string: pairs re-encoded, sorted, without `X-Amz-Signature`.
pub(crate) fn push_canonical_query(out: &mut String, raw_query: &str) {
    if raw_query.is_empty() {
        return;
    }
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (encode_component(k), encode_component(v))
        })
        .filter(|(k, _)| k != "X-Amz-Signature")
        .collect();
    pairs.sort();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
}

/// Decodes a query component (treating `+` literally, as AWS does) and encodes it the SigV4 way.
fn encode_component(raw: &str) -> String {
    let decoded = percent_decode_str(raw).collect::<Vec<u8>>();
    percent_encoding::percent_encode(&decoded, UNRESERVED).collect()
}

/// The string to sign for a canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hash = to_hex(&Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{hash}")
}

/// Derives the signing key: HMAC chain from `AWS4<secret>` over date, region, service, `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Lower-case hex of a digest or a MAC. `hex::encode` goes through an iterator of `char`s collected into a
/// `String`, which showed as 15 % of a signature check in a profile; this writes the bytes in one pass.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut out).expect("the output is twice as long as the input");
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Hex SHA-256 of a payload.
pub fn payload_sha256(body: &[u8]) -> String {
    to_hex(&Sha256::digest(body))
}

impl Verifier {
    /// Verifies a request signed with SigV4 in its `Authorization` header for `service`, whose payload
    /// hashes to `payload_hash` (hex SHA-256 of the body, or the literal the client signed, such as
    /// `UNSIGNED-PAYLOAD`). `now` is the server's wall-clock time in Unix seconds.
    pub fn verify_sigv4(
        &self,
        parts: &RequestParts<'_>,
        payload_hash: &str,
        service: &str,
        encoding: UriEncoding,
        now: i64,
    ) -> Result<Verified, AuthError> {
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .ok_or(AuthError::Missing)?
            .to_str()
            .map_err(|_| AuthError::Malformed("Authorization header is not valid text.".into()))?;
        let auth = Authorization::parse(header)?;
        let signed: Vec<&str> = auth.signed_headers.split(';').collect();
        if !signed.contains(&"host") {
            return Err(AuthError::Malformed(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
            ));
        }
        let amz_date = parts.headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or_else(|| {
            AuthError::Malformed(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
            )
        })?;
        let request_time = shared::time::parse_amz_date(amz_date).ok_or_else(|| {
            AuthError::Malformed(format!(
                "X-Amz-Date '{amz_date}' is not a valid date of the form YYYYMMDD'T'HHMMSS'Z'."
            ))
        })?;
        let key = self.accounts.get(auth.access_key_id).ok_or(AuthError::UnknownAccessKey)?;
        let token = match parts.headers.get("x-amz-security-token") {
            Some(value) => Some(value.to_str().map_err(|_| AuthError::InvalidToken)?),
            None => None,
        };
        self.check_token(&key, token)?;
        if auth.service != service {
            return Err(AuthError::BadScope(format!("Credential should be scoped to correct service: '{service}'.")));
        }
        if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
            return Err(AuthError::BadScope(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
                auth.date,
                &amz_date[..8]
            )));
        }
        if !is_region(auth.region) {
            return Err(AuthError::BadScope(format!(
                "Credential should be scoped to a valid region, not '{}'.",
                auth.region
            )));
        }
        if (now - request_time).abs() > MAX_CLOCK_SKEW_SECS {
            return Err(AuthError::Skewed { request_time: amz_date.to_owned(), server_time: format_amz_date(now) });
        }
        if let Some(claimed) = parts.headers.get("x-amz-content-sha256") {
            let claimed = claimed.as_bytes();
            let is_digest = claimed.len() == 64 && claimed.iter().all(u8::is_ascii_hexdigit);
            if is_digest && !claimed.eq_ignore_ascii_case(payload_hash.as_bytes()) {
                return Err(AuthError::PayloadHashMismatch);
            }
        }
        let canonical = canonical_request(parts, auth.signed_headers, payload_hash, encoding)?;
        let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
        let to_sign = string_to_sign(amz_date, &scope, &canonical);
        let credential = Credential {
            access_key_id: auth.access_key_id,
            date: auth.date,
            region: auth.region,
            service: auth.service,
        };
        self.check_signature(&key, credential, amz_date, scope, &to_sign, auth.signature)
            .ok_or(AuthError::SignatureMismatch { string_to_sign: to_sign, canonical_request: canonical })
    }

    /// Verifies a presigned URL (SigV4 in the query string: `X-Amz-Algorithm`, `X-Amz-Credential`,
    /// `X-Amz-Date`, `X-Amz-Expires` of 1–604800 seconds, `X-Amz-SignedHeaders`,
    /// `X-Amz-Signature`); the payload is unsigned.
    pub fn verify_sigv4_presigned(
        &self,
        parts: &RequestParts<'_>,
        service: &str,
        encoding: UriEncoding,
        now: i64,
    ) -> Result<Verified, AuthError> {
        let mut params: HashMap<String, String> = HashMap::new();
        for pair in parts.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            params.insert(decode(k), decode(v));
        }
        let get = |name: &str| {
            params.get(name).map(String::as_str).ok_or_else(|| {
                AuthError::Malformed(
                    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, \
                     X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
                        .into(),
                )
            })
        };
        if get("X-Amz-Algorithm")? != ALGORITHM {
            return Err(AuthError::Malformed(format!("X-Amz-Algorithm only supports \"{ALGORITHM}\"")));
        }
        let credential = get("X-Amz-Credential")?;
        let amz_date = get("X-Amz-Date")?;
        let expires: i64 = get("X-Amz-Expires")?
            .parse()
            .map_err(|_| AuthError::Malformed("X-Amz-Expires should be a number".into()))?;
        if expires < 0 {
            return Err(AuthError::Malformed("X-Amz-Expires must be non-negative".into()));
        }
        if expires > 604_800 {
            return Err(AuthError::Malformed(
                "X-Amz-Expires must be less than a week (in seconds) that is; 604800".into(),
            ));
        }
        let signed_headers = get("X-Amz-SignedHeaders")?;
        let signature = get("X-Amz-Signature")?;
        let scope: Vec<&str> = credential.split('/').collect();
        if scope.len() != 5 || scope[4] != "aws4_request" || scope.iter().any(|s| s.is_empty()) {
            return Err(AuthError::Malformed(
                "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting \
                 \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."
                    .into(),
            ));
        }
        let (access_key_id, date, region, scope_service) = (scope[0], scope[1], scope[2], scope[3]);
        let request_time = shared::time::parse_amz_date(amz_date).ok_or_else(|| {
            AuthError::Malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"".into())
        })?;
        let key = self.accounts.get(access_key_id).ok_or(AuthError::UnknownAccessKey)?;
        self.check_token(&key, params.get("X-Amz-Security-Token").map(String::as_str))?;
        if scope_service != service {
            return Err(AuthError::BadScope(format!(
                "Error parsing the X-Amz-Credential parameter; incorrect service \"{scope_service}\". This endpoint \
                 belongs to \"{service}\"."
            )));
        }
        if !amz_date.starts_with(date) || !is_region(region) {
            return Err(AuthError::BadScope(format!(
                "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting \
                 \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\", not '{credential}'."
            )));
        }
        if request_time - now > MAX_CLOCK_SKEW_SECS {
            return Err(AuthError::Skewed { request_time: amz_date.to_owned(), server_time: format_amz_date(now) });
        }
        if now > request_time + expires {
            return Err(AuthError::Expired {
                expires: shared::time::format_rfc3339(request_time + expires),
                server_time: shared::time::format_rfc3339(now),
            });
        }
        let canonical = canonical_request(parts, signed_headers, "UNSIGNED-PAYLOAD", encoding)?;
        let scope = format!("{date}/{region}/{scope_service}/aws4_request");
        let to_sign = string_to_sign(amz_date, &scope, &canonical);
        let credential = Credential { access_key_id, date, region, service: scope_service };
        self.check_signature(&key, credential, amz_date, scope, &to_sign, signature)
            .ok_or(AuthError::SignatureMismatch { string_to_sign: to_sign, canonical_request: canonical })
    }

    /// The last step of every SigV4 check (header, presigned URL, form upload policy): signs
    /// `to_sign` with the signing key of `credential` (derived once, then cached) and compares it
    /// with `signature` in constant time. On a match: the request is `key`'s in the credential's
    /// region, and an aws-chunked body chains on its seed.
    pub(crate) fn check_signature(
        &self,
        key: &Arc<AccessKey>,
        credential: Credential<'_>,
        amz_date: &str,
        scope: String,
        to_sign: &str,
        signature: &str,
    ) -> Option<Verified> {
        let Credential { access_key_id, date, region, service } = credential;
        let signing = self.cached_signing_key(&format!("{}:{access_key_id}/{scope}", key.serial()), || {
            signing_key(&key.secret_access_key, date, region, service)
        });
        let expected = to_hex(&hmac(&signing, to_sign.as_bytes()));
        if !signatures_match(&expected, signature) {
            return None;
        }
        let seed = Seed { signing_key: signing, seed_signature: expected, amz_date: amz_date.to_owned(), scope };
        Some(Verified::new(key, region, Scheme::SigV4(seed)))
    }
}

/// The parts of a SigV4 credential scope (`AK/YYYYMMDD/region/service/aws4_request`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Credential<'a> {
    /// The access key id.
    pub access_key_id: &'a str,
    /// `YYYYMMDD`.
    pub date: &'a str,
    /// The region.
    pub region: &'a str,
    /// The service.
    pub service: &'a str,
}

/// Whether `text` looks like a region name (`us-east-1`, `eu-de`, ...).
fn is_region(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What the chunks and trailer of an aws-chunked payload of a SigV4-verified request are signed with.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The derived signing key.
    pub signing_key: [u8; 32],
    /// The request's signature: the first chunk's signature chains on it.
    pub seed_signature: String,
    /// `X-Amz-Date` of the request.
    pub amz_date: String,
    /// `<date>/<region>/<service>/aws4_request`.
    pub scope: String,
}

/// The signature of one chunk of an aws-chunked payload (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`),
/// chained on the previous chunk's signature.
pub fn chunk_signature(seed: &Seed, previous: &str, chunk: &[u8]) -> String {
    let to_sign = format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{previous}\n{EMPTY_SHA256}\n{}",
        seed.amz_date,
        seed.scope,
        to_hex(&Sha256::digest(chunk))
    );
    to_hex(&hmac(&seed.signing_key, to_sign.as_bytes()))
}

/// The signature of the trailer of an aws-chunked payload with signed trailers.
pub fn trailer_signature(seed: &Seed, previous: &str, canonical_trailers: &[u8]) -> String {
    let to_sign = format!(
        "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{previous}\n{}",
        seed.amz_date,
        seed.scope,
        to_hex(&Sha256::digest(canonical_trailers))
    );
    to_hex(&hmac(&seed.signing_key, to_sign.as_bytes()))
}

/// Constant-time comparison of two signatures (hex).
pub fn signatures_match(expected: &str, given: &str) -> bool {
    bool::from(expected.as_bytes().ct_eq(given.to_ascii_lowercase().as_bytes()))
}

/// What a client needs to sign a request.
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
    /// Region of the credential scope.
    pub region: &'a str,
    /// Service of the credential scope.
    pub service: &'a str,
    /// Signing time in Unix seconds.
    pub time: i64,
}

/// Signs a request: sets `x-amz-date` and `authorization` in `headers`, signing every header that
/// is present (which must include `host`). `path` and `query` are as sent on the wire.
pub fn sign(
    method: &str,
    path: &str,
    query: &str,
    headers: &mut HeaderMap,
    payload_hash: &str,
    encoding: UriEncoding,
    params: &SigningParams<'_>,
) -> Result<(), AuthError> {
    let amz_date = format_amz_date(params.time);
    headers.insert("x-amz-date", amz_date.parse().expect("an amz date is a valid header value"));
    let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).filter(|n| *n != "authorization").collect();
    names.sort_unstable();
    names.dedup();
    let signed_headers = names.join(";");
    let parts = RequestParts { method, path, query, headers };
    let canonical = canonical_request(&parts, &signed_headers, payload_hash, encoding)?;
    let date = &amz_date[..8];
    let scope = format!("{date}/{}/{}/aws4_request", params.region, params.service);
    let to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let key = signing_key(params.secret_access_key, date, params.region, params.service);
    let signature = to_hex(&hmac(&key, to_sign.as_bytes()));
    let value = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        params.access_key_id
    );
    headers.insert(
        http::header::AUTHORIZATION,
        value.parse().map_err(|_| AuthError::Malformed("access key id is not valid in a header".into()))?,
    );
    Ok(())
}

/// Presigns a request (SigV4 in the query string, `UNSIGNED-PAYLOAD`), as the SDKs' presigners do: returns the
/// query to send — `query` (as sent on the wire, possibly empty) followed by the `X-Amz-*` parameters and the
/// signature. Every header in `headers` is signed (it must include `host`) and must be sent with the URL.
pub fn presign(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    expires_secs: u32,
    encoding: UriEncoding,
    params: &SigningParams<'_>,
) -> Result<String, AuthError> {
    let amz_date = format_amz_date(params.time);
    let date = &amz_date[..8];
    let scope = format!("{date}/{}/{}/aws4_request", params.region, params.service);
    let mut names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let signed_headers = names.join(";");
    let encode = |text: &str| -> String { utf8_percent_encode(text, UNRESERVED).collect() };
    let mut signed_query = query.to_owned();
    for (name, value) in [
        ("X-Amz-Algorithm", ALGORITHM.to_owned()),
        ("X-Amz-Credential", format!("{}/{scope}", params.access_key_id)),
        ("X-Amz-Date", amz_date.clone()),
        ("X-Amz-Expires", expires_secs.to_string()),
        ("X-Amz-SignedHeaders", signed_headers.clone()),
    ] {
        if !signed_query.is_empty() {
            signed_query.push('&');
        }
        signed_query.push_str(name);
        signed_query.push('=');
        signed_query.push_str(&encode(&value));
    }
    let parts = RequestParts { method, path, query: &signed_query, headers };
    let canonical = canonical_request(&parts, &signed_headers, "UNSIGNED-PAYLOAD", encoding)?;
    let to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let key = signing_key(params.secret_access_key, date, params.region, params.service);
    signed_query.push_str("&X-Amz-Signature=");
    signed_query.push_str(&to_hex(&hmac(&key, to_sign.as_bytes())));
    Ok(signed_query)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shared::Caller;

    use super::*;
    use crate::accounts::{AccessKey, Accounts};

    /// A URL [`presign`] makes verifies (headers it signed included), and not once tampered with.
    #[test]
    fn presigned_urls_verify() {
        let mut accounts = Accounts::default();
        accounts.insert(AccessKey::new("AK", "SK", "000000000000", None));
        let verifier = Verifier::new(Arc::new(accounts));
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:4566".parse().unwrap());
        headers.insert("x-amz-server-side-encryption", "aws:kms".parse().unwrap());
        let params = SigningParams {
            access_key_id: "AK",
            secret_access_key: "SK",
            region: "eu-de",
            service: "s3",
            time: 1_700_000_000,
        };
        let query = presign("PUT", "/b/a%20b", "partNumber=1", &headers, 900, UriEncoding::Single, &params).unwrap();
        assert!(query.starts_with("partNumber=1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20231114%2F"));
        let check = |method: &str, query: &str| {
            let parts = RequestParts { method, path: "/b/a%20b", query, headers: &headers };
            verifier.verify_sigv4_presigned(&parts, "s3", UriEncoding::Single, 1_700_000_100)
        };
        assert_eq!(check("PUT", &query).unwrap().caller.account_id, "000000000000");
        assert!(matches!(check("GET", &query), Err(AuthError::SignatureMismatch { .. })));
        let other_part = query.replace("partNumber=1", "partNumber=2");
        assert!(matches!(check("PUT", &other_part), Err(AuthError::SignatureMismatch { .. })));
    }

    /// The `get-vanilla` case of the AWS SigV4 test suite.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let parts = RequestParts { method: "GET", path: "/", query: "", headers: &headers };
        let canonical = canonical_request(&parts, "host;x-amz-date", EMPTY_SHA256, UriEncoding::Double).unwrap();
        assert_eq!(
            canonical,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_SHA256}"
            )
        );
        let to_sign = string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", &canonical);
        assert!(to_sign.ends_with("bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"));
        let key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "service");
        assert_eq!(
            to_hex(&hmac(&key, to_sign.as_bytes())),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn canonical_query_is_sorted_and_encoded() {
        let mut out = String::new();
        push_canonical_query(&mut out, "b=2&a=x%2Fy&a=1&c");
        assert_eq!(out, "a=1&a=x%2Fy&b=2&c=");
    }

    #[test]
    fn uri_encoding_single_and_double() {
        let mut single = String::new();
        push_canonical_uri(&mut single, "/bucket/a%20b", UriEncoding::Single);
        assert_eq!(single, "/bucket/a%20b");
        let mut double = String::new();
        push_canonical_uri(&mut double, "/a%20b", UriEncoding::Double);
        assert_eq!(double, "/a%2520b");
    }

    fn verifier() -> Verifier {
        let mut accounts = Accounts::default();
        accounts.insert(AccessKey::new("AKID", "secret", "111122223333", None));
        Verifier::new(Arc::new(accounts))
    }

    fn signed(time: i64, secret: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", "localhost:4566".parse().unwrap());
        headers.insert("x-amz-target", "TrentService.ListKeys".parse().unwrap());
        let params = SigningParams {
            access_key_id: "AKID",
            secret_access_key: secret,
            region: "us-east-1",
            service: "kms",
            time,
        };
        sign("POST", "/", "", &mut headers, &payload_sha256(b"{}"), UriEncoding::Double, &params).unwrap();
        headers
    }

    fn check(headers: &HeaderMap, body: &[u8], now: i64) -> Result<Caller, AuthError> {
        let parts = RequestParts { method: "POST", path: "/", query: "", headers };
        verifier().verify_sigv4(&parts, &payload_sha256(body), "kms", UriEncoding::Double, now).map(|v| v.caller)
    }

    #[test]
    fn sign_then_verify() {
        let now = 1_700_000_000;
        let caller = check(&signed(now, "secret"), b"{}", now + 60).unwrap();
        assert_eq!(caller.account_id, "111122223333");
        assert_eq!(caller.region, "us-east-1");
    }

    #[test]
    fn wrong_secret_body_or_time_is_refused() {
        let now = 1_700_000_000;
        assert!(matches!(check(&signed(now, "other"), b"{}", now), Err(AuthError::SignatureMismatch { .. })));
        assert!(matches!(check(&signed(now, "secret"), b"{ }", now), Err(AuthError::SignatureMismatch { .. })));
        assert!(matches!(check(&signed(now, "secret"), b"{}", now + 901), Err(AuthError::Skewed { .. })));
        assert!(matches!(check(&signed(now, "secret"), b"{}", now - 901), Err(AuthError::Skewed { .. })));
        assert_eq!(check(&HeaderMap::new(), b"{}", now), Err(AuthError::Missing));
    }

    /// A session's key verifies only with its own token, and only until it expires on the session clock.
    #[test]
    fn session_keys_need_their_token_until_they_expire() {
        use std::sync::atomic::{AtomicI64, Ordering};

        use crate::accounts::SessionToken;
        use crate::identity::Identity;

        let now = 1_700_000_000;
        let accounts = Arc::new(Accounts::default());
        let session = SessionToken { token: zeroize::Zeroizing::new("tok".into()), expires_at: now + 3600 };
        let arn = "arn:aws:sts::111122223333:assumed-role/r/s".to_owned();
        accounts.insert_live(AccessKey::with_identity(
            "ASIAEXAMPLE",
            "secret",
            "111122223333",
            arn.clone(),
            Identity::root("111122223333"),
            Some(session),
        ));
        accounts.insert_live(AccessKey::new("AKID", "secret", "111122223333", None));
        let simulated = Arc::new(AtomicI64::new(now));
        let clock = simulated.clone();
        let verifier = Verifier::new(accounts).with_session_clock(Arc::new(move || clock.load(Ordering::Relaxed)));
        let check = |key: &str, token: Option<&str>| {
            let mut headers = HeaderMap::new();
            headers.insert("host", "localhost:4566".parse().unwrap());
            if let Some(token) = token {
                headers.insert("x-amz-security-token", token.parse().unwrap());
            }
            let params = SigningParams {
                access_key_id: key,
                secret_access_key: "secret",
                region: "us-east-1",
                service: "kms",
                time: now,
            };
            sign("POST", "/", "", &mut headers, &payload_sha256(b"{}"), UriEncoding::Double, &params).unwrap();
            let parts = RequestParts { method: "POST", path: "/", query: "", headers: &headers };
            verifier.verify_sigv4(&parts, &payload_sha256(b"{}"), "kms", UriEncoding::Double, now)
        };
        assert_eq!(check("ASIAEXAMPLE", Some("tok")).unwrap().caller.principal_arn, arn);
        assert_eq!(check("ASIAEXAMPLE", None).unwrap_err(), AuthError::UnknownAccessKey);
        assert_eq!(check("ASIAEXAMPLE", Some("other")).unwrap_err(), AuthError::InvalidToken);
        assert_eq!(check("AKID", Some("tok")).unwrap_err(), AuthError::InvalidToken);
        assert!(check("AKID", None).is_ok());
        simulated.store(now + 3600, Ordering::Relaxed);
        assert_eq!(check("ASIAEXAMPLE", Some("tok")).unwrap_err(), AuthError::ExpiredToken);
    }

    #[test]
    fn presigned_urls_verify_and_expire() {
        let now = 1_700_000_000;
        let amz_date = format_amz_date(now);
        let scope = format!("{}/us-east-1/s3/aws4_request", &amz_date[..8]);
        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F{}&X-Amz-Date={amz_date}&X-Amz-Expires=60&X-Amz-SignedHeaders=host",
            scope.replace('/', "%2F")
        );
        let mut headers = HeaderMap::new();
        headers.insert("host", "localhost:4566".parse().unwrap());
        let parts = RequestParts { method: "GET", path: "/bucket/key", query: &query, headers: &headers };
        let canonical = canonical_request(&parts, "host", "UNSIGNED-PAYLOAD", UriEncoding::Single).unwrap();
        let key = signing_key("secret", &amz_date[..8], "us-east-1", "s3");
        let signature = to_hex(&hmac(&key, string_to_sign(&amz_date, &scope, &canonical).as_bytes()));
        let signed_query = format!("{query}&X-Amz-Signature={signature}");
        let parts = RequestParts { query: &signed_query, ..parts };
        let v = verifier();
        assert!(v.verify_sigv4_presigned(&parts, "s3", UriEncoding::Single, now + 30).is_ok());
        assert!(matches!(
            v.verify_sigv4_presigned(&parts, "s3", UriEncoding::Single, now + 61),
            Err(AuthError::Expired { .. })
        ));
        let tampered = RequestParts { path: "/bucket/other", ..parts };
        assert!(matches!(
            v.verify_sigv4_presigned(&tampered, "s3", UriEncoding::Single, now),
            Err(AuthError::SignatureMismatch { .. })
        ));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for value in [
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=AKID/20231114/us-east-1/kms/aws4_request",
            "AWS4-HMAC-SHA256 Credential=AKID/20231114/us-east-1/kms, SignedHeaders=host, Signature=00",
            "Basic dXNlcjpwYXNz",
        ] {
            assert!(matches!(Authorization::parse(value), Err(AuthError::Malformed(_))), "{value}");
        }
    }
}
