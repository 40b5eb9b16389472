//! re-encrypt: a ciphertext decrypted under its key and encrypted under another, inside the core's
//! [`Kms::re_encrypt`](crate::service::Kms::re_encrypt) (the plaintext never leaves it), as the AWS dialect's
//! ReEncrypt does.
//!
//! The dialect has two ciphertext forms and re-encrypt keeps the one it is given (Huawei's reference: "a DEK can
//! only be re-encrypted into a DEK"): the hex of create-datakey, create-datakey-without-plaintext and
//! encrypt-datakey, and the base64 of encrypt-data (and of the AWS dialect's `CiphertextBlob`). A hex `cipher_text`
//! is a data key's; anything else is read as base64 (a base64 blob of any length is, in practice, never all hex
//! digits). `source_additional_authenticated_data` and `destination_additional_authenticated_data` are the two
//! encryption contexts, as `additional_authenticated_data` is elsewhere.

use base64::Engine as _;
use serde_json::{Value, json};

use super::{AAD_CONTEXT_KEY, AlgorithmTable, BASE64, Call, OtcError, WithCode as _, id_of_arn, parse_algorithm};
use crate::blob::EncryptionContext;
use crate::error::Error;
use crate::service::ReEncryptInput;
use crate::spec::EncryptionAlgorithm;

/// `source_encryption_algorithm` and `destination_encryption_algorithm` (Huawei's ReEncrypt reference lists
/// RSAES_OAEP_SHA_1 too, unlike encrypt-data's).
const RE_ENCRYPT_ALGORITHMS: AlgorithmTable<EncryptionAlgorithm> = AlgorithmTable {
    accepted: &[
        EncryptionAlgorithm::SymmetricDefault,
        EncryptionAlgorithm::RsaesOaepSha1,
        EncryptionAlgorithm::RsaesOaepSha256,
    ],
    name: EncryptionAlgorithm::as_str,
    unsimulated: &["SM2_ENCRYPT"],
};

/// The two forms of a ciphertext in the dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A data key's ciphertext, hex (create-datakey, encrypt-datakey, decrypt-datakey).
    DataKey,
    /// encrypt-data's ciphertext, base64.
    Data,
}

impl Form {
    /// The form of a `cipher_text`: hex digits (an even number of them) are a data key's.
    fn of(text: &str) -> Self {
        let hex = !text.is_empty() && text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit());
        if hex { Form::DataKey } else { Form::Data }
    }

    fn decode(self, text: &str) -> Result<Vec<u8>, OtcError> {
        match self {
            Form::DataKey => hex::decode(text).map_err(|_| OtcError::bad("KMS.2201", "Invalid cipher_text.")),
            Form::Data => BASE64.decode(text).map_err(|_| OtcError::bad("KMS.2201", "Invalid cipher_text.")),
        }
    }

    fn encode(self, blob: &[u8]) -> String {
        match self {
            Form::DataKey => hex::encode(blob),
            Form::Data => BASE64.encode(blob),
        }
    }
}

