//! Whole-stack tests: kmsim started in-process (or as the binary) and driven by real clients.
//!
//! One test binary; each module says what it covers. `common` starts stacks and hands out ready
//! clients.

mod admin;
mod common;
mod deterministic;
mod edge_limits;
mod evs_durability;
mod kms_bad_input;
mod kms_durability;
mod kms_sdk;
mod otc_kms;
mod s3_bad_input;
mod s3_hardening;
mod s3_integrity;
mod s3_object_store;
mod s3_races;
mod s3_sdk;
mod stack_lifecycle;
