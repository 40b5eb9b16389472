//! STS on the identity store: who is calling ([`caller_identity`]) and role sessions ([`Identities::assume_role`]).
//!
//! AssumeRole evaluates the role's trust policy with the `policy` crate, as AWS does: a trust policy that names
//! the caller (its user, its role for a chained session, or `*`) lets it in; one that names only the caller's
//! account delegates to the caller's identity-based policies, which must then allow `sts:AssumeRole` on the role
//! ([`policy::Rule::KeyPolicy`] is exactly that rule); a caller of another account needs both
//! ([`policy::Rule::CrossAccount`]). Session policies (`Policy`, `PolicyArns`) become the session's policy slot
//! and limit what the role's policies allow; session tags (`Tags`) become the session's `aws:PrincipalTag/*`
//! (over the role's tags of the same key), and `TransitiveTagKeys` carry into chained sessions.

use std::sync::Arc;

use auth::{AccessKey, Identity, SessionToken};
use policy::{Context, Policy, Principal, PrincipalKind, Rule};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::identities::{Identities, SessionInfo, identity_policy, parse_policy_arn, parse_role_arn};
use crate::ids::{self, IdKind};
use crate::model::Tag;
use crate::validate;

/// The shortest session (`DurationSeconds`).
pub const MIN_DURATION: i64 = 900;
/// The longest session of a role chain: a session assuming another role.
pub const CHAINED_MAX_DURATION: i64 = 3600;
/// Most managed session policies (`PolicyArns`).
pub const MAX_POLICY_ARNS: usize = 10;
/// Longest inline session policy (`Policy`), in characters.
pub const MAX_SESSION_POLICY_LENGTH: usize = 2048;
/// Most session tags.
pub const MAX_SESSION_TAGS: usize = 50;

/// What GetCallerIdentity answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The 12-digit account.
    pub account: String,
    /// The caller's ARN (`…:root`, `…:user/PATH/NAME`, `arn:aws:sts::…:assumed-role/ROLE/SESSION`).
    pub arn: String,
    /// The account id for the root, `AIDA…` for a user, `AROA…:SESSION` for a role session.
    pub user_id: String,
}

/// Who signed a request, as STS names it.
pub fn caller_identity(key: &AccessKey) -> CallerIdentity {
    let principal = key.identity.principal();
    let user_id = match principal.kind() {
        PrincipalKind::AssumedRole { session_name, .. } => {
            format!("{}:{session_name}", principal.unique_id().unwrap_or_default())
        }
        PrincipalKind::User { .. } => principal.unique_id().unwrap_or(&key.account_id).to_owned(),
        _ => key.account_id.clone(),
    };
    CallerIdentity { account: key.account_id.clone(), arn: key.principal_arn.clone(), user_id }
}

/// What AssumeRole takes.
#[derive(Debug, Clone, Default)]
pub struct AssumeRoleRequest {
    /// `RoleArn`.
    pub role_arn: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `DurationSeconds` (default 3600).
    pub duration: Option<i64>,
    /// `Policy`: an inline session policy.
    pub policy: Option<String>,
    /// `PolicyArns`: managed session policies (of the role's account).
    pub policy_arns: Vec<String>,
    /// `Tags`: session tags.
    pub tags: Vec<Tag>,
    /// `TransitiveTagKeys`: the session tags chained sessions inherit.
    pub transitive_tag_keys: Vec<String>,
    /// `ExternalId`, which a trust policy may require (`sts:ExternalId`).
    pub external_id: Option<String>,
    /// `SourceIdentity` (`sts:SourceIdentity`).
    pub source_identity: Option<String>,
    /// The request's global condition keys (`aws:SourceIp`, `aws:SecureTransport`, ...).
    pub context: Context,
}

