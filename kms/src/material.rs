//! Key material in memory and at rest: the master key file, and wrapping of each key version's
//! material under it.
//!
//! At rest, material is `nonce ‖ AES-256-GCM(master, material) ‖ tag` (hex), with the AAD
//! `"kmsim/material/v1" ‖ key id ‖ 0x00 ‖ version (u32 BE)`, so a wrapped material copied onto
//! another key or version does not unwrap. In memory, material lives in [`KeyMaterial`], which is
//! zeroized on drop, and in the AES key schedule of a cipher, which `aes` zeroizes on drop.

use std::path::Path;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use rand::RngCore;
use shared::entropy::{Entropy, Purpose};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};

const WRAP_AAD_PREFIX: &[u8] = b"kmsim/material/v1";
const NONCE_LEN: usize = 12;

/// Key material, zeroized on drop and never printed: 32 bytes of AES-256 key, a PKCS #8 private key, or HMAC key
/// bytes (see `crypto`).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyMaterial(Vec<u8>);

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial(..)")
    }
}

impl KeyMaterial {
    /// 32 fresh bytes (an AES-256 key) of the stack's key material stream.
    pub fn generate(entropy: &Entropy) -> Self {
        let mut bytes = vec![0u8; 32];
        entropy.fill(Purpose::KeyMaterial, &mut bytes);
        KeyMaterial(bytes)
    }

    /// 32 bytes from 64 hex digits (seeded keys).
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = vec![0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
        Some(KeyMaterial(bytes))
    }

    /// A copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        KeyMaterial(bytes.to_vec())
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The key that wraps all key material at rest.
pub struct MasterKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A master key of 32 bytes of material.
    pub fn new(material: &KeyMaterial) -> Self {
        MasterKey { cipher: Aes256Gcm::new_from_slice(material.bytes()).expect("master key material is 32 bytes") }
    }

    /// Reads the master key file at `path`, or creates it (mode 0600, fsynced with its directory)
    /// if it does not exist. Refuses a file that group or others may read or write.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        let created = !path.exists();
        let key = shared::secret_file::load_or_create(path, "master key").map_err(Error::Internal)?;
        if created {
            tracing::info!(path = %path.display(), "created a new master key file");
        }
        Ok(MasterKey::new(&KeyMaterial(key.to_vec())))
    }

    /// Encrypts `material` of `key_id` version `version` for storage.
    pub fn wrap(&self, key_id: &str, version: u32, material: &KeyMaterial) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = wrap_aad(key_id, version);
        let sealed = self
            .cipher
            .encrypt((&nonce).into(), Payload { msg: material.bytes(), aad: &aad })
            .expect("AES-GCM encrypts any key material");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        hex::encode(out)
    }

    /// Decrypts stored material; fails if the master key is not the one that wrapped it.
    pub fn unwrap(&self, key_id: &str, version: u32, wrapped: &str) -> Result<KeyMaterial> {
        let bad = || {
            Error::Internal(format!("key material of {key_id} version {version} does not unwrap under this master key"))
        };
        let raw = hex::decode(wrapped).map_err(|_| bad())?;
        if raw.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let aad = wrap_aad(key_id, version);
        let plain = self.cipher.decrypt(nonce.into(), Payload { msg: sealed, aad: &aad }).map_err(|_| bad())?;
        Ok(KeyMaterial(plain))
    }
}

fn wrap_aad(key_id: &str, version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_PREFIX.len() + key_id.len() + 5);
    aad.extend_from_slice(WRAP_AAD_PREFIX);
    aad.extend_from_slice(key_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn wrap_is_bound_to_key_and_version() {
        let master = MasterKey::new(&KeyMaterial::generate(&Entropy::os()));
        let material = KeyMaterial::generate(&Entropy::os());
        let wrapped = master.wrap("k1", 0, &material);
        assert_eq!(master.unwrap("k1", 0, &wrapped).unwrap().bytes(), material.bytes());
        assert!(master.unwrap("k2", 0, &wrapped).is_err());
        assert!(master.unwrap("k1", 1, &wrapped).is_err());
        assert!(MasterKey::new(&KeyMaterial::generate(&Entropy::os())).unwrap("k1", 0, &wrapped).is_err());
    }

    #[test]
    fn master_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let wrapped = first.wrap("k", 0, &KeyMaterial::from_hex(&"ab".repeat(32)).unwrap());
        let second = MasterKey::load_or_create(&path).unwrap();
        assert!(second.unwrap("k", 0, &wrapped).is_ok());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
