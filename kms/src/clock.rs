//! The KMS clock: wall-clock time plus an offset that tests advance through the admin API, so
//! that deletion windows and rotation periods can pass in a test's lifetime.

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

/// Wall-clock time shifted by a simulated offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    /// The simulated time in Unix seconds.
    pub fn now(&self) -> i64 {
        shared::time::now_unix().saturating_add(self.offset_secs.load(Ordering::Relaxed))
    }

    /// The simulated time in Unix milliseconds.
    pub fn now_millis(&self) -> i64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        wall.saturating_add(self.offset_secs.load(Ordering::Relaxed).saturating_mul(1000))
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

    /// The current offset from wall-clock time.
    pub fn offset(&self) -> i64 {
        self.offset_secs.load(Ordering::Relaxed)
    }

    /// Returns to wall-clock time.
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
}
