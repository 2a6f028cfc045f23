//! Failures are outcomes: a panicking job, a job returning `Err` and a job outlasting its
//! `timeout` each have their outcome recorded in history, tick after tick, while the worker
//! goes on and a well-behaved job beside them keeps running every tick.

use std::collections::HashMap;
use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::faults::{Fleet, wait_for_history};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
/// Consecutive ticks each job must have recorded.
const TICKS: usize = 3;

fn field<'a>(entry: &'a HashMap<String, String>, name: &str) -> &'a str {
    entry.get(name).map(String::as_str).unwrap_or_default()
}

/// The entries from the third tick on, by tick. The first tick is claimed late, on start
/// (within grace), so a slow first run may still hold the lease at the second tick, which is
/// then rightly an overlap.
fn settled(entries: &[HashMap<String, String>]) -> Vec<HashMap<String, String>> {
    let tick = |e: &HashMap<String, String>| field(e, "tick").parse::<i64>().unwrap_or_default();
    let first = entries.iter().map(tick).min().unwrap_or_default();
    let mut settled: Vec<_> = entries
        .iter()
        .filter(|e| tick(e) >= first + 2000)
        .cloned()
        .collect();
    settled.sort_by_key(tick);
    settled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_errors_and_timeouts_are_recorded_and_the_next_tick_runs() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "bad-jobs";
    let mut fleet = Fleet::new(WORKER);
    fleet.start_on(
        "a",
        &url,
        namespace,
        &[
            "--jobs",
            "1",
            "--extra",
            "panics",
            "--extra",
            "fails",
            "--extra",
            "times-out",
            "--timeout-ms",
            "300",
        ],
    );
    let mut conn = server.connection().await;
    let expected = [
        ("job-0", "succeeded", None),
        ("panics", "panicked", Some("deliberate panic at tick")),
        ("fails", "failed", Some("deliberate failure")),
        ("times-out", "timed out", None),
    ];
    for (job, outcome, detail) in expected {
        let entries = wait_for_history(
            &mut conn,
            namespace,
            job,
            Duration::from_secs(20),
            |entries| settled(entries).len() >= TICKS,
        )
        .await;
        let entries = settled(&entries);
        let ticks: Vec<i64> = entries
            .iter()
            .map(|e| field(e, "tick").parse().unwrap_or_default())
            .collect();
        let outcomes: Vec<&str> = entries.iter().map(|e| field(e, "outcome")).collect();
        eprintln!("{job}: ticks {ticks:?}, outcomes {outcomes:?}");
        assert!(
            outcomes.iter().all(|o| *o == outcome),
            "{job}: expected every outcome to be `{outcome}`: {entries:?}"
        );
        // The ticks are consecutive: a bad outcome did not stop the next tick.
        assert!(
            ticks.windows(2).all(|pair| pair[1] - pair[0] == 1000),
            "{job}: ticks not consecutive: {ticks:?}"
        );
        for entry in &entries {
            match detail {
                Some(text) => assert!(
                    field(entry, "detail").contains(text),
                    "{job}: detail {entry:?}"
                ),
                None => assert!(!entry.contains_key("detail"), "{job}: {entry:?}"),
            }
            if job == "times-out" {
                let ms: u64 = field(entry, "duration_ms").parse().unwrap_or_default();
                assert!(
                    (300..1500).contains(&ms),
                    "{job}: ran {ms} ms with a 300 ms timeout"
                );
            }
        }
    }
    // The job's panic is printed by the panic hook; the process itself lives on.
    assert_eq!(fleet.worker("a").exited(), None, "{}", fleet.diagnostics());
    fleet.stop_all(Duration::from_secs(20)).await;
}
