//! Every event reaches the listeners, in paused time on the memory coordinator; a panicking
//! listener stops nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{PausedClock, recording_job, scheduler_with, start};
use crate::coordinator::{
    Admin, ClaimOutcome, ClaimRequest, Coordinator, Heartbeat, Lease, MemoryCoordinator,
    MissedNotice, RunRecord,
};
use crate::events::{Event, Skip};
use crate::{BoxFuture, Error, Job, JobContext, Overlap, Scheduler};

/// What a listener saw, one line per event, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn listener(&self) -> impl Fn(&Event<'_>) + Send + Sync + 'static {
        let lines = self.0.clone();
        move |event: &Event<'_>| {
            if let Ok(mut lines) = lines.lock() {
                lines.push(line(event));
            }
        }
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn count(&self, prefix: &str) -> usize {
        self.lines()
            .iter()
            .filter(|line| line.starts_with(prefix))
            .count()
    }
}

/// An event as a line (round trips and heartbeats by kind only: they are many).
fn line(event: &Event<'_>) -> String {
    let tick = |t: &chrono::DateTime<chrono::Utc>| t.format("%S").to_string();
    match event {
        Event::Claimed {
            job,
            tick: t,
            fence,
            manual,
            ..
        } => format!("claimed {job} {} fence {fence} manual {manual}", tick(t)),
        Event::Started {
            job,
            tick: t,
            delay,
            ..
        } => format!(
            "started {job} {} delay<1s {}",
            tick(t),
            *delay < Duration::from_secs(1)
        ),
        Event::Finished {
            job,
            tick: t,
            outcome,
            duration,
            ..
        } => format!(
            "finished {job} {} {} {}ms",
            tick(t),
            outcome,
            duration.as_millis()
        ),
        Event::Skipped {
            job,
            tick: t,
            reason,
        } => match reason {
            Skip::Overlap { holder } => format!("skipped {job} {} overlap {holder}", tick(t)),
            Skip::Paused => format!("skipped {job} {} paused", tick(t)),
        },
        Event::Taken { job, tick: t } => format!("taken {job} {}", tick(t)),
        Event::Missed {
            job,
            count,
            first,
            last,
        } => format!("missed {job} {count} {} to {}", tick(first), tick(last)),
        Event::LeaseLost { job, tick: t, .. } => format!("lease lost {job} {}", tick(t)),
        Event::CoordinatorUnavailable { operation, error } => {
            format!("unavailable {operation}: {error}")
        }
        Event::CoordinatorBack { skipped_ticks } => format!("back after {skipped_ticks}"),
        Event::MemberJoined { node } => format!("joined {node}"),
        Event::MemberLeft { node } => format!("left {node}"),
        Event::ClockStep { step_ms, .. } => format!("clock step {step_ms}"),
        Event::Heartbeat { members, .. } => format!("heartbeat {members}"),
        Event::NextTick { job, tick: t } => format!("next {job} {}", tick(t)),
        Event::RoundTrip { operation, ok, .. } => format!("round trip {operation} {ok}"),
    }
}

fn failing_job(name: &str) -> Job {
    Job::new(name, "* * * * * *", |_ctx: JobContext| async {
        Err::<(), _>("disk full: <b>")
    })
    .unwrap_or_else(|err| panic!("job: {err}"))
}

