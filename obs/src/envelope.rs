//! The object envelope: how OBS encrypts an object under its data key, as an AWS Encryption SDK message.
//!
//! The stored form of an encrypted object is an AWS Encryption SDK message, format version 2.0, algorithm suite
//! `0x0478` (`AES_256_GCM_HKDF_SHA512_COMMIT_KEY`: AES-256-GCM, HKDF-SHA512 key derivation, key commitment, no
//! signature), with framed content. Any AWS Encryption SDK can therefore decrypt a stored object once it has the
//! data key, which makes the SDKs an independent oracle for our tests (see `tests/vectors/`). `kmsim encrypt`
//! writes the same messages, and `kmsim decrypt` reads them through this module too.
//!
//! Reading also accepts the AWS Encryption SDK's default suite `0x0578`
//! (`AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384`), so that `kmsim decrypt` reads what the SDK CLI writes: the
//! same header and frames, the verification key in the encryption context entry `aws-crypto-public-key` (base64 of
//! the compressed P-384 point), and a footer that signs the whole message before it. This module never writes that
//! suite.
//!
//! This module is pure: it does no I/O and never sees the KMS. The caller gets the plaintext data key and its
//! ciphertext from the KMS, and moves bytes to and from storage.
//!
//! ```text
//! header body   02 | suite u16 | message id (32) | AAD | EDKs | 02 (framed) | frame length u32 | commitment key (32)
//!   AAD           u16 length of what follows, then (if not empty) u16 pair count and the pairs sorted by key:
//!                 u16 len, key, u16 len, value
//!   EDKs          u16 count, then per key: u16 len + provider id, u16 len + provider info, u16 len + ciphertext
//! header tag    AES-GCM tag (16) over no plaintext, IV = 12 zero bytes, AAD = header body
//! regular frame sequence u32 | IV (12) | ciphertext (frame length) | tag (16)
//! final frame   FF FF FF FF | sequence u32 | IV (12) | content length u32 | ciphertext | tag (16)
//! non-framed    read only (content type 0x01, frame length 0, what the SDKs write when told frame length 0):
//!               IV (12, sequence number 1) | content length u64 | ciphertext | tag (16), AAD message id ‖
//!               "AWSKMSEncryptionClient Single Block" ‖ 1 u32 ‖ content length u64; at most 64 MiB
//! footer        0x0578 only: u16 length, then the DER ECDSA P-384 signature of SHA-384 over header and body
//! ```
//!
//! Keys: HKDF-SHA512 with salt = message id and the plaintext data key as input keying material; the content key
//! is expanded with info = suite id ‖ `"DERIVEKEY"` (`04 78 "DERIVEKEY"`), the commitment key (stored in the
//! header) with info = `"COMMITKEY"`.
//! Frames: sequence numbers start at 1; the IV of a frame is its sequence number, big-endian, in the last 4 of 12
//! bytes; its AAD is message id ‖ `"AWSKMSEncryptionClient Frame"` (or `"... Final Frame"`) ‖ sequence u32 ‖
//! plaintext length u64. Every frame but the last holds exactly one frame length of plaintext; the final frame holds
//! the rest, which is empty when the plaintext length is a multiple of the frame length.
//!
//! Principal types: [`Encryptor`] writes a message, [`Header`] parses its header (its [`AlgorithmSuite`] says which
//! suite), [`Decryptor`] reads a whole message (and checks a signed message's footer), [`RangeDecryptor`] reads
//! only the frames that [`plan_range`] says hold a plaintext range (unsigned messages only), and [`frame_extent`]
//! describes a frame from its first bytes without decrypting it.
//!
//! Specification followed (aws-encryption-sdk-specification): `data-format/message-header.md`,
//! `data-format/message-body.md`, `data-format/message-body-aad.md`, `framework/structures.md` (encryption context
//! serialization), `framework/algorithm-suites.md`, `framework/transitive-requirements.md` (HKDF),
//! `client-apis/encrypt.md`, `client-apis/decrypt.md` and `data-format/message-footer.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hkdf::Hkdf;
use p384::ecdsa::signature::hazmat::PrehashVerifier;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use ring::digest::{Context as DigestContext, SHA384};
use sha2::Sha512;
use shared::entropy::{Entropy, Purpose};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Frame length that OBS writes: 64 KiB of plaintext per frame. Each message records its own frame length, so
/// changing this affects only new objects.
pub const FRAME_LENGTH: u32 = 65536;

/// Message format version 2.0 (first header byte). Changing this breaks stored data.
pub const MESSAGE_FORMAT_VERSION: u8 = 0x02;

/// Algorithm suite `AES_256_GCM_HKDF_SHA512_COMMIT_KEY`, the only one this module writes. Changing this breaks
/// stored data.
pub const ALGORITHM_SUITE_ID: u16 = 0x0478;

/// Algorithm suite `AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384`, the AWS Encryption SDK's default, which this
/// module reads (never writes).
pub const SIGNED_ALGORITHM_SUITE_ID: u16 = 0x0578;

/// The encryption context entry in which a signed message carries its verification key (base64 of the compressed
/// P-384 point). The AWS Encryption SDK reserves every context key that starts with `aws-crypto-`.
pub const PUBLIC_KEY_CONTEXT_KEY: &str = "aws-crypto-public-key";

/// Longest footer this module reads: the u16 length and a DER ECDSA P-384 signature (at most 104 bytes).
pub const MAX_FOOTER_LEN: usize = 2 + 104;

/// Bytes of a frame's start that [`frame_extent`] needs to say where the frame ends (fewer only when the input
/// ends first).
pub const FRAME_PREFIX_LEN: usize = FINAL_FRAME_PREFIX;

/// Length of the random message id, which is also the HKDF salt.
pub const MESSAGE_ID_LEN: usize = 32;

/// Length of a plaintext data key for this algorithm suite.
pub const DATA_KEY_LEN: usize = 32;

/// Longest header this module parses or writes (header body and tag). Real headers are a few hundred bytes; the
/// limit bounds what a reader buffers before it knows whether the header is valid.
pub const MAX_HEADER_LEN: usize = 256 * 1024;

/// Most encrypted data keys a header may carry (OBS writes one).
pub const MAX_ENCRYPTED_DATA_KEYS: usize = 32;

/// Longest frame this module writes or reads: a reader buffers up to one frame.
pub const MAX_FRAME_LENGTH: u32 = 16 * 1024 * 1024;

/// Content type "framed": what this module writes.
const CONTENT_TYPE_FRAMED: u8 = 0x02;
/// Content type "non-framed": one block, what the SDKs write when told a frame length of 0. Read, never written.
const CONTENT_TYPE_NON_FRAMED: u8 = 0x01;
/// The largest non-framed content a reader accepts: its one block is held whole until its tag verifies.
pub const MAX_NON_FRAMED_LENGTH: u64 = 64 * 1024 * 1024;
/// IV and content length before a non-framed block's ciphertext.
const SINGLE_BLOCK_PREFIX: usize = IV_LEN + 8;
const BODY_AAD_SINGLE_BLOCK: &[u8] = b"AWSKMSEncryptionClient Single Block";
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const COMMITMENT_KEY_LEN: usize = 32;
/// The first four bytes of a final frame.
const SEQUENCE_NUMBER_END: [u8; 4] = [0xFF; 4];
/// Sequence number, IV and tag around a regular frame's ciphertext.
const REGULAR_FRAME_OVERHEAD: usize = 4 + IV_LEN + TAG_LEN;
/// End marker, sequence number, IV, content length and tag around a final frame's ciphertext.
const FINAL_FRAME_OVERHEAD: usize = 4 + 4 + IV_LEN + 4 + TAG_LEN;
/// Bytes of a final frame before its ciphertext.
const FINAL_FRAME_PREFIX: usize = 4 + 4 + IV_LEN + 4;
const BODY_AAD_REGULAR: &[u8] = b"AWSKMSEncryptionClient Frame";
const BODY_AAD_FINAL: &[u8] = b"AWSKMSEncryptionClient Final Frame";
const DERIVE_KEY_LABEL: &[u8] = b"DERIVEKEY";
const COMMIT_KEY_LABEL: &[u8] = b"COMMITKEY";

/// The algorithm suites this module reads; it writes [`AlgorithmSuite::Committing`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgorithmSuite {
    /// `0x0478` `AES_256_GCM_HKDF_SHA512_COMMIT_KEY`: what OBS and `kmsim encrypt` write.
    Committing,
    /// `0x0578` `AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384`: the same, plus a footer that signs the message with
    /// a per-message ECDSA P-384 key (the AWS Encryption SDK's default).
    CommittingSigned,
}

impl AlgorithmSuite {
    /// The suite with this id, if this module reads it.
    pub fn from_id(id: u16) -> Option<AlgorithmSuite> {
        match id {
            ALGORITHM_SUITE_ID => Some(AlgorithmSuite::Committing),
            SIGNED_ALGORITHM_SUITE_ID => Some(AlgorithmSuite::CommittingSigned),
            _ => None,
        }
    }

    /// The suite id, as the header stores it.
    pub fn id(self) -> u16 {
        match self {
            AlgorithmSuite::Committing => ALGORITHM_SUITE_ID,
            AlgorithmSuite::CommittingSigned => SIGNED_ALGORITHM_SUITE_ID,
        }
    }

    /// The suite's name in the AWS Encryption SDK.
    pub fn name(self) -> &'static str {
        match self {
            AlgorithmSuite::Committing => "AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
            AlgorithmSuite::CommittingSigned => "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
        }
    }

    /// Whether messages of this suite end in a signature footer.
    pub fn is_signed(self) -> bool {
        self == AlgorithmSuite::CommittingSigned
    }
}

/// What can go wrong when writing or reading an envelope. Every tampering, truncation or mismatch is an error:
/// no operation of this module ever returns plaintext that did not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The bytes given so far end inside the header; parse again once at least `needed` bytes are available.
    #[error("the header is incomplete: at least {needed} bytes are needed")]
    Incomplete {
        /// Total number of bytes (from the start of the message) needed before parsing can go further.
        needed: usize,
    },
    /// The message format version is not 2.0.
    #[error("unsupported message format version {0:#04x}")]
    UnsupportedVersion(u8),
    /// The algorithm suite is neither `0x0478` nor `0x0578` (or, for a range read, is a signed one).
    #[error("unsupported algorithm suite {0:#06x}")]
    UnsupportedAlgorithmSuite(u16),
    /// The content type is neither framed (`0x02`) nor non-framed (`0x01`).
    #[error("unsupported content type {0:#04x}")]
    UnsupportedContentType(u8),
    /// The bytes do not follow the message format.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A count or length in the message, or in the input to encryption, is beyond what this module accepts.
    #[error("limit exceeded: {0}")]
    LimitExceeded(&'static str),
    /// The input to encryption cannot be written in the message format.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// The data key does not match the key commitment in the header: it is not the key of this message.
    #[error("the data key is not the key of this message (key commitment mismatch)")]
    CommitmentMismatch,
    /// The header's authentication tag does not verify: the header was altered.
    #[error("the message header failed authentication")]
    HeaderAuthentication,
    /// A frame's authentication tag does not verify: the frame was altered or moved.
    #[error("frame {sequence} failed authentication")]
    FrameAuthentication {
        /// Sequence number the frame claimed.
        sequence: u32,
    },
    /// The footer's signature does not verify with the header's public key: the message was altered (or signed by
    /// someone else).
    #[error("the message signature does not verify")]
    SignatureVerification,
    /// A frame carries another sequence number than the next one expected: frames were dropped, swapped or repeated.
    #[error("frame {found} found where frame {expected} was expected")]
    OutOfOrder {
        /// Sequence number that was due.
        expected: u32,
        /// Sequence number found.
        found: u32,
    },
    /// The input ended before the last expected frame.
    #[error("the message is truncated")]
    Truncated,
    /// Bytes follow the last expected frame.
    #[error("unexpected bytes after the last frame")]
    TrailingData,
    /// The requested plaintext range is empty or does not lie within the plaintext.
    #[error("invalid range {start}..{end} of a {plaintext_len}-byte plaintext")]
    InvalidRange {
        /// First requested byte.
        start: u64,
        /// One past the last requested byte.
        end: u64,
        /// Length of the whole plaintext.
        plaintext_len: u64,
    },
    /// The stream already failed; it cannot go on.
    #[error("an earlier error ended this stream")]
    Failed,
}

