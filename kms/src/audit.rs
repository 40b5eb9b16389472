//! The audit log: one event per KMS call, whichever dialect or service made it.
//!
//! Events are kept in memory (the newest [`MEMORY_CAPACITY`]) for queries through the admin API,
//! and appended as JSON lines to `audit.jsonl` in the data dir by a background thread, so that
//! recording an event costs the request path one serialization and one channel send.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

/// How many events the in-memory index keeps.
pub const MEMORY_CAPACITY: usize = 200_000;

/// One KMS call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    /// RFC 3339 time of the call (KMS clock).
    pub time: String,
    /// Milliseconds since the Unix epoch, for filtering.
    pub time_millis: i64,
    /// The caller's account.
    pub account: String,
    /// The access key that signed the call.
    pub access_key: String,
    /// The caller's principal ARN.
    pub principal: String,
    /// The region of the call.
    pub region: String,
    /// The service that called on the caller's behalf, e.g. `s3.amazonaws.com`.
    pub via_service: Option<String>,
    /// The wire dialect: `aws` or `internal` (a service calling in-process).
    pub dialect: String,
    /// The AWS name of the operation, e.g. `GenerateDataKey`.
    pub operation: String,
    /// The key ARN, when the call named or resolved a key.
    pub key_arn: Option<String>,
    /// The encryption context of the call, if any (contexts are not secret).
    pub encryption_context: Option<BTreeMap<String, String>>,
    /// `Success`, or the error code sent to the client.
    pub outcome: String,
}

/// Filters for [`AuditLog::query`]; every given field must match.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditQuery {
    /// Operation name.
    pub operation: Option<String>,
    /// Key id or ARN (matches the ARN or its id suffix).
    pub key: Option<String>,
    /// Account id.
    pub account: Option<String>,
    /// Access key id.
    pub access_key: Option<String>,
    /// Via-service, or `none` for direct calls.
    pub via_service: Option<String>,
    /// Outcome: `Success` or an error code.
    pub outcome: Option<String>,
    /// Only events at or after this many milliseconds since the epoch.
    pub since_millis: Option<i64>,
    /// At most this many events (the newest); default 1000.
    pub limit: Option<usize>,
}

impl AuditQuery {
    fn matches(&self, e: &AuditEvent) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let key_ok = self
            .key
            .as_deref()
            .is_none_or(|k| e.key_arn.as_deref().is_some_and(|arn| arn == k || arn.ends_with(&format!("/{k}"))));
        let via_ok = match self.via_service.as_deref() {
            None => true,
            Some("none") => e.via_service.is_none(),
            Some(v) => e.via_service.as_deref() == Some(v),
        };
        eq(&self.operation, &e.operation)
            && eq(&self.account, &e.account)
            && eq(&self.access_key, &e.access_key)
            && eq(&self.outcome, &e.outcome)
            && key_ok
            && via_ok
            && self.since_millis.is_none_or(|s| e.time_millis >= s)
    }
}

/// The audit log.
#[derive(Debug)]
pub struct AuditLog {
    recent: Mutex<VecDeque<AuditEvent>>,
    file: Option<Mutex<mpsc::Sender<String>>>,
}

impl AuditLog {
    /// A log kept in memory and, if `path` is given, appended to that file.
    pub fn new(path: Option<PathBuf>) -> std::io::Result<Self> {
        let file = match path {
            None => None,
            Some(path) => {
                let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
                let (tx, rx) = mpsc::channel::<String>();
                std::thread::Builder::new().name("kmsim-audit".into()).spawn(move || write_lines(file, rx))?;
                Some(Mutex::new(tx))
            }
        };
        Ok(AuditLog { recent: Mutex::new(VecDeque::new()), file })
    }

    /// Records an event.
    pub fn record(&self, event: AuditEvent) {
        if let Some(file) = &self.file
            && let Ok(line) = serde_json::to_string(&event)
        {
            let _ = file.lock().unwrap_or_else(|e| e.into_inner()).send(line);
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == MEMORY_CAPACITY {
            recent.pop_front();
        }
        recent.push_back(event);
    }

    /// The newest events that match `query`, oldest first.
    pub fn query(&self, query: &AuditQuery) -> Vec<AuditEvent> {
        let limit = query.limit.unwrap_or(1000);
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<AuditEvent> = recent.iter().rev().filter(|e| query.matches(e)).take(limit).cloned().collect();
        out.reverse();
        out
    }

    /// Forgets the in-memory events (the file keeps its history).
    pub fn clear(&self) {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

fn write_lines(file: std::fs::File, rx: mpsc::Receiver<String>) {
    let mut out = std::io::BufWriter::new(file);
    while let Ok(line) = rx.recv() {
        let mut lines = Some(line);
        while let Some(line) = lines {
            if writeln!(out, "{line}").is_err() {
                return;
            }
            lines = rx.try_recv().ok();
        }
        if out.flush().is_err() {
            return;
        }
    }
}
