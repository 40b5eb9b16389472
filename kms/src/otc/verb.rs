//! [`OtcVerb`]: every operation of the OTC / Huawei Cloud KMS REST API v1.0, the one list the OTC front end routes
//! and dispatches on, the "not implemented" answer and `docs/api-coverage.md` come from.

use crate::operation::operation_table;

operation_table! {
    /// An operation of the OTC / Huawei Cloud KMS API, implemented or not, named as kmsim's audit log names it (the
    /// API's path verb where it has one).
    ///
    /// Most verbs are `POST /v1.0/{project_id}/kms/<verb>`; the tag and alias operations have paths of their own
    /// ([`OWN_PATHS`]). A verb kmsim does not implement is recognised under any method and below its name.
    ///
    /// IAM actions are Huawei's role/policy-based action names where the Huawei KMS API reference ("Permissions
    /// Policies and Supported Actions" and each API's "Authorization Information") confirms them: `kms:cmk:create`,
    /// `kms:cmk:get`, `kms:cmk:list`, `kms:cmk:update` (alias, description, deletion and its cancelling),
    /// `kms:cmk:enable`, `kms:cmk:disable`, `kms:cmk:generate` (gen-random), `kms:dek:create`, `kms:dek:crypto`,
    /// `kms:cmk:crypto` (encrypt-data, decrypt-data), `kms:grant:create`, `kms:grant:retire`, `kms:grant:list`,
    /// `kms:cmk:getQuota`, `kms:cmk:getInstance`, `kms:cmk:sign` (the identity-policy action of Huawei's Sign
    /// reference), `kms:cmk:createDataKeyPair` (CreateEcDatakeyPair's, also used for the RSA pairs) and
    /// `kms:cmk:listKeysByTag` (ListKmsByTags'); `kms:cmk:verify` and `kms:cmk:getPublicKey` are the names custom policies for OTC KMS grant. The
    /// others (rotation, revoke-grant, tags, aliases, the MAC verbs and the verbs kmsim does not implement) could not
    /// be confirmed and carry the AWS action of the equivalent operation (`kms:EnableKeyRotation`,
    /// `kms:RevokeGrant`, `kms:GenerateMac`, ...).
    pub enum OtcVerb {
        CreateKey => "create-key", "kms:cmk:create", Supported, Writes + KeyGen, Account;
        DescribeKey => "describe-key", "kms:cmk:get", Supported, Reads, Key;
        ListKeys => "list-keys", "kms:cmk:list", Supported, Reads, Account;
        UpdateKeyAlias => "update-key-alias", "kms:cmk:update", Supported, Writes, Key;
        UpdateKeyDescription => "update-key-description", "kms:cmk:update", Supported, Writes, Key;
        EnableKey => "enable-key", "kms:cmk:enable", Supported, Writes, Key;
        DisableKey => "disable-key", "kms:cmk:disable", Supported, Writes, Key;
        ScheduleKeyDeletion => "schedule-key-deletion", "kms:cmk:update", Supported, Writes, Key;
        CancelKeyDeletion => "cancel-key-deletion", "kms:cmk:update", Supported, Writes, Key;
        CreateDatakey => "create-datakey", "kms:dek:create", Supported, Reads, Key;
        CreateDatakeyWithoutPlaintext => "create-datakey-without-plaintext", "kms:dek:create", Supported, Reads,
            Key;
        EncryptDatakey => "encrypt-datakey", "kms:dek:crypto", Supported, Reads, Key;
        DecryptDatakey => "decrypt-datakey", "kms:dek:crypto", Supported, Reads, Key;
        EncryptData => "encrypt-data", "kms:cmk:crypto", Supported, Reads, Key;
        DecryptData => "decrypt-data", "kms:cmk:crypto", Supported, Reads, Key;
        GenRandom => "gen-random", "kms:cmk:generate", Supported, Reads, Account;
        EnableKeyRotation => "enable-key-rotation", "kms:EnableKeyRotation", Supported, Writes, Key;
        DisableKeyRotation => "disable-key-rotation", "kms:DisableKeyRotation", Supported, Writes, Key;
        GetKeyRotationStatus => "get-key-rotation-status", "kms:GetKeyRotationStatus", Supported, Reads, Key;
        UpdateKeyRotationInterval => "update-key-rotation-interval", "kms:EnableKeyRotation", Supported, Writes,
            Key;
        CreateGrant => "create-grant", "kms:grant:create", Supported, Writes, Key;
        RevokeGrant => "revoke-grant", "kms:RevokeGrant", Supported, Writes, Key;
        RetireGrant => "retire-grant", "kms:grant:retire", Supported, Writes, Key;
        ListGrants => "list-grants", "kms:grant:list", Supported, Reads, Key;
        ListRetirableGrants => "list-retirable-grants", "kms:grant:list", Supported, Reads, Account;
        CreateKmsTag => "create-kms-tag", "kms:TagResource", Supported, Writes, Key;
        /// Tags or untags (`"action": "create" | "delete"`); its action is the tagging one.
        BatchCreateKmsTags => "batch-create-kms-tags", "kms:TagResource", Supported, Writes, Key;
        DeleteTag => "delete-tag", "kms:UntagResource", Supported, Writes, Key;
        ShowKmsTags => "show-kms-tags", "kms:ListResourceTags", Supported, Reads, Key;
        ListKmsTags => "list-kms-tags", "kms:ListResourceTags", Supported, Reads, Account;
        CreateAlias => "create-alias", "kms:CreateAlias", Supported, Writes, Alias;
        DeleteAlias => "delete-alias", "kms:DeleteAlias", Supported, Writes, Alias;
        ListAliases => "list-aliases", "kms:ListAliases", Supported, Reads, Account;
        AssociateAlias => "associate-alias", "kms:UpdateAlias", Supported, Writes, Alias;
        CreateEcDatakeyPair => "create-ec-datakey-pair", "kms:cmk:createDataKeyPair", Supported, Reads, Key;
        CreateRsaDatakeyPair => "create-rsa-datakey-pair", "kms:cmk:createDataKeyPair", Supported,
            Reads + KeyGen, Key;
        GetPublickey => "get-publickey", "kms:cmk:getPublicKey", Supported, Reads, Key;
        Sign => "sign", "kms:cmk:sign", Supported, Reads, Key;
        Verify => "verify", "kms:cmk:verify", Supported, Reads, Key;
        GenerateMac => "generate-mac", "kms:GenerateMac", Supported, Reads, Key;
        VerifyMac => "verify-mac", "kms:VerifyMac", Supported, Reads, Key;
        GetParametersForImport => "get-parameters-for-import", "kms:cmk:getMaterial", Supported,
            Writes + KeyGen, Key;
        ImportKeyMaterial => "import-key-material", "kms:cmk:importMaterial", Supported, Writes, Key;
        DeleteImportedKeyMaterial => "delete-imported-key-material", "kms:cmk:deleteMaterial", Supported, Writes,
            Key;
        ReEncrypt => "re-encrypt", "kms:ReEncryptTo", Supported, Reads, Key;
        RotateOnDemand => "rotate-on-demand", "kms:RotateKeyOnDemand", Supported, Writes, Key;
        DeriveSharedSecret => "derive-shared-secret", "kms:DeriveSharedSecret", Supported, Reads, Key;
        CreatePin => "create-pin", "kms:GenerateRandom", NotImplemented, Reads, Account;
        /// The key policies of Huawei's API (`kms/key-policies`, `kms/key-policies/{policy_id}`).
        KeyPolicies => "key-policies", "kms:PutKeyPolicy", NotImplemented, Writes, Key;
        /// VPC access points (`kms/access-points`, `kms/access-points/{id}/...`).
        AccessPoints => "access-points", "kms:cmk:update", NotImplemented, Writes, Account;
        /// Data key capsules for confidential computing (`kms/datakey-capsule/create`, `.../decrypt`).
        DatakeyCapsule => "datakey-capsule", "kms:dek:create", NotImplemented, Reads, Key;
        /// `GET kms/user-quotas`.
        UserQuotas => "user-quotas", "kms:cmk:getQuota", Supported, Reads, Account;
        /// `GET kms/user-instances`.
        UserInstances => "user-instances", "kms:cmk:getInstance", Supported, Reads, Account;
        /// Keys by tag (`POST kms/resource_instances/action`).
        ResourceInstances => "resource_instances", "kms:cmk:listKeysByTag", Supported, Reads, Account;
    }
}

