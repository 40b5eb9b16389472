//! [`IamOperation`] and [`StsOperation`]: every operation of the IAM and STS Query APIs, implemented or not —
//! the one list each front end dispatches on, the "not implemented" answer and `docs/api-coverage.md` come from.
//! Each row gives the operation's name (the `Action=` value), whether kmsim implements it, whether it changes
//! the identity store, and the kind of resource a policy names for it; the IAM action is `iam:<Name>` /
//! `sts:<Name>`.

/// Whether kmsim implements an operation. One it does not is still recognised, then answered with
/// `NotImplemented` naming `docs/api-coverage.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// kmsim implements it.
    Supported,
    /// The real API has it; kmsim answers `NotImplemented`.
    NotImplemented,
}

/// What an operation does to the identity store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// It reads.
    Reads,
    /// It changes the store (which fsyncs): the front end runs it off the async workers.
    Writes,
}

/// What an operation acts on, as an identity-based policy's `Resource` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// An IAM user: `arn:aws:iam::ACCOUNT:user/PATH/NAME`.
    User,
    /// An IAM role: `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
    Role,
    /// A managed policy: `arn:aws:iam::ACCOUNT:policy/PATH/NAME`.
    Policy,
    /// No single entity (ListUsers, GetCallerIdentity, ...): `*`.
    Account,
}

/// One row of an operation table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationInfo {
    /// The operation's name: the `Action=` parameter.
    pub name: &'static str,
    /// The IAM action a policy names (`iam:CreateUser`, `sts:AssumeRole`).
    pub action: &'static str,
    /// Whether kmsim implements it.
    pub status: Status,
    /// Whether it changes the store.
    pub effect: Effect,
    /// What it acts on.
    pub resource: ResourceKind,
}

