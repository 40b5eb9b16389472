//! Who may use a key for what: the key policy, the caller's identity policies and the key's grants, evaluated as
//! AWS KMS documents it ("Determining access to an AWS KMS key"), with the `policy` crate.
//!
//! A key policy is the root of access: in the key's own account the key policy must allow the caller — directly,
//! or by naming the account, which delegates to the caller's identity policies (the default key policy does) —
//! else IAM cannot help ([`policy::Rule::KeyPolicy`]); another account needs both the key policy and its own
//! identity policies ([`policy::Rule::CrossAccount`]). A grant allows its operations to its grantee besides; an
//! explicit deny in any policy wins over everything. Key administration never crosses accounts.

use std::sync::Arc;

use policy::{Decision, Policies, Policy, PolicyKind, Reason, Request, Rule, Source};
use shared::Caller;
use shared::identity::DecisionRecord;

use super::{Kms, LiveKey, default_policy};
use crate::blob::EncryptionContext;
use crate::error::{Error, Result};
use crate::model::{Grant, GrantOperation, KeyRecord};

/// What an operation asks of a key, for the access check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// A grantable operation: allowed by policies, or to another account's principal by a grant.
    Grant(GrantOperation),
    /// Key administration, by its IAM action (`kms:DisableKey`): policies of the key's own account only.
    Admin(&'static str),
}

impl Access {
    /// The IAM action a policy names.
    fn action(self) -> &'static str {
        match self {
            Access::Grant(op) => op.action(),
            Access::Admin(action) => action,
        }
    }
}

/// The compiled key policy of `record`: its own, or the default key policy of its account. A stored policy that no
/// longer parses (kmsim stored any JSON object before it evaluated policies) gives way to the default one.
pub(super) fn compile_key_policy(record: &KeyRecord) -> Arc<Policy> {
    let default = || {
        let text = default_policy(&record.account);
        Arc::new(Policy::parse(&text, PolicyKind::Resource).expect("the default key policy parses"))
    };
    let Some(text) = &record.policy else { return default() };
    match Policy::parse(text, PolicyKind::Resource) {
        Ok(policy) => Arc::new(policy),
        Err(e) => {
            tracing::warn!(key = %record.arn(), error = %e, "stored key policy does not parse; the default key policy applies");
            default()
        }
    }
}

/// The `kms:ViaService` value of a calling service (`s3.amazonaws.com` → `s3.REGION.amazonaws.com`).
fn via_service_name(service: &str, region: &str) -> String {
    let name = service.strip_suffix(".amazonaws.com").unwrap_or(service);
    format!("{name}.{region}.amazonaws.com")
}

impl Kms {
    /// Checks a key policy as PutKeyPolicy, CreateKey and ReplicateKey do: its length, its grammar (AWS's
    /// MalformedPolicyDocumentException and message), and — unless `bypass_lockout_check`
    /// (`BypassPolicyLockoutSafetyCheck`) — AWS's "policy lockout safety check": the policy, with the caller's
    /// identity policies, must let `caller` change the policy of `key_arn` later.
    pub(super) fn validate_policy(
        &self,
        document: &str,
        caller: &Caller,
        key_arn: &str,
        bypass_lockout_check: bool,
    ) -> Result<()> {
        if document.is_empty() || document.len() > 32_768 {
            return Err(Error::Validation(
                "1 validation error detected: Value at 'policy' failed to satisfy constraint: Member must have length between 1 and 32768".into(),
            ));
        }
        let parsed = Policy::parse(document, PolicyKind::Resource)
            .map_err(|e| Error::MalformedPolicyDocument(e.kms_message()))?;
        if bypass_lockout_check {
            return Ok(());
        }
        let authority = self.identities().authority(caller);
        let identity: Vec<&Policy> = authority.identity.iter().map(Arc::as_ref).collect();
        let session: Option<Vec<&Policy>> = authority.session.as_ref().map(|s| s.iter().map(Arc::as_ref).collect());
        let policies = Policies { identity: &identity, resource: Some(&parsed), session: session.as_deref() };
        let mut conditions = policy::Context::new();
        conditions.insert("kms:CallerAccount", caller.account_id.as_str());
        let request = Request {
            principal: &authority.principal,
            action: "kms:PutKeyPolicy",
            resource: key_arn,
            context: &conditions,
        };
        if policy::decide(&policies, &request, Rule::KeyPolicy).allowed {
            return Ok(());
        }
        Err(Error::MalformedPolicyDocument(
            "The new key policy will not allow you to update the key policy in the future.".into(),
        ))
    }