/// Result of this module's operations.
pub type Result<T, E = EnvelopeError> = std::result::Result<T, E>;

/// One encrypted copy of the data key and who can decrypt it (for OBS: the KMS, the key ARN and the KMS ciphertext
/// blob).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncryptedDataKey {
    /// Which key provider wrapped the data key, e.g. `aws-kms`.
    pub provider_id: String,
    /// Which key of that provider, e.g. the KMS key ARN. (The format allows any bytes here; this module reads and
    /// writes UTF-8 only, which covers the KMS providers.)
    pub provider_info: String,
    /// The wrapped data key, e.g. the KMS ciphertext blob.
    pub ciphertext: Vec<u8>,
}

/// A parsed message header. Parsing checks the structure only: [`Decryptor::new`] and [`RangeDecryptor::new`]
/// authenticate it with the data key before any frame is read.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    suite: AlgorithmSuite,
    message_id: [u8; MESSAGE_ID_LEN],
    encryption_context: BTreeMap<String, String>,
    encrypted_data_keys: Vec<EncryptedDataKey>,
    /// 0 for non-framed content.
    frame_length: u32,
    /// Key commitment: proves which data key the message was made with.
    commitment_key: [u8; COMMITMENT_KEY_LEN],
    /// The serialized header, body and tag, kept because the tag authenticates exactly these bytes.
    bytes: Vec<u8>,
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("suite", &self.suite)
            .field("message_id", &HexBytes(&self.message_id))
            .field("encryption_context", &self.encryption_context)
            .field("encrypted_data_keys", &self.encrypted_data_keys)
            .field("frame_length", &self.frame_length)
            .field("serialized_len", &self.bytes.len())
            .finish()
    }
}

struct HexBytes<'a>(&'a [u8]);

impl fmt::Debug for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl Header {
    /// Parses the header at the start of `bytes`; bytes after the header (the body) are ignored.
    ///
    /// Returns [`EnvelopeError::Incomplete`] while `bytes` ends inside the header, so that a caller reading from
    /// storage can read more and try again; a header longer than [`MAX_HEADER_LEN`] is refused before it is read.
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        let mut reader = Reader { bytes, position: 0 };
        let version = reader.u8()?;
        if version != MESSAGE_FORMAT_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }
        let suite_id = reader.u16()?;
        let suite = AlgorithmSuite::from_id(suite_id).ok_or(EnvelopeError::UnsupportedAlgorithmSuite(suite_id))?;
        let message_id = reader.array::<MESSAGE_ID_LEN>()?;
        let context_len = usize::from(reader.u16()?);
        let encryption_context = parse_encryption_context(reader.take(context_len)?)?;
        if suite.is_signed() && !encryption_context.contains_key(PUBLIC_KEY_CONTEXT_KEY) {
            return Err(EnvelopeError::Malformed("a signed message has no aws-crypto-public-key in its context"));
        }
        let key_count = usize::from(reader.u16()?);
        if key_count == 0 {
            return Err(EnvelopeError::Malformed("a message needs at least one encrypted data key"));
        }
        if key_count > MAX_ENCRYPTED_DATA_KEYS {
            return Err(EnvelopeError::LimitExceeded("too many encrypted data keys"));
        }
        let mut encrypted_data_keys = Vec::with_capacity(key_count);
        for _ in 0..key_count {
            let provider_id = utf8(reader.u16_prefixed()?, "key provider id is not UTF-8")?;
            let provider_info = utf8(reader.u16_prefixed()?, "key provider info is not UTF-8")?;
            let ciphertext = reader.u16_prefixed()?.to_vec();
            encrypted_data_keys.push(EncryptedDataKey { provider_id, provider_info, ciphertext });
        }
        let content_type = reader.u8()?;
        let frame_length = reader.u32()?;
        match content_type {
            CONTENT_TYPE_FRAMED if frame_length == 0 => {
                return Err(EnvelopeError::Malformed("frame length 0 in framed content"));
            }
            CONTENT_TYPE_NON_FRAMED if frame_length != 0 => {
                return Err(EnvelopeError::Malformed("a frame length in non-framed content"));
            }
            CONTENT_TYPE_FRAMED | CONTENT_TYPE_NON_FRAMED => {}
            other => return Err(EnvelopeError::UnsupportedContentType(other)),
        }
        if frame_length > MAX_FRAME_LENGTH {
            return Err(EnvelopeError::LimitExceeded("frame length"));
        }
        let commitment_key = reader.array::<COMMITMENT_KEY_LEN>()?;
        reader.take(TAG_LEN)?;
        Ok(Header {
            suite,
            message_id,
            encryption_context,
            encrypted_data_keys,
            frame_length,
            commitment_key,
            bytes: bytes[..reader.position].to_vec(),
        })
    }

    /// The algorithm suite of this message.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// The random id of this message (also the key derivation salt).
    pub fn message_id(&self) -> &[u8; MESSAGE_ID_LEN] {
        &self.message_id
    }

    /// The encryption context stored (and authenticated) in the header; for a signed message it includes
    /// [`PUBLIC_KEY_CONTEXT_KEY`], as the KMS saw it when the data key was made.
    pub fn encryption_context(&self) -> &BTreeMap<String, String> {
        &self.encryption_context
    }

    /// The encrypted copies of the data key.
    pub fn encrypted_data_keys(&self) -> &[EncryptedDataKey] {
        &self.encrypted_data_keys
    }

    /// Plaintext bytes per regular frame; 0 for non-framed content.
    pub fn frame_length(&self) -> u32 {
        self.frame_length
    }

    /// Whether the body is framed (what this module writes) rather than one non-framed block.
    pub fn is_framed(&self) -> bool {
        self.frame_length != 0
    }

    /// Length of the serialized header including its authentication tag: the body starts at this offset.
    pub fn serialized_len(&self) -> usize {
        self.bytes.len()
    }

    /// The serialized header, including its authentication tag.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The header body: what the header tag authenticates.
    fn body(&self) -> &[u8] {
        &self.bytes[..self.bytes.len() - TAG_LEN]
    }

    fn tag(&self) -> &[u8] {
        &self.bytes[self.bytes.len() - TAG_LEN..]
    }
}

/// Reads the header's fields; running out of bytes means "incomplete", not "malformed".
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self.position + len;
        if end > MAX_HEADER_LEN {
            return Err(EnvelopeError::LimitExceeded("header longer than MAX_HEADER_LEN"));
        }
        let Some(field) = self.bytes.get(self.position..end) else {
            return Err(EnvelopeError::Incomplete { needed: end });
        };
        self.position = end;
        Ok(field)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn u16_prefixed(&mut self) -> Result<&'a [u8]> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }
}

fn utf8(bytes: &[u8], what: &'static str) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| EnvelopeError::Malformed(what))
}

/// Parses the "key value pairs" of the header AAD, whose total length the header already gave.
fn parse_encryption_context(mut bytes: &[u8]) -> Result<BTreeMap<String, String>> {
    const SHORT: EnvelopeError = EnvelopeError::Malformed("encryption context shorter than its length says");
    fn field<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8]> {
        let (len, rest) = bytes.split_first_chunk::<2>().ok_or(SHORT)?;
        let len = usize::from(u16::from_be_bytes(*len));
        let (value, rest) = rest.split_at_checked(len).ok_or(SHORT)?;
        *bytes = rest;
        Ok(value)
    }
    let mut context = BTreeMap::new();
    if bytes.is_empty() {
        return Ok(context);
    }
    let (count, rest) = bytes.split_first_chunk::<2>().ok_or(SHORT)?;
    bytes = rest;
    let count = u16::from_be_bytes(*count);
    if count == 0 {
        return Err(EnvelopeError::Malformed("encryption context with a length but no pairs"));
    }
    for _ in 0..count {
        let key = utf8(field(&mut bytes)?, "encryption context key is not UTF-8")?;
        let value = utf8(field(&mut bytes)?, "encryption context value is not UTF-8")?;
        if context.insert(key, value).is_some() {
            return Err(EnvelopeError::Malformed("duplicate key in the encryption context"));
        }
    }
    if !bytes.is_empty() {
        return Err(EnvelopeError::Malformed("encryption context longer than its pairs"));
    }
    Ok(context)
}

/// Serializes an encryption context as `framework/structures.md` says: empty, or a pair count and the pairs sorted
/// by the UTF-8 bytes of their keys (the order of a `BTreeMap<String, _>`).
fn serialize_encryption_context(context: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if context.is_empty() {
        return Ok(out);
    }
    let count =
        u16::try_from(context.len()).map_err(|_| EnvelopeError::InvalidInput("too many encryption context pairs"))?;
    out.extend_from_slice(&count.to_be_bytes());
    for (key, value) in context {
        put_u16_prefixed(&mut out, key.as_bytes(), "encryption context key longer than 65535 bytes")?;
        put_u16_prefixed(&mut out, value.as_bytes(), "encryption context value longer than 65535 bytes")?;
    }
    if out.len() > usize::from(u16::MAX) {
        return Err(EnvelopeError::InvalidInput("encryption context serializes to more than 65535 bytes"));
    }
    Ok(out)
}

fn put_u16_prefixed(out: &mut Vec<u8>, field: &[u8], too_long: &'static str) -> Result<()> {
    let len = u16::try_from(field.len()).map_err(|_| EnvelopeError::InvalidInput(too_long))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
    Ok(())
}

/// The content key of one message, ready to use, and the message id that goes into every frame's AAD.
struct MessageKey {
    cipher: FrameCipher,
    message_id: [u8; MESSAGE_ID_LEN],
}

/// AES-256-GCM keyed with a message's content key, on `ring`'s AES-NI/VAES code, which runs about six times as fast
/// as the `aes-gcm` crate on the machines kmsim targets (≈ 8.9 vs 1.5 GB/s at 64 KiB frames) and so keeps
/// encryption a small share of an object's PUT or GET.
///
/// `ring` keeps the expanded key inside the value and does not wipe it; dropping a `FrameCipher` overwrites that
/// value in place with one expanded from an all-zero key, which rewrites every round key and the GHASH table.
struct FrameCipher(Box<LessSafeKey>);

impl FrameCipher {
    fn new(key: &[u8; 32]) -> FrameCipher {
        FrameCipher(Box::new(Self::expand(key)))
    }

    fn expand(key: &[u8; 32]) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("AES-256-GCM takes a 32-byte key"))
    }

    /// Encrypts `in_out` in place and returns the tag.
    fn seal(&self, iv: [u8; IV_LEN], aad: &[u8], in_out: &mut [u8]) -> Result<Tag> {
        self.0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), in_out)
            .map_err(|_| EnvelopeError::LimitExceeded("too long for AES-GCM"))
    }

    /// Checks `tag` and decrypts `in_out` in place; on failure `in_out` holds no plaintext worth reading.
    fn open(&self, iv: [u8; IV_LEN], aad: &[u8], in_out: &mut [u8], tag: &[u8]) -> bool {
        let Ok(tag) = <[u8; TAG_LEN]>::try_from(tag) else { return false };
        self.0
            .open_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), Tag::from(tag), in_out, 0..)
            .is_ok()
    }
}

impl Drop for FrameCipher {
    fn drop(&mut self) {
        *self.0 = Self::expand(&[0; 32]);
        // Keeps the store above from being optimised away as dead.
        std::hint::black_box(&*self.0);
    }
}

