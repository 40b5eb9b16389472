//! The state archive format (`docs/formats.md`, "State archive"): a header that names the format version and the
//! passphrase's key derivation, then length-prefixed records, then an `END` record whose HMAC covers every byte
//! before it.
//!
//! ```text
//! magic "KMSIMSTA" (8) ‖ format u16 BE ‖ kdf id u8 (1 = Argon2id v0x13) ‖ m_cost KiB u32 BE ‖ t_cost u32 BE ‖
//! p_cost u32 BE ‖ salt (16) ‖ check: nonce (12) ‖ AES-256-GCM(check key, "kmsim state check") ‖ tag (16)
//! records: tag u8 ‖ length u32 BE ‖ payload (at most MAX_RECORD_LEN bytes)
//! END: tag 0xFF ‖ length 32 ‖ HMAC-SHA-256(mac key, every byte before this record)
//! ```
//!
//! The passphrase is stretched once per archive by Argon2id into a root key; HKDF-SHA-256 derives from it the
//! check key (a wrong passphrase is told at the header), the keys that wrap the services' secrets (KMS material,
//! IAM secret access keys, the SSE-S3 service key) and the MAC key. Nothing here panics on bad input: a short,
//! altered or foreign archive is an [`ArchiveError`].

use std::io::{Read, Write};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The first bytes of every state archive.
pub const MAGIC: [u8; 8] = *b"KMSIMSTA";
/// The archive format this build writes and reads. Changing the layout of the header or of any record means a new
/// format number; archives of a newer one are refused.
pub const FORMAT: u16 = 1;
/// The largest record payload a reader accepts (a key record with many grants is the largest record there is).
pub const MAX_RECORD_LEN: u32 = 64 << 20;
/// How much file data one `FILE_DATA` record carries at most when kmsim writes it.
pub const DATA_CHUNK: usize = 1 << 20;

const KDF_ARGON2ID: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const CHECK_PLAINTEXT: &[u8] = b"kmsim state check";
const HEADER_LEN: usize = 8 + 2 + 1 + 12 + SALT_LEN + NONCE_LEN + CHECK_PLAINTEXT.len() + TAG_LEN;
/// The largest Argon2id cost a reader accepts (256 MiB, 16 passes, 16 lanes): an archive cannot make the reader
/// spend more than that.
const MAX_M_COST_KIB: u32 = 256 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 16;

/// The record tags. Changing a value breaks stored archives.
pub mod tag {
    /// The exporter's deterministic entropy (JSON: the seed's fingerprint, the next generation to draw in); only
    /// in archives of a kmsim started with `--deterministic`.
    pub const ENTROPY: u8 = 0x01;
    /// A KMS key record (JSON), its secrets wrapped under the archive's KMS key.
    pub const KMS_KEY: u8 = 0x10;
    /// A KMS alias record (JSON).
    pub const KMS_ALIAS: u8 = 0x11;
    /// An IAM user record (JSON).
    pub const IAM_USER: u8 = 0x20;
    /// An IAM role record (JSON).
    pub const IAM_ROLE: u8 = 0x21;
    /// An IAM managed policy record (JSON).
    pub const IAM_POLICY: u8 = 0x22;
    /// An IAM access key record (JSON), its secret wrapped under the archive's IAM key.
    pub const IAM_ACCESS_KEY: u8 = 0x23;
    /// The SSE-S3 service key, sealed under the archive's secrets key.
    pub const SSE_S3_KEY: u8 = 0x30;
    /// A bucket record (JSON).
    pub const OBS_BUCKET: u8 = 0x31;
    /// An object record: bucket name length u16 BE ‖ bucket name ‖ record (JSON).
    pub const OBS_OBJECT: u8 = 0x32;
    /// A multipart upload record (JSON).
    pub const OBS_UPLOAD: u8 = 0x33;
    /// A file: place u8 ‖ length u64 BE ‖ name (UTF-8). Its `FILE_DATA` records follow.
    pub const FILE: u8 = 0x40;
    /// Data of the last `FILE`: offset u64 BE ‖ bytes. Offsets increase; what no record covers reads as zeros.
    pub const FILE_DATA: u8 = 0x41;
    /// The end: the HMAC of everything before it.
    pub const END: u8 = 0xFF;
}

/// Where a file of the archive lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The object store (object and part bodies under `data/`, volume snapshots under `snapshots/`).
    Objects,
    /// The volume directory (volume records `<id>.json` and files `<id>.img[.<k>]`).
    Volumes,
}

