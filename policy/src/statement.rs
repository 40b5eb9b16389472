//! Statements: one `Effect` with the principals, actions, resources and conditions it applies to,
//! parsed and compiled once ("IAM JSON policy element reference").

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::condition::{self, Condition};
use crate::context::Env;
use crate::error::{ErrorKind, PolicyError, Result};
use crate::pattern::{Case, Pattern};
use crate::principal::{Principal, PrincipalElement, PrincipalMatch};
use crate::{PolicyKind, Request};

/// Whether a statement allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `"Effect": "Allow"`.
    Allow,
    /// `"Effect": "Deny"`.
    Deny,
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Shared, so an outcome can name it without copying the text.
    sid: Option<Arc<str>>,
    effect: Effect,
    principal: Principals,
    actions: List,
    /// `None` in a trust policy, which names no resources.
    resources: Option<List>,
    conditions: Vec<Condition>,
}

/// Whom a statement applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principals {
    /// An identity-based policy's statement: whoever the policy is attached to.
    Attached,
    Principal(PrincipalElement),
    NotPrincipal(PrincipalElement),
}

/// An `Action`/`NotAction` or `Resource`/`NotResource` list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct List {
    /// The `Not...` form: the statement applies to what none of the patterns match.
    not: bool,
    patterns: Vec<Pattern>,
}

impl List {
    fn applies(&self, text: &str, case: Case, env: &Env<'_>) -> bool {
        self.patterns.iter().any(|pattern| pattern.matches(text, case, env)) != self.not
    }
}

/// The members a statement may have.
const STATEMENT_FIELDS: [&str; 9] =
    ["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"];

/// The keys that, held to fixed values, make an allowing statement non-public ("Blocking public
/// access to your Amazon S3 storage": the meaning of "public").
const CONFINING_KEYS: [&str; 13] = [
    "aws:sourceip",
    "aws:sourcearn",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourceowner",
    "aws:sourceaccount",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "aws:userid",
    "aws:principalorgid",
    "aws:principalaccount",
    "aws:principalarn",
    "s3:dataaccesspointarn",
    "s3:dataaccesspointaccount",
];

impl Statement {
    /// Parses one statement of a policy of `kind`; `variables`: whether its version substitutes
    /// policy variables.
    pub(crate) fn parse(value: &Value, kind: PolicyKind, variables: bool) -> Result<Statement> {
        let Value::Object(map) = value else {
            return Err(PolicyError::new(ErrorKind::InvalidElement("Statement")));
        };
        if let Some(field) = map.keys().find(|field| !STATEMENT_FIELDS.contains(&field.as_str())) {
            return Err(PolicyError::new(ErrorKind::UnknownField(field.clone())));
        }
        let sid = match map.get("Sid") {
            None => None,
            Some(Value::String(sid)) => Some(Arc::<str>::from(sid.as_str())),
            Some(_) => return Err(PolicyError::new(ErrorKind::InvalidElement("Sid"))),
        };
        let effect = match map.get("Effect") {
            None => return Err(PolicyError::new(ErrorKind::MissingEffect)),
            Some(Value::String(effect)) if effect == "Allow" => Effect::Allow,
            Some(Value::String(effect)) if effect == "Deny" => Effect::Deny,
            Some(Value::String(effect)) => return Err(PolicyError::new(ErrorKind::InvalidEffect(effect.clone()))),
            Some(_) => return Err(PolicyError::new(ErrorKind::InvalidElement("Effect"))),
        };
        let principal = principals(map, kind)?;
        let actions = actions(map, kind)?;
        let resources = resources(map, kind, variables)?;
        let conditions = match map.get("Condition") {
            Some(block) => condition::parse_block(block, variables)?,
            None => Vec::new(),
        };
        Ok(Statement { sid, effect, principal, actions, resources, conditions })
    }

