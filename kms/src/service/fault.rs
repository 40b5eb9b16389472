//! The KMS's side of fault injection and request quotas: the rules (`/_sim/faults`) that fire on a KMS call, and
//! the quota (`--quotas aws`) it counts against, whichever front end or service made it, with the key it names
//! resolved as the call itself would resolve it.

use faults::quotas::KmsQuota;
use faults::{Call, Fired, InjectedError, Service};
use shared::RequestContext;

use super::Kms;
use crate::spec::Family;

/// The cryptographic operations: they share the quota of their key's type (symmetric, RSA, ECC) instead of
/// having one of their own.
const CRYPTOGRAPHIC: &[&str] = &[
    "Decrypt",
    "DeriveSharedSecret",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "ReEncrypt",
    "Sign",
    "Verify",
    "VerifyMac",
];

impl Kms {
    /// The fault rules that fire on the call of `context`, made in `dialect` (`aws`, `otc` or `internal`), naming
    /// `key` (an id, ARN, alias or alias ARN) or the key of `blob` (a ciphertext blob); `None` when none fires,
    /// at the cost of one atomic load when no rule is held.
    pub fn fault(
        &self,
        context: &RequestContext,
        dialect: &str,
        key: Option<&str>,
        blob: Option<&[u8]>,
    ) -> Option<Fired> {
        if !self.faults.active(Service::Kms) {
            return None;
        }
        let caller = &context.caller;
        let resolve = |name: &str| self.resolve(caller, name, true).ok().map(|live| live.record.id.clone());
        let key_id = match (key, blob) {
            (Some(name), _) => resolve(name),
            (None, Some(blob)) => crate::blob::parse(blob).ok().map(|header| header.key_id.to_owned()),
            (None, None) => None,
        };
        let call = Call {
            dialect,
            operation: context.operation,
            principal: &caller.principal_arn,
            access_key: &caller.access_key_id,
            key_id: key_id.as_deref(),
            ..Call::default()
        };
        self.faults.check(Service::Kms, &call, &resolve)
    }

    /// Counts the call of `context` against its AWS request quota when quotas are enforced (`--quotas aws`):
    /// `ThrottlingException` when the caller's account is over it in the caller's region (cross-account calls
    /// count against the caller's account, as AWS counts them). A cryptographic operation counts against the
    /// quota of the type of the key it names as `key` or in `blob`, GenerateRandom against the symmetric one,
    /// a data key pair against the quota of its `key_pair_spec`, any other operation against its own quota if
    /// AWS lists one. One atomic load when quotas are off.
    pub fn quota(
        &self,
        context: &RequestContext,
        key: Option<&str>,
        blob: Option<&[u8]>,
        key_pair_spec: Option<&str>,
    ) -> Option<InjectedError> {
        let quotas = &self.faults.quotas;
        if !quotas.enabled() {
            return None;
        }
        let caller = &context.caller;
        let quota = match context.operation {
            "GenerateRandom" => KmsQuota::Symmetric,
            "GenerateDataKeyPair" | "GenerateDataKeyPairWithoutPlaintext" => KmsQuota::key_pair(key_pair_spec?)?,
            operation if CRYPTOGRAPHIC.contains(&operation) => {
                let spec = match (key, blob) {
                    (Some(name), _) => self.resolve(caller, name, true).ok().map(|live| live.record.spec),
                    (None, Some(blob)) => crate::blob::parse(blob)
                        .ok()
                        .and_then(|header| self.key_record_in(&caller.region, header.key_id))
                        .map(|record| record.spec),
                    (None, None) => None,
                };
                // A key that does not resolve fails the call anyway; the request still counts, as symmetric
                // (the default key type).
                match spec.map(|spec| spec.family()) {
                    Some(Family::Rsa) => KmsQuota::Rsa,
                    Some(Family::Ecc) => KmsQuota::Ecc,
                    Some(Family::Symmetric | Family::Hmac) | None => KmsQuota::Symmetric,
                }
            }
            operation => KmsQuota::operation(operation)?,
        };
        quotas.kms(&caller.account_id, &caller.region, quota)
    }
}

#[cfg(test)]
mod tests {
    use faults::quotas::{Mode, QuotaConfig};
    use shared::{Api, Caller};

    use super::*;
    use crate::service::CreateKeyInput;
    use crate::spec::{KeySpec, KeyUsage};

    fn caller(account: &str, region: &str) -> Caller {
        Caller {
            account_id: account.into(),
            region: region.into(),
            access_key_id: "test".into(),
            principal_arn: shared::caller::root_principal(account),
            via_service: None,
            peer: None,
            decisions: Default::default(),
        }
    }