impl Place {
    fn code(self) -> u8 {
        match self {
            Place::Objects => 0,
            Place::Volumes => 1,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Place::Objects),
            1 => Some(Place::Volumes),
            _ => None,
        }
    }
}

/// Why an archive cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Not a state archive.
    #[error("not a kmsim state archive (its first bytes are not the state archive's magic)")]
    NotAnArchive,
    /// Written by a newer kmsim.
    #[error(
        "the state archive is of format {found}, newer than this kmsim reads (format {supported}): use a newer kmsim"
    )]
    NewerFormat {
        /// The archive's format.
        found: u16,
        /// The newest this build reads.
        supported: u16,
    },
    /// The passphrase does not open the archive.
    #[error("wrong passphrase: the state archive does not open with it")]
    WrongPassphrase,
    /// The archive ends early.
    #[error("the state archive is truncated: it ends {0}")]
    Truncated(String),
    /// The archive is damaged or was altered.
    #[error("the state archive is corrupt: {0}")]
    Corrupt(String),
    /// The passphrase is unusable.
    #[error("{0}")]
    Passphrase(String),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The passphrase a user gives, zeroized on drop (every copy: a `StackBuilder` holding one may be cloned).
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

impl Passphrase {
    /// The passphrase of these bytes (a file's content without its final line break). Refuses an empty one.
    pub fn new(bytes: &[u8]) -> Result<Self, ArchiveError> {
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(ArchiveError::Passphrase("the state archive's passphrase is empty".into()));
        }
        Ok(Passphrase(Zeroizing::new(trimmed.to_vec())))
    }
}

/// Argon2id costs, recorded in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// OWASP's recommended Argon2id configuration: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        KdfParams { m_cost_kib: 19 * 1024, t_cost: 2, p_cost: 1 }
    }
}

/// The keys derived from the passphrase, once per archive. Zeroized on drop.
pub struct ArchiveKeys {
    check: Zeroizing<[u8; 32]>,
    /// Wraps KMS key material (as the KMS's master key does).
    pub kms: Zeroizing<[u8; 32]>,
    /// Wraps IAM secret access keys (as `iam.key` does).
    pub iam: Zeroizing<[u8; 32]>,
    /// Seals the SSE-S3 service key.
    secrets: Zeroizing<[u8; 32]>,
    mac: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ArchiveKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArchiveKeys(..)")
    }
}

impl ArchiveKeys {
    fn derive(passphrase: &Passphrase, salt: &[u8; SALT_LEN], params: KdfParams) -> Result<Self, ArchiveError> {
        let argon_params = argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
            .map_err(|e| ArchiveError::Corrupt(format!("its key derivation parameters are invalid ({e})")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, argon_params);
        let mut root = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(&passphrase.0, salt, root.as_mut())
            .map_err(|e| ArchiveError::Passphrase(format!("deriving the archive's key: {e}")))?;
        let hkdf = hkdf::Hkdf::<Sha256>::new(None, root.as_ref());
        let sub = |purpose: &str| {
            let mut key = Zeroizing::new([0u8; 32]);
            let info = format!("kmsim/state/v1/{purpose}");
            hkdf.expand(info.as_bytes(), key.as_mut()).expect("32 bytes is a valid HKDF-SHA-256 length");
            key
        };
        Ok(ArchiveKeys {
            check: sub("check"),
            kms: sub("kms"),
            iam: sub("iam"),
            secrets: sub("secrets"),
            mac: sub("mac"),
        })
    }

    /// Seals `secret` (nonce ‖ AES-256-GCM ciphertext ‖ tag) under the secrets key, bound to `purpose`.
    pub fn seal(&self, purpose: &str, secret: &[u8]) -> Vec<u8> {
        seal(&self.secrets, purpose.as_bytes(), secret)
    }

    /// Opens what [`ArchiveKeys::seal`] sealed for `purpose`.
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, ArchiveError> {
        open(&self.secrets, purpose.as_bytes(), sealed)
            .ok_or_else(|| ArchiveError::Corrupt(format!("the sealed {purpose} does not open")))
    }
}

fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new(key.into());
    let sealed =
        cipher.encrypt((&nonce).into(), Payload { msg: plaintext, aad }).expect("AES-GCM seals a short secret");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(key.into());
    cipher.decrypt(nonce.into(), Payload { msg: body, aad }).ok().map(Zeroizing::new)
}

