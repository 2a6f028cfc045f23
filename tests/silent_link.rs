//! Silently dropped links, with real worker processes, each reaching the coordinator through
//! a TCP proxy of its own (`fourit_testkit::Proxy`) that can stall or drop every byte with
//! the sockets left open — what a partition, a lost NAT or firewall flow, a load balancer
//! restart or a cloud network blip looks like — and heal again. One drill per backend, in
//! phases:
//!
//! 1. one member on a 150 ms link (each way) through phases 2 and 3;
//! 2. one member's link stalled for 12 s (bytes held, delivered late), then healed: the
//!    others take its ticks (none missed) and it runs jobs again within two heartbeat
//!    intervals of the heal;
//! 3. every member's link dropping every byte for 12 s, then healed: the fleet runs every
//!    tick again within two heartbeat intervals of the heal;
//! 4. every connection cut every 1.5 s for 20 s: nothing missed;
//! 5. a member told to stop (SIGTERM) while cut off: it exits 0 within a call's deadline and
//!    the second it allows itself to leave the members set, and waits for no job.
//!
//! Through it all no tick runs twice (counted from the workers' own records, kept on a Redis
//! the proxies do not touch), and at the end every worker exits 0 on SIGTERM, promptly.
//! The recovery times are printed (`--nocapture`) and recorded in docs/RELIABILITY.md.

use std::time::Duration;

use fourit_tests::faults::{Fleet, Records, assert_no_double_runs, distinct_ticks, now_ms};
use fourit_tests::{LinkMode, PostgresServer, Proxy, RedisServer};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const JOBS: [&str; 3] = ["job-0", "job-1", "job-2"];
const NODES: [&str; 3] = ["s-a", "s-b", "s-c"];
/// The scheduler's default heartbeat interval, which the workers keep.
const HEARTBEAT: Duration = Duration::from_secs(2);
const PARTITION: Duration = Duration::from_secs(12);

/// Waits for the middle of a second: the jobs' 5 ms bodies have ended and their releases are
/// done, so no run is in flight when a link is dropped. (A run in flight then holds its
/// lease until its TTL, as a killed one does, and under `overlap = "skip"` its job's next
/// tick is skipped: RELIABILITY.md says so; this drill is about the links.)
async fn mid_second() {
    let into = now_ms().rem_euclid(1_000);
    let wait = (1_500 - into).rem_euclid(1_000);
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0))).await;
}

/// Starts the 3 recording workers, each on the URL `urls` gives it, and waits for 3 ticks of
/// every job.
async fn start_fleet(backend: &str, urls: &[String], records: &RedisServer) -> (Fleet, String) {
    let namespace = format!("silent-{backend}");
    let mut fleet = Fleet::new(WORKER);
    for (node, url) in NODES.iter().zip(urls) {
        fleet.start_recording(&[node], url, &namespace, JOBS.len(), &records.url(), "info");
    }
    every_job_runs(&mut fleet, 0, 3, "3 ticks of every job").await;
    (fleet, namespace)
}

/// Waits until every job ran `ticks` ticks since `since_ms`.
async fn every_job_runs(fleet: &mut Fleet, since_ms: i64, ticks: usize, what: &str) {
    fleet
        .wait_until(Duration::from_secs(60), what, |events| {
            JOBS.iter()
                .all(|job| distinct_ticks(events, job, since_ms, None) >= ticks)
        })
        .await;
}

/// When the last of `jobs` ran again: the latest of their first ticks at or after `since_ms`.
fn all_back(fleet: &Fleet, jobs: &[&str], since_ms: i64) -> i64 {
    jobs.iter()
        .filter_map(|job| {
            fleet
                .events()
                .iter()
                .filter_map(|event| event.ran(job))
                .filter(|tick| *tick >= since_ms)
                .min()
        })
        .max()
        .unwrap_or(i64::MAX)
}

