//! The policy crate against AWS's documented examples: one test binary whose modules each say in
//! one line what they cover.

mod decisions;
mod examples;
mod malformed;
mod public;

use policy::{Context, Policy, Principal};

/// The account most examples are in.
pub const ACCOUNT: &str = "111122223333";
/// Another account.
pub const OTHER: &str = "444455556666";

/// The IAM user Alice of [`ACCOUNT`].
pub fn alice() -> Principal {
    Principal::user(ACCOUNT, "/", "Alice").with_unique_id("AIDAALICEEXAMPLE0001")
}

/// The IAM user Bob of [`OTHER`].
pub fn bob_other() -> Principal {
    Principal::user(OTHER, "/", "Bob")
}

/// The IAM user Carol of [`OTHER`].
pub fn carol_other() -> Principal {
    Principal::user(OTHER, "/", "Carol")
}

/// A session `session` of role `role` of [`ACCOUNT`].
pub fn session(role: &str, session: &str) -> Principal {
    Principal::assumed_role(ACCOUNT, "/", role, session).with_unique_id("AROAEXAMPLEID")
}

/// A context of `(key, value)` pairs (a key given twice is multivalued).
pub fn context(pairs: &[(&str, &str)]) -> Context {
    let mut context = Context::new();
    for (key, value) in pairs {
        context.insert(key, *value);
    }
    context
}

/// A compiled policy is shared between request tasks: it must be `Clone + Debug + Send + Sync`.
#[test]
fn a_policy_can_be_shared_between_threads() {
    fn shareable<T: Clone + std::fmt::Debug + Send + Sync + 'static>(value: T) -> T {
        value
    }
    let policy = policy::Policy::parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#,
        policy::PolicyKind::Identity,
    )
    .expect("valid");
    let shared = std::sync::Arc::new(shareable(policy));
    let worker = {
        let shared = std::sync::Arc::clone(&shared);
        std::thread::spawn(move || {
            let principal = alice();
            let context = Context::new();
            let request = policy::Request {
                principal: &principal,
                action: "s3:GetObject",
                resource: "arn:aws:s3:::b/k",
                context: &context,
            };
            shared.evaluate(&request)
        })
    };
    assert!(matches!(worker.join().expect("no panic"), policy::Outcome::Allow { .. }));
}

/// A service computes only the condition keys a policy reads: those of its `Condition` blocks and of its
/// `${...}` variables (under Version 2012-10-17 only; the older version has no variables), lowercased, once each,
/// in no particular order.
#[test]
fn referenced_keys_are_the_condition_keys_and_variables_a_policy_reads() {
    let cases: &[(&str, &[&str])] = &[
        (r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}}"#, &[]),
        (
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"kms:Decrypt","Resource":"*",
                 "Condition":{"StringEquals":{"kms:ViaService":"s3.eu-de.amazonaws.com","kms:CallerAccount":"1"},
                              "Bool":{"aws:SecureTransport":"true"}}},
                {"Effect":"Deny","Action":"kms:*","Resource":"*",
                 "Condition":{"StringNotLikeIfExists":{"KMS:EncryptionContext:aws:s3:arn":"arn:aws:s3:::b/*"},
                              "ForAnyValue:StringEquals":{"kms:viaservice":["x"]}}}]}"#,
            &["kms:viaservice", "kms:calleraccount", "aws:securetransport", "kms:encryptioncontext:aws:s3:arn"],
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:ListBucket",
                "Resource":"arn:aws:s3:::b","Condition":{"StringLike":{"s3:prefix":["home/${aws:username}/*",
                "${aws:PrincipalTag/team, 'none'}/*", "literal/${*}/${?}/${$}"]}}}}"#,
            &["s3:prefix", "aws:username", "aws:principaltag/team"],
        ),
        (
            r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject",
                "Resource":"arn:aws:s3:::b/${aws:username}/*"}}"#,
            &[],
        ),
    ];
    for (document, want) in cases {
        let policy =
            Policy::parse(document, policy::PolicyKind::Identity).unwrap_or_else(|error| panic!("{document}: {error}"));
        let mut keys = policy.referenced_keys().to_vec();
        keys.sort();
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(keys, want, "{document}");
    }
}
