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

/// How many recent offset samples are kept; the one with the shortest round trip wins.
const OFFSET_SAMPLES: usize = 8;

/// The fleet's clock: the local clock corrected by its measured offset to the coordinator's.
///
/// Each sample is a round trip: local time before, the coordinator's time, local time after.
/// The coordinator's time is taken to be read at the midpoint, so a sample's error is at most
/// half its round trip; of the recent samples, the one with the shortest round trip is used.
#[derive(Debug)]
pub(crate) struct FleetClock {
    local: std::sync::Arc<dyn Clock>,
    offset_us: std::sync::atomic::AtomicI64,
    /// (round trip in µs, offset in µs), most recent last.
    samples: std::sync::Mutex<std::collections::VecDeque<(i64, i64)>>,
}

impl FleetClock {
    pub(crate) fn new(local: std::sync::Arc<dyn Clock>) -> FleetClock {
        FleetClock {
            local,
            offset_us: std::sync::atomic::AtomicI64::new(0),
            samples: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// The local clock, uncorrected.
    pub(crate) fn local_now(&self) -> DateTime<Utc> {
        self.local.now()
    }

    /// Records one sample and returns the offset now in use (µs, coordinator minus local).
    pub(crate) fn record(
        &self,
        before: DateTime<Utc>,
        server_us: i64,
        after: DateTime<Utc>,
    ) -> i64 {
        let before_us = before.timestamp_micros();
        let after_us = after.timestamp_micros();
        let round_trip = (after_us - before_us).max(0);
        let offset = server_us - (before_us + round_trip / 2);
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if samples.len() == OFFSET_SAMPLES {
            samples.pop_front();
        }
        samples.push_back((round_trip, offset));
        let best = samples
            .iter()
            .min_by_key(|(round_trip, _)| *round_trip)
            .map_or(offset, |(_, offset)| *offset);
        self.offset_us
            .store(best, std::sync::atomic::Ordering::Relaxed);
        best
    }

    /// The offset in use, in µs (coordinator minus local).
    pub(crate) fn offset_us(&self) -> i64 {
        self.offset_us.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Clock for FleetClock {
    fn now(&self) -> DateTime<Utc> {
        self.local.now() + TimeDelta::microseconds(self.offset_us())
    }
}