/// Declares an API's operation enum from its table: `Variant: Supported | NotImplemented, Reads | Writes,
/// User | Role | Policy | Account;`, the action being `<prefix>:<Variant>`. The enum gets `ALL`, `info`,
/// `from_name`, `name`, `action`, `is_supported`, `is_mutation`, `resource_kind` and `Display`.
macro_rules! operation_table {
    (
        prefix $prefix:literal;
        $(#[$meta:meta])*
        pub enum $enum:ident {
            $( $variant:ident: $status:ident, $effect:ident, $resource:ident; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $enum {
            $(
                #[doc = concat!("`", stringify!($variant), "` (IAM action `", $prefix, ":", stringify!($variant), "`).")]
                $variant,
            )*
        }

        impl $enum {
            /// Every operation of the API, supported or not, in the table's order.
            pub const ALL: &'static [$enum] = &[$($enum::$variant),*];

            /// The operation's row of the table.
            pub const fn info(self) -> OperationInfo {
                match self {
                    $( $enum::$variant => OperationInfo {
                        name: stringify!($variant),
                        action: concat!($prefix, ":", stringify!($variant)),
                        status: Status::$status,
                        effect: Effect::$effect,
                        resource: ResourceKind::$resource,
                    }, )*
                }
            }

            /// The operation of an `Action=` value, exactly as the table spells it.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|operation| operation.name() == name)
            }

            /// The operation's name (its `Action=` value).
            pub const fn name(self) -> &'static str {
                self.info().name
            }

            /// The IAM action a policy names to allow or deny the operation.
            pub const fn action(self) -> &'static str {
                self.info().action
            }

            /// Whether kmsim implements the operation.
            pub fn is_supported(self) -> bool {
                self.info().status == Status::Supported
            }

            /// Whether the operation changes the store.
            pub fn is_mutation(self) -> bool {
                self.info().effect == Effect::Writes
            }

            /// What the operation acts on.
            pub const fn resource_kind(self) -> ResourceKind {
                self.info().resource
            }
        }

        impl std::fmt::Display for $enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

operation_table! {
    prefix "iam";
    /// An operation of the IAM Query API (`Action=<Name>&Version=2010-05-08`), implemented or not: every
    /// operation of the API reference.
    pub enum IamOperation {
        AcceptDelegationRequest: NotImplemented, Writes, Account;
        AddClientIDToOpenIDConnectProvider: NotImplemented, Writes, Account;
        AddRoleToInstanceProfile: NotImplemented, Writes, Account;
        AddUserToGroup: NotImplemented, Writes, Account;
        AssociateDelegationRequest: NotImplemented, Writes, Account;
        AttachGroupPolicy: NotImplemented, Writes, Account;
        AttachRolePolicy: Supported, Writes, Role;
        AttachUserPolicy: Supported, Writes, User;
        ChangePassword: NotImplemented, Writes, Account;
        CreateAccessKey: Supported, Writes, User;
        CreateAccountAlias: NotImplemented, Writes, Account;
        CreateDelegationRequest: NotImplemented, Writes, Account;
        CreateGroup: NotImplemented, Writes, Account;
        CreateInstanceProfile: NotImplemented, Writes, Account;
        CreateLoginProfile: NotImplemented, Writes, Account;
        CreateOpenIDConnectProvider: NotImplemented, Writes, Account;
        CreatePolicy: Supported, Writes, Policy;
        CreatePolicyVersion: NotImplemented, Writes, Account;
        CreateRole: Supported, Writes, Role;
        CreateSAMLProvider: NotImplemented, Writes, Account;
        CreateServiceLinkedRole: NotImplemented, Writes, Account;
        CreateServiceSpecificCredential: NotImplemented, Writes, Account;
        CreateUser: Supported, Writes, User;
        CreateVirtualMFADevice: NotImplemented, Writes, Account;
        DeactivateMFADevice: NotImplemented, Writes, Account;
        DeleteAccessKey: Supported, Writes, User;
        DeleteAccountAlias: NotImplemented, Writes, Account;
        DeleteAccountPasswordPolicy: NotImplemented, Writes, Account;
        DeleteGroup: NotImplemented, Writes, Account;
        DeleteGroupPolicy: NotImplemented, Writes, Account;
        DeleteInstanceProfile: NotImplemented, Writes, Account;
        DeleteLoginProfile: NotImplemented, Writes, Account;
        DeleteOpenIDConnectProvider: NotImplemented, Writes, Account;
        DeletePolicy: Supported, Writes, Policy;
        DeletePolicyVersion: NotImplemented, Writes, Account;
        DeleteRole: Supported, Writes, Role;
        DeleteRolePermissionsBoundary: NotImplemented, Writes, Account;
        DeleteRolePolicy: Supported, Writes, Role;
        DeleteSAMLProvider: NotImplemented, Writes, Account;
        DeleteSSHPublicKey: NotImplemented, Writes, Account;
        DeleteServerCertificate: NotImplemented, Writes, Account;
        DeleteServiceLinkedRole: NotImplemented, Writes, Account;
        DeleteServiceSpecificCredential: NotImplemented, Writes, Account;
        DeleteSigningCertificate: NotImplemented, Writes, Account;
        DeleteUser: Supported, Writes, User;
        DeleteUserPermissionsBoundary: NotImplemented, Writes, Account;
        DeleteUserPolicy: Supported, Writes, User;
        DeleteVirtualMFADevice: NotImplemented, Writes, Account;
        DetachGroupPolicy: NotImplemented, Writes, Account;
        DetachRolePolicy: Supported, Writes, Role;
        DetachUserPolicy: Supported, Writes, User;
        DisableOrganizationsRootCredentialsManagement: NotImplemented, Writes, Account;
        DisableOrganizationsRootSessions: NotImplemented, Writes, Account;
        DisableOutboundWebIdentityFederation: NotImplemented, Writes, Account;
        EnableMFADevice: NotImplemented, Writes, Account;
        EnableOrganizationsRootCredentialsManagement: NotImplemented, Writes, Account;
        EnableOrganizationsRootSessions: NotImplemented, Writes, Account;
        EnableOutboundWebIdentityFederation: NotImplemented, Writes, Account;
        GenerateCredentialReport: NotImplemented, Reads, Account;
        GenerateOrganizationsAccessReport: NotImplemented, Reads, Account;
        GenerateServiceLastAccessedDetails: NotImplemented, Reads, Account;
        GetAccessKeyLastUsed: NotImplemented, Reads, Account;
        GetAccountAuthorizationDetails: NotImplemented, Reads, Account;
        GetAccountPasswordPolicy: NotImplemented, Reads, Account;
        GetAccountSummary: NotImplemented, Reads, Account;
        GetContextKeysForCustomPolicy: NotImplemented, Reads, Account;
        GetContextKeysForPrincipalPolicy: NotImplemented, Reads, Account;
        GetCredentialReport: NotImplemented, Reads, Account;
        GetDelegationRequest: NotImplemented, Reads, Account;
        GetGroup: NotImplemented, Reads, Account;
        GetGroupPolicy: NotImplemented, Reads, Account;
        GetHumanReadableSummary: NotImplemented, Reads, Account;
        GetInstanceProfile: NotImplemented, Reads, Account;
        GetLoginProfile: NotImplemented, Reads, Account;
        GetMFADevice: NotImplemented, Reads, Account;
        GetOpenIDConnectProvider: NotImplemented, Reads, Account;
        GetOrganizationsAccessReport: NotImplemented, Reads, Account;
        GetOutboundWebIdentityFederationInfo: NotImplemented, Reads, Account;
        GetPolicy: Supported, Reads, Policy;
        GetPolicyVersion: Supported, Reads, Policy;
        GetRole: Supported, Reads, Role;
        GetRolePolicy: Supported, Reads, Role;
        GetSAMLProvider: NotImplemented, Reads, Account;
        GetSSHPublicKey: NotImplemented, Reads, Account;
        GetServerCertificate: NotImplemented, Reads, Account;
        GetServiceLastAccessedDetails: NotImplemented, Reads, Account;
        GetServiceLastAccessedDetailsWithEntities: NotImplemented, Reads, Account;
        GetServiceLinkedRoleDeletionStatus: NotImplemented, Reads, Account;
        GetUser: Supported, Reads, User;
        GetUserPolicy: Supported, Reads, User;
        ListAccessKeys: Supported, Reads, User;
        ListAccountAliases: NotImplemented, Reads, Account;
        ListAttachedGroupPolicies: NotImplemented, Reads, Account;
        ListAttachedRolePolicies: Supported, Reads, Role;
        ListAttachedUserPolicies: Supported, Reads, User;
        ListDelegationRequests: NotImplemented, Reads, Account;
        ListEntitiesForPolicy: NotImplemented, Reads, Account;
        ListGroupPolicies: NotImplemented, Reads, Account;
        ListGroups: NotImplemented, Reads, Account;
        ListGroupsForUser: NotImplemented, Reads, Account;
        ListInstanceProfileTags: NotImplemented, Reads, Account;
        ListInstanceProfiles: NotImplemented, Reads, Account;
        ListInstanceProfilesForRole: NotImplemented, Reads, Account;
        ListMFADeviceTags: NotImplemented, Reads, Account;
        ListMFADevices: NotImplemented, Reads, Account;
        ListOpenIDConnectProviderTags: NotImplemented, Reads, Account;
        ListOpenIDConnectProviders: NotImplemented, Reads, Account;
        ListOrganizationsFeatures: NotImplemented, Reads, Account;
        ListPolicies: Supported, Reads, Account;
        ListPoliciesGrantingServiceAccess: NotImplemented, Reads, Account;
        ListPolicyTags: NotImplemented, Reads, Account;
        ListPolicyVersions: NotImplemented, Reads, Account;
        ListRolePolicies: Supported, Reads, Role;
        ListRoleTags: NotImplemented, Reads, Account;
        ListRoles: Supported, Reads, Account;
        ListSAMLProviderTags: NotImplemented, Reads, Account;
        ListSAMLProviders: NotImplemented, Reads, Account;
        ListSSHPublicKeys: NotImplemented, Reads, Account;
        ListServerCertificateTags: NotImplemented, Reads, Account;
        ListServerCertificates: NotImplemented, Reads, Account;
        ListServiceSpecificCredentials: NotImplemented, Reads, Account;
        ListSigningCertificates: NotImplemented, Reads, Account;
        ListUserPolicies: Supported, Reads, User;
        ListUserTags: NotImplemented, Reads, Account;
        ListUsers: Supported, Reads, Account;
        ListVirtualMFADevices: NotImplemented, Reads, Account;
        PutGroupPolicy: NotImplemented, Writes, Account;
        PutRolePermissionsBoundary: NotImplemented, Writes, Account;
        PutRolePolicy: Supported, Writes, Role;
        PutUserPermissionsBoundary: NotImplemented, Writes, Account;
        PutUserPolicy: Supported, Writes, User;
        RejectDelegationRequest: NotImplemented, Writes, Account;
        RemoveClientIDFromOpenIDConnectProvider: NotImplemented, Writes, Account;
        RemoveRoleFromInstanceProfile: NotImplemented, Writes, Account;
        RemoveUserFromGroup: NotImplemented, Writes, Account;
        ResetServiceSpecificCredential: NotImplemented, Writes, Account;
        ResyncMFADevice: NotImplemented, Writes, Account;
        SendDelegationToken: NotImplemented, Writes, Account;
        SetDefaultPolicyVersion: NotImplemented, Writes, Account;
        SetSecurityTokenServicePreferences: NotImplemented, Writes, Account;
        SimulateCustomPolicy: NotImplemented, Reads, Account;
        SimulatePrincipalPolicy: NotImplemented, Reads, Account;
        TagInstanceProfile: NotImplemented, Writes, Account;
        TagMFADevice: NotImplemented, Writes, Account;
        TagOpenIDConnectProvider: NotImplemented, Writes, Account;
        TagPolicy: NotImplemented, Writes, Account;
        TagRole: NotImplemented, Writes, Account;
        TagSAMLProvider: NotImplemented, Writes, Account;
        TagServerCertificate: NotImplemented, Writes, Account;
        TagUser: NotImplemented, Writes, Account;
        UntagInstanceProfile: NotImplemented, Writes, Account;
        UntagMFADevice: NotImplemented, Writes, Account;
        UntagOpenIDConnectProvider: NotImplemented, Writes, Account;
        UntagPolicy: NotImplemented, Writes, Account;
        UntagRole: NotImplemented, Writes, Account;
        UntagSAMLProvider: NotImplemented, Writes, Account;
        UntagServerCertificate: NotImplemented, Writes, Account;
        UntagUser: NotImplemented, Writes, Account;
        UpdateAccessKey: Supported, Writes, User;
        UpdateAccountPasswordPolicy: NotImplemented, Writes, Account;
        UpdateAssumeRolePolicy: Supported, Writes, Role;
        UpdateDelegationRequest: NotImplemented, Writes, Account;
        UpdateGroup: NotImplemented, Writes, Account;
        UpdateLoginProfile: NotImplemented, Writes, Account;
        UpdateOpenIDConnectProviderThumbprint: NotImplemented, Writes, Account;
        UpdateRole: NotImplemented, Writes, Account;
        UpdateRoleDescription: NotImplemented, Writes, Account;
        UpdateSAMLProvider: NotImplemented, Writes, Account;
        UpdateSSHPublicKey: NotImplemented, Writes, Account;
        UpdateServerCertificate: NotImplemented, Writes, Account;
        UpdateServiceSpecificCredential: NotImplemented, Writes, Account;
        UpdateSigningCertificate: NotImplemented, Writes, Account;
        UpdateUser: NotImplemented, Writes, Account;
        UploadSSHPublicKey: NotImplemented, Writes, Account;
        UploadServerCertificate: NotImplemented, Writes, Account;
        UploadSigningCertificate: NotImplemented, Writes, Account;
    }
}

operation_table! {
    prefix "sts";
    /// An operation of the STS Query API (`Action=<Name>&Version=2011-06-15`), implemented or not.
    pub enum StsOperation {
        AssumeRole: Supported, Writes, Role;
        AssumeRoleWithSAML: NotImplemented, Writes, Account;
        AssumeRoleWithWebIdentity: NotImplemented, Writes, Account;
        AssumeRoot: NotImplemented, Writes, Account;
        DecodeAuthorizationMessage: NotImplemented, Reads, Account;
        GetAccessKeyInfo: NotImplemented, Reads, Account;
        GetCallerIdentity: Supported, Reads, Account;
        GetDelegatedAccessToken: NotImplemented, Reads, Account;
        GetFederationToken: NotImplemented, Reads, Account;
        GetSessionToken: NotImplemented, Reads, Account;
        GetWebIdentityToken: NotImplemented, Reads, Account;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of `docs/api-coverage.md`'s table in the section whose `## ` heading starts with `heading`.
    fn coverage_rows(heading: &str) -> Vec<(String, String)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api-coverage.md");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let section = text
            .split("\n## ")
            .find(|s| s.starts_with(heading))
            .unwrap_or_else(|| panic!("no section \"## {heading}\" in {path}"));
        let mut rows = Vec::new();
        for line in section.lines().filter(|l| l.starts_with('|')).skip(2) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            for name in cells[1].split(',') {
                rows.push((name.trim().trim_matches('`').to_owned(), cells[2].to_owned()));
            }
        }
        rows
    }

    /// Each table and its section of `docs/api-coverage.md` name the same operations with the same status.
    fn check(heading: &str, operations: &[OperationInfo]) {
        let rows = coverage_rows(heading);
        for operation in operations {
            let found: Vec<_> = rows.iter().filter(|(name, _)| name == operation.name).collect();
            assert_eq!(found.len(), 1, "{} appears {} times under {heading}", operation.name, found.len());
            let supported = operation.status == Status::Supported;
            assert_eq!(found[0].1, if supported { "supported" } else { "not supported" }, "{}", operation.name);
        }
        for (name, _) in &rows {
            assert!(operations.iter().any(|op| op.name == name), "{name} under {heading} is not an operation");
        }
    }

    #[test]
    fn the_coverage_page_follows_the_tables() {
        check("IAM", &IamOperation::ALL.iter().map(|op| op.info()).collect::<Vec<_>>());
        check("STS", &StsOperation::ALL.iter().map(|op| op.info()).collect::<Vec<_>>());
    }

    #[test]
    fn names_actions_and_rows() {
        assert_eq!(IamOperation::from_name("CreateUser"), Some(IamOperation::CreateUser));
        assert_eq!(IamOperation::CreateUser.action(), "iam:CreateUser");
        assert!(IamOperation::CreateUser.is_mutation() && IamOperation::CreateUser.is_supported());
        assert!(!IamOperation::CreateGroup.is_supported());
        assert_eq!(IamOperation::from_name("createuser"), None, "names are exact");
        assert_eq!(StsOperation::AssumeRole.action(), "sts:AssumeRole");
        assert_eq!(StsOperation::GetCallerIdentity.resource_kind(), ResourceKind::Account);
    }
}
