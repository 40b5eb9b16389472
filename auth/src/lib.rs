//! Request authentication for kmsim's services: the three signature schemes their clients use, verifying
//! (every request that reaches a service) and signing (clients, benchmarks, service-to-service calls), and
//! the one credentials lookup they are checked against.
//!
//! - [`Verifier`]: the one verifier, holding the [`Accounts`]; every entry point returns a [`Verified`]
//!   (the [`shared::Caller`], the [`AccessKey`] and the [`Scheme`]) or an [`AuthError`].
//! - [`sigv4`]: AWS Signature Version 4: header, presigned URL, aws-chunked chunk and trailer signatures.
//! - [`sigv2`]: the V2-style signatures (`AWS AK:sig` of S3 SigV2 and `OBS AK:sig` of Open Telekom Cloud /
//!   Huawei Cloud OBS).
//! - [`post`]: the policy signatures of browser form uploads (POST Object), V2 and SigV4.
//! - [`sdk_hmac`]: SDK-HMAC-SHA256, the signature of Huawei's SDKs for the OTC / Huawei Cloud dialect.
//! - [`accounts`]: the access keys kmsim accepts and the account and principal each acts for; the keys of
//!   the IAM store and of role sessions are live (added and removed at run time).
//! - [`identity`]: who a key acts as for policy decisions ([`Identity`]: the principal, its live identity-based
//!   policies and a session's policies), and [`Identity::decide`], the one call a service makes per request.

pub mod accounts;
pub mod identity;
pub mod post;
pub mod sdk_hmac;
pub mod sigv2;
pub mod sigv4;
mod verifier;

pub use accounts::{AccessKey, AccountIds, Accounts, SessionToken};
pub use identity::{AccessKeyIdentities, Identity, PolicySet};
pub use verifier::{AuthError, MAX_CLOCK_SKEW_SECS, RequestParts, Scheme, SessionClock, Verified, Verifier};
