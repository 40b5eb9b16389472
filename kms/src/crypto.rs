//! The cryptography of one key version, built once from its material: AES-256-GCM for symmetric keys, RSA
//! (OAEP, PKCS #1 v1.5 and PSS signatures), ECDSA, ECDH and HMAC from `aws-lc-rs`.
//!
//! `aws-lc-rs` rather than RustCrypto's `rsa`: RSA decryption and signing there are still the variable-time code of
//! RUSTSEC-2023-0071 (Marvin), while AWS-LC's are constant-time; AWS-LC also has every curve KMS offers (P-256,
//! P-384, P-521, secp256k1), signing of precomputed digests, and static ECDH. AWS-LC clears private key bignums when
//! a key is freed; the PKCS #8 bytes kmsim holds are in [`KeyMaterial`], zeroized on drop.
//!
//! Under `--deterministic`, what AWS-LC would draw from its own generator (ECDSA nonces, RSA-PSS salts, RSA-OAEP
//! seeds) comes from the seeded stream instead, through RustCrypto ([`seeded`]).

mod seeded;

use std::sync::OnceLock;

use aes_gcm::Aes256Gcm;
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, ParsedPublicKey, RsaEncoding, VerificationAlgorithm,
};
use aws_lc_rs::{agreement, digest, hmac, rand as lc_rand};
use rand::RngCore;
use shared::entropy::{Entropy, EntropyRng, Purpose};
use zeroize::Zeroizing;

use crate::blob;
use crate::error::{Error, Result};
use crate::material::KeyMaterial;
use crate::spec::{Digest, EncryptionAlgorithm, Family, KeySpec, KeyUsage, MessageType, SigningAlgorithm};

/// What Sign and Verify work on.
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    /// The message or its digest.
    pub bytes: &'a [u8],
    /// Which of the two `bytes` is.
    pub message_type: MessageType,
}

/// A key version, ready to use. Always held in an `Arc`, so its size does not matter; the AES key schedule stays
/// inline, one pointer away from the request path.
#[allow(clippy::large_enum_variant)]
pub enum VersionKey {
    /// AES-256-GCM for kmsim's ciphertext blobs.
    Symmetric(Aes256Gcm),
    /// An RSA key for OAEP encryption.
    RsaEncrypt {
        /// The private key.
        private: OaepPrivateDecryptingKey,
        /// The public key.
        public: OaepPublicEncryptingKey,
        /// DER SubjectPublicKeyInfo.
        spki: Box<[u8]>,
    },
    /// An RSA key for signing.
    RsaSign {
        /// The key pair.
        pair: signature::RsaKeyPair,
        /// DER SubjectPublicKeyInfo.
        spki: Box<[u8]>,
        /// The public key parsed for each signing algorithm, on first use.
        verifiers: RsaVerifiers,
    },
    /// An ECDSA key.
    Ecdsa {
        /// The curve.
        spec: KeySpec,
        /// The key pair.
        pair: EcdsaKeyPair,
        /// DER SubjectPublicKeyInfo.
        spki: Box<[u8]>,
        /// The public key parsed for the curve's one signing algorithm.
        verifier: ParsedPublicKey,
    },
    /// An ECDH key.
    Ecdh {
        /// The static private key.
        private: agreement::PrivateKey,
        /// DER SubjectPublicKeyInfo.
        spki: Box<[u8]>,
    },
    /// An HMAC key.
    Hmac(hmac::Key),
}

/// An RSA signing key's public key parsed once per verification algorithm: parsing it on every Verify costs about
/// a sixth of the verification (`scripts/bench-sign`).
#[derive(Default)]
pub struct RsaVerifiers([OnceLock<ParsedPublicKey>; RSA_SIGNING_ALGORITHMS]);

const RSA_SIGNING_ALGORITHMS: usize = 6;

impl RsaVerifiers {
    /// The parsed key for `algorithm`, parsed now if it is the first use.
    fn get(&self, public_key: &[u8], algorithm: SigningAlgorithm) -> Result<&ParsedPublicKey> {
        let (slot, verification) = rsa_verification(algorithm).ok_or_else(|| internal("not an RSA algorithm"))?;
        if let Some(parsed) = self.0[slot].get() {
            return Ok(parsed);
        }
        let parsed = ParsedPublicKey::new(verification, public_key).map_err(|_| internal("an RSA public key"))?;
        Ok(self.0[slot].get_or_init(|| parsed))
    }
}

