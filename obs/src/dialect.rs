//! The OBS header family (`x-obs-*`) of Open Telekom Cloud / Huawei Cloud next to S3's `x-amz-*`.
//!
//! A request speaks the OBS family when it carries the OBS signature (`Authorization: OBS ...`),
//! whose string to sign covers the `x-obs-*` headers; every other request speaks S3's. A request
//! carrying headers of the family its signature does not cover is refused ([`check_headers`]):
//! they would act unsigned. The front end reads one family only: an OBS request's headers are
//! translated into their `x-amz-*` equivalents once it is authenticated ([`request_to_aws`]) and
//! its response headers back into `x-obs-*` ([`response_to_obs`]). Only names and a few values
//! differ: `kms` for `aws:kms`, KMS keys named `regionID:domainID:key/<id>` rather than by ARN, and
//! `x-obs-server-side-encryption: kms` without a key id means the service-managed key
//! `alias/obs/default` rather than `alias/aws/s3`. Objects are the same objects whichever family
//! wrote or reads them.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::s3_error::S3Error;
use crate::{sse, sse_headers};

/// The prefix of the OBS header family.
pub const OBS_PREFIX: &str = "x-obs-";
/// The prefix of the S3 header family.
pub const AMZ_PREFIX: &str = "x-amz-";
/// The OBS name of the SSE-KMS key header (S3's is [`sse_headers::SSE_KMS_KEY_ID`]).
pub const OBS_SSE_KMS_KEY_ID: &str = "x-obs-server-side-encryption-kms-key-id";
/// The OBS name of the SSE algorithm header.
pub const OBS_SSE: &str = "x-obs-server-side-encryption";
/// The OBS value of SSE-KMS in headers and bucket encryption (S3's is `aws:kms`).
pub const OBS_KMS: &str = "kms";
/// The OBS API version `HEAD /?apiversion` announces; esdk-obs-python then signs the OBS way.
pub const OBS_API_VERSION: &str = "3.0";

/// Which header family a request speaks, and so which its response speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// `x-amz-*` (S3).
    #[default]
    Aws,
    /// `x-obs-*` (OBS).
    Obs,
}

impl Family {
    /// The family of a request: OBS when signed the OBS way (an `OBS AK:sig` header, or the
    /// `AccessKeyId` of an OBS temporary URL), S3's otherwise. `query` is the raw query string.
    pub fn of_request(headers: &HeaderMap, query: &str) -> Self {
        let obs_signed = headers.get(http::header::AUTHORIZATION).is_some_and(|v| {
            v.to_str().ok().and_then(auth::sigv2::Dialect::of_authorization) == Some(auth::sigv2::Dialect::Obs)
        });
        let obs_url = query.split('&').any(|pair| pair.starts_with("AccessKeyId="));
        if obs_signed || obs_url { Family::Obs } else { Family::Aws }
    }

    /// The prefix of the headers this family's signatures do not cover.
    fn foreign_prefix(self) -> &'static str {
        match self {
            Family::Aws => OBS_PREFIX,
            Family::Obs => AMZ_PREFIX,
        }
    }

    /// The response header naming the request id.
    pub fn request_id_header(self) -> &'static str {
        match self {
            Family::Aws => "x-amz-request-id",
            Family::Obs => "x-obs-request-id",
        }
    }

    /// The second request id header (`x-amz-id-2` / `x-obs-id-2`).
    pub fn id2_header(self) -> &'static str {
        match self {
            Family::Aws => "x-amz-id-2",
            Family::Obs => "x-obs-id-2",
        }
    }
}

/// Refuses a request that carries headers of the other family than its signature's: an `OBS`
/// signature does not cover `x-amz-*` headers, nor an `AWS` or SigV4 one `x-obs-*` headers, and
/// acting on them would let anyone who holds a signed request change what it does.
pub fn check_headers(headers: &HeaderMap, family: Family) -> Result<(), S3Error> {
    let prefix = family.foreign_prefix();
    match headers.keys().find(|name| name.as_str().starts_with(prefix)) {
        None => Ok(()),
        Some(name) => Err(S3Error::invalid_argument(format!(
            "The header {name} cannot be used with this signature; sign the request the {} way",
            if family == Family::Obs { "AWS" } else { "OBS" }
        ))
        .with("ArgumentName", name.as_str())),
    }
}

/// The caller's identity in the OTC dialect, needed to read and write OBS key ids.
#[derive(Debug, Clone, Copy)]
pub struct ObsCaller<'a> {
    /// The caller's account (the account part of key ARNs).
    pub account_id: &'a str,
    /// The caller's domain id (the domain part of OBS key ids).
    pub domain_id: &'a str,
}

