//! Principals: who calls ([`Principal`]), and whom a policy's `Principal` / `NotPrincipal` element
//! names ([`PrincipalElement`]).
//!
//! Following "AWS JSON policy elements: Principal": an account (`arn:aws:iam::ACCOUNT:root` or the
//! bare 12-digit id) delegates to the account — it matches every principal of the account, but
//! only as [`PrincipalMatch::Account`], which a same-account decision does not count as a grant by
//! itself; a role ARN matches the role's sessions; an assumed-role ARN matches that one session;
//! `"*"` and `{"AWS": "*"}` match everyone, the anonymous caller included. A wildcard anywhere else
//! in a principal is refused ("You cannot use a wildcard to match part of a principal name or
//! ARN").

use serde_json::Value;

use crate::context::Derived;
use crate::error::{ErrorKind, PolicyError, Result};

/// Who makes a request: an account's root user, an IAM user, a role session, an AWS service or
/// nobody (anonymous), with the values IAM derives from it for the request context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    kind: PrincipalKind,
    /// The caller's own ARN: the root's, the user's or the session's (`arn:aws:sts::...`).
    arn: Option<String>,
    /// `aws:PrincipalArn`: like `arn`, but a role session's is its role's ARN.
    principal_arn: Option<[String; 1]>,
    /// `aws:PrincipalAccount`.
    account: Option<[String; 1]>,
    /// The IAM unique id (`AIDA...` of a user, `AROA...` of a session's role), if known.
    unique_id: Option<String>,
    /// `aws:userid`: the account id for the root, the unique id for a user,
    /// `ROLE-ID:session-name` for a role session, `anonymous` for the anonymous caller.
    userid: Option<[String; 1]>,
    /// `aws:username`, for users only.
    username: Option<[String; 1]>,
    /// `aws:PrincipalType`: `Account`, `User`, `AssumedRole`, `Anonymous`.
    principal_type: Option<[String; 1]>,
    /// `aws:PrincipalIsAWSService`: `true` for a service principal.
    is_aws_service: [String; 1],
    /// `aws:PrincipalServiceName`, for a service principal.
    service_name: Option<[String; 1]>,
    /// `aws:PrincipalTag/<key>`: the user's or role's tags, keys lowercased.
    tags: Vec<(String, [String; 1])>,
    /// The S3 canonical user id of the principal's account, which `{"CanonicalUser": ...}` names.
    canonical_id: Option<String>,
}

/// What kind of principal makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account's root user.
    Root,
    /// An IAM user.
    User {
        /// The user's name (case-sensitive in ARNs).
        name: String,
        /// The user's path, `/` or `/division/`.
        path: String,
    },
    /// A session of an assumed role (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
    AssumedRole {
        /// The role's name.
        role_name: String,
        /// The role's ARN, with its path (`arn:aws:iam::ACCOUNT:role/path/ROLE`).
        role_arn: String,
        /// The session name the caller gave AssumeRole.
        session_name: String,
    },
    /// An AWS service acting as itself (`s3.amazonaws.com`).
    Service(String),
    /// An unauthenticated caller.
    Anonymous,
}

impl Principal {
    fn new(kind: PrincipalKind, account: Option<&str>) -> Principal {
        Principal {
            kind,
            arn: None,
            principal_arn: None,
            account: account.map(|account| [account.to_owned()]),
            unique_id: None,
            userid: None,
            username: None,
            principal_type: None,
            is_aws_service: ["false".to_owned()],
            service_name: None,
            tags: Vec::new(),
            canonical_id: None,
        }
    }

    /// The root user of `account`.
    pub fn root(account: &str) -> Principal {
        let mut principal = Principal::new(PrincipalKind::Root, Some(account));
        let arn = format!("arn:aws:iam::{account}:root");
        principal.principal_arn = Some([arn.clone()]);
        principal.arn = Some(arn);
        principal.userid = Some([account.to_owned()]);
        principal.principal_type = Some(["Account".to_owned()]);
        principal
    }

    /// The IAM user `name` of `account` under `path` (`/` when empty).
    pub fn user(account: &str, path: &str, name: &str) -> Principal {
        let path = normalize_path(path);
        let arn = format!("arn:aws:iam::{account}:user{path}{name}");
        let mut principal =
            Principal::new(PrincipalKind::User { name: name.to_owned(), path: path.clone() }, Some(account));
        principal.principal_arn = Some([arn.clone()]);
        principal.arn = Some(arn);
        principal.username = Some([name.to_owned()]);
        principal.principal_type = Some(["User".to_owned()]);
        principal
    }

