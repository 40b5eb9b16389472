//! kmsim's Key Management Service.
//!
//! - [`Kms`] (in [`service`]) is the core: customer master keys with their versions, aliases,
//!   grants, key states and rotation, and the cryptographic operations (Encrypt, Decrypt,
//!   GenerateDataKey, ReEncrypt). It knows nothing of HTTP.
//! - [`blob`] is the ciphertext blob format; [`material`] keeps key material zeroized in memory
//!   and wrapped under the master key at rest; [`store`] is the durable redb key store.
//! - [`aws`] is the AWS KMS JSON 1.1 front end ([`AwsApi`]); [`otc`] the Open Telekom Cloud / Huawei Cloud
//!   KMS REST v1.0 front end ([`OtcApi`]) over the same core.
//! - [`operation`] holds what both front ends know of an operation (IAM action, implemented or not, mutation,
//!   resource); each dialect lists its operations once, in [`aws::KmsOperation`] and [`otc::OtcVerb`].
//!   [`blocking`] runs mutations and RSA key generations off the async workers.
//! - [`in_process`] is the `shared::KeyService` the storage services use in-process.
//! - [`audit`] records every call (bounded on disk and in memory by [`audit::AuditOptions`], its
//!   state in [`audit::AuditHealth`]). Resources are stamped by `Kms::clock`, the stack's simulated
//!   `shared::Clock`.

pub mod audit;
pub mod aws;
pub mod blob;
pub mod blocking;
pub mod crypto;
pub mod error;
pub mod in_process;
pub mod material;
pub mod model;
pub mod operation;
pub mod otc;
pub mod service;
pub mod spec;
pub mod store;

pub use aws::{AwsApi, KmsOperation};
pub use error::{Error, Result};
pub use in_process::InProcessKeyService;
pub use operation::ResourceKind;
pub use otc::{OtcApi, OtcVerb};
pub use service::{Kms, KmsState, SeedKey, Storage};
