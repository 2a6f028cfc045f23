//! A Redis that may evict fourit's keys is named at start: `allkeys-*` can evict high-water
//! marks (a tick could run twice), `volatile-*` leases (a run could overlap the next).

use std::time::Duration;

use fourit::coordinator::RedisCoordinator;
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
