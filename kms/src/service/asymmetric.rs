//! The operations of asymmetric, HMAC and key agreement keys: Sign, Verify, GetPublicKey, GenerateMac, VerifyMac,
//! DeriveSharedSecret, and data key pairs (generated here, their private key sealed under a symmetric key).

use std::sync::Arc;

use shared::Caller;
use shared::entropy::Purpose;
use zeroize::Zeroizing;

use super::{
    Access, Kms, LiveKey, MAX_ENCRYPT_PLAINTEXT, incompatible_algorithm, require_enabled, require_symmetric,
    require_usage,
};
use crate::blob::EncryptionContext;
use crate::crypto::{self, SignInput};
use crate::error::{Error, Result};
use crate::model::{GrantOperation, KeyRecord};
use crate::spec::{EncryptionAlgorithm, KeySpec, KeyUsage, MacAlgorithm, MessageType, SigningAlgorithm};

/// Largest message Sign, Verify, GenerateMac and VerifyMac accept.
pub const MAX_MESSAGE: usize = MAX_ENCRYPT_PLAINTEXT;
/// Largest signature Verify accepts.
pub const MAX_SIGNATURE: usize = 6144;
/// Largest MAC VerifyMac accepts.
pub const MAX_MAC: usize = 6144;
/// Largest public key DeriveSharedSecret accepts.
pub const MAX_PUBLIC_KEY: usize = 8192;

/// A signature and the key that made it.
#[derive(Debug)]
pub struct SignOutput {
    /// DER-encoded for ECDSA, the raw signature for RSA.
    pub signature: Vec<u8>,
    /// ARN of the key.
    pub key_arn: String,
}

/// A data key pair.
#[derive(Debug)]
pub struct DataKeyPair {
    /// The PKCS #8 private key; absent for GenerateDataKeyPairWithoutPlaintext.
    pub private_plaintext: Option<Zeroizing<Vec<u8>>>,
    /// The PKCS #8 private key encrypted under the KMS key.
    pub private_ciphertext: Vec<u8>,
    /// The DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// ARN of the KMS key.
    pub key_arn: String,
}

/// Checks the length of a blob field as AWS's input validation does.
pub(crate) fn check_length(value: &[u8], field: &str, max: usize) -> Result<()> {
    let constraint = if value.is_empty() {
        "greater than or equal to 1".to_owned()
    } else if value.len() > max {
        format!("less than or equal to {max}")
    } else {
        return Ok(());
    };
    Err(Error::Validation(format!(
        "1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must have length {constraint}"
    )))
}

