//! create-rsa-datakey-pair and create-ec-datakey-pair: data key pairs of the OTC dialect, made by the core's
//! [`Kms::generate_data_key_pair`](crate::service::Kms::generate_data_key_pair) as the AWS dialect's
//! GenerateDataKeyPair makes them.
//!
//! `key_spec` takes the AWS names (Huawei's references list RSA_2048/3072/4096 and ECC_NIST_P256/P384/P521,
//! ECC_SECG_P256K1, SM2); `with_plain_text` (default true) chooses whether the plaintext private key comes back;
//! `additional_authenticated_data` is the encryption context of the private key's ciphertext, as for the other
//! verbs. Keys travel in base64: `public_key` the DER SubjectPublicKeyInfo, `private_key_plain_text` the DER
//! PKCS #8 private key, `private_key_cipher_text` the core's ciphertext blob — the form encrypt-data answers, so
//! decrypt-data (or the AWS dialect's Decrypt) recovers the private key.

use base64::Engine as _;
use serde_json::{Value, json};

use super::{BASE64, Call, OtcError, id_of_arn};
use crate::spec::KeySpec;

/// The `key_spec`s of create-rsa-datakey-pair.
pub(super) const RSA_PAIR_SPECS: &[KeySpec] = &[KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096];

/// The `key_spec`s of create-ec-datakey-pair that kmsim simulates (all of Huawei's but SM2).
pub(super) const EC_PAIR_SPECS: &[KeySpec] =
    &[KeySpec::EccNistP256, KeySpec::EccNistP384, KeySpec::EccNistP521, KeySpec::EccSecgP256k1];

/// Key pair specs of the Huawei API that kmsim does not simulate.
const UNSIMULATED_PAIR_SPECS: &[&str] = &["SM2"];

impl Call<'_> {
    /// create-rsa-datakey-pair or create-ec-datakey-pair, whose `key_spec` is one of `specs`.
    pub(super) fn create_datakey_pair(&mut self, specs: &[KeySpec]) -> Result<Value, OtcError> {
        let key_id = self.key_id()?;
        let spec = pair_spec(self.str("key_spec")?, specs)?;
        let with_plaintext = self.opt_bool("with_plain_text")?.unwrap_or(true);
        for field in ["pin", "pin_type"] {
            if self.opt_str(field)?.is_some_and(|s| !s.is_empty()) {
                return Err(OtcError::bad(
                    "KMS.0308",
                    format!("kmsim does not simulate PIN-protected key pairs ({field}); see docs/api-coverage.md."),
                ));
            }
        }
        let context = self.context()?;
        let pair = self.kms.generate_data_key_pair(&self.context.caller, &key_id, spec, &context, with_plaintext)?;
        self.audit.key_arn = Some(pair.key_arn.clone());
        let mut out = json!({
            "key_id": id_of_arn(&pair.key_arn),
            "key_spec": spec.as_str(),
            "public_key": BASE64.encode(&pair.public_key),
            "private_key_cipher_text": BASE64.encode(&pair.private_ciphertext),
        });
        if let Some(private) = &pair.private_plaintext {
            out["private_key_plain_text"] = Value::String(BASE64.encode(private.as_slice()));
        }
        Ok(out)
    }

    /// A boolean field: a JSON boolean, or the dialect's `"true"` / `"false"`.
    fn opt_bool(&self, field: &str) -> Result<Option<bool>, OtcError> {
        match self.body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(OtcError::invalid(field)),
        }
    }
}

