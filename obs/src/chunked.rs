//! Decoding of aws-chunked request bodies, as current AWS SDKs and CLIs send them:
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` (each chunk signed, chained on the request signature),
//! `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (unsigned chunks, checksum in a trailer) and
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` (signed chunks and a signed trailer).
//!
//! ```text
//! <hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n
//! [<trailer name>:<value>\r\n ... [x-amz-trailer-signature:<sig>\r\n]]\r\n
//! ```
//!
//! [`ChunkedDecoder`] is a push parser: feed it the body as it arrives and it yields the payload
//! bytes, checking each chunk's signature before releasing it, so a bad chunk stores nothing.

use std::collections::BTreeMap;

use auth::sigv4::{self, Seed};
use bytes::{Buf, Bytes, BytesMut};

use crate::error::Error;
use crate::s3_error::S3Error;
use crate::s3_error::S3ErrorCode;

/// Longest chunk header or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Largest chunk accepted (SDKs send 64 KiB; the S3 limit is far above what clients use).
const MAX_CHUNK: usize = 16 * 1024 * 1024;

/// How the payload of a request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadMode {
    /// A plain body whose SHA-256 was signed (hex digest in `x-amz-content-sha256`).
    Signed,
    /// A plain body, `UNSIGNED-PAYLOAD` (or no header, for presigned URLs).
    Unsigned,
    /// aws-chunked, every chunk signed.
    StreamingSigned {
        /// Whether a signed trailer follows the chunks.
        trailer: bool,
    },
    /// aws-chunked, unsigned chunks and a trailer.
    StreamingUnsignedTrailer,
}

impl PayloadMode {
    /// The mode of a request's `x-amz-content-sha256` value.
    pub fn from_header(value: Option<&str>) -> Result<Self, S3Error> {
        match value {
            None | Some("UNSIGNED-PAYLOAD") => Ok(PayloadMode::Unsigned),
            Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD") => Ok(PayloadMode::StreamingSigned { trailer: false }),
            Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER") => Ok(PayloadMode::StreamingSigned { trailer: true }),
            Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER") => Ok(PayloadMode::StreamingUnsignedTrailer),
            Some(v) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(PayloadMode::Signed),
            Some(v) if v.starts_with("STREAMING-") => {
                Err(S3Error::not_implemented(&format!("x-amz-content-sha256 {v}")))
            }
            Some(_) => Err(S3Error::new(
                S3ErrorCode::InvalidArgument,
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a valid sha256 value.",
            )),
        }
    }

    /// Whether the body is aws-chunked.
    pub fn is_chunked(self) -> bool {
        matches!(self, PayloadMode::StreamingSigned { .. } | PayloadMode::StreamingUnsignedTrailer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting `<hex size>[;chunk-signature=...]\r\n`.
    Header,
    /// Inside a chunk's data: this many bytes left.
    Data(usize),
    /// Expecting the `\r\n` after a chunk's data.
    DataEnd,
    /// Reading trailer lines until an empty line.
    Trailer,
    /// Everything read.
    Done,
}

/// A push parser of aws-chunked bodies.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    buf: BytesMut,
    /// For signed chunks: the request's SigV4 seed and the previous signature.
    signing: Option<(Seed, String)>,
    /// The signature the current chunk claims.
    claimed: Option<String>,
    /// The current chunk's data, held until its signature is checked (signed mode only).
    chunk: BytesMut,
    trailer_signed: bool,
    trailers: BTreeMap<String, String>,
    canonical_trailers: Vec<u8>,
    decoded: u64,
}

/// The error for a body that is not valid aws-chunked.
fn incomplete(reason: &'static str) -> Error {
    Error::MalformedChunks { reason }
}

fn signature_mismatch() -> Error {
    Error::ChunkSignatureMismatch
}

impl ChunkedDecoder {
    /// A decoder for `mode`; signed modes need the seed of the request's SigV4 verification.
    pub fn new(mode: PayloadMode, seed: Option<&Seed>) -> Result<Self, S3Error> {
        let (signing, trailer_signed) = match mode {
            PayloadMode::StreamingSigned { trailer } => {
                let seed = seed.ok_or_else(|| S3Error::access_denied("signed chunks need a signed request"))?;
                (Some((seed.clone(), seed.seed_signature.clone())), trailer)
            }
            _ => (None, false),
        };
        Ok(ChunkedDecoder {
            state: State::Header,
            buf: BytesMut::new(),
            signing,
            claimed: None,
            chunk: BytesMut::new(),
            trailer_signed,
            trailers: BTreeMap::new(),
            canonical_trailers: Vec::new(),
            decoded: 0,
        })
    }

