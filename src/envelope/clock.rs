//! The clock key states are judged by: the system clock, or a manual one for tests.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::lifecycle::UnixTime;

/// A source of "now" (seconds since the Unix epoch).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> UnixTime;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that moves only when told (tests, simulations).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: UnixTime) -> Self {
        Self(AtomicU64::new(t))
    }

    /// Sets the time.
    pub fn set(&self, t: UnixTime) {
        self.0.store(t, Ordering::SeqCst);
    }

    /// Moves the time forward by `seconds`.
    pub fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}
