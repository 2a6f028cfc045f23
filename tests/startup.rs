//! What `run` does with bad configuration at start: clear errors at once, never a panic, never
//! a password in the text; and an unreachable Redis is waited for, not an error.

use std::time::Duration;

use fourit::{Error, ErrorKind, Scheduler};
use fourit_tests::RedisServer;
use tokio::sync::mpsc;

/// Runs a scheduler with no jobs against `url`, expecting it to return an error at once.
async fn start_error(url: &str) -> Error {
    let scheduler = Scheduler::builder()
        .url(url)
        .registered_jobs(false)
        .build()
        .unwrap_or_else(|err| panic!("build: {err}"));
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        scheduler.run_until(std::future::pending()),
    )
    .await
    .unwrap_or_else(|_| panic!("run did not return within 10 s for {url}"));
    match result {
        Ok(()) => panic!("run accepted {url}"),
        Err(err) => err,
    }
}

fn assert_no_secret(err: &Error, secret: &str) {
    let display = err.to_string();
    let debug = format!("{err:?}");
    assert!(!display.contains(secret), "the password leaked: {display}");
    assert!(!debug.contains(secret), "the password leaked: {debug}");
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error_without_the_password() {
    let server = RedisServer::builder()
        .arg("--requirepass")
        .arg("right-horse-battery")
        .start();
    let url = format!("redis://:wrong-horse-staple@127.0.0.1:{}", server.port());
    let err = start_error(&url).await;
    assert!(
        err.coordinator_kind() == Some(ErrorKind::Authentication),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("rejected the credentials"),
        "{err}"
    );
    assert!(err.to_string().contains(":***@"), "{err}");
    assert_no_secret(&err, "wrong-horse-staple");
    assert_no_secret(&err, "right-horse-battery");
}

#[tokio::test]
async fn a_missing_password_is_an_authentication_error() {
    let server = RedisServer::builder()
        .arg("--requirepass")
        .arg("right-horse-battery")
        .start();
    let err = start_error(&server.url()).await;
    assert!(
        err.coordinator_kind() == Some(ErrorKind::Authentication),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unknown_scheme_is_an_invalid_url_error_without_the_password() {
    let err = start_error("mysql://app:hunter2@127.0.0.1:3306").await;
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    assert!(err.to_string().contains("unknown scheme `mysql`"), "{err}");
    assert_no_secret(&err, "hunter2");
    let err = start_error("127.0.0.1:6379").await;
    assert!(err.to_string().contains("it has no scheme"), "{err}");
}

#[tokio::test]
async fn an_unparsable_redis_url_is_an_invalid_url_error_without_the_password() {
    let err = start_error("redis://app:hunter2@[::1:6379").await;
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    assert_no_secret(&err, "hunter2");
}

#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn rediss_without_the_tls_feature_says_which_feature() {
    let err = start_error("rediss://app:hunter2@127.0.0.1:6380").await;
    assert!(err.to_string().contains("`tls` cargo feature"), "{err}");
    assert_no_secret(&err, "hunter2");
}

#[test]
fn duplicate_job_names_are_an_error_naming_both_places() {
    let job = || fourit::Job::new("twice", "* * * * *", |_| async {});
    let (Ok(first), Ok(second)) = (job(), job()) else {
        panic!("jobs");
    };
    let err = Scheduler::builder()
        .url("memory://")
        .registered_jobs(false)
        .job(first)
        .job(second)
        .build()
        .err()
        .unwrap_or_else(|| panic!("duplicate accepted"));
    assert!(matches!(err, Error::DuplicateJob { .. }), "{err:?}");
    assert!(err.to_string().contains("tests/startup.rs:"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_waited_for_and_jobs_run_once_it_appears() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();

    let (ran, mut runs) = mpsc::unbounded_channel();
    let scheduler = Scheduler::builder()
        .url(&url)
        .registered_jobs(false)
        .add_job("every-second", "* * * * * *", move |ctx| {
            let ran = ran.clone();
            async move {
                let _ = ran.send(ctx.tick());
            }
        })
        .build()
        .unwrap_or_else(|err| panic!("scheduler: {err}"));
    let handle = scheduler.handle();
    let running = tokio::spawn(scheduler.run_until(std::future::pending()));

    // Nothing runs while Redis is away (fail closed): two ticks pass with no run.
    let early = tokio::time::timeout(Duration::from_millis(2_100), runs.recv()).await;
    assert!(early.is_err(), "a job ran with Redis down: {early:?}");
    assert!(
        !running.is_finished(),
        "run gave up on an unreachable Redis"
    );

    let restarted = chrono::Utc::now();
    server.restart();
    let first = tokio::time::timeout(Duration::from_secs(15), runs.recv())
        .await
        .unwrap_or_else(|_| panic!("no run within 15 s of Redis appearing"))
        .unwrap_or_else(|| panic!("the job's channel closed"));
    assert!(
        first >= restarted - Duration::from_secs(1),
        "a tick from the outage ran: {first} (Redis back at {restarted})"
    );

    handle.stop();
    let result = tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .unwrap_or_else(|_| panic!("run did not return after stop"))
        .unwrap_or_else(|err| panic!("run panicked: {err}"));
    assert!(result.is_ok(), "{result:?}");
}
