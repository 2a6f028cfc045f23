//! Bad input is caught early, and never as a panic. Extends `startup.rs` (which covers the
//! in-process errors for a wrong or missing password, a bad scheme, an unparsable URL,
//! duplicate job names, and jobs starting once an unreachable Redis appears) with:
//!
//! - an unreachable Redis at start is retried with exactly one warning (a worker process's
//!   tracing output, counted), and jobs run once it appears;
//! - a Redis user lacking any one command of the README's minimal ACL gets an `Err` at start
//!   naming the command;
//! - the real worker binary, given bad configuration, exits with an error message, no panic
//!   and no password.

use std::time::Duration;

use fourit::{ErrorKind, Scheduler};
use fourit_tests::faults::{Fleet, Line};
use fourit_tests::{RedisServer, readme_acl};
use tokio::task::JoinSet;

const WORKER: &str = env!("CARGO_BIN_EXE_worker");

/// The commands the README's minimal ACL grants (`+evalsha` → `evalsha`).
fn readme_commands() -> Vec<String> {
    readme_acl()
        .iter()
        .filter_map(|word| word.strip_prefix('+'))
        .map(str::to_string)
        .collect()
}

/// The pub/sub channel patterns the README's minimal ACL grants (`&fourit:*`).
fn readme_channels() -> Vec<String> {
    readme_acl()
        .iter()
        .filter(|word| word.starts_with('&'))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_at_start_is_retried_with_one_warning_and_jobs_run_when_it_appears() {
    let mut server = RedisServer::start();
    let recorder = RedisServer::start();
    tokio::task::block_in_place(|| server.stop());
    let (url, record_url) = (server.url(), recorder.url());
    let mut fleet = Fleet::new(WORKER);
    fleet.start(
        "a",
        &[
            "--url",
            &url,
            "--record-url",
            &record_url,
            "--namespace",
            "unreachable",
            "--jobs",
            "1",
        ],
    );
    fleet
        .wait_for(Duration::from_secs(10), "`ready`", |e| {
            e.line == Line::Ready
        })
        .await;
    // The outage: 4 s, two to four backoff rounds.
    fleet.watch(Duration::from_secs(4)).await;
    let during = fleet.worker("a").stderr();
    let ran_during = fleet.ran("job-0");
    tokio::task::block_in_place(|| server.restart());
    let back_at = fourit_tests::faults::now_ms();
    let first = fleet
        .wait_for(Duration::from_secs(15), "a run once Redis appears", |e| {
            e.ran("job-0").is_some()
        })
        .await;
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;

    let after = fleet.worker("a").stderr();
    let warnings = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.contains(" WARN "))
            .map(str::to_string)
            .collect()
    };
    eprintln!(
        "warnings during the 4 s outage: {:?}; first run {} ms after Redis appeared; all \
         warnings: {:?}",
        warnings(&during),
        first.wall_ms - back_at,
        warnings(&after)
    );
    assert_eq!(ran_during, vec![], "a job ran with Redis unreachable");
    assert_eq!(
        warnings(&during).len(),
        1,
        "expected one warning for the outage:\n{during}"
    );
    assert!(warnings(&during)[0].contains("unreachable"), "{during}");
    assert_eq!(
        warnings(&after)
            .iter()
            .filter(|line| line.contains("unreachable"))
            .count(),
        1,
        "{after}"
    );
}

