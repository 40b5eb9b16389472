//! Fault injection: rules, added through `/_sim/faults` or loaded with `--faults FILE`, that make chosen calls of
//! kmsim's services fail with the real service's error, slow down, or lose their connection mid-response.
//!
//! A front end asks [`Faults::check`] once per call, after it knows the call's operation and caller and before it
//! acts; with no rule in force that costs one atomic load. A rule matches on the service, the dialect, the
//! operation, the principal, the key, the bucket and object key prefix, the volume (and for NBD I/O a byte
//! range); it fires always, with a probability, on
//! the nth matching call, or for the next N calls; and it expires after a number of firings or a time on the
//! simulated clock. Each rule counts the calls it matched and the times it fired.
//!
//! The same hook points enforce the opt-in request [`quotas`] (`--quotas aws`), held in [`Faults::quotas`]: a
//! throttled call gets the catalog's throttling error, as an injected one would.

pub mod catalog;
pub mod http;
pub mod quotas;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use shared::entropy::{Entropy, Purpose};

pub use catalog::CatalogError;

/// The most rules held at once; adding one more is refused.
pub const MAX_RULES: usize = 256;
/// The longest latency a rule may add (a test that wants a timeout needs no more).
pub const MAX_LATENCY_MS: u64 = 300_000;

/// The services rules can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// The KMS, in any dialect: `aws`, `otc`, or `internal` (the object store or volume service calling it).
    Kms,
    /// The object store in the S3 dialect.
    S3,
    /// The object store in the OBS dialect.
    Obs,
    /// The volume service's jobs (`createVolume`, `deleteVolume`, `extendVolume`, `attachVolume`, `detachVolume`):
    /// an error makes the job end `FAIL` with that code, as a failed job of the real service does.
    Evs,
    /// Attached volumes' I/O over NBD (`read`, `write`, `flush`, `trim`, `write_zeroes`).
    Nbd,
    /// The IAM Query API.
    Iam,
    /// The STS Query API.
    Sts,
}

impl Service {
    /// The name a rule gives the service (`kms`, `s3`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Service::Kms => "kms",
            Service::S3 => "s3",
            Service::Obs => "obs",
            Service::Evs => "evs",
            Service::Nbd => "nbd",
            Service::Iam => "iam",
            Service::Sts => "sts",
        }
    }
}

/// When a matching call makes a rule fire.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// Every matching call.
    #[default]
    Always,
    /// Each matching call with this probability (0 to 1).
    Probability(f64),
    /// Only the nth matching call (1 is the first).
    Nth(u64),
    /// The next N matching calls, then the rule expires.
    Next(u64),
}

/// When the latency of a rule is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Before the operation runs (a slow service: the client waits, the operation has not happened yet).
    #[default]
    Before,
    /// After the operation ran, before its answer is sent (a slow network: the operation happened).
    After,
}

/// What a firing rule does to the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Effect {
    /// The real service's error `code` (see [`catalog`]), with its status and message unless `message` is given.
    Error {
        /// The wire code.
        code: String,
        /// Another message than the service's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A delay of `ms` milliseconds, or of a uniformly random time between `min_ms` and `max_ms`.
    Latency {
        /// A fixed delay.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ms: Option<u64>,
        /// The shortest random delay.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_ms: Option<u64>,
        /// The longest random delay.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_ms: Option<u64>,
        /// Before or after the operation.
        #[serde(default)]
        when: When,
    },
    /// The operation runs, then the connection is reset partway through its answer.
    Reset,
    /// NBD only: the I/O fails with `EIO` when it touches the byte range `offset`, `offset + length` (the whole
    /// device when absent); I/O elsewhere is not counted as matching.
    Eio {
        /// The first byte of the failing range.
        #[serde(default)]
        offset: u64,
        /// Its length; to the end of the device when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        length: Option<u64>,
    },
}

/// A rule as a client writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The service.
    pub service: Service,
    /// The dialect (`aws`, `otc`, `internal` for the KMS); any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<String>,
    /// The operation's wire name (`GenerateDataKey`, `create-datakey`, `GetObject`), or `*`.
    #[serde(default = "any_operation")]
    pub operation: String,
    /// The caller's principal ARN or access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// A KMS key: id, ARN, alias name or alias ARN (KMS calls, including those the object store makes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A bucket (object-store calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// An object key prefix (object-store calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A volume id (EVS jobs, NBD I/O).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// When a matching call fires the rule.
    #[serde(default)]
    pub trigger: Trigger,
    /// The rule expires after firing this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// The rule expires this many seconds after it was added, on the simulated clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_secs: Option<u64>,
    /// What firing does.
    pub effect: Effect,
}