    /// The session `session` of role `role_name` (under `role_path`) of `account`.
    pub fn assumed_role(account: &str, role_path: &str, role_name: &str, session: &str) -> Principal {
        let role_arn = format!("arn:aws:iam::{account}:role{}{role_name}", normalize_path(role_path));
        let kind = PrincipalKind::AssumedRole {
            role_name: role_name.to_owned(),
            role_arn: role_arn.clone(),
            session_name: session.to_owned(),
        };
        let mut principal = Principal::new(kind, Some(account));
        principal.arn = Some(format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session}"));
        principal.principal_arn = Some([role_arn]);
        principal.principal_type = Some(["AssumedRole".to_owned()]);
        principal
    }

    /// The AWS service `name` (`s3.amazonaws.com`) acting as itself.
    pub fn service(name: &str) -> Principal {
        let mut principal = Principal::new(PrincipalKind::Service(name.to_owned()), None);
        principal.is_aws_service = ["true".to_owned()];
        principal.service_name = Some([name.to_owned()]);
        principal
    }

    /// An unauthenticated caller.
    pub fn anonymous() -> Principal {
        let mut principal = Principal::new(PrincipalKind::Anonymous, None);
        principal.userid = Some(["anonymous".to_owned()]);
        principal.principal_type = Some(["Anonymous".to_owned()]);
        principal
    }

    /// The principal with these tags (`aws:PrincipalTag/<key>`); a later tag with the same key
    /// (in any case) replaces an earlier one.
    #[must_use]
    pub fn with_tags<I, K, V>(mut self, tags: I) -> Principal
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        for (key, value) in tags {
            let key = key.as_ref().to_ascii_lowercase();
            self.tags.retain(|(existing, _)| *existing != key);
            self.tags.push((key, [value.into()]));
        }
        self
    }

    /// The principal with its IAM unique id: a user's `AIDA...` (its `aws:userid`), or a
    /// session's role's `AROA...` (its `aws:userid` is then `AROA...:session`).
    #[must_use]
    pub fn with_unique_id(mut self, id: &str) -> Principal {
        self.unique_id = Some(id.to_owned());
        match &self.kind {
            PrincipalKind::User { .. } => self.userid = Some([id.to_owned()]),
            PrincipalKind::AssumedRole { session_name, .. } => self.userid = Some([format!("{id}:{session_name}")]),
            _ => {}
        }
        self
    }

    /// The principal with its account's S3 canonical user id, which `{"CanonicalUser": ...}` names.
    #[must_use]
    pub fn with_canonical_id(mut self, id: &str) -> Principal {
        self.canonical_id = Some(id.to_owned());
        self
    }

    /// What kind of principal this is.
    pub fn kind(&self) -> &PrincipalKind {
        &self.kind
    }

    /// The caller's own ARN (a session's `arn:aws:sts::...:assumed-role/...`); none for services
    /// and the anonymous caller.
    pub fn arn(&self) -> Option<&str> {
        self.arn.as_deref()
    }

    /// `aws:PrincipalArn`: the caller's ARN, a session's role's ARN for a session.
    pub fn principal_arn(&self) -> Option<&str> {
        self.principal_arn.as_ref().map(|[arn]| arn.as_str())
    }

    /// The caller's account; none for services and the anonymous caller.
    pub fn account(&self) -> Option<&str> {
        self.account.as_ref().map(|[account]| account.as_str())
    }

    /// The IAM unique id, if given.
    pub fn unique_id(&self) -> Option<&str> {
        self.unique_id.as_deref()
    }

    /// The value of a principal-derived condition key.
    pub(crate) fn derived(&self, key: &Derived) -> Option<&[String]> {
        let value = match key {
            Derived::PrincipalArn => self.principal_arn.as_ref(),
            Derived::PrincipalAccount => self.account.as_ref(),
            Derived::Username => self.username.as_ref(),
            Derived::Userid => self.userid.as_ref(),
            Derived::PrincipalType => self.principal_type.as_ref(),
            Derived::IsAwsService => Some(&self.is_aws_service),
            Derived::ServiceName => self.service_name.as_ref(),
            Derived::PrincipalTag(tag) => self.tags.iter().find(|(key, _)| key == tag).map(|(_, value)| value),
        };
        value.map(|value| value.as_slice())
    }
}

fn normalize_path(path: &str) -> String {
    let mut path = path.trim_matches('/').to_owned();
    if !path.is_empty() {
        path.push('/');
    }
    path.insert(0, '/');
    path
}

/// How a statement's `Principal` (or `NotPrincipal`) names the caller. The variants are ordered
/// from weakest to strongest, and an evaluation reports the strongest of the allowing statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrincipalMatch {
    /// The statement has no principal: an identity-based policy, which applies to whom it is
    /// attached to.
    None,
    /// The statement names the caller's account (its root ARN, bare id or canonical user id), and
    /// the caller is not the root: a delegation to the account. In a resource-based policy this
    /// lets the account's identity-based policies decide; it does not by itself allow the caller.
    Account,
    /// The statement names the caller: its user, its role (for a session), `"*"`, or, for the
    /// root, its account; or it is a `NotPrincipal` statement that does not exclude the caller.
    Direct,
    /// The statement names this role session's own ARN (`arn:aws:sts::...:assumed-role/R/S`).
    /// Unlike a grant to the role's ARN, session policies do not limit it ("Policy evaluation
    /// logic": session policies).
    Session,
}