/// Cuts every connection through `proxies` every 1.5 s for about 20 s; answers how many were
/// cut and when it ended.
async fn cut_repeatedly(proxies: &[&Proxy]) -> (usize, i64) {
    let mut cut = 0;
    for _ in 0..13 {
        for proxy in proxies {
            cut += proxy.cut();
        }
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    (cut, now_ms())
}

/// The recovery limit the drills assert: two heartbeat intervals, plus the second a member
/// back within them may wait for its next tick.
fn recovery_limit_ms() -> i64 {
    2 * i64::try_from(HEARTBEAT.as_millis()).unwrap_or(i64::MAX) + 1_000
}

/// The first tick `node` ran at or after `since_ms`.
fn first_run_since(fleet: &Fleet, node: &str, since_ms: i64) -> Option<i64> {
    fleet
        .events()
        .iter()
        .filter(|event| event.node == node)
        .filter_map(|event| JOBS.iter().find_map(|job| event.ran(job)))
        .filter(|tick| *tick >= since_ms)
        .min()
}

/// Runs the drill on workers whose coordinator URL is `url_via(proxy port)`, the proxies
/// forwarding to the coordinator's `port`.
async fn drill(backend: &str, port: u16, url_via: impl Fn(u16) -> String) {
    let records = RedisServer::start();
    let proxies: Vec<Proxy> = NODES.iter().map(|_| Proxy::to_port(port)).collect();
    let urls: Vec<String> = proxies.iter().map(|proxy| url_via(proxy.port())).collect();
    let (mut fleet, namespace) = start_fleet(backend, &urls, &records).await;
    let started = now_ms();
    // 1. A slow link for the third member, throughout (both ways: 300 ms a round trip).
    proxies[2].set_mode(LinkMode::Delay(Duration::from_millis(150)));

    // 2. One member cut off silently, then healed: its link stalls (what TCP does across a
    // partition: everything held, then delivered late, in order).
    mid_second().await;
    proxies[0].set_mode(LinkMode::Stall);
    tokio::time::sleep(PARTITION).await;
    proxies[0].set_mode(LinkMode::Pass);
    let healed = now_ms();
    fleet
        .wait_until(
            Duration::from_secs(30),
            "the cut-off member running a job again",
            |events| {
                distinct_ticks(events, JOBS[0], healed, Some(NODES[0])) > 0
                    || distinct_ticks(events, JOBS[1], healed, Some(NODES[0])) > 0
                    || distinct_ticks(events, JOBS[2], healed, Some(NODES[0])) > 0
            },
        )
        .await;
    let back = first_run_since(&fleet, NODES[0], healed).unwrap_or(i64::MAX);
    let one_recovery = back - healed;
    eprintln!("{backend}: one member partitioned 12 s: ran again {one_recovery} ms after the heal");

    // 3. Every member cut off silently, then healed: the links drop every byte (a
    // middlebox that lost the flows), so the old connections lost data mid-stream.
    mid_second().await;
    let all_cut = now_ms();
    for proxy in &proxies {
        proxy.set_mode(LinkMode::Drop);
    }
    tokio::time::sleep(PARTITION).await;
    for (index, proxy) in proxies.iter().enumerate() {
        proxy.set_mode(if index == 2 {
            LinkMode::Delay(Duration::from_millis(150))
        } else {
            LinkMode::Pass
        });
    }
    let all_healed = now_ms();
    every_job_runs(
        &mut fleet,
        all_healed,
        2,
        "every job again after the partition",
    )
    .await;
    let fleet_back = all_back(&fleet, &JOBS, all_healed);
    let all_recovery = fleet_back - all_healed;
    eprintln!(
        "{backend}: every member partitioned 12 s: every job ran again {all_recovery} ms after \
         the heal"
    );

    // 4. Every connection cut every 1.5 s for 20 s (on fast links: each cut costs a member
    // a reconnection, and on a 300 ms round trip that alone outlasts a 1 s job's tick).
    proxies[2].set_mode(LinkMode::Pass);
    let cuts_began = now_ms();
    let (cut, cuts_ended) = cut_repeatedly(&proxies.iter().collect::<Vec<_>>()).await;
    eprintln!("{backend}: cut {cut} connections in 20 s");
    eprintln!(
        "{backend}: phases (ms): started {started}, one healed {healed}, all cut {all_cut}, \
         all healed {all_healed}, fleet back {fleet_back}, cuts {cuts_began}..{cuts_ended}"
    );
    every_job_runs(
        &mut fleet,
        cuts_ended,
        3,
        "3 ticks of every job after the cuts",
    )
    .await;
    fleet.assert_all_running();
    // 5. A member told to stop while it is cut off: not held by its stuck calls.
    mid_second().await;
    proxies[1].set_mode(LinkMode::Drop);
    fleet
        .worker(NODES[1])
        .wait_for_log(
            Duration::from_secs(20),
            &["this member cannot reach the coordinator"],
        )
        .await;
    let stopping = std::time::Instant::now();
    fleet.worker(NODES[1]).terminate();
    let status = fleet.worker(NODES[1]).wait(Duration::from_secs(20)).await;
    let cut_off_stop = stopping.elapsed();
    eprintln!("{backend}: a cut-off member stopped in {cut_off_stop:?}: {status:?}");
    assert!(
        status.is_some_and(|status| status.success()),
        "{backend}: {status:?}"
    );
    // At most one call's deadline (a claim in flight) and the 1 s for leaving.
    assert!(
        cut_off_stop < Duration::from_secs(8),
        "{backend}: a cut-off member took {cut_off_stop:?} to stop"
    );
    let said = fleet.worker(NODES[1]).stderr();
    assert!(
        !said.contains("waiting for running jobs"),
        "{backend}: no job ran, yet shutdown waited for some:\n{said}"
    );
    let stopping = std::time::Instant::now();
    fleet.stop_all(Duration::from_secs(10)).await;
    eprintln!("{backend}: stopped in {:?}", stopping.elapsed());

    let recorded = Records::read(&mut records.connection().await, &namespace).await;
    let missed = assert_no_double_runs(&recorded, &JOBS, started);
    // Only the fleet-wide partition may cost ticks: nobody could claim them.
    let lost_elsewhere: Vec<Vec<i64>> = missed
        .iter()
        .map(|ticks| {
            ticks
                .iter()
                .copied()
                .filter(|tick| *tick < all_cut || *tick > fleet_back)
                .filter(|tick| *tick <= cuts_ended)
                .collect()
        })
        .collect();
    let stderr = fleet.stderr();
    assert!(
        lost_elsewhere.iter().all(Vec::is_empty),
        "{backend}: ticks missed outside the fleet-wide partition: {lost_elsewhere:?}\n{stderr}"
    );
    let limit = recovery_limit_ms();
    // A run starts at a tick: a member back within the limit runs its next tick after it.
    assert!(
        one_recovery <= limit,
        "{backend}: the cut-off member ran again only {one_recovery} ms after the heal\n{stderr}"
    );
    assert!(
        all_recovery <= limit,
        "{backend}: the fleet ran every job again only {all_recovery} ms after the heal\n{stderr}"
    );
    // What the cut-off member said: that it was out, and that it is back.
    for said in [
        "this member cannot reach the coordinator",
        "this member reaches the coordinator again",
    ] {
        assert!(
            stderr.contains(said),
            "{backend}: the logs lack {said:?}\n{stderr}"
        );
    }
    for node in [NODES[0], NODES[2]] {
        let said = fleet.worker(node).stderr();
        assert!(
            !said.contains("could not leave the members set")
                && !said.contains("leaving the members set did not finish"),
            "{backend}: {node}, which reaches the coordinator, could not leave on SIGTERM\n{said}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_silently_dropped_link_costs_the_partition_plus_two_heartbeats_at_most() {
    let server = RedisServer::start();
    drill("redis", server.port(), |port| {
        format!("redis://127.0.0.1:{port}")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_silently_dropped_link_costs_the_partition_plus_two_heartbeats_at_most() {
    let server = PostgresServer::start();
    drill("postgres", server.port(), |port| {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    })
    .await;
}

/// The drill for a data node every member reaches through one `proxy` (a Sentinel primary,
/// a cluster primary): every member partitioned from it for 12 s, then healed, then its
/// connections cut every 1.5 s for 20 s. `affected`: the jobs whose keys live behind the
/// proxy; the others must miss nothing, even during the partition.
async fn shared_link_drill(backend: &str, url: &str, proxy: &Proxy, affected: &[&str]) {
    let records = RedisServer::start();
    let urls = vec![url.to_string(); NODES.len()];
    let (mut fleet, namespace) = start_fleet(backend, &urls, &records).await;
    let started = now_ms();
    mid_second().await;
    let cut = now_ms();
    proxy.set_mode(LinkMode::Drop);
    tokio::time::sleep(PARTITION).await;
    proxy.set_mode(LinkMode::Pass);
    let healed = now_ms();
    every_job_runs(&mut fleet, healed, 2, "every job again after the partition").await;
    let back = all_back(&fleet, affected, healed);
    let recovery = back - healed;
    eprintln!(
        "{backend}: data node partitioned 12 s: its jobs ran again {recovery} ms after the heal"
    );
    let (_, cuts_ended) = cut_repeatedly(&[proxy]).await;
    every_job_runs(
        &mut fleet,
        cuts_ended,
        3,
        "3 ticks of every job after the cuts",
    )
    .await;
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(10)).await;
    let recorded = Records::read(&mut records.connection().await, &namespace).await;
    let missed = assert_no_double_runs(&recorded, &JOBS, started);
    let stderr = fleet.stderr();
    let in_partition: usize = missed
        .iter()
        .map(|ticks| {
            ticks
                .iter()
                .filter(|tick| **tick > cut && **tick < back)
                .count()
        })
        .sum();
    eprintln!("{backend}: {in_partition} ticks missed during the partition and its recovery");
    // A run that began in the stall may release only after it (the client library held its
    // call behind the silent node), its lease then still holding the tick that follows: that
    // one tick, a lease's TTL (1 s) past the recovery, is the stall's too.
    let settled = back.saturating_add(1_000);
    for (job, ticks) in JOBS.iter().zip(&missed) {
        let allowed = |tick: &i64| affected.contains(job) && *tick > cut && *tick <= settled;
        let lost: Vec<&i64> = ticks
            .iter()
            .filter(|tick| **tick <= cuts_ended && !allowed(tick))
            .collect();
        assert!(
            lost.is_empty(),
            "{backend}: {job} missed ticks it could have run: {lost:?}\n{stderr}"
        );
    }
    let limit = recovery_limit_ms();
    assert!(
        recovery <= limit,
        "{backend}: the jobs behind the partition ran again only {recovery} ms after the heal\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_a_silently_dropped_primary_costs_the_partition_plus_two_heartbeats_at_most() {
    let (group, proxy) = fourit_tests::SentinelGroup::start_behind_proxy(3);
    shared_link_drill("sentinel", &group.url(), &proxy, &JOBS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_silently_dropped_primary_costs_its_slots_the_partition_plus_two_heartbeats() {
    let cluster = fourit_tests::RedisCluster::start(3, 0);
    // job-0's keys (`ns:{job-0}`) hash to slot 8620; the other jobs' to the other primaries.
    // The members key may live on any primary, and the client library's cluster connection
    // stalls the other slots' calls while it repairs its connection to a silent node, so
    // every job may miss ticks during the partition (docs/RELIABILITY.md); after it, none.
    let (proxy, seeds) = cluster.put_behind_proxy(8620);
    shared_link_drill("cluster", &seeds, &proxy, &JOBS).await;
}
