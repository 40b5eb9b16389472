//! The policy document of a browser form upload (S3's POST Object, OBS's form upload): its
//! expiration and conditions, and the check of a form's fields against them, with S3's messages.
//!
//! A policy is base64 JSON: `{"expiration": "2026-12-01T12:00:00.000Z", "conditions": [...]}`. A
//! condition is an exact match (`{"acl": "public-read"}` or `["eq", "$acl", "public-read"]`), a
//! prefix (`["starts-with", "$key", "user/"]`, an empty prefix allows any value) or a size range
//! (`["content-length-range", 1, 10485760]`). Field names compare without regard to case; `bucket`
//! names the bucket. Every form field must be covered by a condition, except the signature's own
//! fields, `policy`, `file` and `x-ignore-*` fields.

use serde_json::Value;

/// Why a policy refuses a form, with S3's message (its code is `AccessDenied` for everything but
/// the document itself, which is `InvalidPolicyDocument`, and the size range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The document is not a policy (400 InvalidPolicyDocument).
    Invalid(String),
    /// 403 AccessDenied "Invalid according to Policy: ...".
    Denied(String),
    /// The file is larger than the policy's `content-length-range` allows.
    TooLarge {
        /// The file's size.
        size: u64,
        /// The largest allowed.
        max: u64,
    },
    /// The file is smaller than the policy's `content-length-range` allows.
    TooSmall {
        /// The file's size.
        size: u64,
        /// The smallest allowed.
        min: u64,
    },
}

/// One condition of a policy; field names as the policy writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// The field equals the value.
    Eq { field: String, value: String },
    /// The field starts with the prefix.
    StartsWith { field: String, prefix: String },
    /// The file's size lies in `min..=max`.
    LengthRange { min: u64, max: u64 },
}

impl Condition {
    /// The condition as S3 quotes it in a refusal: `["eq", "$key", "photo.jpg"]`.
    fn quoted(&self) -> String {
        let quote = |s: &str| Value::String(s.to_owned()).to_string();
        match self {
            Condition::Eq { field, value } => format!("[\"eq\", {}, {}]", quote(&format!("${field}")), quote(value)),
            Condition::StartsWith { field, prefix } => {
                format!("[\"starts-with\", {}, {}]", quote(&format!("${field}")), quote(prefix))
            }
            Condition::LengthRange { min, max } => format!("[\"content-length-range\", {min}, {max}]"),
        }
    }
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostPolicy {
    /// When it stops being valid, Unix milliseconds.
    pub expires_millis: i64,
    conditions: Vec<Condition>,
}

/// Form fields no condition needs to cover: the signature's own, the policy, the file.
const EXEMPT: [&str; 5] = ["policy", "signature", "x-amz-signature", "awsaccesskeyid", "file"];

impl PostPolicy {
    /// Parses the decoded JSON of a policy.
    pub fn parse(json: &[u8]) -> Result<Self, Refusal> {
        let invalid = |what: &str| Refusal::Invalid(format!("Invalid Policy: {what}"));
        let document: Value = serde_json::from_slice(json).map_err(|_| invalid("Invalid JSON."))?;
        let expiration = document
            .get("expiration")
            .ok_or_else(|| invalid("Policy missing expiration."))?
            .as_str()
            .ok_or_else(|| invalid("Invalid 'expiration' value."))?;
        let expires_millis = parse_expiration(expiration)
            .ok_or_else(|| invalid(&format!("Invalid 'expiration' value: '{expiration}'")))?;
        let list = document
            .get("conditions")
            .ok_or_else(|| invalid("Policy missing conditions."))?
            .as_array()
            .ok_or_else(|| invalid("Invalid 'conditions' value."))?;
        let mut conditions = Vec::with_capacity(list.len());
        for condition in list {
            conditions
                .push(parse_condition(condition).ok_or_else(|| invalid(&format!("Invalid condition: {condition}")))?);
        }
        Ok(PostPolicy { expires_millis, conditions })
    }

