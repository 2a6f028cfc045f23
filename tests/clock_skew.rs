//! Once per tick under clock skew: four worker processes whose wall clocks are offset by
//! -700, -200, +300 and +800 ms run a 5 ms job every second; each tick runs exactly once.
//!
//! This is the case that breaks name-keyed locks: a process whose clock is behind asks for the
//! lock after a fast process already ran and released it, and runs the tick again.

use std::collections::BTreeMap;
use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::faults::{Fleet, Records, distinct_ticks, tick_report};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
/// Consecutive ticks of each job the test observes.
const TICKS: usize = 22;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tick_runs_exactly_once_under_clock_skew() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "skew";
    let mut fleet = Fleet::new(WORKER);
    for (node, offset) in [
        ("behind-700", "-700"),
        ("behind-200", "-200"),
        ("ahead-300", "300"),
        ("ahead-800", "800"),
    ] {
        fleet.start_on(
            node,
            &url,
            namespace,
            &["--jobs", "2", "--body-ms", "5", "--clock-offset-ms", offset],
        );
    }
    fleet
        .wait_until(
            Duration::from_secs(60),
            &format!("{TICKS} distinct ticks of job-0 and of job-1"),
            |events| {
                ["job-0", "job-1"]
                    .iter()
                    .all(|job| distinct_ticks(events, job, 0, None) >= TICKS)
            },
        )
        .await;
    fleet.stop_all(Duration::from_secs(20)).await;

    let records = Records::read(&mut server.connection().await, namespace).await;
    for job in ["job-0", "job-1"] {
        let ticks = records.ticks(job);
        let report = tick_report(&ticks, 1000);
        let mut by_node = BTreeMap::<&str, usize>::new();
        for nodes in ticks.values() {
            for node in nodes {
                *by_node.entry(node.as_str()).or_default() += 1;
            }
        }
        eprintln!(
            "{job}: {} ticks from {} to {}, doubles {:?}, missing {:?}, runs per node {by_node:?}",
            report.ran, report.first, report.last, report.doubles, report.missing
        );
        assert!(report.ran >= TICKS, "{job}: only {} ticks ran", report.ran);
        assert_eq!(report.doubles, vec![], "{job}: ticks that ran twice");
        assert_eq!(report.missing, Vec::<i64>::new(), "{job}: ticks missed");
    }
}
