//! The scheduler's logic on the memory coordinator, in tokio's paused time: deterministic,
//! and a minute of schedule takes milliseconds.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::coordinator::{Admin, Call, Coordinator, MemoryCoordinator, Observed, Observer};
use crate::{Job, JobContext, Overlap, Scheduler};

/// Wall time that advances with tokio's (paused) clock, from a fixed start.
#[derive(Debug)]
struct PausedClock {
    wall: DateTime<Utc>,
    base: Instant,
}

impl PausedClock {
    fn starting_at(wall: DateTime<Utc>) -> Arc<PausedClock> {
        Arc::new(PausedClock {
            wall,
            base: Instant::now(),
        })
    }
}

impl Clock for PausedClock {
    fn now(&self) -> DateTime<Utc> {
        self.wall + self.base.elapsed()
    }
}

fn start() -> DateTime<Utc> {
    // Half a second past a whole second, so every-second ticks are never "now".
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0)
        .single()
        .map(|t| t + Duration::from_millis(500))
        .unwrap_or_else(|| panic!("fixed start instant"))
}

fn scheduler_with(
    jobs: Vec<Job>,
    coordinator: Arc<dyn Coordinator>,
    clock: Arc<PausedClock>,
    node: &str,
) -> Scheduler {
    let mut builder = Scheduler::builder()
        .coordinator(coordinator)
        .registered_jobs(false)
        .node_id(node)
        .clock(clock);
    for job in jobs {
        builder = builder.job(job);
    }
    builder
        .build()
        .unwrap_or_else(|err| panic!("scheduler: {err}"))
}

/// A job every second that records the ticks it ran for.
fn recording_job(name: &str, schedule: &str, seen: Arc<Mutex<Vec<DateTime<Utc>>>>) -> Job {
    Job::new(name, schedule, move |ctx: JobContext| {
        let seen = seen.clone();
        async move {
            if let Ok(mut seen) = seen.lock() {
                seen.push(ctx.tick());
            }
        }
    })
    .unwrap_or_else(|err| panic!("job: {err}"))
}

#[tokio::test(start_paused = true)]
async fn runs_each_tick_once_in_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let clock = PausedClock::starting_at(start());
    let scheduler = scheduler_with(
        vec![recording_job("every-second", "* * * * * *", seen.clone())],
        Arc::new(MemoryCoordinator::with_clock(clock.clone())),
        clock,
        "node-a",
    );
    scheduler
        .run_until(tokio::time::sleep(Duration::from_secs(10)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    // The tick half a second before the start is within grace, so it runs too.
    let expected: Vec<DateTime<Utc>> = (0..=10)
        .map(|s| start() - Duration::from_millis(500) + Duration::from_secs(s))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test(start_paused = true)]
async fn two_schedulers_on_one_coordinator_run_each_tick_once() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let coordinator: Arc<dyn Coordinator> = Arc::new(MemoryCoordinator::with_clock(
        PausedClock::starting_at(start()),
    ));
    let a = scheduler_with(
        vec![recording_job("shared", "* * * * * *", seen.clone())],
        coordinator.clone(),
        PausedClock::starting_at(start()),
        "node-a",
    );
    // The second process's clock runs 300 ms ahead: it tries first, but the same ticks.
    let b = scheduler_with(
        vec![recording_job("shared", "* * * * * *", seen.clone())],
        coordinator,
        PausedClock::starting_at(start() + Duration::from_millis(300)),
        "node-b",
    );
    let stop = Duration::from_secs(20);
    let (ra, rb) = tokio::join!(
        a.run_until(tokio::time::sleep(stop)),
        b.run_until(tokio::time::sleep(stop))
    );
    assert!(ra.is_ok() && rb.is_ok());
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let total = seen.len();
    // A set: a tick run twice is caught wherever its two runs are in the list.
    let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), total, "a tick ran twice");
    assert!(total >= 20, "only {total} ticks ran in 20 s");
}

