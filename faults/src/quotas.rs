//! Opt-in request quotas (`--quotas aws`): AWS KMS's request rates per account and region and S3's per-prefix
//! request rates, each a token bucket on the monotonic clock; a call over its quota gets the service's own
//! throttling error from the [`catalog`](crate::catalog) (`ThrottlingException`, `SlowDown`).
//!
//! Off by default: a front end asks [`Quotas::enabled`] first, one atomic load. The default rates are AWS's
//! documented defaults ([`KMS_OPERATIONS`], [`KMS_KEY_PAIRS`], [`symmetric_default`], [`S3_WRITE`], [`S3_READ`]);
//! the configuration file overrides any of them ([`QuotaConfig`]). A bucket holds one second's worth of calls
//! (at least one call) and refills continuously at its rate. Which bucket a call draws from is the front end's
//! business: the KMS knows the key's spec once it resolved the key, the object store knows the bucket and key.
//!
//! Memory is bounded: at most [`MAX_BUCKETS`] KMS buckets and as many S3 buckets are held. A bucket that has
//! refilled to its capacity is the same as no bucket, so when the table is full those are dropped first; if none
//! is, the eighth nearest to full go (their next calls are forgiven at most one second's worth of debt).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use serde::Deserialize;

use crate::{InjectedError, Service, catalog};

/// The most buckets held for each of the KMS and S3.
pub const MAX_BUCKETS: usize = 4096;
/// The highest rate a configuration may set, per second.
pub const MAX_RATE: f64 = 1e9;

/// The AWS KMS per-operation request quotas, per second, from the "Request quotas for each AWS KMS API operation"
/// table of the AWS KMS Developer Guide (as of late 2026). Operations the table does not list are not limited.
/// `ReplicateKey` and `UpdatePrimaryRegion` count once, in the caller's region (AWS also counts them in the other
/// region involved).
pub const KMS_OPERATIONS: &[(&str, f64)] = &[
    ("CancelKeyDeletion", 5.0),
    ("ConnectCustomKeyStore", 5.0),
    ("CreateAlias", 5.0),
    ("CreateCustomKeyStore", 5.0),
    ("CreateGrant", 50.0),
    ("CreateKey", 5.0),
    ("DeleteAlias", 15.0),
    ("DeleteCustomKeyStore", 5.0),
    ("DeleteImportedKeyMaterial", 15.0),
    ("DescribeCustomKeyStores", 5.0),
    ("DescribeKey", 2000.0),
    ("DisableKey", 5.0),
    ("DisableKeyRotation", 5.0),
    ("DisconnectCustomKeyStore", 5.0),
    ("EnableKey", 5.0),
    ("EnableKeyRotation", 15.0),
    ("GetKeyPolicy", 1000.0),
    ("GetKeyRotationStatus", 1000.0),
    ("GetParametersForImport", 1.0),
    ("GetPublicKey", 2000.0),
    ("ImportKeyMaterial", 15.0),
    ("ListAliases", 500.0),
    ("ListGrants", 100.0),
    ("ListKeyPolicies", 100.0),
    ("ListKeyRotations", 100.0),
    ("ListKeys", 500.0),
    ("ListResourceTags", 2000.0),
    ("ListRetirableGrants", 100.0),
    ("PutKeyPolicy", 15.0),
    ("ReplicateKey", 5.0),
    ("RetireGrant", 50.0),
    ("RevokeGrant", 50.0),
    ("RotateKeyOnDemand", 5.0),
    ("ScheduleKeyDeletion", 15.0),
    ("TagResource", 10.0),
    ("UntagResource", 5.0),
    ("UpdateAlias", 5.0),
    ("UpdateCustomKeyStore", 5.0),
    ("UpdateKeyDescription", 5.0),
    ("UpdatePrimaryRegion", 5.0),
];

