//! The KMS ciphertext blob: what Encrypt and GenerateDataKey return and Decrypt accepts.
//!
//! ```text
//! offset        size  field
//! 0             1     format version, 0x01
//! 1             1     n = length of the key id
//! 2             n     key id (ASCII)
//! 2+n           4     key version, big-endian u32 (0 = original material, k = k-th rotation)
//! 6+n           12    AES-GCM nonce
//! 18+n          4     header check: first 4 bytes of SHA-256(bytes 0 .. 18+n)
//! 22+n          m     AES-256-GCM ciphertext of the plaintext
//! 22+n+m        16    AES-GCM tag
//! ```
//!
//! The additional authenticated data is `"kmsim/blob/v1" ‖ header ‖ canonical(context)`, where
//! `canonical` is a count followed by length-prefixed keys and values sorted by key bytes, so that
//! `{"ab":"c"}` and `{"a":"bc"}` are different contexts. The header check is not a security
//! measure (the AAD already authenticates the header): it tells a corrupted key id (an invalid
//! ciphertext) from a well-formed blob whose key no longer exists (not found).
//!
//! Changing this layout breaks every ciphertext kmsim has ever returned: add a version instead.

use std::collections::BTreeMap;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use sha2::{Digest, Sha256};
use shared::entropy::{Entropy, Purpose};

/// The only blob format version so far.
pub const VERSION_1: u8 = 0x01;
/// Bytes of the AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of the AES-GCM tag.
pub const TAG_LEN: usize = 16;
const CHECK_LEN: usize = 4;
const AAD_PREFIX: &[u8] = b"kmsim/blob/v1";

/// An encryption context: string keys to string values, compared exactly.
pub type EncryptionContext = BTreeMap<String, String>;

/// The parsed, not yet authenticated header of a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader<'a> {
    /// The key the blob claims to be encrypted under.
    pub key_id: &'a str,
    /// The version of that key's material.
    pub key_version: u32,
    /// Header bytes (version through nonce), part of the AAD.
    header: &'a [u8],
    /// The AES-GCM nonce.
    nonce: &'a [u8],
    /// Ciphertext followed by the tag.
    sealed: &'a [u8],
}

/// Why a blob could not be parsed. All of these reach clients as an invalid ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// Too short, wrong version, bad lengths or a failed header check.
    #[error("the ciphertext blob is malformed")]
    Malformed,
    /// The tag did not verify: wrong key material, wrong context, or tampering.
    #[error("the ciphertext blob does not authenticate")]
    Unauthenticated,
}

/// Serializes `context` canonically for use as AAD.
pub fn canonical_context(context: &EncryptionContext, out: &mut Vec<u8>) {
    out.extend_from_slice(&(context.len() as u32).to_be_bytes());
    for (key, value) in context {
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
}

fn aad(header: &[u8], context: &EncryptionContext) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + header.len() + 64);
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(header);
    canonical_context(context, &mut aad);
    aad
}

/// Encrypts `plaintext` under `cipher` (the material of `key_id` at `key_version`) with a fresh IV drawn from
/// `entropy`.
pub fn seal(
    cipher: &Aes256Gcm,
    key_id: &str,
    key_version: u32,
    plaintext: &[u8],
    context: &EncryptionContext,
    entropy: &Entropy,
) -> Vec<u8> {
    debug_assert!(key_id.len() <= usize::from(u8::MAX) && key_id.is_ascii());
    let header_len = 2 + key_id.len() + 4 + NONCE_LEN;
    let mut blob = Vec::with_capacity(header_len + CHECK_LEN + plaintext.len() + TAG_LEN);
    blob.push(VERSION_1);
    blob.push(key_id.len() as u8);
    blob.extend_from_slice(key_id.as_bytes());
    blob.extend_from_slice(&key_version.to_be_bytes());
    let nonce: [u8; NONCE_LEN] = entropy.bytes(Purpose::Nonce);
    blob.extend_from_slice(&nonce);
    let check = Sha256::digest(&blob);
    blob.extend_from_slice(&check[..CHECK_LEN]);
    let aad = aad(&blob[..header_len], context);
    let body_start = blob.len();
    blob.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached((&nonce).into(), &aad, &mut blob[body_start..])
        .expect("AES-GCM encrypts any plaintext below 64 GiB");
    blob.extend_from_slice(&tag);
    blob
}