impl std::fmt::Debug for VersionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VersionKey(..)")
    }
}

fn internal(what: &str) -> Error {
    Error::Internal(format!("key material: {what}"))
}

fn ecdsa_algorithm(spec: KeySpec) -> Option<&'static EcdsaSigningAlgorithm> {
    match spec {
        KeySpec::EccNistP256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
        KeySpec::EccNistP384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
        KeySpec::EccNistP521 => Some(&signature::ECDSA_P521_SHA512_ASN1_SIGNING),
        KeySpec::EccSecgP256k1 => Some(&signature::ECDSA_P256K1_SHA256_ASN1_SIGNING),
        _ => None,
    }
}

fn ecdh_algorithm(spec: KeySpec) -> Option<&'static agreement::Algorithm> {
    match spec {
        KeySpec::EccNistP256 => Some(&agreement::ECDH_P256),
        KeySpec::EccNistP384 => Some(&agreement::ECDH_P384),
        KeySpec::EccNistP521 => Some(&agreement::ECDH_P521),
        _ => None,
    }
}

fn lc_digest(digest: Digest) -> &'static digest::Algorithm {
    match digest {
        Digest::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        Digest::Sha224 => &digest::SHA224,
        Digest::Sha256 => &digest::SHA256,
        Digest::Sha384 => &digest::SHA384,
        Digest::Sha512 => &digest::SHA512,
    }
}

fn oaep(algorithm: EncryptionAlgorithm) -> Option<&'static OaepAlgorithm> {
    match algorithm {
        EncryptionAlgorithm::RsaesOaepSha1 => Some(&OAEP_SHA1_MGF1SHA1),
        EncryptionAlgorithm::RsaesOaepSha256 => Some(&OAEP_SHA256_MGF1SHA256),
        EncryptionAlgorithm::SymmetricDefault => None,
    }
}

fn der(public: &impl AsDer<PublicKeyX509Der<'static>>) -> Result<Box<[u8]>> {
    Ok(public.as_der().map_err(|_| internal("encoding a public key"))?.as_ref().into())
}

/// Fresh material for a key of `spec`, one draw of `purpose` from `entropy`: 32 AES bytes, a PKCS #8 private key,
/// or HMAC key bytes.
///
/// From the OS, AWS-LC generates key pairs. AWS-LC cannot draw from a given generator, so from a seed
/// ([`Entropy::is_deterministic`]) RSA keys are generated by RustCrypto's `rsa` ([`generate_rsa_seeded`]) and EC
/// keys are a scalar from the stream that AWS-LC completes ([`generate_ec_seeded`]); AWS-LC uses both after.
pub fn generate(spec: KeySpec, entropy: &Entropy, purpose: Purpose) -> Result<KeyMaterial> {
    match spec.family() {
        Family::Symmetric | Family::Hmac => {
            let mut bytes = Zeroizing::new(vec![0u8; spec.hmac_key_bytes().unwrap_or(32)]);
            entropy.fill(purpose, &mut bytes);
            Ok(KeyMaterial::from_bytes(&bytes))
        }
        Family::Rsa => {
            let (size, bits) = match spec {
                KeySpec::Rsa2048 => (KeySize::Rsa2048, 2048),
                KeySpec::Rsa3072 => (KeySize::Rsa3072, 3072),
                _ => (KeySize::Rsa4096, 4096),
            };
            if entropy.is_deterministic() {
                return generate_rsa_seeded(&mut entropy.rng(purpose), bits);
            }
            let pair = signature::RsaKeyPair::generate(size).map_err(|_| internal("generating an RSA key"))?;
            let pkcs8 = pair.as_der().map_err(|_| internal("encoding an RSA key"))?;
            Ok(KeyMaterial::from_bytes(pkcs8.as_ref()))
        }
        Family::Ecc => {
            let algorithm = ecdsa_algorithm(spec).ok_or_else(|| internal("no curve"))?;
            if entropy.is_deterministic() {
                return generate_ec_seeded(algorithm, &mut entropy.rng(purpose));
            }
            let pair = EcdsaKeyPair::generate(algorithm).map_err(|_| internal("generating an EC key"))?;
            let pkcs8 = pair.to_pkcs8v1().map_err(|_| internal("encoding an EC key"))?;
            Ok(KeyMaterial::from_bytes(pkcs8.as_ref()))
        }
    }
}

