//! The OTC dialect's imported key material: `get-parameters-for-import`, `import-key-material` and
//! `delete-imported-key-material`, over the same core as the AWS dialect's imports.
//!
//! The OTC API wraps material with `RSAES_OAEP_SHA_256` under an RSA_2048 public key. A symmetric key's 32 bytes
//! are wrapped directly (`encrypted_key_material`); an asymmetric key's PKCS #8 private key is wrapped with AES
//! key wrap with padding (RFC 5649, `openssl enc -id-aes256-wrap-pad`) under a temporary AES-256 key
//! (`encrypted_privatekey`), and that temporary key is what `encrypted_key_material` carries.

use aws_lc_rs::rsa::KeySize;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::{Call, OtcError};
use crate::service::{ImportInput, MAX_VALID_TO_AHEAD, WrappingAlgorithm};
use crate::spec::Family;

/// The longest `import_token` and `encrypted_privatekey` the API takes (characters of base64).
const MAX_BASE64_FIELD: usize = 6144;

impl Call<'_> {
    /// `get-parameters-for-import`: a fresh RSA_2048 wrapping key and its import token, valid 24 hours.
    pub(super) fn get_parameters_for_import(&mut self) -> Result<Value, OtcError> {
        let key_id = self.key_id()?;
        let algorithm = match self.str("wrapping_algorithm")? {
            "RSAES_OAEP_SHA_256" => WrappingAlgorithm::RsaesOaepSha256,
            "SM2_ENCRYPT" => {
                return Err(OtcError::bad(
                    "KMS.0308",
                    "kmsim does not simulate SM2_ENCRYPT (SM2 keys); see docs/api-coverage.md.",
                ));
            }
            _ => return Err(OtcError::invalid("wrapping_algorithm")),
        };
        let record = self.customer_key(&key_id)?;
        let out = self.kms.get_parameters_for_import(&self.context.caller, &record.id, algorithm, KeySize::Rsa2048)?;
        Ok(json!({
            "key_id": record.id,
            "import_token": BASE64.encode(&out.import_token),
            "expiration_time": out.valid_to,
            "public_key": BASE64.encode(&out.public_key),
        }))
    }

    /// `import-key-material`: the key takes the material and leaves state "5" (pending import).
    pub(super) fn import_key_material(&mut self) -> Result<Value, OtcError> {
        let key_id = self.key_id()?;
        let import_token = self.bounded_base64("import_token")?;
        let encrypted_material = self.bounded_base64("encrypted_key_material")?;
        let encrypted_private_key = match self.opt_str("encrypted_privatekey")? {
            None | Some("") => None,
            Some(_) => Some(self.bounded_base64("encrypted_privatekey")?),
        };
        let valid_to = match self.opt_int("expiration_time")? {
            None => None,
            Some(t) if t > self.kms.clock.now() && t <= self.kms.clock.now() + MAX_VALID_TO_AHEAD => Some(t),
            Some(_) => {
                return Err(OtcError::bad(
                    "KMS.0308",
                    "expiration_time must be a time in the future, at most 365 days ahead (epoch seconds).",
                ));
            }
        };
        let record = self.customer_key(&key_id)?;
        let input = ImportInput {
            import_token: &import_token,
            encrypted_material: &encrypted_material,
            encrypted_private_key: encrypted_private_key.as_deref(),
            valid_to,
            import_type: None,
            material_id: None,
            description: None,
        };
        self.kms.import_key_material(&self.context.caller, &record.id, input)?;
        Ok(json!({}))
    }

    /// `delete-imported-key-material`: the key goes back to state "5" until the same material is imported again.
    /// The API refuses it for an asymmetric key, whose material goes only with the key (schedule-key-deletion).
    pub(super) fn delete_imported_key_material(&mut self) -> Result<Value, OtcError> {
        let key_id = self.key_id()?;
        let record = self.customer_key(&key_id)?;
        if matches!(record.spec.family(), Family::Rsa | Family::Ecc) {
            return Err(OtcError::bad(
                "KMS.0308",
                "The material of an imported asymmetric key cannot be deleted; schedule the key's deletion instead.",
            ));
        }
        self.kms.delete_imported_key_material(&self.context.caller, &record.id, None)?;
        Ok(json!({}))
    }

    /// A required base64 field of at most [`MAX_BASE64_FIELD`] characters, decoded.
    fn bounded_base64(&self, field: &str) -> Result<Vec<u8>, OtcError> {
        let text = self.str(field)?;
        if text.len() > MAX_BASE64_FIELD {
            return Err(OtcError::bad("KMS.0203", format!("{field} is longer than {MAX_BASE64_FIELD} characters.")));
        }
        BASE64.decode(text).map_err(|_| OtcError::invalid(field))
    }
}