/// Derives the content key and the commitment key of a message from its suite, data key and message id.
fn derive_keys(
    suite: AlgorithmSuite,
    data_key: &[u8; DATA_KEY_LEN],
    message_id: &[u8; MESSAGE_ID_LEN],
) -> (MessageKey, [u8; COMMITMENT_KEY_LEN]) {
    // One extract step for both keys, as transitive-requirements.md recommends.
    let hkdf = Hkdf::<Sha512>::new(Some(message_id), data_key);
    let mut info = [0; 2 + DERIVE_KEY_LABEL.len()];
    info[..2].copy_from_slice(&suite.id().to_be_bytes());
    info[2..].copy_from_slice(DERIVE_KEY_LABEL);
    let mut content_key = Zeroizing::new([0; 32]);
    hkdf.expand(&info, &mut content_key[..]).expect("32 bytes is a valid HKDF-SHA512 output length");
    let mut commitment_key = [0; COMMITMENT_KEY_LEN];
    hkdf.expand(COMMIT_KEY_LABEL, &mut commitment_key).expect("32 bytes is a valid HKDF-SHA512 output length");
    (MessageKey { cipher: FrameCipher::new(&content_key), message_id: *message_id }, commitment_key)
}

/// The IV of frame `sequence`: the sequence number, big-endian, padded on the left with zeros to 12 bytes.
fn frame_iv(sequence: u32) -> [u8; IV_LEN] {
    let mut iv = [0; IV_LEN];
    iv[IV_LEN - 4..].copy_from_slice(&sequence.to_be_bytes());
    iv
}

/// The AAD of a frame (`data-format/message-body-aad.md`): message id, body AAD content, sequence number, length.
fn frame_aad(message_id: &[u8; MESSAGE_ID_LEN], is_final: bool, sequence: u32, plaintext_len: usize) -> Vec<u8> {
    let content = if is_final { BODY_AAD_FINAL } else { BODY_AAD_REGULAR };
    let mut aad = Vec::with_capacity(MESSAGE_ID_LEN + content.len() + 4 + 8);
    aad.extend_from_slice(message_id);
    aad.extend_from_slice(content);
    aad.extend_from_slice(&sequence.to_be_bytes());
    aad.extend_from_slice(&(plaintext_len as u64).to_be_bytes());
    aad
}

/// Checks that `data_key` is the key of the message (key commitment, in constant time), then the header tag.
fn open_header(header: &Header, data_key: &[u8; DATA_KEY_LEN]) -> Result<MessageKey> {
    let (key, commitment_key) = derive_keys(header.suite, data_key, &header.message_id);
    if !bool::from(commitment_key.ct_eq(&header.commitment_key)) {
        return Err(EnvelopeError::CommitmentMismatch);
    }
    if !key.cipher.open([0; IV_LEN], header.body(), &mut [], header.tag()) {
        return Err(EnvelopeError::HeaderAuthentication);
    }
    Ok(key)
}

/// Writes a message: the header, then a regular frame each time a frame length of plaintext has arrived, then the
/// final frame at [`Encryptor::finish`].
///
/// The first call to `push` or `finish` writes the header, so the concatenation of everything written is the
/// whole message, [`ciphertext_len`] bytes long. Plaintext held back for an incomplete frame is wiped when the
/// encryptor is dropped.
pub struct Encryptor {
    key: MessageKey,
    header: Header,
    header_written: bool,
    frame_length: usize,
    /// Plaintext of the frame being filled (always shorter than a frame).
    pending: Zeroizing<Vec<u8>>,
    next_sequence: u32,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("header", &self.header)
            .field("next_sequence", &self.next_sequence)
            .field("pending_len", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// Starts a message under the plaintext data key `data_key`, with a fresh message id from `entropy`.
    ///
    /// `encryption_context` is stored in the header and authenticated; `encrypted_data_keys` (at least one) are the
    /// wrapped copies of `data_key` that a reader will unwrap; `frame_length` is the plaintext per frame (OBS uses
    /// [`FRAME_LENGTH`]).
    pub fn new(
        data_key: &[u8; DATA_KEY_LEN],
        encryption_context: &BTreeMap<String, String>,
        encrypted_data_keys: &[EncryptedDataKey],
        frame_length: u32,
        entropy: &Entropy,
    ) -> Result<Encryptor> {
        let message_id: [u8; MESSAGE_ID_LEN] = entropy.bytes(Purpose::ObjectId);
        Encryptor::with_message_id(
            AlgorithmSuite::Committing,
            data_key,
            encryption_context,
            encrypted_data_keys,
            frame_length,
            message_id,
        )
    }

    /// Starts a message of `suite` (only the tests write a signed suite's header and frames; they sign it too).
    fn with_message_id(
        suite: AlgorithmSuite,
        data_key: &[u8; DATA_KEY_LEN],
        encryption_context: &BTreeMap<String, String>,
        encrypted_data_keys: &[EncryptedDataKey],
        frame_length: u32,
        message_id: [u8; MESSAGE_ID_LEN],
    ) -> Result<Encryptor> {
        if frame_length == 0 {
            return Err(EnvelopeError::InvalidInput("frame length 0"));
        }
        if frame_length > MAX_FRAME_LENGTH {
            return Err(EnvelopeError::LimitExceeded("frame length"));
        }
        if encrypted_data_keys.is_empty() {
            return Err(EnvelopeError::InvalidInput("a message needs at least one encrypted data key"));
        }
        if encrypted_data_keys.len() > MAX_ENCRYPTED_DATA_KEYS {
            return Err(EnvelopeError::LimitExceeded("too many encrypted data keys"));
        }
        let (key, commitment_key) = derive_keys(suite, data_key, &message_id);

        let mut bytes = Vec::with_capacity(512);
        bytes.push(MESSAGE_FORMAT_VERSION);
        bytes.extend_from_slice(&suite.id().to_be_bytes());
        bytes.extend_from_slice(&message_id);
        let context = serialize_encryption_context(encryption_context)?;
        put_u16_prefixed(&mut bytes, &context, "encryption context serializes to more than 65535 bytes")?;
        bytes.extend_from_slice(&(encrypted_data_keys.len() as u16).to_be_bytes());
        for edk in encrypted_data_keys {
            put_u16_prefixed(&mut bytes, edk.provider_id.as_bytes(), "key provider id longer than 65535 bytes")?;
            put_u16_prefixed(&mut bytes, edk.provider_info.as_bytes(), "key provider info longer than 65535 bytes")?;
            put_u16_prefixed(&mut bytes, &edk.ciphertext, "encrypted data key longer than 65535 bytes")?;
        }
        bytes.push(CONTENT_TYPE_FRAMED);
        bytes.extend_from_slice(&frame_length.to_be_bytes());
        bytes.extend_from_slice(&commitment_key);
        if bytes.len() + TAG_LEN > MAX_HEADER_LEN {
            return Err(EnvelopeError::LimitExceeded("header longer than MAX_HEADER_LEN"));
        }
        // The header tag: AES-GCM over no plaintext, IV 0, AAD = header body (+ an empty "required encryption
        // context", since this module stores the whole context).
        let tag = key.cipher.seal([0; IV_LEN], &bytes, &mut [])?;
        bytes.extend_from_slice(tag.as_ref());
        // Parsing what was just written yields the `Header` and proves a reader accepts it.
        let header = Header::parse(&bytes)?;
        debug_assert_eq!(header.serialized_len(), bytes.len());

        let frame_length = frame_length as usize;
        Ok(Encryptor {
            key,
            header,
            header_written: false,
            frame_length,
            pending: Zeroizing::new(Vec::with_capacity(frame_length)),
            next_sequence: 1,
        })
    }

    /// The header of the message being written (its length is needed for [`ciphertext_len`] and [`plan_range`]).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Encrypts `plaintext` and appends every frame it completes to `out` (and the header, on the first call).
    pub fn push(&mut self, mut plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.write_header(out);
        if !self.pending.is_empty() {
            let take = (self.frame_length - self.pending.len()).min(plaintext.len());
            self.pending.extend_from_slice(&plaintext[..take]);
            plaintext = &plaintext[take..];
            if self.pending.len() < self.frame_length {
                return Ok(());
            }
            self.write_frame(None, out)?;
        }
        while plaintext.len() >= self.frame_length {
            let (frame, rest) = plaintext.split_at(self.frame_length);
            self.write_frame(Some(frame), out)?;
            plaintext = rest;
        }
        self.pending.extend_from_slice(plaintext);
        Ok(())
    }

    /// Appends the final frame, holding whatever plaintext is left (possibly none), to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<()> {
        self.write_header(out);
        let sequence = self.next_sequence;
        let plaintext: &[u8] = &self.pending;
        out.extend_from_slice(&SEQUENCE_NUMBER_END);
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&frame_iv(sequence));
        out.extend_from_slice(&(plaintext.len() as u32).to_be_bytes());
        seal(&self.key, true, sequence, plaintext, out)
    }

    fn write_header(&mut self, out: &mut Vec<u8>) {
        if !self.header_written {
            out.extend_from_slice(self.header.as_bytes());
            self.header_written = true;
        }
    }

    /// Writes a regular frame of `plaintext`, or of the pending plaintext when `plaintext` is `None`.
    fn write_frame(&mut self, plaintext: Option<&[u8]>, out: &mut Vec<u8>) -> Result<()> {
        let sequence = self.next_sequence;
        // A regular frame cannot have the number of the end marker, and the final frame needs a number after it.
        if sequence >= u32::MAX - 1 {
            return Err(EnvelopeError::LimitExceeded("too many frames in one message"));
        }
        out.extend_from_slice(&sequence.to_be_bytes());
        out.extend_from_slice(&frame_iv(sequence));
        match plaintext {
            Some(plaintext) => seal(&self.key, false, sequence, plaintext, out)?,
            None => {
                seal(&self.key, false, sequence, &self.pending, out)?;
                self.pending.clear();
            }
        }
        self.next_sequence = sequence + 1;
        Ok(())
    }
}

/// Appends the ciphertext and tag of one frame's plaintext to `out` (encrypting in place there).
fn seal(key: &MessageKey, is_final: bool, sequence: u32, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let aad = frame_aad(&key.message_id, is_final, sequence, plaintext.len());
    let start = out.len();
    out.extend_from_slice(plaintext);
    let tag = key.cipher.seal(frame_iv(sequence), &aad, &mut out[start..])?;
    out.extend_from_slice(tag.as_ref());
    Ok(())
}

/// Encrypts a whole plaintext into one message (header and body) in memory.
pub fn encrypt(
    data_key: &[u8; DATA_KEY_LEN],
    encryption_context: &BTreeMap<String, String>,
    encrypted_data_keys: &[EncryptedDataKey],
    frame_length: u32,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut encryptor =
        Encryptor::new(data_key, encryption_context, encrypted_data_keys, frame_length, &Entropy::os())?;
    let header_len = encryptor.header().serialized_len() as u64;
    let mut out = Vec::with_capacity(ciphertext_len(header_len, frame_length, plaintext.len() as u64) as usize);
    encryptor.push(plaintext, &mut out)?;
    encryptor.finish(&mut out)?;
    Ok(out)
}

/// Decrypts a whole message in memory: parses its header, checks the data key and returns the header and the
/// plaintext (a message cut short inside its header is [`EnvelopeError::Truncated`]).
pub fn decrypt(data_key: &[u8; DATA_KEY_LEN], message: &[u8]) -> Result<(Header, Vec<u8>)> {
    let header = match Header::parse(message) {
        Err(EnvelopeError::Incomplete { .. }) => return Err(EnvelopeError::Truncated),
        other => other?,
    };
    let mut decryptor = Decryptor::new(&header, data_key)?;
    let mut plaintext = Vec::with_capacity(message.len().saturating_sub(header.serialized_len()));
    decryptor.push(&message[header.serialized_len()..], &mut plaintext)?;
    decryptor.finish()?;
    Ok((header, plaintext))
}