/// Parses a blob's header without authenticating anything.
pub fn parse(blob: &[u8]) -> Result<BlobHeader<'_>, BlobError> {
    let (&version, rest) = blob.split_first().ok_or(BlobError::Malformed)?;
    if version != VERSION_1 {
        return Err(BlobError::Malformed);
    }
    let (&id_len, rest) = rest.split_first().ok_or(BlobError::Malformed)?;
    let id_len = usize::from(id_len);
    let header_len = 2 + id_len + 4 + NONCE_LEN;
    if id_len == 0 || rest.len() < id_len + 4 + NONCE_LEN + CHECK_LEN + TAG_LEN {
        return Err(BlobError::Malformed);
    }
    let (header, after) = blob.split_at(header_len);
    let (check, sealed) = after.split_at(CHECK_LEN);
    if Sha256::digest(header)[..CHECK_LEN] != *check {
        return Err(BlobError::Malformed);
    }
    let key_id = std::str::from_utf8(&header[2..2 + id_len]).map_err(|_| BlobError::Malformed)?;
    let version_bytes: [u8; 4] = header[2 + id_len..6 + id_len].try_into().map_err(|_| BlobError::Malformed)?;
    Ok(BlobHeader {
        key_id,
        key_version: u32::from_be_bytes(version_bytes),
        header,
        nonce: &header[6 + id_len..],
        sealed,
    })
}

impl BlobHeader<'_> {
    /// Decrypts and authenticates the blob with the material its header names.
    pub fn open(
        &self,
        cipher: &Aes256Gcm,
        context: &EncryptionContext,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, BlobError> {
        let aad = aad(self.header, context);
        let (ciphertext, tag) = self.sealed.split_at(self.sealed.len() - TAG_LEN);
        let mut plaintext = zeroize::Zeroizing::new(ciphertext.to_vec());
        cipher
            .decrypt_in_place_detached(self.nonce.into(), &aad, &mut plaintext, tag.into())
            .map_err(|_| BlobError::Unauthenticated)?;
        Ok(plaintext)
    }
}

/// An AES-256-GCM cipher for 32 bytes of key material.
pub fn cipher(material: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(material.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore};

    fn context(pairs: &[(&str, &str)]) -> EncryptionContext {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn open(blob: &[u8], cipher: &Aes256Gcm, ctx: &EncryptionContext) -> Result<Vec<u8>, BlobError> {
        parse(blob)?.open(cipher, ctx).map(|p| p.to_vec())
    }

    #[test]
    fn round_trip() {
        let c = cipher(&[7; 32]);
        let ctx = context(&[("purpose", "test")]);
        let blob = seal(&c, "1234abcd-12ab-34cd-56ef-1234567890ab", 3, b"hello", &ctx, &Entropy::os());
        let header = parse(&blob).unwrap();
        assert_eq!(header.key_id, "1234abcd-12ab-34cd-56ef-1234567890ab");
        assert_eq!(header.key_version, 3);
        assert_eq!(open(&blob, &c, &ctx).unwrap(), b"hello");
    }

    #[test]
    fn context_is_exact_and_unambiguous() {
        let c = cipher(&[7; 32]);
        let blob = seal(&c, "k", 0, b"x", &context(&[("ab", "c")]), &Entropy::os());
        assert_eq!(open(&blob, &c, &context(&[("a", "bc")])), Err(BlobError::Unauthenticated));
        assert_eq!(open(&blob, &c, &context(&[("AB", "c")])), Err(BlobError::Unauthenticated));
        assert_eq!(open(&blob, &c, &context(&[])), Err(BlobError::Unauthenticated));
        assert_eq!(open(&blob, &c, &context(&[("ab", "c"), ("d", "")])), Err(BlobError::Unauthenticated));
        assert!(open(&blob, &c, &context(&[("ab", "c")])).is_ok());
    }

    #[test]
    fn wrong_material_is_refused() {
        let blob = seal(&cipher(&[7; 32]), "k", 0, b"x", &context(&[]), &Entropy::os());
        assert_eq!(open(&blob, &cipher(&[8; 32]), &context(&[])), Err(BlobError::Unauthenticated));
    }

    /// Property: for random keys, plaintexts and contexts, every single-bit flip and every
    /// truncation of a blob is refused, and arbitrary bytes never panic.
    #[test]
    fn every_bit_flip_and_truncation_is_refused() {
        let mut rng = rand::thread_rng();
        for _ in 0..24 {
            let mut material = [0u8; 32];
            rng.fill_bytes(&mut material);
            let c = cipher(&material);
            let len = rng.gen_range(0..200);
            let mut plaintext = vec![0u8; len];
            rng.fill_bytes(&mut plaintext);
            let ctx = context(&[("k", &hex::encode(&plaintext[..len.min(4)]))]);
            let key_id = uuid::Uuid::new_v4().to_string();
            let blob = seal(&c, &key_id, rng.r#gen(), &plaintext, &ctx, &Entropy::os());
            assert_eq!(open(&blob, &c, &ctx).unwrap(), plaintext);
            for bit in 0..blob.len() * 8 {
                let mut flipped = blob.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(open(&flipped, &c, &ctx).is_err(), "flip of bit {bit} accepted");
            }
            for cut in 0..blob.len() {
                assert!(open(&blob[..cut], &c, &ctx).is_err(), "truncation to {cut} accepted");
            }
            let mut noise = vec![0u8; rng.gen_range(0..300)];
            rng.fill_bytes(&mut noise);
            let _ = open(&noise, &c, &ctx);
        }
    }
}