/// A KMS key as an OBS request names it, in the form the KMS understands: `regionID:domainID:key/<id>`
/// becomes the key's ARN (the domain must be the caller's); a bare id, an alias or an ARN is kept.
pub fn key_id_from_obs(value: &str, caller: ObsCaller<'_>) -> Result<String, S3Error> {
    let value = value.trim();
    if value.starts_with("arn:") {
        return Ok(value.to_owned());
    }
    let parts: Vec<&str> = value.splitn(3, ':').collect();
    match parts.as_slice() {
        [_] => Ok(value.to_owned()),
        [region, domain, key] => {
            let id = key.strip_prefix("key/").filter(|id| !id.is_empty() && !id.contains(['/', ':']));
            let Some(id) = id.filter(|_| !region.is_empty() && !region.contains('/')) else {
                return Err(invalid_key_id(value));
            };
            if *domain != caller.domain_id {
                return Err(S3Error::access_denied(format!(
                    "The KMS key {value} belongs to another domain than the caller's ({})",
                    caller.domain_id
                )));
            }
            Ok(format!("arn:aws:kms:{region}:{}:key/{id}", caller.account_id))
        }
        _ => Err(invalid_key_id(value)),
    }
}

fn invalid_key_id(value: &str) -> S3Error {
    S3Error::invalid_argument(format!(
        "The KMS key id {value} is invalid: use a key id or regionID:domainID:key/<key id>"
    ))
    .with("ArgumentName", OBS_SSE_KMS_KEY_ID)
}

/// A key ARN (`arn:aws:kms:<region>:<account>:key/<id>`) as OBS names keys,
/// `<region>:<domain>:key/<id>`, the domain being that of the key's account (`domain_of`).
/// Anything else is returned unchanged.
pub fn key_id_to_obs(arn: &str, domain_of: impl Fn(&str) -> String) -> String {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    match fields.as_slice() {
        ["arn", _, "kms", region, account, resource] if resource.starts_with("key/") => {
            format!("{region}:{}:{resource}", domain_of(account))
        }
        _ => arn.to_owned(),
    }
}

/// The headers of an OBS request as the front end reads them: every `x-obs-<name>` becomes
/// `x-amz-<name>` (replacing an `x-amz-<name>` sent beside it), with the OBS values translated:
/// `kms` → `aws:kms`, OBS key ids → ARNs, and SSE-KMS without a key id → `alias/obs/default`.
pub fn request_to_aws(headers: &HeaderMap, caller: ObsCaller<'_>) -> Result<HeaderMap, S3Error> {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !name.as_str().starts_with(OBS_PREFIX) {
            out.append(name.clone(), value.clone());
        }
    }
    let mut kms_requested = false;
    for name in headers.keys().filter(|name| name.as_str().starts_with(OBS_PREFIX)) {
        let suffix = &name.as_str()[OBS_PREFIX.len()..];
        let aws_name = match suffix {
            "server-side-encryption-kms-key-id" => HeaderName::from_static(sse_headers::SSE_KMS_KEY_ID),
            _ => HeaderName::from_bytes(format!("{AMZ_PREFIX}{suffix}").as_bytes())
                .map_err(|_| S3Error::invalid_argument(format!("invalid header name {name}")))?,
        };
        out.remove(&aws_name);
        for value in headers.get_all(name) {
            let text = || value.to_str().map_err(|_| S3Error::invalid_argument(format!("{name} is not valid text")));
            let translated = match suffix {
                "server-side-encryption" if matches!(text()?.trim(), OBS_KMS | "aws:kms") => {
                    kms_requested = true;
                    HeaderValue::from_static("aws:kms")
                }
                "server-side-encryption-kms-key-id" => {
                    let arn = key_id_from_obs(text()?, caller)?;
                    HeaderValue::from_str(&arn).map_err(|_| invalid_key_id(&arn))?
                }
                _ => value.clone(),
            };
            out.append(aws_name.clone(), translated);
        }
    }
    if kms_requested && !out.contains_key(sse_headers::SSE_KMS_KEY_ID) {
        out.insert(sse_headers::SSE_KMS_KEY_ID, HeaderValue::from_static(sse::OBS_MANAGED_ALIAS));
    }
    Ok(out)
}

