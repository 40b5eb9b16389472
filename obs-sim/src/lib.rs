//! OBS: kmsim's S3-compatible object store, which encrypts every SSE-KMS object with its own data
//! key from the KMS and keeps the ciphertext data key beside the ciphertext, inside an AWS
//! Encryption SDK message.
//!
//! - [`service::Obs`] is the core: buckets and objects streamed through encryption.
//! - [`http::S3Api`] is the S3 front end (also speaking the OBS dialect of Open Telekom Cloud /
//!   Huawei Cloud, whose `x-obs-*` headers [`dialect`] translates); [`chunked`] decodes aws-chunked bodies and
//!   [`checksum`] checks flexible checksums; [`sse`] reads the encryption headers; [`xml`] writes
//!   and reads the documents.
//! - [`bucket_keys`] derives per-object keys from S3 Bucket Keys.
//! - [`envelope`] is the AWS Encryption SDK message format (v2, suite 0x0478, framed).
//! - [`store`] keeps records and bodies on an `object_store` backend.

pub mod bucket_keys;
pub mod checksum;
pub mod chunked;
pub mod dialect;
pub mod envelope;
pub mod error;
pub mod http;
pub mod model;
pub mod multipart;
pub mod operation;
pub mod service;
pub mod sse;
pub mod sse_s3;
pub mod store;
pub mod xml;

pub use error::{S3Error, StoreError};
pub use http::S3Api;
pub use service::Obs;