impl Call<'_> {
    /// re-encrypt.
    pub(super) fn re_encrypt(&mut self) -> Result<Value, OtcError> {
        let text = self.str("cipher_text")?.to_owned();
        let form = Form::of(&text);
        let blob = form.decode(&text)?;
        let source_algorithm = self.re_encrypt_algorithm("source_encryption_algorithm")?;
        let destination_algorithm = self.re_encrypt_algorithm("destination_encryption_algorithm")?;
        let symmetric = EncryptionAlgorithm::SymmetricDefault;
        if form == Form::DataKey && (source_algorithm != symmetric || destination_algorithm != symmetric) {
            return Err(OtcError::bad(
                "KMS.0308",
                "A data key ciphertext (hex) is re-encrypted into a data key: both algorithms SYMMETRIC_DEFAULT.",
            ));
        }
        // As decrypt-datakey, the length of the data key, in bytes; kmsim's data key ciphertexts say their own
        // length (the reference wants it for CBC ciphertexts, which kmsim does not make), so it is only checked.
        if let Some(length) = self.opt_int("datakey_cipher_length")?
            && !(1..=1024).contains(&length)
        {
            return Err(OtcError::bad("KMS.2202", "datakey_cipher_length must be between 1 and 1024 bytes."));
        }
        let source_key_id = match self.opt_str("source_key_id")? {
            Some(id) if !id.is_empty() => Some(self.key_id_in("source_key_id")?),
            // An RSA ciphertext does not name its key.
            _ if source_algorithm != symmetric => return Err(OtcError::missing("source_key_id")),
            _ => None,
        };
        let destination_key_id = self.key_id_in("destination_key_id")?;
        let source_context = self.aad_context("source_additional_authenticated_data")?;
        let destination_context = self.aad_context("destination_additional_authenticated_data")?;
        self.audit.context = Some(destination_context.clone());
        let input = ReEncryptInput {
            ciphertext: &blob,
            source_context: &source_context,
            source_key_id: source_key_id.as_deref(),
            source_algorithm,
            destination_key_id: &destination_key_id,
            destination_context: &destination_context,
            destination_algorithm,
        };
        // A ciphertext that does not decrypt answers as the verb that decrypts its form would.
        let out = self.kms.re_encrypt(&self.context.caller, input).with(|e| match e {
            Error::InvalidCiphertext(_) if form == Form::DataKey => Some("KMS.2201"),
            Error::InvalidCiphertext(_) if source_algorithm != symmetric => Some("KMS.0311"),
            _ => None,
        })?;
        self.audit.key_arn = Some(out.key_arn.clone());
        Ok(json!({
            "key_id": id_of_arn(&out.key_arn),
            "source_key_id": id_of_arn(&out.source_key_arn),
            "source_encryption_algorithm": source_algorithm.as_str(),
            "destination_encryption_algorithm": destination_algorithm.as_str(),
            "cipher_text": form.encode(&out.ciphertext_blob),
        }))
    }

    /// An encryption algorithm field of re-encrypt, SYMMETRIC_DEFAULT when absent.
    fn re_encrypt_algorithm(&self, field: &str) -> Result<EncryptionAlgorithm, OtcError> {
        match self.opt_str(field)? {
            None | Some("") => Ok(EncryptionAlgorithm::SymmetricDefault),
            Some(name) => parse_algorithm(field, name, RE_ENCRYPT_ALGORITHMS),
        }
    }

    /// An AAD field as an encryption context (`{"additional_authenticated_data": aad}`, empty without one).
    fn aad_context(&self, field: &str) -> Result<EncryptionContext, OtcError> {
        let mut context = EncryptionContext::new();
        if let Some(aad) = self.opt_str(field)?.filter(|a| !a.is_empty()) {
            context.insert(AAD_CONTEXT_KEY.to_owned(), aad.to_owned());
        }
        Ok(context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otc::OtcVerb;
    use crate::otc::tests::run;
    use crate::service::Kms;

    fn create_key(kms: &Kms, alias: &str) -> String {
        let created = run(kms, OtcVerb::CreateKey, json!({"key_alias": alias})).unwrap();
        created["key_info"]["key_id"].as_str().unwrap().to_owned()
    }

    #[test]
    fn a_data_key_stays_hex_and_decrypts_under_the_new_key_and_context() {
        let kms = Kms::in_memory().unwrap();
        let (from, to) = (create_key(&kms, "from"), create_key(&kms, "to"));
        let made = run(&kms, OtcVerb::CreateDatakey, json!({"key_id": from, "additional_authenticated_data": "a"}));
        let made = made.unwrap();
        let body = json!({"cipher_text": made["cipher_text"], "source_additional_authenticated_data": "a",
                          "destination_key_id": to, "destination_additional_authenticated_data": "b"});
        let out = run(&kms, OtcVerb::ReEncrypt, body).unwrap();
        assert_eq!((&out["key_id"], &out["source_key_id"]), (&json!(to), &json!(from)));
        assert_eq!(out["source_encryption_algorithm"], "SYMMETRIC_DEFAULT");
        let cipher_text = out["cipher_text"].as_str().unwrap();
        assert_eq!(Form::of(cipher_text), Form::DataKey);
        let decrypted = run(
            &kms,
            OtcVerb::DecryptDatakey,
            json!({"key_id": to, "cipher_text": cipher_text,
            "datakey_cipher_length": "32", "additional_authenticated_data": "b"}),
        )
        .unwrap();
        assert_eq!(decrypted["data_key"], made["plain_text"]);
        // The old AAD does not open it, and the old one still opens under the old key.
        let wrong = run(
            &kms,
            OtcVerb::DecryptDatakey,
            json!({"key_id": to, "cipher_text": cipher_text,
            "datakey_cipher_length": "32", "additional_authenticated_data": "a"}),
        );
        assert_eq!(wrong.unwrap_err().code(), "KMS.2201");
    }

    #[test]
    fn bad_input_is_the_reference_s_error() {
        let kms = Kms::in_memory().unwrap();
        let key = create_key(&kms, "k");
        let data = run(&kms, OtcVerb::EncryptData, json!({"key_id": key, "plain_text": "hello"})).unwrap();
        let data_text = data["cipher_text"].as_str().unwrap().to_owned();
        let dek = run(&kms, OtcVerb::CreateDatakey, json!({"key_id": key})).unwrap();
        let dek_text = dek["cipher_text"].as_str().unwrap().to_owned();
        let mut flipped = BASE64.decode(&data_text).unwrap();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        for (body, expected) in [
            (json!({"destination_key_id": key}), "KMS.0204"),
            (json!({"cipher_text": data_text}), "KMS.0204"),
            (json!({"cipher_text": "!!", "destination_key_id": key}), "KMS.2201"),
            (json!({"cipher_text": BASE64.encode(&flipped), "destination_key_id": key}), "KMS.0308"),
            (json!({"cipher_text": &dek_text[..dek_text.len() - 2], "destination_key_id": key}), "KMS.2201"),
            (
                json!({"cipher_text": dek_text, "destination_key_id": key,
                    "destination_encryption_algorithm": "RSAES_OAEP_SHA_256"}),
                "KMS.0308",
            ),
            (
                json!({"cipher_text": data_text, "destination_key_id": key,
                    "source_encryption_algorithm": "RSAES_OAEP_SHA_256"}),
                "KMS.0204",
            ),
            (
                json!({"cipher_text": data_text, "destination_key_id": key,
                    "destination_encryption_algorithm": "SM2_ENCRYPT"}),
                "KMS.0308",
            ),
            (json!({"cipher_text": data_text, "destination_key_id": "no/such"}), "KMS.0205"),
            (
                json!({"cipher_text": data_text, "destination_key_id": "0d0466b0-e727-4d9c-b35d-f84bb474a37f"}),
                "KMS.0207",
            ),
            (
                json!({"cipher_text": data_text, "destination_key_id": key, "source_additional_authenticated_data": "x"}),
                "KMS.0308",
            ),
            (json!({"cipher_text": dek_text, "destination_key_id": key, "datakey_cipher_length": "0"}), "KMS.2202"),
        ] {
            let result = run(&kms, OtcVerb::ReEncrypt, body.clone());
            assert_eq!(result.unwrap_err().code(), expected, "{body}");
        }
    }

    #[test]
    fn hex_is_a_data_key_and_anything_else_base64() {
        assert_eq!(Form::of("00ff10AB"), Form::DataKey);
        for text in ["00f", "AQIDBA==", "AQID", "abcd+/=", "", "zz"] {
            assert_eq!(Form::of(text), Form::Data, "{text}");
        }
        assert_eq!(Form::DataKey.decode("0aff").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(Form::Data.decode("AQID").unwrap(), vec![1, 2, 3]);
        assert_eq!(Form::Data.decode("not base64!").unwrap_err().code(), "KMS.2201");
        for blob in [&b""[..], b"\x00", b"kmsim"] {
            for form in [Form::DataKey, Form::Data] {
                assert_eq!(form.decode(&form.encode(blob)).unwrap(), blob);
            }
        }
    }
}
