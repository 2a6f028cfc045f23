//! Redis Cluster: a fleet of real worker processes on a real three-primary, three-replica
//! cluster started from `redis-server` on free loopback ports, and the URL mistakes a new user
//! makes. (The conformance suite runs every shared case on a cluster too: `cluster::*`.)

use std::collections::BTreeSet;
use std::time::Duration;

use fourit::{ErrorKind, Scheduler};
use fourit_tests::faults::{Fleet, Records, assert_no_double_runs, distinct_ticks, tick_report};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_cluster_seeds_are_an_outage_error_without_the_password() {
    let (one, two) = (RedisServer::start(), RedisServer::start());
    let url = format!(
        "redis+cluster://app:s3cret@127.0.0.1:{},127.0.0.1:{}",
        one.port(),
        two.port()
    );
    drop((one, two));
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        fourit::coordinator::connect(&url, "ns"),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer within 20 s"))
    .expect_err("no seed answers");
    assert!(err.is_unavailable(), "an outage, retried by `run`: {err:?}");
    assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");
}

/// The primary (its port) that owns `key`'s slot, from `CLUSTER SLOTS`.
async fn owner(conn: &mut redis::cluster_async::ClusterConnection, key: &str) -> u16 {
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap_or_else(|err| panic!("CLUSTER KEYSLOT: {err}"));
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(conn)
        .await
        .unwrap_or_else(|err| panic!("CLUSTER SLOTS: {err}"));
    let number = |value: &redis::Value| match value {
        redis::Value::Int(n) => *n,
        _ => -1,
    };
    for range in ranges {
        if let redis::Value::Array(items) = range
            && items.len() >= 3
            && (number(&items[0])..=number(&items[1])).contains(&slot)
            && let redis::Value::Array(primary) = &items[2]
        {
            return u16::try_from(number(&primary[1])).unwrap_or_default();
        }
    }
    panic!("no primary owns slot {slot}")
}

