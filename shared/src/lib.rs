//! What kmsim's services truly share: who is calling, how the storage services reach the KMS, key files and
//! time. Request signing and the credentials lookup live in the `auth` crate, which depends on this one.
//!
//! - [`clock`]: the simulated [`Clock`] resources are stamped by (wall time plus what tests advance, or frozen
//!   under `--deterministic`).
//! - [`caller`]: the [`Caller`] of a request (account, region, access key, principal) and the account, domain
//!   and project ids of the two dialects.
//! - [`context`]: the [`RequestContext`] a front end builds once per request (caller, peer, API, operation,
//!   IAM action, resources, condition keys), from which audit entries and policy decisions are made.
//! - [`entropy`]: the stack's one source of randomness, the OS or a seeded generator (`--deterministic`).
//! - [`identity`]: who a caller is to the policies ([`identity::Authority`], from an [`identity::Identities`]) and
//!   the access decisions made for a request.
//! - [`key_service`]: the [`KeyService`] trait through which the storage services reach the KMS.
//! - [`secret_file`]: key files created durably with mode 0600 and refused when others may read them.
//! - [`time`]: the few calendar conversions the wire formats need.

pub mod caller;
pub mod clock;
pub mod context;
pub mod entropy;
pub mod identity;
pub mod key_service;
pub mod secret_file;
pub mod time;

pub use caller::Caller;
pub use clock::Clock;
pub use context::{Api, Peer, RequestContext};
pub use entropy::{Entropy, Purpose};
pub use key_service::KeyService;