    /// Feeds body bytes; appends released payload to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<Bytes>) -> Result<(), Error> {
        self.buf.extend_from_slice(input);
        loop {
            match self.state {
                State::Header => {
                    let Some(line) = self.take_line()? else { return Ok(()) };
                    let (size, ext) = line.split_once(';').unwrap_or((&line, ""));
                    let size = usize::from_str_radix(size.trim(), 16).map_err(|_| incomplete("invalid chunk size"))?;
                    if size > MAX_CHUNK {
                        return Err(incomplete("chunk too large"));
                    }
                    self.claimed = ext.trim().strip_prefix("chunk-signature=").map(str::to_owned);
                    if self.signing.is_some() && self.claimed.is_none() {
                        return Err(signature_mismatch());
                    }
                    if size == 0 {
                        self.verify_chunk()?;
                        self.state = State::Trailer;
                    } else {
                        self.state = State::Data(size);
                    }
                }
                State::Data(left) => {
                    if self.buf.is_empty() {
                        return Ok(());
                    }
                    let n = left.min(self.buf.len());
                    let data = self.buf.split_to(n).freeze();
                    self.decoded += n as u64;
                    if self.signing.is_some() {
                        self.chunk.extend_from_slice(&data);
                    } else {
                        out.push(data);
                    }
                    self.state = if n == left { State::DataEnd } else { State::Data(left - n) };
                }
                State::DataEnd => {
                    if self.buf.len() < 2 {
                        return Ok(());
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err(incomplete("chunk data is not followed by CRLF"));
                    }
                    self.buf.advance(2);
                    if self.signing.is_some() {
                        self.verify_chunk()?;
                        out.push(std::mem::take(&mut self.chunk).freeze());
                    }
                    self.state = State::Header;
                }
                State::Trailer => {
                    let Some(line) = self.take_line()? else { return Ok(()) };
                    if line.is_empty() {
                        self.state = State::Done;
                        continue;
                    }
                    let (name, value) = line.split_once(':').ok_or_else(|| incomplete("malformed trailer"))?;
                    let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
                    if name == "x-amz-trailer-signature" {
                        self.verify_trailer(&value)?;
                    } else {
                        self.canonical_trailers.extend_from_slice(format!("{name}:{value}\n").as_bytes());
                        self.trailers.insert(name, value);
                    }
                }
                State::Done => {
                    if self.buf.iter().any(|b| !b"\r\n".contains(b)) {
                        return Err(incomplete("data after the final chunk"));
                    }
                    self.buf.clear();
                    return Ok(());
                }
            }
        }
    }

    /// Ends the body: fails if it stopped before the final chunk and trailer.
    pub fn finish(self) -> Result<Trailers, Error> {
        // The final CRLF of the trailer section is optional for some clients.
        let done = self.state == State::Done || (self.state == State::Trailer && self.buf.is_empty());
        if !done {
            return Err(incomplete("The request body terminated unexpectedly"));
        }
        if self.trailer_signed
            && self.signing.is_some()
            && !self.trailers.is_empty()
            && !self.canonical_trailers.is_empty()
        {
            // A signed trailer must carry its signature; verify_trailer cleared this on success.
            return Err(signature_mismatch());
        }
        Ok(Trailers { values: self.trailers, decoded_length: self.decoded })
    }

