//! `kmsim inspect`: what an AWS Encryption SDK message says about itself, without its key — the header (suite,
//! message id, encryption context, encrypted data keys with their KMS key ARNs, frame length) and, from walking the
//! frames' plaintext-free prefixes, the frame count, plaintext length and signature footer.
//!
//! Nothing here is authenticated: a description is what the bytes claim; only `kmsim decrypt` proves them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use obs::envelope::{self, EnvelopeError, Header};
use serde::Serialize;

use super::files::Input;
use super::{AWS_KMS_PROVIDER_ID, CliError, InspectArgs, Result, io_error, read_header};

/// A message, as `inspect` describes it (also its `--json` form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Description {
    /// Message format version (2).
    pub format_version: u8,
    /// The algorithm suite.
    pub algorithm_suite: Suite,
    /// The message id, hex.
    pub message_id: String,
    /// The encryption context (for a signed suite, with `aws-crypto-public-key`).
    pub encryption_context: BTreeMap<String, String>,
    /// The encrypted data keys.
    pub encrypted_data_keys: Vec<DataKeyEntry>,
    /// Content type: `framed` (the only one read).
    pub content_type: &'static str,
    /// Plaintext bytes per frame.
    pub frame_length: u32,
    /// Bytes of the header, its tag included.
    pub header_length: usize,
    /// Frames, the final frame included.
    pub frame_count: u64,
    /// Plaintext bytes, as the frames claim.
    pub plaintext_length: u64,
    /// Bytes of the footer's signature, for a signed suite.
    pub signature_length: Option<usize>,
    /// Bytes of the whole message.
    pub message_length: u64,
}

/// An algorithm suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suite {
    /// Its id, `0x0478`.
    pub id: String,
    /// Its AWS Encryption SDK name.
    pub name: &'static str,
    /// Whether a footer signs the message.
    pub signed: bool,
}

/// One encrypted data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataKeyEntry {
    /// The key provider (`aws-kms`).
    pub provider_id: String,
    /// The provider's key information (for `aws-kms`, the key ARN).
    pub provider_info: String,
    /// The KMS key ARN, for an `aws-kms` entry.
    pub key_arn: Option<String>,
    /// Bytes of the wrapped data key (for `aws-kms`, the KMS ciphertext blob).
    pub ciphertext_length: usize,
}

/// `kmsim inspect`: prints the description of the message.
pub fn inspect(args: &InspectArgs) -> Result<()> {
    let mut input = Input::open(&args.input).map_err(io_error(format!("opening {}", args.input)))?;
    let description = describe(&mut input, &args.input)?;
    let text = if args.json {
        serde_json::to_string_pretty(&description).expect("a description serializes") + "\n"
    } else {
        render(&args.input, &description)
    };
    print!("{text}");
    Ok(())
}

/// Reads the header and walks the frames (seeking past their contents in a file).
pub fn describe(input: &mut Input, name: &str) -> Result<Description> {
    let (header, body) = read_header(input, name)?;
    let walk_error = |source| CliError::Envelope { what: format!("reading the frames of {name}"), source };
    let mut body = Body { buffered: body, at: 0, input, name };
    let (mut frame_count, mut plaintext_length, mut position) = (0u64, 0u64, header.serialized_len() as u64);
    loop {
        let prefix = body.read(envelope::FRAME_PREFIX_LEN)?;
        let frame = envelope::frame_extent(header.frame_length(), &prefix).map_err(walk_error)?;
        if u64::from(frame.sequence) != frame_count + 1 {
            return Err(walk_error(EnvelopeError::OutOfOrder {
                expected: (frame_count + 1) as u32,
                found: frame.sequence,
            }));
        }
        let rest = frame.stored_len - prefix.len() as u64;
        if body.skip(rest)? < rest {
            return Err(walk_error(EnvelopeError::Truncated));
        }
        frame_count += 1;
        plaintext_length += u64::from(frame.plaintext_len);
        position += frame.stored_len;
        if frame.is_final {
            break;
        }
    }
    let footer = body.read(envelope::MAX_FOOTER_LEN + 1)?;
    let signature_length = if header.suite().is_signed() {
        Some(envelope::footer_signature_len(&footer).map_err(walk_error)?)
    } else if footer.is_empty() {
        None
    } else {
        return Err(walk_error(EnvelopeError::TrailingData));
    };
    Ok(Description {
        message_length: position + footer.len() as u64,
        signature_length,
        frame_count,
        plaintext_length,
        ..describe_header(&header)
    })
}