fn any_operation() -> String {
    "*".to_owned()
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The rule does not parse.
    #[error("the rule is not valid: {0}")]
    Malformed(String),
    /// The rule parses but cannot be carried out.
    #[error("{0}")]
    Invalid(String),
    /// [`MAX_RULES`] rules are held already.
    #[error("at most {MAX_RULES} fault rules can be held at once; delete some first")]
    TooMany,
}

impl RuleSpec {
    /// Checks what the grammar cannot: the error exists for the service, the latency and trigger are in range, the
    /// filters fit the service.
    pub fn validate(&self) -> Result<(), RuleError> {
        let invalid = |m: String| Err(RuleError::Invalid(m));
        match (&self.service, self.dialect.as_deref()) {
            (Service::Kms, None | Some("aws" | "otc" | "internal")) | (_, None) => {}
            (service, Some(dialect)) => {
                return invalid(format!(
                    "dialect {dialect:?} is not one of {service:?}'s (only kms has dialects: aws, otc, internal)"
                ));
            }
        }
        let object_store = matches!(self.service, Service::S3 | Service::Obs);
        if !object_store && (self.bucket.is_some() || self.prefix.is_some()) {
            return invalid("bucket and prefix filter object-store calls (service s3 or obs)".into());
        }
        if !matches!(self.service, Service::Evs | Service::Nbd) && self.volume.is_some() {
            return invalid("volume filters EVS jobs and NBD I/O (service evs or nbd)".into());
        }
        match (&self.effect, self.service) {
            (Effect::Eio { .. }, Service::Nbd) | (Effect::Latency { .. }, _) => {}
            (Effect::Eio { .. }, _) => return invalid("eio is an effect on NBD I/O (service nbd)".into()),
            (_, Service::Nbd) => return invalid("NBD I/O takes the effects eio and latency".into()),
            (Effect::Reset, Service::Evs) => {
                return invalid("an EVS job has no connection to reset; make it fail with an error".into());
            }
            _ => {}
        }
        if self.service != Service::Kms && self.key.is_some() {
            return invalid(
                "key filters KMS calls: to fail an object-store call through its key, add a kms rule for the key \
                 (the object store's calls to the KMS have the dialect internal)"
                    .into(),
            );
        }
        match &self.effect {
            Effect::Error { code, .. } => {
                if catalog::find(self.service, self.dialect.as_deref(), code).is_none() {
                    let known: Vec<&str> = match (self.service, self.dialect.as_deref()) {
                        (Service::Kms, None) => catalog::errors(Service::Kms, Some("aws"))
                            .iter()
                            .chain(catalog::errors(Service::Kms, Some("otc")))
                            .map(|e| e.code)
                            .collect(),
                        (service, dialect) => catalog::errors(service, dialect).iter().map(|e| e.code).collect(),
                    };
                    return invalid(format!("no error {code:?} here; the errors that can be injected: {known:?}"));
                }
            }
            Effect::Latency { ms, min_ms, max_ms, .. } => match (ms, min_ms, max_ms) {
                (Some(ms), None, None) if *ms <= MAX_LATENCY_MS => {}
                (None, Some(min), Some(max)) if min <= max && *max <= MAX_LATENCY_MS => {}
                _ => {
                    return invalid(format!(
                        "a latency is either ms, or min_ms ≤ max_ms, each at most {MAX_LATENCY_MS}"
                    ));
                }
            },
            Effect::Reset => {}
            Effect::Eio { length, .. } => {
                if *length == Some(0) {
                    return invalid("an eio range of length 0 touches nothing".into());
                }
            }
        }
        match self.trigger {
            Trigger::Probability(p) if !(0.0..=1.0).contains(&p) => invalid(format!("probability {p} is not in 0..=1")),
            Trigger::Nth(0) => invalid("nth counts from 1".into()),
            Trigger::Next(0) => invalid("next must be at least 1".into()),
            _ => Ok(()),
        }
    }
}

