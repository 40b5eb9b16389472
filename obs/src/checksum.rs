//! The flexible checksums of S3 (`x-amz-checksum-<algorithm>`, in a header or an aws-chunked
//! trailer), computed over the payload as it streams in and compared before anything is stored.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::Digest as _;

use crate::error::Error;

/// A checksum algorithm S3 accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// CRC-32 (ISO-HDLC), the SDKs' default.
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl Algorithm {
    /// Every algorithm, with its header name.
    pub const ALL: [(Algorithm, &'static str); 5] = [
        (Algorithm::Crc32, "x-amz-checksum-crc32"),
        (Algorithm::Crc32c, "x-amz-checksum-crc32c"),
        (Algorithm::Crc64Nvme, "x-amz-checksum-crc64nvme"),
        (Algorithm::Sha1, "x-amz-checksum-sha1"),
        (Algorithm::Sha256, "x-amz-checksum-sha256"),
    ];

    /// The algorithm of a header name (`x-amz-checksum-crc32`, ...).
    pub fn from_header_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, h)| h.eq_ignore_ascii_case(name)).map(|(a, _)| *a)
    }

    /// The algorithm of `x-amz-sdk-checksum-algorithm` (`CRC32`, ...).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "CRC32" => Some(Algorithm::Crc32),
            "CRC32C" => Some(Algorithm::Crc32c),
            "CRC64NVME" => Some(Algorithm::Crc64Nvme),
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// The algorithm's name (`CRC32`, ...), as `x-amz-checksum-algorithm` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The XML element that carries this checksum (`ChecksumCRC32`, ..., as GetObjectAttributes
    /// and the multipart documents name them).
    pub fn xml_element(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "ChecksumCRC32",
            Algorithm::Crc32c => "ChecksumCRC32C",
            Algorithm::Crc64Nvme => "ChecksumCRC64NVME",
            Algorithm::Sha1 => "ChecksumSHA1",
            Algorithm::Sha256 => "ChecksumSHA256",
        }
    }

    /// The header that carries this checksum.
    pub fn header_name(self) -> &'static str {
        Self::ALL.iter().find(|(a, _)| *a == self).map(|(_, h)| *h).unwrap_or("x-amz-checksum-crc32")
    }
}

/// A running checksum.
#[derive(Clone)]
pub enum Checksummer {
    /// CRC-32.
    Crc32(crc32fast::Hasher),
    /// CRC-32C.
    Crc32c(u32),
    /// CRC-64/NVME.
    Crc64Nvme(crc64fast_nvme::Digest),
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
}

impl std::fmt::Debug for Checksummer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checksummer(..)")
    }
}

impl Checksummer {
    /// A fresh checksum of `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Crc32 => Checksummer::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => Checksummer::Crc32c(0),
            Algorithm::Crc64Nvme => Checksummer::Crc64Nvme(crc64fast_nvme::Digest::new()),
            Algorithm::Sha1 => Checksummer::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => Checksummer::Sha256(sha2::Sha256::new()),
        }
    }

    /// Adds payload bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Checksummer::Crc32(h) => h.update(data),
            Checksummer::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Checksummer::Crc64Nvme(d) => d.write(data),
            Checksummer::Sha1(h) => h.update(data),
            Checksummer::Sha256(h) => sha2::Digest::update(h, data),
        }
    }

    /// The checksum, base64 as S3 sends it.
    pub fn finish(self) -> String {
        match self {
            Checksummer::Crc32(h) => BASE64.encode(h.finalize().to_be_bytes()),
            Checksummer::Crc32c(c) => BASE64.encode(c.to_be_bytes()),
            Checksummer::Crc64Nvme(d) => BASE64.encode(d.sum64().to_be_bytes()),
            Checksummer::Sha1(h) => BASE64.encode(h.finalize()),
            Checksummer::Sha256(h) => BASE64.encode(sha2::Digest::finalize(h)),
        }
    }
}

/// Compares a computed checksum with the one the client sent.
pub fn check(algorithm: Algorithm, computed: &str, claimed: &str) -> Result<(), Error> {
    if computed == claimed.trim() {
        return Ok(());
    }
    Err(Error::ChecksumMismatch { header: algorithm.header_name() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(algorithm: Algorithm, data: &[u8]) -> String {
        let mut c = Checksummer::new(algorithm);
        c.update(&data[..data.len() / 2]);
        c.update(&data[data.len() / 2..]);
        c.finish()
    }

    #[test]
    fn known_values() {
        // "hello world": values as the AWS SDKs compute them.
        assert_eq!(sum(Algorithm::Crc32, b"hello world"), "DUoRhQ==");
        assert_eq!(sum(Algorithm::Crc32c, b"hello world"), "yZRlqg==");
        assert_eq!(sum(Algorithm::Sha1, b"hello world"), "Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
        assert_eq!(sum(Algorithm::Sha256, b"hello world"), "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=");
    }
}
