//! The job catalog with real worker processes on a real `redis-server`: a rolling change of
//! schedule shows as a disagreement (and the new member warns once per job), and a job no
//! live member registers any more is orphaned and can be removed, while one in use cannot.

use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::cli::{Cli, stderr};
use fourit_tests::faults::{Fleet, distinct_ticks, now_ms};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const FOURIT: &str = env!("CARGO_BIN_EXE_fourit-for-tests");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_schedule_change_disagrees_and_an_orphaned_job_can_be_removed() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "catalog";
    let admin = fourit::admin::connect(&url, namespace)
        .await
        .unwrap_or_else(|e| panic!("admin: {e}"));
    let mut fleet = Fleet::new(WORKER);
    for node in ["old-a", "old-b"] {
        fleet.start_on(
            node,
            &url,
            namespace,
            &["--jobs", "2", "--schedule", "* * * * * *"],
        );
    }
    fleet
        .wait_until(Duration::from_secs(30), "2 ticks of each job", |events| {
            ["job-0", "job-1"]
                .iter()
                .all(|job| distinct_ticks(events, job, 0, None) >= 2)
        })
        .await;
    // The deploy's first new member runs the jobs every two seconds.
    fleet.start_on(
        "new-a",
        &url,
        namespace,
        &["--jobs", "2", "--schedule", "*/2 * * * * *"],
    );
    let started = now_ms();
    fleet
        .wait_until(
            Duration::from_secs(30),
            "a run after the new member",
            |events| distinct_ticks(events, "job-0", started + 2_000, None) >= 1,
        )
        .await;
    let status = admin
        .status()
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    for job in &status {
        assert!(job.disagreeing, "{job:?}");
        assert_eq!(job.members.len(), 3, "{job:?}");
        assert!(!job.orphaned);
    }
    let listed = Cli::new(FOURIT, &url, namespace).json(&["status", "--json"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    for job in listed.as_array().into_iter().flatten() {
        assert_eq!(job["state"], "disagreeing", "fourit status --json: {job}");
    }
    let warnings = fleet.worker("new-a").stderr();
    let said = warnings
        .lines()
        .filter(|line| line.contains("runs this job differently"))
        .count();
    assert_eq!(said, 2, "one warning per job: {warnings}");

    // Every member stops; the next version registers job-0 only: job-1 is orphaned.
    fleet.stop_all(Duration::from_secs(20)).await;
    let mut fleet = Fleet::new(WORKER);
    fleet.start_on(
        "next-a",
        &url,
        namespace,
        &["--jobs", "1", "--schedule", "*/2 * * * * *"],
    );
    let restarted = now_ms();
    fleet
        .wait_until(Duration::from_secs(30), "a run of job-0", |events| {
            distinct_ticks(events, "job-0", restarted, None) >= 1
        })
        .await;
    let status = admin
        .status()
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    let job0 = status
        .iter()
        .find(|job| job.name == "job-0")
        .expect("job-0");
    let job1 = status
        .iter()
        .find(|job| job.name == "job-1")
        .expect("job-1");
    assert!(!job0.orphaned && !job0.disagreeing, "{job0:?}");
    assert_eq!(
        job0.definition.as_ref().map(|d| d.schedule.as_str()),
        Some("*/2 * * * * *")
    );
    assert!(job1.orphaned, "{job1:?}");
    assert!(
        job1.last.is_some(),
        "it keeps its history until removed: {job1:?}"
    );
    // The operator's view and action, through the `fourit` command.
    let fourit = Cli::new(FOURIT, &url, namespace);
    let table = fourit.ok(&["status"]);
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("job-1") && line.contains("orphaned")),
        "{table}"
    );
    let refused = fourit.run(&["remove", "job-0"]);
    assert_eq!(refused.status.code(), Some(2), "job-0 is in use");
    assert!(
        stderr(&refused).contains("only an orphaned job"),
        "{}",
        stderr(&refused)
    );
    fourit.ok(&["remove", "job-1"]);
    let listed = fourit.json(&["status", "--json"]);
    let names: Vec<&str> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|job| job["name"].as_str())
        .collect();
    assert_eq!(names, ["job-0"], "{listed}");
    fleet.stop_all(Duration::from_secs(20)).await;
}
