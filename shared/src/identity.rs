//! Who a caller is to the policies, and which of its own policies apply: the identity side of every access
//! decision. The services ask an [`Identities`] for a caller's [`Authority`] and evaluate it together with their
//! resource policies (KMS key policies, S3 bucket policies) through the `policy` crate; what each service decided
//! goes back to its audit entry through the caller's [`Decisions`].

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use policy::{Policy, PolicyKind, Principal};

use crate::Caller;

/// What a caller may do by its own policies: the principal the policies see, its identity-based policies, and
/// the session policies that bound an assumed role's session. Cheap to clone (shared parts).
#[derive(Debug, Clone)]
pub struct Authority {
    /// Who calls, as policies name it (account root, IAM user, assumed-role session), with its tags.
    pub principal: Arc<Principal>,
    /// The identity-based policies attached to the principal (inline and managed), as they are now.
    pub identity: Arc<[Arc<Policy>]>,
    /// An assumed role's session policies, which its permissions must also satisfy; `None` when there are none.
    pub session: Option<Arc<[Arc<Policy>]>>,
}

/// The source of every caller's [`Authority`]: kmsim's IAM, or [`AccountWide`] without one.
pub trait Identities: Send + Sync + std::fmt::Debug {
    /// The authority of `caller` (asked on every request: its parts are shared, not copied).
    fn authority(&self, caller: &Caller) -> Authority;
}

/// Identities without IAM: every principal of an account may do anything its identity policies could allow (one
/// identity policy allowing `*` on `*`), so that only resource policies (key policies, bucket policies) and grants
/// restrict it. This is kmsim's behaviour for access keys declared without policies.
#[derive(Debug, Default)]
pub struct AccountWide {
    /// Each principal's authority by principal ARN, built on first use (cleared when it grows past
    /// [`MAX_CACHED_AUTHORITIES`]).
    cache: RwLock<HashMap<String, Authority>>,
}

/// Most principals [`AccountWide`] keeps an authority for.
const MAX_CACHED_AUTHORITIES: usize = 4096;

/// The identity policy of [`AccountWide`].
static ALLOW_ALL: LazyLock<Arc<Policy>> = LazyLock::new(|| {
    let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    Arc::new(Policy::parse(document, PolicyKind::Identity).expect("the allow-all policy parses"))
});

impl Identities for AccountWide {
    fn authority(&self, caller: &Caller) -> Authority {
        if let Some(authority) = self.cache.read().unwrap_or_else(|e| e.into_inner()).get(&caller.principal_arn) {
            return authority.clone();
        }
        let authority = Authority {
            principal: Arc::new(principal_of(caller)),
            identity: Arc::from([ALLOW_ALL.clone()]),
            session: None,
        };
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED_AUTHORITIES {
            cache.clear();
        }
        cache.insert(caller.principal_arn.clone(), authority.clone());
        authority
    }
}

/// The policy principal a caller's ARN names: the account root, an IAM user (`arn:aws:iam::ACCOUNT:user/PATH/NAME`)
/// or an assumed-role session (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`); anything else is taken as the
/// account root.
pub fn principal_of(caller: &Caller) -> Principal {
    let account = caller.account_id.as_str();
    let arn = caller.principal_arn.as_str();
    if let Some(rest) = arn.strip_prefix("arn:aws:iam::").and_then(|r| r.strip_prefix(account))
        && let Some(user) = rest.strip_prefix(":user/")
    {
        let (path, name) = match user.rsplit_once('/') {
            Some((path, name)) => (format!("/{path}/"), name),
            None => ("/".to_owned(), user),
        };
        return Principal::user(account, &path, name);
    }
    if let Some(rest) = arn.strip_prefix("arn:aws:sts::").and_then(|r| r.strip_prefix(account))
        && let Some(session) = rest.strip_prefix(":assumed-role/")
        && let Some((role, session)) = session.split_once('/')
    {
        return Principal::assumed_role(account, "/", role, session);
    }
    Principal::root(account)
}

/// One access decision a service made for a request, for its audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRecord {
    /// The IAM action decided (`kms:Decrypt`).
    pub action: &'static str,
    /// Whether it was allowed.
    pub allowed: bool,
    /// What decided: `key policy`, `identity policy`, `grant`, `bucket policy`, ... (the policy of the deciding
    /// statement, or the grant).
    pub by: &'static str,
    /// The `Sid` of the deciding statement (or the grant's id), when it has one.
    pub sid: Option<Arc<str>>,
}

/// The decisions made for one request, shared by the clones of its [`Caller`] (a service calling another on the
/// caller's behalf adds to the same list). Bounded: a request makes a handful.
#[derive(Debug, Clone, Default)]
pub struct Decisions(Arc<Mutex<Vec<DecisionRecord>>>);

/// Most decisions one request keeps (a ReEncrypt makes two, an upload's key calls a few).
const MAX_DECISIONS: usize = 16;

impl Decisions {
    /// Records a decision.
    pub fn push(&self, record: DecisionRecord) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() < MAX_DECISIONS {
            list.push(record);
        }
    }

    /// The decisions recorded so far, which are then forgotten.
    pub fn take(&self) -> Vec<DecisionRecord> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Two callers are equal whatever their decisions so far.
impl PartialEq for Decisions {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Decisions {}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(arn: &str) -> Caller {
        Caller {
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            access_key_id: "AK".into(),
            principal_arn: arn.into(),
            via_service: None,
            peer: None,
            decisions: Decisions::default(),
        }
    }

    #[test]
    fn principals_from_caller_arns() {
        let cases = [
            ("arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:root"),
            ("arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:user/alice"),
            ("arn:aws:iam::111122223333:user/team/ops/bob", "arn:aws:iam::111122223333:user/team/ops/bob"),
            (
                "arn:aws:sts::111122223333:assumed-role/reader/session-1",
                "arn:aws:sts::111122223333:assumed-role/reader/session-1",
            ),
            ("arn:aws:iam::999999999999:user/mallory", "arn:aws:iam::111122223333:root"),
        ];
        for (arn, want) in cases {
            assert_eq!(principal_of(&caller(arn)).arn(), Some(want), "{arn}");
        }
    }

    #[test]
    fn decisions_are_shared_by_clones_bounded_and_taken_once() {
        let first = caller("arn:aws:iam::111122223333:root");
        let second = first.clone();
        for i in 0..MAX_DECISIONS + 4 {
            second.decisions.push(DecisionRecord {
                action: "kms:Decrypt",
                allowed: true,
                by: "key policy",
                sid: Some(format!("statement {i}").into()),
            });
        }
        let taken = first.decisions.take();
        assert_eq!(taken.len(), MAX_DECISIONS);
        assert_eq!(taken[0].sid.as_deref(), Some("statement 0"));
        assert!(second.decisions.take().is_empty());
    }
}
