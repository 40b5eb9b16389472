//! The audit log: one event per KMS call, whichever dialect or service made it.
//!
//! Each event is kept, as it is, in a bounded in-memory index (for queries through the admin API)
//! and shared with a background writer thread that serializes it into a JSON line appended to
//! `audit.jsonl` in the data dir. Recording an event thus costs the request path one short lock
//! and, with a file, one channel send; serializing and every file decision (batching, rotation,
//! retrying after a failure) happen on the writer thread.
//!
//! Bounds ([`AuditOptions`]): `audit.jsonl` is rotated when the next line would take it past
//! [`AuditOptions::max_file_bytes`] (`audit.jsonl` → `audit.1.jsonl` → `audit.2.jsonl` …), and at
//! most [`AuditOptions::max_files`] files are kept, the current one included, so the audit never
//! holds more than about `max_files × max_file_bytes` on disk. The in-memory index keeps at most
//! [`AuditOptions::memory_events`] events and about [`AuditOptions::memory_bytes`] bytes (the
//! oldest go first); lines waiting for the writer are capped by
//! [`AuditOptions::max_queued_events`]: when the disk cannot take events as fast as calls make
//! them, further events are not queued for the file (counted, and the log reports degraded)
//! rather than held in memory without bound or slowing the calls.
//!
//! Durability: the audit files are written but never fsynced (the writer does not wait for the
//! disk): an event reaches the file within about [`GATHER_INTERVAL`] (5 ms) of its call plus the
//! write; a crash of kmsim loses no event the writer has written (at most those 5 ms), a crash of
//! the machine may lose the last seconds. The audit is a record, not state that acknowledged calls
//! depend on: every key change is committed (fsynced) to the key store before its call answers,
//! whatever becomes of its audit event.
//!
//! Failures: a write that fails (disk full, I/O error) is logged once when the log starts
//! failing, counted, and shown by [`AuditLog::health`] as degraded; the lines of that batch are
//! lost from the file (they stay in the in-memory index). The writer reopens the file and tries
//! again with the next batch, and reports recovery once a write succeeds. **KMS calls do not fail
//! closed when the audit cannot be written**: like CloudTrail, which never blocks a KMS call, the
//! audit is a record of calls, not a gate on them; an operator sees the gap in the health report
//! and the log.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

/// Default [`AuditOptions::max_file_bytes`]: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;
/// Default [`AuditOptions::max_files`]: 8 (so at most about 512 MiB on disk).
pub const DEFAULT_MAX_FILES: u32 = 8;
/// Default [`AuditOptions::memory_events`].
pub const DEFAULT_MEMORY_EVENTS: usize = 100_000;
/// Default [`AuditOptions::memory_bytes`]: 32 MiB.
pub const DEFAULT_MEMORY_BYTES: usize = 32 << 20;
/// Default [`AuditOptions::max_queued_events`].
pub const DEFAULT_MAX_QUEUED_EVENTS: usize = 65_536;
/// What an allocation costs besides its bytes: the allocator's header and rounding.
const ALLOCATION_OVERHEAD_BYTES: usize = 16;
/// What an event costs in the index besides its struct and strings: the `Arc` header, the pointer
/// in the queue.
const EVENT_OVERHEAD_BYTES: usize = 24;
/// Most lines the writer gathers into one write.
const MAX_BATCH_LINES: usize = 4096;
/// How long the writer lets events gather after a write before it takes the next batch: the most an event waits
/// for the file beyond the write itself.
const GATHER_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

/// Limits of the audit log. Every field has a named default (`DEFAULT_*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditOptions {
    /// Size at which `audit.jsonl` is rotated to `audit.1.jsonl`, in bytes: no file grows past it
    /// (unless a single line is larger). At least 1.
    pub max_file_bytes: u64,
    /// Files kept, the current `audit.jsonl` included; rotating removes the oldest beyond this.
    /// Bounds the audit on disk to about `max_files × max_file_bytes`. At least 1.
    pub max_files: u32,
    /// Most events the in-memory index keeps for queries (the newest).
    pub memory_events: usize,
    /// Approximate bytes the in-memory index may hold (an event with a one-entry encryption context is ≈ 1.3 KB).
    pub memory_bytes: usize,
    /// Most lines waiting for the writer thread; beyond this (the disk cannot keep up), new events
    /// are not queued for the file but counted as not written, so memory stays bounded.
    pub max_queued_events: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_files: DEFAULT_MAX_FILES,
            memory_events: DEFAULT_MEMORY_EVENTS,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            max_queued_events: DEFAULT_MAX_QUEUED_EVENTS,
        }
    }
}

