//! The real `fourit` binary against a real `redis-server`, with a real scheduler producing
//! the runs: every command, its `--json`, and the documented exit codes.

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::cli::{Cli, stderr, stdout};
use serde_json::Value;

const FOURIT: &str = env!("CARGO_BIN_EXE_fourit");

fn fourit(url: &str, args: &[&str]) -> Output {
    Cli::new(FOURIT, url, "cli").run(args)
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(output)))
}

#[test]
fn check_validates_with_the_compilers_messages_and_prints_the_next_ticks() {
    let ok = fourit(
        "redis://unused",
        &[
            "check",
            "*/15 9-17 * * MON-FRI",
            "--tz",
            "Europe/Berlin",
            "-n",
            "3",
        ],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    let text = stdout(&ok);
    assert!(
        text.contains("is a valid schedule (Europe/Berlin)"),
        "{text}"
    );
    assert_eq!(
        text.lines().count(),
        5,
        "a line, a header and 3 ticks: {text}"
    );
    let value = json(&fourit(
        "redis://unused",
        &["check", "0 3 * * *", "--json", "-n", "2"],
    ));
    assert_eq!(value["tz"], "UTC");
    assert_eq!(value["ticks"].as_array().map(Vec::len), Some(2));
    assert!(
        value["ticks"][0]["utc"]
            .as_str()
            .is_some_and(|t| t.contains("T03:00:00"))
    );

    let bad = fourit("redis://unused", &["check", "61 * * * *"]);
    assert_eq!(bad.status.code(), Some(2));
    let expected = fourit::Schedule::parse("61 * * * *")
        .expect_err("out of range")
        .to_string();
    assert_eq!(
        stderr(&bad).trim(),
        format!("fourit: {expected}"),
        "the same message"
    );
    let zone = fourit(
        "redis://unused",
        &["check", "* * * * *", "--tz", "Mars/Olympus"],
    );
    assert_eq!(zone.status.code(), Some(2), "{}", stderr(&zone));
    let usage = fourit("redis://unused", &["frobnicate"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_members_pause_and_resume_through_the_binary() {
    let server = RedisServer::start();
    let url = server.url();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let scheduler = fourit::Scheduler::builder()
        .url(&url)
        .namespace("cli")
        .node_id("cli-node")
        .app_version("9.9.9")
        .registered_jobs(false)
        .add_job("tick", "* * * * * *", move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .add_job("broken", "0 0 1 1 *", |_| async {
            Err::<(), _>("disk full")
        })
        .build()
        .unwrap_or_else(|e| panic!("build: {e}"));
    let handle = scheduler.handle();
    let running = tokio::spawn(scheduler.run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while runs.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Wait for a run's release to be in history (the event), not for a while.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let history = loop {
        let history = json(&fourit(&url, &["history", "tick", "--json"]));
        if history.as_array().is_some_and(|rows| !rows.is_empty()) {
            break history;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no release recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let entries = history.as_array().expect("an array");
    assert!(!entries.is_empty(), "{history}");
    for field in [
        "tick",
        "tick_ms",
        "node",
        "outcome",
        "detail",
        "fence",
        "duration_ms",
    ] {
        assert!(entries[0].get(field).is_some(), "{field} in {history}");
    }
    assert_eq!(entries[0]["outcome"], "succeeded");
    assert_eq!(entries[0]["node"], "cli-node");
    let table = stdout(&fourit(&url, &["history", "tick", "-n", "1"]));
    assert!(table.starts_with("tick"), "{table}");
    assert!(
        table.contains("succeeded") && (table.contains(" ago") || table.contains(" now ")),
        "{table}"
    );

    let status = json(&fourit(&url, &["status", "--json"]));
    let job = status
        .as_array()
        .and_then(|jobs| jobs.iter().find(|job| job["name"] == "tick"))
        .unwrap_or_else(|| panic!("{status}"));
    for field in [
        "name",
        "schedule",
        "tz",
        "paused",
        "running",
        "last_outcome",
        "last_started",
        "next_tick",
    ] {
        assert!(job.get(field).is_some(), "{field} in {status}");
    }
    assert_eq!(job["name"], "tick");
    assert_eq!(job["schedule"], "* * * * * *");
    assert_eq!(job["tz"], "UTC");
    assert_eq!(job["paused"], false);
    assert_eq!(job["orphaned"], false);
    assert_eq!(job["members"][0], "cli-node");
    assert!(
        job["recent_outcomes"]["succeeded"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{status}"
    );
    assert!(
        job["next_tick"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{status}"
    );
    let table = stdout(&fourit(&url, &["status"]));
    assert!(
        table.starts_with("job") && table.contains("tick"),
        "{table}"
    );
    let next = json(&fourit(&url, &["next", "tick", "-n", "3", "--json"]));
    assert_eq!(next.as_array().map(Vec::len), Some(3), "{next}");
    let refused = fourit(&url, &["remove", "tick"]);
    assert_eq!(refused.status.code(), Some(2), "a live member registers it");
    assert!(
        stderr(&refused).contains("only an orphaned job"),
        "{}",
        stderr(&refused)
    );

    let members = json(&fourit(&url, &["members", "--json"]));
    assert_eq!(members[0]["node"], "cli-node", "{members}");
    assert_eq!(
        members[0]["jobs"],
        serde_json::json!(["broken", "tick"]),
        "{members}"
    );
    assert_eq!(members[0]["version"], "9.9.9", "{members}");
    assert!(members[0]["last_heartbeat"].as_str().is_some());
    // Same host, loopback: the member's clock agrees with Redis's to a few ms.
    let offset = members[0]["clock_offset_ms"].as_f64();
    assert!(offset.is_some_and(|ms| ms.abs() < 50.0), "{members}");
    let table = stdout(&fourit(&url, &["members"]));
    assert!(table.contains("clock") && table.contains(" ms"), "{table}");

    let paused = fourit(&url, &["pause", "tick", "--note", "INC-9", "--by", "ci"]);
    assert!(paused.status.success(), "{}", stderr(&paused));
    assert!(stdout(&paused).contains("paused tick fleet-wide"));
    let state = json(&fourit(&url, &["paused", "tick", "--json"]));
    assert_eq!(
        (
            state["paused"].clone(),
            state["by"].clone(),
            state["note"].clone()
        ),
        (Value::Bool(true), "ci".into(), "INC-9".into())
    );
    // The next ticks are paused: no run, and history says so.
    let before = runs.load(Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let history = json(&fourit(&url, &["history", "tick", "--json", "-n", "1"]));
        if history[0]["outcome"] == "paused" {
            assert_eq!(history[0]["detail"], "paused by ci: INC-9");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no paused tick: {history}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        runs.load(Ordering::SeqCst) <= before + 1,
        "at most the tick in flight ran"
    );
    let resumed = fourit(&url, &["resume", "tick", "--by", "ci"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stdout(&resumed).contains("resumed tick from its next tick"),
        "{}",
        stdout(&resumed)
    );
    let state = json(&fourit(&url, &["paused", "tick", "--json"]));
    assert_eq!(state["paused"], false);
    let after = runs.load(Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while runs.load(Ordering::SeqCst) == after {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no run after resume"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Trigger, waiting for the outcome: 0 for a success, 1 for a failure.
    let ok = fourit(&url, &["trigger", "tick", "--wait", "--by", "ci"]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(
        stdout(&ok).contains("tick ran on cli-node: succeeded"),
        "{}",
        stdout(&ok)
    );
    let failed = fourit(&url, &["trigger", "broken", "--wait"]);
    assert_eq!(
        failed.status.code(),
        Some(1),
        "{}{}",
        stdout(&failed),
        stderr(&failed)
    );
    assert!(
        stdout(&failed).contains("ran on cli-node: failed")
            && stdout(&failed).contains("disk full"),
        "{}",
        stdout(&failed)
    );
    let history = json(&fourit(&url, &["history", "broken", "--json"]));
    let outcomes: Vec<&str> = history
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|row| row["outcome"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(outcomes, ["failed", "manual"], "{history}");
    assert_eq!(
        fourit(&url, &["trigger", "no-such-job"]).status.code(),
        Some(4)
    );

    handle.stop();
    running
        .await
        .expect("scheduler task")
        .unwrap_or_else(|e| panic!("run: {e}"));

    // The scheduler left: the job is orphaned (nobody could run a trigger), and can be
    // removed.
    let status = json(&fourit(&url, &["status", "--json"]));
    let tick = status
        .as_array()
        .and_then(|jobs| jobs.iter().find(|job| job["name"] == "tick"))
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(tick["orphaned"], true, "{status}");
    assert_eq!(tick["state"], "orphaned");
    let nobody = fourit(&url, &["trigger", "tick"]);
    assert_eq!(nobody.status.code(), Some(2), "{}", stderr(&nobody));
    assert!(
        stderr(&nobody).contains("no live member registers"),
        "{}",
        stderr(&nobody)
    );
    let removed = fourit(&url, &["remove", "tick"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert_eq!(fourit(&url, &["history", "tick"]).status.code(), Some(4));
    assert_eq!(fourit(&url, &["next", "tick"]).status.code(), Some(4));

    // Bad input: the documented exit codes, one line each, no password.
    let unknown = fourit(&url, &["history", "no-such-job"]);
    assert_eq!(unknown.status.code(), Some(4), "{}", stderr(&unknown));
    assert_eq!(stderr(&unknown).lines().count(), 1);
    let bad_name = fourit(&url, &["pause", "has space"]);
    assert_eq!(bad_name.status.code(), Some(2), "{}", stderr(&bad_name));
    let mut gone = RedisServer::start();
    let gone_url = gone.url_with("app", "hunter2");
    gone.stop();
    let unreachable = fourit(&gone_url, &["members"]);
    assert_eq!(
        unreachable.status.code(),
        Some(3),
        "{}",
        stderr(&unreachable)
    );
    assert_eq!(stderr(&unreachable).lines().count(), 1);
    assert!(
        !stderr(&unreachable).contains("hunter2"),
        "{}",
        stderr(&unreachable)
    );
    let locked = RedisServer::builder()
        .arg("--requirepass")
        .arg("right")
        .start();
    let wrong = fourit(&locked.url_with("", "wrong-password"), &["members"]);
    assert_eq!(wrong.status.code(), Some(3), "{}", stderr(&wrong));
    assert!(
        !stderr(&wrong).contains("wrong-password"),
        "{}",
        stderr(&wrong)
    );
}