/// What `run` does for a user lacking `command`: `Err(Permission)` naming it, at start.
async fn run_without(server_url: String, user: String, command: String) -> Result<(), String> {
    let url = server_url.replacen("redis://", &format!("redis://{user}:pw-{user}@"), 1);
    let scheduler = Scheduler::builder()
        .url(&url)
        .registered_jobs(false)
        .add_job("acl-probe", "* * * * * *", |_| async {})
        .build()
        .map_err(|err| format!("build: {err}"))?;
    match tokio::time::timeout(
        Duration::from_secs(6),
        scheduler.run_until(std::future::pending()),
    )
    .await
    {
        Err(_) => Err(format!("lacking `{command}`: no error within 6 s of start")),
        Ok(Ok(())) => Err(format!("lacking `{command}`: run returned Ok")),
        Ok(Err(err)) if err.coordinator_kind() == Some(ErrorKind::Permission) => {
            let text = err.to_string();
            let named = if command.starts_with('&') {
                text.contains("channel")
            } else {
                text.contains(&format!("'{command}'")) || text.contains(&format!("`{command}`"))
            };
            if named {
                Ok(())
            } else {
                Err(format!(
                    "lacking `{command}`: the error does not name it: {text}"
                ))
            }
        }
        Ok(Err(err)) => Err(format!(
            "lacking `{command}`: not a permission error: {err:?}"
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_lacking_any_command_of_the_minimal_acl_gets_an_error_naming_it() {
    let server = RedisServer::start();
    let mut admin = server.connection().await;
    let commands = readme_commands();
    let channels = readme_channels();
    assert!(commands.len() > 10, "{commands:?}");
    assert!(!channels.is_empty(), "the README grants no channel");
    let mut runs = JoinSet::new();
    // Each command in turn, then the channel pattern (`&fourit:*`), is the one lacking.
    for (index, lacking) in commands.iter().chain(&channels).enumerate() {
        let user = format!("lacks-{index}");
        let mut setuser = redis::cmd("ACL");
        setuser
            .arg("SETUSER")
            .arg(&user)
            .arg("on")
            .arg(format!(">pw-{user}"))
            .arg("~fourit:*");
        for channel in channels.iter().filter(|c| *c != lacking) {
            setuser.arg(channel);
        }
        for command in commands.iter().filter(|c| *c != lacking) {
            setuser.arg(format!("+{command}"));
        }
        setuser
            .query_async::<()>(&mut admin)
            .await
            .unwrap_or_else(|err| panic!("ACL SETUSER without {lacking}: {err}"));
        runs.spawn(run_without(server.url(), user, lacking.clone()));
    }
    let mut failures = Vec::new();
    while let Some(joined) = runs.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => failures.push(failure),
            Err(err) => failures.push(format!("a run panicked: {err}")),
        }
    }
    failures.sort();
    eprintln!(
        "{} of {} commands not reported at start:\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} of {} missing commands were not a clear error at start:\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_exits_with_a_clear_error_and_no_panic_on_bad_configuration() {
    let server = RedisServer::builder()
        .arg("--requirepass")
        .arg("right-horse-battery")
        .start();
    let recorder = RedisServer::start();
    let record_url = recorder.url();
    let cases = [
        (
            format!("redis://:wrong-horse-staple@127.0.0.1:{}", server.port()),
            "rejected the credentials",
        ),
        (
            "mysql://app:wrong-horse-staple@127.0.0.1:3306".to_string(),
            "unknown scheme `mysql`",
        ),
        (
            "redis://app:wrong-horse-staple@[::1:6379".to_string(),
            "invalid coordinator URL",
        ),
    ];
    let mut fleet = Fleet::new(WORKER);
    for (index, (url, _)) in cases.iter().enumerate() {
        fleet.start(
            &format!("case-{index}"),
            &["--url", url, "--record-url", &record_url, "--jobs", "1"],
        );
    }
    for (index, (url, expected)) in cases.iter().enumerate() {
        let worker = fleet.worker(&format!("case-{index}"));
        let status = worker
            .wait(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("the worker kept running with {url}"));
        // The pipe may still be draining: wait for the message, boundedly.
        let line = worker
            .wait_for_log(Duration::from_secs(2), &[expected])
            .await;
        let stderr = worker.stderr();
        eprintln!("{url}: {status}: {line}");
        assert!(!status.success(), "{url}: exited with {status}");
        assert!(!stderr.contains("panicked"), "{url}: {stderr}");
        assert!(!stderr.contains("wrong-horse-staple"), "{url}: {stderr}");
        assert!(!stderr.contains("right-horse-battery"), "{url}: {stderr}");
    }
}
