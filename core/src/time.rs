//! Caller-supplied monotonic time.
//!
//! The core never reads a clock. Every `handle_*` call and every command that
//! can start a timer takes a [`Timestamp`]: microseconds on any monotonic
//! scale the adapter chooses (tokio's `Instant` minus a start instant, a game
//! loop's frame clock, a virtual clock in tests). A `now` earlier than one
//! already seen is treated as equal to it.

use core::time::Duration;

/// A point on the caller's monotonic clock, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The start of the caller's clock.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The largest timestamp; used as "never".
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// A timestamp `micros` microseconds after the clock's start.
    pub const fn from_micros(micros: u64) -> Self {
        Timestamp(micros)
    }

    /// A timestamp `millis` milliseconds after the clock's start.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(1000))
    }

    /// A timestamp `d` after the clock's start (saturating).
    pub fn from_duration(d: Duration) -> Self {
        Timestamp(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// Microseconds since the clock's start.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// The time since the clock's start.
    pub const fn as_duration(self) -> Duration {
        Duration::from_micros(self.0)
    }

    /// `self + d`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Self {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(micros))
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

/// Keeps the latest `now` seen so that time never runs backwards.
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Clock {
    last: Timestamp,
}

#[cfg(feature = "alloc")]
impl Clock {
    /// Records `now` and returns `max(now, latest seen)`.
    pub(crate) fn observe(&mut self, now: Timestamp) -> Timestamp {
        if now > self.last {
            self.last = now;
        }
        self.last
    }

    /// The latest `now` seen.
    pub(crate) fn now(&self) -> Timestamp {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturating_arithmetic() {
        let t = Timestamp::from_millis(5);
        assert_eq!(t.as_micros(), 5000);
        assert_eq!(t.saturating_add(Duration::from_millis(1)).as_micros(), 6000);
        assert_eq!(
            Timestamp::MAX.saturating_add(Duration::from_secs(1)),
            Timestamp::MAX
        );
        assert_eq!(Timestamp::ZERO.saturating_duration_since(t), Duration::ZERO);
    }

    #[test]
    #[cfg(feature = "alloc")]
    fn clock_never_runs_backwards() {
        let mut c = Clock::default();
        assert_eq!(c.observe(Timestamp::from_micros(10)).as_micros(), 10);
        assert_eq!(c.observe(Timestamp::from_micros(3)).as_micros(), 10);
    }
}
