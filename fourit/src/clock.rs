//! Where the scheduler reads the time.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

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

/// A change of the wall clock against monotonic time larger than this (beyond what drift
/// explains) is a step: an NTP step, a VM restored from a snapshot, a host resumed from
/// suspend. Steps this small cost nothing anyway: the coordinator answers a claim up to this
/// early with *retry at the tick*, and the next samples absorb them.
pub(crate) const STEP_THRESHOLD: Duration = Duration::from_millis(10);

/// How fast a disciplined wall clock may drift from monotonic time, in parts per million,
/// without counting as a step. NTP slews at most 500 ppm; twice that leaves room for an
/// undisciplined crystal.
const MAX_DRIFT_PPM: i64 = 1_000;

/// A reading of both clocks is retried when it took longer than this (the thread was
/// preempted between them), since the pair would then disagree by the delay.
const READING_SPREAD: Duration = Duration::from_millis(1);

/// Notices steps of the wall clock: between two readings, the wall clock should advance as
/// monotonic time does, give or take drift. Pure, so it is tested without clocks.
#[derive(Debug, Default)]
pub(crate) struct StepDetector {
    /// The previous reading: (monotonic µs, wall µs).
    last: Option<(i64, i64)>,
}

impl StepDetector {
    /// Takes a reading of both clocks (µs each, from any fixed origins) and returns the size
    /// of the wall-clock step since the previous reading (µs, positive if the wall clock
    /// jumped forward), or `None` if it moved with monotonic time. A reading older than the
    /// previous one is ignored.
    pub(crate) fn observe(&mut self, mono_us: i64, wall_us: i64) -> Option<i64> {
        let Some((last_mono, last_wall)) = self.last else {
            self.last = Some((mono_us, wall_us));
            return None;
        };
        let mono_elapsed = mono_us - last_mono;
        if mono_elapsed < 0 {
            return None;
        }
        self.last = Some((mono_us, wall_us));
        let step = (wall_us - last_wall) - mono_elapsed;
        let allowed = threshold_us() + mono_elapsed.saturating_mul(MAX_DRIFT_PPM) / 1_000_000;
        (step.abs() > allowed).then_some(step)
    }
}

fn threshold_us() -> i64 {
    i64::try_from(STEP_THRESHOLD.as_micros()).unwrap_or(i64::MAX)
}

/// One offset sample: a round trip to the coordinator's clock.
#[derive(Clone, Copy, Debug)]
struct Sample {
    round_trip_us: i64,
    offset_us: i64,
    /// When it was taken: an older sample may be off by the clocks' drift since.
    at: Instant,
}

/// A sample in progress, from [`FleetClock::sample_start`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct SampleStart {
    mono: Instant,
    wall_us: i64,
    /// The step count when the sample started: a sample spanning a step is dropped.
    steps: u64,
}

/// What the fleet clock has noticed and not yet re-measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PendingStep {
    /// The sum of the local wall-clock steps noticed (µs).
    pub(crate) local_us: i64,
    /// How far a sample put the coordinator's clock from where the clock expected it (µs):
    /// the coordinator's clock moved, or this host's did without being noticed.
    pub(crate) offset_jump_us: i64,
}

#[derive(Debug, Default)]
struct State {
    detector: StepDetector,
    /// The offset in use (µs, coordinator minus local).
    offset_us: i64,
    /// Recent samples, most recent last; all taken since the last step.
    samples: VecDeque<Sample>,
    /// Steps noticed since the last re-measurement.
    pending: Option<PendingStep>,
    /// How many steps were ever noticed.
    steps: u64,
    /// A sample was ever recorded: the offset is measured, not assumed.
    measured: bool,
}

/// The fleet's clock: the local clock corrected by its measured offset to the coordinator's.
///
/// Each sample is a round trip: local time before, the coordinator's time, monotonic time
/// for the round trip. The coordinator's time is taken to be read at the midpoint, so a
/// sample's error is at most half its round trip; of the recent samples, the one with the
/// shortest round trip is used.
///
/// A step of the local wall clock is noticed at the first reading after it (wall time against
/// monotonic time, see [`StepDetector`]): the offset is shifted by the step at once, so the
/// fleet's time goes on as if nothing happened, the samples taken before it are dropped, and
/// [`stepped`](Self::stepped) wakes whoever re-measures. A sample that puts the coordinator's
/// clock far from where the offset expected it (the coordinator's clock stepped) also drops
/// the older samples. Whenever the offset in use jumps, [`changed`](Self::changed) wakes the
/// driver to re-plan.
#[derive(Debug)]
pub(crate) struct FleetClock {
    local: Arc<dyn Clock>,
    /// Monotonic readings are measured from here, so they compare as numbers.
    origin: Instant,
    state: Mutex<State>,
    /// Notified when a step is noticed: re-measure.
    step: Notify,
    /// Counts the jumps of the offset in use.
    epoch: watch::Sender<u64>,
}