/// The state of the audit log, for `/_sim/health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditHealth {
    /// The last write to the audit file failed, or events are being dropped because the writer
    /// cannot keep up: the file is missing events.
    pub degraded: bool,
    /// Writes to the audit file that failed since start (or the last reset).
    pub write_failures: u64,
    /// Events that never reached the file (failed writes and a full queue).
    pub events_not_written: u64,
    /// The error of the most recent failed write.
    pub last_error: Option<String>,
    /// Bytes in the audit files on disk (current and rotated).
    pub file_bytes: u64,
    /// Events in the in-memory index.
    pub events_in_memory: usize,
    /// Approximate bytes the in-memory index holds.
    pub memory_bytes: usize,
}

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
    /// Where the call came from, as CloudTrail's `sourceIPAddress`: the client's IP address, or the service
    /// that called on the caller's behalf. Absent in events recorded before kmsim recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The wire dialect: `aws`, `otc`, or `internal` (a service calling in-process).
    pub dialect: String,
    /// The AWS name of the operation, e.g. `GenerateDataKey`.
    pub operation: String,
    /// The key ARN, when the call named or resolved a key.
    pub key_arn: Option<String>,
    /// The encryption context of the call, if any (contexts are not secret).
    pub encryption_context: Option<BTreeMap<String, String>>,
    /// `Success`, or the error code sent to the client.
    pub outcome: String,
    /// The access decisions made for the call: each action, whether allowed, by what, and the deciding `Sid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<AuditDecision>,
    /// The id of the fault rule (`/_sim/faults`) that fired on the call: its outcome, or its delay, was injected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<u64>,
    /// The service of the call when it is not the KMS (`s3`, `obs`, `evs`, `nbd`, `iam`, `sts`): the event records
    /// a fault a rule injected into that service ([`crate::Kms::audit_injected_faults`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// What that call was on: `bucket/key`, a bucket, a volume id, or a volume's bytes (`vol-… bytes 4096+512`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// One access decision of a call, in its audit event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditDecision {
    /// The IAM action decided (`kms:Decrypt`).
    pub action: String,
    /// `Allow` or `Deny`.
    pub decision: String,
    /// What decided: `key policy`, `identity policy`, `session policy`, `grant`, or `no policy`.
    pub by: String,
    /// The deciding statement's `Sid` (a grant's id for a grant), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl AuditEvent {
    /// Approximate bytes the event holds in memory: the struct, its strings, their allocations.
    fn memory_bytes(&self) -> usize {
        let string = |s: &String| if s.capacity() == 0 { 0 } else { s.capacity() + ALLOCATION_OVERHEAD_BYTES };
        let optional = |s: &Option<String>| s.as_ref().map_or(0, string);
        let context = self.encryption_context.as_ref().map_or(0, |map| {
            // A B-tree node holds up to 11 entries; count one node per entry's share, rounded up.
            let node = 11 * 2 * std::mem::size_of::<String>() + 64 + ALLOCATION_OVERHEAD_BYTES;
            map.len().div_ceil(11) * node + map.iter().map(|(k, v)| string(k) + string(v)).sum::<usize>()
        });
        std::mem::size_of::<Self>()
            + ALLOCATION_OVERHEAD_BYTES
            + EVENT_OVERHEAD_BYTES
            + [&self.time, &self.account, &self.access_key, &self.principal, &self.region, &self.dialect]
                .into_iter()
                .chain([&self.operation, &self.outcome])
                .map(string)
                .sum::<usize>()
            + optional(&self.via_service)
            + optional(&self.source)
            + optional(&self.key_arn)
            + optional(&self.service)
            + optional(&self.resource)
            + context
            + self
                .decisions
                .iter()
                .map(|d| {
                    std::mem::size_of::<AuditDecision>()
                        + string(&d.action)
                        + string(&d.decision)
                        + string(&d.by)
                        + optional(&d.sid)
                })
                .sum::<usize>()
    }
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
    /// Only the calls a fault rule with this id fired on.
    pub fault: Option<u64>,
    /// The service: `kms` for the KMS's own calls, or another (`s3`, `nbd`, ...) for the faults injected into it.
    pub service: Option<String>,
    /// At most this many events (the newest); default 1000.
    pub limit: Option<usize>,
}

