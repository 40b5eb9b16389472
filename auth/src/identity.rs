//! Who an access key acts as, for the policy decisions of the services: the [`Identity`] every
//! [`crate::AccessKey`] carries — the caller as the policy evaluator sees it ([`policy::Principal`]),
//! its identity-based policies ([`PolicySet`], live: the IAM API replaces them as a whole and the
//! next request sees the change) and, for a role session, the session policies given to AssumeRole.
//!
//! A service decides a request with [`Identity::decide`] (identity-based policies, session policies
//! and the resource's policy under a [`policy::Rule`]) without copying any policy: it takes one
//! snapshot of the live set (an `Arc` clone under a short read lock) and evaluates the compiled
//! policies in place.

use std::sync::{Arc, LazyLock, RwLock};

use policy::{Context, Decision, Policies, Policy, PolicyKind, Principal, Request, Rule};

/// The identity-based policy the root user of an account is evaluated with: everything, as AWS gives
/// the root full access to its own account (a resource policy can still deny, or fail to delegate).
const ROOT_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

static ROOT_POLICIES: LazyLock<Arc<PolicySet>> = LazyLock::new(|| {
    let policy = Policy::parse(ROOT_POLICY, PolicyKind::Identity).expect("the root policy parses");
    Arc::new(PolicySet::new(vec![Arc::new(policy)]))
});

/// The identity-based policies of one user or role (inline and attached managed policies): replaced
/// as a whole when the IAM API changes them, read as a snapshot.
#[derive(Debug, Default)]
pub struct PolicySet {
    current: RwLock<Arc<[Arc<Policy>]>>,
}

impl PolicySet {
    /// A set holding `policies`.
    pub fn new(policies: Vec<Arc<Policy>>) -> Self {
        PolicySet { current: RwLock::new(policies.into()) }
    }

    /// The policies as they are now.
    pub fn snapshot(&self) -> Arc<[Arc<Policy>]> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the policies; requests verified from now on see the new ones.
    pub fn replace(&self, policies: Vec<Arc<Policy>>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = policies.into();
    }
}

/// Who an access key acts as, and which policies speak for it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The caller as policies name it: root, user (with its unique id and tags) or role session.
    principal: Arc<Principal>,
    /// The identity-based policies: the user's or the role's own, shared with the IAM store.
    policies: Arc<PolicySet>,
    /// The session policies of a role session (AssumeRole's `Policy`), fixed for the session's life.
    session: Option<Arc<[Arc<Policy>]>>,
}

impl Identity {
    /// The root user of `account`: every action on every resource of its account.
    pub fn root(account: &str) -> Self {
        Identity { principal: Arc::new(Principal::root(account)), policies: ROOT_POLICIES.clone(), session: None }
    }

    /// `principal`, whose identity-based policies are `policies`, limited by the session policies
    /// `session` if it is a role session that was given some.
    pub fn new(principal: Principal, policies: Arc<PolicySet>, session: Option<Arc<[Arc<Policy>]>>) -> Self {
        Identity { principal: Arc::new(principal), policies, session }
    }

    /// The caller as the policy evaluator sees it.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Whether the caller is its account's root user.
    pub fn is_root(&self) -> bool {
        matches!(self.principal.kind(), policy::PrincipalKind::Root)
    }

    /// The identity-based policies as they are now (the root's is the one allowing everything).
    pub fn policies(&self) -> Arc<[Arc<Policy>]> {
        self.policies.snapshot()
    }

    /// The live set itself (the IAM store replaces its content).
    pub fn policy_set(&self) -> &Arc<PolicySet> {
        &self.policies
    }

    /// The caller's [`shared::identity::Authority`]: what the services evaluate with (shared, not copied).
    pub fn authority(&self) -> shared::identity::Authority {
        shared::identity::Authority {
            principal: self.principal.clone(),
            identity: self.policies(),
            session: self.session.clone(),
        }
    }

    /// The session policies, for a role session given some.
    pub fn session_policies(&self) -> Option<&[Arc<Policy>]> {
        self.session.as_deref()
    }

