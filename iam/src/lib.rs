//! kmsim's identities: IAM users, their access keys, roles, customer managed and inline policies and their
//! attachments, and the role sessions of STS — kept per account, durably, and served through the IAM and STS
//! Query APIs on the edge port.
//!
//! - [`Identities`] ([`identities`]): the store's core, over a redb file ([`store`]) with access key secrets
//!   wrapped at rest ([`secrets`]); every change reaches the live credentials lookup of [`auth::Accounts`] at
//!   once (a new key signs, a deleted key is refused, a changed policy applies to the next request).
//! - [`sts`]: GetCallerIdentity and AssumeRole (trust policies evaluated by the `policy` crate, session policies
//!   and tags carried by the session's [`auth::Identity`]).
//! - [`http`]: [`IamApi`], the Query front end of both APIs (form-encoded `Action=...`, XML answers), with its
//!   one error mapping; [`query`] reads the parameters, [`xml`] writes the answers.
//! - [`operation`]: [`IamOperation`] and [`StsOperation`], the one list of each API's operations.
//!
//! Policy *evaluation* for KMS and S3 requests happens in those services: every verified request's
//! [`auth::AccessKey::identity`] carries the principal and its live policies ([`auth::Identity::decide`]).

pub mod error;
pub mod http;
pub mod identities;
pub mod ids;
pub mod model;
pub mod operation;
pub mod query;
pub mod secrets;
pub mod store;
pub mod sts;
pub mod validate;
pub mod xml;

pub use error::{Error, Result};
pub use http::IamApi;
pub use identities::{AccountDeclaration, Holder, Identities, RoleSpec};
pub use operation::{IamOperation, StsOperation};
