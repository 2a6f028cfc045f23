//! The embedded coordinator: the rule book ([`super::rules`]) over one process's memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::rules::{self, JobRecord, MemberRecord, Now, Writes};
use super::{
    ClaimNotice, ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator, HISTORY_LEN, Heartbeat,
    HistoryEntry, JobDefinition, Lease, ManualOutcome, ManualRequest, ManualState, MissedNotice,
    NoticeSender, Registrations, RunRecord,
};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::job::{BoxFuture, Overlap};

mod admin;

/// A coordinator for a single process: same semantics as Redis, no network.
///
/// Use it through `memory://`. It coordinates the jobs of one process only, so it is the
/// right choice for a single instance, for development, and for tests of job logic. Lease
/// expiry follows tokio's clock, so tests with paused time see leases expire on time; its
/// own time (the handoff window, the refusal of future ticks, member timestamps, and the time
/// the schedulers using it sync to, as they sync to Redis's) is the wall clock it is given.
#[derive(Debug)]
pub struct MemoryCoordinator {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    leases: LeaseClock,
    /// Every decided tick, for the schedulers sharing this coordinator.
    notices: NoticeSender,
    /// The ticks claims recorded as missed.
    missed: tokio::sync::broadcast::Sender<MissedNotice>,
}

/// The clock leases expire by.
#[derive(Debug)]
enum LeaseClock {
    /// Tokio's monotonic clock, in ms from this instant.
    Tokio(Instant),
    /// A clock of the caller's.
    Given(Arc<dyn Clock>),
}

impl Default for MemoryCoordinator {
    fn default() -> Self {
        MemoryCoordinator::with_clock(Arc::new(SystemClock))
    }
}

#[derive(Debug, Default)]
struct State {
    jobs: HashMap<String, Job>,
    members: BTreeMap<String, MemberRecord>,
    /// Manual run requests by (job, id), and where each stands.
    manual: BTreeMap<(String, String), (ManualRequest, ManualState)>,
    /// The catalog: per job, each member's registration.
    catalog: BTreeMap<String, rules::members::JobRegistrations>,
}

/// A job: its record and its history, newest first.
#[derive(Debug, Default)]
struct Job {
    record: JobRecord,
    history: VecDeque<HistoryEntry>,
}

impl State {
    /// Registrations follow the members ([`rules::members::prune`]), over every job.
    fn prune_catalog(&mut self) {
        let members = &self.members;
        rules::members::prune_all(&mut self.catalog, &|node| members.contains_key(node));
    }
}

impl Job {
    /// Appends what a rule wrote to history, keeping the last [`HISTORY_LEN`] entries.
    fn apply(&mut self, writes: Writes) {
        for entry in writes.history {
            self.history.push_front(entry);
        }
        self.history.truncate(HISTORY_LEN);
    }
}

impl MemoryCoordinator {
    /// An empty coordinator.
    pub fn new() -> MemoryCoordinator {
        MemoryCoordinator::default()
    }

    /// An empty coordinator whose wall clock (for the handoff window and member timestamps)
    /// is `clock`; leases expire by tokio's clock.
    pub fn with_clock(clock: Arc<dyn Clock>) -> MemoryCoordinator {
        MemoryCoordinator::with_lease_clock(clock, LeaseClock::Tokio(Instant::now()))
    }

    /// An empty coordinator whose wall clock is `wall` and whose leases expire by `lease`
    /// (tests that drive the coordinator's time by hand).
    #[doc(hidden)]
    pub fn with_clocks(wall: Arc<dyn Clock>, lease: Arc<dyn Clock>) -> MemoryCoordinator {
        MemoryCoordinator::with_lease_clock(wall, LeaseClock::Given(lease))
    }

    fn with_lease_clock(clock: Arc<dyn Clock>, leases: LeaseClock) -> MemoryCoordinator {
        MemoryCoordinator {
            state: Mutex::new(State::default()),
            clock,
            leases,
            notices: NoticeSender::new(),
            missed: tokio::sync::broadcast::channel(super::NOTICE_BUFFER).0,
        }
    }