/// The quotas of `GenerateDataKeyPair` and `GenerateDataKeyPairWithoutPlaintext` (shared by the two), one per key
/// pair spec, per second.
pub const KMS_KEY_PAIRS: &[(&str, f64)] = &[
    ("ECC_NIST_P256", 100.0),
    ("ECC_NIST_P384", 100.0),
    ("ECC_NIST_P521", 100.0),
    ("ECC_SECG_P256K1", 100.0),
    ("RSA_2048", 20.0),
    ("RSA_3072", 4.0),
    ("RSA_4096", 1.0),
];

/// The RSA key pair quotas in [`CHINA_REGIONS`], per second: RSA_3072 is one call in 2 seconds, RSA_4096 one in 10.
pub const KMS_KEY_PAIRS_CHINA: &[(&str, f64)] = &[("RSA_2048", 1.0), ("RSA_3072", 0.5), ("RSA_4096", 0.1)];
/// The regions with the lower RSA key pair quotas.
pub const CHINA_REGIONS: &[&str] = &["cn-north-1", "cn-northwest-1"];

/// The shared quota of cryptographic operations with RSA keys, per second.
pub const KMS_RSA: f64 = 1000.0;
/// The shared quota of cryptographic operations with elliptic-curve keys, per second.
pub const KMS_ECC: f64 = 1000.0;
/// The regions whose symmetric cryptographic quota is 100,000 per second.
pub const SYMMETRIC_100000: &[&str] = &["us-east-1", "us-west-2", "eu-west-1"];
/// The regions whose symmetric cryptographic quota is 20,000 per second (10,000 elsewhere).
pub const SYMMETRIC_20000: &[&str] =
    &["us-east-2", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "eu-central-1", "eu-west-2"];
/// S3's PUT, COPY, POST and DELETE requests per second per prefix.
pub const S3_WRITE: f64 = 3500.0;
/// S3's GET and HEAD requests per second per prefix.
pub const S3_READ: f64 = 5500.0;

/// The shared quota of cryptographic operations with symmetric keys (and HMAC keys, and GenerateRandom) in
/// `region`, per second.
pub fn symmetric_default(region: &str) -> f64 {
    if SYMMETRIC_100000.contains(&region) {
        100_000.0
    } else if SYMMETRIC_20000.contains(&region) {
        20_000.0
    } else {
        10_000.0
    }
}

/// Whether quotas are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Nothing is throttled (the default).
    #[default]
    Off,
    /// AWS's request quotas: the KMS's per account and region, S3's per prefix.
    Aws,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Mode::Off),
            "aws" => Ok(Mode::Aws),
            other => Err(format!("unknown quotas {other:?}: expected aws or off")),
        }
    }
}

/// The `[quotas]` table of the configuration file.
///
/// ```toml
/// [quotas]
/// mode = "aws"
/// kms = { symmetric = 20, rsa = 5, CreateKey = 1, "GenerateDataKeyPair(RSA_2048)" = 2 }
/// s3 = { write = 10, read = 20 }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// `aws` to enforce the quotas, `off` (the default) not to; `--quotas` on the command line wins.
    #[serde(default)]
    pub mode: Mode,
    /// KMS rates per second replacing AWS's defaults: `symmetric` (every region), `rsa`, `ecc`, an operation's
    /// name (`CreateKey`), or `GenerateDataKeyPair(<key pair spec>)`.
    #[serde(default)]
    pub kms: BTreeMap<String, f64>,
    /// S3 rates per second per prefix replacing AWS's defaults: `write` (PUT, COPY, POST, DELETE), `read` (GET,
    /// HEAD).
    #[serde(default)]
    pub s3: BTreeMap<String, f64>,
}

impl QuotaConfig {
    /// Checks every override names a quota and sets a rate above 0 and at most [`MAX_RATE`].
    pub fn check(&self) -> Result<(), String> {
        for (name, rate) in self.kms.iter().chain(&self.s3) {
            if !(rate.is_finite() && *rate > 0.0 && *rate <= MAX_RATE) {
                return Err(format!("quota {name:?}: the rate must be above 0 and at most {MAX_RATE} per second"));
            }
        }
        for name in self.kms.keys() {
            if KmsQuota::from_config_name(name).is_none() {
                return Err(format!(
                    "no KMS quota {name:?}: use symmetric, rsa, ecc, an operation of the request quota table \
                     (CreateKey, DescribeKey, ...) or GenerateDataKeyPair(<key pair spec>)"
                ));
            }
        }
        for name in self.s3.keys() {
            if S3Class::from_config_name(name).is_none() {
                return Err(format!("no S3 quota {name:?}: use write or read"));
            }
        }
        Ok(())
    }
}