/// The verbs with paths of their own: method, path segments after `/v1.0/{project_id}/kms/` (`{...}` stands for
/// any one segment), verb. They are tried in this order, before the `POST kms/<verb>` form.
pub const OWN_PATHS: &[(&str, &[&str], OtcVerb)] = &[
    ("GET", &["tags"], OtcVerb::ListKmsTags),
    ("POST", &["aliases"], OtcVerb::CreateAlias),
    ("DELETE", &["aliases"], OtcVerb::DeleteAlias),
    ("GET", &["aliases"], OtcVerb::ListAliases),
    ("POST", &["alias", "associate"], OtcVerb::AssociateAlias),
    ("POST", &["{key_id}", "tags"], OtcVerb::CreateKmsTag),
    ("POST", &["{key_id}", "tags", "action"], OtcVerb::BatchCreateKmsTags),
    ("DELETE", &["{key_id}", "tags", "{tag_key}"], OtcVerb::DeleteTag),
    ("GET", &["{key_id}", "tags"], OtcVerb::ShowKmsTags),
    ("GET", &["user-quotas"], OtcVerb::UserQuotas),
    ("GET", &["user-instances"], OtcVerb::UserInstances),
    ("POST", &["resource_instances", "action"], OtcVerb::ResourceInstances),
];

