//! What both dialects know of an operation: its IAM action, whether kmsim implements it, whether it changes the
//! key store, and what it acts on — written once per operation, in one table per dialect
//! ([`crate::aws::operation::KmsOperation`], [`crate::otc::verb::OtcVerb`]) through the crate's `operation_table!`
//! macro.

/// Whether kmsim implements an operation. An operation it does not implement is still parsed (and audited), then
/// answered with the dialect's "not implemented" error naming `docs/api-coverage.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// kmsim implements it.
    Supported,
    /// The real API has it; kmsim answers "not implemented".
    NotImplemented,
}

/// What an operation does to the key store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// It reads keys (or uses them: encrypting, decrypting and data keys change nothing stored).
    Reads,
    /// It changes the key store, which fsyncs: the front ends run it off the async workers.
    Writes,
}

/// What an operation costs in CPU beyond the usual microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Microseconds: symmetric cryptography, signing, lookups.
    Light,
    /// It may generate an RSA key pair (a data key pair, a wrapping key for an import, a new RSA key): up to seconds
    /// of one core for RSA_4096. The front ends run it off the async workers and only a few at a time
    /// ([`crate::heavy`]), so the edge keeps answering everything else meanwhile.
    KeyGen,
}

/// What an operation acts on, as an IAM policy's `Resource` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// One key: `arn:aws:kms:REGION:ACCOUNT:key/ID`, once the key id, ARN or alias in the request is resolved.
    Key,
    /// One alias: `arn:aws:kms:REGION:ACCOUNT:alias/NAME`.
    Alias,
    /// No single key or alias (CreateKey, ListKeys, GenerateRandom, ...): `*`.
    Account,
}

impl ResourceKind {
    /// The resource ARN of an operation of this kind in `region` and `account`; `name` is the key's id (or its
    /// ARN, returned as it is) or the alias name (`alias/x`), and is ignored for [`ResourceKind::Account`].
    pub fn arn(self, region: &str, account: &str, name: &str) -> String {
        match self {
            ResourceKind::Account => "*".to_owned(),
            _ if name.starts_with("arn:") => name.to_owned(),
            ResourceKind::Key => format!("arn:aws:kms:{region}:{account}:key/{name}"),
            ResourceKind::Alias => format!("arn:aws:kms:{region}:{account}:{name}"),
        }
    }
}

/// One row of an operation table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationInfo {
    /// The operation's name on the wire and in the audit log (`GenerateDataKey`, `create-datakey`).
    pub name: &'static str,
    /// The IAM action a policy names (`kms:GenerateDataKey`, `kms:dek:create`).
    pub action: &'static str,
    /// Whether kmsim implements it.
    pub status: Status,
    /// Whether it changes the key store.
    pub effect: Effect,
    /// Whether it may generate an RSA key pair.
    pub cost: Cost,
    /// What it acts on.
    pub resource: ResourceKind,
}

