//! Object and bucket tags: S3's limits on them, and the `x-amz-tagging` form of a set of tags (a
//! URL-encoded query string, `k1=v1&k2=v2`, as PutObject, CopyObject and CreateMultipartUpload take
//! it).

use percent_encoding::percent_decode_str;

use crate::error::Error;
use crate::model::Tag;

/// Tags an object may have at most.
pub const MAX_OBJECT_TAGS: usize = 10;
/// Tags a bucket may have at most.
pub const MAX_BUCKET_TAGS: usize = 50;
/// Characters of a tag key at most.
const MAX_KEY_CHARS: usize = 128;
/// Characters of a tag value at most.
const MAX_VALUE_CHARS: usize = 256;

/// Checks a set of tags against S3's limits: at most `max` tags, keys of 1 to 128 characters,
/// values of at most 256, no key twice.
pub fn validate(tags: &[Tag], max: usize) -> Result<(), Error> {
    if tags.len() > max {
        return Err(Error::TooManyTags { max });
    }
    for (i, tag) in tags.iter().enumerate() {
        if tag.key.is_empty() || tag.key.chars().count() > MAX_KEY_CHARS {
            return Err(Error::InvalidTag {
                message: format!(
                    "The TagKey you have provided is invalid: it must have 1 to {MAX_KEY_CHARS} characters"
                ),
            });
        }
        if tag.value.chars().count() > MAX_VALUE_CHARS {
            return Err(Error::InvalidTag {
                message: format!("The TagValue you have provided is too long, max {MAX_VALUE_CHARS}"),
            });
        }
        if tags[..i].iter().any(|other| other.key == tag.key) {
            return Err(Error::InvalidTag { message: "Cannot provide multiple Tags with the same key".into() });
        }
    }
    Ok(())
}

/// The condition keys of the tags a request asks an object to carry: `s3:RequestObjectTagKeys` (each key) and
/// `s3:RequestObjectTag/<key>` (its value).
pub fn request_condition_keys(tags: &[Tag]) -> impl Iterator<Item = (String, String)> + '_ {
    tags.iter().flat_map(|tag| {
        [
            ("s3:RequestObjectTagKeys".to_owned(), tag.key.clone()),
            (format!("s3:RequestObjectTag/{}", tag.key), tag.value.clone()),
        ]
    })
}

/// Parses `x-amz-tagging` (`k1=v1&k2=v2`, URL-encoded UTF-8) into tags, checked against the
/// object limits.
pub fn parse_header(text: &str) -> Result<Vec<Tag>, Error> {
    let malformed = || Error::InvalidTaggingHeader;
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " ")).decode_utf8().map(|c| c.into_owned()).map_err(|_| malformed())
    };
    let mut tags = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let tag = Tag { key: decode(key)?, value: decode(value)? };
        if tags.iter().any(|t: &Tag| t.key == tag.key) {
            return Err(malformed());
        }
        tags.push(tag);
    }
    validate(&tags, MAX_OBJECT_TAGS)?;
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> Tag {
        Tag { key: key.into(), value: value.into() }
    }

    #[test]
    fn header_form() {
        assert_eq!(
            parse_header("a=1&b%20c=d%2Fe&empty=").unwrap(),
            [tag("a", "1"), tag("b c", "d/e"), tag("empty", "")]
        );
        assert_eq!(parse_header("").unwrap(), []);
        assert!(matches!(parse_header("a=1&a=2"), Err(Error::InvalidTaggingHeader)));
        assert!(matches!(parse_header("a=%FF"), Err(Error::InvalidTaggingHeader)));
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(matches!(parse_header(&eleven.join("&")), Err(Error::TooManyTags { max: 10 })));
    }

    #[test]
    fn limits() {
        assert!(validate(&[tag(&"k".repeat(128), &"v".repeat(256))], 10).is_ok());
        assert!(matches!(validate(&[tag(&"k".repeat(129), "v")], 10), Err(Error::InvalidTag { .. })));
        assert!(matches!(validate(&[tag("k", &"v".repeat(257))], 10), Err(Error::InvalidTag { .. })));
        assert!(matches!(validate(&[tag("", "v")], 10), Err(Error::InvalidTag { .. })));
        assert!(matches!(validate(&[tag("k", "1"), tag("k", "2")], 10), Err(Error::InvalidTag { .. })));
        assert!(matches!(validate(&vec![tag("k", "v"); 51], 50), Err(Error::TooManyTags { max: 50 })));
    }
}
