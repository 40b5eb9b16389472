//! The constraints of IAM's and STS's parameters, with the `ValidationError` messages AWS words them with
//! ("1 validation error detected: Value 'x' at 'userName' failed to satisfy constraint: ...").

use crate::error::{Error, Result};
use crate::model::Tag;

/// Most tags a user, role, policy or session carries.
pub const MAX_TAGS: usize = 50;

fn constraint(value: &str, field: &str, what: &str) -> Error {
    Error::Validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {what}"
    ))
}

/// A parameter the request lacks.
pub fn missing(field: &str) -> Error {
    Error::Validation(format!(
        "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
    ))
}

/// Length in characters within `min..=max`.
pub fn length(value: &str, field: &str, min: usize, max: usize) -> Result<()> {
    let len = value.chars().count();
    if len < min {
        return Err(constraint(value, field, &format!("Member must have length greater than or equal to {min}")));
    }
    if len > max {
        return Err(constraint(value, field, &format!("Member must have length less than or equal to {max}")));
    }
    Ok(())
}

/// The names of users, roles, policies and sessions: `[\w+=,.@-]`, within `min..=max` characters.
pub fn name(value: &str, field: &str, min: usize, max: usize) -> Result<()> {
    length(value, field, min, max)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    if !value.chars().all(allowed) {
        let pattern = if min == 0 || field == "roleSessionName" { r"[\w+=,.@-]*" } else { r"[\w+=,.@-]+" };
        return Err(constraint(value, field, &format!("Member must satisfy regular expression pattern: {pattern}")));
    }
    Ok(())
}

/// A path: `/`, or `/` + printable ASCII + `/`, at most 512 characters (`pathPrefix` need not end in `/`).
pub fn path(value: &str, field: &str) -> Result<()> {
    length(value, field, 1, 512)?;
    let printable = value.bytes().all(|b| (0x21..=0x7e).contains(&b));
    let shaped = value.starts_with('/') && (field == "pathPrefix" || value.ends_with('/'));
    if !printable || !shaped {
        return Err(Error::Validation(
            "The specified value for path is invalid. It must begin and end with / and contain only alphanumeric \
             characters and/or / characters."
                .into(),
        ));
    }
    Ok(())
}

/// A description: at most 1000 characters.
pub fn description(value: &str) -> Result<()> {
    length(value, "description", 0, 1000)
}

/// Tags: at most [`MAX_TAGS`], keys of 1–128 and values of 0–256 letters, digits, spaces and `_.:/=+-@`, keys
/// unique regardless of case.
pub fn tags(tags: &[Tag]) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::LimitExceeded(format!("Cannot exceed quota for TagsPerEntity: {MAX_TAGS}")));
    }
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    for (i, tag) in tags.iter().enumerate() {
        length(&tag.key, "tags.member.key", 1, 128)?;
        length(&tag.value, "tags.member.value", 0, 256)?;
        if !tag.key.chars().all(allowed) {
            return Err(constraint(
                &tag.key,
                "tags.member.key",
                r"Member must satisfy regular expression pattern: [\p{L}\p{Z}\p{N}_.:/=+\-@]+",
            ));
        }
        if !tag.value.chars().all(allowed) {
            return Err(constraint(
                &tag.value,
                "tags.member.value",
                r"Member must satisfy regular expression pattern: [\p{L}\p{Z}\p{N}_.:/=+\-@]*",
            ));
        }
        if tags[..i].iter().any(|t| t.key.eq_ignore_ascii_case(&tag.key)) {
            return Err(Error::InvalidInput(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.".into(),
            ));
        }
    }
    Ok(())
}

/// A policy document's size as IAM counts it against its quotas: characters other than white space.
pub fn policy_size(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_tags() {
        let cases: &[(&str, bool)] =
            &[("alice", true), ("a.b+c=d,e@f-g_h", true), ("", false), ("a b", false), ("é", false)];
        for (value, ok) in cases {
            assert_eq!(name(value, "userName", 1, 64).is_ok(), *ok, "{value}");
        }
        let err = name("a b", "userName", 1, 64).unwrap_err().to_string();
        assert_eq!(
            err,
            r"1 validation error detected: Value 'a b' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]+"
        );
        assert!(name(&"x".repeat(65), "userName", 1, 64).unwrap_err().to_string().contains("less than or equal to 64"));
        for (value, ok) in [("/", true), ("/a/b/", true), ("a/", false), ("/a", false), ("/a b/", false), ("", false)] {
            assert_eq!(path(value, "path").is_ok(), ok, "{value}");
        }
        assert!(path("/a", "pathPrefix").is_ok());
        let tag = |k: &str, v: &str| Tag { key: k.into(), value: v.into() };
        assert!(tags(&[tag("team", "blue"), tag("cost-center", "")]).is_ok());
        assert!(matches!(tags(&[tag("a", "1"), tag("A", "2")]), Err(Error::InvalidInput(_))));
        assert!(tags(&[tag("", "1")]).is_err());
        assert!(tags(&[tag("a*", "1")]).is_err());
        assert!(matches!(tags(&vec![tag("k", "v"); 51]), Err(Error::LimitExceeded(_))));
        assert_eq!(policy_size("{ \"a\" :\n 1 }"), 7);
    }
}