/// The size of the frame (of a message with frames of `frame_length`) that starts with `prefix`, once `prefix` is
/// long enough to tell.
fn frame_size(frame_length: u32, prefix: &[u8]) -> Result<Option<usize>> {
    if frame_length == 0 {
        return single_block_size(prefix);
    }
    if prefix.len() < 4 {
        return Ok(None);
    }
    if prefix[..4] != SEQUENCE_NUMBER_END {
        return Ok(Some(REGULAR_FRAME_OVERHEAD + frame_length as usize));
    }
    let Some(len) = prefix.get(FINAL_FRAME_PREFIX - 4..FINAL_FRAME_PREFIX) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(len.try_into().expect("4 bytes"));
    if len > frame_length {
        return Err(EnvelopeError::Malformed("final frame longer than the frame length"));
    }
    Ok(Some(FINAL_FRAME_OVERHEAD + len as usize))
}

/// The size of the non-framed block that starts with `prefix` (IV ‖ content length u64 ‖ ciphertext ‖ tag), once
/// `prefix` holds its length; a length above [`MAX_NON_FRAMED_LENGTH`] is refused.
fn single_block_size(prefix: &[u8]) -> Result<Option<usize>> {
    let Some(len) = prefix.get(IV_LEN..SINGLE_BLOCK_PREFIX) else { return Ok(None) };
    let len = u64::from_be_bytes(len.try_into().expect("8 bytes"));
    if len > MAX_NON_FRAMED_LENGTH {
        return Err(EnvelopeError::LimitExceeded("non-framed content above 64 MiB (its one block is held whole)"));
    }
    Ok(Some(SINGLE_BLOCK_PREFIX + len as usize + TAG_LEN))
}

/// Where one frame lies and what it holds, read from its first bytes without decrypting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameExtent {
    /// The sequence number the frame claims (not authenticated: only decryption proves it).
    pub sequence: u32,
    /// Whether this is the final frame.
    pub is_final: bool,
    /// Plaintext bytes the frame holds.
    pub plaintext_len: u32,
    /// Bytes the frame takes in the message.
    pub stored_len: u64,
}

/// Describes the frame that starts with `prefix` (its first [`FRAME_PREFIX_LEN`] bytes, or fewer where the input
/// ends) in a message whose header gives `frame_length`: for tools that explain a message without its key.
/// Input that ends before a frame could be told is [`EnvelopeError::Truncated`].
pub fn frame_extent(frame_length: u32, prefix: &[u8]) -> Result<FrameExtent> {
    let size = frame_size(frame_length, prefix)?.ok_or(EnvelopeError::Truncated)?;
    if frame_length == 0 {
        // Non-framed content: one block, the whole body, sequence number 1.
        return Ok(FrameExtent {
            sequence: 1,
            is_final: true,
            plaintext_len: u32::try_from(size - SINGLE_BLOCK_PREFIX - TAG_LEN).expect("at most 64 MiB"),
            stored_len: size as u64,
        });
    }
    let is_final = prefix[..4] == SEQUENCE_NUMBER_END;
    let sequence_at = if is_final { 4 } else { 0 };
    let sequence = prefix.get(sequence_at..sequence_at + 4).ok_or(EnvelopeError::Truncated)?;
    let overhead = if is_final { FINAL_FRAME_OVERHEAD } else { REGULAR_FRAME_OVERHEAD };
    Ok(FrameExtent {
        sequence: u32::from_be_bytes(sequence.try_into().expect("4 bytes")),
        is_final,
        plaintext_len: (size - overhead) as u32,
        stored_len: size as u64,
    })
}

/// The length of the signature in a footer, checking that `footer` is exactly a u16 length and that many bytes.
pub fn footer_signature_len(footer: &[u8]) -> Result<usize> {
    let (len, signature) = footer.split_first_chunk::<2>().ok_or(EnvelopeError::Truncated)?;
    let len = usize::from(u16::from_be_bytes(*len));
    if 2 + len > MAX_FOOTER_LEN {
        return Err(EnvelopeError::Malformed("footer signature longer than an ECDSA P-384 signature"));
    }
    match signature.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(EnvelopeError::Truncated),
        std::cmp::Ordering::Greater => Err(EnvelopeError::TrailingData),
        std::cmp::Ordering::Equal => Ok(len),
    }
}

/// Which frames a frame reader expects, and where it stops.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// A whole message: frames from 1 until a final frame.
    AtFinalFrame,
    /// A range read: frames up to `sequence`, which is the final frame holding `final_len` bytes if `final_len` is
    /// `Some`, and a regular frame otherwise.
    At { sequence: u32, final_len: Option<u32> },
}

/// Splits a frame stream into frames, checks their order and tags, and releases each frame's plaintext once its
/// tag has verified.
struct FrameReader {
    key: MessageKey,
    frame_length: u32,
    next_sequence: u32,
    stop: Stop,
    /// Bytes of a frame that arrived split over several pushes (at most one frame).
    pending: Vec<u8>,
    done: bool,
    failed: bool,
}

impl FrameReader {
    /// Reads frames from `input` and returns how many bytes of it they took: all of it, unless the last frame
    /// ended before (the rest is a footer, or trailing data: the caller decides).
    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize> {
        if self.failed {
            return Err(EnvelopeError::Failed);
        }
        let result = self.push_frames(input, out);
        if result.is_err() {
            self.fail();
        }
        result
    }

    /// Reads frames from `input` and fails on anything after the last frame.
    fn push_all(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.push(input, out)? < input.len() {
            self.fail();
            return Err(EnvelopeError::TrailingData);
        }
        Ok(())
    }

    fn fail(&mut self) {
        self.failed = true;
        self.pending.clear();
    }

    fn push_frames(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize> {
        let total = input.len();
        let mut input = input;
        while !input.is_empty() {
            if self.done {
                break;
            }
            if self.pending.is_empty() {
                // Fast path: read whole frames straight from the input.
                match self.frame_size(input)? {
                    Some(size) if size <= input.len() => {
                        let (frame, rest) = input.split_at(size);
                        self.open_frame(frame, out)?;
                        input = rest;
                    }
                    _ => {
                        // Less than one frame: it is bounded by the frame size, so buffering it is safe.
                        self.pending.extend_from_slice(input);
                        input = &[];
                    }
                }
            } else {
                let needed = match self.frame_size(&self.pending)? {
                    Some(size) => size,
                    None if self.pending.len() < 4 => 4,
                    None => FINAL_FRAME_PREFIX,
                };
                let take = (needed - self.pending.len()).min(input.len());
                self.pending.extend_from_slice(&input[..take]);
                input = &input[take..];
                if self.frame_size(&self.pending)? == Some(self.pending.len()) {
                    let frame = std::mem::take(&mut self.pending);
                    let result = self.open_frame(&frame, out);
                    self.pending = frame;
                    self.pending.clear();
                    result?;
                }
            }
        }
        Ok(total - input.len())
    }

    /// The size of the frame that starts with `prefix`, once `prefix` is long enough to tell.
    fn frame_size(&self, prefix: &[u8]) -> Result<Option<usize>> {
        frame_size(self.frame_length, prefix)
    }

    /// Checks and decrypts one complete frame, appending its plaintext to `out` only if its tag verifies.
    fn open_frame(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.frame_length == 0 {
            return self.open_single_block(frame, out);
        }
        let is_final = frame[..4] == SEQUENCE_NUMBER_END;
        let rest = if is_final { &frame[4..] } else { frame };
        let sequence = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes"));
        if sequence != self.next_sequence {
            return Err(EnvelopeError::OutOfOrder { expected: self.next_sequence, found: sequence });
        }
        if rest[4..4 + IV_LEN] != frame_iv(sequence) {
            return Err(EnvelopeError::Malformed("frame IV is not its sequence number"));
        }
        let content_start = 4 + IV_LEN + if is_final { 4 } else { 0 };
        let (content, tag) = rest[content_start..].split_at(rest.len() - content_start - TAG_LEN);
        let is_last = match self.stop {
            Stop::AtFinalFrame => is_final,
            Stop::At { sequence: last, final_len } => {
                if sequence == last {
                    match final_len {
                        Some(_) if !is_final => {
                            return Err(EnvelopeError::Malformed("regular frame where the final frame was expected"));
                        }
                        Some(len) if content.len() != len as usize => {
                            return Err(EnvelopeError::Malformed(
                                "final frame length differs from the plaintext length",
                            ));
                        }
                        None if is_final => {
                            return Err(EnvelopeError::Malformed("final frame where a regular frame was expected"));
                        }
                        _ => true,
                    }
                } else if is_final {
                    return Err(EnvelopeError::Malformed("final frame where a regular frame was expected"));
                } else {
                    false
                }
            }
        };
        let aad = frame_aad(&self.key.message_id, is_final, sequence, content.len());
        let start = out.len();
        out.extend_from_slice(content);
        if !self.key.cipher.open(frame_iv(sequence), &aad, &mut out[start..], tag) {
            out.truncate(start);
            return Err(EnvelopeError::FrameAuthentication { sequence });
        }
        if is_last {
            self.done = true;
        } else {
            // The final frame may still come with the largest sequence number; a regular frame never has it.
            self.next_sequence = sequence.checked_add(1).ok_or(EnvelopeError::Malformed("sequence number overflow"))?;
        }
        Ok(())
    }

    /// Non-framed content: its one block (IV ‖ content length ‖ ciphertext ‖ tag), sequence number 1, AAD message
    /// id ‖ `"AWSKMSEncryptionClient Single Block"` ‖ 1 ‖ content length.
    fn open_single_block(&mut self, block: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if block[..IV_LEN] != frame_iv(1) {
            return Err(EnvelopeError::Malformed("the non-framed block's IV is not sequence number 1"));
        }
        let (content, tag) = block[SINGLE_BLOCK_PREFIX..].split_at(block.len() - SINGLE_BLOCK_PREFIX - TAG_LEN);
        let mut aad = Vec::with_capacity(MESSAGE_ID_LEN + BODY_AAD_SINGLE_BLOCK.len() + 4 + 8);
        aad.extend_from_slice(&self.key.message_id);
        aad.extend_from_slice(BODY_AAD_SINGLE_BLOCK);
        aad.extend_from_slice(&1u32.to_be_bytes());
        aad.extend_from_slice(&(content.len() as u64).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(content);
        if !self.key.cipher.open(frame_iv(1), &aad, &mut out[start..], tag) {
            out.truncate(start);
            return Err(EnvelopeError::FrameAuthentication { sequence: 1 });
        }
        self.done = true;
        Ok(())
    }

    fn finish(self) -> Result<()> {
        if self.failed {
            Err(EnvelopeError::Failed)
        } else if self.done {
            Ok(())
        } else {
            Err(EnvelopeError::Truncated)
        }
    }
}

/// Reads a whole message body frame by frame, releasing plaintext only frame by frame after each frame's tag has
/// verified.
///
/// Feed it the bytes that follow the header, in pieces of any size, with [`Decryptor::push`], then call
/// [`Decryptor::finish`]: a stream that ends before its final frame, has bytes after it, or has frames dropped,
/// swapped, repeated or altered is an error. After an error the decryptor refuses further input.
///
/// A signed message (suite `0x0578`) goes on after its final frame with the footer, and [`Decryptor::finish`]
/// verifies the signature over everything before it. Its frames' plaintext is released as for an unsigned message,
/// each frame once its tag verified: that plaintext came from whoever held the data key, but only `finish` proves it
/// is the message the signer wrote, so a caller must not act on it (or let others see it) before `finish` succeeds.
pub struct Decryptor {
    frames: FrameReader,
    /// For a signed message: the running digest and the footer (boxed: most messages have none).
    signature: Option<Box<SignatureCheck>>,
}

/// The footer check of a signed message: SHA-384 of every byte before the footer, then ECDSA P-384.
struct SignatureCheck {
    key: p384::ecdsa::VerifyingKey,
    digest: DigestContext,
    /// The footer, as it arrives after the final frame (at most [`MAX_FOOTER_LEN`] bytes are kept).
    footer: Vec<u8>,
}

impl SignatureCheck {
    /// The verification key from the header's context; the digest starts with the whole serialized header.
    fn new(header: &Header) -> Result<SignatureCheck> {
        const BAD_KEY: EnvelopeError =
            EnvelopeError::Malformed("aws-crypto-public-key is not a base64 compressed P-384 point");
        let encoded = header.encryption_context.get(PUBLIC_KEY_CONTEXT_KEY).ok_or(BAD_KEY)?;
        let point = BASE64.decode(encoded).map_err(|_| BAD_KEY)?;
        let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| BAD_KEY)?;
        let mut digest = DigestContext::new(&SHA384);
        digest.update(header.as_bytes());
        Ok(SignatureCheck { key, digest, footer: Vec::new() })
    }

    fn verify(self) -> Result<()> {
        let len = footer_signature_len(&self.footer)?;
        let signature = p384::ecdsa::Signature::from_der(&self.footer[2..2 + len])
            .map_err(|_| EnvelopeError::Malformed("the footer signature is not a DER ECDSA signature"))?;
        let digest = self.digest.finish();
        self.key.verify_prehash(digest.as_ref(), &signature).map_err(|_| EnvelopeError::SignatureVerification)
    }
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor")
            .field("next_sequence", &self.frames.next_sequence)
            .field("done", &self.frames.done)
            .field("signed", &self.signature.is_some())
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// Checks that `data_key` is the key of the message (key commitment, compared in constant time) and that the
    /// header is authentic, then gets ready to read the body from frame 1 (and, for a signed message, to check its
    /// footer: the header's public key must be a P-384 point).
    pub fn new(header: &Header, data_key: &[u8; DATA_KEY_LEN]) -> Result<Decryptor> {
        let key = open_header(header, data_key)?;
        let signature = if header.suite.is_signed() { Some(Box::new(SignatureCheck::new(header)?)) } else { None };
        Ok(Decryptor {
            frames: FrameReader {
                key,
                frame_length: header.frame_length,
                next_sequence: 1,
                stop: Stop::AtFinalFrame,
                pending: Vec::new(),
                done: false,
                failed: false,
            },
            signature,
        })
    }

    /// Consumes more body bytes (and, for a signed message, footer bytes) and appends the plaintext of every frame
    /// they complete to `out`.
    pub fn push(&mut self, ciphertext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let Some(check) = &mut self.signature else {
            return self.frames.push_all(ciphertext, out);
        };
        let frames = self.frames.push(ciphertext, out)?;
        check.digest.update(&ciphertext[..frames]);
        let footer = &ciphertext[frames..];
        if check.footer.len() + footer.len() > MAX_FOOTER_LEN {
            self.frames.fail();
            return Err(EnvelopeError::TrailingData);
        }
        check.footer.extend_from_slice(footer);
        Ok(())
    }

    /// Whether the final frame has been read.
    pub fn is_done(&self) -> bool {
        self.frames.done
    }

    /// Ends the stream: an error unless the final frame was read and, for a signed message, the footer's signature
    /// verifies over the whole message.
    pub fn finish(self) -> Result<()> {
        self.frames.finish()?;
        match self.signature {
            Some(check) => check.verify(),
            None => Ok(()),
        }
    }
}

/// Length of a message that this module writes: a header of `header_len` bytes, `frame_len`-byte frames and
/// `plaintext_len` bytes of plaintext (the plaintext length is an empty final frame's worth longer when it is a
/// multiple of the frame length); a signed message has its footer on top. Saturates at `u64::MAX`; a `frame_len` of 0, which no valid header has, counts
/// as 1.
pub fn ciphertext_len(header_len: u64, frame_len: u32, plaintext_len: u64) -> u64 {
    let frame_len = u64::from(frame_len.max(1));
    let regular_frames = plaintext_len / frame_len;
    let final_len = plaintext_len % frame_len;
    header_len
        .saturating_add(regular_frames.saturating_mul(frame_len + REGULAR_FRAME_OVERHEAD as u64))
        .saturating_add(FINAL_FRAME_OVERHEAD as u64 + final_len)
}

/// Where a plaintext range lives in a stored message, from [`plan_range`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePlan {
    /// The bytes of the stored message that hold exactly the frames needed: read these and feed them to a
    /// [`RangeDecryptor`].
    pub stored: Range<u64>,
    /// Sequence number of the first frame in `stored`.
    pub first_sequence: u32,
    /// Sequence number of the last frame in `stored`.
    pub last_sequence: u32,
    /// Whether the last frame in `stored` is the message's final frame.
    pub includes_final_frame: bool,
    /// The requested plaintext range.
    pub plaintext: Range<u64>,
    frame_length: u32,
    /// Plaintext in the final frame, if it is read.
    final_len: u32,
}