    /// Checks that `caller` may do `action`, which acts on no key in particular (`kms:CreateKey`, `kms:ListKeys`,
    /// `kms:GenerateRandom`, ...): the caller's identity policies must allow it on `*`. Recorded like
    /// [`Kms::authorize`]'s decisions; a denial is AccessDeniedException with AWS's message.
    pub fn authorize_account(&self, caller: &Caller, action: &'static str) -> Result<()> {
        self.authorize_identity(caller, action, "*")
    }

    /// Checks that `caller`'s identity policies allow `action` on the alias `alias_arn`: CreateAlias, UpdateAlias
    /// and DeleteAlias need it on the alias (an IAM policy's business: aliases have no policy of their own) besides
    /// the key policy's leave on each key involved.
    pub(super) fn authorize_alias(&self, caller: &Caller, action: &'static str, alias_arn: &str) -> Result<()> {
        self.authorize_identity(caller, action, alias_arn)
    }

    /// The identity-only check of [`Kms::authorize_account`] and [`Kms::authorize_alias`], on `resource`.
    fn authorize_identity(&self, caller: &Caller, action: &'static str, resource: &str) -> Result<()> {
        let decision = self.identity_decision(caller, action, resource);
        if decision.allowed {
            return Ok(());
        }
        Err(denied(caller, action, resource, &decision.reason.phrase(action).unwrap_or_default()))
    }

    /// Decides `action` on `resource` by the caller's identity (and session) policies alone, and records the
    /// decision.
    fn identity_decision(&self, caller: &Caller, action: &'static str, resource: &str) -> Decision {
        let authority = self.identities().authority(caller);
        let identity: Vec<&Policy> = authority.identity.iter().map(Arc::as_ref).collect();
        let session: Option<Vec<&Policy>> = authority.session.as_ref().map(|s| s.iter().map(Arc::as_ref).collect());
        let policies = Policies { identity: &identity, resource: None, session: session.as_deref() };
        let mut conditions = policy::Context::new();
        conditions.insert("kms:CallerAccount", caller.account_id.as_str());
        conditions.insert("aws:RequestedRegion", caller.region.as_str());
        if let Some(peer) = caller.peer {
            conditions.insert("aws:SourceIp", peer.addr.ip().to_string());
            conditions.insert("aws:SecureTransport", if peer.secure { "true" } else { "false" });
        }
        let request = Request { principal: &authority.principal, action, resource, context: &conditions };
        let decision = policy::decide(&policies, &request, Rule::SameAccount);
        record(caller, action, &decision);
        decision
    }

    /// Who may retire `grant` of the key `key_arn`, as AWS KMS documents it ("Retiring and revoking grants"): the
    /// grant decides, not the key policy. Its retiring principal, and its grantee if the grant allows RetireGrant,
    /// may retire it; when that principal is an account — and for the account that created the grant — the
    /// account's root may, and its IAM principals to which an identity policy delegates `kms:RetireGrant`. An
    /// explicit deny of `kms:RetireGrant` in the caller's identity policies refuses it in every case.
    pub(super) fn authorize_retire(&self, caller: &Caller, key_arn: &str, grant: &Grant) -> Result<()> {
        const ACTION: &str = "kms:RetireGrant";
        let decision = self.identity_decision(caller, ACTION, key_arn);
        if matches!(decision.reason, Reason::ExplicitDeny { .. }) {
            let phrase = decision.reason.phrase(ACTION).unwrap_or_default();
            return Err(denied(caller, ACTION, key_arn, &phrase));
        }
        let retiring = grant.retiring_principal.iter();
        let grantee = grant.operations.contains(&GrantOperation::RetireGrant).then_some(&grant.grantee_principal);
        let named: Vec<&String> = retiring.chain(grantee).collect();
        let by_name =
            named.iter().any(|p| **p == caller.principal_arn || caller.via_service.as_deref() == Some(p.as_str()));
        let names_account = named.iter().any(|p| **p == caller.account_root() || **p == caller.account_id)
            || grant.issuing_account == caller.account_root();
        if by_name || (names_account && decision.allowed) {
            caller.decisions.push(DecisionRecord {
                action: ACTION,
                allowed: true,
                by: "grant",
                sid: Some(grant.grant_id.as_str().into()),
            });
            return Ok(());
        }
        let phrase = format!("because no identity-based policy allows the {ACTION} action");
        Err(denied(caller, ACTION, key_arn, &phrase))
    }

