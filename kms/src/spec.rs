//! Key specs, key usages and algorithms: what each kind of KMS key is, what it may do, and the names both
//! dialects give them. The tables here are AWS KMS's; the OTC dialect maps its own names onto them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The kind of a key's material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum KeySpec {
    /// AES-256-GCM, kmsim's own ciphertext blob.
    #[default]
    SymmetricDefault,
    /// RSA, 2048-bit modulus.
    Rsa2048,
    /// RSA, 3072-bit modulus.
    Rsa3072,
    /// RSA, 4096-bit modulus.
    Rsa4096,
    /// NIST P-256 (secp256r1).
    EccNistP256,
    /// NIST P-384 (secp384r1).
    EccNistP384,
    /// NIST P-521 (secp521r1).
    EccNistP521,
    /// SECG secp256k1.
    EccSecgP256k1,
    /// HMAC with SHA-224.
    Hmac224,
    /// HMAC with SHA-256.
    Hmac256,
    /// HMAC with SHA-384.
    Hmac384,
    /// HMAC with SHA-512.
    Hmac512,
}

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum KeyUsage {
    /// Encrypt, Decrypt, ReEncrypt (and data keys, for symmetric keys).
    #[default]
    EncryptDecrypt,
    /// Sign and Verify.
    SignVerify,
    /// GenerateMac and VerifyMac.
    GenerateVerifyMac,
    /// DeriveSharedSecret.
    KeyAgreement,
}

/// The broad family of a spec, which decides the material's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// 32 bytes of AES key.
    Symmetric,
    /// A PKCS#8 `PrivateKeyInfo` of an RSA key.
    Rsa,
    /// A PKCS#8 `PrivateKeyInfo` of an EC key.
    Ecc,
    /// Raw HMAC key bytes.
    Hmac,
}

const ALL_SPECS: [KeySpec; 12] = [
    KeySpec::SymmetricDefault,
    KeySpec::Rsa2048,
    KeySpec::Rsa3072,
    KeySpec::Rsa4096,
    KeySpec::EccNistP256,
    KeySpec::EccNistP384,
    KeySpec::EccNistP521,
    KeySpec::EccSecgP256k1,
    KeySpec::Hmac224,
    KeySpec::Hmac256,
    KeySpec::Hmac384,
    KeySpec::Hmac512,
];

/// Specs AWS has that kmsim does not simulate (SM2 exists only in the China Regions).
const OTHER_AWS_SPECS: [&str; 5] = ["SM2", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "ECC_NIST_EDWARDS25519"];

