//! [`KmsOperation`]: every operation of the AWS KMS API, the one list the AWS front end dispatches on, the
//! "not implemented" answer and `docs/api-coverage.md` come from.

use crate::operation::operation_table;

/// The `X-Amz-Target` prefix of KMS operations.
pub const TARGET_PREFIX: &str = "TrentService.";

operation_table! {
    aws
    /// An operation of the AWS KMS API (`X-Amz-Target: TrentService.<Name>`), implemented or not.
    ///
    /// The IAM action is `kms:<Name>` but for ReEncrypt, which AWS authorises as `kms:ReEncryptFrom` on the source
    /// key and `kms:ReEncryptTo` on the destination key (its resource here). Resources follow the AWS Service
    /// Authorization Reference: alias operations act on the alias, CreateKey, ListKeys, ListAliases,
    /// GenerateRandom, ListRetirableGrants and the custom key store operations on the account (`*`).
    pub enum KmsOperation {
        CancelKeyDeletion: Supported, Writes, Key;
        ConnectCustomKeyStore: NotImplemented, Writes, Account;
        CreateAlias: Supported, Writes, Alias;
        CreateCustomKeyStore: NotImplemented, Writes, Account;
        CreateGrant: Supported, Writes, Key;
        CreateKey: Supported, Writes + KeyGen, Account;
        Decrypt: Supported, Reads, Key;
        DeleteAlias: Supported, Writes, Alias;
        DeleteCustomKeyStore: NotImplemented, Writes, Account;
        DeleteImportedKeyMaterial: Supported, Writes, Key;
        DeriveSharedSecret: Supported, Reads, Key;
        DescribeCustomKeyStores: NotImplemented, Reads, Account;
        DescribeKey: Supported, Reads, Key;
        DisableKey: Supported, Writes, Key;
        DisableKeyRotation: Supported, Writes, Key;
        DisconnectCustomKeyStore: NotImplemented, Writes, Account;
        EnableKey: Supported, Writes, Key;
        EnableKeyRotation: Supported, Writes, Key;
        Encrypt: Supported, Reads, Key;
        GenerateDataKey: Supported, Reads, Key;
        GenerateDataKeyPair: Supported, Reads + KeyGen, Key;
        GenerateDataKeyPairWithoutPlaintext: Supported, Reads + KeyGen, Key;
        GenerateDataKeyWithoutPlaintext: Supported, Reads, Key;
        GenerateMac: Supported, Reads, Key;
        GenerateRandom: Supported, Reads, Account;
        GetKeyPolicy: Supported, Reads, Key;
        GetKeyRotationStatus: Supported, Reads, Key;
        GetParametersForImport: Supported, Writes + KeyGen, Key;
        GetPublicKey: Supported, Reads, Key;
        ImportKeyMaterial: Supported, Writes, Key;
        ListAliases: Supported, Reads, Account;
        ListGrants: Supported, Reads, Key;
        ListKeyPolicies: Supported, Reads, Key;
        ListKeyRotations: Supported, Reads, Key;
        ListKeys: Supported, Reads, Account;
        ListResourceTags: Supported, Reads, Key;
        ListRetirableGrants: Supported, Reads, Account;
        PutKeyPolicy: Supported, Writes, Key;
        ReEncrypt: Supported, Reads, Key, action "kms:ReEncryptTo";
        ReplicateKey: Supported, Writes, Key;
        RetireGrant: Supported, Writes, Key;
        RevokeGrant: Supported, Writes, Key;
        RotateKeyOnDemand: Supported, Writes, Key;
        ScheduleKeyDeletion: Supported, Writes, Key;
        Sign: Supported, Reads, Key;
        TagResource: Supported, Writes, Key;
        UntagResource: Supported, Writes, Key;
        UpdateAlias: Supported, Writes, Alias;
        UpdateCustomKeyStore: NotImplemented, Writes, Account;
        UpdateKeyDescription: Supported, Writes, Key;
        UpdatePrimaryRegion: Supported, Writes, Key;
        Verify: Supported, Reads, Key;
        VerifyMac: Supported, Reads, Key;
    }
}