    /// Checks a form against the policy at `now_millis`: expiry, every condition (with `bucket`
    /// the bucket named by the request), and that every field is covered by a condition.
    /// `fields` are the form's fields before the file, names as sent.
    pub fn check(&self, fields: &[(String, String)], bucket: &str, now_millis: i64) -> Result<(), Refusal> {
        if now_millis > self.expires_millis {
            return Err(Refusal::Denied("Invalid according to Policy: Policy expired.".into()));
        }
        let value_of = |name: &str| -> Option<&str> {
            if name == "bucket" {
                return Some(bucket);
            }
            fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        };
        for condition in &self.conditions {
            let holds = match condition {
                Condition::Eq { field, value } => value_of(&field.to_ascii_lowercase()) == Some(value.as_str()),
                Condition::StartsWith { field, prefix } => {
                    value_of(&field.to_ascii_lowercase()).is_some_and(|v| v.starts_with(prefix.as_str()))
                }
                Condition::LengthRange { .. } => true,
            };
            if !holds {
                return Err(Refusal::Denied(format!(
                    "Invalid according to Policy: Policy Condition failed: {}",
                    condition.quoted()
                )));
            }
        }
        let covered = |name: &str| {
            self.conditions.iter().any(|c| match c {
                Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => field.eq_ignore_ascii_case(name),
                Condition::LengthRange { .. } => false,
            })
        };
        let extra: Vec<&str> = fields
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| {
                let lower = name.to_ascii_lowercase();
                !EXEMPT.contains(&lower.as_str())
                    && lower != "accesskeyid"
                    && !lower.starts_with("x-ignore-")
                    && !covered(name)
            })
            .collect();
        if !extra.is_empty() {
            return Err(Refusal::Denied(format!(
                "Invalid according to Policy: Extra input fields: {}",
                extra.join(", ")
            )));
        }
        Ok(())
    }

    /// The policy's size range for the file, if it has one.
    pub fn length_range(&self) -> Option<(u64, u64)> {
        self.conditions.iter().find_map(|c| match c {
            Condition::LengthRange { min, max } => Some((*min, *max)),
            _ => None,
        })
    }

    /// Checks the file's size against the range.
    pub fn check_length(&self, size: u64) -> Result<(), Refusal> {
        match self.length_range() {
            Some((_, max)) if size > max => Err(Refusal::TooLarge { size, max }),
            Some((min, _)) if size < min => Err(Refusal::TooSmall { size, min }),
            _ => Ok(()),
        }
    }
}