    fn context(caller: &Caller, operation: &'static str) -> RequestContext {
        RequestContext::new(caller.clone(), None, Api::AwsKms, operation, "kms:Any")
    }

    /// A KMS whose quotas are one call each (one call in 10 seconds for the symmetric quota).
    fn kms_with_quotas_of_one() -> Kms {
        let kms = Kms::in_memory().unwrap();
        let rates = [("symmetric", 0.1), ("rsa", 1.0), ("ecc", 1.0), ("DescribeKey", 1.0), ("CreateKey", 100.0)];
        let config = QuotaConfig {
            mode: Mode::Aws,
            kms: rates.iter().map(|(name, rate)| ((*name).to_owned(), *rate)).collect(),
            ..QuotaConfig::default()
        };
        kms.faults.quotas.configure(&config).unwrap();
        kms
    }

    #[test]
    fn cryptographic_calls_count_against_their_keys_type_and_others_against_their_own() {
        let kms = kms_with_quotas_of_one();
        let alice = caller("111122223333", "us-east-1");
        let create = |spec, usage| {
            let input = CreateKeyInput { spec, usage, ..CreateKeyInput::default() };
            kms.create_key(&alice, input).unwrap().id
        };
        let symmetric = create(KeySpec::SymmetricDefault, KeyUsage::EncryptDecrypt);
        let hmac = create(KeySpec::Hmac256, KeyUsage::GenerateVerifyMac);
        let rsa = create(KeySpec::Rsa2048, KeyUsage::EncryptDecrypt);
        let ecc = create(KeySpec::EccNistP256, KeyUsage::SignVerify);
        let throttled = |operation, key: &str| kms.quota(&context(&alice, operation), Some(key), None, None).is_some();

        assert!(!throttled("Encrypt", &symmetric));
        assert!(throttled("GenerateMac", &hmac), "HMAC keys share the symmetric quota");
        assert!(kms.quota(&context(&alice, "GenerateRandom"), None, None, None).is_some());
        assert!(!throttled("Encrypt", &rsa) && throttled("Decrypt", &rsa));
        assert!(!throttled("Sign", &ecc) && throttled("Verify", &ecc));
        assert!(!throttled("DescribeKey", &symmetric) && throttled("DescribeKey", &ecc));
        assert!((0..100).all(|_| !throttled("ListKeyRotations", &symmetric)), "its own quota: 100 per second");
        assert!(throttled("ListKeyRotations", &symmetric));
        let error = kms.quota(&context(&alice, "Encrypt"), Some(&symmetric), None, None).unwrap();
        assert_eq!((error.code, error.status), ("ThrottlingException", 400));

        // A ciphertext blob names its key: Decrypt of a symmetric blob counts against the symmetric quota.
        let (blob, _) = kms
            .encrypt(&alice, &symmetric, b"x", &Default::default(), crate::spec::EncryptionAlgorithm::SymmetricDefault)
            .unwrap();
        assert!(kms.quota(&context(&alice, "Decrypt"), None, Some(&blob), None).is_some());

        // Another account, or another region, has quotas of its own.
        let bob = caller("444455556666", "us-east-1");
        assert!(kms.quota(&context(&bob, "GenerateRandom"), None, None, None).is_none());
        let west = caller("111122223333", "us-west-2");
        assert!(kms.quota(&context(&west, "GenerateRandom"), None, None, None).is_none());
    }

    #[test]
    fn data_key_pairs_count_against_their_spec() {
        let kms = kms_with_quotas_of_one();
        let alice = caller("111122223333", "us-east-1");
        let pair = |spec| kms.quota(&context(&alice, "GenerateDataKeyPair"), Some("k"), None, Some(spec));
        // RSA_2048: 20 per second; ECC_NIST_P256: 100.
        assert!((0..20).all(|_| pair("RSA_2048").is_none()) && pair("RSA_2048").is_some());
        assert!((0..100).all(|_| pair("ECC_NIST_P256").is_none()) && pair("ECC_NIST_P256").is_some());
        assert!(pair("RSA_1024").is_none(), "an unknown spec fails validation, not the quota");
    }

    #[test]
    fn quotas_off_throttle_nothing() {
        let kms = Kms::in_memory().unwrap();
        let alice = caller("111122223333", "us-east-1");
        assert!((0..100).all(|_| kms.quota(&context(&alice, "CreateKey"), None, None, None).is_none()));
    }
}