impl KeySpec {
    /// The AWS name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySpec::SymmetricDefault => "SYMMETRIC_DEFAULT",
            KeySpec::Rsa2048 => "RSA_2048",
            KeySpec::Rsa3072 => "RSA_3072",
            KeySpec::Rsa4096 => "RSA_4096",
            KeySpec::EccNistP256 => "ECC_NIST_P256",
            KeySpec::EccNistP384 => "ECC_NIST_P384",
            KeySpec::EccNistP521 => "ECC_NIST_P521",
            KeySpec::EccSecgP256k1 => "ECC_SECG_P256K1",
            KeySpec::Hmac224 => "HMAC_224",
            KeySpec::Hmac256 => "HMAC_256",
            KeySpec::Hmac384 => "HMAC_384",
            KeySpec::Hmac512 => "HMAC_512",
        }
    }

    /// Parses an AWS `KeySpec` (or `CustomerMasterKeySpec`, named `field` in the message).
    pub fn parse(name: &str, field: &str) -> Result<Self> {
        parse_spec_among(name, field, &ALL_SPECS)
    }

    /// The family of the spec.
    pub fn family(self) -> Family {
        match self {
            KeySpec::SymmetricDefault => Family::Symmetric,
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => Family::Rsa,
            KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 | KeySpec::EccSecgP256k1 => Family::Ecc,
            KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => Family::Hmac,
        }
    }

    /// Whether the key has a public key (RSA and ECC).
    pub fn is_asymmetric(self) -> bool {
        matches!(self.family(), Family::Rsa | Family::Ecc)
    }

    /// The usages AWS allows for the spec.
    pub fn usages(self) -> &'static [KeyUsage] {
        use KeyUsage::*;
        match self {
            KeySpec::SymmetricDefault => &[EncryptDecrypt],
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[EncryptDecrypt, SignVerify],
            KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 => &[SignVerify, KeyAgreement],
            KeySpec::EccSecgP256k1 => &[SignVerify],
            KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => &[GenerateVerifyMac],
        }
    }

    /// The RSA modulus length in bytes.
    pub fn rsa_modulus_bytes(self) -> Option<usize> {
        match self {
            KeySpec::Rsa2048 => Some(256),
            KeySpec::Rsa3072 => Some(384),
            KeySpec::Rsa4096 => Some(512),
            _ => None,
        }
    }

    /// The length of HMAC key material AWS generates and accepts for import.
    pub fn hmac_key_bytes(self) -> Option<usize> {
        match self {
            KeySpec::Hmac224 => Some(28),
            KeySpec::Hmac256 => Some(32),
            KeySpec::Hmac384 => Some(48),
            KeySpec::Hmac512 => Some(64),
            _ => None,
        }
    }

    /// The encryption algorithms of a key of this spec and `usage`.
    pub fn encryption_algorithms(self, usage: KeyUsage) -> &'static [EncryptionAlgorithm] {
        match (self.family(), usage) {
            (Family::Symmetric, _) => &[EncryptionAlgorithm::SymmetricDefault],
            (Family::Rsa, KeyUsage::EncryptDecrypt) => {
                &[EncryptionAlgorithm::RsaesOaepSha1, EncryptionAlgorithm::RsaesOaepSha256]
            }
            _ => &[],
        }
    }

    /// The signing algorithms of a key of this spec and `usage`.
    pub fn signing_algorithms(self, usage: KeyUsage) -> &'static [SigningAlgorithm] {
        use SigningAlgorithm::*;
        if usage != KeyUsage::SignVerify {
            return &[];
        }
        match self {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[
                RsassaPkcs1V15Sha256,
                RsassaPkcs1V15Sha384,
                RsassaPkcs1V15Sha512,
                RsassaPssSha256,
                RsassaPssSha384,
                RsassaPssSha512,
            ],
            KeySpec::EccNistP256 | KeySpec::EccSecgP256k1 => &[EcdsaSha256],
            KeySpec::EccNistP384 => &[EcdsaSha384],
            KeySpec::EccNistP521 => &[EcdsaSha512],
            _ => &[],
        }
    }

    /// The MAC algorithm of an HMAC key.
    pub fn mac_algorithms(self) -> &'static [MacAlgorithm] {
        match self {
            KeySpec::Hmac224 => &[MacAlgorithm::HmacSha224],
            KeySpec::Hmac256 => &[MacAlgorithm::HmacSha256],
            KeySpec::Hmac384 => &[MacAlgorithm::HmacSha384],
            KeySpec::Hmac512 => &[MacAlgorithm::HmacSha512],
            _ => &[],
        }
    }

    /// The key agreement algorithms of a key of this spec and `usage`.
    pub fn key_agreement_algorithms(self, usage: KeyUsage) -> &'static [&'static str] {
        if usage == KeyUsage::KeyAgreement { &["ECDH"] } else { &[] }
    }
}

impl KeyUsage {
    /// The AWS name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyUsage::EncryptDecrypt => "ENCRYPT_DECRYPT",
            KeyUsage::SignVerify => "SIGN_VERIFY",
            KeyUsage::GenerateVerifyMac => "GENERATE_VERIFY_MAC",
            KeyUsage::KeyAgreement => "KEY_AGREEMENT",
        }
    }

    /// Parses an AWS `KeyUsage`.
    pub fn parse(name: &str) -> Result<Self> {
        const ALL: [KeyUsage; 4] =
            [KeyUsage::EncryptDecrypt, KeyUsage::SignVerify, KeyUsage::GenerateVerifyMac, KeyUsage::KeyAgreement];
        ALL.into_iter()
            .find(|u| u.as_str() == name)
            .ok_or_else(|| enum_error(name, "keyUsage", &ALL.map(KeyUsage::as_str)))
    }
}

