//! The embedded backends' claim path: `MemoryCoordinator` and `SqliteCoordinator` (a file in
//! the temp directory) claiming batches of 100 ticks that are won, then releasing them in one
//! call, and claiming 100 ticks already claimed (refused at the high-water mark). What the
//! rule book costs them, measured against the build before it (docs/PERFORMANCE.md).
//!
//! ```text
//! cargo bench -p fourit --features sqlite --bench embedded
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fourit::Overlap;
use fourit::coordinator::{
    ClaimOutcome, ClaimRequest, Coordinator, MemoryCoordinator, Outcome, RunRecord,
    SqliteCoordinator,
};

const BATCH: usize = 100;

/// `BATCH` requests for jobs `job-0..`, at a tick in the past (moved on by the caller).
fn requests() -> Vec<ClaimRequest> {
    let node: Arc<str> = Arc::from("bench-node:1:abcdef");
    (0..BATCH)
        .map(|i| ClaimRequest {
            job: Arc::from(format!("job-{i}").as_str()),
            tick_ms: 1_000,
            node: node.clone(),
            lease_ttl: Duration::from_secs(30),
            overlap: Overlap::Skip,
            preferred: Some(node.clone()),
            handoff: Duration::from_millis(25),
            claim_id: fourit::coordinator::new_claim_id(),
            schedule: None,
        })
        .collect()
}

fn bench(c: &mut Criterion, name: &str, coordinator: Arc<dyn Coordinator>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut group = c.benchmark_group(name);
    group.sample_size(20);
    group.throughput(Throughput::Elements(BATCH as u64));
    let record = RunRecord {
        outcome: Outcome::Succeeded,
        started: Utc::now(),
        duration: Duration::from_millis(1),
    };
    let mut won = requests();
    group.bench_function(BenchmarkId::new("claim and release", BATCH), |b| {
        b.iter(|| {
            for request in &mut won {
                request.tick_ms += 1_000;
            }
            let outcomes = runtime.block_on(coordinator.claim(&won)).expect("claim");
            let runs: Vec<_> = outcomes
                .into_iter()
                .filter_map(|outcome| match outcome {
                    ClaimOutcome::Run(lease) => Some((lease, record.clone())),
                    _ => None,
                })
                .collect();
            assert_eq!(runs.len(), BATCH, "every claim of a new tick is won");
            runtime.block_on(coordinator.release_all(&runs))
        })
    });
    let taken = won.clone();
    group.bench_function(BenchmarkId::new("taken", BATCH), |b| {
        b.iter(|| {
            let outcomes = runtime.block_on(coordinator.claim(&taken)).expect("claim");
            assert_eq!(outcomes[0], ClaimOutcome::Taken);
            outcomes
        })
    });
    group.finish();
}

fn embedded(c: &mut Criterion) {
    bench(c, "memory", Arc::new(MemoryCoordinator::new()));
    let dir = std::env::temp_dir().join(format!("fourit-bench-embedded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp directory");
    let url = format!("sqlite://{}/bench.db", dir.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let sqlite = runtime
        .block_on(SqliteCoordinator::connect(&url, "bench"))
        .expect("a SQLite file");
    bench(c, "sqlite", Arc::new(sqlite));
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, embedded);
criterion_main!(benches);