    /// Decides `action` on `resource` (an ARN, or `*`) with the request's condition keys `context`:
    /// this identity's policies (and session policies), and `resource_policy` if the resource has
    /// one, combined by `rule` (`SameAccount` when caller and resource share an account,
    /// `CrossAccount` otherwise, `KeyPolicy` for a KMS key of the caller's account). The
    /// [`Decision`]'s [`policy::Reason::phrase`] ends AWS's denial message.
    pub fn decide(
        &self,
        action: &str,
        resource: &str,
        context: &Context,
        resource_policy: Option<&Policy>,
        rule: Rule,
    ) -> Decision {
        let snapshot = self.policies.snapshot();
        let identity: Vec<&Policy> = snapshot.iter().map(|p| p.as_ref()).collect();
        let session: Option<Vec<&Policy>> = self.session.as_ref().map(|s| s.iter().map(|p| p.as_ref()).collect());
        let policies = Policies { identity: &identity, resource: resource_policy, session: session.as_deref() };
        let request = Request { principal: &self.principal, action, resource, context };
        policy::decide(&policies, &request, rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_policy(text: &str) -> Arc<Policy> {
        Arc::new(Policy::parse(text, PolicyKind::Identity).unwrap())
    }

    #[test]
    fn root_may_do_anything_in_its_account_and_a_user_what_its_policies_allow() {
        let context = Context::new();
        let root = Identity::root("111122223333");
        assert!(root.is_root());
        assert!(root.decide("iam:CreateUser", "*", &context, None, Rule::SameAccount).allowed);

        let set = Arc::new(PolicySet::default());
        let user = Identity::new(Principal::user("111122223333", "/", "alice"), set.clone(), None);
        let decision = user.decide("iam:CreateUser", "*", &context, None, Rule::SameAccount);
        assert!(!decision.allowed);
        assert_eq!(
            decision.reason.phrase("iam:CreateUser").unwrap(),
            "because no identity-based policy allows the iam:CreateUser action"
        );
        set.replace(vec![identity_policy(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iam:*","Resource":"*"}}"#,
        )]);
        assert!(user.decide("iam:CreateUser", "*", &context, None, Rule::SameAccount).allowed, "live change");
    }

    #[test]
    fn session_policies_limit_what_the_role_allows() {
        let context = Context::new();
        let set = Arc::new(PolicySet::new(vec![identity_policy(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:*","Resource":"*"}}"#,
        )]));
        let session = identity_policy(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}}"#,
        );
        let principal = Principal::assumed_role("111122223333", "/", "r", "s");
        let limited = Identity::new(principal, set, Some(vec![session].into()));
        assert!(limited.decide("kms:Decrypt", "*", &context, None, Rule::SameAccount).allowed);
        assert!(!limited.decide("kms:Encrypt", "*", &context, None, Rule::SameAccount).allowed);
    }
}

/// The services' source of identities ([`shared::identity::Identities`]): each caller's access key's [`Identity`],
/// looked up live in [`Accounts`](crate::Accounts) (keys made and deleted at run time, sessions); a caller without a
/// key kmsim knows (a service calling for itself, the anonymous requester) is evaluated as
/// [`shared::identity::AccountWide`] does.
#[derive(Debug)]
pub struct AccessKeyIdentities {
    accounts: Arc<crate::Accounts>,
    fallback: shared::identity::AccountWide,
}

impl AccessKeyIdentities {
    /// The identities of `accounts`' keys.
    pub fn new(accounts: Arc<crate::Accounts>) -> Self {
        AccessKeyIdentities { accounts, fallback: shared::identity::AccountWide::default() }
    }
}

impl shared::identity::Identities for AccessKeyIdentities {
    fn authority(&self, caller: &shared::Caller) -> shared::identity::Authority {
        match self.accounts.get(&caller.access_key_id) {
            Some(key) => key.identity.authority(),
            None => self.fallback.authority(caller),
        }
    }
}
