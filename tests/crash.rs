//! Once per tick under process crashes: a worker is SIGKILLed (no shutdown, its lease left
//! behind); no tick runs twice, and the job misses at most one tick. The kill mid-run runs on
//! Redis and on PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::cli::Cli;
use fourit_tests::faults::{Fleet, Records, now_ms, tick_report};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const FOURIT: &str = env!("CARGO_BIN_EXE_fourit-for-tests");

fn args<'a>(url: &'a str, namespace: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--url", url, "--namespace", namespace];
    args.extend_from_slice(extra);
    args
}

/// A 3 s job every 5 s with the default lease (the interval, 5 s), on `url`, the runs
/// recorded on `records`: the process running it is killed as the body starts. Its lease
/// outlives it, so the next tick may be skipped as an overlap; the one after must run.
async fn kill_mid_run(url: &str, records: &RedisServer, namespace: &str) {
    let record_url = records.url();
    let mut fleet = Fleet::new(WORKER);
    let extra = [
        "--jobs",
        "1",
        "--schedule",
        "*/5 * * * * *",
        "--body-ms",
        "3000",
        "--record-url",
        &record_url,
    ];
    for node in ["a", "b", "c"] {
        fleet.start(node, &args(url, namespace, &extra));
    }
    let first = fleet
        .wait_for(Duration::from_secs(20), "a first run of job-0", |e| {
            e.ran("job-0").is_some()
        })
        .await;
    let killed_tick = first.ran("job-0").unwrap_or_default();
    let victim = first.node.clone();
    fleet.worker(&victim).kill().await;
    let killed_at = now_ms();
    eprintln!(
        "{namespace}: killed {victim} {} ms after its run of tick {killed_tick} started",
        killed_at - first.wall_ms
    );

    // Two more ticks after the kill: T+5 s (may be an overlap with the dead run's lease) and
    // T+10 s (must run).
    fleet
        .wait_for(
            Duration::from_secs(20),
            "a run of the tick 10 s after the killed one",
            |e| e.ran("job-0").is_some_and(|t| t >= killed_tick + 10_000),
        )
        .await;
    let next_run = fleet
        .ran("job-0")
        .into_iter()
        .map(|(tick, _)| tick)
        .find(|tick| *tick > killed_tick)
        .unwrap_or_default();
    fleet.assert_all_running_but(&victim);
    fleet.stop_all(Duration::from_secs(20)).await;

    let recorded = Records::read(&mut records.connection().await, namespace).await;
    let ticks = recorded.ticks("job-0");
    let report = tick_report(&ticks, 5000);
    eprintln!(
        "{namespace} job-0: ticks {:?}; first run after the kill: tick {next_run} ({} ms after \
         the killed tick); missing {:?}",
        ticks.keys().collect::<Vec<_>>(),
        next_run - killed_tick,
        report.missing
    );
    assert_eq!(report.doubles, vec![], "ticks that ran twice");
    assert!(
        report.missing.len() <= 1,
        "more than one tick missed after the kill: {:?}",
        report.missing
    );
    assert!(
        next_run - killed_tick <= 10_000,
        "the job was blocked for more than one tick: next run at tick {next_run}"
    );
    let history = Cli::new(FOURIT, url, namespace).json(&["history", "job-0", "--json"]);
    let overlaps = history.as_array().map_or(0, |entries| {
        entries.iter().filter(|e| e["outcome"] == "overlap").count()
    });
    eprintln!("{namespace}: overlap entries in job-0's history: {overlaps}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_process_mid_run_misses_at_most_one_tick_and_runs_none_twice() {
    let server = RedisServer::start();
    kill_mid_run(&server.url(), &server, "crash-mid-run").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_process_mid_run_on_postgres_misses_at_most_one_tick_and_runs_none_twice() {
    let records = RedisServer::start();
    let namespace = format!("crash-mid-run-{}-{}", std::process::id(), now_ms());
    kill_mid_run(&fourit_tests::postgres_url(), &records, &namespace).await;
}

/// Three workers, 5 ms jobs every second: the process that has won the most ticks so far is
/// killed; the others carry on with at most one tick missed and none run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_busiest_process_misses_at_most_one_tick() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "crash-busiest";
    let mut fleet = Fleet::new(WORKER);
    for node in ["a", "b", "c"] {
        fleet.start(node, &args(&url, namespace, &["--jobs", "2"]));
    }
    let distinct = |events: &[fourit_tests::faults::Event], after: i64| {
        events
            .iter()
            .filter_map(|e| e.ran("job-0"))
            .filter(|t| *t > after)
            .collect::<BTreeSet<_>>()
            .len()
    };
    fleet
        .wait_until(Duration::from_secs(30), "8 ticks of job-0", |events| {
            distinct(events, 0) >= 8
        })
        .await;
    let mut wins = BTreeMap::<String, usize>::new();
    for event in fleet.events() {
        if event.ran("job-0").is_some() || event.ran("job-1").is_some() {
            *wins.entry(event.node.clone()).or_default() += 1;
        }
    }
    let victim = wins
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(node, _)| node.clone())
        .unwrap_or_default();
    fleet.worker(&victim).kill().await;
    let killed_at = now_ms();
    eprintln!("wins before the kill: {wins:?}; killed {victim} at {killed_at}");
    fleet
        .wait_until(
            Duration::from_secs(30),
            "8 ticks of job-0 after the kill",
            |events| distinct(events, killed_at) >= 8,
        )
        .await;
    fleet.assert_all_running_but(&victim);
    fleet.stop_all(Duration::from_secs(20)).await;

    let records = Records::read(&mut server.connection().await, namespace).await;
    for job in ["job-0", "job-1"] {
        let ticks = records.ticks(job);
        let report = tick_report(&ticks, 1000);
        let after: BTreeSet<&String> = ticks
            .range(killed_at..)
            .flat_map(|(_, nodes)| nodes)
            .collect();
        eprintln!(
            "{job}: {} ticks from {} to {}, doubles {:?}, missing {:?}, nodes after the kill {after:?}",
            report.ran, report.first, report.last, report.doubles, report.missing
        );
        assert_eq!(report.doubles, vec![], "{job}: ticks that ran twice");
        assert!(
            report.missing.len() <= 1,
            "{job}: more than one tick missed: {:?}",
            report.missing
        );
        assert!(
            !after.contains(&victim),
            "{job}: the killed process ran after its death?"
        );
    }
}