/// One call, as the front end describes it to [`Faults::check`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Call<'a> {
    /// The dialect: `aws`, `otc`, `internal` for the KMS; `s3` or `obs` for the object store.
    pub dialect: &'a str,
    /// The operation's wire name.
    pub operation: &'a str,
    /// The caller's principal ARN.
    pub principal: &'a str,
    /// The caller's access key id.
    pub access_key: &'a str,
    /// The region the call was made in, when the front end knows it (for the audit log).
    pub region: Option<&'a str>,
    /// The id of the KMS key the call uses, when known.
    pub key_id: Option<&'a str>,
    /// The bucket.
    pub bucket: Option<&'a str>,
    /// The object key.
    pub object_key: Option<&'a str>,
    /// The volume.
    pub volume: Option<&'a str>,
    /// The bytes an I/O touches: offset and length.
    pub range: Option<(u64, u64)>,
}

/// A rule that fired on a call: its id and what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Fired {
    /// The rule's id (recorded in the audit log).
    pub rule: u64,
    /// The error to answer, if any.
    pub error: Option<InjectedError>,
    /// The delay before the operation.
    pub delay_before: Duration,
    /// The delay after it.
    pub delay_after: Duration,
    /// Whether to reset the connection partway through the answer.
    pub reset: bool,
    /// Whether the I/O fails with `EIO`.
    pub eio: bool,
}

/// An error to answer instead of running the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedError {
    /// The wire code.
    pub code: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// The message.
    pub message: String,
}

/// A rule as listed: its spec, id and counters.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    /// The rule's id.
    pub id: u64,
    /// The rule.
    #[serde(flatten)]
    pub spec: RuleSpec,
    /// Calls it matched.
    pub matched: u64,
    /// Times it fired.
    pub fired: u64,
    /// Whether it no longer fires (its count or time ran out).
    pub expired: bool,
}

#[derive(Debug)]
struct Rule {
    id: u64,
    spec: RuleSpec,
    /// Simulated time (Unix ms) after which it no longer fires.
    expires_at_ms: Option<i64>,
    counters: Mutex<Counters>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    matched: u64,
    fired: u64,
    /// Latched once the rule is seen expired: a reset takes the simulated clock back, not a rule's life.
    expired: bool,
}

impl Rule {
    fn fire_limit(&self) -> Option<u64> {
        match (self.spec.trigger, self.spec.times) {
            (Trigger::Next(n), Some(t)) => Some(n.min(t)),
            (Trigger::Next(n), None) => Some(n),
            (Trigger::Nth(_), _) => Some(1),
            (_, times) => times,
        }
    }

    /// Whether the rule no longer fires; once it is, it stays so.
    fn expired(&self, counters: &mut Counters, now_ms: i64) -> bool {
        counters.expired = counters.expired
            || self.fire_limit().is_some_and(|limit| counters.fired >= limit)
            || self.expires_at_ms.is_some_and(|at| now_ms >= at);
        counters.expired
    }
}

/// The simulated clock, in Unix milliseconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Told of every call a rule fired on, with what was injected: how the audit log marks injected faults.
pub type Observer = Box<dyn Fn(Service, &Call<'_>, &Fired) + Send + Sync>;

/// Resolves a rule's `key` (id, ARN, alias, alias ARN) to a key id for the caller of a call.
pub type KeyResolver<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The rules in force, shared by every front end.
pub struct Faults {
    rules: RwLock<Vec<Arc<Rule>>>,
    /// Whether any rule is held: the one load a call costs when none is.
    any: AtomicBool,
    next_id: AtomicU64,
    clock: Clock,
    /// The request quotas (`--quotas aws`), off until configured.
    pub quotas: quotas::Quotas,
    /// What `probability` triggers and latency ranges draw from (the stack's; seeded under `--deterministic`).
    entropy: Arc<Entropy>,
    /// Told of every fired rule ([`Faults::observe`]).
    observer: OnceLock<Observer>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").field("rules", &self.list().len()).finish()
    }
}

impl Faults {
    /// No rules, expiring on `clock`.
    pub fn new(clock: Clock) -> Self {
        Faults {
            rules: RwLock::new(Vec::new()),
            any: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            clock,
            quotas: quotas::Quotas::default(),
            entropy: Arc::new(Entropy::os()),
            observer: OnceLock::new(),
        }
    }

