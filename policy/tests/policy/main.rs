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