/// A statement's `Principal` or `NotPrincipal` element, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalElement {
    names: Vec<Named>,
}

/// One principal a policy names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Named {
    /// `"*"` or `{"AWS": "*"}`.
    Everyone,
    /// A 12-digit account id, from the bare id or the root ARN.
    Account(String),
    /// An IAM user ARN (or a CloudFront origin access identity's).
    User(String),
    /// An IAM role ARN.
    Role(String),
    /// A role session's ARN.
    AssumedRole(String),
    /// A federated user session's ARN (`arn:aws:sts::ACCOUNT:federated-user/NAME`).
    FederatedUser(String),
    /// An IAM unique id (`AIDA...`, `AROA...`), as IAM shows a deleted principal.
    UniqueId(String),
    /// `{"Service": "s3.amazonaws.com"}`.
    Service(String),
    /// `{"Federated": ...}`: an identity provider; kmsim has no federated callers.
    Federated(String),
    /// `{"CanonicalUser": ...}`: an account's S3 canonical user id.
    CanonicalUser(String),
}

impl PrincipalElement {
    /// Parses the element's JSON value.
    pub(crate) fn parse(value: &Value) -> Result<PrincipalElement> {
        let invalid = |kind: &str, value: &str| {
            PolicyError::new(ErrorKind::InvalidPrincipal(if kind.is_empty() {
                format!("\"{value}\"")
            } else {
                format!("\"{kind}\":\"{value}\"")
            }))
        };
        let mut names = Vec::new();
        match value {
            Value::String(text) if text == "*" => names.push(Named::Everyone),
            Value::String(text) => return Err(invalid("", text)),
            Value::Object(map) if !map.is_empty() => {
                for (kind, values) in map {
                    let values: Vec<&str> = match values {
                        Value::String(text) => vec![text],
                        Value::Array(items) if !items.is_empty() => items
                            .iter()
                            .map(|item| item.as_str().ok_or_else(|| invalid(kind, &item.to_string())))
                            .collect::<Result<_>>()?,
                        other => return Err(invalid(kind, &other.to_string())),
                    };
                    for text in values {
                        let named = match kind.as_str() {
                            "AWS" => aws_principal(text),
                            "Service" => fixed(text).map(|text| Named::Service(text.to_owned())),
                            "Federated" => fixed(text).map(|text| Named::Federated(text.to_owned())),
                            "CanonicalUser" => fixed(text).map(|text| Named::CanonicalUser(text.to_owned())),
                            _ => None,
                        };
                        names.push(named.ok_or_else(|| invalid(kind, text))?);
                    }
                }
            }
            other => return Err(invalid("", &other.to_string())),
        }
        Ok(PrincipalElement { names })
    }

    /// How this element, read as `Principal`, names `caller`; `None` when it does not.
    pub(crate) fn principal_match(&self, caller: &Principal) -> Option<PrincipalMatch> {
        self.names.iter().filter_map(|named| named.matches(caller)).max()
    }

    /// Whether this element, read as `NotPrincipal`, excludes `caller`: every identity the caller
    /// is evaluated as — its account, its user or role, its session — is listed. ("AWS JSON
    /// policy elements: NotPrincipal": AWS may validate the account first, then the role, then the
    /// session, so a `NotPrincipal` naming only the session still applies to it.)
    pub(crate) fn excludes(&self, caller: &Principal) -> bool {
        if self.names.contains(&Named::Everyone) {
            return true;
        }
        let listed = |wanted: &dyn Fn(&Named) -> bool| self.names.iter().any(wanted);
        let account = |caller: &Principal| {
            listed(&|named| match named {
                Named::Account(account) => caller.account() == Some(account.as_str()),
                Named::CanonicalUser(id) => caller.canonical_id.as_deref() == Some(id.as_str()),
                _ => false,
            })
        };
        match &caller.kind {
            PrincipalKind::Root => account(caller),
            PrincipalKind::User { .. } => {
                account(caller) && listed(&|named| matches!(named.matches(caller), Some(PrincipalMatch::Direct)))
            }
            PrincipalKind::AssumedRole { role_arn, .. } => {
                account(caller)
                    && listed(&|named| matches!(named, Named::Role(arn) if arn == role_arn))
                    && listed(&|named| matches!(named, Named::AssumedRole(arn) if Some(arn.as_str()) == caller.arn()))
            }
            PrincipalKind::Service(name) => listed(&|named| matches!(named, Named::Service(s) if s == name)),
            PrincipalKind::Anonymous => false,
        }
    }