impl AuditQuery {
    /// Whether `e` passes every filter given.
    pub fn matches(&self, e: &AuditEvent) -> bool {
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
            && self.fault.is_none_or(|rule| e.fault == Some(rule))
            && self.service.as_deref().is_none_or(|want| e.service.as_deref().unwrap_or("kms") == want)
    }
}

/// The audit log.
#[derive(Debug)]
pub struct AuditLog {
    /// The newest events; also serializes sends to the writer so that the file and the index see
    /// events (and resets) in the same order.
    index: Mutex<Index>,
    writer: Option<WriterHandle>,
    options: AuditOptions,
    /// Each event as it is recorded, to the live readers ([`AuditLog::subscribe`]); a reader that falls more than
    /// [`LIVE_EVENTS`] behind skips events rather than making the log hold them.
    live: tokio::sync::broadcast::Sender<Arc<AuditEvent>>,
}

/// Events a live reader may fall behind before it skips some.
const LIVE_EVENTS: usize = 256;

#[derive(Debug, Default)]
struct Index {
    events: VecDeque<(Arc<AuditEvent>, usize)>,
    /// Sum of the events' [`AuditEvent::memory_bytes`], kept beside each event.
    bytes: usize,
}

impl Index {
    fn push(&mut self, event: Arc<AuditEvent>, options: &AuditOptions) {
        let size = event.memory_bytes();
        self.bytes += size;
        self.events.push_back((event, size));
        while self.events.len() > options.memory_events
            || (self.bytes > options.memory_bytes && !self.events.is_empty())
        {
            if let Some((_, size)) = self.events.pop_front() {
                self.bytes -= size;
            }
        }
    }
}

/// What the request path hands the writer thread.
enum Message {
    /// An event to append.
    Event(Arc<AuditEvent>),
    /// Answer once everything sent before is written (or failed).
    Flush(mpsc::Sender<()>),
    /// Remove the rotated files, truncate the current one, clear the counters; then answer.
    Reset(mpsc::Sender<()>),
}