    /// The same rules drawing their `probability` triggers and latency ranges from `entropy` (the stack's) instead
    /// of the OS.
    pub fn with_entropy(mut self, entropy: Arc<Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// No rules, on the wall clock (tests and tools without a simulated clock).
    pub fn wall_clock() -> Self {
        Self::new(Arc::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0)
        }))
    }

    /// From now on, tells `observer` of every call a rule fires on, after the rules have decided. Set once: false
    /// (and nothing changes) if an observer is already set.
    pub fn observe(&self, observer: Observer) -> bool {
        self.observer.set(observer).is_ok()
    }

    /// Adds a rule; answers its id.
    pub fn add(&self, spec: RuleSpec) -> Result<u64, RuleError> {
        spec.validate()?;
        let mut rules = self.rules.write().unwrap_or_else(PoisonError::into_inner);
        if rules.len() >= MAX_RULES {
            return Err(RuleError::TooMany);
        }
        Ok(self.insert(&mut rules, spec))
    }

    /// Adds a validated rule under the held lock; answers its id.
    fn insert(&self, rules: &mut Vec<Arc<Rule>>, spec: RuleSpec) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let expires_at_ms = spec
            .for_secs
            .map(|secs| (self.clock)().saturating_add(i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)));
        rules.push(Arc::new(Rule { id, spec, expires_at_ms, counters: Mutex::new(Counters::default()) }));
        self.any.store(true, Ordering::Release);
        id
    }

    /// Adds every rule of a JSON document — one rule, an array of rules, or `{"rules": [...]}` — or none if one is
    /// refused.
    pub fn load(&self, json: &str) -> Result<Vec<u64>, RuleError> {
        let document: serde_json::Value =
            serde_json::from_str(json).map_err(|e| RuleError::Malformed(e.to_string()))?;
        let values = match document {
            serde_json::Value::Object(mut object) if object.contains_key("rules") => match object.remove("rules") {
                Some(serde_json::Value::Array(rules)) => rules,
                _ => return Err(RuleError::Malformed("\"rules\" is not an array".into())),
            },
            serde_json::Value::Array(rules) => rules,
            rule @ serde_json::Value::Object(_) => vec![rule],
            _ => return Err(RuleError::Malformed("expected a rule, an array of rules or {\"rules\": [...]}".into())),
        };
        let several = values.len() > 1;
        let specs = values
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                let which = |e: String| if several { format!("rule {}: {e}", i + 1) } else { e };
                let spec: RuleSpec =
                    serde_json::from_value(value).map_err(|e| RuleError::Malformed(which(e.to_string())))?;
                spec.validate().map_err(|e| match e {
                    RuleError::Invalid(m) => RuleError::Invalid(which(m)),
                    other => other,
                })?;
                Ok(spec)
            })
            .collect::<Result<Vec<_>, RuleError>>()?;
        // One lock for the whole document: all of it is added, or (past the cap) none.
        let mut rules = self.rules.write().unwrap_or_else(PoisonError::into_inner);
        if rules.len().saturating_add(specs.len()) > MAX_RULES {
            return Err(RuleError::TooMany);
        }
        Ok(specs.into_iter().map(|spec| self.insert(&mut rules, spec)).collect())
    }

    /// Deletes rule `id`; answers whether it existed.
    pub fn delete(&self, id: u64) -> bool {
        let mut rules = self.rules.write().unwrap_or_else(PoisonError::into_inner);
        let before = rules.len();
        rules.retain(|r| r.id != id);
        self.any.store(!rules.is_empty(), Ordering::Release);
        rules.len() != before
    }

    /// Deletes every rule.
    pub fn clear(&self) {
        self.rules.write().unwrap_or_else(PoisonError::into_inner).clear();
        self.any.store(false, Ordering::Release);
    }

    /// Every rule with its counters, oldest first.
    pub fn list(&self) -> Vec<RuleView> {
        let now = (self.clock)();
        let rules = self.rules.read().unwrap_or_else(PoisonError::into_inner);
        rules
            .iter()
            .map(|rule| {
                let mut counters = rule.counters.lock().unwrap_or_else(PoisonError::into_inner);
                let expired = rule.expired(&mut counters, now);
                RuleView {
                    id: rule.id,
                    spec: rule.spec.clone(),
                    matched: counters.matched,
                    fired: counters.fired,
                    expired,
                }
            })
            .collect()
    }

    /// Whether any rule for `service` is held (front ends skip describing a call when none is).
    pub fn active(&self, service: Service) -> bool {
        self.any.load(Ordering::Acquire)
            && self.rules.read().unwrap_or_else(PoisonError::into_inner).iter().any(|r| r.spec.service == service)
    }

    /// The rules of `service` that fire on `call`, combined: their delays add up, the first error (or reset) wins.
    /// `resolve` maps a rule's `key` to a key id for the call's caller. `None` when no rule fires.
    pub fn check(&self, service: Service, call: &Call<'_>, resolve: KeyResolver<'_>) -> Option<Fired> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let now = (self.clock)();
        let rules = self.rules.read().unwrap_or_else(PoisonError::into_inner);
        let mut fired: Option<Fired> = None;
        for rule in rules.iter().filter(|r| r.spec.service == service && matches(&r.spec, call, resolve)) {
            if !self.fires(rule, now) {
                continue;
            }
            tracing::info!(rule = rule.id, operation = call.operation, "injected fault");
            let into = fired.get_or_insert_with(|| Fired {
                rule: rule.id,
                error: None,
                delay_before: Duration::ZERO,
                delay_after: Duration::ZERO,
                reset: false,
                eio: false,
            });
            let terminal = into.error.is_some() || into.reset || into.eio;
            match &rule.spec.effect {
                Effect::Error { code, message } if !terminal => {
                    // Validated when the rule was added: the code is in the catalog.
                    if let Some(known) = catalog::find(service, rule.spec.dialect.as_deref(), code) {
                        into.rule = rule.id;
                        into.error = Some(InjectedError {
                            code: known.code,
                            status: known.status,
                            message: message.clone().unwrap_or_else(|| known.message.to_owned()),
                        });
                    }
                }
                Effect::Reset if !terminal => {
                    into.rule = rule.id;
                    into.reset = true;
                }
                Effect::Eio { .. } if !terminal => {
                    into.rule = rule.id;
                    into.eio = true;
                }
                Effect::Latency { ms, min_ms, max_ms, when } => {
                    let delay = match (ms, min_ms, max_ms) {
                        (Some(ms), _, _) => *ms,
                        (None, Some(min), Some(max)) => self.entropy.rng(Purpose::Fault).gen_range(*min..=*max),
                        _ => 0,
                    };
                    let slot = match when {
                        When::Before => &mut into.delay_before,
                        When::After => &mut into.delay_after,
                    };
                    *slot = slot.saturating_add(Duration::from_millis(delay));
                }
                Effect::Error { .. } | Effect::Reset | Effect::Eio { .. } => {}
            }
        }
        drop(rules);
        if let (Some(fired), Some(observer)) = (&fired, self.observer.get()) {
            observer(service, call, fired);
        }
        fired
    }

    /// Counts a matching call against `rule` and decides whether it fires.
    fn fires(&self, rule: &Rule, now: i64) -> bool {
        let mut counters = rule.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if rule.expired(&mut counters, now) {
            return false;
        }
        counters.matched = counters.matched.saturating_add(1);
        let fires = match rule.spec.trigger {
            Trigger::Always | Trigger::Next(_) => true,
            Trigger::Probability(p) => self.entropy.rng(Purpose::Fault).gen_bool(p),
            Trigger::Nth(n) => counters.matched == n,
        };
        if fires {
            counters.fired = counters.fired.saturating_add(1);
        }
        fires
    }
}