    /// Whether the element names everyone (`"*"` or `{"AWS": "*"}`).
    pub fn is_everyone(&self) -> bool {
        self.names.contains(&Named::Everyone)
    }

    /// Whether the element names `account` itself (its root ARN, or its bare id).
    pub fn names_account(&self, account: &str) -> bool {
        self.names.iter().any(|named| matches!(named, Named::Account(a) if a == account))
    }

    /// The AWS principals named, as written in AWS's canonical form (accounts as root ARNs), for
    /// services that check that each one exists.
    pub fn aws_principals(&self) -> impl Iterator<Item = String> + '_ {
        self.names.iter().filter_map(|named| match named {
            Named::Everyone => Some("*".to_owned()),
            Named::Account(account) => Some(format!("arn:aws:iam::{account}:root")),
            Named::User(arn) | Named::Role(arn) | Named::AssumedRole(arn) | Named::FederatedUser(arn) => {
                Some(arn.clone())
            }
            Named::UniqueId(id) => Some(id.clone()),
            Named::Service(_) | Named::Federated(_) | Named::CanonicalUser(_) => None,
        })
    }
}

impl Named {
    fn matches(&self, caller: &Principal) -> Option<PrincipalMatch> {
        let account_level = || {
            if caller.kind == PrincipalKind::Root { PrincipalMatch::Direct } else { PrincipalMatch::Account }
        };
        let hit = match (self, &caller.kind) {
            (Named::Everyone, _) => return Some(PrincipalMatch::Direct),
            (Named::Account(account), _) if caller.account() == Some(account.as_str()) => account_level(),
            (Named::CanonicalUser(id), _) if caller.canonical_id.as_deref() == Some(id.as_str()) => account_level(),
            (Named::User(arn), PrincipalKind::User { .. }) if caller.arn() == Some(arn.as_str()) => {
                PrincipalMatch::Direct
            }
            (Named::Role(arn), PrincipalKind::AssumedRole { role_arn, .. }) if arn == role_arn => {
                PrincipalMatch::Direct
            }
            (Named::AssumedRole(arn), PrincipalKind::AssumedRole { .. }) if caller.arn() == Some(arn.as_str()) => {
                PrincipalMatch::Session
            }
            (Named::UniqueId(id), PrincipalKind::User { .. } | PrincipalKind::AssumedRole { .. })
                if caller.unique_id.as_deref() == Some(id.as_str()) =>
            {
                PrincipalMatch::Direct
            }
            (Named::Service(name), PrincipalKind::Service(service)) if name == service => PrincipalMatch::Direct,
            _ => return None,
        };
        Some(hit)
    }
}

/// A value without wildcards.
fn fixed(text: &str) -> Option<&str> {
    (!text.is_empty() && !text.contains(['*', '?'])).then_some(text)
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Reads a value of `{"AWS": ...}`.
fn aws_principal(text: &str) -> Option<Named> {
    if text == "*" {
        return Some(Named::Everyone);
    }
    let text = fixed(text)?;
    if is_account_id(text) {
        return Some(Named::Account(text.to_owned()));
    }
    if text.len() >= 16 && text.starts_with("A") && text.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return Some(Named::UniqueId(text.to_owned()));
    }
    let mut parts = text.splitn(6, ':');
    let (arn, partition, service, region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if arn != "arn" || partition.is_empty() || !region.is_empty() {
        return None;
    }
    let owned = || text.to_owned();
    match service {
        "iam" if account == "cloudfront" && resource.starts_with("user/") => Some(Named::User(owned())),
        "iam" if !is_account_id(account) => None,
        "iam" if resource == "root" => Some(Named::Account(account.to_owned())),
        "iam" if named_path(resource, "user/") => Some(Named::User(owned())),
        "iam" if named_path(resource, "role/") => Some(Named::Role(owned())),
        "sts" if !is_account_id(account) => None,
        "sts" => {
            if let Some(session) = resource.strip_prefix("assumed-role/") {
                let (role, name) = session.split_once('/')?;
                (!role.is_empty() && !name.is_empty() && !name.contains('/')).then(|| Named::AssumedRole(owned()))
            } else {
                let name = resource.strip_prefix("federated-user/")?;
                (!name.is_empty()).then(|| Named::FederatedUser(owned()))
            }
        }
        _ => None,
    }
}

/// Whether `resource` is `prefix` followed by an optional path and a name.
fn named_path(resource: &str, prefix: &str) -> bool {
    resource.strip_prefix(prefix).is_some_and(|rest| !rest.is_empty() && !rest.ends_with('/'))
}