/// An RSA private key of `bits` (public exponent 65537) as PKCS #8, generated by RustCrypto's `rsa` from `rng`.
/// Only the generation is RustCrypto's: the key is used through AWS-LC (constant-time, unlike `rsa`'s private
/// operations, RUSTSEC-2023-0071).
pub fn generate_rsa_seeded(rng: &mut EntropyRng, bits: usize) -> Result<KeyMaterial> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(rng, bits).map_err(|_| internal("generating an RSA key"))?;
    // `SecretDocument` zeroizes its bytes on drop; the key's bignums are zeroized by `rsa` on drop.
    let pkcs8 = key.to_pkcs8_der().map_err(|_| internal("encoding an RSA key"))?;
    Ok(KeyMaterial::from_bytes(pkcs8.as_bytes()))
}

/// An EC private key on `algorithm`'s curve as PKCS #8: a scalar from `rng`, which AWS-LC checks (0 < d < n,
/// else the next scalar) and completes with its public point.
fn generate_ec_seeded(algorithm: &'static EcdsaSigningAlgorithm, rng: &mut EntropyRng) -> Result<KeyMaterial> {
    let p521 = std::ptr::eq(algorithm, &signature::ECDSA_P521_SHA512_ASN1_SIGNING);
    let p384 = std::ptr::eq(algorithm, &signature::ECDSA_P384_SHA384_ASN1_SIGNING);
    let len: u8 = if p521 {
        66
    } else if p384 {
        48
    } else {
        32
    };
    // A scalar of the order's length is below it with a probability of at least 1 - 2^-32 on these curves.
    for _ in 0..16 {
        // RFC 5915 ECPrivateKey { version 1, privateKey } (parameters and public key are optional; AWS-LC
        // computes the public key).
        let mut der = Zeroizing::new(vec![0x30, 5 + len, 0x02, 0x01, 0x01, 0x04, len]);
        der.resize(7 + usize::from(len), 0);
        rng.fill_bytes(&mut der[7..]);
        if p521 {
            der[7] &= 0x01; // 521 bits
        }
        if let Ok(pair) = EcdsaKeyPair::from_private_key_der(algorithm, &der) {
            let pkcs8 = pair.to_pkcs8v1().map_err(|_| internal("encoding an EC key"))?;
            return Ok(KeyMaterial::from_bytes(pkcs8.as_ref()));
        }
    }
    Err(internal("generating an EC key"))
}

/// The public key (DER SubjectPublicKeyInfo) of PKCS #8 `material` of `spec`, for a data key pair.
pub fn public_key_of(spec: KeySpec, material: &KeyMaterial) -> Result<Box<[u8]>> {
    match spec.family() {
        Family::Rsa => {
            let pair = signature::RsaKeyPair::from_pkcs8(material.bytes()).map_err(|_| internal("an RSA key"))?;
            der(pair.public_key())
        }
        Family::Ecc => {
            let algorithm = ecdsa_algorithm(spec).ok_or_else(|| internal("no curve"))?;
            let pair = EcdsaKeyPair::from_pkcs8(algorithm, material.bytes()).map_err(|_| internal("an EC key"))?;
            der(pair.public_key())
        }
        Family::Symmetric | Family::Hmac => Err(internal("no public key")),
    }
}

