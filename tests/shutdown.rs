//! Graceful shutdown: on SIGTERM a worker stops claiming, lets a running job finish within the
//! shutdown timeout, releases its lease (so the next tick, elsewhere, is no overlap) and exits
//! with status 0; a run that outlasts the shutdown timeout is cancelled and the process still
//! exits, with status 0, soon after the timeout.

use std::collections::HashMap;
use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::faults::{Fleet, Line, wait_for_history};
use tokio::time::Instant;

const WORKER: &str = env!("CARGO_BIN_EXE_worker");

fn field<'a>(entry: &'a HashMap<String, String>, name: &str) -> &'a str {
    entry.get(name).map(String::as_str).unwrap_or_default()
}

async fn lease_exists(conn: &mut redis::aio::MultiplexedConnection, namespace: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(format!("{namespace}:{{job-0}}:lease"))
        .query_async::<i64>(conn)
        .await
        .unwrap_or_else(|err| panic!("EXISTS: {err}"))
        == 1
}

/// A 2 s job every 3 s on two workers; the one running it gets SIGTERM as the run starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_run_finish_releases_the_lease_and_exits_zero() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "shutdown-finish";
    let mut fleet = Fleet::new(WORKER);
    for node in ["a", "b"] {
        fleet.start_on(
            node,
            &url,
            namespace,
            &[
                "--jobs",
                "1",
                "--schedule",
                "*/3 * * * * *",
                "--body-ms",
                "2000",
                "--shutdown-timeout-ms",
                "10000",
            ],
        );
    }
    // A run that started on time (not the late catch-up run of the tick before start).
    let started = fleet
        .wait_for(Duration::from_secs(20), "an on-time run of job-0", |e| {
            e.ran("job-0").is_some_and(|tick| e.wall_ms - tick < 500)
        })
        .await;
    let tick = started.ran("job-0").unwrap_or_default();
    let victim = started.node.clone();
    let other = if victim == "a" { "b" } else { "a" };
    let term_at = Instant::now();
    fleet.worker(&victim).terminate();
    let status = fleet
        .worker(&victim)
        .wait(Duration::from_secs(10 + 3))
        .await
        .unwrap_or_else(|| panic!("{victim} did not exit within the shutdown timeout + 3 s"));
    let exit_after = term_at.elapsed();
    let finished = fleet
        .wait_for(Duration::from_secs(1), "the run's `done` line", |e| {
            e.node == victim
                && e.line
                    == (Line::Done {
                        job: "job-0".to_string(),
                        tick,
                    })
        })
        .await;
    let mut conn = server.connection().await;
    let lease_left = lease_exists(&mut conn, namespace).await;
    let next = fleet
        .wait_for(
            Duration::from_secs(6),
            "the next tick on the other worker",
            |e| e.ran("job-0").is_some_and(|t| t > tick),
        )
        .await;
    let next_tick = next.ran("job-0").unwrap_or_default();
    let entries = wait_for_history(
        &mut conn,
        namespace,
        "job-0",
        Duration::from_secs(10),
        |entries| {
            entries
                .iter()
                .any(|e| field(e, "tick") == next_tick.to_string())
        },
    )
    .await;
    fleet.stop_all(Duration::from_secs(20)).await;

    eprintln!(
        "{victim} exited {} ms after SIGTERM ({status}); its run of {tick} finished {} ms \
         after the tick; lease left behind: {lease_left}; next tick {next_tick} ran on {}",
        exit_after.as_millis(),
        finished.wall_ms - tick,
        next.node
    );
    assert!(status.success(), "{victim} exited with {status}");
    assert!(exit_after < Duration::from_secs(10));
    assert!(!lease_left, "the lease was not released on shutdown");
    assert_eq!(next_tick, tick + 3000, "the next tick did not run");
    assert_eq!(next.node, other);
    let outcome_of = |t: i64| -> Vec<&str> {
        entries
            .iter()
            .filter(|e| field(e, "tick") == t.to_string())
            .map(|e| field(e, "outcome"))
            .collect()
    };
    assert_eq!(outcome_of(tick), ["succeeded"], "{entries:?}");
    assert_eq!(outcome_of(next_tick), ["succeeded"], "{entries:?}");
}

/// A 30 s job that ignores cancellation, with a 1 s shutdown timeout: after SIGTERM its
/// context is cancelled at once, the run is dropped after 1 s (recorded as `cancelled`), the
/// lease is released and the process exits with status 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_outlasting_the_shutdown_timeout_is_cancelled_and_the_process_exits() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "shutdown-timeout";
    let mut fleet = Fleet::new(WORKER);
    fleet.start_on(
        "a",
        &url,
        namespace,
        &[
            "--jobs",
            "1",
            "--schedule",
            "*/2 * * * * *",
            "--body-ms",
            "30000",
            "--on-cancel",
            "ignore",
            "--shutdown-timeout-ms",
            "1000",
        ],
    );
    let started = fleet
        .wait_for(Duration::from_secs(20), "a run of job-0", |e| {
            e.ran("job-0").is_some()
        })
        .await;
    let tick = started.ran("job-0").unwrap_or_default();
    let term_at = Instant::now();
    let term_wall = fourit_tests::faults::now_ms();
    fleet.worker("a").terminate();
    let cancelled = fleet
        .wait_for(
            Duration::from_secs(3),
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
    let status = fleet
        .worker("a")
        .wait(Duration::from_secs(1 + 4))
        .await
        .unwrap_or_else(|| panic!("the worker did not exit within 5 s of SIGTERM"));
    let exit_after = term_at.elapsed();
    let mut conn = server.connection().await;
    let entries = wait_for_history(
        &mut conn,
        namespace,
        "job-0",
        Duration::from_secs(1),
        |entries| !entries.is_empty(),
    )
    .await;
    let lease_left = lease_exists(&mut conn, namespace).await;
    eprintln!(
        "context cancelled {} ms after SIGTERM; exited {} ms after SIGTERM ({status}); \
         history {entries:?}; lease left: {lease_left}",
        cancelled.wall_ms - term_wall,
        exit_after.as_millis()
    );
    assert!(status.success(), "exited with {status}");
    assert!(
        exit_after >= Duration::from_millis(900),
        "exited before the shutdown timeout"
    );
    assert!(exit_after <= Duration::from_secs(1 + 2));
    assert!(cancelled.wall_ms - term_wall < 1000);
    assert!(!lease_left, "the lease was not released");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(field(&entries[0], "tick"), tick.to_string());
    assert_eq!(field(&entries[0], "outcome"), "cancelled");
    assert!(
        !fleet
            .events()
            .iter()
            .any(|e| matches!(e.line, Line::Done { .. })),
        "the dropped run printed `done`"
    );
}