    /// Checks that `caller` may do `access` with the key `live` (named in the request as `named`, for
    /// `kms:RequestAlias`) under the encryption context `context`, with the operation's own condition keys
    /// (`kms:EncryptionAlgorithm`, `kms:SigningAlgorithm`, `kms:GrantOperations`, ...); records the decision for the
    /// call's audit entry.
    /// A denial is AccessDeniedException with AWS's message, naming why.
    pub(super) fn authorize(
        &self,
        caller: &Caller,
        live: &LiveKey,
        access: Access,
        context: &EncryptionContext,
        named: Option<&str>,
        operation_conditions: &[(&'static str, &str)],
    ) -> Result<()> {
        let key = &live.record;
        let action = access.action();
        let key_arn = &live.arn;
        let same_account = key.account == caller.account_id;
        if !same_account && matches!(access, Access::Admin(_)) {
            // "Cross-account use: No."
            let phrase = format!("because no resource-based policy allows the {action} action");
            return Err(denied(caller, action, key_arn, &phrase));
        }
        let authority = self.identities().authority(caller);
        let identity: Vec<&Policy> = authority.identity.iter().map(Arc::as_ref).collect();
        let session: Option<Vec<&Policy>> = authority.session.as_ref().map(|s| s.iter().map(Arc::as_ref).collect());
        let policies = Policies { identity: &identity, resource: Some(&live.policy), session: session.as_deref() };
        // Only the condition keys some policy reads are computed.
        let wanted = Wanted(
            identity
                .iter()
                .chain(session.iter().flatten())
                .chain([&live.policy.as_ref()])
                .map(|p| p.referenced_keys())
                .collect(),
        );
        let conditions = if wanted.is_empty() {
            policy::Context::new()
        } else {
            let mut conditions = self.condition_keys(caller, key, context, named, &wanted);
            for (name, value) in operation_conditions.iter().filter(|(name, _)| wanted.has(name)) {
                conditions.insert(name, *value);
            }
            conditions
        };
        let request = Request { principal: &authority.principal, action, resource: key_arn, context: &conditions };
        let rule = if same_account { Rule::KeyPolicy } else { Rule::CrossAccount };
        let decision = policy::decide(&policies, &request, rule);
        if decision.allowed {
            record(caller, action, &decision);
            return Ok(());
        }
        if !matches!(decision.reason, Reason::ExplicitDeny { .. })
            && let Access::Grant(op) = access
            && let Some(grant) = key.grants.iter().find(|g| {
                principal_matches(caller, &g.grantee_principal)
                    && g.operations.contains(&op)
                    && (!op.uses_context() || g.constraints.as_ref().is_none_or(|c| c.allow(context)))
            })
        {
            caller.decisions.push(DecisionRecord {
                action,
                allowed: true,
                by: "grant",
                sid: Some(grant.grant_id.as_str().into()),
            });
            return Ok(());
        }
        record(caller, action, &decision);
        let phrase = decision.reason.phrase(action).unwrap_or_default();
        Err(denied(caller, action, key_arn, &phrase))
    }

    /// The request's condition keys as KMS documents them: `kms:CallerAccount`, `kms:ViaService`,
    /// `kms:EncryptionContext:<key>` and `kms:EncryptionContextKeys`, `kms:KeySpec`, `kms:KeyUsage`, `kms:KeyOrigin`,
    /// `kms:RequestAlias`, `kms:ResourceAliases`, and the global `aws:SourceIp`, `aws:SecureTransport`,
    /// `aws:RequestedRegion` (the principal's own keys come from the principal).
    fn condition_keys(
        &self,
        caller: &Caller,
        key: &KeyRecord,
        context: &EncryptionContext,
        named: Option<&str>,
        wanted: &Wanted<'_>,
    ) -> policy::Context {
        let mut conditions = policy::Context::new();
        let mut add = |name: &str, value: &str| {
            if wanted.has(name) {
                conditions.insert(name, value);
            }
        };
        add("kms:CallerAccount", &caller.account_id);
        add("aws:RequestedRegion", &caller.region);
        if let Some(service) = caller.via_service.as_deref().filter(|_| wanted.has("kms:ViaService")) {
            add("kms:ViaService", &via_service_name(service, &caller.region));
        }
        if let Some(peer) = caller.peer {
            if wanted.has("aws:SourceIp") {
                add("aws:SourceIp", &peer.addr.ip().to_string());
            }
            add("aws:SecureTransport", if peer.secure { "true" } else { "false" });
        }
        add("kms:KeySpec", key.spec.as_str());
        add("kms:KeyUsage", key.usage.as_str());
        add("kms:KeyOrigin", key.origin.as_str());
        if let Some(alias) = named.and_then(alias_named) {
            add("kms:RequestAlias", alias);
        }
        for (name, value) in context.iter() {
            add("kms:EncryptionContextKeys", name);
            let pair = format!("kms:EncryptionContext:{name}");
            add(&pair, value);
        }
        if wanted.has("kms:ResourceAliases") {
            conditions.insert_all("kms:ResourceAliases", self.aliases_of(key));
        }
        conditions
    }
}

/// The condition keys the policies of a decision read ([`Policy::referenced_keys`], lowercased).
struct Wanted<'a>(Vec<&'a [String]>);

impl Wanted<'_> {
    fn is_empty(&self) -> bool {
        self.0.iter().all(|keys| keys.is_empty())
    }

