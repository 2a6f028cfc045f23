//! The SQLite coordinator with real processes on one host: two workers on one file run each
//! tick once; a worker SIGKILLed and restarted runs no tick twice (the file keeps the marks,
//! unlike `memory://`); processes opening a new file together all migrate it safely; a file
//! of a newer schema is refused; the `fourit` command reads the file. Runs are counted from
//! the workers' own records (on a real `redis-server`, which is not the coordinator here).

use std::time::Duration;

use fourit::Overlap;
use fourit::coordinator::{ClaimOutcome, ClaimRequest, Coordinator, SqliteCoordinator};
use fourit_tests::RedisServer;
use fourit_tests::cli::Cli;
use fourit_tests::faults::{Fleet, Records, assert_no_double_runs, distinct_ticks, now_ms};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const FOURIT: &str = env!("CARGO_BIN_EXE_fourit-for-tests");

/// A file in a fresh directory of the test's own, removed afterwards.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "fourit-sqlite-{name}-{}-{}",
            std::process::id(),
            now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Scratch(dir)
    }

    fn url(&self) -> String {
        format!("sqlite://{}/fourit.db", self.0.display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_file_run_each_tick_once_and_the_command_reads_it() {
    let records = RedisServer::start();
    let file = Scratch::new("fleet");
    let url = file.url();
    let namespace = "sqlite-fleet";
    let mut fleet = Fleet::new(WORKER);
    fleet.start_recording(&["s-a", "s-b"], &url, namespace, 2, &records.url(), "warn");
    let started = now_ms();
    fleet
        .wait_until(Duration::from_secs(40), "8 ticks of each job", |events| {
            ["job-0", "job-1"]
                .iter()
                .all(|job| distinct_ticks(events, job, started, None) >= 8)
        })
        .await;
    fleet.assert_all_running();
    let status = Cli::new(FOURIT, &url, namespace).json(&["status", "--json"]);
    assert_eq!(status.as_array().map(Vec::len), Some(2), "{status}");
    assert!(status[0]["last_outcome"].as_str().is_some(), "{status}");
    let members = Cli::new(FOURIT, &url, namespace).json(&["members", "--json"]);
    assert_eq!(members.as_array().map(Vec::len), Some(2), "{members}");
    fleet.stop_all(Duration::from_secs(20)).await;
    let recorded = Records::read(&mut records.connection().await, namespace).await;
    let missed = assert_no_double_runs(&recorded, &["job-0", "job-1"], started + 2_000);
    assert!(
        missed.iter().all(Vec::is_empty),
        "no tick missed in a steady fleet: {missed:?}"
    );
    let nodes: std::collections::BTreeSet<String> =
        recorded.runs.iter().map(|run| run.node.clone()).collect();
    assert_eq!(nodes.len(), 2, "both processes ran ticks: {nodes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_and_restarted_runs_no_tick_twice() {
    let records = RedisServer::start();
    let file = Scratch::new("restart");
    let url = file.url();
    let namespace = "sqlite-restart";
    let mut fleet = Fleet::new(WORKER);
    fleet.start_recording(&["r-1"], &url, namespace, 1, &records.url(), "warn");
    fleet
        .wait_until(Duration::from_secs(30), "3 ticks", |events| {
            distinct_ticks(events, "job-0", 0, None) >= 3
        })
        .await;
    // A crash, and the same program started again at once: the tick it ran last is still
    // within grace, so the new process claims it, and the file says it ran.
    fleet.worker("r-1").kill().await;
    let restarted = now_ms();
    fleet.start_recording(&["r-2"], &url, namespace, 1, &records.url(), "warn");
    fleet
        .wait_until(
            Duration::from_secs(30),
            "3 ticks after the restart",
            |events| distinct_ticks(events, "job-0", restarted, Some("r-2")) >= 3,
        )
        .await;
    fleet.stop_all(Duration::from_secs(20)).await;
    let recorded = Records::read(&mut records.connection().await, namespace).await;
    assert_no_double_runs(&recorded, &["job-0"], restarted);
}

fn request(job: &str, tick_ms: i64, node: &str) -> ClaimRequest {
    ClaimRequest {
        job: job.into(),
        tick_ms,
        node: node.into(),
        lease_ttl: Duration::from_secs(30),
        overlap: Overlap::Skip,
        preferred: None,
        handoff: Duration::ZERO,
        claim_id: fourit::coordinator::new_claim_id(),
        schedule: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opening_a_new_file_together_all_migrate_it() {
    let file = Scratch::new("migrate");
    let url = file.url();
    // Separate connections, as separate processes have: each takes the write lock in turn.
    let mut opening = tokio::task::JoinSet::new();
    for n in 0..8 {
        let url = url.clone();
        opening.spawn(async move { (n, SqliteCoordinator::connect(&url, "race").await) });
    }
    let mut coordinators = Vec::new();
    while let Some(joined) = opening.join_next().await {
        let (n, opened) = joined.unwrap_or_else(|e| panic!("an opener panicked: {e}"));
        coordinators.push(opened.unwrap_or_else(|e| panic!("opener {n}: {e}")));
    }
    let tick = now_ms() - 1_000;
    let mut won = 0;
    for (n, coordinator) in coordinators.iter().enumerate() {
        let outcome = coordinator
            .claim(&[request("race", tick, &format!("node-{n}"))])
            .await
            .unwrap_or_else(|e| panic!("claim: {e}"));
        if matches!(outcome[..], [ClaimOutcome::Run(_)]) {
            won += 1;
        }
    }
    assert_eq!(won, 1, "one tick, one run, whoever opened the file first");
}

#[tokio::test]
async fn a_file_of_a_newer_schema_is_refused_with_a_clear_error() {
    let file = Scratch::new("newer");
    let path = file.0.join("fourit.db");
    let connection = rusqlite::Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
    connection
        .execute_batch("PRAGMA user_version = 99")
        .unwrap_or_else(|e| panic!("{e}"));
    drop(connection);
    let err = SqliteCoordinator::connect(&file.url(), "fourit")
        .await
        .expect_err("a newer schema");
    assert!(
        err.to_string()
            .contains("version 99, newer than this fourit's 1"),
        "{err}"
    );
    let err = SqliteCoordinator::connect("sqlite://", "fourit")
        .await
        .expect_err("no path");
    assert!(err.to_string().contains("names a file"), "{err}");
}