/// Declares a dialect's operation enum from its table, one row an operation:
/// `Variant => "wire name", "iam:action", Supported | NotImplemented, Reads | Writes [+ KeyGen], Key | Alias |
/// Account;` (`+ KeyGen` marks the operations that may generate an RSA key pair, [`Cost::KeyGen`]).
/// The enum gets `ALL` (the rows in order), `info`, `name`, `action`, `is_supported`, `is_mutation`,
/// `generates_keys`, `resource_kind`, `resource`, `from_name` and `Display` (the name), so that nothing else lists
/// the operations.
///
/// The `aws` form derives the wire name from the variant and the action from the name (`kms:<Name>`), unless the
/// row ends in `, action "..."`: `Variant: Supported | NotImplemented, Reads | Writes [+ KeyGen], Key | Alias |
/// Account;`.
macro_rules! operation_table {
    (
        aws
        $(#[$meta:meta])*
        pub enum $enum:ident {
            $( $variant:ident: $status:ident, $effect:ident $(+ $cost:ident)?, $resource:ident
                $(, action $action:literal)?; )*
        }
    ) => {
        $crate::operation::operation_table! {
            $(#[$meta])*
            pub enum $enum {
                $( $variant => stringify!($variant), $crate::operation::operation_table!(@action $variant $($action)?),
                    $status, $effect $(+ $cost)?, $resource; )*
            }
        }
    };
    (@cost) => { $crate::operation::Cost::Light };
    (@cost $cost:ident) => { $crate::operation::Cost::$cost };
    (@action $variant:ident) => { concat!("kms:", stringify!($variant)) };
    (@action $variant:ident $action:literal) => { $action };
    (
        $(#[$meta:meta])*
        pub enum $enum:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $name:expr, $action:expr, $status:ident, $effect:ident
                $(+ $cost:ident)?, $resource:ident; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $enum {
            $(
                $(#[$variant_meta])*
                #[doc = concat!("`", $name, "` (IAM action `", $action, "`).")]
                $variant,
            )*
        }

        impl $enum {
            /// Every operation of the dialect, supported or not, in the table's order.
            pub const ALL: &'static [$enum] = &[$($enum::$variant),*];

            /// The operation's row of the table.
            pub const fn info(self) -> $crate::operation::OperationInfo {
                match self {
                    $( $enum::$variant => $crate::operation::OperationInfo {
                        name: $name,
                        action: $action,
                        status: $crate::operation::Status::$status,
                        effect: $crate::operation::Effect::$effect,
                        cost: $crate::operation::operation_table!(@cost $($cost)?),
                        resource: $crate::operation::ResourceKind::$resource,
                    }, )*
                }
            }

            /// The operation of a wire name, exactly as the table spells it.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|operation| operation.name() == name)
            }

            /// The operation's name on the wire and in the audit log.
            pub const fn name(self) -> &'static str {
                self.info().name
            }

            /// The IAM action a policy names to allow or deny the operation.
            pub const fn action(self) -> &'static str {
                self.info().action
            }

            /// Whether kmsim implements the operation (else it answers "not implemented").
            pub fn is_supported(self) -> bool {
                self.info().status == $crate::operation::Status::Supported
            }

            /// Whether the operation changes the key store.
            pub fn is_mutation(self) -> bool {
                self.info().effect == $crate::operation::Effect::Writes
            }

            /// Whether the operation may generate an RSA key pair ([`Cost::KeyGen`](crate::operation::Cost)):
            /// it runs off the async workers, a few at a time.
            pub fn generates_keys(self) -> bool {
                self.info().cost == $crate::operation::Cost::KeyGen
            }

            /// What the operation acts on.
            pub const fn resource_kind(self) -> $crate::operation::ResourceKind {
                self.info().resource
            }

            /// The resource ARN a policy would name for this operation on `name` (a key id or ARN, or an alias
            /// name) in `region` and `account`: see [`ResourceKind::arn`](crate::operation::ResourceKind::arn).
            pub fn resource(self, region: &str, account: &str, name: &str) -> String {
                self.resource_kind().arn(region, account, name)
            }
        }

        impl std::fmt::Display for $enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

pub(crate) use operation_table;

/// `docs/api-coverage.md` as the table tests read it.
#[cfg(test)]
pub(crate) mod coverage {
    use super::{OperationInfo, Status};

    /// The rows of the table in the section whose `## ` heading starts with `heading`: every name of a row's first
    /// cell (names are comma-separated, backticks dropped) with the row's status cell.
    pub(crate) fn rows(heading: &str) -> Vec<(String, String)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api-coverage.md");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let section = text
            .split("\n## ")
            .find(|s| s.starts_with(heading))
            .unwrap_or_else(|| panic!("no section \"## {heading}\" in {path}"));
        let mut rows = Vec::new();
        for line in section.lines().filter(|l| l.starts_with('|')).skip(2) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (names, status) = (cells[1], cells[2]);
            for name in names.split(',') {
                rows.push((name.trim().trim_matches('`').to_owned(), status.to_owned()));
            }
        }
        rows
    }

    /// Checks an operation table against `docs/api-coverage.md` and the API reference: every operation appears in
    /// the section's table exactly once, as `supported` or `not supported` as the enum's table says; the page names
    /// nothing else; and every implemented operation is among the names of the reference `examples` tested.
    pub(crate) fn check(heading: &str, operations: impl IntoIterator<Item = OperationInfo>, examples: &[&str]) {
        let operations: Vec<OperationInfo> = operations.into_iter().collect();
        let rows = rows(heading);
        for operation in &operations {
            let found: Vec<&(String, String)> = rows.iter().filter(|(n, _)| n == operation.name).collect();
            assert_eq!(found.len(), 1, "{} appears {} times in the {heading} table", operation.name, found.len());
            let supported = operation.status == Status::Supported;
            assert_eq!(found[0].1, if supported { "supported" } else { "not supported" }, "{}", operation.name);
            assert!(!supported || examples.contains(&operation.name), "no API example for {}", operation.name);
        }
        for (name, _) in &rows {
            assert!(operations.iter().any(|op| op.name == name), "{name} in the {heading} table is not an operation");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_arns_of_each_kind() {
        let key = "1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(
            ResourceKind::Key.arn("us-east-2", "111122223333", key),
            "arn:aws:kms:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        );
        let arn = "arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(ResourceKind::Key.arn("us-east-2", "111122223333", arn), arn);
        assert_eq!(
            ResourceKind::Alias.arn("us-east-2", "111122223333", "alias/ExampleAlias"),
            "arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias"
        );
        assert_eq!(ResourceKind::Account.arn("us-east-2", "111122223333", key), "*");
    }
}
