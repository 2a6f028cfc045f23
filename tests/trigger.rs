//! Manual runs (`fourit trigger`) with real worker processes on a real `redis-server`: 20
//! triggers with 3 members give exactly 20 manual runs, each once, while every scheduled tick
//! still runs once. The members heartbeat only every 30 s, so the runs starting at all within
//! the wait proves the request's notice woke them (not a heartbeat); and a member whose clock
//! runs 250 ms ahead shows that offset in the members list.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fourit_tests::RedisServer;
use fourit_tests::faults::{Event, Fleet, Line, distinct_ticks, tick_report};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const TRIGGERS: usize = 20;

/// The manual runs the workers printed (`manual JOB TICK NODE`): tick -> nodes.
fn manual_runs(events: &[Event]) -> BTreeMap<i64, Vec<String>> {
    let mut runs: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for event in events {
        if let Line::Other(text) = &event.line
            && let ["manual", "job-0", tick, node] = text.split_whitespace().collect::<Vec<_>>()[..]
            && let Ok(tick) = tick.parse()
        {
            runs.entry(tick).or_default().push(node.to_string());
        }
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_triggers_on_three_members_give_twenty_manual_runs_and_leave_the_ticks_alone() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "trigger";
    let mut fleet = Fleet::new(WORKER);
    for (node, ahead_ms) in [("t-a", "0"), ("t-b", "0"), ("t-c", "250")] {
        fleet.start_on(
            node,
            &url,
            namespace,
            &[
                "--jobs",
                "1",
                "--body-ms",
                "5",
                "--heartbeat-ms",
                "30000",
                "--clock-offset-ms",
                ahead_ms,
            ],
        );
    }
    fleet
        .wait_until(Duration::from_secs(30), "3 ticks", |events| {
            distinct_ticks(events, "job-0", 0, None) >= 3
        })
        .await;
    let admin = fourit::admin::connect(&url, namespace)
        .await
        .unwrap_or_else(|e| panic!("admin: {e}"))
        .operator("tests@ci");
    let members = admin
        .member_status()
        .await
        .unwrap_or_else(|e| panic!("members: {e}"));
    for member in &members {
        let expected_us = if member.node == "t-c" { 250_000 } else { 0 };
        let offset_us = member
            .clock_offset_us
            .unwrap_or_else(|| panic!("{member:?} has no clock offset"));
        // Measured over loopback: within a few ms of the truth.
        assert!(
            (offset_us - expected_us).abs() < 20_000,
            "{} runs {offset_us} µs ahead, not about {expected_us}",
            member.node
        );
    }
    let asked = Instant::now();
    let mut requests = Vec::new();
    for _ in 0..TRIGGERS {
        // Forced: a manual run may coincide with a scheduled one (5 ms bodies every second).
        requests.push(
            admin
                .trigger("job-0", true)
                .await
                .unwrap_or_else(|e| panic!("trigger: {e}")),
        );
    }
    // Well inside the 30 s heartbeat: only the notice can bring the runs this soon.
    fleet
        .wait_until(Duration::from_secs(15), "20 manual runs", |events| {
            manual_runs(events).values().map(Vec::len).sum::<usize>() >= TRIGGERS
        })
        .await;
    let picked_up = asked.elapsed();
    // A little longer, for any run twice to show.
    let settle = fourit_tests::faults::now_ms();
    fleet
        .wait_until(Duration::from_secs(30), "2 more ticks", |events| {
            distinct_ticks(events, "job-0", settle, None) >= 2
        })
        .await;
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;

    let manual = manual_runs(fleet.events());
    let ran: usize = manual.values().map(Vec::len).sum();
    assert_eq!(ran, TRIGGERS, "exactly one run per trigger: {manual:?}");
    let mut asked_ticks: Vec<i64> = requests.iter().map(|r| r.requested_ms).collect();
    asked_ticks.sort_unstable();
    assert_eq!(
        manual.keys().copied().collect::<Vec<_>>(),
        asked_ticks,
        "each at its request's instant"
    );
    let nodes: std::collections::BTreeSet<&String> = manual.values().flatten().collect();
    // The scheduled ticks: each once, none missing.
    let mut scheduled: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for event in fleet.events() {
        if let Some(tick) = event.ran("job-0") {
            scheduled.entry(tick).or_default().push(event.node.clone());
        }
    }
    let report = tick_report(&scheduled, 1000);
    assert_eq!(report.doubles, vec![], "scheduled ticks run twice");
    assert_eq!(report.missing, Vec::<i64>::new(), "scheduled ticks missed");
    let history = admin
        .history("job-0", 100)
        .await
        .unwrap_or_else(|e| panic!("history: {e}"));
    let recorded = history
        .iter()
        .filter(|entry| entry.outcome == "manual")
        .count();
    assert_eq!(recorded, TRIGGERS, "each recorded as manual");
    assert!(
        history
            .iter()
            .filter(|entry| entry.outcome == "manual")
            .all(|entry| entry.detail.as_deref() == Some("asked by tests@ci"))
    );
    eprintln!(
        "{TRIGGERS} manual runs on {} members, all started {} ms after the triggers; {} scheduled ticks each once",
        nodes.len(),
        picked_up.as_millis(),
        report.ran
    );
}
