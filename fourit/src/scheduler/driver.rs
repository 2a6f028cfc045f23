//! The driver: one task with a min-heap of each job's next tick; it sleeps until the earliest,
//! reads the fleet's clock again on waking, and dispatches every job due in one batch.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::claims::IndexedClaim;
use super::dispatch::Dispatcher;
use super::options::{LEASE_TTL_BOUNDS, Options};
use crate::clock::{Clock, FleetClock};
use crate::coordinator::{ClaimRequest, new_claim_id};
use crate::events::Event;
use crate::job::Job;

/// The driver sleeps until this long before a tick and yields until the tick itself, so the
/// timer's millisecond resolution does not make every run late.
const PRECISE_WAKE_US: i64 = 2_000;

/// A job's next tick, in UTC milliseconds, for the min-heap.
type Due = Reverse<(i64, usize)>;

/// What the driver works with.
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) clock: Arc<FleetClock>,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) shutdown: CancellationToken,
    pub(crate) options: Options,
    pub(crate) node: Arc<str>,
}

impl Driver {
    /// Runs until shutdown: sleep until the earliest tick, re-read the clock, batch every
    /// due job.
    pub(crate) async fn drive(&self, jobs: Vec<Job>) {
        let jobs: Arc<[Job]> = Arc::from(jobs);
        let mut heap = self.first_ticks(&jobs);
        let mut last_spin = None;
        // Wakes the driver when the fleet's time jumps (a step of either clock was
        // measured): the heap holds ticks, which need no change, but the wait for them does.
        let mut clock_epoch = self.clock.epoch();
        clock_epoch.mark_unchanged();
        // The claims of the next tick, prepared while waiting the last moments for it.
        let mut prepared: Option<(i64, Vec<IndexedClaim>)> = None;
        loop {
            let now = self.clock.now();
            if let Some((due_ms, _)) = &prepared
                && now.timestamp_millis() >= *due_ms
                && let Some((_, batch)) = prepared.take()
            {
                self.dispatcher.dispatch(&jobs, batch);
            }
            if prepared.is_none() {
                let batch = self.take_due(&mut heap, &jobs, now);
                if !batch.is_empty() {
                    self.dispatcher.dispatch(&jobs, batch);
                }
            }
            let next_ms = match (&prepared, heap.peek()) {
                (Some((due_ms, _)), _) => *due_ms,
                (None, Some(Reverse((next_ms, _)))) => *next_ms,
                (None, None) => {
                    self.shutdown.cancelled().await;
                    return;
                }
            };
            let wait_us = next_ms.saturating_mul(1000) - self.clock.now().timestamp_micros();
            if wait_us > PRECISE_WAKE_US {
                // tokio's timer has millisecond resolution and wakes up to a millisecond
                // late: sleep to just before the tick, then yield until it.
                let sleep =
                    Duration::from_micros(u64::try_from(wait_us - PRECISE_WAKE_US).unwrap_or(0));
                tokio::select! {
                    () = tokio::time::sleep(sleep) => {}
                    _ = clock_epoch.changed() => {
                        clock_epoch.mark_unchanged();
                        debug!(node = %self.node, "the fleet's time jumped: re-planning the wait");
                    }
                    () = self.shutdown.cancelled() => return,
                }
            } else if wait_us > 0 {
                if prepared.is_none()
                    && let Some(at) = DateTime::from_timestamp_millis(next_ms)
                {
                    // Walk the schedules and build the claims now, so that at the tick they
                    // only need sending.
                    let batch = self.take_due(&mut heap, &jobs, at);
                    prepared = Some((next_ms, batch));
                    continue;
                }
                let now = self.clock.now();
                if last_spin == Some(now) {
                    // The clock did not move between two turns: it is a paused test clock,
                    // which only advances while every task sleeps.
                    tokio::time::sleep(Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)))
                        .await;
                } else {
                    tokio::task::yield_now().await;
                }
                last_spin = Some(now);
                if self.shutdown.is_cancelled() {
                    return;
                }
            }
        }
    }

    /// Each job's first tick: on start, the latest tick still within grace is due now, so a
    /// fleet restarted across a tick still runs it once (the high-water mark refuses it if it
    /// already ran).
    fn first_ticks(&self, jobs: &[Job]) -> BinaryHeap<Due> {
        let mut heap = BinaryHeap::with_capacity(jobs.len());
        let start = self.clock.now();
        for (index, job) in jobs.iter().enumerate() {
            let grace = self.grace(job);
            let first = match job.schedule().latest_at_or_before(start) {
                Some(latest) if start - latest <= grace => Some(latest),
                _ => job.schedule().next_after(start),
            };
            match first {
                Some(tick) => {
                    self.tell_next(job, tick);
                    heap.push(Reverse((tick.timestamp_millis(), index)));
                }
                None => no_next_tick(job, start),
            }
        }
        heap
    }

    fn tell_next(&self, job: &Job, tick: DateTime<Utc>) {
        self.dispatcher.claims.runner.events.emit(&Event::NextTick {
            job: job.name(),
            tick,
        });
    }

    fn grace(&self, job: &Job) -> TimeDelta {
        let grace = job.options().grace.unwrap_or(self.options.grace);
        TimeDelta::from_std(grace).unwrap_or(TimeDelta::MAX)
    }

    /// Pops every job due at `now`, keeps only its latest due tick (older ones are missed),
    /// and pushes its next tick back. Returns the claims to make, with each job's index.
    fn take_due(
        &self,
        heap: &mut BinaryHeap<Due>,
        jobs: &[Job],
        now: DateTime<Utc>,
    ) -> Vec<IndexedClaim> {
        let now_ms = now.timestamp_millis();
        let mut batch = Vec::new();
        while let Some(Reverse((due_ms, index))) = heap.peek().copied() {
            if due_ms > now_ms {
                break;
            }
            heap.pop();
            let job = &jobs[index];
            let Some(planned) = DateTime::from_timestamp_millis(due_ms) else {
                continue;
            };
            let Some(due) = job.schedule().due(planned, now) else {
                continue;
            };
            if due.missed > 0 {
                warn!(
                    job = job.name(),
                    missed = due.missed,
                    latest = %due.latest,
                    "missed ticks: the process woke too late for them; only the latest is \
                     considered"
                );
            }
            if now - due.latest <= self.grace(job) {
                batch.push((
                    index,
                    ClaimRequest {
                        job: job.name_arc().clone(),
                        tick_ms: due.latest.timestamp_millis(),
                        node: self.node.clone(),
                        lease_ttl: lease_ttl_until(due.latest, due.next, self.options.lease_ttl),
                        overlap: job.options().overlap,
                        preferred: None,
                        handoff: self.options.handoff,
                        claim_id: new_claim_id(),
                        schedule: Some(job.schedule_arc().clone()),
                    },
                ));
            } else {
                warn!(
                    job = job.name(),
                    tick = %due.latest,
                    late_ms = (now - due.latest).num_milliseconds(),
                    "missed tick: later than its grace"
                );
            }
            match due.next {
                Some(next) => {
                    self.tell_next(job, next);
                    heap.push(Reverse((next.timestamp_millis(), index)));
                }
                None => no_next_tick(job, due.latest.max(now)),
            }
        }
        batch
    }
}

/// A job whose schedule has no tick after `after` leaves the heap: said once, as an error
/// naming it, never silently. (Schedules that never fire are refused when they are written
/// and no clock change ends one, so this is a bug to report; `fourit status` shows the job
/// with "no next tick".)
fn no_next_tick(job: &Job, after: DateTime<Utc>) {
    error!(
        job = job.name(),
        schedule = %job.schedule(),
        after = %after,
        "the schedule has no tick after this; the job will not run again in this process \
         (a bug in fourit: please report it with the schedule and zone)"
    );
}

/// The lease TTL of a run at `tick`: fixed if configured, else the interval to the job's
/// `next` tick, clamped to [`LEASE_TTL_BOUNDS`].
pub(crate) fn lease_ttl_until(
    tick: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    fixed: Option<Duration>,
) -> Duration {
    if let Some(ttl) = fixed {
        return ttl;
    }
    let (min, max) = LEASE_TTL_BOUNDS;
    next.and_then(|next| (next - tick).to_std().ok())
        .map_or(max, |interval| interval.clamp(min, max))
}
