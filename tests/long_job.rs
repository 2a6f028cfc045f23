//! Leases are kept alive: a job running three times its lease TTL keeps its lease, so no
//! other process runs a tick of it meanwhile; and a run whose lease is lost (Redis stopped
//! mid-run) has its context cancelled and the loss logged.

use std::collections::BTreeSet;
use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::faults::{Fleet, Line, Records, history, now_ms};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");

/// Two workers, a job every second with a 1 s lease and a 3 s body: while one runs it, the
/// ticks in between are overlaps (the lease is renewed past its TTL), and runs never overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_three_times_its_lease_ttl_keeps_its_lease() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "long-job";
    let mut fleet = Fleet::new(WORKER);
    for node in ["a", "b"] {
        fleet.start_on(
            node,
            &url,
            namespace,
            &["--jobs", "1", "--lease-ttl-ms", "1000", "--body-ms", "3000"],
        );
    }
    fleet
        .wait_until(
            Duration::from_secs(30),
            "three runs of job-0 to finish",
            |events| {
                events
                    .iter()
                    .filter(|e| matches!(&e.line, Line::Done { job, .. } if job == "job-0"))
                    .count()
                    >= 3
            },
        )
        .await;
    fleet.stop_all(Duration::from_secs(20)).await;

    let mut conn = server.connection().await;
    let records = Records::read(&mut conn, namespace).await;
    let mut spans = records.spans.clone();
    spans.sort_by_key(|s| s.start_ms);
    for pair in spans.windows(2) {
        assert!(
            pair[0].end_ms <= pair[1].start_ms,
            "two runs overlapped: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    assert!(
        spans.iter().all(|s| s.end_ms - s.start_ms >= 3000),
        "{spans:?}"
    );
    let entries = history(&mut conn, namespace, "job-0").await;
    let outcomes: Vec<(i64, &str)> = entries
        .iter()
        .map(|e| {
            (
                e.get("tick")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_default(),
                e.get("outcome").map(String::as_str).unwrap_or_default(),
            )
        })
        .collect();
    let ran: BTreeSet<i64> = records.runs.iter().map(|r| r.tick).collect();
    let overlaps: BTreeSet<i64> = outcomes
        .iter()
        .filter(|(_, outcome)| *outcome == "overlap")
        .map(|(tick, _)| *tick)
        .collect();
    eprintln!(
        "runs (tick, node, ms): {:?}; overlap ticks: {overlaps:?}; history: {outcomes:?}",
        spans
            .iter()
            .map(|s| (s.tick, s.node.as_str(), s.end_ms - s.start_ms))
            .collect::<Vec<_>>()
    );
    assert!(spans.len() >= 3, "{spans:?}");
    assert!(
        outcomes
            .iter()
            .all(|(_, outcome)| matches!(*outcome, "succeeded" | "overlap")),
        "a run lost its lease or failed: {outcomes:?}"
    );
    // Every tick while a run lasted was refused as an overlap: the 1 s lease was kept alive
    // for the 3 s the body ran.
    for span in &spans {
        for tick in (span.tick + 1000..span.tick + 3000).step_by(1000) {
            if tick > *ran.iter().next_back().unwrap_or(&0) {
                continue;
            }
            assert!(
                overlaps.contains(&tick),
                "tick {tick}, during the run of {}, was not an overlap: {outcomes:?}",
                span.tick
            );
        }
    }
    assert!(!fleet.stderr().contains("lease lost"), "{}", fleet.stderr());
}

/// Redis stops while a run with a 1 s lease lasts: renewals fail, and within about a TTL the
/// run is told (its context is cancelled) and the loss is logged as an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_loses_its_lease_is_cancelled_and_the_loss_is_logged() {
    let mut server = RedisServer::start();
    let recorder = RedisServer::start();
    let (url, record_url) = (server.url(), recorder.url());
    let namespace = "lease-loss";
    let mut fleet = Fleet::new(WORKER);
    fleet.start(
        "a",
        &[
            "--url",
            &url,
            "--record-url",
            &record_url,
            "--namespace",
            namespace,
            "--jobs",
            "1",
            "--schedule",
            "*/2 * * * * *",
            "--lease-ttl-ms",
            "1000",
            "--body-ms",
            "20000",
            "--on-cancel",
            "stop",
        ],
    );
    let ran = fleet
        .wait_for(Duration::from_secs(20), "a run of job-0", |e| {
            e.ran("job-0").is_some()
        })
        .await;
    let tick = ran.ran("job-0").unwrap_or_default();
    let stopped_at = now_ms();
    tokio::task::block_in_place(|| server.stop());
    let cancelled = fleet
        .wait_for(
            Duration::from_secs(10),
            "the run's context to be cancelled",
            |e| {
                e.line
                    == (Line::Cancelled {
                        job: "job-0".to_string(),
                        tick,
                    })
            },
        )
        .await;
    let delay = cancelled.wall_ms - stopped_at;
    fleet
        .worker("a")
        .wait_for_log(Duration::from_secs(5), &["ERROR", "lease lost"])
        .await;
    let logged = fleet.worker("a").stderr();
    let lease_lost: Vec<&str> = logged
        .lines()
        .filter(|line| line.contains("ERROR") && line.contains("lease lost"))
        .collect();
    eprintln!("cancelled {delay} ms after Redis stopped; logged: {lease_lost:?}");
    assert!(
        delay <= 1000 + 4000,
        "cancelled only {delay} ms after Redis stopped (lease TTL 1000 ms)"
    );
    assert_eq!(lease_lost.len(), 1, "stderr:\n{logged}");
    fleet.assert_all_running();
}