impl FleetClock {
    pub(crate) fn new(local: Arc<dyn Clock>) -> FleetClock {
        FleetClock {
            local,
            origin: Instant::now(),
            state: Mutex::new(State::default()),
            step: Notify::new(),
            epoch: watch::Sender::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update of the state is complete before anything that could panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the local wall clock and monotonic time together, noticing a step; returns the
    /// wall time (at full precision: two readings are never equal, which the driver relies
    /// on to tell a real clock from a paused test clock) and the monotonic instant.
    fn read(&self, state: &mut State) -> (DateTime<Utc>, Instant) {
        let mut attempts = 1;
        loop {
            let before = Instant::now();
            let wall = self.local.now();
            let wall_us = wall.timestamp_micros();
            let spread = before.elapsed();
            let tight = spread <= READING_SPREAD;
            if tight || attempts == 3 {
                let mono = before + spread / 2;
                // A loose pair could look like a step of its spread: it is not compared.
                if tight {
                    let mono_us = i64::try_from(mono.duration_since(self.origin).as_micros())
                        .unwrap_or(i64::MAX);
                    if let Some(step) = state.detector.observe(mono_us, wall_us) {
                        self.note_local_step(state, step);
                    }
                }
                return (wall, mono);
            }
            attempts += 1;
        }
    }

    fn note_local_step(&self, state: &mut State, step_us: i64) {
        // The fleet's time goes on undisturbed: the offset absorbs the step.
        state.offset_us -= step_us;
        state.samples.clear();
        state.steps += 1;
        let pending = state.pending.get_or_insert_with(PendingStep::default);
        pending.local_us += step_us;
        self.step.notify_one();
    }

    /// Starts an offset sample: call just before asking the coordinator for its time.
    pub(crate) fn sample_start(&self) -> SampleStart {
        let mut state = self.state();
        let (wall, mono) = self.read(&mut state);
        let wall_us = wall.timestamp_micros();
        SampleStart {
            mono,
            wall_us,
            steps: state.steps,
        }
    }

    /// Records a sample started at `start` whose answer was `server_us` (coordinator time,
    /// UTC µs), and returns the offset now in use (µs, coordinator minus local). A sample
    /// during which the local clock stepped is dropped.
    pub(crate) fn record(&self, start: SampleStart, server_us: i64) -> i64 {
        let mut state = self.state();
        // Reading the clock again notices a step during the round trip.
        let _ = self.read(&mut state);
        if state.steps != start.steps {
            return state.offset_us;
        }
        let round_trip_us = i64::try_from(start.mono.elapsed().as_micros()).unwrap_or(i64::MAX);
        let offset_us = server_us - (start.wall_us + round_trip_us / 2);
        let before = state.offset_us;
        if let Some(best) = best_sample(&state.samples) {
            // Each sample is within half its round trip of the truth: beyond that and the
            // threshold, the clocks moved against each other.
            let age_us = i64::try_from(best.at.elapsed().as_micros()).unwrap_or(i64::MAX);
            let drift_us = age_us.saturating_mul(MAX_DRIFT_PPM) / 1_000_000;
            let slack = threshold_us() + round_trip_us / 2 + best.round_trip_us / 2 + drift_us;
            if (offset_us - best.offset_us).abs() > slack {
                state.samples.clear();
                let pending = state.pending.get_or_insert_with(PendingStep::default);
                pending.offset_jump_us += offset_us - before;
                self.step.notify_one();
            }
        }
        if state.samples.len() == OFFSET_SAMPLES {
            state.samples.pop_front();
        }
        state.samples.push_back(Sample {
            round_trip_us,
            offset_us,
            at: start.mono,
        });
        state.measured = true;
        let best = best_sample(&state.samples).map_or(offset_us, |sample| sample.offset_us);
        state.offset_us = best;
        if (best - before).abs() > threshold_us() {
            self.epoch.send_modify(|epoch| *epoch += 1);
        }
        best
    }

    /// The offset in use, in µs (coordinator minus local).
    pub(crate) fn offset_us(&self) -> i64 {
        self.state().offset_us
    }

    /// Whether the offset was ever measured (a sample recorded).
    pub(crate) fn measured(&self) -> bool {
        self.state().measured
    }

    /// Whether a step was noticed and not yet re-measured.
    pub(crate) fn step_pending(&self) -> bool {
        self.state().pending.is_some()
    }

    /// Takes what was noticed since the last call, if anything.
    pub(crate) fn take_pending_step(&self) -> Option<PendingStep> {
        self.state().pending.take()
    }

    /// Completes when a step is noticed (at once if one was noticed since the last wait).
    pub(crate) async fn stepped(&self) {
        self.step.notified().await;
    }

    /// Asks for a re-measurement, as a noticed step does (a claim answered *too early* says
    /// the offset is off).
    pub(crate) fn request_measurement(&self) {
        self.step.notify_one();
    }

    /// How many times the offset in use jumped; its receiver wakes the driver to re-plan.
    pub(crate) fn epoch(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }
}

fn best_sample(samples: &VecDeque<Sample>) -> Option<Sample> {
    samples.iter().copied().min_by_key(|s| s.round_trip_us)
}

impl Clock for FleetClock {
    fn now(&self) -> DateTime<Utc> {
        let mut state = self.state();
        let (wall, _) = self.read(&mut state);
        let offset = TimeDelta::microseconds(state.offset_us);
        drop(state);
        wall.checked_add_signed(offset).unwrap_or(wall)
    }
}

#[cfg(test)]
#[path = "clock_tests.rs"]
mod tests;
