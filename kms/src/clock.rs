//! The KMS clock: wall-clock time plus an offset that tests advance through the admin API, so
//! that deletion windows and rotation periods can pass in a test's lifetime.

use std::sync::atomic::{AtomicI64, Ordering};

/// Wall-clock time shifted by a simulated offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    /// The simulated time in Unix seconds.
    pub fn now(&self) -> i64 {
        shared::time::now_unix() + self.offset_secs.load(Ordering::Relaxed)
    }

    /// The simulated time in Unix milliseconds.
    pub fn now_millis(&self) -> i64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        wall + self.offset_secs.load(Ordering::Relaxed) * 1000
    }

    /// Moves the simulated time forward (or back, for negative values).
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }

    /// The current offset from wall-clock time.
    pub fn offset(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }

    /// Returns to wall-clock time.
    pub fn reset(&self) {
        self.offset_secs.store(0, Ordering::Relaxed);
    }
}