impl VersionKey {
    /// Builds the key of `spec` and `usage` from its material; fails if the material is not of that kind.
    pub fn new(spec: KeySpec, usage: KeyUsage, material: &KeyMaterial) -> Result<Self> {
        let bytes = material.bytes();
        match (spec.family(), usage) {
            (Family::Symmetric, _) => {
                let key: &[u8; 32] = bytes.try_into().map_err(|_| internal("not 32 bytes"))?;
                Ok(VersionKey::Symmetric(blob::cipher(key)))
            }
            (Family::Hmac, _) => {
                let algorithm = match spec {
                    KeySpec::Hmac224 => hmac::HMAC_SHA224,
                    KeySpec::Hmac256 => hmac::HMAC_SHA256,
                    KeySpec::Hmac384 => hmac::HMAC_SHA384,
                    _ => hmac::HMAC_SHA512,
                };
                Ok(VersionKey::Hmac(hmac::Key::new(algorithm, bytes)))
            }
            (Family::Rsa, KeyUsage::EncryptDecrypt) => {
                let private = PrivateDecryptingKey::from_pkcs8(bytes).map_err(|_| internal("not an RSA key"))?;
                check_rsa_size(spec, private.key_size_bytes())?;
                let public_key = private.public_key();
                let spki = der(&public_key)?;
                let public = OaepPublicEncryptingKey::new(public_key).map_err(|_| internal("an RSA public key"))?;
                let private = OaepPrivateDecryptingKey::new(private).map_err(|_| internal("an RSA private key"))?;
                Ok(VersionKey::RsaEncrypt { private, public, spki })
            }
            (Family::Rsa, _) => {
                let pair = signature::RsaKeyPair::from_pkcs8(bytes).map_err(|_| internal("not an RSA key"))?;
                check_rsa_size(spec, pair.public_modulus_len())?;
                let spki = der(pair.public_key())?;
                Ok(VersionKey::RsaSign { pair, spki, verifiers: RsaVerifiers::default() })
            }
            (Family::Ecc, KeyUsage::KeyAgreement) => {
                let algorithm = ecdh_algorithm(spec).ok_or_else(|| internal("no ECDH on this curve"))?;
                let private = agreement::PrivateKey::from_private_key_der(algorithm, bytes)
                    .map_err(|_| internal("not an EC key"))?;
                let spki = der(&private.compute_public_key().map_err(|_| internal("an EC public key"))?)?;
                Ok(VersionKey::Ecdh { private, spki })
            }
            (Family::Ecc, _) => {
                let algorithm = ecdsa_algorithm(spec).ok_or_else(|| internal("no curve"))?;
                let pair = EcdsaKeyPair::from_pkcs8(algorithm, bytes).map_err(|_| internal("not an EC key"))?;
                let spki = der(pair.public_key())?;
                let verifier = ParsedPublicKey::new(ecdsa_verification(algorithm), pair.public_key().as_ref())
                    .map_err(|_| internal("an EC public key"))?;
                Ok(VersionKey::Ecdsa { spec, pair, spki, verifier })
            }
        }
    }

    /// The AES-GCM cipher of a symmetric key.
    pub fn symmetric(&self) -> Option<&Aes256Gcm> {
        match self {
            VersionKey::Symmetric(cipher) => Some(cipher),
            _ => None,
        }
    }

    /// The DER SubjectPublicKeyInfo of an asymmetric key.
    pub fn public_key(&self) -> Option<&[u8]> {
        match self {
            VersionKey::RsaEncrypt { spki, .. }
            | VersionKey::RsaSign { spki, .. }
            | VersionKey::Ecdsa { spki, .. }
            | VersionKey::Ecdh { spki, .. } => Some(spki),
            VersionKey::Symmetric(_) | VersionKey::Hmac(_) => None,
        }
    }

    /// Signs; the caller has checked that `algorithm` belongs to the key and the input's length. From a seed, ECDSA
    /// and RSA-PSS draw their randomness from `entropy` ([`seeded`]).
    pub fn sign(&self, algorithm: SigningAlgorithm, input: SignInput<'_>, entropy: &Entropy) -> Result<Vec<u8>> {
        let failed = || internal("signing failed");
        let digest = || {
            digest::Digest::import_less_safe(input.bytes, lc_digest(algorithm.digest()))
                .map_err(|_| internal("digest length"))
        };
        // What a seeded signature signs: the given digest, or the message's.
        let hashed = || match input.message_type {
            MessageType::Raw => Ok(digest::digest(lc_digest(algorithm.digest()), input.bytes)),
            MessageType::Digest => digest(),
        };
        match self {
            VersionKey::RsaSign { pair, .. } if entropy.is_deterministic() && algorithm.is_pss() => {
                let (pkcs8, hashed) = (pair.as_der().map_err(|_| internal("encoding an RSA key"))?, hashed()?);
                let mut rng = entropy.rng(Purpose::Signature);
                seeded::pss_sign(pkcs8.as_ref(), algorithm.digest(), hashed.as_ref(), &mut rng)
            }
            VersionKey::RsaSign { pair, .. } => {
                let encoding = rsa_encoding(algorithm).ok_or_else(failed)?;
                let mut signature = vec![0u8; pair.public_modulus_len()];
                match input.message_type {
                    MessageType::Raw => pair
                        .sign(encoding, &lc_rand::SystemRandom::new(), input.bytes, &mut signature)
                        .map_err(|_| failed())?,
                    MessageType::Digest => {
                        pair.sign_digest(encoding, &digest()?, &mut signature).map_err(|_| failed())?
                    }
                }
                Ok(signature)
            }
            VersionKey::Ecdsa { spec, pair, .. } if entropy.is_deterministic() => {
                let (pkcs8, hashed) = (pair.to_pkcs8v1().map_err(|_| internal("encoding an EC key"))?, hashed()?);
                let mut rng = entropy.rng(Purpose::Signature);
                seeded::ecdsa_sign(*spec, pkcs8.as_ref(), hashed.as_ref(), &mut rng)
            }
            VersionKey::Ecdsa { pair, .. } => {
                let signature = match input.message_type {
                    MessageType::Raw => pair.sign(&lc_rand::SystemRandom::new(), input.bytes),
                    MessageType::Digest => pair.sign_digest(&digest()?),
                }
                .map_err(|_| failed())?;
                Ok(signature.as_ref().to_vec())
            }
            _ => Err(internal("not a signing key")),
        }
    }

