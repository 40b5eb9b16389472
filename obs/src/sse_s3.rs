//! SSE-S3 (`AES256`): objects encrypted under data keys that the object store itself wraps with
//! its service key, without the KMS (as S3 does).
//!
//! Each object gets a random 256-bit data key; its message's encrypted data key entry is
//! `provider id = "kmsim-sse-s3"`, `provider info = "sse-s3/v1"`,
//! `ciphertext = nonce (12) ‖ AES-256-GCM(service key, data key) ‖ tag (16)` with the object's ARN
//! as AAD, so an entry moved to another object does not unwrap. The service key lives in
//! `<data dir>/sse-s3.key` (mode 0600), or in memory only with `--in-memory`.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use shared::entropy::{Entropy, Purpose};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Provider id of the encrypted data key entry of an SSE-S3 object.
pub const PROVIDER_ID: &str = "kmsim-sse-s3";
/// Provider info of that entry (the wrapping scheme's version).
pub const PROVIDER_INFO: &str = "sse-s3/v1";
const NONCE_LEN: usize = 12;

/// The object store's own key for SSE-S3.
pub struct SseS3Key {
    cipher: Aes256Gcm,
    /// The key itself, for a state export ([`SseS3Key::bytes`]); zeroized on drop.
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SseS3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SseS3Key(..)")
    }
}

impl SseS3Key {
    /// The service key of these 32 bytes.
    pub fn new(key: &[u8; 32]) -> Self {
        SseS3Key { cipher: Aes256Gcm::new(key.into()), key: Zeroizing::new(*key) }
    }

    /// A fresh service key from `entropy` (in-memory stores).
    pub fn generate(entropy: &Entropy) -> Self {
        Self::new(&entropy.secret::<32>(Purpose::ObjectKey))
    }

    /// The key's 32 bytes (for a state archive, which wraps them under its own key).
    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// A fresh data key for the object `object_arn` from `entropy`, and its wrapped form.
    pub fn new_data_key(&self, object_arn: &str, entropy: &Entropy) -> (Zeroizing<[u8; 32]>, Vec<u8>) {
        let data_key = entropy.secret::<32>(Purpose::DataKey);
        let nonce: [u8; NONCE_LEN] = entropy.bytes(Purpose::Nonce);
        let sealed = self
            .cipher
            .encrypt((&nonce).into(), Payload { msg: data_key.as_ref(), aad: object_arn.as_bytes() })
            .expect("AES-GCM encrypts 32 bytes");
        let mut entry = nonce.to_vec();
        entry.extend_from_slice(&sealed);
        (data_key, entry)
    }

    /// Unwraps the data key of the object `object_arn`.
    pub fn unwrap(&self, entry: &[u8], object_arn: &str) -> Result<Zeroizing<[u8; 32]>> {
        let bad = || Error::internal(format!("the SSE-S3 data key of {object_arn} does not unwrap"));
        if entry.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, sealed) = entry.split_at(NONCE_LEN);
        let plain = Zeroizing::new(
            self.cipher
                .decrypt(nonce.into(), Payload { msg: sealed, aad: object_arn.as_bytes() })
                .map_err(|_| bad())?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(bad());
        }
        key.copy_from_slice(&plain);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_keys_are_bound_to_the_object_and_the_service_key() {
        let key = SseS3Key::generate(&Entropy::os());
        let (data_key, entry) = key.new_data_key("arn:aws:s3:::b/k", &Entropy::os());
        assert_eq!(*key.unwrap(&entry, "arn:aws:s3:::b/k").unwrap(), *data_key);
        assert!(key.unwrap(&entry, "arn:aws:s3:::b/other").is_err());
        assert!(SseS3Key::generate(&Entropy::os()).unwrap(&entry, "arn:aws:s3:::b/k").is_err());
        assert!(key.unwrap(&entry[..20], "arn:aws:s3:::b/k").is_err());
    }
}