/// The request path's side of the writer thread.
#[derive(Debug)]
struct WriterHandle {
    tx: Option<mpsc::Sender<Message>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// What the writer thread and the request path both see.
#[derive(Debug, Default)]
struct Shared {
    /// Events sent and not yet taken by the writer.
    queued: AtomicUsize,
    /// Events not queued because the queue was full.
    dropped: AtomicU64,
    /// The queue overflowed and has not drained since (logged once per episode).
    overflowing: AtomicBool,
    status: Mutex<WriterStatus>,
}

/// What the writer thread reports after each batch, for [`AuditLog::health`].
#[derive(Debug, Default)]
struct WriterStatus {
    /// The last write failed (cleared by the next successful one).
    failing: bool,
    /// Failed writes (batches).
    write_failures: u64,
    /// Lines of failed writes.
    lines_lost: u64,
    /// The most recent write error.
    last_error: Option<String>,
    /// Bytes of the current and the rotated files.
    file_bytes: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl AuditLog {
    /// A log kept in memory and, if `path` is given, appended to that file (created with mode
    /// 0600) and its rotations next to it, within `options`.
    pub fn new(path: Option<PathBuf>, options: AuditOptions) -> std::io::Result<Self> {
        let options = AuditOptions {
            max_file_bytes: options.max_file_bytes.max(1),
            max_files: options.max_files.max(1),
            ..options
        };
        let writer = match path {
            None => None,
            Some(path) => {
                let shared = Arc::new(Shared::default());
                let mut writer = FileWriter {
                    path,
                    options: options.clone(),
                    file: None,
                    size: 0,
                    rotated_bytes: 0,
                    shared: shared.clone(),
                };
                writer.remove_rotations(|n| n >= writer.options.max_files)?;
                writer.open()?;
                writer.update_file_bytes();
                let (tx, rx) = mpsc::channel();
                let thread = std::thread::Builder::new().name("kmsim-audit".into()).spawn(move || writer.run(rx))?;
                Some(WriterHandle { tx: Some(tx), thread: Some(thread), shared })
            }
        };
        let (live, _) = tokio::sync::broadcast::channel(LIVE_EVENTS);
        Ok(AuditLog { index: Mutex::new(Index::default()), writer, options, live })
    }

    /// Records an event: kept in memory and queued for the file. Never blocks on the disk.
    pub fn record(&self, event: AuditEvent) {
        let event = Arc::new(event);
        let mut index = lock(&self.index);
        if let Some(writer) = &self.writer {
            writer.send_event(event.clone(), self.options.max_queued_events);
        }
        if self.live.receiver_count() > 0 {
            // Fails only without receivers; under the index lock, readers see events in the index's order.
            let _ = self.live.send(event.clone());
        }
        index.push(event, &self.options);
    }

    /// The newest `recent` events that match `query`, oldest first, and a receiver of every event recorded after
    /// them (taken together, so none is missed or seen twice).
    pub fn subscribe(
        &self,
        query: &AuditQuery,
        recent: usize,
    ) -> (Vec<AuditEvent>, tokio::sync::broadcast::Receiver<Arc<AuditEvent>>) {
        let index = lock(&self.index);
        let receiver = self.live.subscribe();
        let mut out: Vec<AuditEvent> = index
            .events
            .iter()
            .rev()
            .map(|(e, _)| e)
            .filter(|e| query.matches(e))
            .take(recent)
            .map(|e| AuditEvent::clone(e))
            .collect();
        drop(index);
        out.reverse();
        (out, receiver)
    }

    /// The newest events that match `query`, oldest first.
    pub fn query(&self, query: &AuditQuery) -> Vec<AuditEvent> {
        let limit = query.limit.unwrap_or(1000);
        let events: Vec<Arc<AuditEvent>> = lock(&self.index).events.iter().map(|(e, _)| e.clone()).collect();
        let mut out: Vec<AuditEvent> =
            events.iter().rev().filter(|e| query.matches(e)).take(limit).map(|e| AuditEvent::clone(e)).collect();
        out.reverse();
        out
    }

    /// Forgets every event: the in-memory index, the rotated files, and the current file
    /// (truncated), in order with the events recorded before; returns once the files are reset.
    pub fn reset(&self) {
        let mut index = lock(&self.index);
        *index = Index::default();
        let ack = self.writer.as_ref().and_then(|w| w.send_control(Message::Reset));
        drop(index);
        if let Some(ack) = ack {
            let _ = ack.recv();
        }
    }

    /// Waits until every event recorded before has been written to the file (or failed).
    pub fn flush(&self) {
        if let Some(ack) = self.writer.as_ref().and_then(|w| w.send_control(Message::Flush)) {
            let _ = ack.recv();
        }
    }

    /// The state of the log: whether the file is missing events, the counters, the sizes.
    pub fn health(&self) -> AuditHealth {
        let (events_in_memory, memory_bytes) = {
            let index = lock(&self.index);
            (index.events.len(), index.bytes)
        };
        let mut health = AuditHealth { events_in_memory, memory_bytes, ..AuditHealth::default() };
        if let Some(writer) = &self.writer {
            let dropped = writer.shared.dropped.load(Ordering::Relaxed);
            let status = lock(&writer.shared.status);
            health.degraded = status.failing || writer.shared.overflowing.load(Ordering::Relaxed);
            health.write_failures = status.write_failures;
            health.events_not_written = status.lines_lost + dropped;
            health.last_error = status.last_error.clone();
            health.file_bytes = status.file_bytes;
        }
        health
    }

    /// The limits in force.
    pub fn options(&self) -> &AuditOptions {
        &self.options
    }
}

impl WriterHandle {
    fn send_event(&self, event: Arc<AuditEvent>, max_queued: usize) {
        let shared = &self.shared;
        if shared.queued.fetch_add(1, Ordering::Relaxed) >= max_queued {
            shared.queued.fetch_sub(1, Ordering::Relaxed);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            if !shared.overflowing.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    max_queued,
                    "the audit writer cannot keep up: events are not written to the audit file"
                );
            }
            return;
        }
        if self.tx.as_ref().is_none_or(|tx| tx.send(Message::Event(event)).is_err()) {
            shared.queued.fetch_sub(1, Ordering::Relaxed);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn send_control(&self, message: fn(mpsc::Sender<()>) -> Message) -> Option<mpsc::Receiver<()>> {
        let (ack_tx, ack_rx) = mpsc::channel();
        self.tx.as_ref()?.send(message(ack_tx)).ok()?;
        Some(ack_rx)
    }
}

impl Drop for WriterHandle {
    /// Lets the writer drain what is queued, so that a clean shutdown loses no event.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread's state.
struct FileWriter {
    path: PathBuf,
    options: AuditOptions,
    /// `None` before the first open and after a failed write (reopened on the next batch).
    file: Option<File>,
    /// Bytes in the current file.
    size: u64,
    /// Bytes in the rotated files, counted when they change (open, rotation, reset).
    rotated_bytes: u64,
    shared: Arc<Shared>,
}

impl FileWriter {
    fn run(mut self, rx: mpsc::Receiver<Message>) {
        let mut batch: Vec<Arc<AuditEvent>> = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut next = Some(first);
            let mut control = None;
            while let Some(message) = next.take() {
                match message {
                    Message::Event(event) => batch.push(event),
                    other => {
                        control = Some(other);
                        break;
                    }
                }
                if batch.len() < MAX_BATCH_LINES {
                    next = rx.try_recv().ok();
                }
            }
            self.shared.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            self.write_batch(&batch);
            let drained = batch.len() < MAX_BATCH_LINES;
            batch.clear();
            match control {
                Some(Message::Flush(ack)) => {
                    let _ = ack.send(());
                }
                Some(Message::Reset(ack)) => {
                    self.reset();
                    let _ = ack.send(());
                }
                Some(Message::Event(_)) | None => {
                    // Gather the next batch for a while before looking again: a sender wakes this thread only
                    // when it waits in `recv`, so under load the calls cost no wake-up each, and the writer wakes
                    // about once per interval rather than once per event.
                    if drained {
                        std::thread::sleep(GATHER_INTERVAL);
                    }
                }
            }
            if self.shared.overflowing.load(Ordering::Relaxed)
                && self.shared.queued.load(Ordering::Relaxed) <= self.options.max_queued_events / 2
            {
                self.shared.overflowing.store(false, Ordering::Relaxed);
                tracing::warn!("the audit writer caught up; events are written to the audit file again");
            }
        }
    }