/// Checks a CreateKey's spec and usage as AWS does; `usage` is `None` when the request named none.
pub fn check_spec_and_usage(spec: KeySpec, usage: Option<KeyUsage>) -> Result<KeyUsage> {
    let usage = match usage {
        Some(usage) => usage,
        None if spec == KeySpec::SymmetricDefault => KeyUsage::EncryptDecrypt,
        None => {
            return Err(Error::Validation(
                "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.".into(),
            ));
        }
    };
    if !spec.usages().contains(&usage) {
        return Err(Error::Validation(format!(
            "KeyUsage {} is not compatible with KeySpec {}",
            usage.as_str(),
            spec.as_str()
        )));
    }
    Ok(usage)
}

/// The digest a signing algorithm hashes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// SHA-1 (OAEP only).
    Sha1,
    /// SHA-224 (HMAC only).
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Digest {
    /// The digest's length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Digest::Sha1 => 20,
            Digest::Sha224 => 28,
            Digest::Sha256 => 32,
            Digest::Sha384 => 48,
            Digest::Sha512 => 64,
        }
    }
}

macro_rules! named_algorithms {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(#[doc = concat!("`", $text, "`")] $variant,)*
        }

        impl $name {
            /// Every algorithm of the kind, in AWS's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The AWS name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// Parses an AWS name, with the enum validation error AWS gives for another.
            pub fn parse(name: &str) -> Result<Self> {
                Self::ALL.iter().copied().find(|a| a.as_str() == name).ok_or_else(|| {
                    enum_error(name, $field, &Self::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>())
                })
            }
        }
    };
}

named_algorithms!(
    /// An encryption algorithm.
    EncryptionAlgorithm, "encryptionAlgorithm" {
        SymmetricDefault => "SYMMETRIC_DEFAULT",
        RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
        RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
    }
);

named_algorithms!(
    /// A signing algorithm.
    SigningAlgorithm, "signingAlgorithm" {
        RsassaPssSha256 => "RSASSA_PSS_SHA_256",
        RsassaPssSha384 => "RSASSA_PSS_SHA_384",
        RsassaPssSha512 => "RSASSA_PSS_SHA_512",
        RsassaPkcs1V15Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
        RsassaPkcs1V15Sha384 => "RSASSA_PKCS1_V1_5_SHA_384",
        RsassaPkcs1V15Sha512 => "RSASSA_PKCS1_V1_5_SHA_512",
        EcdsaSha256 => "ECDSA_SHA_256",
        EcdsaSha384 => "ECDSA_SHA_384",
        EcdsaSha512 => "ECDSA_SHA_512",
    }
);

named_algorithms!(
    /// A MAC algorithm.
    MacAlgorithm, "macAlgorithm" {
        HmacSha224 => "HMAC_SHA_224",
        HmacSha256 => "HMAC_SHA_256",
        HmacSha384 => "HMAC_SHA_384",
        HmacSha512 => "HMAC_SHA_512",
    }
);

impl SigningAlgorithm {
    /// The digest the algorithm signs.
    pub fn digest(self) -> Digest {
        use SigningAlgorithm::*;
        match self {
            RsassaPssSha256 | RsassaPkcs1V15Sha256 | EcdsaSha256 => Digest::Sha256,
            RsassaPssSha384 | RsassaPkcs1V15Sha384 | EcdsaSha384 => Digest::Sha384,
            RsassaPssSha512 | RsassaPkcs1V15Sha512 | EcdsaSha512 => Digest::Sha512,
        }
    }

    /// Whether the algorithm is RSASSA-PSS (randomized by its salt).
    pub fn is_pss(self) -> bool {
        use SigningAlgorithm::*;
        matches!(self, RsassaPssSha256 | RsassaPssSha384 | RsassaPssSha512)
    }
}

impl MacAlgorithm {
    /// The digest of the HMAC.
    pub fn digest(self) -> Digest {
        match self {
            MacAlgorithm::HmacSha224 => Digest::Sha224,
            MacAlgorithm::HmacSha256 => Digest::Sha256,
            MacAlgorithm::HmacSha384 => Digest::Sha384,
            MacAlgorithm::HmacSha512 => Digest::Sha512,
        }
    }
}

