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

/// The registrations stored for `job` (`HLEN ns:{job}:defs`), read without the catalog (a
/// catalog read prunes).
async fn stored(conn: &mut redis::aio::MultiplexedConnection, namespace: &str, job: &str) -> usize {
    redis::cmd("HLEN")
        .arg(format!("{namespace}:{{{job}}}:defs"))
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("HLEN: {e}"))
}

/// Registrations follow the members: a fleet of three restarted four times (node ids are new
/// at each start, as `hostname:pid:random` is), twice gracefully and twice killed, keeps one
/// registration per live member per job; a job no live member registers any more stays, with
/// one registration, orphaned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_leave_one_registration_per_live_member_and_an_orphan_keeps_its_last() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "restarts";
    let admin = fourit::admin::connect(&url, namespace)
        .await
        .unwrap_or_else(|e| panic!("admin: {e}"));
    let mut conn = redis::Client::open(url.as_str())
        .unwrap_or_else(|e| panic!("client: {e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    // Heartbeats every 200 ms: a killed member is forgotten 600 ms after its last.
    let flags = [
        "--jobs",
        "2",
        "--schedule",
        "* * * * * *",
        "--heartbeat-ms",
        "200",
    ];
    let mut counts = Vec::new();
    for generation in 0..5 {
        let mut fleet = Fleet::new(WORKER);
        for member in ["a", "b", "c"] {
            fleet.start_on(
                &format!("gen{generation}-{member}"),
                &url,
                namespace,
                &flags,
            );
        }
        let started = now_ms();
        fleet
            .wait_until(Duration::from_secs(30), "a run of each job", |events| {
                ["job-0", "job-1"]
                    .iter()
                    .all(|job| distinct_ticks(events, job, started, None) >= 1)
            })
            .await;
        // The members killed before were forgotten (and pruned) by a heartbeat: wait for it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = [
                stored(&mut conn, namespace, "job-0").await,
                stored(&mut conn, namespace, "job-1").await,
            ];
            if now == [3, 3] || tokio::time::Instant::now() >= deadline {
                counts.push(now);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if generation % 2 == 0 {
            fleet.stop_all(Duration::from_secs(20)).await;
        } else {
            for worker in fleet.workers() {
                worker.kill().await;
            }
        }
    }
    println!("registrations per job after each of 5 starts of 3 members: {counts:?}");
    assert!(counts.iter().all(|c| *c == [3, 3]), "{counts:?}");

    // The next version registers job-0 only; the last generation was killed.
    let mut fleet = Fleet::new(WORKER);
    fleet.start_on(
        "next-a",
        &url,
        namespace,
        &[
            "--jobs",
            "1",
            "--schedule",
            "* * * * * *",
            "--heartbeat-ms",
            "200",
        ],
    );
    let restarted = now_ms();
    fleet
        .wait_until(Duration::from_secs(30), "a run of job-0", |events| {
            distinct_ticks(events, "job-0", restarted, None) >= 1
        })
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut now = [0, 0];
    while tokio::time::Instant::now() < deadline {
        now = [
            stored(&mut conn, namespace, "job-0").await,
            stored(&mut conn, namespace, "job-1").await,
        ];
        if now == [1, 1] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(now, [1, 1], "job-0: next-a's; job-1: its last registrant's");
    let status = admin
        .status()
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    let job1 = status
        .iter()
        .find(|job| job.name == "job-1")
        .expect("job-1");
    assert!(job1.orphaned, "{job1:?}");
    assert_eq!(
        job1.definition.as_ref().map(|d| d.schedule.as_str()),
        Some("* * * * * *"),
        "its last definition: {job1:?}"
    );
    let job0 = status
        .iter()
        .find(|job| job.name == "job-0")
        .expect("job-0");
    assert_eq!(job0.members.len(), 1, "{job0:?}");
    fleet.stop_all(Duration::from_secs(20)).await;
    assert_eq!(
        stored(&mut conn, namespace, "job-0").await,
        1,
        "the last registrant stays"
    );
}