impl OtcVerb {
    /// The verb of a request: its method and the path segments after `/v1.0/{project_id}/kms/`. An unimplemented
    /// verb is returned too (the front end answers it "not implemented"); `None` is a path the API does not have.
    pub fn parse(method: &str, segments: &[&str]) -> Option<Self> {
        let own_path = OWN_PATHS.iter().find(|(m, pattern, _)| *m == method && path_matches(pattern, segments));
        if let Some(&(_, _, verb)) = own_path {
            return Some(verb);
        }
        let (first, rest) = segments.split_first()?;
        let verb = Self::from_name(first)?;
        if !verb.is_supported() {
            return Some(verb);
        }
        (method == "POST" && rest.is_empty() && !verb.has_own_path()).then_some(verb)
    }

    /// Whether the verb is reached by a path of [`OWN_PATHS`] rather than `POST kms/<verb>`.
    fn has_own_path(self) -> bool {
        OWN_PATHS.iter().any(|&(_, _, verb)| verb == self)
    }
}

/// Whether path segments fit a pattern of [`OWN_PATHS`].
fn path_matches(pattern: &[&str], segments: &[&str]) -> bool {
    pattern.len() == segments.len()
        && pattern.iter().zip(segments).all(|(p, s)| (p.starts_with('{') && p.ends_with('}')) || p == s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::ResourceKind::{self, *};
    use crate::operation::coverage;

    const KEY_ID: &str = "0d0466b0-e727-4d9c-b35d-f84bb474a37f";

    /// A request line of the Huawei KMS API reference (`POST /v1.0/{project_id}/kms/create-key`: the method and
    /// the path after `kms/`), and what its verb must yield: name, IAM action, mutation, resource kind.
    type Example = (&'static str, &'static str, &'static str, &'static str, bool, ResourceKind);

    /// `POST kms/<verb>`.
    const fn post(verb: &'static str, action: &'static str, mutates: bool, resource: ResourceKind) -> Example {
        ("POST", verb, verb, action, mutates, resource)
    }

    /// A verb with a path of its own.
    const fn at(
        method: &'static str,
        path: &'static str,
        verb: &'static str,
        action: &'static str,
        mutates: bool,
        resource: ResourceKind,
    ) -> Example {
        (method, path, verb, action, mutates, resource)
    }

    /// The reference's request lines, one per implemented verb (and a few it does not implement).
    const EXAMPLES: &[Example] = &[
        post("create-key", "kms:cmk:create", true, Account),
        post("describe-key", "kms:cmk:get", false, Key),
        post("list-keys", "kms:cmk:list", false, Account),
        post("update-key-alias", "kms:cmk:update", true, Key),
        post("update-key-description", "kms:cmk:update", true, Key),
        post("enable-key", "kms:cmk:enable", true, Key),
        post("disable-key", "kms:cmk:disable", true, Key),
        post("schedule-key-deletion", "kms:cmk:update", true, Key),
        post("cancel-key-deletion", "kms:cmk:update", true, Key),
        post("create-datakey", "kms:dek:create", false, Key),
        post("create-datakey-without-plaintext", "kms:dek:create", false, Key),
        post("encrypt-datakey", "kms:dek:crypto", false, Key),
        post("decrypt-datakey", "kms:dek:crypto", false, Key),
        post("encrypt-data", "kms:cmk:crypto", false, Key),
        post("decrypt-data", "kms:cmk:crypto", false, Key),
        post("gen-random", "kms:cmk:generate", false, Account),
        post("enable-key-rotation", "kms:EnableKeyRotation", true, Key),
        post("disable-key-rotation", "kms:DisableKeyRotation", true, Key),
        post("get-key-rotation-status", "kms:GetKeyRotationStatus", false, Key),
        post("update-key-rotation-interval", "kms:EnableKeyRotation", true, Key),
        post("create-grant", "kms:grant:create", true, Key),
        post("revoke-grant", "kms:RevokeGrant", true, Key),
        post("retire-grant", "kms:grant:retire", true, Key),
        post("list-grants", "kms:grant:list", false, Key),
        post("list-retirable-grants", "kms:grant:list", false, Account),
        at("POST", "{key_id}/tags", "create-kms-tag", "kms:TagResource", true, Key),
        at("POST", "{key_id}/tags/action", "batch-create-kms-tags", "kms:TagResource", true, Key),
        at("DELETE", "{key_id}/tags/{key}", "delete-tag", "kms:UntagResource", true, Key),
        at("GET", "{key_id}/tags", "show-kms-tags", "kms:ListResourceTags", false, Key),
        at("GET", "tags", "list-kms-tags", "kms:ListResourceTags", false, Account),
        at("POST", "aliases", "create-alias", "kms:CreateAlias", true, Alias),
        at("DELETE", "aliases", "delete-alias", "kms:DeleteAlias", true, Alias),
        at("GET", "aliases", "list-aliases", "kms:ListAliases", false, Account),
        at("POST", "alias/associate", "associate-alias", "kms:UpdateAlias", true, Alias),
        post("sign", "kms:cmk:sign", false, Key),
        post("verify", "kms:cmk:verify", false, Key),
        post("derive-shared-secret", "kms:DeriveSharedSecret", false, Key),
        post("get-publickey", "kms:cmk:getPublicKey", false, Key),
        post("generate-mac", "kms:GenerateMac", false, Key),
        post("verify-mac", "kms:VerifyMac", false, Key),
        post("get-parameters-for-import", "kms:cmk:getMaterial", true, Key),
        post("import-key-material", "kms:cmk:importMaterial", true, Key),
        post("delete-imported-key-material", "kms:cmk:deleteMaterial", true, Key),
        post("re-encrypt", "kms:ReEncryptTo", false, Key),
        post("rotate-on-demand", "kms:RotateKeyOnDemand", true, Key),
        post("create-rsa-datakey-pair", "kms:cmk:createDataKeyPair", false, Key),
        post("create-ec-datakey-pair", "kms:cmk:createDataKeyPair", false, Key),
        at("GET", "user-quotas", "user-quotas", "kms:cmk:getQuota", false, Account),
        at("GET", "user-instances", "user-instances", "kms:cmk:getInstance", false, Account),
        at("POST", "resource_instances/action", "resource_instances", "kms:cmk:listKeysByTag", false, Account),
    ];

    /// The segments of a reference path after `kms/`, with the reference's example key id for `{key_id}`.
    fn segments(path: &str) -> Vec<String> {
        path.split('/').map(|s| if s == "{key_id}" { KEY_ID.to_owned() } else { s.to_owned() }).collect()
    }

    fn parse(method: &str, path: &str) -> Option<OtcVerb> {
        let segments = segments(path);
        OtcVerb::parse(method, &segments.iter().map(String::as_str).collect::<Vec<_>>())
    }

    #[test]
    fn the_api_reference_examples_parse_to_their_action_mutation_and_resource() {
        for &(method, path, name, action, mutates, resource) in EXAMPLES {
            let verb = parse(method, path).unwrap_or_else(|| panic!("{method} {path} does not parse"));
            let yields = (verb.name(), verb.action(), verb.is_mutation(), verb.resource_kind());
            assert_eq!(yields, (name, action, mutates, resource), "{method} {path}");
        }
    }

    #[test]
    fn api_coverage_and_the_examples_cover_the_table() {
        let verbs = OtcVerb::ALL.iter().map(|v| v.info());
        coverage::check("OTC / Huawei Cloud KMS", verbs, &EXAMPLES.iter().map(|e| e.2).collect::<Vec<_>>());
    }

    #[test]
    fn paths_the_api_does_not_have_do_not_parse() {
        for (method, path) in [
            ("GET", "create-key"),
            ("POST", "create-key/extra"),
            ("POST", "create-alias"),
            ("POST", "create-kms-tag"),
            ("PUT", "aliases"),
            ("POST", "frobnicate"),
            ("POST", "{key_id}/tags/action/more"),
            ("POST", "user-quotas"),
            ("GET", "user-instances/x"),
            ("GET", "resource_instances/action"),
            ("POST", "resource_instances"),
            ("GET", "re-encrypt"),
            ("POST", "rotate-on-demand/x"),
        ] {
            assert_eq!(parse(method, path), None, "{method} {path}");
        }
        assert_eq!(OtcVerb::parse("POST", &[]), None);
    }

    #[test]
    fn unimplemented_verbs_are_recognised_under_any_method_and_below_their_name() {
        assert_eq!(parse("DELETE", "create-pin/x"), Some(OtcVerb::CreatePin));
        assert_eq!(parse("PUT", "key-policies/abc"), Some(OtcVerb::KeyPolicies));
        assert_eq!(parse("POST", "datakey-capsule/create"), Some(OtcVerb::DatakeyCapsule));
        assert_eq!(parse("POST", "create-datakey-pair"), None, "not a verb of the API");
        // An implemented verb is reached only as `POST kms/<verb>`.
        assert_eq!(parse("DELETE", "sign/x"), None);
        assert_eq!(parse("GET", "sign"), None);
        // The tag paths come first: a key id that happens to be a verb is still a key id.
        assert_eq!(parse("POST", "sign/tags"), Some(OtcVerb::CreateKmsTag));
    }
}