    /// Writes `events`, then records the outcome in the shared status (once per batch).
    fn write_batch(&mut self, events: &[Arc<AuditEvent>]) {
        if events.is_empty() {
            return;
        }
        let result = self.try_write(events);
        let file_bytes = self.size + self.rotated_bytes;
        let mut status = lock(&self.shared.status);
        status.file_bytes = file_bytes;
        match result {
            Ok(()) => {
                if status.failing {
                    status.failing = false;
                    tracing::warn!(path = %self.path.display(), failures = status.write_failures, "audit log writes succeed again");
                }
            }
            Err((error, lost)) => {
                status.write_failures += 1;
                status.lines_lost += lost as u64;
                status.last_error = Some(error.to_string());
                if !status.failing {
                    status.failing = true;
                    tracing::error!(
                        path = %self.path.display(),
                        %error,
                        "audit log write failed; KMS calls go on, events stay in memory only until writes succeed again"
                    );
                }
            }
        }
    }

    /// Appends `events` as JSON lines, rotating before a line that would take the file past the
    /// limit. On error, how many of `events` did not reach the file.
    fn try_write(&mut self, events: &[Arc<AuditEvent>]) -> Result<(), (std::io::Error, usize)> {
        let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut line: Vec<u8> = Vec::with_capacity(1024);
        let mut buffered = 0;
        let mut written = 0;
        for event in events {
            line.clear();
            if let Err(e) = serde_json::to_writer(&mut line, &**event) {
                // Every field serializes (strings and a string map); say so loudly if not.
                tracing::error!(error = %e, "an audit event could not be serialized");
                continue;
            }
            let next = line.len() as u64 + 1;
            let pending = self.size + buffer.len() as u64;
            if pending > 0 && pending + next > self.options.max_file_bytes {
                self.append(&buffer).map_err(|e| (e, events.len() - written))?;
                written += buffered;
                buffer.clear();
                buffered = 0;
                self.rotate().map_err(|e| (e, events.len() - written))?;
            }
            buffer.extend_from_slice(&line);
            buffer.push(b'\n');
            buffered += 1;
        }
        self.append(&buffer).map_err(|e| (e, events.len() - written))
    }

