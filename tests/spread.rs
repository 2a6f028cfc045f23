//! Even load across the fleet, even under clock skew: real worker processes against a real
//! `redis-server`, each job's runs counted per tick and per process.
//!
//! Four jobs fall due every second; with four processes, each process should run about a
//! quarter of the runs (the target is 25% ± 7%), whatever the processes' clocks say, with no
//! tick run twice and none missed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::faults::{Fleet, Line, Records, now_ms, tick_report};

const JOBS: [&str; 4] = ["job-0", "job-1", "job-2", "job-3"];
/// Membership views converge within one heartbeat (2 s); shares are measured after this.
const SETTLE_MS: i64 = 4_000;
/// Ticks measured per test.
const MEASURED_TICKS: usize = 30;

fn worker_args<'a>(url: &'a str, offset: &'a str) -> Vec<&'a str> {
    vec![
        "--url",
        url,
        "--namespace",
        "spread",
        "--jobs",
        "4",
        "--clock-offset-ms",
        offset,
    ]
}

async fn wait_ready(fleet: &mut Fleet, count: usize) {
    fleet
        .wait_until(Duration::from_secs(30), "every worker ready", |events| {
            events.iter().filter(|e| e.line == Line::Ready).count() >= count
        })
        .await;
}

/// Waits until `job-0` has run `ticks` ticks at or after `from_ms`.
async fn wait_ticks_from(fleet: &mut Fleet, from_ms: i64, ticks: usize) {
    fleet
        .wait_until(Duration::from_secs(90), "the measured ticks", |events| {
            events
                .iter()
                .filter_map(|e| e.ran("job-0"))
                .filter(|tick| *tick >= from_ms)
                .count()
                >= ticks
        })
        .await;
}

/// Every job ran every tick exactly once, from its first run to its last.
fn assert_once_per_tick(records: &Records) {
    for job in JOBS {
        let report = tick_report(&records.ticks(job), 1000);
        assert!(
            report.doubles.is_empty(),
            "{job}: ticks ran twice: {:?}",
            report.doubles
        );
        assert!(
            report.missing.is_empty(),
            "{job}: ticks missed: {:?}",
            report.missing
        );
        assert!(
            report.ran >= MEASURED_TICKS,
            "{job}: only {} ticks ran",
            report.ran
        );
    }
}

/// Each node's share of the runs of ticks in `[from_ms, to_ms]`.
fn shares(records: &Records, from_ms: i64, to_ms: i64) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for run in &records.runs {
        if (from_ms..=to_ms).contains(&run.tick) {
            *counts.entry(run.node.clone()).or_default() += 1;
            total += 1;
        }
    }
    counts
        .into_iter()
        .map(|(node, n)| (node, n as f64 * 100.0 / total.max(1) as f64))
        .collect()
}

fn assert_shares(shares: &BTreeMap<String, f64>, nodes: &[&str], target: f64, tolerance: f64) {
    for node in nodes {
        let share = shares.get(*node).copied().unwrap_or(0.0);
        assert!(
            (share - target).abs() <= tolerance,
            "{node} ran {share:.1}% of the runs, not {target}% ± {tolerance}: {shares:?}"
        );
    }
}