/// Maps the plaintext range `range` of a message written by this module (header `header_len` bytes long, frames of
/// `frame_len`, `plaintext_len` bytes of plaintext in all) to the stored bytes that hold it, so that a read near the
/// end of a large object costs O(range). `range` must be non-empty and lie within the plaintext.
pub fn plan_range(header_len: u64, frame_len: u32, plaintext_len: u64, range: Range<u64>) -> Result<RangePlan> {
    if frame_len == 0 {
        return Err(EnvelopeError::InvalidInput("frame length 0"));
    }
    if range.start >= range.end || range.end > plaintext_len {
        return Err(EnvelopeError::InvalidRange { start: range.start, end: range.end, plaintext_len });
    }
    let frame = u64::from(frame_len);
    let final_index = plaintext_len / frame;
    let first_index = range.start / frame;
    let last_index = (range.end - 1) / frame;
    let too_many = || EnvelopeError::LimitExceeded("too many frames in one message");
    // The final frame's sequence number (final_index + 1) must fit in a u32.
    if final_index >= u64::from(u32::MAX) {
        return Err(too_many());
    }
    let includes_final_frame = last_index == final_index;
    let final_len = (plaintext_len % frame) as u32;
    let regular_size = frame + REGULAR_FRAME_OVERHEAD as u64;
    let last_size =
        if includes_final_frame { FINAL_FRAME_OVERHEAD as u64 + u64::from(final_len) } else { regular_size };
    let frame_start = |index: u64| index.checked_mul(regular_size).and_then(|offset| offset.checked_add(header_len));
    let start = frame_start(first_index).ok_or_else(too_many)?;
    let end = frame_start(last_index).and_then(|offset| offset.checked_add(last_size)).ok_or_else(too_many)?;
    Ok(RangePlan {
        stored: start..end,
        first_sequence: first_index as u32 + 1,
        last_sequence: last_index as u32 + 1,
        includes_final_frame,
        plaintext: range,
        frame_length: frame_len,
        final_len,
    })
}

/// Reads the frames of a [`RangePlan`] and releases exactly the requested plaintext range, each frame only after its
/// tag has verified.
///
/// Feed it the stored bytes `plan.stored` in pieces of any size, then call [`RangeDecryptor::finish`]: frames out of
/// place (another range's bytes, a shifted offset), altered or missing are errors.
pub struct RangeDecryptor {
    frames: FrameReader,
    /// Plaintext offset of the next byte the frames will produce.
    position: u64,
    range: Range<u64>,
}

impl fmt::Debug for RangeDecryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RangeDecryptor")
            .field("range", &self.range)
            .field("position", &self.position)
            .field("next_sequence", &self.frames.next_sequence)
            .finish_non_exhaustive()
    }
}

impl RangeDecryptor {
    /// Checks the data key and the header as [`Decryptor::new`] does, then gets ready to read the frames of `plan`
    /// (which must have been made with this header's frame length).
    ///
    /// A signed message is refused ([`EnvelopeError::UnsupportedAlgorithmSuite`]): its signature covers the whole
    /// message, so a range of it could not be verified.
    pub fn new(header: &Header, data_key: &[u8; DATA_KEY_LEN], plan: &RangePlan) -> Result<RangeDecryptor> {
        if header.suite.is_signed() {
            return Err(EnvelopeError::UnsupportedAlgorithmSuite(header.suite.id()));
        }
        if plan.frame_length != header.frame_length {
            return Err(EnvelopeError::InvalidInput("the range plan was made for another frame length"));
        }
        let key = open_header(header, data_key)?;
        Ok(RangeDecryptor {
            frames: FrameReader {
                key,
                frame_length: header.frame_length,
                next_sequence: plan.first_sequence,
                stop: Stop::At {
                    sequence: plan.last_sequence,
                    final_len: plan.includes_final_frame.then_some(plan.final_len),
                },
                pending: Vec::new(),
                done: false,
                failed: false,
            },
            position: u64::from(plan.first_sequence - 1) * u64::from(header.frame_length),
            range: plan.plaintext.clone(),
        })
    }

    /// Consumes more of the stored range and appends the requested plaintext of every frame it completes to `out`.
    pub fn push(&mut self, stored: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        let result = self.frames.push_all(stored, out);
        // Whatever verified frames came out (even before an error), keep only their part of the range.
        let produced = (out.len() - start) as u64;
        let chunk = self.position..self.position + produced;
        self.position = chunk.end;
        let keep_start = chunk.start.max(self.range.start).min(chunk.end);
        let keep_end = chunk.end.min(self.range.end).max(keep_start);
        out.truncate(start + (keep_end - chunk.start) as usize);
        out.drain(start..start + (keep_start - chunk.start) as usize);
        result
    }

    /// Ends the stream: an error unless every frame of the plan was read.
    pub fn finish(self) -> Result<()> {
        self.frames.finish()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, RngCore, SeedableRng};

    use super::*;