    /// Appends `bytes` to the current file, opening it if needed; forgets the file on error.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let result = self.open().and_then(|file| file.write_all(bytes));
        match result {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.file = None;
                Err(e)
            }
        }
    }

    /// The open current file. A file reopened after a failure may end in a torn line: it gets a
    /// newline first, so that every later line parses.
    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            let mut file = open_private(&self.path, false)?;
            let len = file.metadata()?.len();
            self.size = len;
            if len > 0 {
                let mut last = [0u8; 1];
                file.read_exact_at(&mut last, len - 1)?;
                if last[0] != b'\n' {
                    file.write_all(b"\n")?;
                    self.size += 1;
                }
            }
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// `audit.jsonl` → `audit.1.jsonl`, `audit.1.jsonl` → `audit.2.jsonl`, …, dropping the files
    /// beyond `max_files`; the next append creates a fresh `audit.jsonl`.
    fn rotate(&mut self) -> std::io::Result<()> {
        // No fsync of the finished file: it would stall the writer for the time the disk takes to
        // take up to `max_file_bytes`, and the audit is never fsynced (see the module docs).
        self.file = None;
        let keep = self.options.max_files;
        self.remove_rotations(|n| n + 1 >= keep)?;
        for n in (1..keep.saturating_sub(1)).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        if keep > 1 {
            std::fs::rename(&self.path, self.rotated(1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.size = 0;
        self.rotated_bytes = self.count_rotated_bytes();
        Ok(())
    }

    /// The path of rotated file `n` (`audit.<n>.jsonl` next to `audit.jsonl`).
    fn rotated(&self, n: u32) -> PathBuf {
        let stem = self.path.file_stem().and_then(|s| s.to_str()).unwrap_or("audit");
        match self.path.extension().and_then(|e| e.to_str()) {
            Some(ext) => self.path.with_file_name(format!("{stem}.{n}.{ext}")),
            None => self.path.with_file_name(format!("{stem}.{n}")),
        }
    }

    /// Removes the rotated files whose number satisfies `remove` (any number found in the dir,
    /// so that lowering `max_files` also removes the files beyond it).
    fn remove_rotations(&self, remove: impl Fn(u32) -> bool) -> std::io::Result<()> {
        for (n, path) in self.rotations()? {
            if remove(n) {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    /// The rotated files present, with their numbers.
    fn rotations(&self) -> std::io::Result<Vec<(u32, PathBuf)>> {
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let stem = self.path.file_stem().and_then(|s| s.to_str()).unwrap_or("audit").to_owned();
        let suffix = self.path.extension().and_then(|e| e.to_str()).map(|e| format!(".{e}")).unwrap_or_default();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_prefix(stem.as_str()))
                .and_then(|n| n.strip_prefix('.'))
                .and_then(|n| n.strip_suffix(suffix.as_str()))
            else {
                continue;
            };
            if !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
                && let Ok(n) = number.parse()
            {
                out.push((n, entry.path()));
            }
        }
        Ok(out)
    }

    /// Bytes of the rotated files.
    fn count_rotated_bytes(&self) -> u64 {
        self.rotations()
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, path)| std::fs::metadata(path).ok())
            .map(|m| m.len())
            .sum()
    }

    fn update_file_bytes(&mut self) {
        self.rotated_bytes = self.count_rotated_bytes();
        lock(&self.shared.status).file_bytes = self.size + self.rotated_bytes;
    }

    /// The admin reset: rotated files removed, the current file truncated, counters cleared.
    fn reset(&mut self) {
        self.file = None;
        let result = self.remove_rotations(|_| true).and_then(|()| {
            let file = open_private(&self.path, true)?;
            self.size = 0;
            self.file = Some(file);
            Ok(())
        });
        sync_dir(&self.path);
        self.rotated_bytes = self.count_rotated_bytes();
        let file_bytes = self.size + self.rotated_bytes;
        let mut status = lock(&self.shared.status);
        *status = WriterStatus { file_bytes, ..WriterStatus::default() };
        self.shared.dropped.store(0, Ordering::Relaxed);
        self.shared.overflowing.store(false, Ordering::Relaxed);
        if let Err(error) = result {
            status.failing = true;
            status.write_failures = 1;
            status.last_error = Some(error.to_string());
            tracing::error!(path = %self.path.display(), %error, "resetting the audit log failed");
        }
    }
}

/// Opens (creating with mode 0600) an audit file for appending, truncated if `truncate`.
fn open_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).mode(0o600).create(true);
    if truncate {
        options.write(true).truncate(true);
    } else {
        options.append(true);
    }
    options.open(path)
}

