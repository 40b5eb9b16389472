//! User metadata values beyond US-ASCII, as S3 handles them: a value sent as RFC 2047 encoded
//! words (`=?UTF-8?B?Y2Fmw6k=?=`) or as raw UTF-8 is stored decoded, and a stored value that is not
//! US-ASCII is answered RFC 2047-encoded (`B` encoding), so that it stays a valid header.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The stored form of a metadata header value: its UTF-8 text with RFC 2047 encoded words
/// decoded; `None` when it is not UTF-8.
pub fn decode(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?.trim();
    Some(decode_words(text).unwrap_or_else(|| text.to_owned()))
}

/// The header form of a stored value: as stored when US-ASCII, else one RFC 2047 encoded word.
pub fn encode(value: &str) -> Cow<'_, str> {
    if value.is_ascii() {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("=?UTF-8?B?{}?=", BASE64.encode(value.as_bytes())))
    }
}

/// The text of a value made only of encoded words (separated by white space, which RFC 2047
/// drops between them); `None` when it is anything else.
fn decode_words(text: &str) -> Option<String> {
    if !text.starts_with("=?") {
        return None;
    }
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        let inner = word.strip_prefix("=?")?.strip_suffix("?=")?;
        let mut fields = inner.splitn(3, '?');
        let (charset, encoding, payload) = (fields.next()?, fields.next()?, fields.next()?);
        if !charset.eq_ignore_ascii_case("UTF-8") {
            return None;
        }
        match encoding {
            "B" | "b" => out.extend(BASE64.decode(payload).ok()?),
            "Q" | "q" => out.extend(decode_q(payload)?),
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 2047's `Q` encoding: `_` is a space, `=XX` a byte.
fn decode_q(payload: &str) -> Option<Vec<u8>> {
    let bytes = payload.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = payload.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(decode(b"plain value").as_deref(), Some("plain value"));
        assert_eq!(decode("café ☕".as_bytes()).as_deref(), Some("café ☕"));
        assert_eq!(decode(b"=?UTF-8?B?Y2Fmw6kg4piV?=").as_deref(), Some("café ☕"));
        assert_eq!(decode(b"=?utf-8?Q?caf=C3=A9_ok?=").as_deref(), Some("café ok"));
        assert_eq!(decode(b"=?UTF-8?B?Y2Fm?= =?UTF-8?B?w6k=?=").as_deref(), Some("café"));
        // Not encoded words after all: kept as sent.
        assert_eq!(decode(b"=?ISO-8859-1?Q?x?=").as_deref(), Some("=?ISO-8859-1?Q?x?="));
        assert_eq!(decode(b"=?UTF-8?B?not base64!?=").as_deref(), Some("=?UTF-8?B?not base64!?="));
        assert_eq!(decode(&[0xff, 0xfe]), None);
        assert_eq!(encode("ascii"), "ascii");
        assert_eq!(encode("café ☕"), "=?UTF-8?B?Y2Fmw6kg4piV?=");
        assert_eq!(decode(encode("日本語").as_bytes()).as_deref(), Some("日本語"));
    }
}
