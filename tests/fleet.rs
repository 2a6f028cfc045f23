//! Fleet tests: real OS processes of the `worker` binary against a real `redis-server`,
//! counting each job's runs per tick in Redis.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use fourit_tests::RedisServer;
use redis::AsyncCommands;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A started worker process and the lines it prints.
struct Worker {
    child: Child,
}

/// Starts a worker; every stdout line is sent to `lines` as `(node, line)`.
fn start_worker(
    url: &str,
    namespace: &str,
    node: &str,
    extra: &[&str],
    lines: &mpsc::UnboundedSender<(String, String)>,
) -> Worker {
    let mut child = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["--url", url, "--namespace", namespace, "--node", node])
        .args(extra)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("starting the worker binary: {err}"));
    if let Some(stdout) = child.stdout.take() {
        let lines = lines.clone();
        let node = node.to_string();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if lines.send((node.clone(), line)).is_err() {
                    break;
                }
            }
        });
    }
    Worker { child }
}

impl Worker {
    /// SIGTERM, then the exit status must be success.
    async fn stop_gracefully(mut self) {
        let pid = self
            .child
            .id()
            .unwrap_or_else(|| panic!("worker already exited"));
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap_or_else(|err| panic!("kill: {err}"));
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("worker did not exit within 20 s of SIGTERM"))
            .unwrap_or_else(|err| panic!("waiting for the worker: {err}"));
        assert!(exit.success(), "worker exited with {exit}");
    }
}

/// Waits for `ran JOB TICK NODE` lines until `job` has run for `ticks` distinct ticks.
async fn wait_for_ticks(
    rx: &mut mpsc::UnboundedReceiver<(String, String)>,
    job: &str,
    ticks: usize,
) {
    let mut seen = BTreeSet::new();
    let wait = async {
        while seen.len() < ticks {
            let Some((_, line)) = rx.recv().await else {
                panic!("every worker exited");
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["ran", ran_job, tick, _node] = words.as_slice()
                && *ran_job == job
            {
                seen.insert(tick.to_string());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap_or_else(|_| panic!("{job} ran for only {} ticks within 60 s", seen.len()));
}

/// Runs per tick of `job`, read from the workers' records in Redis.
async fn runs_per_tick(
    conn: &mut redis::aio::MultiplexedConnection,
    namespace: &str,
    job: &str,
) -> BTreeMap<i64, i64> {
    let pattern = format!("{namespace}-record:runs:{job}:*");
    let keys: Vec<String> = conn
        .keys(&pattern)
        .await
        .unwrap_or_else(|err| panic!("KEYS: {err}"));
    let mut runs = BTreeMap::new();
    for key in keys {
        let tick: i64 = key
            .rsplit(':')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("bad record key {key}"));
        let count: i64 = conn
            .get(&key)
            .await
            .unwrap_or_else(|err| panic!("GET: {err}"));
        runs.insert(tick, count);
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_run_each_tick_exactly_once_and_share_the_jobs() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "fleet";
    let (tx, mut rx) = mpsc::unbounded_channel();
    let workers: Vec<Worker> = ["a", "b", "c"]
        .iter()
        .map(|node| start_worker(&url, namespace, node, &["--jobs", "4"], &tx))
        .collect();
    drop(tx);
    wait_for_ticks(&mut rx, "job-0", 14).await;
    for worker in workers {
        worker.stop_gracefully().await;
    }

    let mut conn = server.connection().await;
    let mut nodes_seen = BTreeSet::new();
    let log: Vec<String> = conn
        .lrange(format!("{namespace}-record:log"), 0, -1)
        .await
        .unwrap_or_else(|err| panic!("LRANGE: {err}"));
    for line in &log {
        if let Some(node) = line.split_whitespace().nth(2) {
            nodes_seen.insert(node.to_string());
        }
    }
    for job in ["job-0", "job-1", "job-2", "job-3"] {
        let runs = runs_per_tick(&mut conn, namespace, job).await;
        let twice: Vec<_> = runs.iter().filter(|(_, count)| **count != 1).collect();
        assert!(
            twice.is_empty(),
            "{job}: ticks not run exactly once: {twice:?}"
        );
        // Between its first and last run the job ran every second: no tick was lost.
        let ticks: Vec<i64> = runs.keys().copied().collect();
        let (Some(first), Some(last)) = (ticks.first(), ticks.last()) else {
            panic!("{job} never ran");
        };
        let expected: Vec<i64> = (*first..=*last).step_by(1000).collect();
        assert_eq!(ticks, expected, "{job}: a tick is missing");
        assert!(
            ticks.len() >= 10,
            "{job}: only {} consecutive ticks",
            ticks.len()
        );
    }
    assert!(
        nodes_seen.len() > 1,
        "all runs happened on one process ({nodes_seen:?}): the load is not shared"
    );
}
