//! OBS: kmsim's S3-compatible object store, which encrypts every SSE-KMS object with its own data
//! key from the KMS and keeps the ciphertext data key beside the ciphertext, inside an AWS
//! Encryption SDK message.
//!
//! Layers, top-down:
//! - [`http::S3Api`] is the S3 front end (also speaking the OBS dialect of Open Telekom Cloud /
//!   Huawei Cloud, whose `x-obs-*` headers [`dialect`] translates): it authenticates a request,
//!   parses it into an [`operation::S3Operation`] and calls one handler per operation;
//!   [`chunked`] decodes aws-chunked bodies, [`sse_headers`] reads and writes the encryption
//!   headers, [`xml`] writes and reads the documents, and [`s3_error`] holds the S3 error codes
//!   ([`S3ErrorCode`]) and the one mapping of the core's errors to them.
//! - [`service::Obs`] is the core, which knows no HTTP: buckets, objects streamed through
//!   encryption ([`sse`], [`sse_s3`], [`bucket_keys`]), multipart uploads ([`multipart`]),
//!   listings and flexible [`checksum`]s; it fails with [`error::Error`]. Every operation asks
//!   [`access::authorize`] first, which decides by ownership and the ACLs, ownership controls and
//!   Block Public Access of [`acl`].
//! - [`envelope`] is the AWS Encryption SDK message format (v2, suite 0x0478, framed).
//! - [`store`] keeps records ([`model`]) and bodies on an `object_store` backend.

pub mod access;
pub mod acl;
pub mod bucket_keys;
pub mod checksum;
pub mod chunked;
pub mod cors;
pub mod dialect;
pub mod envelope;
pub mod error;
pub mod http;
pub mod metadata;
pub mod model;
pub mod multipart;
pub mod operation;
pub mod post_policy;
pub mod s3_error;
pub mod service;
pub mod signature;
pub mod sse;
pub mod sse_headers;
pub mod sse_s3;
pub mod store;
pub mod tagging;
pub mod xml;

pub use error::{Error, StoreError};
pub use http::S3Api;
pub use s3_error::{S3Error, S3ErrorCode};
pub use service::Obs;