/// Which KMS quota a call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KmsQuota {
    /// Cryptographic operations with symmetric and HMAC keys, and GenerateRandom.
    Symmetric,
    /// Cryptographic operations with RSA keys.
    Rsa,
    /// Cryptographic operations with elliptic-curve keys.
    Ecc,
    /// GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext for one key pair spec (one of
    /// [`KMS_KEY_PAIRS`]).
    KeyPair(&'static str),
    /// An operation with its own quota (one of [`KMS_OPERATIONS`]).
    Operation(&'static str),
}

impl KmsQuota {
    /// The quota of a data key pair of `spec`; `None` for a spec the table does not list.
    pub fn key_pair(spec: &str) -> Option<Self> {
        KMS_KEY_PAIRS.iter().find(|(name, _)| *name == spec).map(|(name, _)| KmsQuota::KeyPair(name))
    }

    /// The own quota of `operation`; `None` for an operation the table does not list.
    pub fn operation(operation: &str) -> Option<Self> {
        KMS_OPERATIONS.iter().find(|(name, _)| *name == operation).map(|(name, _)| KmsQuota::Operation(name))
    }

    /// The quota a configuration file names: `symmetric`, `rsa`, `ecc`, `CreateKey`, `GenerateDataKeyPair(RSA_2048)`.
    fn from_config_name(name: &str) -> Option<Self> {
        match name {
            "symmetric" => Some(KmsQuota::Symmetric),
            "rsa" => Some(KmsQuota::Rsa),
            "ecc" => Some(KmsQuota::Ecc),
            _ => match name.strip_prefix("GenerateDataKeyPair(").and_then(|rest| rest.strip_suffix(')')) {
                Some(spec) => Self::key_pair(spec),
                None => Self::operation(name),
            },
        }
    }

    /// AWS's default rate of this quota in `region`.
    fn default_rate(self, region: &str) -> f64 {
        let find = |table: &[(&str, f64)], name: &str| table.iter().find(|(n, _)| *n == name).map_or(0.0, |(_, r)| *r);
        match self {
            KmsQuota::Symmetric => symmetric_default(region),
            KmsQuota::Rsa => KMS_RSA,
            KmsQuota::Ecc => KMS_ECC,
            KmsQuota::KeyPair(spec) => match CHINA_REGIONS.contains(&region) && spec.starts_with("RSA_") {
                true => find(KMS_KEY_PAIRS_CHINA, spec),
                false => find(KMS_KEY_PAIRS, spec),
            },
            KmsQuota::Operation(operation) => find(KMS_OPERATIONS, operation),
        }
    }
}

/// Which S3 rate a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S3Class {
    /// PUT, COPY, POST, DELETE.
    Write,
    /// GET, HEAD.
    Read,
}

impl S3Class {
    fn from_config_name(name: &str) -> Option<Self> {
        match name {
            "write" => Some(S3Class::Write),
            "read" => Some(S3Class::Read),
            _ => None,
        }
    }

    fn default_rate(self) -> f64 {
        match self {
            S3Class::Write => S3_WRITE,
            S3Class::Read => S3_READ,
        }
    }
}

/// The S3 prefix a request counts against: the bucket and the object key up to and including its last `/`
/// (`photos/2024/a.jpg` → `photos/2024/`; a key without `/`, and a request on the bucket itself, count against
/// the bucket's root prefix ``).
pub fn s3_prefix(object_key: Option<&str>) -> &str {
    match object_key.and_then(|key| key.rfind('/')) {
        Some(slash) => object_key.map_or("", |key| &key[..=slash]),
        None => "",
    }
}

