//! Redis Cluster: a fleet of real worker processes on a real three-primary, three-replica
//! cluster started from `redis-server` on free loopback ports, and the URL mistakes a new user
//! makes. (The conformance suite runs every shared case on a cluster too: `cluster::*`.)

use std::collections::BTreeSet;
use std::time::Duration;

use fourit::{ErrorKind, Scheduler};
use fourit_tests::faults::{Fleet, Records, distinct_ticks, tick_report};
use fourit_tests::{RedisCluster, RedisServer};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const JOBS: [&str; 4] = ["job-0", "job-1", "job-2", "job-3"];
const TICKS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_a_cluster_runs_each_tick_once() {
    let cluster = RedisCluster::start(3, 1);
    // The workers record their runs on a plain server of their own (their record keys are
    // not hash-tagged for a cluster).
    let records = RedisServer::start();
    let url = cluster.url();
    let record_url = records.url();
    let namespace = "cluster-fleet";
    let mut fleet = Fleet::new(WORKER);
    for node in ["c-a", "c-b", "c-c"] {
        fleet.start_on(
            node,
            &url,
            namespace,
            &["--jobs", "4", "--body-ms", "5", "--record-url", &record_url],
        );
    }
    fleet
        .wait_until(
            Duration::from_secs(60),
            &format!("{TICKS} distinct ticks of every job"),
            |events| {
                JOBS.iter()
                    .all(|job| distinct_ticks(events, job, 0, None) >= TICKS)
            },
        )
        .await;
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;

    let records = Records::read(&mut records.connection().await, namespace).await;
    let mut nodes = BTreeSet::new();
    for job in JOBS {
        let ticks = records.ticks(job);
        let report = tick_report(&ticks, 1000);
        eprintln!(
            "{job}: {} ticks, doubles {:?}, missing {:?}",
            report.ran, report.doubles, report.missing
        );
        assert!(report.ran >= TICKS, "{job}: only {} ticks ran", report.ran);
        assert_eq!(report.doubles, vec![], "{job}: ticks that ran twice");
        assert_eq!(report.missing, Vec::<i64>::new(), "{job}: ticks missed");
        nodes.extend(ticks.values().flatten().cloned());
    }
    assert!(nodes.len() > 1, "every run was on one process: {nodes:?}");
    // The jobs' keys live on different primaries: the claims really were split by slot.
    let mut conn = cluster.connection().await;
    let mut slots = BTreeSet::new();
    for job in JOBS {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(format!("{namespace}:{{{job}}}"))
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("CLUSTER KEYSLOT: {err}"));
        // `redis-cli --cluster create` gives the three primaries equal slot ranges.
        slots.insert(slot / (16384 / 3 + 1));
    }
    eprintln!(
        "the jobs' slots fall in {} of the 3 primaries' ranges",
        slots.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_redis_url_to_a_cluster_node_is_an_error_naming_the_cluster_scheme() {
    let mut cluster = RedisCluster::start(3, 0);
    let node_url = cluster.nodes()[0].url();
    let err = Scheduler::builder()
        .url(&node_url)
        .registered_jobs(false)
        .add_job("never", "* * * * * *", |_| async {})
        .build()
        .unwrap_or_else(|err| panic!("build: {err}"))
        .run_until(std::future::pending())
        .await
        .expect_err("a plain URL to a cluster node must not run");
    let text = err.to_string();
    assert!(
        matches!(err, fourit::Error::InvalidUrl { .. }) && text.contains("redis+cluster://"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_url_to_a_standalone_server_is_an_error() {
    let server = RedisServer::start();
    let url = format!("redis+cluster://127.0.0.1:{}", server.port());
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        Scheduler::builder()
            .url(&url)
            .registered_jobs(false)
            .add_job("never", "* * * * * *", |_| async {})
            .build()
            .unwrap_or_else(|err| panic!("build: {err}"))
            .run_until(std::future::pending()),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer within 20 s: retried as if unreachable"));
    let err = result.expect_err("a cluster URL to a standalone server must not run");
    let text = err.to_string();
    assert!(
        matches!(err, fourit::Error::InvalidUrl { .. }) && text.contains("not a Redis Cluster"),
        "{text}"
    );
    // And a password in such a URL stays out of the message.
    let secret_url = format!("redis+cluster://app:s3cret@127.0.0.1:{}", server.port());
    let err = fourit::coordinator::connect(&secret_url, "ns")
        .await
        .expect_err("refused");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert_ne!(
        err.coordinator_kind(),
        Some(ErrorKind::Unavailable),
        "{err}"
    );
}
