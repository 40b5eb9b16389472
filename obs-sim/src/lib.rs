//! OBS: kmsim's S3/OBS-compatible object store, which encrypts every object with its own data key
//! from the KMS (SSE-KMS) and keeps the ciphertext data key beside the ciphertext.
//!
//! Not built yet: this crate only reserves its place in the workspace (see issue 3).
