//! A failing audit file is logged once when writes start failing and once when they succeed
//! again, not once per event (its own test binary, as it installs the global log subscriber).

use std::io::Write;
use std::sync::{Arc, Mutex};

use kms::audit::{AuditEvent, AuditLog, AuditOptions};

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn event(n: i64) -> AuditEvent {
    AuditEvent {
        time: "2026-01-01T00:00:00.000Z".into(),
        time_millis: n,
        account: "000000000000".into(),
        access_key: "test".into(),
        principal: "arn:aws:iam::000000000000:root".into(),
        region: "us-east-1".into(),
        via_service: None,
        source: None,
        dialect: "aws".into(),
        operation: "ListKeys".into(),
        key_arn: None,
        encryption_context: None,
        outcome: "Success".into(),
        decisions: Vec::new(),
        fault: None,
        service: None,
        resource: None,
    }
}

#[test]
fn write_failures_are_logged_once_per_episode() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).init();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    let log = AuditLog::new(Some(path.clone()), AuditOptions::default()).unwrap();
    // Three separate failing writes (each flush ends a batch).
    for n in 0..3 {
        log.record(event(n));
        log.flush();
    }
    assert_eq!(log.health().write_failures, 3);
    std::fs::remove_file(&path).unwrap();
    for n in 3..5 {
        log.record(event(n));
        log.flush();
    }
    assert!(!log.health().degraded);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.matches("audit log write failed").count(), 1, "{text}");
    assert_eq!(text.matches("audit log writes succeed again").count(), 1, "{text}");
}
