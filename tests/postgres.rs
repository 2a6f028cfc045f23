//! The Postgres coordinator with real worker processes and a real PostgreSQL (the test
//! server, see `fourit_tests::postgres_url`): a steady fleet runs each tick once and the
//! `fourit` command reads it; a worker SIGKILLed costs no double run; every fourit connection
//! terminated by the server (`pg_terminate_backend`) while jobs run costs no double run and
//! the fleet goes on. Runs are counted from the workers' own records (on a real
//! `redis-server`, which is not the coordinator here).

use std::time::Duration;

use fourit_tests::cli::Cli;
use fourit_tests::faults::{Fleet, Records, assert_no_double_runs, distinct_ticks, now_ms};
use fourit_tests::{RedisServer, postgres_url};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const FOURIT: &str = env!("CARGO_BIN_EXE_fourit-for-tests");

/// A namespace of this test run's own (the database is shared).
fn namespace(name: &str) -> String {
    format!("pg-{name}-{}-{}", std::process::id(), now_ms())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_fleet_on_postgres_runs_each_tick_once_and_the_command_reads_it() {
    let records = RedisServer::start();
    let url = postgres_url();
    let ns = namespace("steady");
    let mut fleet = Fleet::new(WORKER);
    fleet.start_recording(&["p-a", "p-b", "p-c"], &url, &ns, 2, &records.url(), "warn");
    let started = now_ms();
    fleet
        .wait_until(Duration::from_secs(40), "8 ticks of each job", |events| {
            ["job-0", "job-1"]
                .iter()
                .all(|job| distinct_ticks(events, job, started, None) >= 8)
        })
        .await;
    fleet.assert_all_running();
    let cli = Cli::new(FOURIT, &url, &ns);
    let status = cli.json(&["status", "--json"]);
    assert_eq!(status.as_array().map(Vec::len), Some(2), "{status}");
    assert_eq!(status[0]["last_outcome"], "succeeded", "{status}");
    let members = cli.json(&["members", "--json"]);
    assert_eq!(members.as_array().map(Vec::len), Some(3), "{members}");
    fleet.stop_all(Duration::from_secs(20)).await;
    let recorded = Records::read(&mut records.connection().await, &ns).await;
    let missed = assert_no_double_runs(&recorded, &["job-0", "job-1"], started + 2_000);
    assert!(missed.iter().all(Vec::is_empty), "{missed:?}");
    let nodes: std::collections::BTreeSet<String> =
        recorded.runs.iter().map(|run| run.node.clone()).collect();
    assert_eq!(nodes.len(), 3, "every member ran ticks: {nodes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_and_connections_terminated_cost_no_double_run() {
    let records = RedisServer::start();
    let url = postgres_url();
    let ns = namespace("faults");
    let mut fleet = Fleet::new(WORKER);
    fleet.start_recording(&["f-a", "f-b", "f-c"], &url, &ns, 2, &records.url(), "warn");
    let started = now_ms();
    fleet
        .wait_until(Duration::from_secs(30), "3 ticks of each job", |events| {
            ["job-0", "job-1"]
                .iter()
                .all(|job| distinct_ticks(events, job, started, None) >= 3)
        })
        .await;
    // A crash: f-a is gone without a word.
    fleet.worker("f-a").kill().await;
    let killed = now_ms();
    fleet
        .wait_until(
            Duration::from_secs(30),
            "3 ticks after the kill",
            |events| distinct_ticks(events, "job-0", killed + 1_000, None) >= 3,
        )
        .await;
    // The server ends every fourit session (claims, heartbeats, LISTEN) while jobs run.
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(connection);
    let terminated = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'fourit' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("pg_terminate_backend: {e}"))
        .len();
    let cut = now_ms();
    fleet
        .wait_until(Duration::from_secs(30), "4 ticks after the cut", |events| {
            ["job-0", "job-1"]
                .iter()
                .all(|job| distinct_ticks(events, job, cut + 1_000, None) >= 4)
        })
        .await;
    fleet.stop_all(Duration::from_secs(20)).await;
    let recorded = Records::read(&mut records.connection().await, &ns).await;
    let missed = assert_no_double_runs(&recorded, &["job-0", "job-1"], started);
    eprintln!(
        "terminated {terminated} fourit sessions; ticks missed around the kill and the cut: \
         {missed:?}"
    );
    assert!(
        terminated >= 4,
        "two workers' sessions at least: {terminated}"
    );
}
