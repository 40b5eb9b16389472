//! EVS: kmsim's block-volume service, whose encrypted volumes are LUKS1 containers keyed by a data
//! key from the KMS and served to real block clients over NBD.
//!
//! - [`service`]: the core ([`Evs`]): volumes, snapshots, jobs, attach / detach (data keys from the KMS through
//!   `shared::KeyService`, as the EVS service, through a grant); [`model`] its records; [`device`] an attached
//!   volume as a block device (AES-256-XTS for an encrypted one); [`extents`] how its data lies in extent files.
//! - [`operation`]: the API operations kmsim serves ([`EvsOperation`]), parsed from method and path, each with
//!   its IAM action, whether it mutates, and its resource.
//! - [`http`]: the EVS REST API and the compute API's attach / detach paths ([`EvsApi`]), dispatching on an
//!   [`EvsOperation`]; it maps the core's typed errors ([`error`], [`EvsError`]) to the wire in one place
//!   ([`http::wire_error`]).
//! - [`luks`]: the LUKS1 volume format (header, key slots, AES-256-XTS [`luks::SectorCipher`]).
//! - [`nbd`]: the NBD server that serves [`nbd::BlockDevice`]s to real NBD clients ([`nbd::serve`]).

pub mod device;
pub mod error;
pub mod extents;
pub mod faulty;
pub mod http;
pub mod luks;
pub mod model;
pub mod nbd;
pub mod operation;
pub mod service;

pub use error::EvsError;
pub use http::EvsApi;
pub use operation::EvsOperation;
pub use service::Evs;