    /// Whether some policy reads `name` (in any case).
    fn has(&self, name: &str) -> bool {
        self.0.iter().flat_map(|keys| keys.iter()).any(|key| key.eq_ignore_ascii_case(name))
    }
}

/// The alias a request's `KeyId` names (`alias/x`, or the name in an alias ARN), if it names one.
fn alias_named(named: &str) -> Option<&str> {
    if named.starts_with("alias/") {
        return Some(named);
    }
    named.strip_prefix("arn:").and_then(|rest| rest.find(":alias/")).map(|at| &named["arn:".len() + at + 1..])
}

/// Whether a grant's grantee (or retiring principal) is the caller: its principal, its account's root, or the
/// service calling for it.
fn principal_matches(caller: &Caller, principal: &str) -> bool {
    principal == caller.principal_arn
        || principal == caller.account_root()
        || principal == caller.account_id
        || caller.via_service.as_deref() == Some(principal)
}

/// AWS's AccessDeniedException: "User: ARN is not authorized to perform: ACTION on resource: ARN" and why.
fn denied(caller: &Caller, action: &str, key_arn: &str, why: &str) -> Error {
    Error::AccessDenied(format!(
        "User: {} is not authorized to perform: {action} on resource: {key_arn} {why}",
        caller.principal_arn
    ))
}

/// Records a policy decision in the caller's decisions (for the call's audit entry).
fn record(caller: &Caller, action: &'static str, decision: &Decision) {
    let by = match decision.reason {
        Reason::Allowed { by } | Reason::ExplicitDeny { in_: by } => match by {
            Source::Identity => "identity policy",
            Source::Resource => "key policy",
            Source::Session => "session policy",
        },
        _ => "no policy",
    };
    caller.decisions.push(DecisionRecord { action, allowed: decision.allowed, by, sid: decision.sid.clone() });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_a_request_names() {
        let cases = [
            ("alias/app", Some("alias/app")),
            ("arn:aws:kms:us-east-1:111122223333:alias/app/prod", Some("alias/app/prod")),
            ("1234abcd-12ab-34cd-56ef-1234567890ab", None),
            ("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", None),
        ];
        for (named, want) in cases {
            assert_eq!(alias_named(named), want, "{named}");
        }
    }

    #[test]
    fn via_service_names_carry_the_region() {
        assert_eq!(via_service_name("s3.amazonaws.com", "eu-west-1"), "s3.eu-west-1.amazonaws.com");
        assert_eq!(via_service_name("evs", "eu-de"), "evs.eu-de.amazonaws.com");
    }
}
