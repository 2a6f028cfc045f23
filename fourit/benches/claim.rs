//! The claim path against a real Redis: `RedisCoordinator::claim` with batches of 1 and 1,000
//! ticks, won (each tick new) and refused (each tick already claimed). Starts its own
//! `redis-server` on a free loopback port (no persistence); skips with a message if there is
//! none on the PATH.
//!
//! ```text
//! cargo bench -p fourit --bench claim
//! ```

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fourit::Overlap;
use fourit::coordinator::{ClaimOutcome, ClaimRequest, Coordinator, RedisCoordinator};

/// A `redis-server` of the benchmark's own, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start() -> Option<Server> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let dir = std::env::temp_dir().join(format!("fourit-claim-bench-{port}"));
        std::fs::create_dir_all(&dir).ok()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = Server { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `batch` requests for jobs `job-0..`, at tick 1000 (moved on by the caller).
fn requests(batch: usize) -> Vec<ClaimRequest> {
    let node: Arc<str> = Arc::from("bench-node:1:abcdef");
    (0..batch)
        .map(|i| ClaimRequest {
            job: Arc::from(format!("job-{i}").as_str()),
            tick_ms: 1_000,
            node: node.clone(),
            lease_ttl: Duration::from_secs(1),
            // Each won run gets a lease of its own that expires after a second, so the next
            // iteration's claims are won too (not skipped as overlaps).
            overlap: Overlap::Allow,
            preferred: Some(node.clone()),
            handoff: Duration::from_millis(25),
        })
        .collect()
}

fn claim(c: &mut Criterion) {
    let Some(server) = Server::start() else {
        eprintln!("claim benchmarks skipped: could not start redis-server (is it on the PATH?)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let url = format!("redis://127.0.0.1:{}", server.port);
    let coordinator = runtime
        .block_on(RedisCoordinator::connect(&url, "bench"))
        .expect("connecting to the benchmark's redis-server");

    let mut group = c.benchmark_group("claim");
    group.sample_size(30);
    for batch in [1usize, 1_000] {
        group.throughput(Throughput::Elements(batch as u64));
        let mut won = requests(batch);
        group.bench_function(BenchmarkId::new("won", batch), |b| {
            b.iter(|| {
                // A new tick each time: every claim is won.
                for request in &mut won {
                    request.tick_ms += 1_000;
                }
                let outcomes = runtime.block_on(coordinator.claim(&won)).expect("claim");
                debug_assert!(matches!(outcomes[0], ClaimOutcome::Run(_)));
                outcomes
            })
        });
        // The same (already claimed) ticks again: every claim is refused at the high-water
        // mark, as for the processes that lose a tick.
        let taken = won.clone();
        group.bench_function(BenchmarkId::new("taken", batch), |b| {
            b.iter(|| {
                let outcomes = runtime.block_on(coordinator.claim(&taken)).expect("claim");
                debug_assert_eq!(outcomes[0], ClaimOutcome::Taken);
                outcomes
            })
        });
    }
    group.finish();
    drop(server);
}

criterion_group!(benches, claim);
criterion_main!(benches);
