//! A Redis that may evict fourit's keys is named at start: `allkeys-*` can evict high-water
//! marks (a tick could run twice), `volatile-*` leases (a run could overlap the next). In
//! strict mode (`?eviction=strict`, `SchedulerBuilder::eviction`) `allkeys-*` is an error.

use std::time::Duration;

use fourit::coordinator::{ConnectOptions, EvictionCheck, RedisCoordinator};
use fourit_tests::RedisServer;
use fourit_tests::faults::LogBuffer;

/// The warnings logged while connecting to a server started with `policy`.
async fn warnings_with(policy: &str) -> Vec<String> {
    let server = RedisServer::builder()
        .arg("--maxmemory")
        .arg("100mb")
        .arg("--maxmemory-policy")
        .arg(policy)
        .start();
    let logs = LogBuffer::default();
    let _capture = logs.install();
    let coordinator = tokio::time::timeout(
        Duration::from_secs(10),
        RedisCoordinator::connect(&server.url(), "eviction"),
    )
    .await
    .unwrap_or_else(|_| panic!("no connection within 10 s"))
    .unwrap_or_else(|err| panic!("connecting: {err}"));
    drop(coordinator);
    logs.text()
        .lines()
        .filter(|line| line.contains("WARN"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn an_allkeys_policy_is_named_with_the_double_run_it_risks() {
    let warnings = warnings_with("allkeys-lru").await;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("allkeys-lru") && warnings[0].contains("run twice"),
        "{warnings:#?}"
    );
}

#[tokio::test]
async fn a_volatile_policy_is_named_with_the_overlap_it_risks() {
    let warnings = warnings_with("volatile-ttl").await;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("volatile-ttl") && warnings[0].contains("overlap"),
        "{warnings:#?}"
    );
}

#[tokio::test]
async fn noeviction_says_nothing() {
    assert_eq!(warnings_with("noeviction").await, Vec::<String>::new());
}

/// A server started with `policy`.
fn server_with(policy: &str) -> RedisServer {
    RedisServer::builder()
        .arg("--maxmemory")
        .arg("100mb")
        .arg("--maxmemory-policy")
        .arg(policy)
        .start()
}

#[tokio::test]
async fn strict_mode_refuses_an_allkeys_policy_at_start_and_accepts_the_others() {
    let allkeys = server_with("allkeys-lru");
    // The URL form, as `fourit::run` users write it.
    let err = RedisCoordinator::connect(&format!("{}?eviction=strict", allkeys.url()), "eviction")
        .await
        .expect_err("strict mode refuses allkeys-lru");
    let text = err.to_string();
    assert!(
        text.contains("allkeys-lru") && text.contains("run twice") && text.contains("eviction"),
        "{text}"
    );
    // The builder form, through the scheduler: an error from `run`, no job run.
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    let err = fourit::Scheduler::builder()
        .url(&allkeys.url())
        .registered_jobs(false)
        .eviction(EvictionCheck::Strict)
        .add_job("never", "* * * * * *", move |_| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            async {}
        })
        .build()
        .unwrap_or_else(|e| panic!("build: {e}"))
        .run()
        .await
        .expect_err("run refuses allkeys-lru in strict mode");
    assert!(err.to_string().contains("allkeys-lru"), "{err}");
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "a job ran");
    // volatile-* risks an overlap only: a warning, not an error, even in strict mode.
    for policy in ["volatile-ttl", "noeviction"] {
        let server = server_with(policy);
        let options = ConnectOptions::new().eviction(EvictionCheck::Strict);
        RedisCoordinator::connect_with_options(&server.url(), "eviction", &options)
            .await
            .unwrap_or_else(|e| panic!("{policy} in strict mode: {e}"));
    }
}