    /// Whether `signature` is valid for the input under `algorithm`.
    pub fn verify(&self, algorithm: SigningAlgorithm, input: SignInput<'_>, signature: &[u8]) -> Result<bool> {
        let key = match self {
            VersionKey::RsaSign { pair, verifiers, .. } => verifiers.get(pair.public_key().as_ref(), algorithm)?,
            VersionKey::Ecdsa { verifier, .. } => verifier,
            _ => return Err(internal("not a signing key")),
        };
        let valid = match input.message_type {
            MessageType::Raw => key.verify_sig(input.bytes, signature).is_ok(),
            MessageType::Digest => {
                let digest = digest::Digest::import_less_safe(input.bytes, lc_digest(algorithm.digest()))
                    .map_err(|_| internal("digest length"))?;
                key.verify_digest_sig(&digest, signature).is_ok()
            }
        };
        Ok(valid)
    }

    /// The largest plaintext RSA OAEP with `algorithm` encrypts under this key.
    pub fn max_plaintext(&self, algorithm: EncryptionAlgorithm) -> Option<usize> {
        match self {
            VersionKey::RsaEncrypt { public, .. } => oaep(algorithm).map(|a| public.max_plaintext_size(a)),
            _ => None,
        }
    }

    /// RSA OAEP encryption; the caller has checked the plaintext's length. From a seed, the OAEP seed comes from
    /// `entropy` ([`seeded`]).
    pub fn rsa_encrypt(&self, algorithm: EncryptionAlgorithm, plaintext: &[u8], entropy: &Entropy) -> Result<Vec<u8>> {
        let (VersionKey::RsaEncrypt { public, spki, .. }, Some(oaep)) = (self, oaep(algorithm)) else {
            return Err(internal("not an RSA encryption key"));
        };
        if entropy.is_deterministic() {
            return seeded::oaep_encrypt(spki, algorithm, plaintext, &mut entropy.rng(Purpose::Signature));
        }
        let mut out = vec![0u8; public.ciphertext_size()];
        let len = public.encrypt(oaep, plaintext, &mut out, None).map_err(|_| internal("RSA encryption failed"))?.len();
        out.truncate(len);
        Ok(out)
    }

    /// RSA OAEP decryption; `None` when the ciphertext does not decrypt.
    pub fn rsa_decrypt(&self, algorithm: EncryptionAlgorithm, ciphertext: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (VersionKey::RsaEncrypt { private, .. }, Some(oaep)) = (self, oaep(algorithm)) else {
            return None;
        };
        let mut out = Zeroizing::new(vec![0u8; private.min_output_size()]);
        let len = private.decrypt(oaep, ciphertext, &mut out, None).ok()?.len();
        out.truncate(len);
        Some(out)
    }

    /// The HMAC of `message`.
    pub fn mac(&self, message: &[u8]) -> Result<Vec<u8>> {
        match self {
            VersionKey::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
            _ => Err(internal("not an HMAC key")),
        }
    }

    /// Whether `mac` is the HMAC of `message` (in constant time).
    pub fn verify_mac(&self, message: &[u8], mac: &[u8]) -> Result<bool> {
        match self {
            VersionKey::Hmac(key) => Ok(hmac::verify(key, message, mac).is_ok()),
            _ => Err(internal("not an HMAC key")),
        }
    }