    /// The coordinator's clock, as the rules read it.
    fn now(&self) -> Now {
        let ms = self.clock.now().timestamp_millis();
        let lease_ms = match &self.leases {
            LeaseClock::Tokio(since) => {
                // Rounded up: a lease granted within a millisecond expires at the end of its
                // TTL or later, never earlier (as Redis keeps a key through its expiry
                // millisecond).
                let micros = since.elapsed().as_micros();
                i64::try_from(micros.div_ceil(1_000)).unwrap_or(i64::MAX)
            }
            LeaseClock::Given(clock) => clock.now().timestamp_millis(),
        };
        Now { ms, lease_ms }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // breaks the protocol (a rule changes a record that is stored only once it is done),
        // so keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Coordinator for MemoryCoordinator {
    fn claim_notices(&self) -> Option<ClaimNotices> {
        Some(self.notices.subscribe())
    }

    fn missed_ticks(&self) -> Option<tokio::sync::broadcast::Receiver<MissedNotice>> {
        Some(self.missed.subscribe())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    fn claim<'a>(
        &'a self,
        requests: &'a [ClaimRequest],
    ) -> BoxFuture<'a, Result<Vec<ClaimOutcome>, Error>> {
        Box::pin(async move {
            let now = self.now();
            let mut outcomes = Vec::with_capacity(requests.len());
            let mut state = self.state();
            for request in requests {
                let job = state.jobs.entry(request.job.to_string()).or_default();
                let (outcome, writes) = rules::claim::claim(&mut job.record, request, now);
                if let Some(ticks) = &writes.missed {
                    let _ = self.missed.send(MissedNotice::new(request, ticks));
                }
                job.apply(writes);
                outcomes.push(outcome);
            }
            drop(state);
            for (request, outcome) in requests.iter().zip(&outcomes) {
                if rules::claim::notifies(request, outcome) {
                    self.notices.send(ClaimNotice {
                        job: request.job.clone(),
                        tick_ms: request.tick_ms,
                        manual: false,
                    });
                }
            }
            Ok(outcomes)
        })
    }

    fn keep_alive<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let now = self.now();
            let mut state = self.state();
            Ok(state
                .jobs
                .get_mut(&*lease.job)
                .is_some_and(|job| rules::lease::keep_alive(&mut job.record, lease, ttl, now)))
        })
    }

    fn release<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let now = self.now();
            let mut state = self.state();
            let job = state.jobs.entry(lease.job.to_string()).or_default();
            let (held, writes) = rules::lease::release(&mut job.record, lease, record, now);
            job.apply(writes);
            Ok(held)
        })
    }

    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        stale_after: Duration,
        clock_offset_us: Option<i64>,
    ) -> BoxFuture<'a, Result<Heartbeat, Error>> {
        Box::pin(async move {
            let now = self.now();
            let mut state = self.state();
            let evicted = rules::members::heartbeat(
                &mut state.members,
                node,
                stale_after,
                clock_offset_us,
                now,
            );
            if !evicted.is_empty() {
                state.prune_catalog();
            }
            let members = state.members.keys().cloned().collect();
            let manual_pending = state
                .manual
                .values()
                .any(|(_, stands)| *stands == ManualState::Pending);
            Ok(Heartbeat {
                server_us: Some(self.clock.now().timestamp_micros()),
                members,
                manual_pending,
                evicted,
            })
        })
    }

    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>> {
        Box::pin(async { Ok(Some(self.clock.now().timestamp_micros())) })
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut state = self.state();
            state.members.remove(node);
            state.prune_catalog();
            Ok(())
        })
    }

    fn manual_requests(&self) -> BoxFuture<'_, Result<Vec<ManualRequest>, Error>> {
        Box::pin(async move {
            let mut pending: Vec<ManualRequest> = self
                .state()
                .manual
                .values()
                .filter(|(_, stands)| *stands == ManualState::Pending)
                .map(|(request, _)| request.clone())
                .collect();
            pending.sort_by_key(|request| request.requested_ms);
            Ok(pending)
        })
    }

    fn claim_manual<'a>(
        &'a self,
        request: &'a ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: Overlap,
    ) -> BoxFuture<'a, Result<ManualOutcome, Error>> {
        Box::pin(async move {
            let now = self.now();
            let mut state = self.state();
            let state = &mut *state;
            let key = (request.job.clone(), request.id.clone());
            let Some((stored, stands)) = state.manual.get_mut(&key) else {
                return Ok(ManualOutcome::Taken);
            };
            let job = state.jobs.entry(request.job.clone()).or_default();
            let (outcome, writes) = rules::manual::claim(
                &mut job.record,
                stored,
                stands,
                node,
                lease_ttl,
                overlap,
                now,
            );
            job.apply(writes);
            Ok(outcome)
        })
    }

    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<Registrations>, Error>> {
        Box::pin(async move {
            let now = self.now();
            let mut state = self.state();
            let state = &mut *state;
            let members = &state.members;
            Ok(jobs
                .iter()
                .map(|job| {
                    let registrations = state.catalog.entry(job.name.clone()).or_default();
                    let live = |node: &str| members.contains_key(node);
                    rules::members::register(registrations, node, job, &live, now)
                })
                .collect())
        })
    }
}