#[tokio::test(start_paused = true)]
async fn a_tick_within_grace_runs_on_start_and_older_ones_are_missed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    // Started 30 s after a whole minute: the minute's tick is within the default 60 s grace.
    let begin = Utc
        .with_ymd_and_hms(2026, 11, 28, 10, 1, 30)
        .single()
        .unwrap_or_else(|| panic!("instant"));
    let scheduler = scheduler_with(
        vec![recording_job("minutely", "* * * * *", seen.clone())],
        Arc::new(MemoryCoordinator::with_clock(PausedClock::starting_at(
            begin,
        ))),
        PausedClock::starting_at(begin),
        "node-a",
    );
    scheduler
        .run_until(tokio::time::sleep(Duration::from_secs(40)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let minute = |m| {
        Utc.with_ymd_and_hms(2026, 11, 28, 10, m, 0)
            .single()
            .unwrap_or_else(|| panic!("instant"))
    };
    assert_eq!(seen, [minute(1), minute(2)]);
}

#[tokio::test(start_paused = true)]
async fn a_tick_later_than_grace_is_not_run() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let begin = Utc
        .with_ymd_and_hms(2026, 11, 28, 10, 1, 30)
        .single()
        .unwrap_or_else(|| panic!("instant"));
    let job = recording_job("minutely", "* * * * *", seen.clone()).grace(Duration::from_secs(10));
    let scheduler = scheduler_with(
        vec![job],
        Arc::new(MemoryCoordinator::with_clock(PausedClock::starting_at(
            begin,
        ))),
        PausedClock::starting_at(begin),
        "node-a",
    );
    scheduler
        .run_until(tokio::time::sleep(Duration::from_secs(40)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(seen.len(), 1, "only 10:02 runs: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn overlap_skip_skips_ticks_while_the_previous_run_lasts() {
    let started = Arc::new(AtomicU32::new(0));
    let counter = started.clone();
    let job = Job::new("slow", "* * * * * *", move |_ctx| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2300)).await;
        }
    })
    .unwrap_or_else(|err| panic!("job: {err}"));
    let coordinator = Arc::new(MemoryCoordinator::with_clock(PausedClock::starting_at(
        start(),
    )));
    let scheduler = scheduler_with(
        vec![job],
        coordinator.clone(),
        PausedClock::starting_at(start()),
        "node-a",
    );
    scheduler
        .run_until(tokio::time::sleep(Duration::from_millis(9_000)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    // Ticks 0 s (run on start, half a second late), 3 s, 6 s and 9 s start runs of 2.3 s;
    // the two ticks inside each run are skipped as overlaps.
    assert_eq!(started.load(Ordering::SeqCst), 4);
    let history = coordinator
        .history("slow", 100)
        .await
        .unwrap_or_else(|err| panic!("history: {err}"));
    let overlaps = history.iter().filter(|e| e.outcome == "overlap").count();
    assert_eq!(overlaps, 6, "{history:?}");
}

#[tokio::test(start_paused = true)]
async fn overlap_allow_runs_every_tick() {
    let started = Arc::new(AtomicU32::new(0));
    let counter = started.clone();
    let job = Job::new("slow", "* * * * * *", move |_ctx| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2500)).await;
        }
    })
    .unwrap_or_else(|err| panic!("job: {err}"))
    .overlap(Overlap::Allow);
    let scheduler = scheduler_with(
        vec![job],
        Arc::new(MemoryCoordinator::with_clock(PausedClock::starting_at(
            start(),
        ))),
        PausedClock::starting_at(start()),
        "node-a",
    );
    scheduler
        .run_until(tokio::time::sleep(Duration::from_millis(9_000)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    assert_eq!(started.load(Ordering::SeqCst), 10);
}

#[tokio::test(start_paused = true)]
async fn outcomes_of_errors_panics_and_timeouts_are_recorded_and_the_scheduler_goes_on() {
    let coordinator = Arc::new(MemoryCoordinator::with_clock(PausedClock::starting_at(
        start(),
    )));
    let failing = Job::new("failing", "* * * * * *", |_| async {
        Err::<(), _>("disk full")
    })
    .unwrap_or_else(|err| panic!("job: {err}"));
    let panicking = Job::new("panicking", "* * * * * *", |_| async {
        if true {
            panic!("boom");
        }
    })
    .unwrap_or_else(|err| panic!("job: {err}"));
    let slow = Job::new("slow", "*/5 * * * * *", |_| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .unwrap_or_else(|err| panic!("job: {err}"))
    .timeout(Duration::from_secs(2));
    let scheduler = scheduler_with(
        vec![failing, panicking, slow],
        coordinator.clone(),
        PausedClock::starting_at(start()),
        "node-a",
    );
    scheduler
        .run_until(tokio::time::sleep(Duration::from_millis(8_000)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    let history = |job: &'static str| {
        let coordinator = coordinator.clone();
        async move {
            coordinator
                .history(job, 100)
                .await
                .unwrap_or_else(|err| panic!("history: {err}"))
        }
    };
    let failing = history("failing").await;
    assert_eq!(failing.len(), 9);
    assert!(
        failing
            .iter()
            .all(|e| e.outcome == "failed" && e.detail.as_deref() == Some("disk full"))
    );
    let panicking = history("panicking").await;
    assert_eq!(panicking.len(), 9);
    assert!(
        panicking
            .iter()
            .all(|e| e.outcome == "panicked" && e.detail.as_deref() == Some("boom"))
    );
    let slow = history("slow").await;
    assert!(!slow.is_empty());
    assert!(
        slow.iter()
            .all(|e| e.outcome == "timed out" && e.duration_ms == Some(2000)),
        "{slow:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_running_jobs_then_cancels_them() {
    let coordinator = Arc::new(MemoryCoordinator::with_clock(PausedClock::starting_at(
        start(),
    )));
    let observed_cancel = Arc::new(AtomicU32::new(0));
    let flag = observed_cancel.clone();
    let quick = Job::new("quick-to-stop", "* * * * * *", move |ctx: JobContext| {
        let flag = flag.clone();
        async move {
            ctx.cancelled().await;
            flag.fetch_add(1, Ordering::SeqCst);
        }
    })
    .unwrap_or_else(|err| panic!("job: {err}"));
    let stubborn = Job::new("stubborn", "* * * * * *", |_| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    })
    .unwrap_or_else(|err| panic!("job: {err}"));
    let scheduler = Scheduler::builder()
        .coordinator(coordinator.clone())
        .registered_jobs(false)
        .node_id("node-a")
        .clock(PausedClock::starting_at(start()))
        .shutdown_timeout(Duration::from_secs(5))
        .job(quick)
        .job(stubborn)
        .build()
        .unwrap_or_else(|err| panic!("scheduler: {err}"));
    let began = Instant::now();
    scheduler
        .run_until(tokio::time::sleep(Duration::from_millis(1_200)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    // The stubborn job held shutdown for the whole timeout, then was cancelled.
    assert_eq!(began.elapsed(), Duration::from_millis(6_200));
    assert_eq!(observed_cancel.load(Ordering::SeqCst), 1);
    let runs = |job: &'static str| {
        let coordinator = coordinator.clone();
        async move {
            let history = coordinator
                .history(job, 10)
                .await
                .unwrap_or_else(|err| panic!("history: {err}"));
            history
                .into_iter()
                .filter(|entry| entry.outcome != "overlap")
                .map(|entry| entry.outcome)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(runs("stubborn").await, ["cancelled"]);
    assert_eq!(runs("quick-to-stop").await, ["succeeded"]);
    // Leases were released: a claim of a later tick (one already due) runs, not an overlap.
    let later = crate::coordinator::ClaimRequest {
        job: Arc::from("stubborn"),
        tick_ms: (start() + Duration::from_millis(5_500)).timestamp_millis(),
        node: Arc::from("node-b"),
        lease_ttl: Duration::from_secs(1),
        overlap: Overlap::Skip,
        preferred: None,
        handoff: Duration::ZERO,
        claim_id: crate::coordinator::new_claim_id(),
        schedule: None,
    };
    let outcome = coordinator
        .claim(std::slice::from_ref(&later))
        .await
        .unwrap_or_else(|err| panic!("claim: {err}"));
    assert!(
        matches!(
            outcome.as_slice(),
            [crate::coordinator::ClaimOutcome::Run(_)]
        ),
        "{outcome:?}"
    );
    let members = coordinator.members().await.unwrap_or_default();
    assert!(members.is_empty(), "node left the members set: {members:?}");
}

#[tokio::test(start_paused = true)]
async fn a_long_job_keeps_its_lease_alive() {
    let coordinator = Arc::new(MemoryCoordinator::with_clock(PausedClock::starting_at(
        start(),
    )));
    let job = Job::new("long", "*/20 * * * * *", |_| async {
        tokio::time::sleep(Duration::from_secs(9)).await;
    })
    .unwrap_or_else(|err| panic!("job: {err}"));
    let scheduler = Scheduler::builder()
        .coordinator(coordinator.clone())
        .registered_jobs(false)
        .node_id("node-a")
        .clock(PausedClock::starting_at(start()))
        .lease_ttl(Duration::from_secs(3))
        .job(job)
        .build()
        .unwrap_or_else(|err| panic!("scheduler: {err}"));
    scheduler
        .run_until(tokio::time::sleep(Duration::from_secs(25)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    let history = coordinator
        .history("long", 10)
        .await
        .unwrap_or_else(|err| panic!("history: {err}"));
    assert!(!history.is_empty());
    assert!(
        history.iter().all(|e| e.outcome == "succeeded"),
        "{history:?}"
    );
}

#[test]
fn duplicate_names_are_refused_naming_both_places() {
    let a = Job::new("report", "* * * * *", |_| async {});
    let b = Job::new("report", "*/5 * * * *", |_| async {});
    let (Ok(a), Ok(b)) = (a, b) else {
        panic!("jobs");
    };
    let err = Scheduler::builder()
        .url("memory://")
        .registered_jobs(false)
        .job(a)
        .job(b)
        .build()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.starts_with("job `report` is defined twice: "), "{err}");
    assert_eq!(err.matches("scheduler/tests/mod.rs:").count(), 2, "{err}");
}

#[test]
fn default_lease_ttl_is_the_interval_clamped_to_one_to_thirty_seconds() {
    let tick = start() - Duration::from_millis(500);
    // As the driver computes it: from the job's tick after `tick`.
    let ttl = |schedule: &str, fixed: Option<Duration>| {
        let job = Job::new("j", schedule, |_| async {}).unwrap_or_else(|err| panic!("job: {err}"));
        super::driver::lease_ttl_until(tick, job.schedule().next_after(tick), fixed)
    };
    assert_eq!(ttl("*/5 * * * * *", None), Duration::from_secs(5));
    assert_eq!(ttl("* * * * * *", None), Duration::from_secs(1));
    assert_eq!(ttl("@hourly", None), Duration::from_secs(30));
    assert_eq!(
        ttl("@hourly", Some(Duration::from_secs(7))),
        Duration::from_secs(7)
    );
}

/// Records the tick of every claim request that reaches the coordinator.
#[derive(Debug, Default)]
struct ClaimedTicks(Mutex<Vec<i64>>);

impl Observer for ClaimedTicks {
    fn observe(&self, call: Call<'_>) {
        if let Call::Claim(requests) = call
            && let Ok(mut ticks) = self.0.lock()
        {
            ticks.extend(requests.iter().map(|request| request.tick_ms));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn members_waiting_out_the_handoff_do_not_claim_ticks_they_heard_were_claimed() {
    const JOBS: usize = 4;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let claimed = Arc::new(ClaimedTicks::default());
    let coordinator: Arc<dyn Coordinator> = Arc::new(Observed::new(
        Arc::new(MemoryCoordinator::with_clock(PausedClock::starting_at(
            start(),
        ))),
        claimed.clone(),
    ));
    let node = |name: &str| {
        let jobs = (0..JOBS)
            .map(|i| recording_job(&format!("job-{i}"), "* * * * * *", seen.clone()))
            .collect();
        scheduler_with(
            jobs,
            coordinator.clone(),
            PausedClock::starting_at(start()),
            name,
        )
    };
    let (a, b) = (node("node-a"), node("node-b"));
    let stop = Duration::from_secs(20);
    let (ra, rb) = tokio::join!(
        a.run_until(tokio::time::sleep(stop)),
        b.run_until(tokio::time::sleep(stop))
    );
    assert!(ra.is_ok() && rb.is_ok());
    // From the fifth second on both know each other (heartbeats every 2 s): each tick of each
    // job is claimed once, by its preferred member, and the other member sends nothing.
    let settled = (start() + Duration::from_secs(5)).timestamp_millis();
    let claims = claimed.0.lock().map(|c| c.clone()).unwrap_or_default();
    let late_claims = claims.iter().filter(|tick| **tick >= settled).count();
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let late_runs = seen
        .iter()
        .filter(|tick| tick.timestamp_millis() >= settled)
        .count();
    assert!(
        late_runs >= JOBS * 14,
        "only {late_runs} runs after the fifth second"
    );
    assert_eq!(
        late_claims, late_runs,
        "claims sent for ticks already decided elsewhere"
    );
}

mod clock_steps;
mod events;

/// The memory coordinator behind a connection that loses the answer to the first claim of
/// a tick at or after `from_ms`: the claim reaches the store and is decided there, but the
/// scheduler gets an error, as after a cut connection.
#[derive(Debug)]
struct LosesOneAnswer {
    inner: MemoryCoordinator,
    from_ms: i64,
    lost: std::sync::atomic::AtomicBool,
}

impl Coordinator for LosesOneAnswer {
    fn claim<'a>(
        &'a self,
        requests: &'a [crate::coordinator::ClaimRequest],
    ) -> crate::BoxFuture<'a, Result<Vec<crate::coordinator::ClaimOutcome>, crate::Error>> {
        Box::pin(async move {
            let answer = self.inner.claim(requests).await;
            if requests.iter().any(|r| r.tick_ms >= self.from_ms)
                && !self.lost.swap(true, Ordering::SeqCst)
            {
                return Err(crate::Error::Coordinator(crate::CoordinatorError::new(
                    "memory",
                    "claim",
                    crate::ErrorKind::Unavailable,
                    "connection reset (injected after the claim was decided)",
                )));
            }
            answer
        })
    }
    fn keep_alive<'a>(
        &'a self,
        lease: &'a crate::coordinator::Lease,
        ttl: Duration,
    ) -> crate::BoxFuture<'a, Result<bool, crate::Error>> {
        self.inner.keep_alive(lease, ttl)
    }
    fn release<'a>(
        &'a self,
        lease: &'a crate::coordinator::Lease,
        record: &'a crate::coordinator::RunRecord,
    ) -> crate::BoxFuture<'a, Result<bool, crate::Error>> {
        self.inner.release(lease, record)
    }
    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        stale_after: Duration,
        clock_offset_us: Option<i64>,
    ) -> crate::BoxFuture<'a, Result<crate::coordinator::Heartbeat, crate::Error>> {
        self.inner.heartbeat(node, stale_after, clock_offset_us)
    }
    fn server_time(&self) -> crate::BoxFuture<'_, Result<Option<i64>, crate::Error>> {
        self.inner.server_time()
    }
    fn leave<'a>(&'a self, node: &'a str) -> crate::BoxFuture<'a, Result<(), crate::Error>> {
        self.inner.leave(node)
    }
    fn manual_requests(
        &self,
    ) -> crate::BoxFuture<'_, Result<Vec<crate::coordinator::ManualRequest>, crate::Error>> {
        self.inner.manual_requests()
    }
    fn claim_manual<'a>(
        &'a self,
        request: &'a crate::coordinator::ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: Overlap,
    ) -> crate::BoxFuture<'a, Result<crate::coordinator::ManualOutcome, crate::Error>> {
        self.inner.claim_manual(request, node, lease_ttl, overlap)
    }
    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [crate::coordinator::JobDefinition],
    ) -> crate::BoxFuture<'a, Result<Vec<crate::coordinator::Registrations>, crate::Error>> {
        self.inner.register(node, jobs)
    }
    fn release_all<'a>(
        &'a self,
        runs: &'a [(crate::coordinator::Lease, crate::coordinator::RunRecord)],
    ) -> crate::BoxFuture<'a, Vec<Result<bool, crate::Error>>> {
        self.inner.release_all(runs)
    }
    fn claim_notices(&self) -> Option<crate::coordinator::ClaimNotices> {
        self.inner.claim_notices()
    }
    fn missed_ticks(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<crate::coordinator::MissedNotice>> {
        self.inner.missed_ticks()
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

#[tokio::test(start_paused = true)]
async fn a_lost_claim_answer_costs_no_tick_and_no_second_run() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let lossy = Arc::new(LosesOneAnswer {
        inner: MemoryCoordinator::with_clock(PausedClock::starting_at(start())),
        from_ms: (start() + Duration::from_millis(2_500)).timestamp_millis(),
        lost: std::sync::atomic::AtomicBool::new(false),
    });
    let scheduler = scheduler_with(
        vec![recording_job("lossy", "* * * * * *", seen.clone())],
        lossy.clone(),
        PausedClock::starting_at(start()),
        "node-a",
    );
    scheduler
        .run_until(tokio::time::sleep(Duration::from_secs(6)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    assert!(lossy.lost.load(Ordering::SeqCst), "no answer was lost");
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let expected: Vec<DateTime<Utc>> = (0..=6)
        .map(|s| start() - Duration::from_millis(500) + Duration::from_secs(s))
        .collect();
    assert_eq!(
        seen, expected,
        "every tick once, the one whose answer was lost included"
    );
    // And one fence per run: the resent claim reused the first one's.
    let fences: Vec<u64> = lossy
        .inner
        .history("lossy", 100)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| entry.fence)
        .collect();
    let mut sorted = fences.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=7).collect::<Vec<u64>>(), "{fences:?}");
}

