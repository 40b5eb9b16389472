//! The combined decision over all the policies that apply to a request ("Policy evaluation
//! logic"): an explicit deny in any of them wins; otherwise the [`Rule`] says which policies must
//! allow; otherwise the request is implicitly denied.

use std::sync::Arc;

use crate::principal::PrincipalMatch;
use crate::{Outcome, Policy, Request};

/// The policies that apply to one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policies<'a> {
    /// The identity-based policies of the caller (its user's or role's, and its groups').
    pub identity: &'a [&'a Policy],
    /// The resource's policy (KMS key policy, S3 bucket policy), if it has one.
    pub resource: Option<&'a Policy>,
    /// The session policies passed to AssumeRole, if any were: they limit what the identity-based
    /// policies (and resource-based grants to the role, not to the session) allow.
    pub session: Option<&'a [&'a Policy]>,
}

/// Which policies must allow a request, by where the caller and the resource stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Caller and resource in one account: an identity-based policy or the resource-based policy
    /// may allow. A resource-based statement that names only the caller's account is a delegation
    /// to the identity-based policies, not a grant.
    SameAccount,
    /// Caller and resource in different accounts: the resource-based policy must allow (naming the
    /// caller or its account) and so must an identity-based policy.
    CrossAccount,
    /// A KMS key in the caller's account: the key policy must allow — naming the caller directly,
    /// or naming the account, in which case an identity-based policy must allow too. Without an
    /// allowing key policy statement the request is denied whatever the identity-based policies say
    /// ("Key policies in AWS KMS"). A key in another account is [`Rule::CrossAccount`].
    KeyPolicy,
}

/// A kind of policy, as AWS's denial messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An identity-based policy ("identity-based policy").
    Identity,
    /// A resource-based policy: key policy, bucket policy ("resource-based policy").
    Resource,
    /// A session policy ("session policy").
    Session,
}

impl Source {
    fn article_and_name(self) -> &'static str {
        match self {
            Source::Identity => "an identity-based policy",
            Source::Resource => "a resource-based policy",
            Source::Session => "a session policy",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Source::Identity => "identity-based policy",
            Source::Resource => "resource-based policy",
            Source::Session => "session policy",
        }
    }
}

/// Why a request was allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Allowed by a statement of this kind of policy.
    Allowed {
        /// The policy whose statement allowed.
        by: Source,
    },
    /// A `Deny` statement applied.
    ExplicitDeny {
        /// The policy whose statement denied.
        in_: Source,
    },
    /// No identity-based policy allows (where one had to).
    NoIdentityPolicyAllows,
    /// No resource-based policy allows (where one had to).
    NoResourcePolicyAllows,
    /// The session policies do not allow what the other policies do.
    NoSessionPolicyAllows,
    /// Neither an identity-based nor the resource-based policy allows (same account).
    NoPolicyAllows,
}

impl Reason {
    /// The end of AWS's denial message — "User: ARN is not authorized to perform: ACTION on
    /// resource: ARN" followed by this — for `action`; `None` when the request was allowed.
    ///
    /// The phrases are AWS's ("Troubleshoot access denied error messages"; S3's "Access denied
    /// message examples"): "because no identity-based policy allows the kms:Decrypt action", "with
    /// an explicit deny in a resource-based policy", "with an explicit deny in an identity-based
    /// policy", "because no resource-based policy allows the kms:Decrypt action", and the same for
    /// session policies. [`Reason::NoPolicyAllows`] reads as the identity-based phrase, which is
    /// what AWS answers when nothing in the caller's own account allows.
    pub fn phrase(&self, action: &str) -> Option<String> {
        match self {
            Reason::Allowed { .. } => None,
            Reason::ExplicitDeny { in_ } => Some(format!("with an explicit deny in {}", in_.article_and_name())),
            Reason::NoIdentityPolicyAllows | Reason::NoPolicyAllows => Some(no_policy_allows(Source::Identity, action)),
            Reason::NoResourcePolicyAllows => Some(no_policy_allows(Source::Resource, action)),
            Reason::NoSessionPolicyAllows => Some(no_policy_allows(Source::Session, action)),
        }
    }
}

fn no_policy_allows(source: Source, action: &str) -> String {
    format!("because no {} allows the {action} action", source.name())
}

/// The combined decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// The `Sid` of the statement that decided (the deny, or the allow), if it has one.
    pub sid: Option<Arc<str>>,
}

