//! The embedded coordinator: the protocol of the Redis backend, in one process's memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{
    Admin, CatalogEntry, ClaimNotice, ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator,
    FUTURE_TICK_TOLERANCE, HISTORY_LEN, Heartbeat, HistoryEntry, JobDefinition, Lease, Member,
    MissedTicks, NoticeSender, PauseState, RunRecord,
};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::job::{BoxFuture, FenceToken, Overlap};

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
    /// The clock lease expiry follows (tokio's monotonic clock unless a test gives one).
    lease_clock: Arc<dyn Clock>,
    /// Every decided tick, for the schedulers sharing this coordinator.
    notices: NoticeSender,
    /// The ticks claims recorded as missed.
    missed: tokio::sync::broadcast::Sender<super::MissedNotice>,
}

impl Default for MemoryCoordinator {
    fn default() -> Self {
        MemoryCoordinator::with_clock(Arc::new(SystemClock))
    }
}

#[derive(Debug, Default)]
struct State {
    jobs: HashMap<String, JobState>,
    /// node -> (last heartbeat ms, clock offset µs).
    members: HashMap<String, (i64, Option<i64>)>,
    /// Manual run requests, by (job, id), in their stored form.
    manual: std::collections::BTreeMap<(String, String), String>,
    /// The catalog: per job, each member's definition.
    catalog: std::collections::BTreeMap<String, std::collections::BTreeMap<String, JobDefinition>>,
}

#[derive(Debug, Default)]
struct JobState {
    high_water: Option<i64>,
    fence: u64,
    /// Run id and expiry of the job's lease (overlap forbidden).
    lease: Option<(String, Instant)>,
    /// Per-run leases of jobs that allow overlap, by fence.
    run_leases: HashMap<u64, (String, Instant)>,
    history: VecDeque<HistoryEntry>,
    /// The id of the claim that won the latest run, until that run is released.
    claim: Option<u64>,
    /// The run id of the latest run once it was released: a release sent again after its
    /// answer was lost is not recorded twice.
    released: Option<String>,
    /// The job's pause, fleet-wide (here: process-wide).
    pause: Option<PauseState>,
    /// The latest run, as the Redis hash keeps it.
    last: super::JobState,
}

impl JobState {
    fn lease_slot(&mut self, lease: &Lease) -> Option<&mut Option<(String, Instant)>> {
        match lease.overlap {
            Overlap::Skip => Some(&mut self.lease),
            Overlap::Allow => None,
        }
    }

    /// The live holder of `lease`'s slot, dropping it if expired.
    fn holds(&mut self, lease: &Lease, now: Instant) -> bool {
        let run_id = lease.run_id();
        match self.lease_slot(lease) {
            Some(slot) => {
                expire(slot, now);
                slot.as_ref().is_some_and(|(held, _)| *held == run_id)
            }
            None => {
                let fence = lease.fence.get();
                if self
                    .run_leases
                    .get(&fence)
                    .is_some_and(|(_, expires)| *expires <= now)
                {
                    self.run_leases.remove(&fence);
                }
                self.run_leases
                    .get(&fence)
                    .is_some_and(|(held, _)| *held == run_id)
            }
        }
    }

    /// Takes `lease`'s slot again if nobody holds it; whether it did.
    fn retake(&mut self, lease: &Lease, expires: Instant, now: Instant) -> bool {
        let held = (lease.run_id(), expires);
        match lease.overlap {
            Overlap::Skip => {
                expire(&mut self.lease, now);
                if self.lease.is_some() {
                    return false;
                }
                self.lease = Some(held);
            }
            Overlap::Allow => {
                self.run_leases.retain(|_, (_, at)| *at > now);
                if self.run_leases.contains_key(&lease.fence.get()) {
                    return false;
                }
                self.run_leases.insert(lease.fence.get(), held);
            }
        }
        true
    }

    fn record(&mut self, entry: HistoryEntry) {
        self.history.push_front(entry);
        self.history.truncate(HISTORY_LEN);
    }
}

