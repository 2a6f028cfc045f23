//! Redis restarts: `redis-server` is stopped for 5 s and started again on the same port while
//! three workers run two jobs every second. No process exits or panics, no tick runs twice,
//! ticks are skipped only while Redis is down, and runs resume within two ticks of its return.
//! Once without persistence (Redis comes back empty: high-water marks, fences and leases are
//! gone) and once with the append-only file.
//!
//! The workers record their runs in a second Redis that stays up, so the records survive.

use std::collections::BTreeSet;
use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::faults::{Event, Fleet, Records, now_ms, tick_report};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
/// How long Redis stays down.
const OUTAGE: Duration = Duration::from_secs(5);

fn distinct_after(events: &[Event], job: &str, after_ms: i64) -> usize {
    events
        .iter()
        .filter(|e| e.wall_ms >= after_ms)
        .filter_map(|e| e.ran(job))
        .collect::<BTreeSet<_>>()
        .len()
}

async fn stop_redis_for_five_seconds(appendonly: bool, namespace: &str) {
    let mut server = RedisServer::builder().appendonly(appendonly).start();
    let recorder = RedisServer::start();
    let (url, record_url) = (server.url(), recorder.url());
    let mut fleet = Fleet::new(WORKER);
    for node in ["a", "b", "c"] {
        fleet.start(
            node,
            &[
                "--url",
                &url,
                "--record-url",
                &record_url,
                "--namespace",
                namespace,
                "--jobs",
                "2",
            ],
        );
    }
    fleet
        .wait_until(Duration::from_secs(30), "4 ticks of job-0", |events| {
            distinct_after(events, "job-0", 0) >= 4
        })
        .await;

    let stopped_at = now_ms();
    tokio::task::block_in_place(|| server.stop());
    fleet.watch(OUTAGE).await;
    let restart_at = now_ms();
    tokio::task::block_in_place(|| server.restart());
    let back_at = now_ms();
    eprintln!(
        "Redis down from {stopped_at} to {back_at} ({} ms; restart took {} ms)",
        back_at - stopped_at,
        back_at - restart_at
    );
    let resumed = fleet
        .wait_for(
            Duration::from_secs(15),
            "a run of job-0 after Redis returned",
            |e| e.wall_ms >= back_at && e.ran("job-0").is_some(),
        )
        .await;
    fleet
        .wait_until(
            Duration::from_secs(30),
            "4 ticks of job-0 after Redis returned",
            |events| distinct_after(events, "job-0", back_at) >= 4,
        )
        .await;
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;

    let resumed_tick = resumed.ran("job-0").unwrap_or_default();
    let records = Records::read(&mut recorder.connection().await, namespace).await;
    for job in ["job-0", "job-1"] {
        let ticks = records.ticks(job);
        let report = tick_report(&ticks, 1000);
        let first_after = ticks
            .keys()
            .find(|tick| **tick > back_at - 1000)
            .copied()
            .unwrap_or_default();
        let outside: Vec<i64> = report
            .missing
            .iter()
            .copied()
            .filter(|tick| *tick <= stopped_at - 1000 || *tick > back_at + 2000)
            .collect();
        eprintln!(
            "{job} (appendonly {appendonly}): {} ticks from {} to {}, doubles {:?}, {} missing \
             ({:?}), first tick run after the return {first_after} ({} ms after Redis \
             returned); first `ran` line after the return: tick {resumed_tick}, {} ms after",
            report.ran,
            report.first,
            report.last,
            report.doubles,
            report.missing.len(),
            report.missing,
            first_after - back_at,
            resumed.wall_ms - back_at,
        );
        assert_eq!(report.doubles, vec![], "{job}: ticks that ran twice");
        assert_eq!(
            outside,
            Vec::<i64>::new(),
            "{job}: ticks skipped while Redis was up (down from {stopped_at} to {back_at})"
        );
        assert!(
            first_after > 0 && first_after <= back_at + 2000,
            "{job}: runs did not resume within two ticks of Redis returning at {back_at}: \
             first tick after it {first_after}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_without_persistence_skips_only_the_outage_and_runs_no_tick_twice() {
    stop_redis_for_five_seconds(false, "restart-empty").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_with_appendonly_skips_only_the_outage_and_runs_no_tick_twice() {
    stop_redis_for_five_seconds(true, "restart-aof").await;
}