/// The header's part of a description (frame figures zero).
fn describe_header(header: &Header) -> Description {
    let suite = header.suite();
    Description {
        format_version: envelope::MESSAGE_FORMAT_VERSION,
        algorithm_suite: Suite { id: format!("{:#06x}", suite.id()), name: suite.name(), signed: suite.is_signed() },
        message_id: hex::encode(header.message_id()),
        encryption_context: header.encryption_context().clone(),
        encrypted_data_keys: header
            .encrypted_data_keys()
            .iter()
            .map(|edk| DataKeyEntry {
                provider_id: edk.provider_id.clone(),
                provider_info: edk.provider_info.clone(),
                key_arn: (edk.provider_id == AWS_KMS_PROVIDER_ID).then(|| edk.provider_info.clone()),
                ciphertext_length: edk.ciphertext.len(),
            })
            .collect(),
        content_type: if header.is_framed() { "framed" } else { "non-framed" },
        frame_length: header.frame_length(),
        header_length: header.serialized_len(),
        frame_count: 0,
        plaintext_length: 0,
        signature_length: None,
        message_length: 0,
    }
}

/// The body after the header: first what was read along with it, then the input.
struct Body<'a> {
    buffered: Vec<u8>,
    at: usize,
    input: &'a mut Input,
    name: &'a str,
}

impl Body<'_> {
    /// Up to `len` bytes (fewer only at the end).
    fn read(&mut self, len: usize) -> Result<Vec<u8>> {
        let from_buffer = (self.buffered.len() - self.at).min(len);
        let mut bytes = self.buffered[self.at..self.at + from_buffer].to_vec();
        self.at += from_buffer;
        let filled = bytes.len();
        bytes.resize(len, 0);
        let n = self.input.fill(&mut bytes[filled..]).map_err(io_error(format!("reading {}", self.name)))?;
        bytes.truncate(filled + n);
        Ok(bytes)
    }

    /// Skips up to `len` bytes; returns how many there were.
    fn skip(&mut self, len: u64) -> Result<u64> {
        let from_buffer = ((self.buffered.len() - self.at) as u64).min(len);
        self.at += from_buffer as usize;
        let skipped = self.input.skip(len - from_buffer).map_err(io_error(format!("reading {}", self.name)))?;
        Ok(from_buffer + skipped)
    }
}

/// `text` from a message, fit for a terminal: control characters (escape sequences a hostile message could carry)
/// escaped as Rust escapes them, anything else as it is.
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        std::borrow::Cow::Owned(
            text.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect(),
        )
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The human-readable form.
pub fn render(name: &str, d: &Description) -> String {
    let mut out = String::new();
    let signed = if d.algorithm_suite.signed { "signed: ECDSA P-384" } else { "not signed" };
    let _ = writeln!(out, "{name}: AWS Encryption SDK message");
    let _ = writeln!(out, "  format version      {}", d.format_version);
    let _ = writeln!(out, "  algorithm suite     {} {} ({signed})", d.algorithm_suite.id, d.algorithm_suite.name);
    let _ = writeln!(out, "  message id          {}", d.message_id);
    let _ = writeln!(out, "  encryption context  {}", if d.encryption_context.is_empty() { "(empty)" } else { "" });
    for (key, value) in &d.encryption_context {
        let _ = writeln!(out, "    {} = {}", shown(key), shown(value));
    }
    let _ = writeln!(out, "  encrypted data keys {}", d.encrypted_data_keys.len());
    for edk in &d.encrypted_data_keys {
        let (id, info) = (shown(&edk.provider_id), shown(&edk.provider_info));
        let _ = writeln!(out, "    {id}  {info}  ciphertext {} bytes", edk.ciphertext_length);
    }
    let _ = writeln!(out, "  content type        {}", d.content_type);
    if d.frame_length == 0 {
        let _ = writeln!(out, "  header length       {} bytes", d.header_length);
        let _ = writeln!(out, "  body                one block (no frames)");
    } else {
        let _ = writeln!(out, "  frame length        {} bytes", d.frame_length);
        let _ = writeln!(out, "  header length       {} bytes", d.header_length);
        let _ = writeln!(out, "  frames              {} (the last one final)", d.frame_count);
    }
    let _ = writeln!(out, "  plaintext length    {} bytes", d.plaintext_length);
    if let Some(len) = d.signature_length {
        let _ = writeln!(out, "  signature           {len} bytes (not checked by inspect: decrypt verifies it)");
    }
    let _ = writeln!(out, "  message length      {} bytes", d.message_length);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_a_message_are_escaped_for_the_terminal() {
        assert_eq!(shown("purpose"), "purpose");
        assert_eq!(shown("ünïcode ✓"), "ünïcode ✓");
        assert_eq!(shown("\u{1b}]0;owned\u{7}\n"), "\\u{1b}]0;owned\\u{7}\\n");
    }
}