/// An instant by the lease clock: UTC ms.
type Instant = i64;

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Tokio's monotonic clock as a [`Clock`] (from the wall time at its creation), so leases
/// expire on time under tokio's paused test time.
#[derive(Debug)]
struct TokioClock {
    origin: tokio::time::Instant,
    wall: chrono::DateTime<chrono::Utc>,
}

impl TokioClock {
    fn new() -> TokioClock {
        TokioClock {
            origin: tokio::time::Instant::now(),
            wall: chrono::Utc::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let elapsed = chrono::TimeDelta::from_std(self.origin.elapsed()).unwrap_or_default();
        self.wall + elapsed
    }
}

fn expire(slot: &mut Option<(String, Instant)>, now: Instant) {
    if slot.as_ref().is_some_and(|(_, expires)| *expires <= now) {
        *slot = None;
    }
}

impl MemoryCoordinator {
    /// An empty coordinator.
    pub fn new() -> MemoryCoordinator {
        MemoryCoordinator::default()
    }

    /// An empty coordinator whose wall clock (for the handoff window and member timestamps)
    /// is `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> MemoryCoordinator {
        MemoryCoordinator::with_clocks(clock, Arc::new(TokioClock::new()))
    }

    /// An empty coordinator whose wall clock is `wall` and whose leases expire by `lease`
    /// (instead of tokio's monotonic clock), for tests that drive both.
    #[doc(hidden)]
    pub fn with_clocks(wall: Arc<dyn Clock>, lease: Arc<dyn Clock>) -> MemoryCoordinator {
        MemoryCoordinator {
            state: Mutex::new(State::default()),
            clock: wall,
            lease_clock: lease,
            notices: NoticeSender::new(),
            missed: tokio::sync::broadcast::channel(super::NOTICE_BUFFER).0,
        }
    }

    /// Now by the lease clock (ms).
    fn lease_now(&self) -> Instant {
        self.lease_clock.now().timestamp_millis()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // breaks the protocol (every update is a single assignment), so keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn claim_one(
        state: &mut State,
        request: &ClaimRequest,
        now: Instant,
        wall_ms: i64,
    ) -> ClaimOutcome {
        let job = state.jobs.entry(request.job.to_string()).or_default();
        if job.high_water.is_some_and(|high| high >= request.tick_ms) {
            // As in Redis: this very claim sent again resumes its run, taking its lease again
            // if it expired meanwhile.
            if job.high_water == Some(request.tick_ms) && job.claim == Some(request.claim_id) {
                let again = Lease {
                    job: request.job.clone(),
                    tick_ms: request.tick_ms,
                    fence: FenceToken(job.fence),
                    node: request.node.clone(),
                    overlap: request.overlap,
                };
                if job.holds(&again, now)
                    || job.retake(&again, now.saturating_add(ms(request.lease_ttl)), now)
                {
                    return ClaimOutcome::Resumed(again);
                }
            }
            return ClaimOutcome::Taken;
        }
        // As in Redis: a tick in this coordinator's future is refused, recording nothing.
        let tolerance_ms = i64::try_from(FUTURE_TICK_TOLERANCE.as_millis()).unwrap_or(i64::MAX);
        if request.tick_ms > wall_ms.saturating_add(tolerance_ms) {
            return ClaimOutcome::Early { now_ms: wall_ms };
        }
        if let Some(preferred) = &request.preferred
            && *preferred != request.node
        {
            let open_at = request
                .tick_ms
                .saturating_add(i64::try_from(request.handoff.as_millis()).unwrap_or(i64::MAX));
            if wall_ms < open_at {
                return ClaimOutcome::Retry {
                    at_ms: open_at,
                    now_ms: wall_ms,
                };
            }
        }
        job.high_water = Some(request.tick_ms);
        // As in Redis: a paused job's tick is decided as paused; its pause counts it, and the
        // first one goes to history.
        if let Some(pause) = &mut job.pause {
            pause.ticks += 1;
            pause.last_tick_ms = Some(request.tick_ms);
            if pause.ticks == 1 {
                pause.first_tick_ms = Some(request.tick_ms);
                let detail = match &pause.note {
                    Some(note) => format!("paused by {}: {note}", pause.by),
                    None => format!("paused by {}", pause.by),
                };
                job.record(HistoryEntry {
                    tick_ms: request.tick_ms,
                    node: request.node.to_string(),
                    outcome: "paused".to_string(),
                    detail: Some(detail),
                    fence: None,
                    duration_ms: None,
                    delay_ms: None,
                });
            }
            return ClaimOutcome::Paused;
        }
        if request.overlap == Overlap::Skip {
            expire(&mut job.lease, now);
            if let Some((holder, _)) = &job.lease {
                let holder = holder.clone();
                job.record(HistoryEntry {
                    tick_ms: request.tick_ms,
                    node: request.node.to_string(),
                    outcome: "overlap".to_string(),
                    detail: Some(holder.clone()),
                    fence: None,
                    duration_ms: None,
                    delay_ms: None,
                });
                return ClaimOutcome::Overlap { holder };
            }
        }
        job.fence += 1;
        let lease = Lease {
            job: request.job.clone(),
            tick_ms: request.tick_ms,
            fence: FenceToken(job.fence),
            node: request.node.clone(),
            overlap: request.overlap,
        };
        job.claim = Some(request.claim_id);
        job.last.last_node = Some(request.node.to_string());
        job.last.last_fence = Some(job.fence);
        job.last.last_started_ms = Some(wall_ms);
        job.last.last_finished_ms = None;
        job.last.last_outcome = Some("running".to_string());
        job.last.last_error = None;
        let held = (lease.run_id(), now.saturating_add(ms(request.lease_ttl)));
        match request.overlap {
            Overlap::Skip => job.lease = Some(held),
            Overlap::Allow => {
                job.run_leases.retain(|_, (_, expires)| *expires > now);
                job.run_leases.insert(job.fence, held);
            }
        }
        ClaimOutcome::Run(lease)
    }
}