    /// ECDH with the peer's public key (DER SubjectPublicKeyInfo): the shared secret, or `None` when the public key
    /// is not a point of this key's curve.
    pub fn derive_shared_secret(&self, peer_spki: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let VersionKey::Ecdh { private, .. } = self else {
            return Err(internal("not a key agreement key"));
        };
        // AWS takes only a DER SubjectPublicKeyInfo, not the bare points AWS-LC also reads.
        let peer = agreement::UnparsedPublicKey::new(private.algorithm(), peer_spki);
        let parsed = match agreement::ParsedPublicKey::try_from(&peer) {
            Ok(parsed) if matches!(parsed.format(), agreement::ParsedPublicKeyFormat::X509) => parsed,
            _ => return Ok(None),
        };
        Ok(agreement::agree(private, parsed, (), |secret| Ok(Zeroizing::new(secret.to_vec()))).ok())
    }
}

fn check_rsa_size(spec: KeySpec, modulus_bytes: usize) -> Result<()> {
    if spec.rsa_modulus_bytes() == Some(modulus_bytes) { Ok(()) } else { Err(internal("RSA key of another size")) }
}

fn rsa_encoding(algorithm: SigningAlgorithm) -> Option<&'static dyn RsaEncoding> {
    use SigningAlgorithm::*;
    Some(match algorithm {
        RsassaPssSha256 => &signature::RSA_PSS_SHA256,
        RsassaPssSha384 => &signature::RSA_PSS_SHA384,
        RsassaPssSha512 => &signature::RSA_PSS_SHA512,
        RsassaPkcs1V15Sha256 => &signature::RSA_PKCS1_SHA256,
        RsassaPkcs1V15Sha384 => &signature::RSA_PKCS1_SHA384,
        RsassaPkcs1V15Sha512 => &signature::RSA_PKCS1_SHA512,
        EcdsaSha256 | EcdsaSha384 | EcdsaSha512 => return None,
    })
}

/// An RSA signing algorithm's slot in [`RsaVerifiers`] and its verification algorithm.
fn rsa_verification(algorithm: SigningAlgorithm) -> Option<(usize, &'static dyn VerificationAlgorithm)> {
    use SigningAlgorithm::*;
    Some(match algorithm {
        RsassaPssSha256 => (0, &signature::RSA_PSS_2048_8192_SHA256),
        RsassaPssSha384 => (1, &signature::RSA_PSS_2048_8192_SHA384),
        RsassaPssSha512 => (2, &signature::RSA_PSS_2048_8192_SHA512),
        RsassaPkcs1V15Sha256 => (3, &signature::RSA_PKCS1_2048_8192_SHA256),
        RsassaPkcs1V15Sha384 => (4, &signature::RSA_PKCS1_2048_8192_SHA384),
        RsassaPkcs1V15Sha512 => (5, &signature::RSA_PKCS1_2048_8192_SHA512),
        EcdsaSha256 | EcdsaSha384 | EcdsaSha512 => return None,
    })
}

