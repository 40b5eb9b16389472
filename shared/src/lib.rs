//! Cross-service plumbing shared by kmsim's services.
//!
//! - [`accounts`]: the accounts kmsim knows and the access keys that act for them ([`Accounts`],
//!   [`Caller`]).
//! - [`sigv4`]: AWS Signature Version 4, both the verifying side (every request that reaches a
//!   service) and the signing side (clients, benchmarks, service-to-service calls).
//! - [`time`]: the few calendar conversions the wire formats need.

pub mod accounts;
pub mod sigv4;
pub mod time;

pub use accounts::{AccessKey, Accounts, Caller};
