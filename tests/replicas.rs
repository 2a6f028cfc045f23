//! Replica-acknowledged claims (`wait_for_replicas`): a claim too few replicas have is not
//! run, and the lost-write drill, which shows the failover limit of asynchronous replication
//! and what the acknowledgement changes. Real `redis-server` primaries and replicas on free
//! loopback ports; the failover is the promotion of a replica (`REPLICAOF NO ONE`), as
//! Sentinel makes it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fourit::Overlap;
use fourit::Scheduler;
use fourit::coordinator::{
    ClaimOutcome, ClaimRequest, ConnectOptions, Coordinator, RedisCoordinator, new_claim_id,
};
use fourit_tests::RedisServer;
use fourit_tests::faults::wait_for_history;

const NAMESPACE: &str = "replicas";
/// A realistic tick: 2026-01-01T00:00:00Z (the claims below are for ticks in the past).
const T0: i64 = 1_767_225_600_000;

fn request(job: &str, tick_ms: i64, node: &str) -> ClaimRequest {
    ClaimRequest {
        job: Arc::from(job),
        tick_ms,
        node: Arc::from(node),
        lease_ttl: Duration::from_secs(30),
        overlap: Overlap::Skip,
        preferred: None,
        handoff: Duration::ZERO,
        claim_id: new_claim_id(),
        schedule: None,
    }
}

async fn claim(c: &RedisCoordinator, request: ClaimRequest) -> ClaimOutcome {
    let mut outcomes = c
        .claim(std::slice::from_ref(&request))
        .await
        .unwrap_or_else(|e| panic!("claim of {request:?}: {e}"));
    outcomes.pop().expect("one answer")
}