impl Coordinator for MemoryCoordinator {
    fn claim_notices(&self) -> Option<ClaimNotices> {
        Some(self.notices.subscribe())
    }

    fn missed_ticks(&self) -> Option<tokio::sync::broadcast::Receiver<super::MissedNotice>> {
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
            let now = self.lease_now();
            let wall_ms = self.clock.now().timestamp_millis();
            let mut state = self.state();
            let outcomes: Vec<ClaimOutcome> = requests
                .iter()
                .map(|request| {
                    let mark = state.jobs.get(&*request.job).and_then(|job| job.high_water);
                    let outcome = MemoryCoordinator::claim_one(&mut state, request, now, wall_ms);
                    // As in Redis: the claim that moved the mark over scheduled ticks nobody
                    // decided records them as missed.
                    let decided = matches!(
                        outcome,
                        ClaimOutcome::Run(_) | ClaimOutcome::Overlap { .. } | ClaimOutcome::Paused
                    );
                    if decided
                        && let (Some(mark), Some(schedule)) = (mark, &request.schedule)
                        && let Some(ticks) = MissedTicks::between(schedule, mark, request.tick_ms)
                        && let Some(job) = state.jobs.get_mut(&*request.job)
                    {
                        let _ = self.missed.send(super::MissedNotice::new(request, &ticks));
                        job.record(HistoryEntry {
                            tick_ms: ticks.last_ms,
                            node: request.node.to_string(),
                            outcome: "missed".to_string(),
                            detail: Some(ticks.detail()),
                            fence: None,
                            duration_ms: None,
                            delay_ms: None,
                        });
                    }
                    outcome
                })
                .collect();
            drop(state);
            if self.notices.has_listeners() {
                for (request, outcome) in requests.iter().zip(&outcomes) {
                    // As in Redis: only a claim others may be waiting out the handoff for.
                    if request.preferred.is_some()
                        && matches!(
                            outcome,
                            ClaimOutcome::Run(_)
                                | ClaimOutcome::Overlap { .. }
                                | ClaimOutcome::Paused
                        )
                    {
                        self.notices.send(ClaimNotice {
                            job: request.job.clone(),
                            tick_ms: request.tick_ms,
                            manual: false,
                        });
                    }
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
            let now = self.lease_now();
            let mut state = self.state();
            let Some(job) = state.jobs.get_mut(&*lease.job) else {
                return Ok(false);
            };
            if !job.holds(lease, now) {
                return Ok(false);
            }
            let expires = now.saturating_add(ms(ttl));
            match lease.overlap {
                Overlap::Skip => {
                    if let Some((_, at)) = job.lease.as_mut() {
                        *at = expires;
                    }
                }
                Overlap::Allow => {
                    if let Some((_, at)) = job.run_leases.get_mut(&lease.fence.get()) {
                        *at = expires;
                    }
                }
            }
            Ok(true)
        })
    }

