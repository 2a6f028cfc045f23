//! Tests of the test harness itself: the `RedisServer` every other test relies on.

use std::collections::HashSet;
use std::time::Duration;

use fourit_tests::{RedisServer, init_tracing};

async fn ping(con: &mut redis::aio::MultiplexedConnection) -> String {
    redis::cmd("PING")
        .query_async(con)
        .await
        .expect("PING answers")
}

async fn config_get(con: &mut redis::aio::MultiplexedConnection, name: &str) -> String {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(con)
        .await
        .expect("CONFIG GET answers");
    pair.get(1).cloned().unwrap_or_default()
}

/// A connection attempt that must fail, bounded so a hang fails the test.
async fn assert_unreachable(url: &str) {
    let client = redis::Client::open(url).unwrap();
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        client.get_multiplexed_async_connection(),
    )
    .await
    .expect("connecting to a stopped server fails fast rather than hanging");
    assert!(
        attempt.is_err(),
        "a stopped server still accepted a connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_starts_answers_ping_and_stops_gracefully() {
    init_tracing();
    let mut server = RedisServer::start();
    assert!(server.is_running());
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert!(server.dir().is_dir());

    let mut con = server.connection().await;
    assert_eq!(ping(&mut con).await, "PONG");
    assert_eq!(config_get(&mut con, "save").await, "");
    assert_eq!(config_get(&mut con, "appendonly").await, "no");
    assert_eq!(config_get(&mut con, "bind").await, "127.0.0.1");
    assert_eq!(
        config_get(&mut con, "dir").await,
        server.dir().canonicalize().unwrap().to_string_lossy()
    );

    server.stop();
    assert!(!server.is_running());
    assert!(
        server.log().contains("bye bye"),
        "stop() shuts down gracefully; log:\n{}",
        server.log()
    );
    assert_unreachable(&server.url()).await;
    assert!(
        server.dir().is_dir(),
        "stop() keeps the directory for restart()"
    );
    server.stop(); // stopping twice is harmless
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_port_and_dir_and_starts_empty_without_persistence() {
    init_tracing();
    let mut server = RedisServer::start();
    let (port, dir) = (server.port(), server.dir().to_path_buf());
    let mut con = server.connection().await;
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();

    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.dir(), dir);
    let mut con = server.connection().await;
    assert_eq!(ping(&mut con).await, "PONG");
    let value: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        value, None,
        "without persistence a restarted server is empty"
    );

    // restart() after stop() works as well.
    server.stop();
    server.restart();
    assert_eq!(ping(&mut server.connection().await).await, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appendonly_keeps_data_across_stop_and_restart() {
    init_tracing();
    let mut server = RedisServer::builder().appendonly(true).start();
    let mut con = server.connection().await;
    assert_eq!(config_get(&mut con, "appendonly").await, "yes");
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut con)
        .await
        .unwrap();

    server.stop();
    server.restart();
    let mut con = server.connection().await;
    let value: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_arguments_such_as_requirepass_apply() {
    init_tracing();
    let mut server = RedisServer::builder()
        .arg("--requirepass")
        .arg("s3 cret/@")
        .start();

    // Without the password the server refuses commands.
    let mut anonymous = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let refused: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut anonymous).await;
    assert!(refused.is_err(), "PING without AUTH: {refused:?}");

    // With it (percent-encoded in the URL), it serves.
    let url = server.url_with("default", "s3 cret/@");
    assert!(url.starts_with("redis://default:s3%20cret%2F%40@127.0.0.1:"));
    let mut con = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(ping(&mut con).await, "PONG");
    // client()/connection() authenticate on their own.
    assert_eq!(ping(&mut server.connection().await).await, "PONG");

    // The harness's readiness probe and SHUTDOWN authenticate too.
    server.restart();
    assert_eq!(ping(&mut server.connection().await).await, "PONG");
    server.stop();
    assert!(server.log().contains("bye bye"), "log:\n{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_restarts() {
    init_tracing();
    let mut server = RedisServer::start();
    server.kill();
    assert!(!server.is_running());
    assert_unreachable(&server.url()).await;
    server.restart();
    assert_eq!(ping(&mut server.connection().await).await, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_kills_the_server_and_removes_its_directory() {
    init_tracing();
    let server = RedisServer::start();
    let (url, dir) = (server.url(), server.dir().to_path_buf());
    assert_eq!(ping(&mut server.connection().await).await, "PONG");
    drop(server);
    assert!(!dir.exists(), "{} was not removed", dir.display());
    assert_unreachable(&url).await;
}

#[test]
fn servers_started_in_parallel_get_their_own_port_and_directory() {
    init_tracing();
    let servers: Vec<RedisServer> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6).map(|_| scope.spawn(RedisServer::start)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ports: HashSet<u16> = servers.iter().map(RedisServer::port).collect();
    let dirs: HashSet<_> = servers.iter().map(|s| s.dir().to_path_buf()).collect();
    assert_eq!(ports.len(), servers.len());
    assert_eq!(dirs.len(), servers.len());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for server in &servers {
            let mut con = server.connection().await;
            let port: String = config_get(&mut con, "port").await;
            assert_eq!(
                port,
                server.port().to_string(),
                "each URL reaches its own server"
            );
        }
    });
}