/// Writes an archive: [`Writer::create`], records, then [`Writer::finish`].
pub struct Writer<W: Write> {
    out: W,
    mac: Hmac<Sha256>,
    keys: ArchiveKeys,
}

impl<W: Write> Writer<W> {
    /// Derives the archive's keys from `passphrase` with a fresh salt and writes the header.
    pub fn create(out: W, passphrase: &Passphrase, params: KdfParams) -> Result<Self, ArchiveError> {
        let mut salt = [0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let keys = ArchiveKeys::derive(passphrase, &salt, params)?;
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&FORMAT.to_be_bytes());
        header.push(KDF_ARGON2ID);
        header.extend_from_slice(&params.m_cost_kib.to_be_bytes());
        header.extend_from_slice(&params.t_cost.to_be_bytes());
        header.extend_from_slice(&params.p_cost.to_be_bytes());
        header.extend_from_slice(&salt);
        header.extend_from_slice(&seal(&keys.check, &MAGIC, CHECK_PLAINTEXT));
        debug_assert_eq!(header.len(), HEADER_LEN);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(keys.mac.as_ref()).expect("HMAC takes any key length");
        mac.update(&header);
        let mut writer = Writer { out, mac, keys };
        writer.out.write_all(&header)?;
        Ok(writer)
    }

    /// The keys that wrap the services' secrets.
    pub fn keys(&self) -> &ArchiveKeys {
        &self.keys
    }

    /// Writes one record.
    pub fn record(&mut self, tag: u8, payload: &[u8]) -> Result<(), ArchiveError> {
        self.record_parts(tag, &[payload])
    }