async fn connect(url: &str, options: &ConnectOptions) -> RedisCoordinator {
    RedisCoordinator::connect_with_options(url, NAMESPACE, options)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// A primary with one replica in sync.
fn pair() -> (RedisServer, RedisServer) {
    let primary = RedisServer::start();
    let replica = RedisServer::builder().replica_of(primary.port()).start();
    primary.wait_for_replicas(1);
    (primary, replica)
}

/// Runs one command (its words) on `node`, panicking with its text if it fails.
async fn on_node<T: redis::FromRedisValue>(node: &RedisServer, words: &[&str]) -> T {
    let mut cmd = redis::cmd(words[0]);
    for word in &words[1..] {
        cmd.arg(*word);
    }
    let mut conn = node.connection().await;
    cmd.query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", words.join(" ")))
}

/// Options with `acks` replica acknowledgements (200 ms), or none.
fn acks_options(acks: Option<usize>) -> ConnectOptions {
    match acks {
        Some(replicas) => {
            ConnectOptions::new().wait_for_replicas(replicas, Duration::from_millis(200))
        }
        None => ConnectOptions::new(),
    }
}

/// Freezes `replica` and cuts its link on `primary`: the writes that follow reach the
/// primary only. (SIGSTOP alone would not lose them: they would wait in the replica's socket
/// buffer.)
async fn cut_off(primary: &RedisServer, replica: &RedisServer) {
    replica.signal("STOP");
    let killed: i64 = on_node(primary, &["CLIENT", "KILL", "TYPE", "replica"]).await;
    assert_eq!(killed, 1, "the replica's link was cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_runs_only_once_enough_replicas_acknowledge_it() {
    let (primary, replica) = pair();
    let one = connect(
        &primary.url(),
        &ConnectOptions::new().wait_for_replicas(1, Duration::from_secs(1)),
    )
    .await;
    assert!(
        matches!(
            claim(&one, request("acked", T0, "a")).await,
            ClaimOutcome::Run(_)
        ),
        "one replica is there to acknowledge"
    );
    // Asking for more replicas than there are: the claim is decided, but not run.
    let two = connect(
        &primary.url(),
        &ConnectOptions::new().wait_for_replicas(2, Duration::from_millis(20)),
    )
    .await;
    match claim(&two, request("acked-two", T0 + 1000, "b")).await {
        ClaimOutcome::NotDurable {
            acknowledged,
            wanted,
            lease,
        } => {
            assert_eq!((acknowledged, wanted), (1, 2));
            assert_eq!(lease.tick_ms, T0 + 1000);
        }
        other => panic!("expected NotDurable, got {other:?}"),
    }
    // The URL form does the same.
    let url = format!("{}?wait_replicas=2&wait_timeout=20ms", primary.url());
    let from_url = connect(&url, &ConnectOptions::new()).await;
    assert!(matches!(
        claim(&from_url, request("acked-url", T0 + 2000, "c")).await,
        ClaimOutcome::NotDurable {
            acknowledged: 1,
            wanted: 2,
            ..
        }
    ));
    // A frozen replica acknowledges nothing: the claim waits out the timeout, then is refused.
    replica.signal("STOP");
    let frozen = claim(&one, request("acked-frozen", T0 + 3000, "a")).await;
    replica.signal("CONT");
    assert!(
        matches!(
            frozen,
            ClaimOutcome::NotDurable {
                acknowledged: 0,
                wanted: 1,
                ..
            }
        ),
        "{frozen:?}"
    );

    // Mistakes are errors at start.
    for (options, says) in [
        (
            ConnectOptions::new().wait_for_replicas(0, Duration::from_millis(20)),
            "at least 1",
        ),
        (
            ConnectOptions::new().wait_for_replicas(1, Duration::ZERO),
            "from 1 ms",
        ),
        (
            ConnectOptions::new().wait_for_replicas(1, Duration::from_secs(5)),
            "from 1 ms",
        ),
    ] {
        let err = RedisCoordinator::connect_with_options(&primary.url(), NAMESPACE, &options)
            .await
            .expect_err("a bad wait_for_replicas");
        assert!(err.to_string().contains(says), "{err}");
    }
    let err = fourit::coordinator::connect_with(
        "memory://",
        NAMESPACE,
        &ConnectOptions::new().wait_for_replicas(1, Duration::from_millis(20)),
    )
    .await
    .expect_err("memory:// has no replicas");
    assert!(err.to_string().contains("no replicas"), "{err}");
    let err =
        fourit::coordinator::connect(&format!("{}?wait_timeout=1s", primary.url()), NAMESPACE)
            .await
            .expect_err("a timeout without a count");
    assert!(err.to_string().contains("needs wait_replicas"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_does_not_run_a_tick_too_few_replicas_acknowledged_and_records_it() {
    let (primary, _replica) = pair();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let scheduler = Scheduler::builder()
        .url(&primary.url())
        .namespace(NAMESPACE)
        .registered_jobs(false)
        .wait_for_replicas(2, Duration::from_millis(20))
        .add_job("guarded", "* * * * * *", move |_| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap_or_else(|e| panic!("build: {e}"));
    let handle = scheduler.handle();
    let running = tokio::spawn(scheduler.run());
    let mut conn = primary.connection().await;
    let entries = wait_for_history(
        &mut conn,
        NAMESPACE,
        "guarded",
        Duration::from_secs(10),
        |entries| entries.len() >= 2,
    )
    .await;
    handle.stop();
    running
        .await
        .expect("the scheduler task")
        .unwrap_or_else(|e| panic!("run: {e}"));
    let outcomes: Vec<&str> = entries
        .iter()
        .map(|entry: &HashMap<String, String>| entry["outcome"].as_str())
        .collect();
    assert!(
        outcomes.iter().all(|outcome| *outcome == "not replicated"),
        "{outcomes:?}"
    );
    assert_eq!(
        entries[0].get("detail").map(String::as_str),
        Some("1 of 2 replicas acknowledged the claim")
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "no run without the acknowledgement"
    );
}

/// With replica acks, the drill's unacknowledged claim is not run and the promoted
/// replica's claim is the only run.
fn assert_acknowledged_drill(first: &ClaimOutcome, fresh: &ClaimOutcome) {
    assert!(
        matches!(
            first,
            ClaimOutcome::NotDurable {
                acknowledged: 0,
                wanted: 1,
                ..
            }
        ),
        "{first:?}"
    );
    assert!(matches!(fresh, ClaimOutcome::Run(_)), "{fresh:?}");
}

/// The lost-write drill: the replica is frozen and cut off, a claim lands on the primary
/// only, the primary dies, the replica is thawed and promoted, and a fresh process claims the
/// same tick on it. Answers whether the first claim ran and what the fresh claim got.
async fn lost_write_drill(acks: Option<usize>) -> (ClaimOutcome, ClaimOutcome) {
    let (mut primary, replica) = pair();
    let first = connect(&primary.url(), &acks_options(acks)).await;
    cut_off(&primary, &replica).await;
    let tick = T0 + 60_000;
    let on_primary = claim(&first, request("report", tick, "node-a")).await;
    primary.kill();
    replica.signal("CONT");
    let () = on_node(&replica, &["REPLICAOF", "NO", "ONE"]).await;
    // A fresh process, within the tick's grace, on the promoted replica.
    let fresh = connect(&replica.url(), &ConnectOptions::new()).await;
    let after = claim(&fresh, request("report", tick, "node-b")).await;
    drop(first);
    (on_primary, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_replica_acks_a_claim_lost_in_a_failover_runs_the_tick_twice() {
    let (first, fresh) = lost_write_drill(None).await;
    eprintln!("without wait_for_replicas: the first claim {first:?}, the fresh one {fresh:?}");
    // The limit, made visible: both claims are told to run the same tick.
    assert!(matches!(first, ClaimOutcome::Run(_)), "{first:?}");
    assert!(matches!(fresh, ClaimOutcome::Run(_)), "{fresh:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replica_acks_a_claim_lost_in_a_failover_never_runs_twice() {
    let (first, fresh) = lost_write_drill(Some(1)).await;
    eprintln!("with wait_for_replicas(1): the first claim {first:?}, the fresh one {fresh:?}");
    // The unacknowledged claim is not run; the promoted replica's claim is the only run.
    assert_acknowledged_drill(&first, &fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_claim_survives_the_promotion_of_its_replica() {
    let (mut primary, replica) = pair();
    let first = connect(
        &primary.url(),
        &ConnectOptions::new().wait_for_replicas(1, Duration::from_secs(1)),
    )
    .await;
    let tick = T0 + 60_000;
    let acked = claim(&first, request("report", tick, "node-a")).await;
    assert!(
        matches!(acked, ClaimOutcome::Run(_)),
        "{acked:?}\n{}\n{}\n{}",
        primary.info("replication").unwrap_or_default(),
        primary.log(),
        replica.log()
    );
    primary.kill();
    let mut promoted = replica.connection().await;
    let () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut promoted)
        .await
        .unwrap_or_else(|e| panic!("REPLICAOF NO ONE: {e}"));
    let fresh = connect(&replica.url(), &ConnectOptions::new()).await;
    assert_eq!(
        claim(&fresh, request("report", tick, "node-b")).await,
        ClaimOutcome::Taken,
        "the promoted replica has the claim"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_primary_answers_readonly_which_is_an_outage_not_a_run() {
    let (primary, other) = (RedisServer::start(), RedisServer::start());
    let c = connect(&primary.url(), &ConnectOptions::new()).await;
    let mut admin = primary.connection().await;
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(other.port())
        .query_async(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("REPLICAOF: {e}"));
    // Refused as unanswered (the claim alone) or as an error (the call): never a run.
    let refused = match c.claim(&[request("demoted", T0, "node-a")]).await {
        Ok(outcomes) => match &outcomes[..] {
            [ClaimOutcome::Undecided { detail }] => detail.clone(),
            other => panic!("a replica must refuse the claim: {other:?}"),
        },
        Err(err) => {
            assert!(err.is_unavailable(), "{err:?}");
            err.to_string()
        }
    };
    assert!(
        refused.contains("ReadOnly") || refused.contains("READONLY"),
        "{refused}"
    );
    // Promoted again: the coordinator connects afresh and claims work.
    let () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("REPLICAOF NO ONE: {e}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match c.claim(&[request("demoted", T0 + 1000, "node-a")]).await {
            Ok(outcomes) => {
                assert!(
                    matches!(outcomes[..], [ClaimOutcome::Run(_)]),
                    "{outcomes:?}"
                );
                break;
            }
            Err(err) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still failing: {err}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The lost-write drill on a Redis Cluster, as the issue of record describes it: the replica
/// of the job's primary is frozen and cut off, a claim lands on the primary, the primary is
/// SIGKILLed, the replica thawed and promoted with `CLUSTER FAILOVER TAKEOVER`, and a fresh
/// coordinator claims the same tick through the cluster.
async fn lost_write_drill_on_cluster(acks: Option<usize>) -> (ClaimOutcome, ClaimOutcome) {
    let mut cluster = fourit_tests::RedisCluster::start(3, 1);
    let url = cluster.url();
    let first = connect(&url, &acks_options(acks)).await;
    // The primary owning the job's slot, and its replica.
    let key = format!("{NAMESPACE}:{{report}}");
    let mut conn = cluster.connection().await;
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CLUSTER KEYSLOT: {e}"));
    drop(conn);
    let (mut primary, mut replica) = (None, None);
    for (index, node) in cluster.nodes().iter().enumerate() {
        let info = node.info("replication").unwrap_or_default();
        let nodes: String = on_node(node, &["CLUSTER", "NODES"]).await;
        let mine = nodes
            .lines()
            .find(|line| line.contains("myself"))
            .unwrap_or_default();
        let owns = mine.split_whitespace().skip(8).any(|range| {
            let (low, high) = range.split_once('-').unwrap_or((range, range));
            matches!((low.parse::<u16>(), high.parse::<u16>()), (Ok(l), Ok(h)) if (l..=h).contains(&slot))
        });
        if owns && info.contains("role:master") {
            primary = Some((index, node.port()));
        }
    }
    let (primary_index, primary_port) = primary.expect("a primary owns the slot");
    for (index, node) in cluster.nodes().iter().enumerate() {
        let info = node.info("replication").unwrap_or_default();
        if info.contains("role:slave") && info.contains(&format!("master_port:{primary_port}")) {
            replica = Some(index);
        }
    }
    let replica_index = replica.expect("the primary has a replica");
    let nodes = cluster.nodes();
    cut_off(&nodes[primary_index], &nodes[replica_index]).await;
    let tick = T0 + 60_000;
    let on_primary = claim(&first, request("report", tick, "node-a")).await;
    drop(first);
    cluster.nodes()[primary_index].kill();
    cluster.nodes()[replica_index].signal("CONT");
    let () = on_node(
        &cluster.nodes()[replica_index],
        &["CLUSTER", "FAILOVER", "TAKEOVER"],
    )
    .await;
    cluster
        .wait_ready(Duration::from_secs(20))
        .unwrap_or_else(|why| panic!("{why}"));
    // A fresh process, within the tick's grace, through the cluster.
    let fresh = connect(&url, &ConnectOptions::new()).await;
    let after = claim(&fresh, request("report", tick, "node-b")).await;
    (on_primary, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_lost_claim_runs_twice_without_replica_acks_and_once_with_them() {
    let (first, fresh) = lost_write_drill_on_cluster(None).await;
    eprintln!("cluster, without wait_for_replicas: {first:?}, then {fresh:?}");
    assert!(matches!(first, ClaimOutcome::Run(_)), "{first:?}");
    assert!(
        matches!(fresh, ClaimOutcome::Run(_)),
        "the limit: {fresh:?}"
    );
    let (first, fresh) = lost_write_drill_on_cluster(Some(1)).await;
    eprintln!("cluster, with wait_for_replicas(1): {first:?}, then {fresh:?}");
    assert_acknowledged_drill(&first, &fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_acks_need_wait_beyond_the_minimal_acl_and_say_so_at_start() {
    let (primary, _replica) = pair();
    // The README's minimal ACL, as written, with the namespace of these tests.
    let words: Vec<String> = fourit_tests::readme_acl()
        .into_iter()
        .map(|word| word.replace("fourit:*", &format!("{NAMESPACE}:*")))
        .collect();
    let password = words
        .iter()
        .find_map(|word| word.strip_prefix('>'))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no password in {words:?}"));
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let () = on_node(&primary, &words).await;
    let url = primary.url_with("fourit", &password);
    let acks = ConnectOptions::new().wait_for_replicas(1, Duration::from_millis(200));
    let err = RedisCoordinator::connect_with_options(&url, NAMESPACE, &acks)
        .await
        .expect_err("WAIT is not in the minimal ACL");
    assert_eq!(
        err.coordinator_kind(),
        Some(fourit::ErrorKind::Permission),
        "{err}"
    );
    assert!(err.to_string().contains("wait"), "names the command: {err}");
    assert!(!err.to_string().contains(&password), "{err}");
    // Without replica acks the minimal ACL is enough; with `+wait` added, acks work.
    connect(&url, &ConnectOptions::new()).await;
    let () = on_node(&primary, &["ACL", "SETUSER", "fourit", "+wait"]).await;
    let c = connect(&url, &acks).await;
    assert!(matches!(
        claim(&c, request("acl", T0, "node-a")).await,
        ClaimOutcome::Run(_)
    ));
}
