//! The claim path against a real Redis: `RedisCoordinator::claim` with batches of 1 and 1,000
//! ticks, won (each tick new) and refused (each tick already claimed). Starts its own
//! `redis-server` on a free loopback port (no persistence) through `fourit-testkit`, the
//! tests' launcher; skips with a message if there is none on the PATH.
//!
//! ```text
//! cargo bench -p fourit --bench claim
//! ```

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fourit::Overlap;
use fourit::coordinator::{ClaimOutcome, ClaimRequest, Coordinator, RedisCoordinator};

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
            claim_id: fourit::coordinator::new_claim_id(),
            schedule: None,
        })
        .collect()
}

fn claim(c: &mut Criterion) {
    // The launcher the tests use.
    let server = match fourit_testkit::RedisServer::builder().try_start() {
        Ok(server) => server,
        Err(why) => {
            eprintln!("claim benchmarks skipped: {why}");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let url = server.url();
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