    /// The statement's `Sid`, if any.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    pub(crate) fn shared_sid(&self) -> Option<Arc<str>> {
        self.sid.clone()
    }

    /// Whether the statement allows or denies.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The `Principal` element, if the statement has one.
    pub fn principal(&self) -> Option<&PrincipalElement> {
        match &self.principal {
            Principals::Principal(element) => Some(element),
            _ => None,
        }
    }

    /// The `NotPrincipal` element, if the statement has one.
    pub fn not_principal(&self) -> Option<&PrincipalElement> {
        match &self.principal {
            Principals::NotPrincipal(element) => Some(element),
            _ => None,
        }
    }

    /// Whether the statement's `Action` (or `NotAction`) covers `action` (`kms:PutKeyPolicy`).
    pub fn matches_action(&self, action: &str) -> bool {
        let principal = Principal::anonymous();
        let context = crate::Context::new();
        self.actions.applies(action, Case::AsciiInsensitive, &Env { principal: &principal, context: &context })
    }

    /// Whether the statement has a `Condition` element.
    pub fn has_conditions(&self) -> bool {
        !self.conditions.is_empty()
    }

    /// How the statement's principal element names `caller`: `None` when it does not apply to
    /// them, [`PrincipalMatch::None`] for an identity-based policy's statement.
    pub fn principal_match(&self, caller: &Principal) -> Option<PrincipalMatch> {
        match &self.principal {
            Principals::Attached => Some(PrincipalMatch::None),
            Principals::Principal(element) => element.principal_match(caller),
            Principals::NotPrincipal(element) => (!element.excludes(caller)).then_some(PrincipalMatch::Direct),
        }
    }

    /// Whether the statement applies to `request` — action, principal, resource and conditions —
    /// and how it names the caller.
    pub fn applies_to(&self, request: &Request<'_>) -> Option<PrincipalMatch> {
        self.applies(request, &Env { principal: request.principal, context: request.context })
    }

    pub(crate) fn applies(&self, request: &Request<'_>, env: &Env<'_>) -> Option<PrincipalMatch> {
        if !self.actions.applies(request.action, Case::AsciiInsensitive, env) {
            return None;
        }
        let principal_match = self.principal_match(request.principal)?;
        if let Some(resources) = &self.resources
            && !resources.applies(request.resource, Case::Sensitive, env)
        {
            return None;
        }
        self.conditions.iter().all(|condition| condition.holds(env)).then_some(principal_match)
    }

    /// Whether the statement makes its policy public, as S3 judges one: it allows, names everyone
    /// (`"*"`, `{"AWS": "*"}` or any `NotPrincipal`), and no condition holds requests to fixed
    /// values of a key that confines their source or principal (`aws:SourceIp`, `aws:SourceArn`,
    /// `aws:SourceVpc`, `aws:SourceVpce`, `aws:SourceOwner`, `aws:SourceAccount`,
    /// `s3:x-amz-server-side-encryption-aws-kms-key-id`, `aws:userid`, `aws:PrincipalOrgID`,
    /// `aws:PrincipalAccount`, `aws:PrincipalArn`, `s3:DataAccessPointArn`,
    /// `s3:DataAccessPointAccount`).
    pub fn is_public(&self) -> bool {
        let everyone = match &self.principal {
            Principals::Attached => false,
            Principals::Principal(element) => element.is_everyone(),
            Principals::NotPrincipal(_) => true,
        };
        self.effect == Effect::Allow
            && everyone
            && !self.conditions.iter().any(|condition| {
                CONFINING_KEYS.contains(&condition.key.name.as_str()) && condition.confines_to_fixed_values()
            })
    }
}

