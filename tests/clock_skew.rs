//! Once per tick under clock skew: four worker processes whose wall clocks are offset by
//! -700, -200, +300 and +800 ms run a 5 ms job every second; each tick runs exactly once, on
//! Redis, on PostgreSQL (the test server) and on a SQLite file.
//!
//! This is the case that breaks name-keyed locks: a process whose clock is behind asks for the
//! lock after a fast process already ran and released it, and runs the tick again.

use std::collections::BTreeMap;
use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::faults::{Fleet, Line, Records, distinct_ticks, tick_report};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
/// Consecutive ticks of each job the test observes (on Redis; on the SQL backends, which
/// run beside it, fewer).
const TICKS: usize = 22;
const TICKS_SQL: usize = 12;

/// Four skewed workers on `url` (recording on `records`), until `ticks` distinct ticks of
/// each job ran; each tick ran exactly once.
async fn skewed_fleet(url: &str, records: &RedisServer, namespace: &str, ticks: usize) {
    let mut fleet = Fleet::new(WORKER);
    let record_url = records.url();
    for (node, offset) in [
        ("behind-700", "-700"),
        ("behind-200", "-200"),
        ("ahead-300", "300"),
        ("ahead-800", "800"),
    ] {
        fleet.start_on(
            node,
            url,
            namespace,
            &[
                "--jobs",
                "2",
                "--body-ms",
                "5",
                "--clock-offset-ms",
                offset,
                "--record-url",
                &record_url,
            ],
        );
    }
    // Counted once the whole fleet is up: every worker said `ready`, and a heartbeat more
    // (a member still starting is not yet a member the others hand ticks to).
    let settled = |events: &[fourit_tests::faults::Event]| {
        let ready: Vec<i64> = events
            .iter()
            .filter(|event| event.line == Line::Ready)
            .map(|event| event.wall_ms)
            .collect();
        (ready.len() == 4).then(|| ready.iter().max().copied().unwrap_or(0) + 2_000)
    };
    fleet
        .wait_until(
            Duration::from_secs(60),
            &format!("{ticks} distinct ticks of job-0 and of job-1 with the fleet up"),
            |events| {
                settled(events).is_some_and(|since| {
                    ["job-0", "job-1"]
                        .iter()
                        .all(|job| distinct_ticks(events, job, since, None) >= ticks)
                })
            },
        )
        .await;
    let since = settled(fleet.events()).unwrap_or(0);
    fleet.stop_all(Duration::from_secs(20)).await;

    let records = Records::read(&mut records.connection().await, namespace).await;
    for job in ["job-0", "job-1"] {
        let ticks_run = records.ticks(job);
        let report = tick_report(&ticks_run, 1000);
        let mut by_node = BTreeMap::<&str, usize>::new();
        for nodes in ticks_run.values() {
            for node in nodes {
                *by_node.entry(node.as_str()).or_default() += 1;
            }
        }
        eprintln!(
            "{namespace} {job}: {} ticks from {} to {}, doubles {:?}, missing {:?}, runs per node {by_node:?}",
            report.ran, report.first, report.last, report.doubles, report.missing
        );
        assert!(report.ran >= ticks, "{job}: only {} ticks ran", report.ran);
        // Never twice, from the very first tick; none missed once the fleet is up.
        assert_eq!(report.doubles, vec![], "{job}: ticks that ran twice");
        let missing: Vec<i64> = report
            .missing
            .iter()
            .copied()
            .filter(|tick| *tick >= since)
            .collect();
        assert_eq!(
            missing,
            Vec::<i64>::new(),
            "{job}: ticks missed with the fleet up"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tick_runs_exactly_once_under_clock_skew() {
    let server = RedisServer::start();
    skewed_fleet(&server.url(), &server, "skew", TICKS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tick_runs_exactly_once_under_clock_skew_on_postgres() {
    let records = RedisServer::start();
    let namespace = format!(
        "skew-{}-{}",
        std::process::id(),
        fourit_tests::faults::now_ms()
    );
    skewed_fleet(
        &fourit_tests::postgres_url(),
        &records,
        &namespace,
        TICKS_SQL,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tick_runs_exactly_once_under_clock_skew_on_sqlite() {
    let records = RedisServer::start();
    let dir = fourit_tests::TempDir::new("fourit-skew-sqlite");
    let url = format!("sqlite://{}/fleet.db", dir.path().display());
    skewed_fleet(&url, &records, "skew", TICKS_SQL).await;
}
