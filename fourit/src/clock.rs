//! Where the scheduler reads the time.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

/// The wall clock the scheduler schedules by.
///
/// The scheduler only decides *when* to try a tick by it; *which* tick is claimed comes from
/// the schedule. Replace it to simulate a host whose clock is off ([`OffsetClock`]) or to drive
/// time in tests.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The host's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The host's clock shifted by a fixed offset: a process whose clock runs ahead or behind.
///
/// ```
/// use fourit::{Clock, OffsetClock};
/// let ahead = OffsetClock::new(chrono::TimeDelta::milliseconds(800));
/// assert!(ahead.now() > chrono::Utc::now());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct OffsetClock {
    offset: TimeDelta,
}

impl OffsetClock {
    /// A clock `offset` ahead of the host's (behind if negative).
    pub fn new(offset: TimeDelta) -> OffsetClock {
        OffsetClock { offset }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}