    fn take_line(&mut self) -> Result<Option<String>, Error> {
        let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") else {
            if self.buf.len() > MAX_LINE {
                return Err(incomplete("chunk header too long"));
            }
            return Ok(None);
        };
        let line = self.buf.split_to(end);
        self.buf.advance(2);
        String::from_utf8(line.to_vec()).map(Some).map_err(|_| incomplete("chunk header is not text"))
    }

    fn verify_chunk(&mut self) -> Result<(), Error> {
        let Some((seed, previous)) = &mut self.signing else { return Ok(()) };
        let expected = sigv4::chunk_signature(seed, previous, &self.chunk);
        let claimed = self.claimed.take().unwrap_or_default();
        if !sigv4::signatures_match(&expected, &claimed) {
            return Err(signature_mismatch());
        }
        *previous = expected;
        Ok(())
    }

    fn verify_trailer(&mut self, claimed: &str) -> Result<(), Error> {
        let Some((seed, previous)) = &self.signing else { return Ok(()) };
        let expected = sigv4::trailer_signature(seed, previous, &self.canonical_trailers);
        if !sigv4::signatures_match(&expected, claimed) {
            return Err(signature_mismatch());
        }
        self.canonical_trailers.clear();
        Ok(())
    }
}

/// What followed the chunks.
#[derive(Debug, Default)]
pub struct Trailers {
    /// Trailer headers by lowercase name (e.g. `x-amz-checksum-crc32`).
    pub values: BTreeMap<String, String>,
    /// Payload bytes decoded.
    pub decoded_length: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(body: &[u8], step: usize) -> Result<(Vec<u8>, Trailers), S3Error> {
        let mut decoder = ChunkedDecoder::new(PayloadMode::StreamingUnsignedTrailer, None)?;
        let mut out = Vec::new();
        for piece in body.chunks(step.max(1)) {
            decoder.push(piece, &mut out)?;
        }
        let trailers = decoder.finish()?;
        Ok((out.concat(), trailers))
    }

    #[test]
    fn unsigned_trailer_body_decodes_at_any_split() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        for step in 1..body.len() {
            let (data, trailers) = decode_all(body, step).unwrap();
            assert_eq!(data, b"hello world");
            assert_eq!(trailers.values["x-amz-checksum-crc32"], "DUoRhQ==");
            assert_eq!(trailers.decoded_length, 11);
        }
    }

    #[test]
    fn truncated_or_garbled_bodies_are_refused() {
        let body = b"5\r\nhello\r\n0\r\n\r\n";
        for cut in 0..body.len() - 2 {
            assert!(decode_all(&body[..cut], 3).is_err(), "cut at {cut}");
        }
        assert!(decode_all(b"zz\r\nhello\r\n0\r\n\r\n", 4).is_err());
        assert!(decode_all(b"5\r\nhelloXX0\r\n\r\n", 4).is_err());
        assert!(decode_all(b"5\r\nhello\r\n0\r\n\r\nmore", 4).is_err());
    }

    #[test]
    fn signed_chunks_chain_on_the_seed_signature() {
        let seed = Seed {
            signing_key: sigv4::signing_key("SK", "20260101", "us-east-1", "s3"),
            seed_signature: "ab".repeat(32),
            amz_date: "20260101T000000Z".into(),
            scope: "20260101/us-east-1/s3/aws4_request".into(),
        };
        let first = sigv4::chunk_signature(&seed, &seed.seed_signature, b"hello");
        let last = sigv4::chunk_signature(&seed, &first, b"");
        let body = format!("5;chunk-signature={first}\r\nhello\r\n0;chunk-signature={last}\r\n\r\n");
        let mode = PayloadMode::StreamingSigned { trailer: false };
        let mut decoder = ChunkedDecoder::new(mode, Some(&seed)).unwrap();
        let mut out = Vec::new();
        decoder.push(body.as_bytes(), &mut out).unwrap();
        decoder.finish().unwrap();
        assert_eq!(out.concat(), b"hello");
        let forged = body.replace("hello", "jello");
        let mut decoder = ChunkedDecoder::new(mode, Some(&seed)).unwrap();
        let mut out = Vec::new();
        assert!(matches!(decoder.push(forged.as_bytes(), &mut out), Err(Error::ChunkSignatureMismatch)));
        assert!(out.is_empty(), "nothing of a forged chunk is released");
    }
}
