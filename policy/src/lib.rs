//! The AWS IAM policy language: grammar and evaluator, shared by KMS key policies, S3 bucket
//! policies, IAM identity-based policies and STS role trust policies.
//!
//! A [`Policy`] is parsed and compiled once, when a service stores it ([`Policy::parse`], for a
//! [`PolicyKind`]); a refused document is a [`PolicyError`] that words itself as IAM, KMS or S3
//! would. Each request is then a [`Request`] — who calls (a [`Principal`]), the action, the
//! resource ARN and the request's condition keys (a [`Context`]) — that [`Policy::evaluate`] answers
//! with an [`Outcome`] for one policy, and [`decide`] with a [`Decision`] over all the policies that
//! apply ([`Policies`]) under a [`Rule`] (same account, cross account, KMS key policy). A decision's
//! [`Reason`] gives the phrase AWS ends its denial messages with.
//!
//! The semantics follow AWS's documentation, cited by page title where each rule is implemented:
//! "IAM JSON policy element reference", "Policy evaluation logic", "IAM JSON policy elements:
//! Condition operators", "IAM policy elements: Variables and tags", "Single-valued vs. multivalued
//! context keys", "AWS JSON policy elements: Principal" and "NotPrincipal". Where the documents are
//! silent the choice made is stated in the item's documentation.
//!
//! Evaluation does no JSON work and no regex: actions, resources and condition values are compiled
//! to patterns at parse time, and a policy without variables is evaluated without allocating
//! (`examples/evaluate_speed.rs` measures a typical key policy and one identity-based policy at
//! about 0.3 µs per decision, a twentieth of reading the key policy's JSON once; see
//! `docs/benchmarks.md`).

mod condition;
mod context;
mod date;
mod decide;
mod error;
mod pattern;
mod principal;
mod statement;

use serde_json::Value;

pub use context::Context;
pub use decide::{Decision, Policies, Reason, Rule, Source, decide};
pub use error::{ErrorKind, PolicyError, Result};
pub use principal::{Principal, PrincipalElement, PrincipalKind, PrincipalMatch};
pub use statement::{Effect, Statement};

use context::Env;

/// Where a policy is attached, which decides what its statements must and may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to a user, group or role: no `Principal` or `NotPrincipal` ("Policy document should
    /// not specify a principal."); `Resource` or `NotResource` required.
    Identity,
    /// Attached to a resource (KMS key policy, S3 bucket policy): `Principal` or `NotPrincipal`
    /// required, and `Resource` or `NotResource`.
    Resource,
    /// A role's trust policy: `Principal` or `NotPrincipal` required, no resources, STS actions
    /// only.
    Trust,
}

/// The policy language version, which decides whether `${...}` is a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `2012-10-17`: policy variables are substituted.
    V2012_10_17,
    /// `2008-10-17`, or no `Version`: `${...}` is literal text ("If you don't include the `Version`
    /// element ..., variables like `${aws:username}` are treated as literal strings").
    V2008_10_17,
}

/// A policy document, parsed and compiled: evaluated many times without reparsing.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The text as given, which services return verbatim.
    document: String,
    kind: PolicyKind,
    version: Version,
    id: Option<String>,
    statements: Vec<Statement>,
    /// Every condition key the policy reads — in its `Condition` blocks or as a `${...}` variable —,
    /// lowercased: a caller need not compute the others.
    referenced_keys: Vec<String>,
}

/// One request to evaluate: who, what, on what, and its condition keys.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Who calls.
    pub principal: &'a Principal,
    /// The IAM action, `kms:Decrypt` (compared without regard to case).
    pub action: &'a str,
    /// The resource's ARN, or `*` for an action on no resource in particular.
    pub resource: &'a str,
    /// The request's condition keys (the principal's own are added by the evaluator).
    pub context: &'a Context,
}

/// What one policy says of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No statement applies.
    NotApplicable,
    /// An `Allow` statement applies and no `Deny` does.
    Allow {
        /// The `Sid` of the allowing statement (of the one naming the caller most directly).
        sid: Option<std::sync::Arc<str>>,
        /// How that statement names the caller.
        principal_match: PrincipalMatch,
    },
    /// A `Deny` statement applies: explicit deny wins within the policy.
    Deny {
        /// The `Sid` of the first applying `Deny` statement.
        sid: Option<std::sync::Arc<str>>,
    },
}

const TOP_LEVEL_FIELDS: [&str; 3] = ["Version", "Id", "Statement"];