fn principals(map: &Map<String, Value>, kind: PolicyKind) -> Result<Principals> {
    let principal = map.get("Principal");
    let not_principal = map.get("NotPrincipal");
    match (kind, principal, not_principal) {
        (PolicyKind::Identity, None, None) => Ok(Principals::Attached),
        (PolicyKind::Identity, _, _) => Err(PolicyError::new(ErrorKind::PrincipalNotAllowed)),
        (_, Some(_), Some(_)) => Err(PolicyError::new(ErrorKind::BothElements("Principal"))),
        (_, Some(value), None) => Ok(Principals::Principal(PrincipalElement::parse(value)?)),
        (_, None, Some(value)) => Ok(Principals::NotPrincipal(PrincipalElement::parse(value)?)),
        (_, None, None) => Err(PolicyError::new(ErrorKind::MissingPrincipal)),
    }
}

/// A string or a list of strings; `None` for any other shape.
fn strings<'a>(value: &'a Value, element: &'static str) -> Result<Vec<&'a str>> {
    match value {
        Value::String(text) => Ok(vec![text]),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().ok_or_else(|| PolicyError::new(ErrorKind::InvalidElement(element))))
            .collect(),
        _ => Err(PolicyError::new(ErrorKind::InvalidElement(element))),
    }
}

/// The element or its `Not` form (exactly one of them), and whether it is the `Not` form.
fn one_of<'a>(map: &'a Map<String, Value>, element: &'static str) -> Result<Option<(&'a Value, bool)>> {
    let not_element = match element {
        "Action" => "NotAction",
        _ => "NotResource",
    };
    match (map.get(element), map.get(not_element)) {
        (Some(_), Some(_)) => Err(PolicyError::new(ErrorKind::BothElements(element))),
        (Some(value), None) => Ok(Some((value, false))),
        (None, Some(value)) => Ok(Some((value, true))),
        (None, None) => Ok(None),
    }
}

fn actions(map: &Map<String, Value>, kind: PolicyKind) -> Result<List> {
    let Some((value, not)) = one_of(map, "Action")? else {
        return Err(PolicyError::new(ErrorKind::MissingAction));
    };
    let texts = strings(value, "Action")?;
    if texts.is_empty() {
        return Err(PolicyError::new(ErrorKind::MissingAction));
    }
    let mut patterns = Vec::with_capacity(texts.len());
    for text in texts {
        if text != "*" {
            let invalid =
                |has_vendor| PolicyError::new(ErrorKind::InvalidAction { action: text.to_owned(), has_vendor });
            let (vendor, name) = text.split_once(':').ok_or_else(|| invalid(false))?;
            if vendor.is_empty() || name.is_empty() {
                return Err(invalid(false));
            }
            if !vendor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(invalid(vendor.contains(['*', '?'])));
            }
            if kind == PolicyKind::Trust && !vendor.eq_ignore_ascii_case("sts") {
                return Err(PolicyError::new(ErrorKind::TrustActionNotSts(text.to_owned())));
            }
        }
        patterns.push(Pattern::parse(text, true, false));
    }
    Ok(List { not, patterns })
}

fn resources(map: &Map<String, Value>, kind: PolicyKind, variables: bool) -> Result<Option<List>> {
    let element = one_of(map, "Resource")?;
    let (value, not) = match (kind, element) {
        (PolicyKind::Trust, None) => return Ok(None),
        (PolicyKind::Trust, Some(_)) => return Err(PolicyError::new(ErrorKind::ProhibitedResource)),
        (_, None) => return Err(PolicyError::new(ErrorKind::MissingResource)),
        (_, Some(element)) => element,
    };
    let texts = strings(value, "Resource")?;
    if texts.is_empty() {
        return Err(PolicyError::new(ErrorKind::MissingResource));
    }
    let mut patterns = Vec::with_capacity(texts.len());
    for text in texts {
        if text != "*" && !(text.starts_with("arn:") && text.splitn(6, ':').count() == 6) {
            return Err(PolicyError::new(ErrorKind::InvalidResource(text.to_owned())));
        }
        patterns.push(Pattern::parse(text, true, variables));
    }
    Ok(Some(List { not, patterns }))
}
