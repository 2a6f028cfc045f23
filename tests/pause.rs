//! Pause and resume, fleet-wide, with real worker processes on a real `redis-server`: a pause
//! stops the job on every member from the next tick, survives every member restarting, and
//! resume starts it again from the next tick. Runs are counted from the workers' own records;
//! the operator steers and reads through the real `fourit` command.

use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::cli::Cli;
use fourit_tests::faults::{Event, Fleet, distinct_ticks, now_ms};
use serde_json::Value;

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const FOURIT: &str = env!("CARGO_BIN_EXE_fourit-for-tests");

/// The ticks of `job` that started after `since_ms` (tick time), as the workers reported them.
fn ran_after(events: &[Event], job: &str, since_ms: i64) -> Vec<i64> {
    events
        .iter()
        .filter_map(|event| event.ran(job))
        .filter(|tick| *tick > since_ms)
        .collect()
}

fn start(fleet: &mut Fleet, nodes: &[&str], url: &str, namespace: &str) {
    for node in nodes {
        fleet.start_on(node, url, namespace, &["--jobs", "2", "--body-ms", "5"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_a_job_fleet_wide_survives_restarts_and_resume_restarts_it() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "pause";
    let fourit = Cli::new(FOURIT, &url, namespace);
    let mut fleet = Fleet::new(WORKER);
    start(&mut fleet, &["p-a", "p-b", "p-c"], &url, namespace);
    fleet
        .wait_until(Duration::from_secs(30), "3 ticks of both jobs", |events| {
            ["job-0", "job-1"]
                .iter()
                .all(|job| distinct_ticks(events, job, 0, None) >= 3)
        })
        .await;

    fourit.ok(&[
        "pause",
        "job-0",
        "--note",
        "INC-7: testing the pause",
        "--by",
        "tests@ci",
    ]);
    let paused_ms = now_ms();
    fleet
        .wait_until(
            Duration::from_secs(30),
            "4 ticks of job-1 while paused",
            |events| distinct_ticks(events, "job-1", paused_ms, None) >= 4,
        )
        .await;
    let during = ran_after(fleet.events(), "job-0", paused_ms);
    assert_eq!(during, Vec::<i64>::new(), "job-0 ran while paused");

    // Every member restarts: the pause holds.
    fleet.stop_all(Duration::from_secs(20)).await;
    let mut fleet = Fleet::new(WORKER);
    start(&mut fleet, &["p-d", "p-e", "p-f"], &url, namespace);
    let restarted_ms = now_ms();
    fleet
        .wait_until(
            Duration::from_secs(30),
            "3 ticks of job-1 after the restart",
            |events| distinct_ticks(events, "job-1", restarted_ms, None) >= 3,
        )
        .await;
    assert_eq!(
        ran_after(fleet.events(), "job-0", 0),
        Vec::<i64>::new(),
        "job-0 ran after every member restarted, still paused"
    );
    let pause = fourit.json(&["paused", "job-0", "--json"]);
    assert_eq!(pause["paused"], Value::Bool(true), "{pause}");
    assert_eq!(pause["by"], "tests@ci", "{pause}");
    assert!(
        pause["ticks"].as_u64().is_some_and(|ticks| ticks >= 6),
        "every tick meanwhile was decided as paused: {pause}"
    );
    let status = fourit.json(&["status", "--json"]);
    let job0 = status
        .as_array()
        .and_then(|jobs| jobs.iter().find(|job| job["name"] == "job-0"))
        .unwrap_or_else(|| panic!("no job-0 in {status}"));
    assert_eq!(job0["paused"], Value::Bool(true), "{job0}");

    let said = fourit.ok(&["resume", "job-0", "--by", "tests@ci"]);
    let resumed_ms = now_ms();
    fleet
        .wait_until(
            Duration::from_secs(30),
            "3 ticks of job-0 after resume",
            |events| distinct_ticks(events, "job-0", resumed_ms, None) >= 3,
        )
        .await;
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;
    // No backfill: the first tick run after resume is later than the resume.
    let first_after = ran_after(fleet.events(), "job-0", 0).into_iter().min();
    assert!(
        first_after.is_some_and(|tick| tick >= resumed_ms - 1000),
        "{first_after:?} vs resumed at {resumed_ms}"
    );
    let history = fourit.json(&["history", "job-0", "-n", "100", "--json"]);
    let entries = history.as_array().cloned().unwrap_or_default();
    let paused: Vec<_> = entries
        .iter()
        .filter(|e| e["outcome"] == "paused")
        .collect();
    let resumed: Vec<_> = entries
        .iter()
        .filter(|e| e["outcome"] == "resumed")
        .collect();
    assert_eq!(paused.len(), 1, "one entry per pause: {history}");
    assert_eq!(
        paused[0]["detail"],
        "paused by tests@ci: INC-7: testing the pause"
    );
    assert_eq!(resumed.len(), 1, "{history}");
    eprintln!(
        "{}; first run after resume: tick {first_after:?}, resumed at {resumed_ms}",
        said.trim()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_stopped_for_5_s_leaves_a_missed_record_matching_the_gap() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "missed";
    let mut fleet = Fleet::new(WORKER);
    start(&mut fleet, &["m-a", "m-b"], &url, namespace);
    fleet
        .wait_until(Duration::from_secs(30), "3 ticks of job-0", |events| {
            distinct_ticks(events, "job-0", 0, None) >= 3
        })
        .await;
    fleet.stop_all(Duration::from_secs(20)).await;
    let last_before = ran_after(fleet.events(), "job-0", 0)
        .into_iter()
        .max()
        .expect("runs before the stop");
    // The whole fleet is down for 5 s: the outage is the scenario.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut fleet = Fleet::new(WORKER);
    start(&mut fleet, &["m-c", "m-d"], &url, namespace);
    fleet
        .wait_until(
            Duration::from_secs(30),
            "2 ticks of job-0 after the restart",
            |events| distinct_ticks(events, "job-0", 0, None) >= 2,
        )
        .await;
    fleet.stop_all(Duration::from_secs(20)).await;
    let first_after = ran_after(fleet.events(), "job-0", last_before)
        .into_iter()
        .min()
        .expect("runs after the restart");
    let gap = (first_after - last_before) / 1000 - 1;
    let listed = Cli::new(FOURIT, &url, namespace).json(&["history", "job-0", "--json"]);
    let says_missed = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["outcome"] == "missed")
        .count();
    assert_eq!(says_missed, 1, "fourit history shows it: {listed}");
    let mut conn = server.connection().await;
    let history = fourit_tests::faults::history(&mut conn, namespace, "job-0").await;
    let missed: Vec<_> = history
        .iter()
        .filter(|entry| entry.get("outcome").map(String::as_str) == Some("missed"))
        .collect();
    eprintln!("gap in the workers' records: {gap} ticks; history: {missed:?}");
    assert_eq!(missed.len(), 1, "{history:?}");
    assert_eq!(missed[0]["missed_count"], gap.to_string());
    assert_eq!(missed[0]["missed_first"], (last_before + 1000).to_string());
    assert_eq!(missed[0]["tick"], (first_after - 1000).to_string());
    assert!(gap >= 4, "5 s down for an every-second job: {gap}");
}
