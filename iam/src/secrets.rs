//! Secrets of access keys at rest: AES-256-GCM under the identity store's own key (`iam.key` in the data dir,
//! mode 0600, or a random key in memory), with the access key id as associated data so that a wrapped secret
//! moved to another key does not unwrap. Plaintext secrets live only in memory, zeroized on drop.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const NONCE_LEN: usize = 12;

/// The key that wraps access key secrets.
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// The box of these 32 bytes.
    pub fn new(key: &[u8; 32]) -> Self {
        SecretBox { cipher: Aes256Gcm::new(key.into()) }
    }

    /// A box with a fresh random key (in-memory stores).
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self::new(&key)
    }

    /// `secret` of access key `key_id`, wrapped: base64 of nonce ‖ ciphertext ‖ tag.
    pub fn wrap(&self, key_id: &str, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt((&nonce).into(), Payload { msg: secret.as_bytes(), aad: key_id.as_bytes() })
            .expect("AES-GCM encrypts a short secret");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        BASE64.encode(out)
    }

    /// The secret of access key `key_id` from its wrapped form.
    pub fn unwrap(&self, key_id: &str, wrapped: &str) -> Result<Zeroizing<String>> {
        let bad = || {
            Error::Internal(format!("the stored secret of access key {key_id} does not unwrap (was iam.key replaced?)"))
        };
        let bytes = BASE64.decode(wrapped).map_err(|_| bad())?;
        if bytes.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = Zeroizing::new(
            self.cipher.decrypt(nonce.into(), Payload { msg: sealed, aad: key_id.as_bytes() }).map_err(|_| bad())?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| bad())?;
        Ok(Zeroizing::new(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_unwrap_only_under_their_key_id() {
        let secrets = SecretBox::generate();
        let wrapped = secrets.wrap("AKIA1", "s3cr3t");
        assert!(!wrapped.contains("s3cr3t"));
        assert_eq!(secrets.unwrap("AKIA1", &wrapped).unwrap().as_str(), "s3cr3t");
        assert!(secrets.unwrap("AKIA2", &wrapped).is_err());
        assert!(SecretBox::generate().unwrap("AKIA1", &wrapped).is_err());
        assert!(secrets.unwrap("AKIA1", "!!").is_err());
    }
}