/// A condition: `{"field": "value"}`, `["eq" | "starts-with", "$field", "value"]` or
/// `["content-length-range", min, max]`.
fn parse_condition(condition: &Value) -> Option<Condition> {
    match condition {
        Value::Object(map) if map.len() == 1 => {
            let (field, value) = map.iter().next()?;
            Some(Condition::Eq { field: field.clone(), value: value.as_str()?.to_owned() })
        }
        Value::Array(items) if items.len() == 3 => {
            let operator = items[0].as_str()?.to_ascii_lowercase();
            if operator == "content-length-range" {
                let bound = |v: &Value| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
                let (min, max) = (bound(&items[1])?, bound(&items[2])?);
                return (min <= max).then_some(Condition::LengthRange { min, max });
            }
            let field = items[1].as_str()?.strip_prefix('$')?.to_owned();
            let value = items[2].as_str()?.to_owned();
            match operator.as_str() {
                "eq" => Some(Condition::Eq { field, value }),
                "starts-with" => Some(Condition::StartsWith { field, prefix: value }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Parses an ISO 8601 UTC time (`2026-12-01T12:00:00.000Z` or without the fraction) into Unix
/// milliseconds.
fn parse_expiration(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let (time, fraction) = match time.split_once('.') {
        Some((time, fraction)) => (time, fraction),
        None => (time, ""),
    };
    let compact = format!("{}T{}Z", date.replace('-', ""), time.replace(':', ""));
    let secs = shared::time::parse_amz_date(&compact)?;
    let millis: i64 = match fraction {
        "" => 0,
        f if f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => format!("{f:0<3}")[..3].parse().ok()?,
        _ => return None,
    };
    secs.checked_mul(1000)?.checked_add(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// The example policy of the S3 documentation ("Creating a POST policy").
    const DOC_POLICY: &str = r#"{ "expiration": "2007-12-01T12:00:00.000Z",
      "conditions": [
        {"acl": "public-read" },
        {"bucket": "johnsmith" },
        ["starts-with", "$key", "user/eric/"],
        ["content-length-range", 1, 10485760]
      ]
    }"#;

    #[test]
    fn documentation_example() {
        let policy = PostPolicy::parse(DOC_POLICY.as_bytes()).unwrap();
        assert_eq!(policy.expires_millis, 1_196_510_400_000);
        assert_eq!(policy.length_range(), Some((1, 10_485_760)));
        let before = 1_196_510_399_000;
        let form = fields(&[("key", "user/eric/photo.jpg"), ("acl", "public-read"), ("AWSAccessKeyId", "AK")]);
        assert_eq!(policy.check(&form, "johnsmith", before), Ok(()));
        assert_eq!(
            policy.check(&form, "johnsmith", before + 2000),
            Err(Refusal::Denied("Invalid according to Policy: Policy expired.".into()))
        );
        let other_key = fields(&[("key", "user/alice/photo.jpg"), ("acl", "public-read")]);
        assert_eq!(
            policy.check(&other_key, "johnsmith", before),
            Err(Refusal::Denied(
                r#"Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "user/eric/"]"#.into()
            ))
        );
        assert!(
            matches!(policy.check(&form, "another-bucket", before), Err(Refusal::Denied(m)) if m.contains("bucket"))
        );
        let extra = fields(&[("key", "user/eric/a"), ("acl", "public-read"), ("Content-Type", "text/plain")]);
        assert_eq!(
            policy.check(&extra, "johnsmith", before),
            Err(Refusal::Denied("Invalid according to Policy: Extra input fields: Content-Type".into()))
        );
        let ignored = fields(&[("key", "user/eric/a"), ("acl", "public-read"), ("x-ignore-me", "1"), ("file", "")]);
        assert_eq!(policy.check(&ignored, "johnsmith", before), Ok(()));
        assert_eq!(policy.check_length(0), Err(Refusal::TooSmall { size: 0, min: 1 }));
        assert_eq!(policy.check_length(10_485_761), Err(Refusal::TooLarge { size: 10_485_761, max: 10_485_760 }));
        assert_eq!(policy.check_length(10_485_760), Ok(()));
    }

    #[test]
    fn eq_and_empty_prefix_and_case() {
        let policy = PostPolicy::parse(
            br#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["eq", "$Content-Type", "text/plain"],
                ["starts-with", "$x-amz-meta-tag", ""], {"key": "k"}]}"#,
        )
        .unwrap();
        let form = fields(&[("key", "k"), ("content-type", "text/plain"), ("X-Amz-Meta-Tag", "anything")]);
        assert_eq!(policy.check(&form, "b", 0), Ok(()));
        let wrong = fields(&[("key", "k"), ("content-type", "text/html"), ("x-amz-meta-tag", "")]);
        assert!(matches!(policy.check(&wrong, "b", 0), Err(Refusal::Denied(m)) if m.contains("Content-Type")));
    }

    #[test]
    fn invalid_documents() {
        for (document, message) in [
            ("not json", "Invalid Policy: Invalid JSON."),
            (r#"{"conditions": []}"#, "Invalid Policy: Policy missing expiration."),
            (
                r#"{"expiration": "tomorrow", "conditions": []}"#,
                "Invalid Policy: Invalid 'expiration' value: 'tomorrow'",
            ),
            (r#"{"expiration": "2030-01-01T00:00:00Z"}"#, "Invalid Policy: Policy missing conditions."),
        ] {
            assert_eq!(PostPolicy::parse(document.as_bytes()), Err(Refusal::Invalid(message.into())), "{document}");
        }
        let bad_condition = br#"{"expiration": "2030-01-01T00:00:00Z", "conditions": [["matches", "$key", "x"]]}"#;
        assert!(
            matches!(PostPolicy::parse(bad_condition), Err(Refusal::Invalid(m)) if m.starts_with("Invalid Policy: Invalid condition"))
        );
        assert_eq!(parse_expiration("2030-01-01T00:00:00.5Z"), Some(1_893_456_000_500));
    }
}