    fn release<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let now = self.lease_now();
            let mut state = self.state();
            let job = state.jobs.entry(lease.job.to_string()).or_default();
            let held = job.holds(lease, now);
            let run_id = lease.run_id();
            if !held && job.released.as_deref() == Some(run_id.as_str()) {
                // This very release sent again: already done and recorded.
                return Ok(true);
            }
            if job.fence == lease.fence.get() {
                // The run is over: a late resend of its claim must not resume it.
                job.claim = None;
                job.released = Some(run_id);
                job.last.last_finished_ms = Some(self.clock.now().timestamp_millis());
                job.last.last_outcome = Some(record.outcome.as_str().to_string());
                job.last.last_error = record.outcome.error().map(str::to_string);
            }
            if held {
                match lease.overlap {
                    Overlap::Skip => job.lease = None,
                    Overlap::Allow => {
                        job.run_leases.remove(&lease.fence.get());
                    }
                }
            }
            job.record(HistoryEntry {
                tick_ms: lease.tick_ms,
                node: lease.node.to_string(),
                outcome: record.outcome.as_str().to_string(),
                detail: record.outcome.error().map(str::to_string),
                fence: Some(lease.fence.get()),
                duration_ms: Some(u64::try_from(record.duration.as_millis()).unwrap_or(u64::MAX)),
                delay_ms: Some(record.delay_ms(lease.tick_ms)),
            });
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
            let now_ms = self.clock.now().timestamp_millis();
            let stale_ms = i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
            let mut state = self.state();
            let member = state
                .members
                .entry(node.to_string())
                .or_insert((now_ms, None));
            member.0 = now_ms;
            if clock_offset_us.is_some() {
                member.1 = clock_offset_us;
            }
            let mut evicted: Vec<String> = state
                .members
                .iter()
                .filter(|(_, (at, _))| now_ms.saturating_sub(*at) > stale_ms)
                .map(|(node, _)| node.clone())
                .collect();
            evicted.sort();
            state
                .members
                .retain(|_, (at, _)| now_ms.saturating_sub(*at) <= stale_ms);
            let mut members: Vec<String> = state.members.keys().cloned().collect();
            members.sort();
            let manual_pending = state
                .manual
                .values()
                .any(|text| text.ends_with("\tpending"));
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
            self.state().members.remove(node);
            Ok(())
        })
    }

    fn manual_requests(&self) -> BoxFuture<'_, Result<Vec<super::ManualRequest>, Error>> {
        Box::pin(async move {
            let mut pending: Vec<super::ManualRequest> = self
                .state()
                .manual
                .iter()
                .filter_map(|((job, id), text)| super::ManualRequest::parse(job, id, text))
                .filter(|(_, state)| *state == super::ManualState::Pending)
                .map(|(request, _)| request)
                .collect();
            pending.sort_by_key(|request| request.requested_ms);
            Ok(pending)
        })
    }

    fn claim_manual<'a>(
        &'a self,
        request: &'a super::ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: Overlap,
    ) -> BoxFuture<'a, Result<super::ManualOutcome, Error>> {
        Box::pin(async move {
            use super::{ManualOutcome, ManualRequest, ManualState};
            let now = self.lease_now();
            let wall_ms = self.clock.now().timestamp_millis();
            let mut state = self.state();
            let key = (request.job.clone(), request.id.clone());
            let Some(text) = state.manual.get(&key).cloned() else {
                return Ok(ManualOutcome::Taken);
            };
            let Some((stored, ManualState::Pending)) = ManualRequest::parse(&key.0, &key.1, &text)
            else {
                return Ok(ManualOutcome::Taken);
            };
            let base = format!(
                "{}\t{}\t{}\t",
                stored.by,
                stored.requested_ms,
                if stored.force { "1" } else { "0" }
            );
            let own = overlap == Overlap::Allow || stored.force;
            let job = state.jobs.entry(request.job.clone()).or_default();
            if !own {
                expire(&mut job.lease, now);
                if let Some((holder, _)) = job.lease.clone() {
                    job.record(HistoryEntry {
                        tick_ms: stored.requested_ms,
                        node: node.to_string(),
                        outcome: "overlap".to_string(),
                        detail: Some(format!(
                            "manual run asked by {} skipped: {holder}",
                            stored.by
                        )),
                        fence: None,
                        duration_ms: None,
                        delay_ms: None,
                    });
                    state.manual.insert(key, format!("{base}skipped\t{holder}"));
                    return Ok(ManualOutcome::Overlap { holder });
                }
            }
            job.fence += 1;
            let lease = Lease {
                job: Arc::from(request.job.as_str()),
                tick_ms: stored.requested_ms,
                fence: FenceToken(job.fence),
                node: Arc::from(node),
                overlap: if own { Overlap::Allow } else { Overlap::Skip },
            };
            let held = (lease.run_id(), now.saturating_add(ms(lease_ttl)));
            if own {
                job.run_leases.insert(job.fence, held);
            } else {
                job.lease = Some(held);
            }
            job.last.last_node = Some(node.to_string());
            job.last.last_fence = Some(job.fence);
            job.last.last_started_ms = Some(wall_ms);
            job.last.last_finished_ms = None;
            job.last.last_outcome = Some("running".to_string());
            job.last.last_error = None;
            job.record(HistoryEntry {
                tick_ms: stored.requested_ms,
                node: node.to_string(),
                outcome: "manual".to_string(),
                detail: Some(format!("asked by {}", stored.by)),
                fence: Some(job.fence),
                duration_ms: None,
                delay_ms: None,
            });
            let fence = job.fence;
            state
                .manual
                .insert(key, format!("{base}started\t{node}\t{fence}"));
            Ok(ManualOutcome::Run(lease))
        })
    }

    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<super::Registrations>, Error>> {
        Box::pin(async move {
            let mut state = self.state();
            Ok(jobs
                .iter()
                .map(|job| {
                    let entry = state.catalog.entry(job.name.clone()).or_default();
                    entry.insert(node.to_string(), job.clone());
                    entry
                        .iter()
                        .map(|(node, def)| (node.clone(), def.clone()))
                        .collect()
                })
                .collect())
        })
    }
}

