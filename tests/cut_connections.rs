//! Connections cut under a running fleet: `CLIENT KILL TYPE normal` (the claim, heartbeat and
//! release connections) and `CLIENT KILL TYPE pubsub` (the notice subscriptions), several
//! times while real worker processes run their jobs on a real `redis-server`. A cut claim is
//! sent again and answered `Resumed` when it had won, so no tick runs twice and none is
//! missed.

use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::faults::{Fleet, Records, assert_no_double_runs, distinct_ticks, now_ms};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const JOBS: [&str; 3] = ["job-0", "job-1", "job-2"];
/// How many times each kind of connection is cut.
const CUTS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_while_jobs_run_cost_no_tick_and_run_none_twice() {
    let server = RedisServer::start();
    // The records live elsewhere: the cuts are for the coordinator's connections only.
    let records = RedisServer::start();
    let (url, record_url) = (server.url(), records.url());
    let namespace = "cut";
    let mut fleet = Fleet::new(WORKER);
    fleet.start_recording(
        &["k-a", "k-b", "k-c"],
        &url,
        namespace,
        3,
        &record_url,
        "info,fourit=debug",
    );
    fleet
        .wait_until(Duration::from_secs(60), "3 ticks of every job", |events| {
            JOBS.iter()
                .all(|job| distinct_ticks(events, job, 0, None) >= 3)
        })
        .await;
    let first_cut = now_ms();
    let mut conn = server.connection().await;
    let mut cut = [0i64; 2];

    for round in 0..CUTS {
        // Each worker connects again on its next call: cut once all three have.
        for (kind, want) in [("normal", 4), ("pubsub", 3)] {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let list: String = redis::cmd("CLIENT")
                    .arg("LIST")
                    .arg("TYPE")
                    .arg(kind)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("CLIENT LIST: {e}"));
                if list.lines().count() >= want {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the workers did not connect again ({kind}): {list}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        for (index, kind) in ["normal", "pubsub"].into_iter().enumerate() {
            // The test's own connection is spared (SKIPME defaults to yes).
            let killed: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg(kind)
                .query_async(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("CLIENT KILL TYPE {kind}: {e}"));
            cut[index] += killed;
        }
        // At different points of the second: before, at and after the ticks.
        let offset = 130 * (round as u64 % 7) + 370;
        tokio::time::sleep(Duration::from_millis(offset)).await;
    }
    let last_cut = now_ms();
    eprintln!(
        "cut {} normal and {} pub/sub connections in {CUTS} rounds over {} ms",
        cut[0],
        cut[1],
        last_cut - first_cut
    );
    // At least every worker's connection and subscription each round; a worker may hold a
    // second connection for a moment (a reconnect attempt that overlapped the one that
    // succeeded, before it is dropped), and cutting it too is part of the drill.
    assert!(
        cut.iter().all(|killed| *killed >= 3 * CUTS as i64),
        "every round cut every worker's connection and subscription: {cut:?}"
    );
    fleet
        .wait_until(
            Duration::from_secs(60),
            "3 ticks of every job after the last cut",
            |events| {
                JOBS.iter()
                    .all(|job| distinct_ticks(events, job, last_cut, None) >= 3)
            },
        )
        .await;
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;

    let records = Records::read(&mut records.connection().await, namespace).await;
    let missed = assert_no_double_runs(&records, &JOBS, 0);
    if missed.iter().any(|missed| !missed.is_empty()) {
        eprintln!("{}", fleet.stderr());
    }
    assert!(missed.iter().all(Vec::is_empty), "ticks missed: {missed:?}");
}
