//! The one [`Verifier`] of every signature scheme, its one result ([`Verified`]) and its one error
//! ([`AuthError`]).
//!
//! The verify entry points sit next to the grammar they check: [`Verifier::verify_sigv4`] and
//! [`Verifier::verify_sigv4_presigned`] in [`crate::sigv4`], [`Verifier::verify_v2`] in [`crate::sigv2`],
//! [`Verifier::verify_sdk_hmac`] in [`crate::sdk_hmac`]. All look the access key up in the same
//! [`Accounts`], check the clock skew and compare signatures in constant time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use http::HeaderMap;
use shared::Caller;

use crate::accounts::{AccessKey, Accounts};
use crate::{sigv2, sigv4};

/// How far a request's time may be from the server's, in seconds.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

/// Why a request's signature was not accepted. Each service maps these to its own wire errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header at all.
    #[error("missing authentication token")]
    Missing,
    /// The `Authorization` header or a header it depends on is malformed.
    #[error("{0}")]
    Malformed(String),
    /// The access key id is not one kmsim knows.
    #[error("unknown access key id")]
    UnknownAccessKey,
    /// The credential scope names another service or an invalid region or date.
    #[error("{0}")]
    BadScope(String),
    /// The request time is more than [`MAX_CLOCK_SKEW_SECS`] from the server's clock.
    #[error("signature expired: {request_time} is outside the allowed window around {server_time}")]
    Skewed {
        /// The `X-Amz-Date` of the request.
        request_time: String,
        /// The server's time in the same format.
        server_time: String,
    },
    /// A presigned URL whose `X-Amz-Expires` has passed.
    #[error("request has expired")]
    Expired {
        /// When it expired.
        expires: String,
        /// The server's time.
        server_time: String,
    },
    /// `x-amz-content-sha256` does not match the body.
    #[error("the provided x-amz-content-sha256 header does not match what was computed")]
    PayloadHashMismatch,
    /// The request carries a session token that is not its access key's: a token with a long-term key, or
    /// another session's token. (A session's key signing without its token is [`AuthError::UnknownAccessKey`],
    /// as AWS answers it.)
    #[error("the security token included in the request is invalid")]
    InvalidToken,
    /// The session token's credentials have expired (on the simulated clock).
    #[error("the security token included in the request is expired")]
    ExpiredToken,
    /// The signature does not match the one computed from the request.
    #[error("signature does not match")]
    SignatureMismatch {
        /// What the server signed, for the S3 error body.
        string_to_sign: String,
        /// The canonical request the server built, for the S3 error body.
        canonical_request: String,
    },
}

/// The parts of a request that a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The path as sent on the wire (percent-encoded).
    pub path: &'a str,
    /// The raw query string without `?`, possibly empty.
    pub query: &'a str,
    /// All request headers.
    pub headers: &'a HeaderMap,
}

/// The clock session credentials expire by: Unix seconds (kmsim's simulated clock, which tests advance).
pub type SessionClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Verifies the signatures of every scheme against one credentials lookup, the access keys of [`Accounts`].
pub struct Verifier {
    pub(crate) accounts: Arc<Accounts>,
    /// SigV4's derived signing keys by `serial:access key/date/region/service`.
    key_cache: RwLock<HashMap<String, [u8; 32]>>,
    /// When session credentials expire: the simulated clock.
    session_clock: SessionClock,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("accounts", &self.accounts).finish_non_exhaustive()
    }
}

/// Bounds the signing-key cache; it is cleared when full (keys are cheap to derive again).
const KEY_CACHE_CAPACITY: usize = 4096;

impl Verifier {
    /// A verifier for the access keys of `accounts`.
    /// Session credentials expire by the wall clock until [`Verifier::with_session_clock`] says otherwise.
    pub fn new(accounts: Arc<Accounts>) -> Self {
        Verifier { accounts, key_cache: RwLock::new(HashMap::new()), session_clock: Arc::new(shared::time::now_unix) }
    }

    /// The same verifier, expiring session credentials by `clock` (kmsim's simulated clock).
    pub fn with_session_clock(mut self, clock: SessionClock) -> Self {
        self.session_clock = clock;
        self
    }

    /// Checks the session token a request carries (`given`) against its access key: a session's key needs
    /// its own token, unexpired on the session clock; a long-term key takes none. Compared in constant time.
    pub(crate) fn check_token(&self, key: &AccessKey, given: Option<&str>) -> Result<(), AuthError> {
        match (&key.session, given) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(AuthError::InvalidToken),
            // Without its token, a session's key id is one AWS does not know.
            (Some(_), None) => Err(AuthError::UnknownAccessKey),
            (Some(session), Some(given)) => {
                if !bool::from(subtle::ConstantTimeEq::ct_eq(session.token.as_bytes(), given.as_bytes())) {
                    return Err(AuthError::InvalidToken);
                }
                if (self.session_clock)() >= session.expires_at {
                    return Err(AuthError::ExpiredToken);
                }
                Ok(())
            }
        }
    }

    /// The accounts this verifier checks against.
    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    /// The SigV4 signing key of `cache_key` (`serial:access key/scope`), derived by `derive` the first time.
    /// `cache_key` starts with the key's serial, so a key deleted and made again never meets its old entry.
    pub(crate) fn cached_signing_key(&self, cache_key: &str, derive: impl FnOnce() -> [u8; 32]) -> [u8; 32] {
        if let Some(key) = self.key_cache.read().unwrap_or_else(|e| e.into_inner()).get(cache_key) {
            return *key;
        }
        let key = derive();
        let mut cache = self.key_cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= KEY_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(cache_key.to_owned(), key);
        key
    }
}

/// A request whose signature verified: who made it, with which key, under which scheme.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Who signed the request.
    pub caller: Caller,
    /// The access key that signed it (its account's OTC domain and project among others).
    pub key: Arc<AccessKey>,
    /// Which signature verified the request, with what later steps need of it.
    pub scheme: Scheme,
}

impl Verified {
    /// A request that `key` signed for `region`, verified by `scheme`.
    pub(crate) fn new(key: &Arc<AccessKey>, region: &str, scheme: Scheme) -> Self {
        Verified { caller: key.caller(region), key: Arc::clone(key), scheme }
    }

    /// Who the request acts as for policy decisions: the principal and its live identity-based (and session)
    /// policies; `identity().decide(action, resource, context, resource_policy, rule)` evaluates a request.
    pub fn identity(&self) -> &crate::Identity {
        &self.key.identity
    }

    /// What the chunks and trailer of an aws-chunked body chain on, when SigV4 verified the request.
    pub fn sigv4_seed(&self) -> Option<&sigv4::Seed> {
        match &self.scheme {
            Scheme::SigV4(seed) => Some(seed),
            Scheme::V2(_) | Scheme::SdkHmac => None,
        }
    }
}

/// Which signature verified a request.
#[derive(Debug, Clone)]
pub enum Scheme {
    /// AWS Signature Version 4, in a header or a presigned URL: the chunk and trailer signatures of an
    /// aws-chunked body chain on its seed ([`sigv4::chunk_signature`], [`sigv4::trailer_signature`]).
    SigV4(sigv4::Seed),
    /// A V2-style signature (`AWS AK:sig` or `OBS AK:sig`): which header family the request speaks.
    V2(sigv2::Dialect),
    /// SDK-HMAC-SHA256 of the Open Telekom Cloud / Huawei Cloud API gateways.
    SdkHmac,
}