impl Policy {
    /// Parses and compiles `document` as a policy of `kind`.
    pub fn parse(document: &str, kind: PolicyKind) -> Result<Policy> {
        let value: Value = serde_json::from_str(document).map_err(|_| {
            PolicyError::new(if document.trim_start().starts_with('{') {
                ErrorKind::InvalidJson
            } else {
                ErrorKind::NotAnObject
            })
        })?;
        let Value::Object(map) = value else {
            return Err(PolicyError::new(ErrorKind::NotAnObject));
        };
        if let Some(field) = map.keys().find(|field| !TOP_LEVEL_FIELDS.contains(&field.as_str())) {
            return Err(PolicyError::new(ErrorKind::UnknownField(field.clone())));
        }
        let version = match map.get("Version") {
            None => Version::V2008_10_17,
            Some(Value::String(version)) if version == "2012-10-17" => Version::V2012_10_17,
            Some(Value::String(version)) if version == "2008-10-17" => Version::V2008_10_17,
            Some(_) => return Err(PolicyError::new(ErrorKind::InvalidVersion)),
        };
        let id = match map.get("Id") {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => return Err(PolicyError::new(ErrorKind::InvalidElement("Id"))),
        };
        let variables = version == Version::V2012_10_17;
        let statements = match map.get("Statement") {
            None => return Err(PolicyError::new(ErrorKind::MissingStatement)),
            Some(Value::Array(items)) if items.is_empty() => return Err(PolicyError::new(ErrorKind::EmptyStatement)),
            Some(Value::Array(items)) => {
                items.iter().map(|item| Statement::parse(item, kind, variables)).collect::<Result<Vec<_>>>()?
            }
            Some(single @ Value::Object(_)) => vec![Statement::parse(single, kind, variables)?],
            Some(_) => return Err(PolicyError::new(ErrorKind::InvalidElement("Statement"))),
        };
        if kind != PolicyKind::Resource {
            // IAM's own rule for its policies ("IAM JSON policy elements: Sid"); KMS and S3 allow
            // any text (KMS's default key policy has "Enable IAM User Permissions").
            let mut seen: Vec<&str> = Vec::new();
            for sid in statements.iter().filter_map(Statement::sid) {
                if !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(PolicyError::new(ErrorKind::InvalidSid(sid.to_owned())));
                }
                if !sid.is_empty() && seen.contains(&sid) {
                    return Err(PolicyError::new(ErrorKind::DuplicateSid(sid.to_owned())));
                }
                seen.push(sid);
            }
        }
        let referenced_keys = referenced_keys(&map, document, variables);
        Ok(Policy { document: document.to_owned(), kind, version, id, statements, referenced_keys })
    }

    /// Every condition key the policy reads (in `Condition` blocks, and as `${...}` variables when the
    /// policy's version has them), lowercased: a service need only compute these for a request.
    pub fn referenced_keys(&self) -> &[String] {
        &self.referenced_keys
    }

    /// The document as given.
    pub fn document(&self) -> &str {
        &self.document
    }

    /// Where the policy is attached.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The policy language version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The `Id` element, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The statements, in document order: for questions such as KMS's lockout check ("does an
    /// allowing statement name the account for `kms:PutKeyPolicy`?").
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// What the policy says of `request`: the first applying `Deny`, else the applying `Allow`
    /// that names the caller most directly, else nothing.
    pub fn evaluate(&self, request: &Request<'_>) -> Outcome {
        let env = Env { principal: request.principal, context: request.context };
        let mut best: Option<(PrincipalMatch, &Statement)> = None;
        for statement in &self.statements {
            let Some(principal_match) = statement.applies(request, &env) else {
                continue;
            };
            match statement.effect() {
                Effect::Deny => return Outcome::Deny { sid: statement.shared_sid() },
                Effect::Allow => {
                    if best.is_none_or(|(found, _)| principal_match > found) {
                        best = Some((principal_match, statement));
                    }
                }
            }
        }
        match best {
            Some((principal_match, statement)) => Outcome::Allow { sid: statement.shared_sid(), principal_match },
            None => Outcome::NotApplicable,
        }
    }

    /// Whether the policy is public, as S3 judges a bucket policy (GetBucketPolicyStatus, Block
    /// Public Access): "Amazon S3 begins by assuming that the policy is public", and it is not when
    /// every allowing statement names fixed principals or holds its requests to fixed values of a
    /// key that confines their source or principal ([`Statement::is_public`]). kmsim's choice where
    /// S3's text is silent: an `aws:SourceIp` range broader than `/8` (IPv4) or `/32` (IPv6) confines
    /// nothing.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(Statement::is_public)
    }
}

/// The condition keys a policy document reads, lowercased and without repeats: the keys of its
/// `Condition` blocks and, with `variables`, the keys of its `${key}` / `${key, 'default'}` variables.
fn referenced_keys(map: &serde_json::Map<String, Value>, document: &str, variables: bool) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut add = |key: &str| {
        let key = key.trim().to_ascii_lowercase();
        if !key.is_empty() && !keys.contains(&key) {
            keys.push(key);
        }
    };
    let statements: Vec<&Value> = match map.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single) => vec![single],
        None => Vec::new(),
    };
    for statement in statements {
        if let Some(Value::Object(blocks)) = statement.get("Condition") {
            for block in blocks.values() {
                if let Value::Object(entries) = block {
                    entries.keys().for_each(|key| add(key));
                }
            }
        }
    }
    if variables {
        let mut rest = document;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else { break };
            let inner = &after[..end];
            let name = inner.split(',').next().unwrap_or(inner);
            if !matches!(name.trim(), "*" | "?" | "$") {
                add(name);
            }
            rest = &after[end + 1..];
        }
    }
    keys
}