/// A job whose schedule has no tick left (it cannot happen through a clock change; here the
/// clock is put at the end of the year 5000, where schedules end) is an error naming it, said
/// once, and the scheduler goes on with the other jobs.
#[tokio::test(start_paused = true)]
async fn a_job_left_without_a_next_tick_is_an_error_naming_it_said_once() {
    let written = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = written.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || LogSink(sink.clone()))
        .with_ansi(false)
        .with_max_level(tracing::Level::ERROR)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let at = Utc
        .with_ymd_and_hms(5000, 12, 31, 23, 59, 50)
        .single()
        .unwrap_or_else(|| panic!("fixed start instant"));
    let clock = PausedClock::starting_at(at);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let scheduler = scheduler_with(
        vec![
            recording_job("new-year", "0 0 1 1 *", Arc::new(Mutex::new(Vec::new()))),
            recording_job("every-second", "* * * * * *", seen.clone()),
        ],
        Arc::new(MemoryCoordinator::with_clock(clock.clone())),
        clock,
        "node-a",
    );
    scheduler
        .run_until(tokio::time::sleep(Duration::from_secs(5)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    let text = String::from_utf8_lossy(&written.lock().map(|w| w.clone()).unwrap_or_default())
        .into_owned();
    assert_eq!(
        text.matches("the schedule has no tick after this").count(),
        1,
        "{text}"
    );
    assert!(text.contains("job=\"new-year\""), "{text}");
    assert!(
        seen.lock().map(|s| s.len()).unwrap_or(0) >= 4,
        "the other job went on"
    );
}

/// Where the test's log lines go.
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut written) = self.0.lock() {
            written.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
