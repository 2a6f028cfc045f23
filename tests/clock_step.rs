//! A host whose wall clock steps while it runs does not stop the fleet, run a tick twice, or
//! run one early: four worker processes run two jobs every second against one Redis, and one
//! of them has its clock stepped (through libfaketime) by +30 s, -30 s or +1 h.
//!
//! Each scenario asserts, from the workers' own records: no tick ran twice, none was missed,
//! and every run started between 100 ms before its tick and 1 s after it, by Redis's clock
//! (the stepped host's own clock lies). The stepped worker keeps running its share, and logs
//! the step once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::faults::{Fleet, Records, distinct_ticks, now_ms, tick_report};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const JOBS: [&str; 2] = ["job-0", "job-1"];
/// Distinct ticks of each job seen before the step, and after it.
const TICKS_BEFORE: usize = 3;
const TICKS_AFTER: usize = 8;
/// Runs of the stepped worker after the step: it is not frozen out.
const STEPPED_RUNS_AFTER: usize = 2;
/// The bounds of a run's start, by Redis's clock, relative to its tick.
const EARLIEST_MS: i64 = -100;
const LATEST_MS: i64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_stepped_30_s_forward_neither_stalls_nor_doubles_the_fleet() {
    stepped_fleet("forward", "+30").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_stepped_30_s_back_neither_stalls_nor_doubles_the_fleet() {
    stepped_fleet("back", "-30").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_stepped_an_hour_forward_neither_stalls_nor_doubles_the_fleet() {
    stepped_fleet("hour", "+3600").await;
}

/// libfaketime's library, from Debian's `faketime` package.
fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketime.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketime.so.1")])
        .find(|path| path.exists());
    found.unwrap_or_else(|| {
        panic!("libfaketime.so.1 not found: install Debian's `faketime` package (./test does)")
    })
}

/// Sets the faked clock's offset, atomically: a worker reading a half-written file would see
/// a step that never happened.
fn set_offset(file: &Path, offset: &str) {
    let partial = file.with_extension("partial");
    std::fs::write(&partial, format!("{offset}\n"))
        .unwrap_or_else(|err| panic!("writing {}: {err}", partial.display()));
    std::fs::rename(&partial, file)
        .unwrap_or_else(|err| panic!("renaming to {}: {err}", file.display()));
}

async fn stepped_fleet(namespace: &str, offset: &str) {
    let server = RedisServer::start();
    let url = server.url();
    let faketime = libfaketime();
    let offset_file = server.dir().join("faketime-offset");
    set_offset(&offset_file, "+0");
    let preload = faketime.display().to_string();
    let offset_path = offset_file.display().to_string();
    let mut fleet = Fleet::new(WORKER);
    let flags = ["--jobs", "2", "--body-ms", "5"];
    for node in ["steady-a", "steady-b", "steady-c"] {
        fleet.start_on(node, &url, namespace, &flags);
    }
    let mut args = vec!["--url", url.as_str(), "--namespace", namespace];
    args.extend_from_slice(&flags);
    fleet.start_with_env(
        "stepped",
        &args,
        &[
            ("LD_PRELOAD", preload.as_str()),
            ("FAKETIME_TIMESTAMP_FILE", offset_path.as_str()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let started_ms = now_ms();
    fleet
        .wait_until(
            Duration::from_secs(60),
            &format!("{TICKS_BEFORE} ticks of each job, the stepped worker running one"),
            |events| {
                JOBS.iter()
                    .all(|job| distinct_ticks(events, job, started_ms, None) >= TICKS_BEFORE)
                    && JOBS
                        .iter()
                        .map(|job| distinct_ticks(events, job, started_ms, Some("stepped")))
                        .sum::<usize>()
                        >= 1
            },
        )
        .await;

    set_offset(&offset_file, offset);
    let stepped_ms = now_ms();
    fleet
        .wait_until(
            Duration::from_secs(60),
            &format!(
                "{TICKS_AFTER} ticks of each job after the step, {STEPPED_RUNS_AFTER} of them \
                 on the stepped worker"
            ),
            |events| {
                JOBS.iter()
                    .all(|job| distinct_ticks(events, job, stepped_ms, None) >= TICKS_AFTER)
                    && JOBS
                        .iter()
                        .map(|job| distinct_ticks(events, job, stepped_ms, Some("stepped")))
                        .sum::<usize>()
                        >= STEPPED_RUNS_AFTER
            },
        )
        .await;
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;

    let records = Records::read(&mut server.connection().await, namespace).await;
    for job in JOBS {
        let ticks = records.ticks(job);
        let report = tick_report(&ticks, 1000);
        eprintln!(
            "{namespace} {job}: {} ticks from {} to {}, doubles {:?}, missing {:?}",
            report.ran, report.first, report.last, report.doubles, report.missing
        );
        assert_eq!(report.doubles, vec![], "{job}: ticks that ran twice");
        assert_eq!(report.missing, Vec::<i64>::new(), "{job}: ticks missed");
    }
    // The first tick of a worker starting is one within grace: it may start late by design.
    let first_tick = records.starts.iter().map(|s| s.tick).min().unwrap_or(0);
    for start in records.starts.iter().filter(|s| s.tick > first_tick) {
        assert!(
            (EARLIEST_MS..=LATEST_MS).contains(&start.late_ms()),
            "{start:?} started {} ms after its tick by Redis's clock",
            start.late_ms()
        );
    }
    // The figures RELIABILITY.md quotes: how late runs started after the step, by Redis's
    // clock (Redis runs on this host, so its clock is the test's).
    let after: Vec<_> = records
        .starts
        .iter()
        .filter(|s| s.redis_ms >= stepped_ms)
        .collect();
    let mut lateness: Vec<i64> = after.iter().map(|s| s.late_ms()).collect();
    lateness.sort_unstable();
    let mut stepped: Vec<i64> = after
        .iter()
        .filter(|s| s.node == "stepped")
        .map(|s| s.late_ms())
        .collect();
    stepped.sort_unstable();
    eprintln!(
        "{namespace}: after the step, {} runs ({} on the stepped host) started {:?}..{:?} ms \
         after their ticks (median {:?}), the stepped host's {:?}..{:?} ms, by Redis's clock",
        lateness.len(),
        stepped.len(),
        lateness.first(),
        lateness.last(),
        lateness.get(lateness.len() / 2),
        stepped.first(),
        stepped.last(),
    );
    let stepped_log = fleet.worker("stepped").stderr();
    let warnings = stepped_log
        .lines()
        .filter(|line| line.contains("WARN"))
        .count();
    assert_eq!(
        (warnings, stepped_log.contains("wall clock stepped")),
        (1, true),
        "the stepped worker warns once, for the step:\n{stepped_log}"
    );
}