/// What Sign and Verify receive: the message, or its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// The message itself (at most 4096 bytes); KMS hashes it.
    Raw,
    /// The digest of the message, of the algorithm's digest length.
    Digest,
}

impl MessageType {
    /// The AWS name (`RAW`, `DIGEST`).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Raw => "RAW",
            MessageType::Digest => "DIGEST",
        }
    }

    /// Parses AWS's `MessageType` (default `RAW`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "RAW" => Ok(MessageType::Raw),
            "DIGEST" => Ok(MessageType::Digest),
            other => Err(enum_error(other, "messageType", &["RAW", "DIGEST"])),
        }
    }
}

/// The key pair specs of GenerateDataKeyPair: the RSA and ECC specs.
pub fn parse_key_pair_spec(name: &str) -> Result<KeySpec> {
    let pairs: Vec<KeySpec> =
        ALL_SPECS.into_iter().filter(|s| matches!(s.family(), Family::Rsa | Family::Ecc)).collect();
    parse_spec_among(name, "keyPairSpec", &pairs)
}

/// `name` as one of `specs`; a spec AWS has but kmsim does not simulate is UnsupportedOperation, anything else
/// the enum error naming `field`.
fn parse_spec_among(name: &str, field: &str, specs: &[KeySpec]) -> Result<KeySpec> {
    if let Some(&spec) = specs.iter().find(|s| s.as_str() == name) {
        return Ok(spec);
    }
    if OTHER_AWS_SPECS.contains(&name) {
        return Err(Error::UnsupportedOperation(format!(
            "kmsim does not simulate {name} keys; see docs/api-coverage.md."
        )));
    }
    let valid: Vec<&str> = specs.iter().map(|s| s.as_str()).chain(OTHER_AWS_SPECS).collect();
    Err(enum_error(name, field, &valid))
}

/// AWS's answer to a value outside an enum.
pub fn enum_error(value: &str, field: &str, valid: &[&str]) -> Error {
    Error::Validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
        valid.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_round_trips_its_name() {
        for spec in ALL_SPECS {
            assert_eq!(KeySpec::parse(spec.as_str(), "keySpec").unwrap(), spec);
        }
        assert!(matches!(KeySpec::parse("SM2", "keySpec"), Err(Error::UnsupportedOperation(_))));
        assert!(matches!(KeySpec::parse("RSA_1024", "keySpec"), Err(Error::Validation(_))));
    }

    #[test]
    fn usage_is_required_except_for_symmetric_keys_and_must_fit_the_spec() {
        assert_eq!(check_spec_and_usage(KeySpec::SymmetricDefault, None).unwrap(), KeyUsage::EncryptDecrypt);
        assert!(check_spec_and_usage(KeySpec::Rsa2048, None).is_err());
        assert!(check_spec_and_usage(KeySpec::EccSecgP256k1, Some(KeyUsage::KeyAgreement)).is_err());
        assert!(check_spec_and_usage(KeySpec::Hmac256, Some(KeyUsage::SignVerify)).is_err());
        assert_eq!(
            check_spec_and_usage(KeySpec::EccNistP384, Some(KeyUsage::KeyAgreement)).unwrap(),
            KeyUsage::KeyAgreement
        );
    }

    #[test]
    fn algorithm_lists_follow_the_usage() {
        assert_eq!(KeySpec::Rsa2048.encryption_algorithms(KeyUsage::SignVerify), &[]);
        assert_eq!(KeySpec::Rsa2048.signing_algorithms(KeyUsage::SignVerify).len(), 6);
        assert_eq!(KeySpec::EccNistP521.signing_algorithms(KeyUsage::SignVerify), &[SigningAlgorithm::EcdsaSha512]);
        assert_eq!(KeySpec::EccNistP256.signing_algorithms(KeyUsage::KeyAgreement), &[]);
        assert_eq!(KeySpec::EccNistP256.key_agreement_algorithms(KeyUsage::KeyAgreement), &["ECDH"]);
    }
}