#[tokio::test(start_paused = true)]
async fn runs_ticks_members_and_round_trips_are_told() {
    let clock = PausedClock::starting_at(start());
    let coordinator = Arc::new(MemoryCoordinator::with_clock(clock.clone()));
    let (a_seen, b_seen) = (Seen::default(), Seen::default());
    let job = |name| recording_job(name, "* * * * * *", Arc::default());
    let build = |node: &str, seen: &Seen| {
        Scheduler::builder()
            .coordinator(coordinator.clone())
            .registered_jobs(false)
            .node_id(node)
            .clock(clock.clone())
            // No handoff: both claim every tick at once, so one hears it was taken.
            .handoff(Duration::ZERO)
            .on_event(seen.listener())
            .job(job("ok"))
            .job(failing_job("fails"))
            .build()
            .unwrap_or_else(|err| panic!("scheduler: {err}"))
    };
    let a = build("node-a", &a_seen);
    let b = build("node-b", &b_seen);
    let b_stop = b.handle();
    let b_run = tokio::spawn(b.run_until(tokio::time::sleep(Duration::from_millis(4_200))));
    a.run_until(tokio::time::sleep(Duration::from_millis(12_200)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    b_stop.stop();
    let _ = b_run.await;

    let (a_lines, b_lines) = (a_seen.lines(), b_seen.lines());
    let all: Vec<&String> = a_lines.iter().chain(&b_lines).collect();
    // Each tick of each job: claimed, started and finished once across both, and the
    // other member heard it was taken (while both ran).
    for tick in ["01", "02", "03"] {
        for job in ["ok", "fails"] {
            let claimed = format!("claimed {job} {tick} ");
            assert_eq!(
                all.iter().filter(|l| l.starts_with(&claimed)).count(),
                1,
                "{claimed}: {all:#?}"
            );
            let started = format!("started {job} {tick} delay<1s true");
            assert_eq!(
                all.iter().filter(|l| ***l == started).count(),
                1,
                "{all:#?}"
            );
        }
        let failed = format!("finished fails {tick} failed: disk full: <b> ");
        assert_eq!(
            all.iter().filter(|l| l.starts_with(&failed)).count(),
            1,
            "the error text, verbatim: {all:#?}"
        );
        let succeeded = format!("finished ok {tick} succeeded ");
        assert_eq!(all.iter().filter(|l| l.starts_with(&succeeded)).count(), 1);
    }
    assert!(
        a_seen.count("taken ") + b_seen.count("taken ") >= 4,
        "{all:#?}"
    );
    assert!(
        a_lines.contains(&"joined node-b".to_string()),
        "{a_lines:#?}"
    );
    assert!(a_lines.contains(&"left node-b".to_string()), "{a_lines:#?}");
    assert!(a_lines.contains(&"next ok 01".to_string()), "{a_lines:#?}");
    assert!(
        a_lines.contains(&"next fails 12".to_string()),
        "{a_lines:#?}"
    );
    assert!(a_seen.count("heartbeat ") >= 5, "{a_lines:#?}");
    for operation in ["claim", "release", "heartbeat", "server_time", "register"] {
        assert!(
            a_seen.count(&format!("round trip {operation} true")) >= 1,
            "{operation}: {a_lines:#?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn overlaps_and_paused_ticks_are_told_as_skipped() {
    let clock = PausedClock::starting_at(start());
    let coordinator = Arc::new(MemoryCoordinator::with_clock(clock.clone()));
    let seen = Seen::default();
    let slow = Job::new("slow", "* * * * * *", |_ctx: JobContext| async {
        tokio::time::sleep(Duration::from_millis(2_500)).await;
    })
    .map(|job| job.overlap(Overlap::Skip))
    .unwrap_or_else(|err| panic!("job: {err}"));
    let scheduler = Scheduler::builder()
        .coordinator(coordinator.clone())
        .registered_jobs(false)
        .node_id("node-a")
        .clock(clock.clone())
        .on_event(seen.listener())
        .job(slow)
        .job(recording_job("held", "* * * * * *", Arc::default()))
        .build()
        .unwrap_or_else(|err| panic!("scheduler: {err}"));
    let steer = async {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        coordinator
            .pause("held", "ops", Some("INC-1"))
            .await
            .unwrap_or_else(|err| panic!("pause: {err}"));
        tokio::time::sleep(Duration::from_millis(3_000)).await;
    };
    scheduler
        .run_until(steer)
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    let lines = seen.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("skipped slow 02 overlap node-a:")),
        "{lines:#?}"
    );
    assert_eq!(seen.count("skipped held "), 3, "{lines:#?}");
    assert!(lines.contains(&"skipped held 02 paused".to_string()));
}

#[tokio::test(start_paused = true)]
async fn ticks_skipped_while_the_fleet_was_down_are_told_as_missed_by_the_claimer() {
    let clock = PausedClock::starting_at(start());
    let coordinator = Arc::new(MemoryCoordinator::with_clock(clock.clone()));
    let first = scheduler_with(
        vec![recording_job("gap", "* * * * * *", Arc::default())],
        coordinator.clone(),
        clock.clone(),
        "node-a",
    );
    first
        .run_until(tokio::time::sleep(Duration::from_millis(2_000)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    // The fleet is down from 02.5 to 07.5: ticks 03 to 06 nobody runs; 07 is within grace.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let seen = Seen::default();
    let other = Seen::default();
    let second = Scheduler::builder()
        .coordinator(coordinator.clone())
        .registered_jobs(false)
        .node_id("node-b")
        .clock(clock.clone())
        .on_event(seen.listener())
        .job(recording_job("gap", "* * * * * *", Arc::default()))
        .build()
        .unwrap_or_else(|err| panic!("scheduler: {err}"));
    // A member that claims nothing hears nothing of it.
    let bystander = Scheduler::builder()
        .coordinator(coordinator.clone())
        .registered_jobs(false)
        .node_id("node-c")
        .clock(clock.clone())
        .on_event(other.listener())
        .build()
        .unwrap_or_else(|err| panic!("scheduler: {err}"));
    let stand_by = tokio::spawn(bystander.run_until(tokio::time::sleep(Duration::from_secs(2))));
    second
        .run_until(tokio::time::sleep(Duration::from_millis(1_000)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    let _ = stand_by.await;
    assert_eq!(
        seen.lines()
            .iter()
            .filter(|l| l.starts_with("missed "))
            .collect::<Vec<_>>(),
        ["missed gap 4 03 to 06"],
        "{:#?}",
        seen.lines()
    );
    assert_eq!(other.count("missed "), 0);
}

/// The memory coordinator, unreachable while `down` is set (every call fails as a lost
/// connection would).
#[derive(Debug)]
struct Unreachable {
    inner: MemoryCoordinator,
    down: AtomicBool,
}

impl Unreachable {
    fn check(&self) -> Result<(), Error> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Coordinator(crate::CoordinatorError::new(
                "memory",
                "call",
                crate::ErrorKind::Unavailable,
                "connection refused (injected)",
            )));
        }
        Ok(())
    }
}

impl Coordinator for Unreachable {
    fn claim<'a>(
        &'a self,
        requests: &'a [ClaimRequest],
    ) -> BoxFuture<'a, Result<Vec<ClaimOutcome>, Error>> {
        Box::pin(async move {
            self.check()?;
            self.inner.claim(requests).await
        })
    }
    fn keep_alive<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            self.check()?;
            self.inner.keep_alive(lease, ttl).await
        })
    }
    fn release<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            self.check()?;
            self.inner.release(lease, record).await
        })
    }
    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        stale_after: Duration,
        clock_offset_us: Option<i64>,
    ) -> BoxFuture<'a, Result<Heartbeat, Error>> {
        Box::pin(async move {
            self.check()?;
            self.inner
                .heartbeat(node, stale_after, clock_offset_us)
                .await
        })
    }
    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>> {
        Box::pin(async move {
            self.check()?;
            self.inner.server_time().await
        })
    }
    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.leave(node)
    }
    fn manual_requests(
        &self,
    ) -> BoxFuture<'_, Result<Vec<crate::coordinator::ManualRequest>, Error>> {
        self.inner.manual_requests()
    }
    fn claim_manual<'a>(
        &'a self,
        request: &'a crate::coordinator::ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: Overlap,
    ) -> BoxFuture<'a, Result<crate::coordinator::ManualOutcome, Error>> {
        self.inner.claim_manual(request, node, lease_ttl, overlap)
    }
    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [crate::coordinator::JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<crate::coordinator::Registrations>, Error>> {
        self.inner.register(node, jobs)
    }
    fn release_all<'a>(
        &'a self,
        runs: &'a [(Lease, RunRecord)],
    ) -> BoxFuture<'a, Vec<Result<bool, Error>>> {
        Box::pin(async move {
            if let Err(err) = self.check() {
                let detail = err.to_string();
                let mut answers = vec![Err(err)];
                answers.extend(runs.iter().skip(1).map(|_| {
                    Err(Error::Coordinator(crate::CoordinatorError::new(
                        "memory",
                        "release",
                        crate::ErrorKind::Unavailable,
                        detail.clone(),
                    )))
                }));
                return answers;
            }
            self.inner.release_all(runs).await
        })
    }
    fn claim_notices(&self) -> Option<crate::coordinator::ClaimNotices> {
        // A store that cannot be reached tells nothing either: no feed, so every claim
        // goes the slow way, as the outage it stands for would make it.
        None
    }
    fn missed_ticks(&self) -> Option<tokio::sync::broadcast::Receiver<MissedNotice>> {
        self.inner.missed_ticks()
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_told_once_with_its_end_and_the_lease_it_cost() {
    let clock = PausedClock::starting_at(start());
    let coordinator = Arc::new(Unreachable {
        inner: MemoryCoordinator::with_clock(clock.clone()),
        down: AtomicBool::new(false),
    });
    let seen = Seen::default();
    let long = Job::new("long", "*/10 * * * * *", |ctx: JobContext| async move {
        ctx.cancelled().await;
    })
    .unwrap_or_else(|err| panic!("job: {err}"));
    let scheduler = Scheduler::builder()
        .coordinator(coordinator.clone())
        .registered_jobs(false)
        .node_id("node-a")
        .clock(clock.clone())
        .lease_ttl(Duration::from_secs(2))
        .on_event(seen.listener())
        .job(long)
        .job(recording_job("every", "* * * * * *", Arc::default()))
        .build()
        .unwrap_or_else(|err| panic!("scheduler: {err}"));
    let outage = async {
        // 00.5: start; the long job runs from 00 (within grace). Down from 01.7 to 05.7.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        coordinator.down.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(4)).await;
        coordinator.down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    scheduler
        .run_until(outage)
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    let lines = seen.lines();
    assert_eq!(seen.count("unavailable "), 1, "once per outage: {lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("unavailable ") && l.contains("connection refused (injected)")),
        "{lines:#?}"
    );
    assert_eq!(seen.count("back after "), 1, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("back after ") && !l.ends_with(" 0")),
        "ticks were skipped meanwhile: {lines:#?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("lease lost "))
            .collect::<Vec<_>>(),
        ["lease lost long 00"],
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"round trip claim false".to_string()),
        "{lines:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_listener_stops_neither_the_scheduler_nor_the_other_listeners() {
    let clock = PausedClock::starting_at(start());
    let seen = Seen::default();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let scheduler = Scheduler::builder()
        .coordinator(Arc::new(MemoryCoordinator::with_clock(clock.clone())))
        .registered_jobs(false)
        .node_id("node-a")
        .clock(clock)
        .on_event(|_event: &Event<'_>| panic!("a listener with a bug"))
        .on_event(seen.listener())
        .job(recording_job("steady", "* * * * * *", ran.clone()))
        .build()
        .unwrap_or_else(|err| panic!("scheduler: {err}"));
    scheduler
        .run_until(tokio::time::sleep(Duration::from_millis(3_200)))
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    let ran = ran.lock().map(|r| r.len()).unwrap_or_default();
    assert_eq!(ran, 4, "every tick ran (00 within grace, 01 to 03)");
    assert_eq!(seen.count("finished steady "), 4, "{:#?}", seen.lines());
}