/// A cluster of three primaries with `replicas` replicas each, a plain server for the
/// workers' records, and three workers (`nodes`) running four every-second jobs there, once
/// each job has run four ticks.
async fn cluster_fleet(
    replicas: usize,
    namespace: &str,
    nodes: &[&str],
) -> (RedisCluster, RedisServer, Fleet) {
    let cluster = RedisCluster::start(3, replicas);
    let records = RedisServer::start();
    let mut fleet = Fleet::new(WORKER);
    // The cluster client warns once a second about a dead node: keep fourit's lines.
    fleet.start_recording(
        nodes,
        &cluster.url(),
        namespace,
        4,
        &records.url(),
        "warn,redis=error",
    );
    fleet
        .wait_until(Duration::from_secs(60), "4 ticks of every job", |events| {
            JOBS.iter()
                .all(|job| distinct_ticks(events, job, 0, None) >= 4)
        })
        .await;
    (cluster, records, fleet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_and_no_tick_runs_twice() {
    let namespace = "cluster-failover";
    let (mut cluster, records, mut fleet) =
        cluster_fleet(1, namespace, &["f-a", "f-b", "f-c"]).await;
    let mut conn = cluster.connection().await;
    let mut owners = Vec::new();
    for job in JOBS {
        owners.push(owner(&mut conn, &format!("{namespace}:{{{job}}}")).await);
    }
    drop(conn);
    let victim = owners[0];
    cluster
        .nodes()
        .iter_mut()
        .find(|node| node.port() == victim)
        .unwrap_or_else(|| panic!("no node on port {victim}"))
        .kill();
    let killed_ms = fourit_tests::faults::now_ms();
    eprintln!("killed primary {victim} at {killed_ms}");
    fleet
        .wait_until(
            Duration::from_secs(60),
            "8 ticks of every job after the kill",
            |events| {
                JOBS.iter()
                    .all(|job| distinct_ticks(events, job, killed_ms, None) >= 8)
            },
        )
        .await;
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;

    let records = Records::read(&mut records.connection().await, namespace).await;
    for (job, owner) in JOBS.iter().zip(&owners) {
        let ticks = records.ticks(job);
        let report = tick_report(&ticks, 1000);
        let on_victim = *owner == victim;
        eprintln!(
            "{job} (primary {owner}{}): {} ticks, doubles {:?}, missing {:?}",
            if on_victim { ", killed" } else { "" },
            report.ran,
            report.doubles,
            report.missing
        );
        assert_eq!(report.doubles, vec![], "{job}: ticks that ran twice");
        // After the kill, only ticks due during the failover may be missed: a job on the
        // killed primary until its replica took over, the others while the client's requests
        // waited on the dead node. (Before the kill is not what this test is about.)
        for tick in report
            .missing
            .iter()
            .filter(|tick| **tick >= killed_ms - 1_000)
        {
            assert!(
                *tick < killed_ms + 15_000,
                "{job}: tick {tick} missed long after the failover (killed at {killed_ms})"
            );
        }
    }
    let resumed = records
        .runs
        .iter()
        .filter(|run| run.job == "job-0" && run.tick > killed_ms)
        .map(|run| run.tick)
        .min()
        .unwrap_or_default();
    eprintln!(
        "job-0 ran again {} ms after its primary was killed",
        resumed - killed_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_cluster_failover_runs_no_tick_twice_and_misses_at_most_one() {
    let namespace = "cluster-graceful";
    let (mut cluster, records, mut fleet) =
        cluster_fleet(1, namespace, &["g-a", "g-b", "g-c"]).await;
    let mut conn = cluster.connection().await;
    let primary = owner(&mut conn, &format!("{namespace}:{{job-0}}")).await;
    drop(conn);
    // The replica of job-0's primary takes over, in agreement with it (`CLUSTER FAILOVER`).
    let mut replica = None;
    for node in cluster.nodes() {
        let info = node.info("replication").unwrap_or_default();
        if info.lines().any(|line| line.trim() == "role:slave")
            && info
                .lines()
                .any(|line| line.trim() == format!("master_port:{primary}"))
        {
            replica = Some(node.port());
        }
    }
    let replica = replica.unwrap_or_else(|| panic!("no replica of {primary}"));
    let client = redis::Client::open(format!("redis://127.0.0.1:{replica}"))
        .unwrap_or_else(|e| panic!("client: {e}"));
    let mut to_replica = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connecting to the replica: {e}"));
    let () = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .query_async(&mut to_replica)
        .await
        .unwrap_or_else(|e| panic!("CLUSTER FAILOVER: {e}"));
    let failed_over_ms = fourit_tests::faults::now_ms();
    fleet
        .wait_until(
            Duration::from_secs(60),
            "6 ticks of every job after the failover",
            |events| {
                JOBS.iter()
                    .all(|job| distinct_ticks(events, job, failed_over_ms, None) >= 6)
            },
        )
        .await;
    let mut conn = cluster.connection().await;
    let now_owner = owner(&mut conn, &format!("{namespace}:{{job-0}}")).await;
    assert_eq!(now_owner, replica, "the replica took over job-0's slot");
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;

    let records = Records::read(&mut records.connection().await, namespace).await;
    let missed = assert_no_double_runs(&records, &JOBS, failed_over_ms - 1_000);
    for (job, missed) in JOBS.iter().zip(missed) {
        assert!(
            missed.len() <= 1,
            "{job}: a graceful failover missed {missed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resharding_while_jobs_run_runs_no_tick_twice() {
    let namespace = "cluster-reshard";
    let (mut cluster, records, mut fleet) =
        cluster_fleet(0, namespace, &["r-a", "r-b", "r-c"]).await;
    let mut conn = cluster.connection().await;
    let owners_before: Vec<u16> = {
        let mut owners = Vec::new();
        for job in JOBS {
            owners.push(owner(&mut conn, &format!("{namespace}:{{{job}}}")).await);
        }
        owners
    };
    let drained = owners_before[0];
    // The primary that owns job-0 gives away every slot, keys and all (`MIGRATE`, with `ASK`
    // redirections while each slot moves), while the fleet claims and releases.
    let id = {
        let node = cluster
            .nodes()
            .iter()
            .find(|node| node.port() == drained)
            .unwrap_or_else(|| panic!("no node on {drained}"));
        let client = node.client();
        let mut to_node = client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connecting to {drained}: {e}"));
        let id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(&mut to_node)
            .await
            .unwrap_or_else(|e| panic!("CLUSTER MYID: {e}"));
        id
    };
    let started_ms = fourit_tests::faults::now_ms();
    let output = tokio::process::Command::new("redis-cli")
        .arg("--cluster")
        .arg("rebalance")
        .arg(format!("127.0.0.1:{drained}"))
        .arg("--cluster-weight")
        .arg(format!("{id}=0"))
        .arg("--cluster-pipeline")
        .arg("10")
        .output()
        .await
        .unwrap_or_else(|e| panic!("running redis-cli --cluster rebalance: {e}"));
    let finished_ms = fourit_tests::faults::now_ms();
    assert!(
        output.status.success(),
        "redis-cli --cluster rebalance failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "moved every slot off {drained} in {} ms",
        finished_ms - started_ms
    );
    cluster
        .wait_ready(Duration::from_secs(20))
        .unwrap_or_else(|why| panic!("{why}"));
    let moved = owner(&mut conn, &format!("{namespace}:{{job-0}}")).await;
    assert_ne!(moved, drained, "job-0's slot moved");
    fleet
        .wait_until(
            Duration::from_secs(60),
            "4 ticks of every job after the resharding",
            |events| {
                JOBS.iter()
                    .all(|job| distinct_ticks(events, job, finished_ms, None) >= 4)
            },
        )
        .await;
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;

    let records = Records::read(&mut records.connection().await, namespace).await;
    let missed = assert_no_double_runs(&records, &JOBS, 0);
    assert!(missed.iter().all(Vec::is_empty), "ticks missed: {missed:?}");
}
