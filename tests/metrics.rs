//! Metrics of real worker processes, scraped over HTTP in the Prometheus text format after
//! real runs on a real `redis-server`: the counters match the runs the workers recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::faults::{Fleet, Line, distinct_ticks};
use fourit_tests::http::{get, sample};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_of_each_worker_counts_the_runs_it_recorded() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "metrics";
    let mut fleet = Fleet::new(WORKER);
    for node in ["x-a", "x-b"] {
        fleet.start_on(
            node,
            &url,
            namespace,
            &[
                "--jobs",
                "1",
                "--body-ms",
                "5",
                "--extra",
                "fails",
                "--metrics",
                "on",
            ],
        );
    }
    fleet
        .wait_until(Duration::from_secs(30), "4 ticks of each job", |events| {
            ["job-0", "fails"]
                .iter()
                .all(|job| distinct_ticks(events, job, 0, None) >= 4)
        })
        .await;
    // Pause both jobs, and wait for two ticks decided as paused: then no run is going on and
    // none will start, so the counters hold still while they are scraped.
    let admin = fourit::admin::connect(&url, namespace)
        .await
        .unwrap_or_else(|e| panic!("admin: {e}"))
        .operator("tests@ci");
    for job in ["job-0", "fails"] {
        admin
            .pause(job, Some("scrape"))
            .await
            .unwrap_or_else(|e| panic!("pause: {e}"));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut ticks = u64::MAX;
        for job in ["job-0", "fails"] {
            let pause = admin.paused(job).await.unwrap_or_else(|e| panic!("{e}"));
            ticks = ticks.min(pause.map_or(0, |p| p.ticks));
        }
        if ticks >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ticks not paused in 30 s"
        );
        // Polling the coordinator: a pause's count has no notice of its own.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fleet.assert_all_running();

    // What each worker printed: where its endpoint is, and its runs per job.
    let mut endpoints = BTreeMap::new();
    let mut ran: BTreeMap<(String, String), usize> = BTreeMap::new();
    for event in fleet.events() {
        match &event.line {
            Line::Other(text) if text.starts_with("metrics ") => {
                endpoints.insert(event.node.clone(), text["metrics ".len()..].to_string());
            }
            Line::Ran { job, .. } => {
                *ran.entry((event.node.clone(), job.clone())).or_default() += 1;
            }
            _ => {}
        }
    }
    assert_eq!(endpoints.len(), 2, "{endpoints:?}");
    let mut paused_total = 0.0;
    let mut runs_total = 0.0;
    for (node, address) in &endpoints {
        let scrape = get(address, "/metrics").unwrap_or_else(|e| panic!("scrape {node}: {e}"));
        assert_eq!(scrape.status, 200);
        let text = &scrape.body;
        let count = |job: &str| {
            ran.get(&(node.clone(), job.to_string()))
                .copied()
                .unwrap_or(0) as f64
        };
        let value = |name: &str, labels: &[(&str, &str)]| sample(text, name, labels).unwrap_or(0.0);
        let succeeded = value(
            "fourit_runs_total",
            &[("job", "job-0"), ("outcome", "succeeded")],
        );
        let failed = value(
            "fourit_runs_total",
            &[("job", "fails"), ("outcome", "failed")],
        );
        assert_eq!(succeeded, count("job-0"), "{node}: {text}");
        assert_eq!(failed, count("fails"), "{node}: {text}");
        for job in ["job-0", "fails"] {
            assert_eq!(
                value("fourit_ticks_total", &[("job", job), ("decision", "run")]),
                count(job),
                "{node} {job}: {text}"
            );
            assert_eq!(value("fourit_running", &[("job", job)]), 0.0, "{text}");
            assert_eq!(
                value("fourit_run_duration_seconds_count", &[("job", job)]),
                count(job),
                "{text}"
            );
            assert_eq!(
                value("fourit_start_delay_seconds_count", &[("job", job)]),
                count(job),
                "{text}"
            );
            let next = value("fourit_next_tick_timestamp_seconds", &[("job", job)]);
            assert!(next > 1.7e9, "{node} {job} next tick {next}: {text}");
            paused_total += value(
                "fourit_ticks_total",
                &[("job", job), ("decision", "paused")],
            );
        }
        if count("job-0") > 0.0 {
            let last = value("fourit_last_success_timestamp_seconds", &[("job", "job-0")]);
            assert!(last > 1.7e9, "{node}: {text}");
        }
        assert_eq!(value("fourit_members", &[]), 2.0, "{text}");
        assert_eq!(value("fourit_coordinator_up", &[]), 1.0, "{text}");
        let offset = value("fourit_clock_offset_seconds", &[]);
        assert!(offset.abs() < 0.05, "{text}");
        assert!(
            value(
                "fourit_coordinator_round_trip_seconds_count",
                &[("operation", "heartbeat")]
            ) >= 1.0,
            "{text}"
        );
        runs_total += succeeded + failed;
    }
    // Every tick ran on one member: the fleet's counters add up to the distinct ticks.
    let distinct = (distinct_ticks(fleet.events(), "job-0", 0, None)
        + distinct_ticks(fleet.events(), "fails", 0, None)) as f64;
    assert_eq!(runs_total, distinct);
    assert!(
        paused_total >= 4.0,
        "two paused ticks of each job: {paused_total}"
    );
    eprintln!(
        "scraped {} workers: {runs_total} runs counted = {distinct} ticks run; {paused_total} paused decisions",
        endpoints.len()
    );
    fleet.stop_all(Duration::from_secs(20)).await;
}
