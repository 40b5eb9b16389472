//! The parameters of a Query API request: `application/x-www-form-urlencoded` pairs (`+` is a space,
//! `%XX` a byte), from the body of a POST or the query string of a GET, and the list and structure forms AWS's
//! SDKs flatten them into (`Tags.member.1.Key`, `PolicyArns.member.1.arn`, `TransitiveTagKeys.member.1`).

use std::collections::BTreeMap;

use percent_encoding::percent_decode;

use crate::error::{Error, Result};
use crate::model::Tag;

/// Most parameters a request may carry (a request has a few dozen at most; this bounds the work on bad input).
pub const MAX_PARAMS: usize = 1000;

/// The parameters of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    values: BTreeMap<String, String>,
}

/// Decodes one form component.
fn decode(raw: &[u8]) -> Result<String> {
    let plus_as_space: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    String::from_utf8(percent_decode(&plus_as_space).collect())
        .map_err(|_| Error::InvalidInput("The request parameters are not valid UTF-8.".into()))
}

impl Params {
    /// Reads `a=1&b=2` pairs. A name given twice keeps its first value.
    pub fn parse(form: &[u8]) -> Result<Params> {
        let mut values = BTreeMap::new();
        for pair in form.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            if values.len() >= MAX_PARAMS {
                return Err(Error::InvalidInput(format!("A request carries at most {MAX_PARAMS} parameters.")));
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            values.entry(decode(name)?).or_insert(decode(value)?);
        }
        Ok(Params { values })
    }

    /// Adds the parameters of `other` that this one lacks (a GET's query beside a POST's body).
    pub fn merge(&mut self, other: Params) {
        for (name, value) in other.values {
            self.values.entry(name).or_insert(value);
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `name`, or the `ValidationError` of a missing parameter naming it as `field`.
    pub fn require(&self, name: &str, field: &str) -> Result<&str> {
        self.get(name).ok_or_else(|| crate::validate::missing(field))
    }

    /// An integer parameter (`MaxItems`, `DurationSeconds`, ...), if given.
    pub fn integer(&self, name: &str, field: &str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| {
                Error::Validation(format!(
                    "1 validation error detected: Value '{text}' at '{field}' failed to satisfy constraint: Member must be a number"
                ))
            }),
        }
    }

    /// A boolean parameter, if given.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(text) if text.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(text) if text.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(text) => Err(Error::Validation(format!("Invalid value for parameter {name}: {text}"))),
        }
    }

    /// The members of the list `name` (`name.member.1`, `name.member.2`, ...), with `suffix` after the index
    /// (`.arn`, or empty for a list of strings), in index order; a gap ends the list.
    pub fn list(&self, name: &str, suffix: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for index in 1..=MAX_PARAMS {
            match self.get(&format!("{name}.member.{index}{suffix}")) {
                Some(value) => out.push(value),
                None => break,
            }
        }
        out
    }

    /// The tags of the list `name` (`Tags.member.N.Key` / `.Value`).
    pub fn tags(&self, name: &str) -> Result<Vec<Tag>> {
        let mut out = Vec::new();
        for index in 1..=MAX_PARAMS {
            let key = self.get(&format!("{name}.member.{index}.Key"));
            let value = self.get(&format!("{name}.member.{index}.Value"));
            match (key, value) {
                (Some(key), value) => {
                    out.push(Tag { key: key.to_owned(), value: value.unwrap_or_default().to_owned() })
                }
                (None, Some(_)) => return Err(crate::validate::missing("tags.member.key")),
                (None, None) => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_as_the_sdks_encode_them() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("Action=CreateUser&Version=2010-05-08&UserName=alice", &[("Action", "CreateUser"), ("UserName", "alice")]),
            ("Path=%2Fdivision%2F&UserName=a+b", &[("Path", "/division/"), ("UserName", "a b")]),
            (
                "PolicyDocument=%7B%22Version%22%3A%222012-10-17%22%7D",
                &[("PolicyDocument", r#"{"Version":"2012-10-17"}"#)],
            ),
            ("A=1&A=2&&B", &[("A", "1"), ("B", "")]),
        ];
        for (form, expected) in cases {
            let params = Params::parse(form.as_bytes()).unwrap();
            for (name, value) in *expected {
                assert_eq!(params.get(name), Some(*value), "{form}: {name}");
            }
        }
        assert!(Params::parse(b"A=%FF").is_err());
    }

    #[test]
    fn lists_and_tags() {
        let params = Params::parse(
            b"Tags.member.1.Key=team&Tags.member.1.Value=blue&Tags.member.2.Key=env&PolicyArns.member.1.arn=a1&PolicyArns.member.2.arn=a2&TransitiveTagKeys.member.1=team",
        )
        .unwrap();
        assert_eq!(
            params.tags("Tags").unwrap(),
            vec![Tag { key: "team".into(), value: "blue".into() }, Tag { key: "env".into(), value: String::new() }]
        );
        assert_eq!(params.list("PolicyArns", ".arn"), vec!["a1", "a2"]);
        assert_eq!(params.list("TransitiveTagKeys", ""), vec!["team"]);
        assert!(Params::parse(b"Tags.member.1.Value=x").unwrap().tags("Tags").is_err());
        let too_many: String = (0..=MAX_PARAMS).map(|i| format!("p{i}=1&")).collect();
        assert!(Params::parse(too_many.as_bytes()).is_err());
    }
}