impl Admin for MemoryCoordinator {
    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>, Error>> {
        Box::pin(async move {
            let mut members: Vec<Member> = self
                .state()
                .members
                .iter()
                .map(|(node, (at, offset))| Member {
                    node: node.clone(),
                    heartbeat_ms: *at,
                    clock_offset_us: *offset,
                })
                .collect();
            members.sort_by(|a, b| (a.heartbeat_ms, &a.node).cmp(&(b.heartbeat_ms, &b.node)));
            Ok(members)
        })
    }

    fn history<'a>(
        &'a self,
        job: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<HistoryEntry>, Error>> {
        Box::pin(async move {
            Ok(self
                .state()
                .jobs
                .get(job)
                .map(|job| job.history.iter().take(limit).cloned().collect())
                .unwrap_or_default())
        })
    }

    fn catalog(&self) -> BoxFuture<'_, Result<Vec<CatalogEntry>, Error>> {
        Box::pin(async move {
            let now = self.lease_now();
            let mut state = self.state();
            let names: Vec<String> = state.catalog.keys().cloned().collect();
            Ok(names
                .into_iter()
                .map(|name| {
                    let registrations = state
                        .catalog
                        .get(&name)
                        .map(|defs| {
                            defs.iter()
                                .map(|(node, def)| (node.clone(), def.clone()))
                                .collect()
                        })
                        .unwrap_or_default();
                    let mut recorded = super::JobState::default();
                    if let Some(job) = state.jobs.get_mut(&name) {
                        expire(&mut job.lease, now);
                        recorded = job.last.clone();
                        recorded.high_water_ms = job.high_water;
                        recorded.running = job.lease.as_ref().map(|(id, _)| id.clone());
                        recorded.pause = job.pause.clone();
                        // As in Redis: the run in progress names its tick.
                        recorded.last_tick_ms = recorded
                            .running
                            .as_deref()
                            .and_then(Lease::parse_run_id)
                            .map(|(_, _, tick)| tick);
                    }
                    CatalogEntry {
                        name,
                        registrations,
                        state: recorded,
                    }
                })
                .collect())
        })
    }

    fn remove<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut state = self.state();
            state.catalog.remove(job);
            state.jobs.remove(job);
            state.manual.retain(|(name, _), _| name != job);
            Ok(())
        })
    }

    fn request_manual<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<super::ManualRequest, Error>> {
        Box::pin(async move {
            let request = super::ManualRequest {
                job: job.to_string(),
                id: format!("{:016x}", super::new_claim_id()),
                by: by.replace(['\t', '\n'], " "),
                requested_ms: self.clock.now().timestamp_millis(),
                force,
            };
            self.state()
                .manual
                .insert((job.to_string(), request.id.clone()), request.record());
            self.notices.send(ClaimNotice {
                job: Arc::from(job),
                tick_ms: request.requested_ms,
                manual: true,
            });
            Ok(request)
        })
    }

    fn manual_state<'a>(
        &'a self,
        job: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<super::ManualState>, Error>> {
        Box::pin(async move {
            Ok(self
                .state()
                .manual
                .get(&(job.to_string(), id.to_string()))
                .and_then(|text| super::ManualRequest::parse(job, id, text))
                .map(|(_, state)| state))
        })
    }

    fn pause<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        note: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let since_ms = self.clock.now().timestamp_millis();
            let mut state = self.state();
            let job = state.jobs.entry(job.to_string()).or_default();
            let kept = job.pause.take();
            job.pause = Some(PauseState {
                by: by.to_string(),
                note: note.filter(|note| !note.is_empty()).map(str::to_string),
                since_ms,
                ticks: kept.as_ref().map_or(0, |pause| pause.ticks),
                first_tick_ms: kept.as_ref().and_then(|pause| pause.first_tick_ms),
                last_tick_ms: kept.as_ref().and_then(|pause| pause.last_tick_ms),
            });
            Ok(())
        })
    }

    fn resume<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
    ) -> BoxFuture<'a, Result<Option<PauseState>, Error>> {
        Box::pin(async move {
            let mut state = self.state();
            let Some(job) = state.jobs.get_mut(job) else {
                return Ok(None);
            };
            let Some(pause) = job.pause.take() else {
                return Ok(None);
            };
            if let (Some(first), Some(last)) = (pause.first_tick_ms, pause.last_tick_ms) {
                job.record(HistoryEntry {
                    tick_ms: last,
                    node: by.to_string(),
                    outcome: "resumed".to_string(),
                    detail: Some(format!(
                        "{} ticks paused, {first} to {last} (ms); paused by {}, resumed by {by}",
                        pause.ticks, pause.by
                    )),
                    fence: None,
                    duration_ms: None,
                    delay_ms: None,
                });
            }
            Ok(Some(pause))
        })
    }

    fn pause_state<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Option<PauseState>, Error>> {
        Box::pin(async move { Ok(self.state().jobs.get(job).and_then(|job| job.pause.clone())) })
    }
}