/// Best-effort fsync of the directory holding `path`, after a reset removed files.
fn sync_dir(path: &Path) {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> AuditEvent {
        AuditEvent {
            time: "2026-01-01T00:00:00.000Z".into(),
            time_millis: 1_767_225_600_000 + n as i64,
            account: "000000000000".into(),
            access_key: "test".into(),
            principal: "arn:aws:iam::000000000000:root".into(),
            region: "us-east-1".into(),
            via_service: None,
            source: Some("127.0.0.1".into()),
            dialect: "aws".into(),
            operation: "GenerateDataKey".into(),
            key_arn: Some(format!("arn:aws:kms:us-east-1:000000000000:key/{n:036}")),
            encryption_context: Some(BTreeMap::from([("bucket".into(), "b".into())])),
            outcome: "Success".into(),
            decisions: Vec::new(),
            fault: None,
            service: None,
            resource: None,
        }
    }

    fn lines_of(path: &Path) -> Vec<AuditEvent> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    fn small(max_file_bytes: u64, max_files: u32) -> AuditOptions {
        AuditOptions { max_file_bytes, max_files, ..AuditOptions::default() }
    }

    #[test]
    fn rotates_by_size_and_keeps_at_most_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let line_len = serde_json::to_string(&event(0)).unwrap().len() as u64 + 1;
        let log = AuditLog::new(Some(path.clone()), small(4 * line_len, 3)).unwrap();
        for n in 0..10 {
            log.record(event(n));
        }
        log.flush();
        // 10 lines at 4 per file: audit.2 = 0..4, audit.1 = 4..8, audit = 8..10.
        assert_eq!(file_names(dir.path()), ["audit.1.jsonl", "audit.2.jsonl", "audit.jsonl"]);
        let ids = |p: &Path| lines_of(p).iter().map(|e| e.time_millis - 1_767_225_600_000).collect::<Vec<_>>();
        assert_eq!(ids(&dir.path().join("audit.2.jsonl")), [0, 1, 2, 3]);
        assert_eq!(ids(&dir.path().join("audit.1.jsonl")), [4, 5, 6, 7]);
        assert_eq!(ids(&path), [8, 9]);
        // Retention: 30 more lines keep three files of at most four lines each, the newest last.
        for n in 10..40 {
            log.record(event(n));
        }
        log.flush();
        assert_eq!(file_names(dir.path()), ["audit.1.jsonl", "audit.2.jsonl", "audit.jsonl"]);
        assert_eq!(ids(&dir.path().join("audit.2.jsonl")), [28, 29, 30, 31]);
        assert_eq!(ids(&dir.path().join("audit.1.jsonl")), [32, 33, 34, 35]);
        assert_eq!(ids(&path), [36, 37, 38, 39], "a full file is rotated when the next line comes");
        let on_disk: u64 =
            file_names(dir.path()).iter().map(|n| std::fs::metadata(dir.path().join(n)).unwrap().len()).sum();
        assert!(on_disk <= 3 * 4 * line_len);
        let health = log.health();
        assert_eq!(health.file_bytes, on_disk);
        assert!(!health.degraded);
        assert_eq!(health.events_not_written, 0);
        // Lowering the cap removes the files beyond it at the next open.
        drop(log);
        let _log = AuditLog::new(Some(path.clone()), small(4 * line_len, 2)).unwrap();
        assert_eq!(file_names(dir.path()), ["audit.1.jsonl", "audit.jsonl"]);
    }

    #[test]
    fn audit_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::new(Some(path.clone()), small(1, 2)).unwrap();
        log.record(event(0));
        log.record(event(1));
        log.flush();
        for name in ["audit.jsonl", "audit.1.jsonl"] {
            let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }

    #[test]
    fn a_failing_write_is_visible_and_the_writer_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let log = AuditLog::new(Some(path.clone()), AuditOptions::default()).unwrap();
        for n in 0..5 {
            log.record(event(n));
        }
        log.flush();
        let health = log.health();
        assert!(health.degraded, "{health:?}");
        assert!(health.write_failures >= 1, "{health:?}");
        assert_eq!(health.events_not_written, 5);
        assert!(health.last_error.as_deref().is_some_and(|e| e.contains("No space")), "{health:?}");
        assert_eq!(health.events_in_memory, 5, "events stay queryable in memory");
        assert_eq!(log.query(&AuditQuery::default()).len(), 5);
        // Space returns: the writer (still alive) reopens the file and writes the next events.
        std::fs::remove_file(&path).unwrap();
        for n in 5..8 {
            log.record(event(n));
        }
        log.flush();
        let after = log.health();
        assert!(!after.degraded, "{after:?}");
        assert_eq!((after.write_failures, after.events_not_written), (health.write_failures, 5));
        let written: Vec<i64> = lines_of(&path).iter().map(|e| e.time_millis - 1_767_225_600_000).collect();
        assert_eq!(written, [5, 6, 7]);
        assert_eq!(after.file_bytes, std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn a_torn_last_line_is_ended_before_new_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, b"{\"torn\":").unwrap();
        let log = AuditLog::new(Some(path.clone()), AuditOptions::default()).unwrap();
        log.record(event(1));
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "{\"torn\":");
        assert_eq!(serde_json::from_str::<AuditEvent>(lines[1]).unwrap(), event(1));
    }

    #[test]
    fn the_memory_index_is_bounded_by_count_and_bytes() {
        let by_count = AuditLog::new(None, AuditOptions { memory_events: 100, ..AuditOptions::default() }).unwrap();
        for n in 0..1000 {
            by_count.record(event(n));
        }
        let health = by_count.health();
        assert_eq!(health.events_in_memory, 100);
        let per_event = health.memory_bytes / 100;
        assert!((1000..1600).contains(&per_event), "an event costs its struct, strings and context map: {health:?}");
        let newest = by_count.query(&AuditQuery { limit: Some(1), ..AuditQuery::default() });
        assert_eq!(newest, [event(999)]);

        let by_bytes = AuditLog::new(None, AuditOptions { memory_bytes: 30_000, ..AuditOptions::default() }).unwrap();
        for n in 0..1000 {
            by_bytes.record(event(n));
        }
        let health = by_bytes.health();
        assert!(health.memory_bytes <= 30_000, "{health:?}");
        assert!(health.events_in_memory > 10 && health.events_in_memory < 100, "{health:?}");
    }

    #[test]
    fn a_full_queue_drops_file_lines_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::new(Some(path), AuditOptions { max_queued_events: 0, ..AuditOptions::default() }).unwrap();
        log.record(event(0));
        let health = log.health();
        assert!(health.degraded);
        assert_eq!((health.events_not_written, health.events_in_memory), (1, 1));
    }

    #[test]
    fn reset_clears_memory_and_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let line_len = serde_json::to_string(&event(0)).unwrap().len() as u64 + 1;
        let log = AuditLog::new(Some(path.clone()), small(2 * line_len, 4)).unwrap();
        for n in 0..7 {
            log.record(event(n));
        }
        // No flush: the reset is ordered after the queued lines by the writer thread.
        log.reset();
        assert_eq!(file_names(dir.path()), ["audit.jsonl"]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert!(log.query(&AuditQuery::default()).is_empty());
        let health = log.health();
        assert_eq!((health.events_in_memory, health.memory_bytes, health.file_bytes), (0, 0, 0));
        log.record(event(7));
        log.flush();
        assert_eq!(lines_of(&path), [event(7)]);
    }
}
