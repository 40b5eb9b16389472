//! The randomized operations under `--deterministic`, drawing what they add from the seeded stream
//! ([`Purpose::Signature`](shared::entropy::Purpose::Signature)) so that their answers repeat from run to run:
//! ECDSA with an RFC 6979 nonce whose extra input comes from the stream, RSA-PSS with a salt from it, RSA-OAEP with a
//! seed from it. RustCrypto's rather than AWS-LC's, which draws only from its own generator.
//!
//! RustCrypto's `rsa` private operation is variable-time (RUSTSEC-2023-0071). It runs only here, on keys that are
//! predictable from the seed by design, so a timing channel can reveal nothing that is not public already; from the
//! OS, every private operation stays AWS-LC's (constant-time).

use ecdsa::DigestAlgorithm;
use ecdsa::hazmat::sign_prehashed_rfc6979;
use rand::RngCore;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use shared::entropy::EntropyRng;
use zeroize::Zeroizing;

use super::internal;
use crate::error::Result;
use crate::spec::{Digest, EncryptionAlgorithm, KeySpec};

/// The DER ECDSA signature of `digest` by the PKCS #8 EC key `pkcs8` on `spec`'s curve. The nonce is RFC 6979's
/// with a field element from `rng` as its extra input (RFC 6979 § 3.6): a new signature per call, as from AWS-LC,
/// the same sequence per seed.
pub(super) fn ecdsa_sign(spec: KeySpec, pkcs8: &[u8], digest: &[u8], rng: &mut EntropyRng) -> Result<Vec<u8>> {
    macro_rules! sign_on {
        ($krate:ident, $curve:ident) => {{
            let secret = <$krate::SecretKey as $krate::pkcs8::DecodePrivateKey>::from_pkcs8_der(pkcs8)
                .map_err(|_| internal("not an EC key"))?;
            let mut extra = Zeroizing::new($krate::FieldBytes::default());
            rng.fill_bytes(&mut extra);
            let scalar = secret.to_nonzero_scalar();
            let (signature, _) = sign_prehashed_rfc6979::<$krate::$curve, <$krate::$curve as DigestAlgorithm>::Digest>(
                &scalar, digest, &extra,
            );
            signature.to_der().as_bytes().to_vec()
        }};
    }
    Ok(match spec {
        KeySpec::EccNistP256 => sign_on!(p256, NistP256),
        KeySpec::EccNistP384 => sign_on!(p384, NistP384),
        KeySpec::EccNistP521 => sign_on!(p521, NistP521),
        KeySpec::EccSecgP256k1 => sign_on!(k256, Secp256k1),
        _ => return Err(internal("not an ECDSA curve")),
    })
}

/// The RSASSA-PSS signature of `digest` (MGF1 with the same hash, salt as long as the hash, as KMS signs) by the
/// PKCS #8 RSA key `pkcs8`, its salt from `rng`.
pub(super) fn pss_sign(pkcs8: &[u8], hash: Digest, digest: &[u8], rng: &mut EntropyRng) -> Result<Vec<u8>> {
    let key = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8).map_err(|_| internal("not an RSA key"))?;
    let scheme = match hash {
        Digest::Sha256 => rsa::Pss::new::<sha2::Sha256>(),
        Digest::Sha384 => rsa::Pss::new::<sha2::Sha384>(),
        Digest::Sha512 => rsa::Pss::new::<sha2::Sha512>(),
        Digest::Sha1 | Digest::Sha224 => return Err(internal("not a PSS hash")),
    };
    key.sign_with_rng(rng, scheme, digest).map_err(|_| internal("signing failed"))
}

/// The RSAES-OAEP encryption of `plaintext` under the public key `spki` (DER SubjectPublicKeyInfo), its seed from
/// `rng`. A public-key operation: nothing secret is timed.
pub(super) fn oaep_encrypt(
    spki: &[u8],
    algorithm: EncryptionAlgorithm,
    plaintext: &[u8],
    rng: &mut EntropyRng,
) -> Result<Vec<u8>> {
    let key = rsa::RsaPublicKey::from_public_key_der(spki).map_err(|_| internal("an RSA public key"))?;
    let padding = match algorithm {
        EncryptionAlgorithm::RsaesOaepSha1 => rsa::Oaep::new::<sha1::Sha1>(),
        EncryptionAlgorithm::RsaesOaepSha256 => rsa::Oaep::new::<sha2::Sha256>(),
        _ => return Err(internal("not an RSA OAEP algorithm")),
    };
    key.encrypt(rng, padding, plaintext).map_err(|_| internal("RSA encryption failed"))
}