    fn record_parts(&mut self, tag: u8, parts: &[&[u8]]) -> Result<(), ArchiveError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len)
            .ok()
            .filter(|len| *len <= MAX_RECORD_LEN)
            .ok_or_else(|| ArchiveError::Corrupt(format!("a record of {len} bytes is larger than an archive holds")))?;
        let mut head = [0u8; 5];
        head[0] = tag;
        head[1..].copy_from_slice(&len.to_be_bytes());
        self.mac.update(&head);
        self.out.write_all(&head)?;
        for part in parts {
            self.mac.update(part);
            self.out.write_all(part)?;
        }
        Ok(())
    }

    /// Writes an object record of `bucket`.
    pub fn object(&mut self, bucket: &str, json: &[u8]) -> Result<(), ArchiveError> {
        let len = u16::try_from(bucket.len())
            .map_err(|_| ArchiveError::Corrupt(format!("bucket name of {} bytes", bucket.len())))?;
        self.record_parts(tag::OBS_OBJECT, &[&len.to_be_bytes(), bucket.as_bytes(), json])
    }

    /// Starts a file of `length` bytes at `name` in `place`; its data follows with [`Writer::data`].
    pub fn file(&mut self, place: Place, name: &str, length: u64) -> Result<(), ArchiveError> {
        self.record_parts(tag::FILE, &[&[place.code()], &length.to_be_bytes(), name.as_bytes()])
    }

    /// Writes `bytes` at `offset` of the current file.
    pub fn data(&mut self, offset: u64, bytes: &[u8]) -> Result<(), ArchiveError> {
        self.record_parts(tag::FILE_DATA, &[&offset.to_be_bytes(), bytes])
    }

    /// Writes the `END` record and flushes; gives back the output.
    pub fn finish(mut self) -> Result<W, ArchiveError> {
        let mut head = [0u8; 5];
        head[0] = tag::END;
        head[1..].copy_from_slice(&32u32.to_be_bytes());
        let digest = self.mac.finalize().into_bytes();
        self.out.write_all(&head)?;
        self.out.write_all(&digest)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One record read from an archive.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    /// A record with a JSON (or sealed) payload: its tag and payload.
    Plain(u8, Vec<u8>),
    /// An object record: its bucket and JSON.
    Object {
        /// The bucket.
        bucket: String,
        /// The record.
        json: Vec<u8>,
    },
    /// A file starts.
    File {
        /// Where it goes.
        place: Place,
        /// Its name there.
        name: String,
        /// Its length.
        length: u64,
    },
    /// Data of the current file.
    Data {
        /// Where in the file.
        offset: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The end; the archive verified.
    End,
}

/// Reads an archive: [`Reader::open`], then [`Reader::next`] until [`Record::End`], which is returned only once
/// the archive's HMAC verified. Data read before `End` is not yet authenticated: apply nothing irrevocably before.
pub struct Reader<R: Read> {
    input: R,
    mac: Hmac<Sha256>,
    keys: ArchiveKeys,
    /// Bytes read so far, for messages.
    offset: u64,
    /// The current file: its length and where its data may continue.
    file: Option<(u64, u64)>,
    ended: bool,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header: the magic, the format, and the passphrase (through the check value).
    pub fn open(mut input: R, passphrase: &Passphrase) -> Result<Self, ArchiveError> {
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut input, &mut header)?;
        if got < MAGIC.len() || header[..MAGIC.len()] != MAGIC {
            return Err(if got < MAGIC.len() && MAGIC.starts_with(&header[..got]) {
                ArchiveError::Truncated(format!("after {got} bytes, inside its header"))
            } else {
                ArchiveError::NotAnArchive
            });
        }
        if got >= 10 {
            let found = u16::from_be_bytes([header[8], header[9]]);
            if found > FORMAT {
                return Err(ArchiveError::NewerFormat { found, supported: FORMAT });
            }
            if found != FORMAT {
                return Err(ArchiveError::Corrupt(format!("format {found} is not one kmsim ever wrote")));
            }
        }
        if got < HEADER_LEN {
            return Err(ArchiveError::Truncated(format!("after {got} bytes, inside its header")));
        }
        if header[10] != KDF_ARGON2ID {
            return Err(ArchiveError::Corrupt(format!("key derivation {} is not Argon2id", header[10])));
        }
        let word = |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        let params = KdfParams { m_cost_kib: word(11), t_cost: word(15), p_cost: word(19) };
        if params.m_cost_kib > MAX_M_COST_KIB || params.t_cost > MAX_T_COST || params.p_cost > MAX_P_COST {
            return Err(ArchiveError::Corrupt(format!(
                "its key derivation costs {params:?} are above what kmsim accepts \
                 ({MAX_M_COST_KIB} KiB, {MAX_T_COST} passes, {MAX_P_COST} lanes)"
            )));
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&header[23..23 + SALT_LEN]);
        let keys = ArchiveKeys::derive(passphrase, &salt, params)?;
        let check = open(&keys.check, &MAGIC, &header[23 + SALT_LEN..]);
        if check.as_deref().map(Vec::as_slice) != Some(CHECK_PLAINTEXT) {
            return Err(ArchiveError::WrongPassphrase);
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(keys.mac.as_ref()).expect("HMAC takes any key length");
        mac.update(&header);
        Ok(Reader { input, mac, keys, offset: HEADER_LEN as u64, file: None, ended: false })
    }

    /// The keys that wrap the services' secrets.
    pub fn keys(&self) -> &ArchiveKeys {
        &self.keys
    }

    /// The next record.
    pub fn next_record(&mut self) -> Result<Record, ArchiveError> {
        if self.ended {
            return Err(ArchiveError::Corrupt("read past its end".into()));
        }
        let at = self.offset;
        let mut head = [0u8; 5];
        let got = read_full(&mut self.input, &mut head)?;
        if got < head.len() {
            return Err(ArchiveError::Truncated(format!(
                "at byte {}, inside a record header, before its END record",
                at + got as u64
            )));
        }
        let tag = head[0];
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        if len > MAX_RECORD_LEN {
            return Err(ArchiveError::Corrupt(format!("the record at byte {at} claims {len} bytes")));
        }
        let mut payload = vec![0u8; len as usize];
        let got = read_full(&mut self.input, &mut payload)?;
        self.offset += 5 + got as u64;
        if got < payload.len() {
            return Err(ArchiveError::Truncated(format!(
                "at byte {}, inside the record that starts at byte {at}",
                self.offset
            )));
        }
        if tag == tag::END {
            let expected = self.mac.clone().finalize().into_bytes();
            // Constant time: the MAC is a secret's function.
            if len != 32 || !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_slice(), payload.as_slice())) {
                return Err(ArchiveError::Corrupt("its authentication code does not match: it was altered".into()));
            }
            let mut rest = [0u8; 1];
            if read_full(&mut self.input, &mut rest)? != 0 {
                return Err(ArchiveError::Corrupt(format!("bytes follow its END record at byte {}", self.offset)));
            }
            self.ended = true;
            return Ok(Record::End);
        }
        self.mac.update(&head);
        self.mac.update(&payload);
        let corrupt = |what: &str| ArchiveError::Corrupt(format!("the record at byte {at}: {what}"));
        match tag {
            tag::ENTROPY
            | tag::KMS_KEY
            | tag::KMS_ALIAS
            | tag::IAM_USER
            | tag::IAM_ROLE
            | tag::IAM_POLICY
            | tag::IAM_ACCESS_KEY
            | tag::SSE_S3_KEY
            | tag::OBS_BUCKET
            | tag::OBS_UPLOAD => {
                self.file = None;
                Ok(Record::Plain(tag, payload))
            }
            tag::OBS_OBJECT => {
                self.file = None;
                let len = payload.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize);
                let name = len.and_then(|len| payload.get(2..2 + len)).ok_or_else(|| corrupt("object record cut"))?;
                let bucket = String::from_utf8(name.to_vec()).map_err(|_| corrupt("bucket name not UTF-8"))?;
                let json = payload[2 + bucket.len()..].to_vec();
                Ok(Record::Object { bucket, json })
            }
            tag::FILE => {
                if payload.len() < 9 {
                    return Err(corrupt("file record cut"));
                }
                let place = Place::from_code(payload[0]).ok_or_else(|| corrupt("unknown file place"))?;
                let length = u64::from_be_bytes(payload[1..9].try_into().expect("8 bytes"));
                let name = String::from_utf8(payload[9..].to_vec()).map_err(|_| corrupt("file name not UTF-8"))?;
                self.file = Some((length, 0));
                Ok(Record::File { place, name, length })
            }
            tag::FILE_DATA => {
                let (length, next) = self.file.ok_or_else(|| corrupt("file data outside a file"))?;
                if payload.len() < 8 {
                    return Err(corrupt("file data record cut"));
                }
                let offset = u64::from_be_bytes(payload[..8].try_into().expect("8 bytes"));
                let end = offset
                    .checked_add(payload.len() as u64 - 8)
                    .filter(|end| offset >= next && *end <= length)
                    .ok_or_else(|| corrupt("file data out of order or past the file's length"))?;
                self.file = Some((length, end));
                payload.drain(..8);
                Ok(Record::Data { offset, bytes: payload })
            }
            other => Err(corrupt(&format!("unknown record tag {other:#04x}"))),
        }
    }
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap costs for tests (the format is the same).
    const FAST: KdfParams = KdfParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 };

    fn passphrase(text: &str) -> Passphrase {
        Passphrase::new(text.as_bytes()).unwrap()
    }

    /// An archive of each kind of record, and the byte offsets where its records start.
    fn sample() -> (Vec<u8>, Vec<usize>) {
        let mut writer = Writer::create(Vec::new(), &passphrase("correct horse"), FAST).unwrap();
        let mut bounds = vec![HEADER_LEN];
        let mark = |w: &Writer<Vec<u8>>| w.out.len();
        writer.record(tag::KMS_KEY, br#"{"id":"k"}"#).unwrap();
        bounds.push(mark(&writer));
        let sealed = writer.keys().seal("sse-s3 key", &[7u8; 32]);
        writer.record(tag::SSE_S3_KEY, &sealed).unwrap();
        bounds.push(mark(&writer));
        writer.object("bucket", br#"{"key":"a"}"#).unwrap();
        bounds.push(mark(&writer));
        writer.file(Place::Volumes, "v.img", 10).unwrap();
        bounds.push(mark(&writer));
        writer.data(2, b"abc").unwrap();
        bounds.push(mark(&writer));
        writer.data(8, b"yz").unwrap();
        bounds.push(mark(&writer));
        let out = writer.finish().unwrap();
        bounds.push(out.len());
        (out, bounds)
    }

    fn read_all(bytes: &[u8], pass: &str) -> Result<Vec<Record>, ArchiveError> {
        let mut reader = Reader::open(bytes, &passphrase(pass))?;
        let mut records = Vec::new();
        loop {
            let record = reader.next_record()?;
            let end = record == Record::End;
            records.push(record);
            if end {
                return Ok(records);
            }
        }
    }

    #[test]
    fn round_trip() {
        let (bytes, _) = sample();
        let mut reader = Reader::open(bytes.as_slice(), &passphrase("correct horse")).unwrap();
        assert_eq!(reader.next_record().unwrap(), Record::Plain(tag::KMS_KEY, br#"{"id":"k"}"#.to_vec()));
        let Record::Plain(tag::SSE_S3_KEY, sealed) = reader.next_record().unwrap() else { panic!("sealed key") };
        assert_eq!(reader.keys().open("sse-s3 key", &sealed).unwrap().as_slice(), &[7u8; 32]);
        assert!(reader.keys().open("another purpose", &sealed).is_err());
        assert_eq!(
            reader.next_record().unwrap(),
            Record::Object { bucket: "bucket".into(), json: br#"{"key":"a"}"#.to_vec() }
        );
        assert_eq!(
            reader.next_record().unwrap(),
            Record::File { place: Place::Volumes, name: "v.img".into(), length: 10 }
        );
        assert_eq!(reader.next_record().unwrap(), Record::Data { offset: 2, bytes: b"abc".to_vec() });
        assert_eq!(reader.next_record().unwrap(), Record::Data { offset: 8, bytes: b"yz".to_vec() });
        assert_eq!(reader.next_record().unwrap(), Record::End);
        assert!(reader.next_record().is_err());
    }

    #[test]
    fn wrong_passphrase_is_told_at_the_header() {
        let (bytes, _) = sample();
        let err = read_all(&bytes, "battery staple").unwrap_err();
        assert!(matches!(err, ArchiveError::WrongPassphrase), "{err}");
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
    }

    #[test]
    fn newer_format_names_both_versions() {
        let (mut bytes, _) = sample();
        bytes[8..10].copy_from_slice(&(FORMAT + 1).to_be_bytes());
        let err = read_all(&bytes, "correct horse").unwrap_err();
        assert!(
            matches!(err, ArchiveError::NewerFormat { found, supported } if found == FORMAT + 1 && supported == FORMAT)
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("format {}", FORMAT + 1)) && text.contains(&format!("format {FORMAT}")),
            "{text}"
        );
    }

    #[test]
    fn foreign_bytes_and_empty_passphrases_are_refused() {
        assert!(matches!(read_all(b"PK\x03\x04 a zip file", "x"), Err(ArchiveError::NotAnArchive)));
        assert!(matches!(read_all(b"", "x"), Err(ArchiveError::Truncated(_))));
        assert!(Passphrase::new(b"\n").is_err());
        assert!(Passphrase::new(b"").is_err());
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let (bytes, bounds) = sample();
        for cut in 0..bytes.len() {
            let err = read_all(&bytes[..cut], "correct horse").unwrap_err();
            assert!(
                matches!(err, ArchiveError::Truncated(_) | ArchiveError::WrongPassphrase),
                "cut at {cut} (record bounds {bounds:?}): {err}"
            );
        }
        // At each record boundary the message says where.
        for &cut in &bounds[..bounds.len() - 1] {
            let err = read_all(&bytes[..cut], "correct horse").unwrap_err();
            assert!(err.to_string().contains("truncated"), "cut at {cut}: {err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(read_all(&longer, "correct horse"), Err(ArchiveError::Corrupt(_))));
    }

    #[test]
    fn every_bit_flip_is_an_error_never_a_panic() {
        let (bytes, _) = sample();
        for at in 0..bytes.len() {
            for bit in [0, 7] {
                let mut altered = bytes.clone();
                altered[at] ^= 1 << bit;
                let result = read_all(&altered, "correct horse");
                assert!(result.is_err(), "flipping bit {bit} of byte {at} went unnoticed");
            }
        }
    }

    #[test]
    fn out_of_order_file_data_is_refused() {
        let mut writer = Writer::create(Vec::new(), &passphrase("p"), FAST).unwrap();
        writer.file(Place::Objects, "data/b/x", 4).unwrap();
        writer.data(0, b"abcd").unwrap();
        writer.data(1, b"b").unwrap();
        let bytes = writer.finish().unwrap();
        let err = read_all(&bytes, "p").unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
        let mut writer = Writer::create(Vec::new(), &passphrase("p"), FAST).unwrap();
        writer.data(0, b"orphan").unwrap();
        let err = read_all(&writer.finish().unwrap(), "p").unwrap_err();
        assert!(err.to_string().contains("outside a file"), "{err}");
    }

    #[test]
    fn kdf_costs_beyond_the_bounds_are_refused_before_deriving() {
        let (mut bytes, _) = sample();
        bytes[11..15].copy_from_slice(&u32::MAX.to_be_bytes());
        let err = read_all(&bytes, "correct horse").unwrap_err();
        assert!(err.to_string().contains("above what kmsim accepts"), "{err}");
    }
}