/// One kind of policy's verdict: whether it denies, and its best allow.
#[derive(Default)]
struct Verdict {
    deny: Option<Option<Arc<str>>>,
    allow: Option<(PrincipalMatch, Option<Arc<str>>)>,
}

impl Verdict {
    fn of(policies: &[&Policy], request: &Request<'_>) -> Verdict {
        let mut verdict = Verdict::default();
        for policy in policies {
            match policy.evaluate(request) {
                Outcome::Deny { sid } => {
                    verdict.deny = Some(sid);
                    return verdict;
                }
                Outcome::Allow { sid, principal_match } => {
                    if verdict.allow.as_ref().is_none_or(|(best, _)| principal_match > *best) {
                        verdict.allow = Some((principal_match, sid));
                    }
                }
                Outcome::NotApplicable => {}
            }
        }
        verdict
    }

    fn allows(&self) -> bool {
        self.allow.is_some()
    }

    fn sid(&self) -> Option<Arc<str>> {
        self.allow.as_ref().and_then(|(_, sid)| sid.clone())
    }
}

/// Decides `request` under `policies` by `rule`.
///
/// An explicit deny in any policy — identity-based, session, then resource-based, the first found
/// is reported — denies. Otherwise the rule says which allows are needed; session policies, when
/// present, must also allow whatever the identity-based policies (or a resource-based grant to
/// the role, the user or everyone) allow, but do not limit a resource-based grant that names the
/// role session itself. The root user is not special here: a service that gives the root full
/// access says so by the policies it passes.
pub fn decide(policies: &Policies<'_>, request: &Request<'_>, rule: Rule) -> Decision {
    let deny =
        |in_: Source, sid: Option<Arc<str>>| Decision { allowed: false, reason: Reason::ExplicitDeny { in_ }, sid };
    let identity = Verdict::of(policies.identity, request);
    if let Some(sid) = identity.deny {
        return deny(Source::Identity, sid);
    }
    let session = policies.session.map(|session| Verdict::of(session, request));
    if let Some(sid) = session.as_ref().and_then(|session| session.deny.clone()) {
        return deny(Source::Session, sid);
    }
    let resource = policies.resource.map(|resource| Verdict::of(&[resource], request)).unwrap_or_default();
    if let Some(sid) = resource.deny {
        return deny(Source::Resource, sid);
    }

    let session_allows = session.as_ref().is_none_or(Verdict::allows);
    let identity_allows = identity.allows() && session_allows;
    let resource_match = resource.allow.as_ref().map(|(principal_match, _)| *principal_match);
    // A grant that names the session itself is not limited by session policies; others are.
    let resource_grants = |at_least: PrincipalMatch| match resource_match {
        Some(PrincipalMatch::Session) => true,
        Some(found) => found >= at_least && session_allows,
        None => false,
    };
    let allowed = |by: Source| {
        let sid = if by == Source::Resource { resource.sid() } else { identity.sid() };
        Decision { allowed: true, reason: Reason::Allowed { by }, sid }
    };
    let denied = |reason: Reason| Decision { allowed: false, reason, sid: None };
    let session_blocks = session.is_some() && !session_allows;

    match rule {
        Rule::SameAccount => {
            if resource_grants(PrincipalMatch::Direct) {
                allowed(Source::Resource)
            } else if identity_allows {
                allowed(Source::Identity)
            } else if session_blocks && (identity.allows() || resource_match >= Some(PrincipalMatch::Direct)) {
                denied(Reason::NoSessionPolicyAllows)
            } else if policies.resource.is_some() {
                denied(Reason::NoPolicyAllows)
            } else {
                denied(Reason::NoIdentityPolicyAllows)
            }
        }
        Rule::CrossAccount => {
            if resource_match.is_none() {
                denied(Reason::NoResourcePolicyAllows)
            } else if !identity.allows() {
                denied(Reason::NoIdentityPolicyAllows)
            } else if identity_allows && resource_grants(PrincipalMatch::Account) {
                allowed(Source::Resource)
            } else {
                denied(Reason::NoSessionPolicyAllows)
            }
        }
        Rule::KeyPolicy => match resource_match {
            None => denied(Reason::NoResourcePolicyAllows),
            Some(_) if resource_grants(PrincipalMatch::Direct) => allowed(Source::Resource),
            Some(_) if identity_allows => allowed(Source::Identity),
            Some(found) if found >= PrincipalMatch::Direct => denied(Reason::NoSessionPolicyAllows),
            Some(_) if !identity.allows() => denied(Reason::NoIdentityPolicyAllows),
            Some(_) => denied(Reason::NoSessionPolicyAllows),
        },
    }
}