/// The rates in force: AWS's defaults with the configuration's overrides.
#[derive(Debug, Default)]
struct Rates {
    kms: HashMap<KmsQuota, f64>,
    s3: HashMap<S3Class, f64>,
}

impl Rates {
    fn of(config: &QuotaConfig) -> Self {
        let kms = config.kms.iter().filter_map(|(name, rate)| Some((KmsQuota::from_config_name(name)?, *rate)));
        let s3 = config.s3.iter().filter_map(|(name, rate)| Some((S3Class::from_config_name(name)?, *rate)));
        Rates { kms: kms.collect(), s3: s3.collect() }
    }

    fn kms(&self, quota: KmsQuota, region: &str) -> f64 {
        self.kms.get(&quota).copied().unwrap_or_else(|| quota.default_rate(region))
    }

    fn s3(&self, class: S3Class) -> f64 {
        self.s3.get(&class).copied().unwrap_or_else(|| class.default_rate())
    }
}

/// A token bucket: up to `max(rate, 1)` calls at once, refilled at `rate` per second.
#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn full(rate: f64, now: Instant) -> Self {
        TokenBucket { rate, tokens: capacity(rate), last: now }
    }

    /// The tokens at `now`, without taking any.
    fn level(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        (self.tokens + elapsed * self.rate).min(capacity(self.rate))
    }

    /// Takes a token if one is there.
    fn take(&mut self, now: Instant) -> bool {
        self.tokens = self.level(now);
        // A caller that read the time before another took its token must not move the bucket's time back.
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn is_full(&self, now: Instant) -> bool {
        self.level(now) >= capacity(self.rate)
    }
}

/// One second's worth of calls, and at least one (a rate of one call in 10 seconds still allows that call).
fn capacity(rate: f64) -> f64 {
    rate.max(1.0)
}

/// At most [`MAX_BUCKETS`] token buckets by key.
#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, TokenBucket>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new() -> Self {
        Buckets { map: HashMap::new() }
    }

    /// Takes a token from `key`'s bucket (made full at `rate` if absent); whether there was one.
    fn take(&mut self, key: &K, rate: f64, now: Instant) -> bool {
        if let Some(bucket) = self.map.get_mut(key) {
            // A changed rate (a new configuration) applies from now on.
            bucket.rate = rate;
            return bucket.take(now);
        }
        if self.map.len() >= MAX_BUCKETS {
            self.make_room(now);
        }
        let mut bucket = TokenBucket::full(rate, now);
        let taken = bucket.take(now);
        self.map.insert(key.clone(), bucket);
        taken
    }

    /// Drops the buckets that refilled (the same as absent); if none did, the eighth nearest to full, so that the
    /// next new buckets find room without another sweep.
    fn make_room(&mut self, now: Instant) {
        self.map.retain(|_, bucket| !bucket.is_full(now));
        if self.map.len() < MAX_BUCKETS {
            return;
        }
        let mut by_level: Vec<(f64, K)> =
            self.map.iter().map(|(key, bucket)| (bucket.level(now) / capacity(bucket.rate), key.clone())).collect();
        let drop = (by_level.len() / 8).max(1);
        by_level.select_nth_unstable_by(drop - 1, |a, b| b.0.total_cmp(&a.0));
        for (_, key) in &by_level[..drop] {
            self.map.remove(key);
        }
    }
}

type KmsBucketKey = (Box<str>, Box<str>, KmsQuota);
type S3BucketKey = (Box<str>, Box<str>, S3Class);

/// The quotas in force and their buckets, shared by every front end.
#[derive(Debug)]
pub struct Quotas {
    /// Whether quotas are enforced: the one load a call costs when they are not.
    on: AtomicBool,
    rates: RwLock<Arc<Rates>>,
    kms: Mutex<Buckets<KmsBucketKey>>,
    s3: Mutex<Buckets<S3BucketKey>>,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            on: AtomicBool::new(false),
            rates: RwLock::new(Arc::new(Rates::default())),
            kms: Mutex::new(Buckets::new()),
            s3: Mutex::new(Buckets::new()),
        }
    }
}

