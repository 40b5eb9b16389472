//! S3 Bucket Keys: a bucket-level key from the KMS from which each object's data key is derived,
//! so that a run of PUTs costs one GenerateDataKey instead of one per object.
//!
//! The bucket key is a 256-bit data key made by the KMS under the object's KMS key with the
//! bucket's ARN as encryption context (as S3 does), kept in memory for [`BUCKET_KEY_TTL`] of the stack's
//! simulated clock. Each
//! object's data key is `HKDF-SHA256(bucket key, salt = 32 random bytes, info = "kmsim/s3/bucket-key/v1"
//! ‖ object ARN)`. The object's message names it with the encrypted data key entry
//! `provider id = "kmsim-s3-bucket-key"`, `provider info = key ARN`,
//! `ciphertext = salt ‖ KMS ciphertext blob of the bucket key`. Reads ask the KMS to decrypt the
//! bucket key every time, so disabling the KMS key makes the objects unreadable at once; writes
//! use the cached bucket key until it expires (as S3's bucket keys do).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hkdf::Hkdf;
use sha2::Sha256;
use shared::entropy::{Entropy, Purpose};
use shared::{Caller, Clock, KeyService};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Provider id of the encrypted data key entry of an object written with a bucket key.
pub const PROVIDER_ID: &str = "kmsim-s3-bucket-key";
/// How long a bucket key is used for new objects.
pub const BUCKET_KEY_TTL: Duration = Duration::from_secs(300);
const SALT_LEN: usize = 32;
const INFO_PREFIX: &[u8] = b"kmsim/s3/bucket-key/v1";

struct Cached {
    plaintext: Zeroizing<[u8; 32]>,
    blob: Vec<u8>,
    key_arn: String,
    /// When it was made, in Unix milliseconds of the simulated clock.
    made_ms: i64,
}

/// A new object's data key, derived from a bucket key.
pub struct ObjectKey {
    /// The object's data key.
    pub plaintext: Zeroizing<[u8; 32]>,
    /// The encrypted data key entry's ciphertext: salt ‖ bucket key blob.
    pub entry: Vec<u8>,
    /// The KMS key ARN.
    pub key_arn: String,
}

/// The bucket keys in use, by caller account, bucket, KMS key and context.
pub struct BucketKeys {
    cache: Mutex<HashMap<String, Cached>>,
    /// What they age by: the stack's simulated clock, so that a frozen one (`--deterministic`) reuses the same
    /// bucket keys however long a run takes.
    clock: Arc<Clock>,
}

impl Default for BucketKeys {
    fn default() -> Self {
        BucketKeys::new(Arc::new(Clock::wall()))
    }
}

impl BucketKeys {
    /// No bucket keys yet, ageing by `clock`.
    pub fn new(clock: Arc<Clock>) -> Self {
        BucketKeys { cache: Mutex::default(), clock }
    }

    /// Forgets every cached bucket key (their plaintext is zeroized on drop).
    pub fn clear(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl std::fmt::Debug for BucketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BucketKeys(..)")
    }
}

impl BucketKeys {
    /// The data key of a new object, from the cached bucket key or a new one from the KMS.
    pub async fn object_key(
        &self,
        keys: &dyn KeyService,
        caller: &Caller,
        key_id: &str,
        bucket_context: &BTreeMap<String, String>,
        object_arn: &str,
        entropy: &Entropy,
    ) -> Result<ObjectKey> {
        let now_ms = self.clock.now_millis();
        let ttl_ms = i64::try_from(BUCKET_KEY_TTL.as_millis()).unwrap_or(i64::MAX);
        let cache_key =
            format!("{}\n{key_id}\n{}", caller.account_id, serde_json::to_string(bucket_context).unwrap_or_default());
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get(&cache_key)
                .filter(|c| now_ms.saturating_sub(c.made_ms) < ttl_ms)
                .map(|c| (c.plaintext.clone(), c.blob.clone(), c.key_arn.clone()))
        };
        let (bucket_key, blob, key_arn) = match cached {
            Some(hit) => hit,
            None => {
                let data_key = keys.generate_data_key(caller, key_id, bucket_context).await.map_err(Error::Kms)?;
                let entry = Cached {
                    plaintext: data_key.plaintext.clone(),
                    blob: data_key.ciphertext_blob.clone(),
                    key_arn: data_key.key_arn.clone(),
                    made_ms: now_ms,
                };
                self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(cache_key, entry);
                (data_key.plaintext, data_key.ciphertext_blob, data_key.key_arn)
            }
        };
        let salt: [u8; SALT_LEN] = entropy.bytes(Purpose::Nonce);
        let plaintext = derive(&bucket_key, &salt, object_arn)?;
        let mut entry = salt.to_vec();
        entry.extend_from_slice(&blob);
        Ok(ObjectKey { plaintext, entry, key_arn })
    }
}

/// The salt and the bucket key blob of an encrypted data key entry.
pub fn split_entry(entry: &[u8]) -> Option<(&[u8], &[u8])> {
    (entry.len() > SALT_LEN).then(|| entry.split_at(SALT_LEN))
}

/// An object's data key from its bucket key.
pub fn derive(bucket_key: &[u8; 32], salt: &[u8], object_arn: &str) -> Result<Zeroizing<[u8; 32]>> {
    let mut info = INFO_PREFIX.to_vec();
    info.extend_from_slice(object_arn.as_bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), bucket_key).expand(&info, out.as_mut()).map_err(Error::internal)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_depend_on_salt_and_object() {
        let bucket_key = [9u8; 32];
        let a = derive(&bucket_key, &[1; 32], "arn:aws:s3:::b/x").unwrap();
        assert_eq!(*a, *derive(&bucket_key, &[1; 32], "arn:aws:s3:::b/x").unwrap());
        assert_ne!(*a, *derive(&bucket_key, &[2; 32], "arn:aws:s3:::b/x").unwrap());
        assert_ne!(*a, *derive(&bucket_key, &[1; 32], "arn:aws:s3:::b/y").unwrap());
        assert_ne!(*a, *derive(&[8u8; 32], &[1; 32], "arn:aws:s3:::b/x").unwrap());
    }
}
