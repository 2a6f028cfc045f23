//! Redis Sentinel: a fleet of real worker processes on a real deployment (one primary, two
//! replicas, three sentinels) started from `redis-server` on free loopback ports, through a
//! graceful `SENTINEL FAILOVER` and a SIGKILL of the primary; and the URL mistakes.

use std::time::Duration;

use fourit::Scheduler;
use fourit_tests::faults::{Fleet, Records, assert_no_double_runs, distinct_ticks, now_ms};
use fourit_tests::{RedisServer, SentinelGroup};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const JOBS: [&str; 3] = ["job-0", "job-1", "job-2"];

/// Starts three workers on `group`, recording on `records`.
fn start_fleet(group: &SentinelGroup, records: &RedisServer, namespace: &str) -> Fleet {
    let (url, record_url) = (group.url(), records.url());
    let mut fleet = Fleet::new(WORKER);
    fleet.start_recording(
        &["s-a", "s-b", "s-c"],
        &url,
        namespace,
        3,
        &record_url,
        "warn,redis=error",
    );
    fleet
}

/// Each job's missed ticks at or after `since_ms`; no tick ran twice (asserted).
async fn missed_since(records: &RedisServer, namespace: &str, since_ms: i64) -> Vec<Vec<i64>> {
    let records = Records::read(&mut records.connection().await, namespace).await;
    assert_no_double_runs(&records, &JOBS, since_ms)
}

async fn wait_ticks(fleet: &mut Fleet, since_ms: i64, ticks: usize, what: &str) {
    fleet
        .wait_until(Duration::from_secs(60), what, |events| {
            JOBS.iter()
                .all(|job| distinct_ticks(events, job, since_ms, None) >= ticks)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_sentinel_failover_runs_no_tick_twice_and_misses_at_most_one() {
    let group = SentinelGroup::start(2, 3);
    let records = RedisServer::start();
    let namespace = "sentinel-graceful";
    let mut fleet = start_fleet(&group, &records, namespace);
    wait_ticks(&mut fleet, 0, 4, "4 ticks of every job").await;
    let before = group.primary_port().unwrap_or_else(|why| panic!("{why}"));
    group.failover().unwrap_or_else(|why| panic!("{why}"));
    let failed_over_ms = now_ms();
    wait_ticks(
        &mut fleet,
        failed_over_ms,
        6,
        "6 ticks of every job after the failover",
    )
    .await;
    let after = group.primary_port().unwrap_or_else(|why| panic!("{why}"));
    assert_ne!(before, after, "the sentinels promoted a replica");
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;
    for (job, missed) in JOBS
        .iter()
        .zip(missed_since(&records, namespace, failed_over_ms - 1000).await)
    {
        assert!(
            missed.len() <= 1,
            "{job}: {missed:?} missed in a graceful failover"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sentinel_primary_is_followed_and_no_tick_runs_twice() {
    let mut group = SentinelGroup::start(2, 3);
    let records = RedisServer::start();
    let namespace = "sentinel-kill";
    let mut fleet = start_fleet(&group, &records, namespace);
    wait_ticks(&mut fleet, 0, 4, "4 ticks of every job").await;
    let victim = group.primary_port().unwrap_or_else(|why| panic!("{why}"));
    group.node(victim).kill();
    let killed_ms = now_ms();
    wait_ticks(
        &mut fleet,
        killed_ms,
        6,
        "6 ticks of every job after the kill",
    )
    .await;
    let promoted = group.primary_port().unwrap_or_else(|why| panic!("{why}"));
    assert_ne!(promoted, victim, "the sentinels promoted a replica");
    let resumed = fleet
        .events()
        .iter()
        .filter_map(|event| event.ran("job-0"))
        .filter(|tick| *tick > killed_ms)
        .min()
        .unwrap_or_default();
    eprintln!(
        "primary {victim} killed at {killed_ms}; {promoted} promoted; the first tick after it ran \
         {} ms after the kill",
        resumed - killed_ms
    );
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;
    for (job, missed) in JOBS
        .iter()
        .zip(missed_since(&records, namespace, killed_ms - 1000).await)
    {
        // Down-after 1 s, then the election and the promotion: the ticks due meanwhile.
        assert!(
            missed.len() <= 10,
            "{job}: {missed:?} missed after the kill"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_url_with_an_unknown_master_name_is_an_error() {
    let group = SentinelGroup::start(0, 1);
    let url = group.url().replace("/main", "/nosuch");
    let err = Scheduler::builder()
        .url(&url)
        .registered_jobs(false)
        .add_job("noop", "* * * * * *", |_| async {})
        .build()
        .unwrap_or_else(|e| panic!("build: {e}"))
        .run()
        .await
        .expect_err("an unknown master name must be an error");
    let text = err.to_string();
    assert!(
        text.contains("no sentinel knows a master named `nosuch`"),
        "{text}"
    );

    // With a password in the URL: the error never shows it.
    let url = url.replace("redis+sentinel://", "redis+sentinel://app:hunter2@");
    let err = fourit::coordinator::connect(&url, "fourit")
        .await
        .expect_err("still unknown");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");

    // Sentinels that do not answer: an outage (retried by the scheduler), not a mistake.
    let dead = RedisServer::start();
    let port = dead.port();
    drop(dead);
    let err = fourit::coordinator::connect(
        &format!("redis+sentinel://app:hunter2@127.0.0.1:{port}/main"),
        "fourit",
    )
    .await
    .expect_err("no sentinel answers");
    assert!(err.is_unavailable(), "{err:?}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}
