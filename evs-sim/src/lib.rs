//! EVS: kmsim's block-volume service, whose encrypted volumes are LUKS1 containers keyed by a data
//! key from the KMS and served to real block clients over NBD.
//!
//! Not built yet: this crate only reserves its place in the workspace (see issue 5).
