//! Steps of the local clock and of the coordinator's, in paused time.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{PausedClock, start};
use crate::clock::Clock;
use crate::coordinator::MemoryCoordinator;
use crate::{Job, JobContext, Scheduler};

/// A paused clock the test steps by hand: a host whose wall clock jumps.
#[derive(Debug)]
struct SteppedClock {
    inner: Arc<PausedClock>,
    offset_ms: std::sync::atomic::AtomicI64,
}

impl SteppedClock {
    fn new(inner: Arc<PausedClock>) -> Arc<SteppedClock> {
        Arc::new(SteppedClock {
            inner,
            offset_ms: std::sync::atomic::AtomicI64::new(0),
        })
    }

    fn step(&self, by_ms: i64) {
        self.offset_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now() + chrono::TimeDelta::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// A job every second that records its tick and the coordinator's time at its start.
fn timed_job(name: &str, truth: Arc<dyn Clock>, runs: Arc<Mutex<Vec<(i64, i64)>>>) -> Job {
    Job::new(name, "* * * * * *", move |ctx: JobContext| {
        let runs = runs.clone();
        let at = truth.now().timestamp_millis();
        async move {
            if let Ok(mut runs) = runs.lock() {
                runs.push((ctx.tick().timestamp_millis(), at));
            }
        }
    })
    .unwrap_or_else(|err| panic!("job: {err}"))
}

/// Every tick from the second run on ran once, at its tick by the coordinator's clock.
fn assert_each_tick_once_on_time(runs: &[(i64, i64)], expected: usize) {
    let ticks: Vec<i64> = runs.iter().map(|(tick, _)| *tick).collect();
    let distinct: std::collections::BTreeSet<i64> = ticks.iter().copied().collect();
    assert_eq!(distinct.len(), ticks.len(), "a tick ran twice: {ticks:?}");
    assert!(
        ticks.len() >= expected,
        "only {} ticks ran: {ticks:?}",
        ticks.len()
    );
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], 1_000, "a tick was missed: {ticks:?}");
    }
    // The first run is the tick within grace at start, half a second late by design.
    for (tick, at) in &runs[1..] {
        assert!(
            (0..50).contains(&(at - tick)),
            "tick {tick} started {} ms after it by the coordinator's clock",
            at - tick
        );
    }
}

#[tokio::test(start_paused = true)]
async fn steps_of_the_local_clock_change_neither_which_ticks_run_nor_when() {
    let truth = PausedClock::starting_at(start());
    let local = SteppedClock::new(PausedClock::starting_at(start()));
    let runs = Arc::new(Mutex::new(Vec::new()));
    let steps_seen = Arc::new(Mutex::new(Vec::new()));
    let seen = steps_seen.clone();
    let scheduler = Scheduler::builder()
        .coordinator(Arc::new(MemoryCoordinator::with_clock(truth.clone())))
        .registered_jobs(false)
        .node_id("node-a")
        .clock(local.clone())
        .on_event(move |event: &crate::events::Event<'_>| {
            if let crate::events::Event::ClockStep { step_ms, .. } = event
                && let Ok(mut seen) = seen.lock()
            {
                seen.push(*step_ms);
            }
        })
        .job(timed_job("stepped", truth, runs.clone()))
        .build()
        .unwrap_or_else(|err| panic!("scheduler: {err}"));
    let steps = async {
        tokio::time::sleep(Duration::from_millis(3_200)).await;
        local.step(30_000);
        tokio::time::sleep(Duration::from_secs(3)).await;
        local.step(-90_000);
        tokio::time::sleep(Duration::from_secs(3)).await;
        local.step(3_600_000);
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    scheduler
        .run_until(steps)
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    let runs = runs.lock().map(|r| r.clone()).unwrap_or_default();
    assert_each_tick_once_on_time(&runs, 12);
    // Each step is one event, with the step (paused time: exact).
    let steps_seen = steps_seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(steps_seen, [30_000, -90_000, 3_600_000]);
}

#[tokio::test(start_paused = true)]
async fn a_step_of_the_coordinators_clock_is_followed_without_running_a_tick_twice() {
    // The coordinator's clock steps; the scheduler's local clock does not. The fleet's time
    // is the coordinator's: the scheduler follows it at its next heartbeat, and the ticks
    // the coordinator's clock skipped over are not run, nor any tick twice, nor early.
    let truth = SteppedClock::new(PausedClock::starting_at(start()));
    let runs = Arc::new(Mutex::new(Vec::new()));
    let coordinator = Arc::new(MemoryCoordinator::with_clock(truth.clone()));
    let scheduler = Scheduler::builder()
        .coordinator(coordinator.clone())
        .registered_jobs(false)
        .node_id("node-a")
        .clock(PausedClock::starting_at(start()))
        .job(timed_job("followed", truth.clone(), runs.clone()))
        .build()
        .unwrap_or_else(|err| panic!("scheduler: {err}"));
    let steps = async {
        tokio::time::sleep(Duration::from_millis(3_200)).await;
        truth.step(-30_000);
        tokio::time::sleep(Duration::from_secs(5)).await;
        truth.step(45_000);
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    scheduler
        .run_until(steps)
        .await
        .unwrap_or_else(|err| panic!("run: {err}"));
    let runs = runs.lock().map(|r| r.clone()).unwrap_or_default();
    let ticks: Vec<i64> = runs.iter().map(|(tick, _)| *tick).collect();
    let distinct: std::collections::BTreeSet<i64> = ticks.iter().copied().collect();
    assert_eq!(distinct.len(), ticks.len(), "a tick ran twice: {ticks:?}");
    assert!(
        ticks.windows(2).all(|pair| pair[0] < pair[1]),
        "ticks ran out of order: {ticks:?}"
    );
    for (tick, at) in &runs {
        assert!(at >= tick, "tick {tick} ran {} ms early", tick - at);
    }
    // After each step the scheduler follows within a heartbeat (2 s), and runs again.
    let after_last_step =
        (start() + Duration::from_millis(8_200 + 15_000 + 2_000)).timestamp_millis();
    assert!(
        ticks
            .iter()
            .filter(|tick| **tick >= after_last_step)
            .count()
            >= 2,
        "nothing ran in the coordinator's time after the last step: {ticks:?}"
    );
}