impl Kms {
    /// Resolves a key for a grantable operation on an enabled key of `usage`.
    fn usable_key(
        &self,
        caller: &Caller,
        key_id: &str,
        op: GrantOperation,
        usage: KeyUsage,
        conditions: &[(&'static str, &str)],
    ) -> Result<Arc<LiveKey>> {
        let live = self.resolve_with(caller, key_id, true, Access::Grant(op), &EncryptionContext::new(), conditions)?;
        require_enabled(&live.record)?;
        require_usage(&live.record, usage, op.as_str())?;
        Ok(live)
    }

    /// Checks a Sign or Verify input against the key's algorithms and the algorithm's digest length.
    fn check_sign_input(record: &KeyRecord, algorithm: SigningAlgorithm, input: SignInput<'_>) -> Result<()> {
        if !record.spec.signing_algorithms(record.usage).contains(&algorithm) {
            return Err(incompatible_algorithm(algorithm.as_str(), record.spec));
        }
        if input.message_type == MessageType::Digest && input.bytes.len() != algorithm.digest().output_len() {
            return Err(Error::Validation(format!("Digest is invalid length for algorithm {}.", algorithm.as_str())));
        }
        Ok(())
    }

    /// Sign: the message (or its digest) signed with the key's private key.
    pub fn sign(
        &self,
        caller: &Caller,
        key_id: &str,
        input: SignInput<'_>,
        algorithm: SigningAlgorithm,
    ) -> Result<SignOutput> {
        check_length(input.bytes, "message", MAX_MESSAGE)?;
        let conditions =
            [("kms:SigningAlgorithm", algorithm.as_str()), ("kms:MessageType", input.message_type.as_str())];
        let live = self.usable_key(caller, key_id, GrantOperation::Sign, KeyUsage::SignVerify, &conditions)?;
        Self::check_sign_input(&live.record, algorithm, input)?;
        let signature = live.current()?.sign(algorithm, input, &self.entropy)?;
        Ok(SignOutput { signature, key_arn: live.record.arn() })
    }

    /// Verify: the key's ARN if `signature` is valid, `KMSInvalidSignatureException` if not.
    pub fn verify(
        &self,
        caller: &Caller,
        key_id: &str,
        input: SignInput<'_>,
        algorithm: SigningAlgorithm,
        signature: &[u8],
    ) -> Result<String> {
        check_length(input.bytes, "message", MAX_MESSAGE)?;
        check_length(signature, "signature", MAX_SIGNATURE)?;
        let conditions =
            [("kms:SigningAlgorithm", algorithm.as_str()), ("kms:MessageType", input.message_type.as_str())];
        let live = self.usable_key(caller, key_id, GrantOperation::Verify, KeyUsage::SignVerify, &conditions)?;
        Self::check_sign_input(&live.record, algorithm, input)?;
        if live.current()?.verify(algorithm, input, signature)? {
            Ok(live.record.arn())
        } else {
            Err(Error::InvalidSignature(String::new()))
        }
    }

    /// GetPublicKey: the key's record and its DER SubjectPublicKeyInfo.
    pub fn get_public_key(&self, caller: &Caller, key_id: &str) -> Result<(KeyRecord, Vec<u8>)> {
        let live = self.resolve_for(
            caller,
            key_id,
            true,
            Access::Grant(GrantOperation::GetPublicKey),
            &EncryptionContext::new(),
        )?;
        if !live.record.spec.is_asymmetric() {
            return Err(Error::UnsupportedOperation(format!(
                "{} key spec is {}, which has no public key.",
                live.record.arn(),
                live.record.spec.as_str()
            )));
        }
        require_enabled(&live.record)?;
        let public = live.current()?.public_key().ok_or_else(|| Error::Internal("no public key".into()))?;
        Ok((live.record.clone(), public.to_vec()))
    }

    /// Checks a MAC algorithm against an HMAC key.
    fn check_mac_algorithm(record: &KeyRecord, algorithm: MacAlgorithm) -> Result<()> {
        if record.spec.mac_algorithms().contains(&algorithm) {
            Ok(())
        } else {
            Err(incompatible_algorithm(algorithm.as_str(), record.spec))
        }
    }

    /// GenerateMac: the HMAC of `message` and the key's ARN.
    pub fn generate_mac(
        &self,
        caller: &Caller,
        key_id: &str,
        message: &[u8],
        algorithm: MacAlgorithm,
    ) -> Result<(Vec<u8>, String)> {
        check_length(message, "message", MAX_MESSAGE)?;
        let live = self.usable_key(
            caller,
            key_id,
            GrantOperation::GenerateMac,
            KeyUsage::GenerateVerifyMac,
            &[("kms:MacAlgorithm", algorithm.as_str())],
        )?;
        Self::check_mac_algorithm(&live.record, algorithm)?;
        Ok((live.current()?.mac(message)?, live.record.arn()))
    }

    /// VerifyMac: the key's ARN if `mac` is the HMAC of `message`, `KMSInvalidMacException` if not.
    pub fn verify_mac(
        &self,
        caller: &Caller,
        key_id: &str,
        message: &[u8],
        algorithm: MacAlgorithm,
        mac: &[u8],
    ) -> Result<String> {
        check_length(message, "message", MAX_MESSAGE)?;
        check_length(mac, "mac", MAX_MAC)?;
        let live = self.usable_key(
            caller,
            key_id,
            GrantOperation::VerifyMac,
            KeyUsage::GenerateVerifyMac,
            &[("kms:MacAlgorithm", algorithm.as_str())],
        )?;
        Self::check_mac_algorithm(&live.record, algorithm)?;
        if live.current()?.verify_mac(message, mac)? {
            Ok(live.record.arn())
        } else {
            Err(Error::InvalidMac(String::new()))
        }
    }

    /// GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: a fresh key pair of `pair_spec`, its private key
    /// (PKCS #8) encrypted under the symmetric key `key_id`.
    pub fn generate_data_key_pair(
        &self,
        caller: &Caller,
        key_id: &str,
        pair_spec: KeySpec,
        context: &EncryptionContext,
        with_plaintext: bool,
    ) -> Result<DataKeyPair> {
        if !pair_spec.is_asymmetric() {
            return Err(Error::Validation(format!("{} is not a key pair spec.", pair_spec.as_str())));
        }
        let op = if with_plaintext {
            GrantOperation::GenerateDataKeyPair
        } else {
            GrantOperation::GenerateDataKeyPairWithoutPlaintext
        };
        let conditions = [("kms:EncryptionAlgorithm", EncryptionAlgorithm::SymmetricDefault.as_str())];
        let live = self.resolve_with(caller, key_id, true, Access::Grant(op), context, &conditions)?;
        require_enabled(&live.record)?;
        require_symmetric(&live.record, op.as_str())?;
        let private = crypto::generate(pair_spec, &self.entropy, Purpose::DataKey)?;
        let public_key = crypto::public_key_of(pair_spec, &private)?.into_vec();
        let private_ciphertext = self.seal(&live, private.bytes(), context)?;
        Ok(DataKeyPair {
            private_plaintext: with_plaintext.then(|| Zeroizing::new(private.bytes().to_vec())),
            private_ciphertext,
            public_key,
            key_arn: live.record.arn(),
        })
    }

    /// DeriveSharedSecret: ECDH of the key's private key with the peer's public key (DER SubjectPublicKeyInfo).
    pub fn derive_shared_secret(
        &self,
        caller: &Caller,
        key_id: &str,
        peer_public_key: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, String, crate::model::Origin)> {
        check_length(peer_public_key, "publicKey", MAX_PUBLIC_KEY)?;
        let live = self.usable_key(
            caller,
            key_id,
            GrantOperation::DeriveSharedSecret,
            KeyUsage::KeyAgreement,
            &[("kms:KeyAgreementAlgorithm", "ECDH")],
        )?;
        let secret = live.current()?.derive_shared_secret(peer_public_key)?.ok_or_else(|| {
            Error::Validation(format!(
                "PublicKey is not a valid DER-encoded SubjectPublicKeyInfo of a point on the curve of {} ({}).",
                live.record.arn(),
                live.record.spec.as_str()
            ))
        })?;
        Ok((secret, live.record.arn(), live.record.origin))
    }
}