    /// A non-framed block is sized from its first 20 bytes, and one above 64 MiB is refused before it is buffered.
    #[test]
    fn a_non_framed_block_is_sized_and_bounded() {
        let mut prefix = frame_iv(1).to_vec();
        assert_eq!(single_block_size(&prefix).unwrap(), None);
        prefix.extend_from_slice(&5u64.to_be_bytes());
        assert_eq!(frame_size(0, &prefix).unwrap(), Some(SINGLE_BLOCK_PREFIX + 5 + TAG_LEN));
        let extent = frame_extent(0, &prefix).unwrap();
        assert_eq!((extent.sequence, extent.is_final, extent.plaintext_len), (1, true, 5));
        prefix[IV_LEN..].copy_from_slice(&(MAX_NON_FRAMED_LENGTH + 1).to_be_bytes());
        assert!(matches!(frame_size(0, &prefix), Err(EnvelopeError::LimitExceeded(_))));
        prefix[IV_LEN..].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(frame_extent(0, &prefix), Err(EnvelopeError::LimitExceeded(_))));
    }

    const KEY: [u8; 32] = [0x42; 32];
    const ARN: &str = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555";

    fn context() -> BTreeMap<String, String> {
        BTreeMap::from([("aws:s3:arn".to_owned(), "arn:aws:s3:::bucket/key".to_owned())])
    }

    fn edks() -> Vec<EncryptedDataKey> {
        vec![EncryptedDataKey {
            provider_id: "aws-kms".into(),
            provider_info: ARN.into(),
            ciphertext: b"kms ciphertext blob".to_vec(),
        }]
    }

    /// The plaintext pattern shared with tests/vectors/generate.py.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
    }

    fn seal_message(frame_length: u32, plaintext: &[u8]) -> Vec<u8> {
        encrypt(&KEY, &context(), &edks(), frame_length, plaintext).unwrap()
    }

    /// Splits `bytes` into pieces of random sizes (sometimes empty, sometimes large).
    fn chunks<'a>(rng: &mut StdRng, bytes: &'a [u8]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let max = if rng.gen_bool(0.3) { rest.len() } else { rest.len().min(100) };
            let (piece, tail) = rest.split_at(rng.gen_range(0..=max));
            pieces.push(piece);
            rest = tail;
        }
        pieces
    }

    fn decrypt_chunked(rng: &mut StdRng, message: &[u8]) -> Result<Vec<u8>> {
        let header = Header::parse(message)?;
        let mut decryptor = Decryptor::new(&header, &KEY)?;
        let mut out = Vec::new();
        for piece in chunks(rng, &message[header.serialized_len()..]) {
            decryptor.push(piece, &mut out)?;
        }
        decryptor.finish()?;
        Ok(out)
    }

    /// Regular and final frames of a message, as byte ranges of the message.
    fn frame_ranges(message: &[u8]) -> Vec<Range<usize>> {
        let header = Header::parse(message).unwrap();
        let frame = header.frame_length() as usize;
        let mut ranges = Vec::new();
        let mut at = header.serialized_len();
        while at < message.len() {
            let size = if message[at..at + 4] == SEQUENCE_NUMBER_END {
                let len = u32::from_be_bytes(message[at + 20..at + 24].try_into().unwrap()) as usize;
                FINAL_FRAME_OVERHEAD + len
            } else {
                REGULAR_FRAME_OVERHEAD + frame
            };
            ranges.push(at..at + size);
            at += size;
        }
        ranges
    }

    #[test]
    fn round_trips_at_frame_boundaries() {
        let mut rng = StdRng::seed_from_u64(1);
        for len in [0, 1, 65535, 65536, 65537, 3 * 65536] {
            let plaintext = pattern(len);
            let mut encryptor = Encryptor::new(&KEY, &context(), &edks(), FRAME_LENGTH, &Entropy::os()).unwrap();
            let header_len = encryptor.header().serialized_len() as u64;
            let mut message = Vec::new();
            for piece in chunks(&mut rng, &plaintext) {
                encryptor.push(piece, &mut message).unwrap();
            }
            encryptor.finish(&mut message).unwrap();
            assert_eq!(message.len() as u64, ciphertext_len(header_len, FRAME_LENGTH, len as u64), "length {len}");
            assert_eq!(decrypt_chunked(&mut rng, &message).unwrap(), plaintext, "length {len}");
            let (header, whole) = decrypt(&KEY, &message).unwrap();
            assert_eq!(whole, plaintext);
            assert_eq!(header.encryption_context(), &context());
            assert_eq!(header.encrypted_data_keys(), edks().as_slice());
            assert_eq!(header.frame_length(), FRAME_LENGTH);
            // A plaintext that is a multiple of the frame length ends with an empty final frame.
            let frames = frame_ranges(&message);
            assert_eq!(frames.len(), len / FRAME_LENGTH as usize + 1);
            let last = frames.last().unwrap();
            assert_eq!(last.len(), FINAL_FRAME_OVERHEAD + len % FRAME_LENGTH as usize);
        }
    }

    #[test]
    fn round_trips_random_sizes_and_frame_lengths() {
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..200 {
            let frame_length = rng.gen_range(1..=300);
            let plaintext: Vec<u8> = (0..rng.gen_range(0..2000)).map(|_| rng.r#gen()).collect();
            let message = seal_message(frame_length, &plaintext);
            let header_len = Header::parse(&message).unwrap().serialized_len() as u64;
            assert_eq!(message.len() as u64, ciphertext_len(header_len, frame_length, plaintext.len() as u64));
            assert_eq!(decrypt_chunked(&mut rng, &message).unwrap(), plaintext);
        }
    }

    #[test]
    fn header_layout_follows_the_specification() {
        let mut context = context();
        context.insert("b".into(), "2".into());
        context.insert("a".into(), "1".into());
        let message_id = [7; 32];
        let encryptor =
            Encryptor::with_message_id(AlgorithmSuite::Committing, &KEY, &context, &edks(), FRAME_LENGTH, message_id)
                .unwrap();
        let bytes = encryptor.header().as_bytes();
        assert_eq!(bytes[0], 0x02);
        assert_eq!(bytes[1..3], [0x04, 0x78]);
        assert_eq!(bytes[3..35], message_id);
        let mut expected_aad = vec![0x00, 0x03];
        for (key, value) in [("a", "1"), ("aws:s3:arn", "arn:aws:s3:::bucket/key"), ("b", "2")] {
            expected_aad.extend_from_slice(&(key.len() as u16).to_be_bytes());
            expected_aad.extend_from_slice(key.as_bytes());
            expected_aad.extend_from_slice(&(value.len() as u16).to_be_bytes());
            expected_aad.extend_from_slice(value.as_bytes());
        }
        let aad_len = u16::from_be_bytes([bytes[35], bytes[36]]) as usize;
        assert_eq!(&bytes[37..37 + aad_len], expected_aad.as_slice());
        let mut at = 37 + aad_len;
        assert_eq!(bytes[at..at + 2], [0, 1]);
        at += 2;
        assert_eq!(bytes[at..at + 2], [0, 7]);
        assert_eq!(&bytes[at + 2..at + 9], b"aws-kms");
        at += 9;
        assert_eq!(u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize, ARN.len());
        at += 2 + ARN.len();
        assert_eq!(u16::from_be_bytes([bytes[at], bytes[at + 1]]), 19);
        at += 2 + 19;
        assert_eq!(bytes[at], 0x02);
        assert_eq!(bytes[at + 1..at + 5], 65536u32.to_be_bytes());
        at += 5;
        let (_, commitment_key) = derive_keys(AlgorithmSuite::Committing, &KEY, &message_id);
        assert_eq!(bytes[at..at + 32], commitment_key);
        assert_eq!(bytes.len(), at + 32 + TAG_LEN);
    }

    #[test]
    fn frames_carry_sequence_numbers_and_iv() {
        let message = seal_message(16, &pattern(40));
        let frames = frame_ranges(&message);
        assert_eq!(frames.len(), 3);
        for (index, range) in frames.iter().enumerate() {
            let frame = &message[range.clone()];
            let sequence = (index + 1) as u32;
            let rest = if index == 2 { &frame[4..] } else { frame };
            assert_eq!(rest[..4], sequence.to_be_bytes());
            assert_eq!(rest[4..16], frame_iv(sequence));
        }
        let final_frame = &message[frames[2].clone()];
        assert_eq!(final_frame[..4], [0xFF; 4]);
        assert_eq!(final_frame[20..24], 8u32.to_be_bytes());
    }

    #[test]
    fn incomplete_header_asks_for_more_bytes() {
        let message = seal_message(FRAME_LENGTH, b"hello");
        let header_len = Header::parse(&message).unwrap().serialized_len();
        let mut len = 0;
        let mut steps = 0;
        loop {
            match Header::parse(&message[..len]) {
                Ok(header) => {
                    assert_eq!(header.serialized_len(), header_len);
                    break;
                }
                Err(EnvelopeError::Incomplete { needed }) => {
                    assert!(needed > len && needed <= header_len, "needed {needed} at {len}");
                    len = needed;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
            steps += 1;
        }
        assert!(steps > 5);
        for len in 0..header_len {
            assert!(matches!(Header::parse(&message[..len]), Err(EnvelopeError::Incomplete { .. })));
        }
    }

    #[test]
    fn wrong_data_key_is_a_commitment_mismatch() {
        let message = seal_message(FRAME_LENGTH, b"secret");
        let header = Header::parse(&message).unwrap();
        let mut other = KEY;
        other[31] ^= 1;
        assert_eq!(Decryptor::new(&header, &other).unwrap_err(), EnvelopeError::CommitmentMismatch);
        let plan = plan_range(header.serialized_len() as u64, FRAME_LENGTH, 6, 0..6).unwrap();
        assert_eq!(RangeDecryptor::new(&header, &other, &plan).unwrap_err(), EnvelopeError::CommitmentMismatch);
        assert_eq!(decrypt(&other, &message).unwrap_err(), EnvelopeError::CommitmentMismatch);
    }

    #[test]
    fn every_bit_flip_of_the_header_is_an_error() {
        let message = seal_message(FRAME_LENGTH, b"some plaintext");
        let header_len = Header::parse(&message).unwrap().serialized_len();
        for bit in 0..header_len * 8 {
            let mut tampered = message.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            let result = Header::parse(&tampered).and_then(|header| Decryptor::new(&header, &KEY));
            assert!(result.is_err(), "bit {bit} flipped went unnoticed");
        }
    }

    #[test]
    fn every_bit_flip_of_a_message_is_an_error() {
        let message = seal_message(16, &pattern(40));
        for bit in 0..message.len() * 8 {
            let mut tampered = message.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert!(decrypt(&KEY, &tampered).is_err(), "bit {bit} flipped went unnoticed");
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let message = seal_message(16, &pattern(40));
        for len in 0..message.len() {
            assert!(decrypt(&KEY, &message[..len]).is_err(), "truncated to {len}");
        }
        let mut longer = message.clone();
        longer.push(0);
        assert_eq!(decrypt(&KEY, &longer).unwrap_err(), EnvelopeError::TrailingData);
    }

    #[test]
    fn truncation_at_frame_boundaries_is_an_error() {
        for len in [3 * 65536, 3 * 65536 + 100] {
            let message = seal_message(FRAME_LENGTH, &pattern(len));
            let header = Header::parse(&message).unwrap();
            for frame in frame_ranges(&message) {
                for cut in [frame.start - 1, frame.start, frame.start + 1, frame.end - 1, frame.end + 1] {
                    if cut >= message.len() {
                        continue;
                    }
                    if cut < header.serialized_len() {
                        assert!(matches!(Header::parse(&message[..cut]), Err(EnvelopeError::Incomplete { .. })));
                        assert_eq!(decrypt(&KEY, &message[..cut]).unwrap_err(), EnvelopeError::Truncated);
                        continue;
                    }
                    // Streaming: the plaintext released before the error is a prefix of whole, verified frames.
                    let mut decryptor = Decryptor::new(&header, &KEY).unwrap();
                    let mut out = Vec::new();
                    let pushed = decryptor.push(&message[header.serialized_len()..cut], &mut out);
                    assert!(pushed.is_err() || decryptor.finish().is_err(), "cut at {cut}");
                    assert_eq!(out.len() % FRAME_LENGTH as usize, 0);
                    assert_eq!(out, pattern(out.len()));
                }
            }
        }
    }

    #[test]
    fn swapped_dropped_and_repeated_frames_are_errors() {
        let plaintext = pattern(5 * 16 + 3);
        let message = seal_message(16, &plaintext);
        let frames = frame_ranges(&message);
        let header_len = frames[0].start;
        let rebuild = |order: &[usize]| {
            let mut tampered = message[..header_len].to_vec();
            for &index in order {
                tampered.extend_from_slice(&message[frames[index].clone()]);
            }
            tampered
        };
        assert_eq!(decrypt(&KEY, &rebuild(&[0, 1, 2, 3, 4, 5])).unwrap().1, plaintext);
        let swapped = decrypt(&KEY, &rebuild(&[0, 2, 1, 3, 4, 5])).unwrap_err();
        assert_eq!(swapped, EnvelopeError::OutOfOrder { expected: 2, found: 3 });
        assert!(decrypt(&KEY, &rebuild(&[0, 1, 2, 3, 5])).is_err());
        assert!(decrypt(&KEY, &rebuild(&[1, 2, 3, 4, 5])).is_err());
        assert!(decrypt(&KEY, &rebuild(&[0, 1, 1, 2, 3, 4, 5])).is_err());
        assert_eq!(decrypt(&KEY, &rebuild(&[0, 1, 2, 3, 4])).unwrap_err(), EnvelopeError::Truncated);
        assert_eq!(decrypt(&KEY, &rebuild(&[0, 1, 2, 3, 4, 5, 5])).unwrap_err(), EnvelopeError::TrailingData);
        // Frames of another message under the same key do not fit either (the message id is in every AAD).
        let other = seal_message(16, &plaintext);
        let mut spliced = message[..frames[2].start].to_vec();
        spliced.extend_from_slice(&other[frames[2].start..]);
        assert_eq!(decrypt(&KEY, &spliced).unwrap_err(), EnvelopeError::FrameAuthentication { sequence: 3 });
    }

    #[test]
    fn a_failed_stream_stays_failed() {
        let message = seal_message(16, &pattern(40));
        let header = Header::parse(&message).unwrap();
        let mut body = message[header.serialized_len()..].to_vec();
        body[20] ^= 1;
        let mut decryptor = Decryptor::new(&header, &KEY).unwrap();
        let mut out = Vec::new();
        assert_eq!(decryptor.push(&body, &mut out).unwrap_err(), EnvelopeError::FrameAuthentication { sequence: 1 });
        assert!(out.is_empty());
        assert_eq!(decryptor.push(&[], &mut out).unwrap_err(), EnvelopeError::Failed);
        assert_eq!(decryptor.finish().unwrap_err(), EnvelopeError::Failed);
    }

    #[test]
    fn range_reads_return_the_plaintext_slice() {
        let mut rng = StdRng::seed_from_u64(3);
        for (frame_length, len) in
            [(FRAME_LENGTH, 3 * 65536 + 1000), (FRAME_LENGTH, 2 * 65536), (64, 1000), (64, 640), (1, 5)]
        {
            let plaintext = pattern(len);
            let message = seal_message(frame_length, &plaintext);
            let header = Header::parse(&message).unwrap();
            let header_len = header.serialized_len() as u64;
            let mut ranges = vec![0..len as u64, len as u64 - 1..len as u64, 0..1];
            for _ in 0..60 {
                let start = rng.gen_range(0..len as u64);
                ranges.push(start..rng.gen_range(start + 1..=len as u64));
            }
            for range in ranges {
                let plan = plan_range(header_len, frame_length, len as u64, range.clone()).unwrap();
                let stored = &message[plan.stored.start as usize..plan.stored.end as usize];
                // O(range): at most the frames that hold the range, i.e. one more than the range spans.
                let frame_size = u64::from(frame_length) + REGULAR_FRAME_OVERHEAD as u64;
                let spanned = (range.end - range.start).div_ceil(u64::from(frame_length)) + 1;
                assert!(stored.len() as u64 <= spanned * frame_size + FINAL_FRAME_OVERHEAD as u64);
                let mut decryptor = RangeDecryptor::new(&header, &KEY, &plan).unwrap();
                let mut out = Vec::new();
                for piece in chunks(&mut rng, stored) {
                    decryptor.push(piece, &mut out).unwrap();
                }
                decryptor.finish().unwrap();
                assert_eq!(out, &plaintext[range.start as usize..range.end as usize], "{range:?} of {len}");
            }
        }
    }

    #[test]
    fn range_reads_reject_wrong_bytes() {
        let len = 1000;
        let message = seal_message(64, &pattern(len));
        let header = Header::parse(&message).unwrap();
        let header_len = header.serialized_len() as u64;
        let read = |plan: &RangePlan, stored: Range<u64>| {
            let mut decryptor = RangeDecryptor::new(&header, &KEY, plan)?;
            let mut out = Vec::new();
            decryptor.push(&message[stored.start as usize..stored.end.min(message.len() as u64) as usize], &mut out)?;
            decryptor.finish().map(|()| out)
        };
        let plan = plan_range(header_len, 64, len as u64, 100..300).unwrap();
        let frame = 64 + REGULAR_FRAME_OVERHEAD as u64;
        let shifted = plan.stored.start + frame..plan.stored.end + frame;
        assert!(matches!(read(&plan, shifted), Err(EnvelopeError::OutOfOrder { .. })));
        assert_eq!(read(&plan, plan.stored.start..plan.stored.end - 1), Err(EnvelopeError::Truncated));
        assert_eq!(read(&plan, plan.stored.start..plan.stored.end + 1), Err(EnvelopeError::TrailingData));
        // The plaintext length from the metadata is part of what the frames authenticate.
        let wrong_len = plan_range(header_len, 64, 990, 900..990).unwrap();
        assert!(read(&wrong_len, wrong_len.stored.clone()).is_err());
        let longer = plan_range(header_len, 64, 1100, 900..1100).unwrap();
        assert!(read(&longer, longer.stored.clone()).is_err());
        for bad in [0..0, 5..5, Range { start: 10, end: 9 }, 0..1001] {
            assert!(matches!(plan_range(header_len, 64, len as u64, bad), Err(EnvelopeError::InvalidRange { .. })));
        }
    }

    #[test]
    fn range_at_the_end_of_a_huge_object_is_small() {
        let gib = 1u64 << 30;
        let plan = plan_range(200, FRAME_LENGTH, gib, gib - 10..gib).unwrap();
        assert!(plan.stored.end - plan.stored.start <= u64::from(FRAME_LENGTH) + 100);
        assert_eq!(plan.last_sequence, 16384);
        assert!(!plan.includes_final_frame);
        assert_eq!(plan.stored.end, ciphertext_len(200, FRAME_LENGTH, gib) - FINAL_FRAME_OVERHEAD as u64);
        let plan = plan_range(200, FRAME_LENGTH, gib + 5, gib..gib + 5).unwrap();
        assert!(plan.includes_final_frame);
        assert_eq!(plan.stored.end, ciphertext_len(200, FRAME_LENGTH, gib + 5));
    }

    #[test]
    fn limits_are_refused_without_panicking() {
        let message = seal_message(FRAME_LENGTH, b"x");
        let header = Header::parse(&message).unwrap();
        let edk_count_at = 37 + (u16::from_be_bytes([message[35], message[36]]) as usize);
        let mut many_keys = message.clone();
        many_keys[edk_count_at..edk_count_at + 2].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(matches!(Header::parse(&many_keys), Err(EnvelopeError::LimitExceeded(_))));
        let mut no_keys = message.clone();
        no_keys[edk_count_at..edk_count_at + 2].copy_from_slice(&[0, 0]);
        assert!(matches!(Header::parse(&no_keys), Err(EnvelopeError::Malformed(_))));
        let frame_length_at = header.serialized_len() - TAG_LEN - COMMITMENT_KEY_LEN - 4;
        let mut huge_frames = message.clone();
        huge_frames[frame_length_at..frame_length_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(Header::parse(&huge_frames), Err(EnvelopeError::LimitExceeded(_))));
        let mut version_1 = message.clone();
        version_1[0] = 1;
        assert_eq!(Header::parse(&version_1).unwrap_err(), EnvelopeError::UnsupportedVersion(1));
        let mut suite = message.clone();
        suite[2] = 0x78 ^ 1;
        assert_eq!(Header::parse(&suite).unwrap_err(), EnvelopeError::UnsupportedAlgorithmSuite(0x0479));

        let big = "x".repeat(70_000);
        let too_big = BTreeMap::from([(big.clone(), String::new())]);
        assert!(matches!(
            Encryptor::new(&KEY, &too_big, &edks(), FRAME_LENGTH, &Entropy::os()),
            Err(EnvelopeError::InvalidInput(_))
        ));
        assert!(matches!(
            Encryptor::new(&KEY, &context(), &[], FRAME_LENGTH, &Entropy::os()),
            Err(EnvelopeError::InvalidInput(_))
        ));
        assert!(Encryptor::new(&KEY, &context(), &edks(), 0, &Entropy::os()).is_err());
        assert!(Encryptor::new(&KEY, &context(), &edks(), MAX_FRAME_LENGTH + 1, &Entropy::os()).is_err());
        let big_edk = EncryptedDataKey { provider_id: "p".into(), provider_info: big, ciphertext: vec![] };
        assert!(Encryptor::new(&KEY, &context(), &[big_edk], FRAME_LENGTH, &Entropy::os()).is_err());
        let many = vec![edks()[0].clone(); MAX_ENCRYPTED_DATA_KEYS + 1];
        assert!(Encryptor::new(&KEY, &context(), &many, FRAME_LENGTH, &Entropy::os()).is_err());
        // An empty encryption context is allowed and serializes to an AAD length of 0.
        let empty = encrypt(&KEY, &BTreeMap::new(), &edks(), 16, b"abc").unwrap();
        assert_eq!(empty[35..37], [0, 0]);
        assert_eq!(decrypt(&KEY, &empty).unwrap().1, b"abc");
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = StdRng::seed_from_u64(4);
        let message = seal_message(16, &pattern(100));
        let header = Header::parse(&message).unwrap();
        for _ in 0..3000 {
            let len = rng.gen_range(0..400);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            if rng.gen_bool(0.5) && !bytes.is_empty() {
                bytes[0] = MESSAGE_FORMAT_VERSION;
            }
            let _ = Header::parse(&bytes);
            let _ = decrypt(&KEY, &bytes);
            let mut decryptor = Decryptor::new(&header, &KEY).unwrap();
            let mut out = Vec::new();
            let pushed = decryptor.push(&bytes, &mut out);
            assert!(pushed.is_err() || decryptor.finish().is_err());
            assert!(out.is_empty());
            // Random damage to a valid message: several bytes changed, or a random-length field inflated.
            let mut damaged = message.clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..damaged.len());
                damaged[at] = rng.r#gen();
            }
            if damaged != message {
                assert!(decrypt(&KEY, &damaged).is_err());
            }
            let start = rng.gen_range(0..100);
            let plan =
                plan_range(header.serialized_len() as u64, 16, 100, start..rng.gen_range(start + 1..=100)).unwrap();
            let mut range = RangeDecryptor::new(&header, &KEY, &plan).unwrap();
            let pushed = range.push(&bytes, &mut out);
            assert!(pushed.is_err() || range.finish().is_err());
            assert!(out.is_empty());
        }
    }

    /// The fixed key that signs the signed-suite messages of these tests.
    fn signing_key() -> p384::ecdsa::SigningKey {
        p384::ecdsa::SigningKey::from_slice(&[0x17; 48]).unwrap()
    }

    /// Appends the footer the AWS Encryption SDK writes: u16 length and DER ECDSA P-384 of SHA-384 over `message`.
    fn append_signature(key: &p384::ecdsa::SigningKey, message: &mut Vec<u8>) {
        use p384::ecdsa::signature::hazmat::PrehashSigner;
        let digest = ring::digest::digest(&SHA384, message);
        let signature: p384::ecdsa::Signature = key.sign_prehash(digest.as_ref()).unwrap();
        let der = signature.to_der();
        message.extend_from_slice(&(der.as_bytes().len() as u16).to_be_bytes());
        message.extend_from_slice(der.as_bytes());
    }

    /// A message of suite 0x0578 as the AWS Encryption SDK writes it: the verification key in the context, the same
    /// frames, then the footer.
    fn seal_signed(frame_length: u32, plaintext: &[u8]) -> Vec<u8> {
        let key = signing_key();
        let mut context = context();
        let point = key.verifying_key().to_sec1_point(true);
        context.insert(PUBLIC_KEY_CONTEXT_KEY.into(), BASE64.encode(point.as_bytes()));
        let mut message_id = [0; MESSAGE_ID_LEN];
        rand::rngs::OsRng.fill_bytes(&mut message_id);
        let mut encryptor = Encryptor::with_message_id(
            AlgorithmSuite::CommittingSigned,
            &KEY,
            &context,
            &edks(),
            frame_length,
            message_id,
        )
        .unwrap();
        let mut message = Vec::new();
        encryptor.push(plaintext, &mut message).unwrap();
        encryptor.finish(&mut message).unwrap();
        append_signature(&key, &mut message);
        message
    }

    #[test]
    fn signed_messages_decrypt_and_verify() {
        let mut rng = StdRng::seed_from_u64(6);
        for (frame_length, len) in
            [(16, 0), (16, 1), (16, 15), (16, 16), (16, 53), (4096, 10_000), (FRAME_LENGTH, 70_000)]
        {
            let plaintext = pattern(len);
            let message = seal_signed(frame_length, &plaintext);
            let header = Header::parse(&message).unwrap();
            assert_eq!(header.suite(), AlgorithmSuite::CommittingSigned);
            assert_eq!(header.suite().id(), 0x0578);
            assert_eq!(header.suite().name(), "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384");
            assert!(header.encryption_context().contains_key(PUBLIC_KEY_CONTEXT_KEY));
            assert_eq!(decrypt(&KEY, &message).unwrap().1, plaintext, "{len}");
            // In pieces of any size, the footer split anywhere too.
            assert_eq!(decrypt_chunked(&mut rng, &message).unwrap(), plaintext, "{len} chunked");
        }
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let message = seal_signed(16, &pattern(50));
        // The last byte of the signature lies in s: the DER stays valid, the signature does not.
        let mut tampered = message.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(decrypt(&KEY, &tampered).unwrap_err(), EnvelopeError::SignatureVerification);
        // A valid signature by another key over the same bytes.
        let header = Header::parse(&message).unwrap();
        let body_end = message.len() - footer_len(&message);
        let mut resigned = message[..body_end].to_vec();
        append_signature(&p384::ecdsa::SigningKey::from_slice(&[0x18; 48]).unwrap(), &mut resigned);
        assert_eq!(decrypt(&KEY, &resigned).unwrap_err(), EnvelopeError::SignatureVerification);
        // The footer missing, cut short, or followed by more bytes.
        assert_eq!(decrypt(&KEY, &message[..body_end]).unwrap_err(), EnvelopeError::Truncated);
        assert_eq!(decrypt(&KEY, &message[..body_end + 1]).unwrap_err(), EnvelopeError::Truncated);
        assert_eq!(decrypt(&KEY, &message[..message.len() - 1]).unwrap_err(), EnvelopeError::Truncated);
        let mut longer = message.clone();
        longer.push(0);
        assert_eq!(decrypt(&KEY, &longer).unwrap_err(), EnvelopeError::TrailingData);
        let mut garbage = message[..body_end].to_vec();
        garbage.extend_from_slice(&[0, 3, 1, 2, 3]);
        assert!(matches!(decrypt(&KEY, &garbage).unwrap_err(), EnvelopeError::Malformed(_)));
        let mut huge = message[..body_end].to_vec();
        huge.extend_from_slice(&[0xFF; MAX_FOOTER_LEN + 1]);
        assert_eq!(decrypt(&KEY, &huge).unwrap_err(), EnvelopeError::TrailingData);
        // Another verification key in the header: the header no longer authenticates.
        let other = p384::ecdsa::SigningKey::from_slice(&[0x18; 48]).unwrap();
        let point = BASE64.encode(other.verifying_key().to_sec1_point(true).as_bytes());
        let original = &header.encryption_context()[PUBLIC_KEY_CONTEXT_KEY];
        assert_eq!(point.len(), original.len());
        let at = message.windows(original.len()).position(|window| window == original.as_bytes()).unwrap();
        let mut swapped_key = message.clone();
        swapped_key[at..at + point.len()].copy_from_slice(point.as_bytes());
        assert_eq!(decrypt(&KEY, &swapped_key).unwrap_err(), EnvelopeError::HeaderAuthentication);
        // Every single-bit flip and every truncation is refused.
        for at in 0..message.len() {
            let mut flipped = message.clone();
            flipped[at] ^= 0x10;
            assert!(decrypt(&KEY, &flipped).is_err(), "flip at {at}");
            assert!(decrypt(&KEY, &message[..at]).is_err(), "cut at {at}");
        }
    }

    /// The footer's length, from the end of a signed message (the tests' signatures are 100 to 104 bytes long).
    fn footer_len(message: &[u8]) -> usize {
        (96..=104)
            .find(|&len| {
                let at = message.len() - 2 - len;
                usize::from(u16::from_be_bytes([message[at], message[at + 1]])) == len
            })
            .map(|len| len + 2)
            .unwrap()
    }

    #[test]
    fn the_signed_header_needs_its_public_key() {
        // An unsigned message relabelled as signed has no verification key in its context.
        let mut relabelled = seal_message(16, b"abc");
        relabelled[1..3].copy_from_slice(&SIGNED_ALGORITHM_SUITE_ID.to_be_bytes());
        assert!(matches!(Header::parse(&relabelled), Err(EnvelopeError::Malformed(_))));
        // A key that is not a P-384 point is refused before any frame.
        let mut context = context();
        context.insert(PUBLIC_KEY_CONTEXT_KEY.into(), BASE64.encode([2; 49]));
        let encryptor =
            Encryptor::with_message_id(AlgorithmSuite::CommittingSigned, &KEY, &context, &edks(), 16, [7; 32]).unwrap();
        let header = encryptor.header().clone();
        assert!(matches!(Decryptor::new(&header, &KEY).unwrap_err(), EnvelopeError::Malformed(_)));
        context.insert(PUBLIC_KEY_CONTEXT_KEY.into(), "not base64!".into());
        let encryptor =
            Encryptor::with_message_id(AlgorithmSuite::CommittingSigned, &KEY, &context, &edks(), 16, [7; 32]).unwrap();
        assert!(matches!(Decryptor::new(encryptor.header(), &KEY).unwrap_err(), EnvelopeError::Malformed(_)));
        // The suite is part of the key derivation: the right key fails the commitment under the other suite's label.
        let signed = seal_signed(16, b"abc");
        let mut unsigned_label = signed.clone();
        unsigned_label[1..3].copy_from_slice(&ALGORITHM_SUITE_ID.to_be_bytes());
        assert!(decrypt(&KEY, &unsigned_label).is_err());
        // Range reads of a signed message cannot check its signature, so they are refused.
        let header = Header::parse(&signed).unwrap();
        let plan = plan_range(header.serialized_len() as u64, 16, 3, 0..3).unwrap();
        assert_eq!(
            RangeDecryptor::new(&header, &KEY, &plan).unwrap_err(),
            EnvelopeError::UnsupportedAlgorithmSuite(SIGNED_ALGORITHM_SUITE_ID)
        );
    }

    #[test]
    fn frames_are_described_without_the_key() {
        for (frame_length, len, signed) in [(16, 0, false), (16, 48, false), (16, 50, true), (4096, 10_000, true)] {
            let message = if signed {
                seal_signed(frame_length, &pattern(len))
            } else {
                seal_message(frame_length, &pattern(len))
            };
            let header = Header::parse(&message).unwrap();
            let mut at = header.serialized_len();
            let (mut frames, mut plaintext) = (0u32, 0u64);
            loop {
                let prefix = &message[at..(at + FRAME_PREFIX_LEN).min(message.len())];
                let frame = frame_extent(frame_length, prefix).unwrap();
                frames += 1;
                assert_eq!(frame.sequence, frames);
                plaintext += u64::from(frame.plaintext_len);
                at += frame.stored_len as usize;
                if frame.is_final {
                    break;
                }
            }
            assert_eq!((frames as usize, plaintext), (len / frame_length as usize + 1, len as u64));
            let footer = &message[at..];
            if signed {
                assert!((100..=104).contains(&footer_signature_len(footer).unwrap()));
            } else {
                assert!(footer.is_empty());
            }
        }
        assert_eq!(frame_extent(16, &[0, 0]).unwrap_err(), EnvelopeError::Truncated);
        assert_eq!(frame_extent(16, &[0xFF; 10]).unwrap_err(), EnvelopeError::Truncated);
        let mut long_final = vec![0xFF; FRAME_PREFIX_LEN];
        long_final[20..24].copy_from_slice(&17u32.to_be_bytes());
        assert!(matches!(frame_extent(16, &long_final), Err(EnvelopeError::Malformed(_))));
        assert_eq!(footer_signature_len(&[0]), Err(EnvelopeError::Truncated));
        assert_eq!(footer_signature_len(&[0, 2, 1]), Err(EnvelopeError::Truncated));
        assert_eq!(footer_signature_len(&[0, 1, 1, 1]), Err(EnvelopeError::TrailingData));
    }

    /// The messages in tests/vectors/ were written by the AWS Encryption SDK for Python (see generate.py): decrypting
    /// them checks every byte of the format against an independent implementation. The same directory holds
    /// messages written by this module, which generate.py decrypts with the Python SDK.
    #[test]
    fn decrypts_messages_of_the_aws_encryption_sdk() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
        let data_key: [u8; 32] = hex::decode(manifest["data_key_hex"].as_str().unwrap()).unwrap().try_into().unwrap();
        let expected_context: BTreeMap<String, String> =
            serde_json::from_value(manifest["encryption_context"].clone()).unwrap();
        let edk = &manifest["encrypted_data_key"];
        let expected_edk = EncryptedDataKey {
            provider_id: edk["provider_id"].as_str().unwrap().into(),
            provider_info: edk["provider_info"].as_str().unwrap().into(),
            ciphertext: hex::decode(edk["ciphertext_hex"].as_str().unwrap()).unwrap(),
        };
        let vectors = manifest["vectors"].as_array().unwrap();
        assert!(vectors.iter().filter(|vector| vector["producer"] == "aws-encryption-sdk-python").count() >= 4);
        let signed = |vector: &serde_json::Value| vector["algorithm_suite_id"] == "0578";
        assert!(vectors.iter().filter(|vector| signed(vector)).count() >= 3);
        let mut rng = StdRng::seed_from_u64(5);
        for vector in vectors {
            let file = vector["file"].as_str().unwrap();
            let message = std::fs::read(dir.join(file)).unwrap();
            let len = vector["plaintext_length"].as_u64().unwrap() as usize;
            let (header, plaintext) = decrypt(&data_key, &message).unwrap_or_else(|error| panic!("{file}: {error}"));
            assert_eq!(plaintext, pattern(len), "{file}");
            assert_eq!(header.encrypted_data_keys(), std::slice::from_ref(&expected_edk), "{file}");
            if signed(vector) {
                // The SDK's default suite: its verification key joins the context, and the footer signs the message.
                assert_eq!(header.suite(), AlgorithmSuite::CommittingSigned, "{file}");
                let mut context = header.encryption_context().clone();
                assert_eq!(context.remove(PUBLIC_KEY_CONTEXT_KEY).map(|key| key.len()), Some(68), "{file}");
                assert_eq!(context, expected_context, "{file}");
                assert_eq!(u64::from(header.frame_length()), vector["frame_length"].as_u64().unwrap(), "{file}");
                let mut tampered = message.clone();
                *tampered.last_mut().unwrap() ^= 1;
                assert_eq!(decrypt(&data_key, &tampered).unwrap_err(), EnvelopeError::SignatureVerification, "{file}");
                continue;
            }
            assert_eq!(header.suite(), AlgorithmSuite::Committing, "{file}");
            assert_eq!(header.encryption_context(), &expected_context, "{file}");
            assert_eq!(header.frame_length(), FRAME_LENGTH, "{file}");
            // The SDK lays frames out as this module does, so range reads work on its messages too.
            let header_len = header.serialized_len() as u64;
            assert_eq!(message.len() as u64, ciphertext_len(header_len, FRAME_LENGTH, len as u64), "{file}");
            if len > 0 {
                let start = rng.gen_range(0..len as u64);
                let plan = plan_range(header_len, FRAME_LENGTH, len as u64, start..len as u64).unwrap();
                let mut decryptor = RangeDecryptor::new(&header, &data_key, &plan).unwrap();
                let mut out = Vec::new();
                decryptor.push(&message[plan.stored.start as usize..plan.stored.end as usize], &mut out).unwrap();
                decryptor.finish().unwrap();
                assert_eq!(out, &pattern(len)[start as usize..], "{file}");
            }
        }
    }

    /// Rewrites the messages of this module in tests/vectors/ (for generate.py to check with the Python SDK) when
    /// KMSIM_WRITE_ENVELOPE_VECTORS is set; does nothing otherwise.
    #[test]
    fn writes_vectors_for_the_aws_encryption_sdk() {
        if std::env::var_os("KMSIM_WRITE_ENVELOPE_VECTORS").is_none() {
            return;
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
        let data_key: [u8; 32] = hex::decode(manifest["data_key_hex"].as_str().unwrap()).unwrap().try_into().unwrap();
        let context: BTreeMap<String, String> = serde_json::from_value(manifest["encryption_context"].clone()).unwrap();
        let edk = &manifest["encrypted_data_key"];
        let edk = EncryptedDataKey {
            provider_id: edk["provider_id"].as_str().unwrap().into(),
            provider_info: edk["provider_info"].as_str().unwrap().into(),
            ciphertext: hex::decode(edk["ciphertext_hex"].as_str().unwrap()).unwrap(),
        };
        for vector in manifest["vectors"].as_array().unwrap() {
            if vector["producer"] != "kmsim" {
                continue;
            }
            let len = vector["plaintext_length"].as_u64().unwrap() as usize;
            let message =
                encrypt(&data_key, &context, std::slice::from_ref(&edk), FRAME_LENGTH, &pattern(len)).unwrap();
            std::fs::write(dir.join(vector["file"].as_str().unwrap()), message).unwrap();
        }
    }
}
