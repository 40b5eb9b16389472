//! Cross-service plumbing shared by kmsim's services.
//!
//! - [`accounts`]: the accounts kmsim knows and the access keys that act for them ([`Accounts`],
//!   [`Caller`]).
//! - [`sigv4`]: AWS Signature Version 4, both the verifying side (every request that reaches a
//!   service) and the signing side (clients, benchmarks, service-to-service calls).
//! - [`sdk_hmac`]: SDK-HMAC-SHA256, the signature of Huawei's SDKs for the OTC / Huawei Cloud dialect.
//! - [`sigv2`]: the V2-style signatures (`AWS AK:sig` of S3 SigV2 and `OBS AK:sig` of Open Telekom
//!   Cloud / Huawei Cloud OBS), verifying side.
//! - [`key_service`]: the [`KeyService`] trait through which the storage services reach the KMS.
//! - [`secret_file`]: key files created durably with mode 0600 and refused when others may read them.
//! - [`time`]: the few calendar conversions the wire formats need.

pub mod accounts;
pub mod key_service;
pub mod sdk_hmac;
pub mod secret_file;
pub mod sigv2;
pub mod sigv4;
pub mod time;

pub use accounts::{AccessKey, Accounts, Caller};
pub use key_service::KeyService;
