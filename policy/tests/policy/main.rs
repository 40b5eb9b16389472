//! The policy crate against AWS's documented examples: one test binary whose modules each say in
//! one line what they cover.

mod decisions;
mod examples;
mod malformed;
mod public;

use policy::{Context, Principal};

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