/// Renames the `x-amz-*` headers of a response to an OBS request into `x-obs-*`, translating
/// `aws:kms` → `kms` and key ARNs → OBS key ids (`domain_of` gives an account's domain id).
pub fn response_to_obs(headers: &mut HeaderMap, domain_of: impl Fn(&str) -> String) {
    let names: Vec<HeaderName> = headers.keys().filter(|name| name.as_str().starts_with(AMZ_PREFIX)).cloned().collect();
    for name in names {
        let suffix = &name.as_str()[AMZ_PREFIX.len()..];
        let obs_name = match suffix {
            "server-side-encryption-aws-kms-key-id" => HeaderName::from_static(OBS_SSE_KMS_KEY_ID),
            "bucket-region" => HeaderName::from_static("x-obs-bucket-location"),
            _ => match HeaderName::from_bytes(format!("{OBS_PREFIX}{suffix}").as_bytes()) {
                Ok(obs_name) => obs_name,
                Err(_) => continue,
            },
        };
        let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        headers.remove(&name);
        for value in values {
            let translated = match (suffix, value.to_str()) {
                ("server-side-encryption", Ok("aws:kms")) => HeaderValue::from_static(OBS_KMS),
                ("server-side-encryption-aws-kms-key-id", Ok(arn)) => {
                    HeaderValue::from_str(&key_id_to_obs(arn, &domain_of)).unwrap_or(value)
                }
                _ => value,
            };
            headers.append(obs_name.clone(), translated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: ObsCaller<'static> =
        ObsCaller { account_id: "000000000000", domain_id: "00000000000000000000000000000000" };

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn key_ids() {
        let zeros = CALLER.domain_id;
        assert_eq!(
            key_id_from_obs(&format!("eu-de:{zeros}:key/1234abcd"), CALLER).unwrap(),
            "arn:aws:kms:eu-de:000000000000:key/1234abcd"
        );
        assert_eq!(key_id_from_obs("1234abcd", CALLER).unwrap(), "1234abcd");
        assert_eq!(key_id_from_obs("alias/mine", CALLER).unwrap(), "alias/mine");
        let arn = "arn:aws:kms:us-east-1:000000000000:key/k";
        assert_eq!(key_id_from_obs(arn, CALLER).unwrap(), arn);
        let other = format!("eu-de:{}:key/k", "1".repeat(32));
        assert_eq!(key_id_from_obs(&other, CALLER).unwrap_err().code, crate::S3ErrorCode::AccessDenied);
        for bad in
            ["eu-de:x", &format!("eu-de:{zeros}:alias/k"), &format!(":{zeros}:key/k"), &format!("eu-de:{zeros}:key/")]
        {
            assert_eq!(key_id_from_obs(bad, CALLER).unwrap_err().code, crate::S3ErrorCode::InvalidArgument, "{bad}");
        }
        let domain = |account: &str| format!("domain-of-{account}");
        assert_eq!(key_id_to_obs(arn, domain), "us-east-1:domain-of-000000000000:key/k");
        assert_eq!(key_id_to_obs("alias/obs/default", domain), "alias/obs/default");
    }

    #[test]
    fn requests_translate_to_the_s3_family() {
        let h = headers(&[
            ("x-obs-server-side-encryption", "kms"),
            ("x-obs-meta-colour", "blue"),
            ("x-obs-copy-source", "/b/k"),
            ("x-amz-meta-colour", "red"),
            ("content-type", "text/plain"),
        ]);
        let out = request_to_aws(&h, CALLER).unwrap();
        assert_eq!(out[sse_headers::SSE], "aws:kms");
        assert_eq!(out[sse_headers::SSE_KMS_KEY_ID], sse::OBS_MANAGED_ALIAS);
        assert_eq!(out.get_all("x-amz-meta-colour").iter().collect::<Vec<_>>(), ["blue"]);
        assert_eq!(out["x-amz-copy-source"], "/b/k");
        assert_eq!(out["content-type"], "text/plain");
        assert!(!out.keys().any(|k| k.as_str().starts_with(OBS_PREFIX)));

        let h = headers(&[
            ("x-obs-server-side-encryption", "kms"),
            (OBS_SSE_KMS_KEY_ID, "eu-de:00000000000000000000000000000000:key/k1"),
        ]);
        assert_eq!(
            request_to_aws(&h, CALLER).unwrap()[sse_headers::SSE_KMS_KEY_ID],
            "arn:aws:kms:eu-de:000000000000:key/k1"
        );
        let h = headers(&[("x-obs-server-side-encryption", "AES256")]);
        let out = request_to_aws(&h, CALLER).unwrap();
        assert_eq!(out[sse_headers::SSE], "AES256");
        assert!(!out.contains_key(sse_headers::SSE_KMS_KEY_ID));
    }

    #[test]
    fn responses_translate_to_the_obs_family() {
        let mut h = headers(&[
            (sse_headers::SSE, "aws:kms"),
            (sse_headers::SSE_KMS_KEY_ID, "arn:aws:kms:us-east-1:000000000000:key/k"),
            ("x-amz-meta-colour", "blue"),
            ("x-amz-bucket-region", "us-east-1"),
            ("etag", "\"x\""),
        ]);
        response_to_obs(&mut h, |_| "d".to_owned());
        assert_eq!(h[OBS_SSE], "kms");
        assert_eq!(h[OBS_SSE_KMS_KEY_ID], "us-east-1:d:key/k");
        assert_eq!(h["x-obs-meta-colour"], "blue");
        assert_eq!(h["x-obs-bucket-location"], "us-east-1");
        assert_eq!(h["etag"], "\"x\"");
        assert!(!h.keys().any(|k| k.as_str().starts_with(AMZ_PREFIX)));
    }
}
