//! The simulated clock every service stamps its resources by: wall-clock time plus an offset that tests advance
//! through the admin API (`/_sim/clock`), so that deletion windows, rotation periods and session lifetimes can pass
//! in a test's lifetime. Under `--deterministic` it is frozen instead: it starts at [`DETERMINISTIC_START`] and
//! moves only when a test advances it, so creation dates and modification times repeat from run to run.
//!
//! What checks a client's own clock is not on it: request signatures, presigned URL and POST policy expiry, TLS
//! certificates and the HTTP `Date` header (SDKs correct their clock skew by it) keep wall-clock time.

use std::sync::atomic::{AtomicI64, Ordering};

/// The largest offset [`Clock::try_advance`] reaches: about 1000 years, far beyond any deletion
/// window or rotation period, and small enough that times in milliseconds never overflow.
pub const MAX_OFFSET_SECS: i64 = 1000 * 366 * 86_400;

/// Why [`Clock::try_advance`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// The simulated clock only moves forward.
    #[error("the clock cannot be moved back (advance of {0} seconds)")]
    Negative(i64),
    /// The offset would pass [`MAX_OFFSET_SECS`].
    #[error(
        "advancing the clock by {advance} seconds (offset now {offset}) passes the largest offset, {MAX_OFFSET_SECS} seconds"
    )]
    OutOfRange {
        /// The offset before the refused advance.
        offset: i64,
        /// The refused advance.
        advance: i64,
    },
}

/// Where a frozen clock starts: 2026-01-01T00:00:00Z, in Unix seconds. Part of every deterministic answer that
/// carries a time (changing it changes them all).
pub const DETERMINISTIC_START: i64 = 1_767_225_600;

/// Wall-clock time, or a frozen instant, shifted by a simulated offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset_secs: AtomicI64,
    /// The instant a frozen clock stands at before any advance (Unix seconds); `None` follows the wall clock.
    frozen_at: Option<i64>,
}

impl Clock {
    /// Wall-clock time (plus what tests advance).
    pub fn wall() -> Self {
        Clock::default()
    }

    /// A clock standing still at `start` (Unix seconds) that moves only when advanced: `--deterministic`.
    pub fn frozen(start: i64) -> Self {
        Clock { offset_secs: AtomicI64::new(0), frozen_at: Some(start) }
    }

    /// Whether the clock stands still between advances.
    pub fn is_frozen(&self) -> bool {
        self.frozen_at.is_some()
    }

    /// The simulated time in Unix seconds.
    pub fn now(&self) -> i64 {
        let base = self.frozen_at.unwrap_or_else(crate::time::now_unix);
        base.saturating_add(self.offset_secs.load(Ordering::Relaxed))
    }

    /// The simulated time in Unix milliseconds.
    pub fn now_millis(&self) -> i64 {
        let base = match self.frozen_at {
            Some(start) => start.saturating_mul(1000),
            None => crate::time::now_unix_millis(),
        };
        base.saturating_add(self.offset_secs.load(Ordering::Relaxed).saturating_mul(1000))
    }

    /// Moves the simulated time forward (or back, for negative values), saturating at the ends of
    /// the offset's range. Requests should go through [`Clock::try_advance`].
    pub fn advance(&self, secs: i64) {
        let _ = self
            .offset_secs
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |offset| Some(offset.saturating_add(secs)));
    }

    /// Moves the simulated time forward by `secs`, refusing to go back (`secs < 0`) and an offset
    /// or a time that would leave [`MAX_OFFSET_SECS`]; on error the clock is unchanged. This is
    /// what the admin API calls with a number from the wire.
    pub fn try_advance(&self, secs: i64) -> Result<(), ClockError> {
        if secs < 0 {
            return Err(ClockError::Negative(secs));
        }
        self.offset_secs
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |offset| {
                offset.checked_add(secs).filter(|o| *o <= MAX_OFFSET_SECS)
            })
            .map(|_| ())
            .map_err(|offset| ClockError::OutOfRange { offset, advance: secs })
    }

    /// How far tests have advanced the clock, in seconds.
    pub fn offset(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }

    /// Undoes every advance: back to wall-clock time, or a frozen clock back to its start.
    pub fn reset(&self) {
        self.offset_secs.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_advance_refuses_negative_and_out_of_range_and_leaves_the_clock_unchanged() {
        let clock = Clock::default();
        clock.try_advance(86_400).unwrap();
        assert_eq!(clock.offset(), 86_400);
        assert_eq!(clock.try_advance(-1), Err(ClockError::Negative(-1)));
        assert_eq!(clock.try_advance(i64::MAX), Err(ClockError::OutOfRange { offset: 86_400, advance: i64::MAX }));
        assert!(clock.try_advance(MAX_OFFSET_SECS).is_err());
        assert_eq!(clock.offset(), 86_400);
        clock.try_advance(MAX_OFFSET_SECS - 86_400).unwrap();
        assert_eq!(clock.offset(), MAX_OFFSET_SECS);
        assert!(clock.now_millis() > 0, "times in milliseconds still compute");
        assert!(clock.try_advance(1).is_err());
        clock.reset();
        assert_eq!(clock.offset(), 0);
        // The unchecked form saturates instead of overflowing.
        clock.advance(i64::MAX);
        clock.advance(1);
        assert_eq!(clock.offset(), i64::MAX);
        assert_eq!((clock.now(), clock.now_millis()), (i64::MAX, i64::MAX));
    }

    #[test]
    fn a_frozen_clock_moves_only_when_advanced_and_resets_to_its_start() {
        let clock = Clock::frozen(DETERMINISTIC_START);
        assert!(clock.is_frozen() && !Clock::wall().is_frozen());
        assert_eq!((clock.now(), clock.now_millis()), (DETERMINISTIC_START, DETERMINISTIC_START * 1000));
        assert_eq!(crate::time::format_rfc3339(clock.now()), "2026-01-01T00:00:00Z");
        clock.try_advance(90).unwrap();
        assert_eq!(clock.now(), DETERMINISTIC_START + 90);
        assert_eq!(clock.now_millis(), (DETERMINISTIC_START + 90) * 1000);
        clock.reset();
        assert_eq!(clock.now(), DETERMINISTIC_START);
    }
}