impl KmsOperation {
    /// The operation an `X-Amz-Target` header names (`TrentService.GenerateDataKey`); `None` for anything else,
    /// which the front end answers with UnknownOperationException.
    pub fn parse(target: &str) -> Option<Self> {
        target.strip_prefix(TARGET_PREFIX).and_then(Self::from_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::{ResourceKind, coverage};

    const REGION: &str = "us-east-2";
    const ACCOUNT: &str = "111122223333";
    const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
    const KEY_ARN: &str = "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    /// One request example of the AWS KMS API Reference: its operation (`X-Amz-Target: TrentService.<it>`), the
    /// key or alias it names (the reference's `1234abcd-...` key, `alias/ExampleAlias`), and what it must yield.
    struct Example {
        operation: &'static str,
        names: &'static str,
        action: &'static str,
        mutates: bool,
        resource: &'static str,
    }

    const fn example(
        operation: &'static str,
        names: &'static str,
        action: &'static str,
        mutates: bool,
        resource: &'static str,
    ) -> Example {
        Example { operation, names, action, mutates, resource }
    }

    /// The reference's examples, one per implemented operation (and a few it does not implement).
    const EXAMPLES: &[Example] = &[
        example("CancelKeyDeletion", KEY_ID, "kms:CancelKeyDeletion", true, KEY_ARN),
        example("CreateAlias", "alias/ExampleAlias", "kms:CreateAlias", true, ALIAS_ARN),
        example("CreateGrant", KEY_ARN, "kms:CreateGrant", true, KEY_ARN),
        example("CreateKey", "", "kms:CreateKey", true, "*"),
        example("Decrypt", KEY_ARN, "kms:Decrypt", false, KEY_ARN),
        example("DeleteAlias", "alias/ExampleAlias", "kms:DeleteAlias", true, ALIAS_ARN),
        example("DescribeKey", KEY_ID, "kms:DescribeKey", false, KEY_ARN),
        example("DisableKey", KEY_ID, "kms:DisableKey", true, KEY_ARN),
        example("DisableKeyRotation", KEY_ID, "kms:DisableKeyRotation", true, KEY_ARN),
        example("EnableKey", KEY_ID, "kms:EnableKey", true, KEY_ARN),
        example("EnableKeyRotation", KEY_ID, "kms:EnableKeyRotation", true, KEY_ARN),
        example("Encrypt", KEY_ID, "kms:Encrypt", false, KEY_ARN),
        example("GenerateDataKey", KEY_ARN, "kms:GenerateDataKey", false, KEY_ARN),
        example("GenerateDataKeyWithoutPlaintext", KEY_ARN, "kms:GenerateDataKeyWithoutPlaintext", false, KEY_ARN),
        example("GenerateRandom", "", "kms:GenerateRandom", false, "*"),
        example("GetKeyPolicy", KEY_ID, "kms:GetKeyPolicy", false, KEY_ARN),
        example("GetKeyRotationStatus", KEY_ID, "kms:GetKeyRotationStatus", false, KEY_ARN),
        example("ListAliases", "", "kms:ListAliases", false, "*"),
        example("ListGrants", KEY_ID, "kms:ListGrants", false, KEY_ARN),
        example("ListKeyPolicies", KEY_ID, "kms:ListKeyPolicies", false, KEY_ARN),
        example("ListKeyRotations", KEY_ID, "kms:ListKeyRotations", false, KEY_ARN),
        example("ListKeys", "", "kms:ListKeys", false, "*"),
        example("ListResourceTags", KEY_ID, "kms:ListResourceTags", false, KEY_ARN),
        example("ListRetirableGrants", "", "kms:ListRetirableGrants", false, "*"),
        example("PutKeyPolicy", KEY_ID, "kms:PutKeyPolicy", true, KEY_ARN),
        example("ReEncrypt", KEY_ID, "kms:ReEncryptTo", false, KEY_ARN),
        example("RetireGrant", KEY_ARN, "kms:RetireGrant", true, KEY_ARN),
        example("RevokeGrant", KEY_ID, "kms:RevokeGrant", true, KEY_ARN),
        example("RotateKeyOnDemand", KEY_ID, "kms:RotateKeyOnDemand", true, KEY_ARN),
        example("ScheduleKeyDeletion", KEY_ID, "kms:ScheduleKeyDeletion", true, KEY_ARN),
        example("TagResource", KEY_ID, "kms:TagResource", true, KEY_ARN),
        example("UntagResource", KEY_ID, "kms:UntagResource", true, KEY_ARN),
        example("UpdateAlias", "alias/ExampleAlias", "kms:UpdateAlias", true, ALIAS_ARN),
        example("UpdateKeyDescription", KEY_ID, "kms:UpdateKeyDescription", true, KEY_ARN),
        example("Sign", KEY_ARN, "kms:Sign", false, KEY_ARN),
        example("Verify", KEY_ARN, "kms:Verify", false, KEY_ARN),
        example("GetPublicKey", KEY_ARN, "kms:GetPublicKey", false, KEY_ARN),
        example("GenerateMac", KEY_ARN, "kms:GenerateMac", false, KEY_ARN),
        example("VerifyMac", KEY_ARN, "kms:VerifyMac", false, KEY_ARN),
        example("GenerateDataKeyPair", KEY_ARN, "kms:GenerateDataKeyPair", false, KEY_ARN),
        example(
            "GenerateDataKeyPairWithoutPlaintext",
            KEY_ARN,
            "kms:GenerateDataKeyPairWithoutPlaintext",
            false,
            KEY_ARN,
        ),
        example("DeriveSharedSecret", KEY_ARN, "kms:DeriveSharedSecret", false, KEY_ARN),
        example("ReplicateKey", "mrk-1234abcd12ab34cd56ef1234567890ab", "kms:ReplicateKey", true, MRK_ARN),
        example(
            "UpdatePrimaryRegion",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            "kms:UpdatePrimaryRegion",
            true,
            MRK_ARN,
        ),
        example("GetParametersForImport", KEY_ID, "kms:GetParametersForImport", true, KEY_ARN),
        example("DeleteImportedKeyMaterial", KEY_ID, "kms:DeleteImportedKeyMaterial", true, KEY_ARN),
        example("CreateCustomKeyStore", "", "kms:CreateCustomKeyStore", true, "*"),
        example("ImportKeyMaterial", KEY_ID, "kms:ImportKeyMaterial", true, KEY_ARN),
    ];

    const MRK_ARN: &str = "arn:aws:kms:us-east-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab";
    const ALIAS_ARN: &str = "arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias";

    #[test]
    fn the_api_reference_examples_parse_to_their_action_mutation_and_resource() {
        for example in EXAMPLES {
            let target = format!("{TARGET_PREFIX}{}", example.operation);
            let operation = KmsOperation::parse(&target).unwrap_or_else(|| panic!("{target} does not parse"));
            let resource = operation.resource(REGION, ACCOUNT, example.names);
            let yields = (operation.name(), operation.action(), operation.is_mutation(), resource.as_str());
            assert_eq!(yields, (example.operation, example.action, example.mutates, example.resource), "{target}");
        }
    }

    #[test]
    fn api_coverage_and_the_examples_cover_the_table() {
        let examples: Vec<&str> = EXAMPLES.iter().map(|e| e.operation).collect();
        coverage::check("AWS KMS", KmsOperation::ALL.iter().map(|op| op.info()), &examples);
    }

    #[test]
    fn only_kms_targets_parse() {
        for target in [
            "",
            "TrentService.",
            "GenerateDataKey",
            "TrentService.generateDataKey",
            "TrentService.GenerateDataKey ",
            "TrentService.Frobnicate",
            "AmazonS3.PutObject",
            "trentservice.Encrypt",
        ] {
            assert_eq!(KmsOperation::parse(target), None, "{target:?}");
        }
    }

    #[test]
    fn names_are_unique_and_actions_follow_them() {
        for (i, operation) in KmsOperation::ALL.iter().enumerate() {
            assert_eq!(KmsOperation::from_name(operation.name()), Some(*operation));
            assert!(KmsOperation::ALL[..i].iter().all(|other| other.name() != operation.name()));
            if *operation != KmsOperation::ReEncrypt {
                assert_eq!(operation.action(), format!("kms:{operation}"));
            }
        }
    }

    #[test]
    fn operations_that_act_on_no_single_key_name_the_account() {
        let on_account: Vec<&str> = KmsOperation::ALL
            .iter()
            .filter(|op| op.resource_kind() == ResourceKind::Account)
            .map(|op| op.name())
            .collect();
        assert_eq!(
            on_account,
            [
                "ConnectCustomKeyStore",
                "CreateCustomKeyStore",
                "CreateKey",
                "DeleteCustomKeyStore",
                "DescribeCustomKeyStores",
                "DisconnectCustomKeyStore",
                "GenerateRandom",
                "ListAliases",
                "ListKeys",
                "ListRetirableGrants",
                "UpdateCustomKeyStore",
            ]
        );
    }
}