/// Whether `spec`'s filters all hold for `call`.
fn matches(spec: &RuleSpec, call: &Call<'_>, resolve: KeyResolver<'_>) -> bool {
    let dialect = spec.dialect.as_deref().is_none_or(|d| d == call.dialect);
    let operation = spec.operation == "*" || spec.operation == call.operation;
    let principal = spec.principal.as_deref().is_none_or(|p| p == call.principal || p == call.access_key);
    let bucket = spec.bucket.as_deref().is_none_or(|b| call.bucket == Some(b));
    let prefix = spec.prefix.as_deref().is_none_or(|p| call.object_key.is_some_and(|k| k.starts_with(p)));
    let volume = spec.volume.as_deref().is_none_or(|v| call.volume == Some(v));
    let range = match (&spec.effect, call.range) {
        (Effect::Eio { offset, length }, Some((start, len))) => {
            let end = start.saturating_add(len.max(1));
            end > *offset && length.is_none_or(|length| start < offset.saturating_add(length))
        }
        _ => true,
    };
    dialect
        && operation
        && principal
        && bucket
        && prefix
        && volume
        && range
        && spec.key.as_deref().is_none_or(|key| {
            call.key_id.is_some_and(|id| key == id || resolve(key).is_some_and(|resolved| resolved == id))
        })
}

#[cfg(test)]
mod tests;