/// The temporary credentials AssumeRole hands out (its `Debug` shows no secret).
#[derive(Clone)]
pub struct Session {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret (40 characters).
    pub secret_access_key: Zeroizing<String>,
    /// The token every request of the session carries.
    pub session_token: Zeroizing<String>,
    /// Unix seconds (simulated clock).
    pub expires_at: i64,
    /// `AROA…:SESSION`.
    pub assumed_role_id: String,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    /// The packed size of session policies and tags, in percent of what a session carries, when any were given.
    pub packed_policy_size: Option<u32>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("expires_at", &self.expires_at)
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

fn denied(caller: &AccessKey, role_arn: &str) -> Error {
    Error::AccessDenied(format!(
        "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
        caller.principal_arn
    ))
}

impl Identities {
    /// AssumeRole by `caller`: checks the request and the trust policy, then registers the session's key with
    /// the verifier.
    pub fn assume_role(&self, caller: &AccessKey, request: &AssumeRoleRequest) -> Result<Session> {
        validate::length(&request.role_arn, "roleArn", 20, 2048)?;
        validate::name(&request.session_name, "roleSessionName", 2, 64)?;
        let chained = matches!(caller.identity.principal().kind(), PrincipalKind::AssumedRole { .. });
        let duration = request.duration.unwrap_or(3600);
        if duration < MIN_DURATION {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: \
                 Member must have value greater than or equal to {MIN_DURATION}"
            )));
        }
        if duration > i64::from(crate::identities::MAX_SESSION_DURATION) {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: \
                 Member must have value less than or equal to 43200"
            )));
        }
        if let Some(external_id) = &request.external_id {
            validate::length(external_id, "externalId", 2, 1224)?;
        }
        if let Some(source_identity) = &request.source_identity {
            validate::name(source_identity, "sourceIdentity", 2, 64)?;
        }
        if request.policy_arns.len() > MAX_POLICY_ARNS {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value at 'policyArns' failed to satisfy constraint: Member must have \
                 length less than or equal to {MAX_POLICY_ARNS}"
            )));
        }
        if request.tags.len() > MAX_SESSION_TAGS {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length \
                 less than or equal to {MAX_SESSION_TAGS}"
            )));
        }
        validate::tags(&request.tags).map_err(|e| match e {
            Error::InvalidInput(m) | Error::LimitExceeded(m) => Error::Validation(m),
            other => other,
        })?;
        for key in &request.transitive_tag_keys {
            if !request.tags.iter().any(|t| t.key.eq_ignore_ascii_case(key)) {
                return Err(Error::Validation(format!(
                    "The transitive tag key {key} is not among the session tags of the request."
                )));
            }
        }
        let session_policy = match &request.policy {
            Some(document) => {
                validate::length(document, "policy", 1, MAX_SESSION_POLICY_LENGTH)?;
                Some(identity_policy(document)?)
            }
            None => None,
        };
        // Root credentials may not assume roles, whatever the trust policy says.
        if caller.identity.is_root() {
            return Err(Error::AccessDenied("Roles may not be assumed by root accounts.".into()));
        }
        let Some((role_account, role_path, role_name)) = parse_role_arn(&request.role_arn) else {
            return Err(Error::Validation(format!("{} is invalid", request.role_arn)));
        };
        let role_account = role_account.to_owned();
        let role_name = role_name.to_owned();
        let now = self.now();

        let (role, trust, role_policies) = {
            let state = self.read();
            let role = state
                .accounts
                .get(&role_account)
                .and_then(|a| a.roles.get(&role_name.to_ascii_lowercase()))
                .filter(|r| r.record.path == role_path && r.record.name == role_name)
                .ok_or_else(|| denied(caller, &request.role_arn))?;
            (role.record.clone(), role.trust.clone(), role.policies.clone())
        };
        let inherited: Vec<Tag> = match caller.identity.principal().kind() {
            PrincipalKind::AssumedRole { .. } => {
                let state = self.read();
                state
                    .accounts
                    .get(&caller.account_id)
                    .and_then(|a| a.sessions.get(&caller.access_key_id))
                    .map(|s| s.transitive_tags.clone())
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        if let Some(tag) = request.tags.iter().find(|t| inherited.iter().any(|i| i.key.eq_ignore_ascii_case(&t.key))) {
            return Err(Error::Validation(format!(
                "The session tag {} conflicts with a transitive tag of the calling session.",
                tag.key
            )));
        }

        // The trust policy, and the caller's own policies where the trust policy delegates to them.
        let mut context = request.context.clone();
        context.insert("sts:RoleSessionName", request.session_name.clone());
        if let Some(external_id) = &request.external_id {
            context.insert("sts:ExternalId", external_id.clone());
        }
        if let Some(source_identity) = &request.source_identity {
            context.insert("sts:SourceIdentity", source_identity.clone());
        }
        for tag in &request.tags {
            context.insert(&format!("aws:RequestTag/{}", tag.key), tag.value.clone());
        }
        if !request.tags.is_empty() {
            context.insert_all("aws:TagKeys", request.tags.iter().map(|t| t.key.clone()));
        }
        if !request.transitive_tag_keys.is_empty() {
            context.insert_all("sts:TransitiveTagKeys", request.transitive_tag_keys.iter().cloned());
        }
        let rule = if role_account == caller.account_id { Rule::KeyPolicy } else { Rule::CrossAccount };
        let mut actions = vec!["sts:AssumeRole"];
        if !request.tags.is_empty() || !inherited.is_empty() {
            actions.push("sts:TagSession");
        }
        if request.source_identity.is_some() {
            actions.push("sts:SetSourceIdentity");
        }
        for action in actions {
            let decision = caller.identity.decide(action, &request.role_arn, &context, Some(&trust), rule);
            if !decision.allowed {
                return Err(denied(caller, &request.role_arn));
            }
        }
        if chained && duration > CHAINED_MAX_DURATION {
            return Err(Error::Validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
                    .into(),
            ));
        }
        if duration > i64::from(role.max_session_duration) {
            return Err(Error::Validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.".into(),
            ));
        }

        // Session policies: the inline one and the managed ones of the role's account.
        let mut session_policies: Vec<Arc<Policy>> = session_policy.into_iter().collect();
        for arn in &request.policy_arns {
            validate::length(arn, "policyArns.member.arn", 20, 2048)?;
            let document = parse_policy_arn(arn)
                .filter(|(account, _, _)| *account == role_account)
                .and_then(|_| self.get_policy(&role_account, arn).ok())
                .ok_or_else(|| {
                    Error::MalformedPolicyDocument(format!("Policy {arn} does not exist or is not attachable."))
                })?;
            session_policies.push(identity_policy(&document.record.document)?);
        }
        let packed =
            (request.policy.is_some() || !request.policy_arns.is_empty() || !request.tags.is_empty()).then(|| {
                let bytes = request.policy.as_deref().map_or(0, validate::policy_size)
                    + request.policy_arns.iter().map(String::len).sum::<usize>()
                    + request.tags.iter().map(|t| t.key.len() + t.value.len()).sum::<usize>();
                u32::try_from(bytes * 100 / MAX_SESSION_POLICY_LENGTH).unwrap_or(u32::MAX)
            });
        if packed.is_some_and(|p| p > 100) {
            return Err(Error::PackedPolicyTooLarge(
                "Packed policy consumes more than 100% of the allotted space (session policies and tags).".into(),
            ));
        }

        // The session's principal: the role session, tagged with the role's tags, the inherited transitive tags
        // and the session tags (later ones win).
        let tags = role.tags.iter().chain(&inherited).chain(&request.tags);
        let principal = Principal::assumed_role(&role_account, &role.path, &role.name, &request.session_name)
            .with_unique_id(&role.id)
            .with_tags(tags.map(|t| (t.key.as_str(), t.value.clone())));
        let session_arn = principal.arn().unwrap_or_default().to_owned();
        let identity =
            Identity::new(principal, role_policies, (!session_policies.is_empty()).then(|| session_policies.into()));
        let access_key_id = loop {
            let id = ids::new_id(IdKind::SessionKey, self.entropy());
            if !self.accounts().contains(&id) {
                break id;
            }
        };
        let secret = ids::new_secret(self.entropy());
        let token = ids::new_session_token(self.entropy());
        let expires_at = now + duration;
        let transitive_tags: Vec<Tag> = inherited
            .into_iter()
            .chain(
                request
                    .tags
                    .iter()
                    .filter(|t| request.transitive_tag_keys.iter().any(|k| k.eq_ignore_ascii_case(&t.key)))
                    .cloned(),
            )
            .collect();
        {
            let mut state = self.write();
            let account_state = state.accounts.entry(role_account.clone()).or_default();
            // Make room: sessions that have expired go first, oldest first.
            while account_state.sessions.len() >= crate::identities::MAX_SESSIONS {
                let Some((expiry, id)) = account_state.session_order.first().cloned() else { break };
                if expiry > now {
                    return Err(Error::Throttling(format!(
                        "Rate exceeded: kmsim holds at most {} unexpired role sessions per account",
                        crate::identities::MAX_SESSIONS
                    )));
                }
                account_state.session_order.remove(&(expiry, id.clone()));
                account_state.sessions.remove(&id);
                self.accounts().remove_live(&id);
            }
            account_state.sessions.insert(access_key_id.clone(), SessionInfo { transitive_tags });
            account_state.session_order.insert((expires_at, access_key_id.clone()));
            self.accounts().insert_live(AccessKey::with_identity(
                &access_key_id,
                &secret,
                &role_account,
                session_arn.clone(),
                identity,
                Some(SessionToken { token: token.clone(), expires_at }),
            ));
        }
        Ok(Session {
            access_key_id,
            secret_access_key: secret,
            session_token: token,
            expires_at,
            assumed_role_id: format!("{}:{}", role.id, request.session_name),
            arn: session_arn,
            packed_policy_size: packed,
        })
    }
}