impl Quotas {
    /// Applies `config`: its mode and its rates (checked first; nothing changes when they are refused). Buckets
    /// already held keep their tokens and take the new rates.
    pub fn configure(&self, config: &QuotaConfig) -> Result<(), String> {
        config.check()?;
        *self.rates.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Rates::of(config));
        self.on.store(config.mode == Mode::Aws, Ordering::Release);
        Ok(())
    }

    /// Whether quotas are enforced.
    pub fn enabled(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    fn rates(&self) -> Arc<Rates> {
        self.rates.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Counts a KMS call of `account` in `region` against `quota`: `ThrottlingException` when it is over.
    pub fn kms(&self, account: &str, region: &str, quota: KmsQuota) -> Option<InjectedError> {
        self.kms_at(account, region, quota, Instant::now())
    }

    fn kms_at(&self, account: &str, region: &str, quota: KmsQuota, now: Instant) -> Option<InjectedError> {
        if !self.enabled() {
            return None;
        }
        let rate = self.rates().kms(quota, region);
        let key = (Box::from(account), Box::from(region), quota);
        let taken = self.kms.lock().unwrap_or_else(PoisonError::into_inner).take(&key, rate, now);
        if taken {
            return None;
        }
        tracing::debug!(account, region, ?quota, rate, "KMS request quota exceeded");
        throttling(Service::Kms, Some("aws"), "ThrottlingException")
    }

    /// Counts an S3 request on `object_key` (or on the bucket itself) in `bucket` against its prefix's `class`
    /// rate: `SlowDown` when it is over.
    pub fn s3(&self, bucket: &str, object_key: Option<&str>, class: S3Class) -> Option<InjectedError> {
        self.s3_at(bucket, object_key, class, Instant::now())
    }

    fn s3_at(&self, bucket: &str, object_key: Option<&str>, class: S3Class, now: Instant) -> Option<InjectedError> {
        if !self.enabled() {
            return None;
        }
        let rate = self.rates().s3(class);
        let key = (Box::from(bucket), Box::from(s3_prefix(object_key)), class);
        let taken = self.s3.lock().unwrap_or_else(PoisonError::into_inner).take(&key, rate, now);
        if taken {
            return None;
        }
        tracing::debug!(bucket, prefix = s3_prefix(object_key), ?class, rate, "S3 request rate exceeded");
        throttling(Service::S3, None, "SlowDown")
    }
}

/// The catalog's throttling error of a service.
fn throttling(service: Service, dialect: Option<&str>, code: &str) -> Option<InjectedError> {
    catalog::find(service, dialect, code).map(|known| InjectedError {
        code: known.code,
        status: known.status,
        message: known.message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn aws(kms: &[(&str, f64)], s3: &[(&str, f64)]) -> Quotas {
        let quotas = Quotas::default();
        let config = QuotaConfig {
            mode: Mode::Aws,
            kms: kms.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect(),
            s3: s3.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect(),
        };
        quotas.configure(&config).unwrap();
        quotas
    }

    /// How many of `calls` calls at `now` get through.
    fn admitted(calls: usize, mut call: impl FnMut() -> Option<InjectedError>) -> usize {
        (0..calls).filter(|_| call().is_none()).count()
    }

    #[test]
    fn off_admits_everything() {
        let quotas = Quotas::default();
        let now = Instant::now();
        assert_eq!(admitted(100, || quotas.kms_at("1", "us-east-1", KmsQuota::Operation("CreateKey"), now)), 100);
        assert_eq!(admitted(100, || quotas.s3_at("b", Some("k"), S3Class::Write, now)), 100);
    }

    #[test]
    fn a_bucket_allows_one_seconds_worth_then_refills_at_its_rate() {
        let quotas = aws(&[("CreateKey", 4.0)], &[]);
        let start = Instant::now();
        let create_key = KmsQuota::operation("CreateKey").unwrap();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(admitted(10, || quotas.kms_at("1", "r", create_key, at(0))), 4);
        // 4 per second: one more token every 250 ms.
        assert_eq!(admitted(3, || quotas.kms_at("1", "r", create_key, at(249))), 0);
        assert_eq!(admitted(3, || quotas.kms_at("1", "r", create_key, at(250))), 1);
        // Idle for long: never more than the burst.
        assert_eq!(admitted(10, || quotas.kms_at("1", "r", create_key, at(60_000))), 4);
    }

    #[test]
    fn the_throttle_is_the_services_own_error() {
        let quotas = aws(&[("symmetric", 1.0)], &[("write", 1.0)]);
        let now = Instant::now();
        assert!(quotas.kms_at("1", "r", KmsQuota::Symmetric, now).is_none());
        let kms = quotas.kms_at("1", "r", KmsQuota::Symmetric, now).unwrap();
        assert_eq!((kms.code, kms.status), ("ThrottlingException", 400));
        assert_eq!(
            kms.message,
            "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
        );
        assert!(quotas.s3_at("b", None, S3Class::Write, now).is_none());
        let s3 = quotas.s3_at("b", None, S3Class::Write, now).unwrap();
        assert_eq!((s3.code, s3.status, s3.message.as_str()), ("SlowDown", 503, "Please reduce your request rate."));
    }

    #[test]
    fn quotas_are_per_account_region_and_quota() {
        let quotas = aws(&[("symmetric", 2.0), ("rsa", 1.0), ("CreateKey", 1.0), ("CreateAlias", 1.0)], &[]);
        let now = Instant::now();
        let check = |account: &str, region: &str, quota| quotas.kms_at(account, region, quota, now).is_none();
        assert!(check("1", "us-east-1", KmsQuota::Symmetric) && check("1", "us-east-1", KmsQuota::Symmetric));
        assert!(!check("1", "us-east-1", KmsQuota::Symmetric));
        assert!(check("1", "eu-west-1", KmsQuota::Symmetric), "another region has its own quota");
        assert!(check("2", "us-east-1", KmsQuota::Symmetric), "another account has its own quota");
        assert!(check("1", "us-east-1", KmsQuota::Rsa), "RSA keys have their own quota");
        assert!(check("1", "us-east-1", KmsQuota::Operation("CreateKey")));
        assert!(check("1", "us-east-1", KmsQuota::Operation("CreateAlias")), "each operation has its own quota");
        assert!(!check("1", "us-east-1", KmsQuota::Operation("CreateKey")));
    }

    #[test]
    fn rates_below_one_allow_one_call_per_interval() {
        let quotas = aws(&[], &[]);
        let start = Instant::now();
        let rsa_4096 = KmsQuota::key_pair("RSA_4096").unwrap(); // 0.1 in the China regions
        assert!(quotas.kms_at("1", "cn-north-1", rsa_4096, start).is_none());
        assert!(quotas.kms_at("1", "cn-north-1", rsa_4096, start + Duration::from_secs(9)).is_some());
        assert!(quotas.kms_at("1", "cn-north-1", rsa_4096, start + Duration::from_secs(10)).is_none());
    }

    #[test]
    fn defaults_are_awss() {
        let rates = Rates::default();
        assert_eq!(rates.kms(KmsQuota::Symmetric, "us-east-1"), 100_000.0);
        assert_eq!(rates.kms(KmsQuota::Symmetric, "eu-west-2"), 20_000.0);
        assert_eq!(rates.kms(KmsQuota::Symmetric, "sa-east-1"), 10_000.0);
        assert_eq!(rates.kms(KmsQuota::Rsa, "us-east-1"), 1000.0);
        assert_eq!(rates.kms(KmsQuota::Ecc, "us-east-1"), 1000.0);
        assert_eq!(rates.kms(KmsQuota::operation("CreateGrant").unwrap(), "r"), 50.0);
        assert_eq!(rates.kms(KmsQuota::operation("GetParametersForImport").unwrap(), "r"), 1.0);
        assert_eq!(rates.kms(KmsQuota::operation("RotateKeyOnDemand").unwrap(), "r"), 5.0);
        assert_eq!(rates.kms(KmsQuota::key_pair("RSA_3072").unwrap(), "r"), 4.0);
        assert_eq!(rates.kms(KmsQuota::key_pair("RSA_3072").unwrap(), "cn-north-1"), 0.5);
        assert_eq!(rates.kms(KmsQuota::key_pair("ECC_NIST_P521").unwrap(), "cn-north-1"), 100.0);
        assert_eq!((rates.s3(S3Class::Write), rates.s3(S3Class::Read)), (3500.0, 5500.0));
        assert_eq!(KmsQuota::operation("Encrypt"), None, "cryptographic operations share the key type's quota");
    }

    #[test]
    fn s3_prefixes_are_the_key_up_to_its_last_slash() {
        assert_eq!(s3_prefix(Some("photos/2024/a.jpg")), "photos/2024/");
        assert_eq!(s3_prefix(Some("a.jpg")), "");
        assert_eq!(s3_prefix(Some("dir/")), "dir/");
        assert_eq!(s3_prefix(None), "");
        let quotas = aws(&[], &[("write", 1.0), ("read", 1.0)]);
        let now = Instant::now();
        assert!(quotas.s3_at("b", Some("x/1"), S3Class::Write, now).is_none());
        assert!(quotas.s3_at("b", Some("x/2"), S3Class::Write, now).is_some(), "same prefix x/");
        assert!(quotas.s3_at("b", Some("y/1"), S3Class::Write, now).is_none(), "another prefix");
        assert!(quotas.s3_at("c", Some("x/1"), S3Class::Write, now).is_none(), "another bucket");
        assert!(quotas.s3_at("b", Some("x/1"), S3Class::Read, now).is_none(), "reads have their own rate");
    }

    #[test]
    fn the_buckets_held_are_bounded() {
        let quotas = aws(&[], &[("write", 1.0)]);
        let start = Instant::now();
        for i in 0..MAX_BUCKETS * 3 {
            quotas.s3_at("b", Some(&format!("{i}/k")), S3Class::Write, start);
        }
        assert!(quotas.s3.lock().unwrap().map.len() <= MAX_BUCKETS);
        // Refilled buckets are dropped first: after a second every one is full, and room is made at once.
        quotas.s3_at("b", Some("new/k"), S3Class::Write, start + Duration::from_secs(1));
        assert_eq!(quotas.s3.lock().unwrap().map.len(), 1);
    }

    #[test]
    fn configurations_are_checked() {
        let config = |kms: &[(&str, f64)], s3: &[(&str, f64)]| QuotaConfig {
            mode: Mode::Aws,
            kms: kms.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect(),
            s3: s3.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect(),
        };
        assert!(
            config(&[("symmetric", 1.0), ("GenerateDataKeyPair(RSA_2048)", 0.5)], &[("read", 9.0)]).check().is_ok()
        );
        assert!(config(&[("Encrypt", 1.0)], &[]).check().is_err());
        assert!(config(&[("GenerateDataKeyPair(RSA_1024)", 1.0)], &[]).check().is_err());
        assert!(config(&[("CreateKey", 0.0)], &[]).check().is_err());
        assert!(config(&[("CreateKey", f64::NAN)], &[]).check().is_err());
        assert!(config(&[], &[("list", 1.0)]).check().is_err());
        let quotas = Quotas::default();
        assert!(quotas.configure(&config(&[("nope", 1.0)], &[])).is_err());
        assert!(!quotas.enabled(), "a refused configuration changes nothing");
        let parsed: QuotaConfig = toml_like(r#"{"mode": "aws", "kms": {"CreateKey": 2}}"#);
        assert_eq!(parsed.mode, Mode::Aws);
        assert_eq!("aws".parse::<Mode>(), Ok(Mode::Aws));
        assert!("fast".parse::<Mode>().is_err());
    }

    fn toml_like(json: &str) -> QuotaConfig {
        serde_json::from_str(json).unwrap()
    }
}