/// A data key pair's `key_spec`: one of `specs` by its AWS name; KMS.0308 naming the valid ones otherwise.
fn pair_spec(name: &str, specs: &[KeySpec]) -> Result<KeySpec, OtcError> {
    if let Some(spec) = specs.iter().copied().find(|s| s.as_str() == name) {
        return Ok(spec);
    }
    if UNSIMULATED_PAIR_SPECS.contains(&name) {
        return Err(OtcError::bad(
            "KMS.0308",
            format!("kmsim does not simulate {name} key pairs; see docs/api-coverage.md."),
        ));
    }
    let valid: Vec<&str> = specs.iter().map(|s| s.as_str()).collect();
    Err(OtcError::bad("KMS.0308", format!("Invalid key_spec {name}: one of {}.", valid.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otc::OtcVerb;
    use crate::otc::tests::run;
    use crate::service::Kms;

    #[test]
    fn the_private_key_ciphertext_decrypts_through_decrypt_data() {
        let kms = Kms::in_memory().unwrap();
        let created = run(&kms, OtcVerb::CreateKey, json!({"key_alias": "pairs"})).unwrap();
        let key_id = created["key_info"]["key_id"].as_str().unwrap().to_owned();
        let body = json!({"key_id": key_id, "key_spec": "ECC_NIST_P384", "additional_authenticated_data": "a"});
        let pair = run(&kms, OtcVerb::CreateEcDatakeyPair, body).unwrap();
        assert_eq!((&pair["key_id"], &pair["key_spec"]), (&json!(key_id), &json!("ECC_NIST_P384")));
        let body = json!({"key_id": key_id, "cipher_text": pair["private_key_cipher_text"],
                          "additional_authenticated_data": "a"});
        let decrypted = run(&kms, OtcVerb::DecryptData, body).unwrap();
        assert_eq!(decrypted["plain_text_base64"], pair["private_key_plain_text"]);
        assert!(BASE64.decode(pair["public_key"].as_str().unwrap()).is_ok());

        let body = json!({"key_id": key_id, "key_spec": "RSA_2048", "with_plain_text": "false"});
        let pair = run(&kms, OtcVerb::CreateRsaDatakeyPair, body).unwrap();
        assert!(pair.get("private_key_plain_text").is_none(), "{pair}");
        assert!(pair["private_key_cipher_text"].is_string());

        for (verb, body, expected) in [
            (OtcVerb::CreateEcDatakeyPair, json!({"key_spec": "ECC_NIST_P256"}), "KMS.0204"),
            (OtcVerb::CreateEcDatakeyPair, json!({"key_id": key_id}), "KMS.0204"),
            (OtcVerb::CreateEcDatakeyPair, json!({"key_id": key_id, "key_spec": "RSA_2048"}), "KMS.0308"),
            (OtcVerb::CreateEcDatakeyPair, json!({"key_id": key_id, "key_spec": "SM2"}), "KMS.0308"),
            (
                OtcVerb::CreateRsaDatakeyPair,
                json!({"key_id": key_id, "key_spec": "RSA_2048", "with_plain_text": 1}),
                "KMS.0308",
            ),
            (
                OtcVerb::CreateEcDatakeyPair,
                json!({"key_id": key_id, "key_spec": "ECC_NIST_P256", "pin": "1234"}),
                "KMS.0308",
            ),
            (
                OtcVerb::CreateEcDatakeyPair,
                json!({"key_id": "0d0466b0-e727-4d9c-b35d-f84bb474a37f",
                                                  "key_spec": "ECC_NIST_P256"}),
                "KMS.0207",
            ),
        ] {
            assert_eq!(run(&kms, verb, body.clone()).unwrap_err().code(), expected, "{verb} {body}");
        }
    }

    #[test]
    fn each_verb_takes_its_own_family_by_the_aws_names() {
        assert_eq!(pair_spec("RSA_3072", RSA_PAIR_SPECS).unwrap(), KeySpec::Rsa3072);
        assert_eq!(pair_spec("ECC_SECG_P256K1", EC_PAIR_SPECS).unwrap(), KeySpec::EccSecgP256k1);
        for (name, specs) in [
            ("ECC_NIST_P256", RSA_PAIR_SPECS),
            ("RSA_2048", EC_PAIR_SPECS),
            ("EC_P256", EC_PAIR_SPECS),
            ("AES_256", RSA_PAIR_SPECS),
            ("rsa_2048", RSA_PAIR_SPECS),
            ("", EC_PAIR_SPECS),
        ] {
            let e = pair_spec(name, specs).unwrap_err();
            assert_eq!(e.code(), "KMS.0308", "{name}");
            assert!(e.message.starts_with("Invalid key_spec"), "{name}: {}", e.message);
        }
        let e = pair_spec("SM2", EC_PAIR_SPECS).unwrap_err();
        assert!(e.message.contains("does not simulate SM2"), "{}", e.message);
    }
}