fn ecdsa_verification(signing: &'static EcdsaSigningAlgorithm) -> &'static signature::EcdsaVerificationAlgorithm {
    if std::ptr::eq(signing, &signature::ECDSA_P384_SHA384_ASN1_SIGNING) {
        &signature::ECDSA_P384_SHA384_ASN1
    } else if std::ptr::eq(signing, &signature::ECDSA_P521_SHA512_ASN1_SIGNING) {
        &signature::ECDSA_P521_SHA512_ASN1
    } else if std::ptr::eq(signing, &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING) {
        &signature::ECDSA_P256K1_SHA256_ASN1
    } else {
        &signature::ECDSA_P256_SHA256_ASN1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signing_spec_signs_and_verifies_raw_and_digest() {
        for spec in
            [KeySpec::Rsa2048, KeySpec::EccNistP256, KeySpec::EccNistP384, KeySpec::EccNistP521, KeySpec::EccSecgP256k1]
        {
            let key = VersionKey::new(
                spec,
                KeyUsage::SignVerify,
                &generate(spec, &Entropy::os(), Purpose::KeyMaterial).unwrap(),
            )
            .unwrap();
            for &algorithm in spec.signing_algorithms(KeyUsage::SignVerify) {
                let message = b"kmsim signs this";
                let raw = SignInput { bytes: message, message_type: MessageType::Raw };
                let signature = key.sign(algorithm, raw, &Entropy::os()).unwrap();
                assert!(key.verify(algorithm, raw, &signature).unwrap(), "{spec:?} {algorithm:?}");
                let hashed = digest::digest(lc_digest(algorithm.digest()), message);
                let digest = SignInput { bytes: hashed.as_ref(), message_type: MessageType::Digest };
                assert!(key.verify(algorithm, digest, &signature).unwrap(), "{spec:?} {algorithm:?} digest");
                let other = SignInput { bytes: b"kmsim signs that", message_type: MessageType::Raw };
                assert!(!key.verify(algorithm, other, &signature).unwrap());
            }
        }
    }

    #[test]
    fn seeded_key_pairs_repeat_per_seed_and_work() {
        let specs = [
            KeySpec::Rsa2048,
            KeySpec::EccNistP256,
            KeySpec::EccNistP384,
            KeySpec::EccNistP521,
            KeySpec::EccSecgP256k1,
        ];
        let (a, b, c) = (Entropy::deterministic(b"s"), Entropy::deterministic(b"s"), Entropy::deterministic(b"t"));
        for spec in specs {
            let material = generate(spec, &a, Purpose::KeyMaterial).unwrap();
            assert_eq!(material.bytes(), generate(spec, &b, Purpose::KeyMaterial).unwrap().bytes(), "{spec:?}");
            assert_ne!(material.bytes(), generate(spec, &c, Purpose::KeyMaterial).unwrap().bytes(), "{spec:?}");
            let key = VersionKey::new(spec, KeyUsage::SignVerify, &material).unwrap();
            let algorithm = spec.signing_algorithms(KeyUsage::SignVerify)[0];
            let raw = SignInput { bytes: b"m", message_type: MessageType::Raw };
            assert!(key.verify(algorithm, raw, &key.sign(algorithm, raw, &a).unwrap()).unwrap(), "{spec:?}");
        }
        // The next draw is another key.
        let next = generate(KeySpec::EccNistP256, &a, Purpose::KeyMaterial).unwrap();
        assert_ne!(
            next.bytes(),
            generate(KeySpec::EccNistP256, &Entropy::deterministic(b"s"), Purpose::KeyMaterial).unwrap().bytes()
        );
    }

    /// From a seed, the randomized operations repeat per seed and call, differ from call to call (as AWS-LC's do)
    /// and between seeds, and verify or decrypt through AWS-LC: raw messages and digests, every curve and PSS hash.
    #[test]
    fn seeded_signatures_and_oaep_repeat_per_seed_and_verify() {
        let seeds = || (Entropy::deterministic(b"s"), Entropy::deterministic(b"s"), Entropy::deterministic(b"t"));
        let (a, b, c) = seeds();
        for spec in
            [KeySpec::Rsa2048, KeySpec::EccNistP256, KeySpec::EccNistP384, KeySpec::EccNistP521, KeySpec::EccSecgP256k1]
        {
            let material = generate(spec, &a, Purpose::KeyMaterial).unwrap();
            let key = VersionKey::new(spec, KeyUsage::SignVerify, &material).unwrap();
            for &algorithm in spec.signing_algorithms(KeyUsage::SignVerify) {
                let message = b"kmsim signs this";
                let hashed = digest::digest(lc_digest(algorithm.digest()), message);
                for input in [
                    SignInput { bytes: message, message_type: MessageType::Raw },
                    SignInput { bytes: hashed.as_ref(), message_type: MessageType::Digest },
                ] {
                    let (first, again) =
                        (key.sign(algorithm, input, &a).unwrap(), key.sign(algorithm, input, &b).unwrap());
                    assert_eq!(first, again, "{spec:?} {algorithm:?}: one seed, one answer");
                    assert!(key.verify(algorithm, input, &first).unwrap(), "{spec:?} {algorithm:?}");
                    let raw = SignInput { bytes: message, message_type: MessageType::Raw };
                    assert!(key.verify(algorithm, raw, &first).unwrap(), "{spec:?} {algorithm:?} signs the digest");
                    let randomized = !matches!(
                        algorithm,
                        SigningAlgorithm::RsassaPkcs1V15Sha256
                            | SigningAlgorithm::RsassaPkcs1V15Sha384
                            | SigningAlgorithm::RsassaPkcs1V15Sha512
                    );
                    let next = key.sign(algorithm, input, &a).unwrap();
                    assert_eq!(next != first, randomized, "{spec:?} {algorithm:?}: the next call draws again");
                    assert_eq!(key.sign(algorithm, input, &c).unwrap() != first, randomized, "another seed");
                    let _ = key.sign(algorithm, input, &b);
                }
            }
        }
        let (a, b, c) = seeds();
        let material = generate(KeySpec::Rsa2048, &a, Purpose::KeyMaterial).unwrap();
        let key = VersionKey::new(KeySpec::Rsa2048, KeyUsage::EncryptDecrypt, &material).unwrap();
        for algorithm in [EncryptionAlgorithm::RsaesOaepSha1, EncryptionAlgorithm::RsaesOaepSha256] {
            let limit = key.max_plaintext(algorithm).unwrap();
            let plaintext = vec![7u8; limit];
            let first = key.rsa_encrypt(algorithm, &plaintext, &a).unwrap();
            assert_eq!(first, key.rsa_encrypt(algorithm, &plaintext, &b).unwrap(), "{algorithm:?}");
            assert_ne!(first, key.rsa_encrypt(algorithm, &plaintext, &c).unwrap(), "{algorithm:?}");
            assert_eq!(key.rsa_decrypt(algorithm, &first).unwrap().as_slice(), plaintext, "{algorithm:?}");
        }
    }

    #[test]
    fn rsa_oaep_round_trips_at_its_limits() {
        let key = VersionKey::new(
            KeySpec::Rsa2048,
            KeyUsage::EncryptDecrypt,
            &generate(KeySpec::Rsa2048, &Entropy::os(), Purpose::KeyMaterial).unwrap(),
        )
        .unwrap();
        for (algorithm, limit) in
            [(EncryptionAlgorithm::RsaesOaepSha1, 214), (EncryptionAlgorithm::RsaesOaepSha256, 190)]
        {
            assert_eq!(key.max_plaintext(algorithm), Some(limit));
            let plaintext = vec![7u8; limit];
            let ciphertext = key.rsa_encrypt(algorithm, &plaintext, &Entropy::os()).unwrap();
            assert_eq!(key.rsa_decrypt(algorithm, &ciphertext).unwrap().as_slice(), plaintext);
        }
        let ciphertext = key.rsa_encrypt(EncryptionAlgorithm::RsaesOaepSha1, b"x", &Entropy::os()).unwrap();
        assert!(key.rsa_decrypt(EncryptionAlgorithm::RsaesOaepSha256, &ciphertext).is_none());
    }

    #[test]
    fn ecdh_agrees_with_a_peer() {
        let ours = VersionKey::new(
            KeySpec::EccNistP256,
            KeyUsage::KeyAgreement,
            &generate(KeySpec::EccNistP256, &Entropy::os(), Purpose::KeyMaterial).unwrap(),
        )
        .unwrap();
        let peer = agreement::PrivateKey::generate(&agreement::ECDH_P256).unwrap();
        let peer_spki = der(&peer.compute_public_key().unwrap()).unwrap();
        let secret = ours.derive_shared_secret(&peer_spki).unwrap().unwrap();
        let ours_public = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, ours.public_key().unwrap().to_vec());
        let expected = agreement::agree(&peer, ours_public, (), |s| Ok(s.to_vec())).unwrap();
        assert_eq!(secret.as_slice(), expected);
        let p384 = agreement::PrivateKey::generate(&agreement::ECDH_P384).unwrap();
        assert!(ours.derive_shared_secret(&der(&p384.compute_public_key().unwrap()).unwrap()).unwrap().is_none());
        // A bare uncompressed point is not a SubjectPublicKeyInfo.
        let point = peer.compute_public_key().unwrap();
        assert!(ours.derive_shared_secret(point.as_ref()).unwrap().is_none());
    }

    #[test]
    fn material_of_another_kind_is_refused() {
        let ec = generate(KeySpec::EccNistP256, &Entropy::os(), Purpose::KeyMaterial).unwrap();
        assert!(VersionKey::new(KeySpec::Rsa2048, KeyUsage::SignVerify, &ec).is_err());
        assert!(VersionKey::new(KeySpec::EccNistP384, KeyUsage::SignVerify, &ec).is_err());
        assert!(VersionKey::new(KeySpec::SymmetricDefault, KeyUsage::EncryptDecrypt, &ec).is_err());
    }
}