/// Four processes with the given clock offsets; returns the shares after settling.
async fn four_processes(offsets: [i64; 4]) -> BTreeMap<String, f64> {
    let server = RedisServer::start();
    let url = server.url();
    let mut fleet = Fleet::new(env!("CARGO_BIN_EXE_worker"));
    let offsets: Vec<String> = offsets.iter().map(i64::to_string).collect();
    for (index, offset) in offsets.iter().enumerate() {
        fleet.start(&format!("n{index}"), &worker_args(&url, offset));
    }
    wait_ready(&mut fleet, 4).await;
    let from_ms = (now_ms() + SETTLE_MS) / 1000 * 1000;
    wait_ticks_from(&mut fleet, from_ms, MEASURED_TICKS).await;
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;

    let records = Records::read(&mut server.connection().await, "spread").await;
    assert_once_per_tick(&records);
    let to_ms = from_ms + (MEASURED_TICKS as i64 - 1) * 1000;
    let shares = shares(&records, from_ms, to_ms);
    println!(
        "shares over {MEASURED_TICKS} ticks x {} jobs: {shares:?}",
        JOBS.len()
    );
    shares
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_with_equal_clocks_share_the_runs_evenly() {
    let shares = four_processes([0, 0, 0, 0]).await;
    assert_shares(&shares, &["n0", "n1", "n2", "n3"], 25.0, 7.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_with_skewed_clocks_share_the_runs_evenly() {
    let shares = four_processes([-700, -200, 300, 800]).await;
    assert_shares(&shares, &["n0", "n1", "n2", "n3"], 25.0, 7.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_share_moves_to_the_others_and_no_tick_is_lost() {
    let server = RedisServer::start();
    let url = server.url();
    let mut fleet = Fleet::new(env!("CARGO_BIN_EXE_worker"));
    for index in 0..4 {
        fleet.start(&format!("n{index}"), &worker_args(&url, "0"));
    }
    wait_ready(&mut fleet, 4).await;
    let settled = (now_ms() + SETTLE_MS) / 1000 * 1000;
    wait_ticks_from(&mut fleet, settled, 5).await;

    // Kill n3 between two of its runs: a run killed midway holds its lease until the TTL and
    // may cost the next tick (tests/crash.rs measures that); here the question is what a dead
    // preferred process costs.
    let done = fleet
        .wait_for(Duration::from_secs(10), "a run of n3 to end", |event| {
            event.node == "n3" && matches!(event.line, Line::Done { .. })
        })
        .await;
    // Its lease is released just after the body returns: kill it half-way between two
    // ticks, when it holds no lease (runs take 5 ms at whole seconds).
    if let Line::Done { tick, .. } = done.line {
        let midway = tick + 500 - now_ms();
        if midway > 0 {
            tokio::time::sleep(Duration::from_millis(midway.unsigned_abs())).await;
        }
    }
    fleet.worker("n3").kill().await;
    let killed_at = now_ms();
    // The others see n3 gone within three heartbeats (6 s); measure after that.
    let from_ms = (killed_at + 8_000) / 1000 * 1000;
    wait_ticks_from(&mut fleet, from_ms, 20).await;
    fleet.stop_all(Duration::from_secs(20)).await;

    let records = Records::read(&mut server.connection().await, "spread").await;
    assert_once_per_tick(&records);
    let after_kill = records
        .runs
        .iter()
        .filter(|run| run.node == "n3" && run.tick > killed_at)
        .count();
    assert_eq!(after_kill, 0, "n3 ran after it was killed");
    let to_ms = from_ms + 19_000;
    let shares = shares(&records, from_ms, to_ms);
    // With 4 jobs on 3 members one member runs two of a tick's jobs, and which one it is
    // depends on the tick: over 20 ticks a fair share ranges from about 22% to 45% (outside
    // 33 ± 8% in about one window of ten). So the shares are held to what the placement
    // itself gives for these very ticks, and each run to its preferred member.
    let survivors: Vec<Arc<str>> = ["n0", "n1", "n2"].into_iter().map(Arc::from).collect();
    let mut placed: BTreeMap<String, f64> = BTreeMap::new();
    let mut by_preferred = 0;
    let mut counted = 0;
    for tick in (from_ms..=to_ms).step_by(1000) {
        let preferred = fourit::placement::preferred(&JOBS, tick, &survivors);
        for (job, member) in JOBS.iter().zip(preferred) {
            let member = member.map(|m| m.to_string()).unwrap_or_default();
            *placed.entry(member.clone()).or_default() += 100.0 / (JOBS.len() * 20) as f64;
            counted += 1;
            if records
                .runs
                .iter()
                .any(|run| run.job == *job && run.tick == tick && run.node == member)
            {
                by_preferred += 1;
            }
        }
    }
    println!(
        "shares after the kill: {shares:?}; as placed: {placed:?}; {by_preferred} of {counted} \
         runs on their preferred member"
    );
    for node in ["n0", "n1", "n2"] {
        let target = placed.get(node).copied().unwrap_or(0.0);
        assert_shares(&shares, &[node], target, 5.0);
    }

    // How late the orphaned ticks started while n3 was still thought alive (a figure, not
    // an assertion: timings belong in benchmarks).
    let late: Vec<i64> = records
        .spans
        .iter()
        .filter(|span| (killed_at..from_ms).contains(&span.tick))
        .map(|span| span.start_ms - span.tick)
        .collect();
    println!(
        "start delay between the kill and n3's removal: max {:?} ms over {} runs",
        late.iter().max(),
        late.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_joining_later_gets_its_share_within_seconds() {
    let server = RedisServer::start();
    let url = server.url();
    let mut fleet = Fleet::new(env!("CARGO_BIN_EXE_worker"));
    for index in 0..3 {
        fleet.start(&format!("n{index}"), &worker_args(&url, "0"));
    }
    wait_ready(&mut fleet, 3).await;
    wait_ticks_from(&mut fleet, now_ms(), 5).await;

    fleet.start("late", &worker_args(&url, "0"));
    wait_ready(&mut fleet, 4).await;
    let joined = now_ms();
    let first_run = fleet
        .wait_for(
            Duration::from_secs(10),
            "the late process's first run",
            |event| event.node == "late" && matches!(event.line, Line::Ran { .. }),
        )
        .await;
    println!(
        "the late process ran its first job {} ms after it was ready",
        first_run.wall_ms - joined
    );
    let from_ms = (joined + SETTLE_MS) / 1000 * 1000;
    wait_ticks_from(&mut fleet, from_ms, MEASURED_TICKS).await;
    fleet.stop_all(Duration::from_secs(20)).await;

    let records = Records::read(&mut server.connection().await, "spread").await;
    assert_once_per_tick(&records);
    let to_ms = from_ms + (MEASURED_TICKS as i64 - 1) * 1000;
    let shares = shares(&records, from_ms, to_ms);
    println!("shares after the join: {shares:?}");
    assert_shares(&shares, &["n0", "n1", "n2", "late"], 25.0, 7.0);
}
