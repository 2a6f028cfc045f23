//! The fleet's views against a real Redis: `FleetAdmin::status()` (what `fourit status` and
//! the dashboard's jobs page read), and its parts (the catalog, every job's history), over 100
//! and 1,000 jobs, each registered by 3 members and
//! with 30 entries of history. Starts its own `redis-server` on a free loopback port through
//! `fourit-testkit`; skips with a message if there is none on the PATH.
//!
//! ```text
//! cargo bench -p fourit --bench views
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fourit::Overlap;
use fourit::admin::FleetAdmin;
use fourit::coordinator::{
    ClaimOutcome, ClaimRequest, JobDefinition, Outcome, RedisCoordinator, RunRecord, Store,
};

const MEMBERS: [&str; 3] = ["bench-a:1:aaaa", "bench-b:2:bbbb", "bench-c:3:cccc"];
const HISTORY: i64 = 30;

/// `jobs` jobs registered by every member, each with `HISTORY` runs on record.
async fn fill(store: &Arc<dyn Store>, jobs: usize) {
    let definitions: Vec<JobDefinition> = (0..jobs)
        .map(|i| JobDefinition {
            name: format!("job-{i}"),
            schedule: "* * * * * *".to_string(),
            timezone: "UTC".to_string(),
            overlap: Overlap::Skip,
            timeout: None,
            grace: None,
            location: "bench.rs:1".to_string(),
            version: None,
        })
        .collect();
    for member in MEMBERS {
        store
            .heartbeat(member, Duration::from_secs(3_600), None)
            .await
            .expect("heartbeat");
        store
            .register(member, &definitions)
            .await
            .expect("register");
    }
    let record = RunRecord {
        outcome: Outcome::Succeeded,
        started: Utc::now(),
        duration: Duration::from_millis(1),
    };
    let node: Arc<str> = Arc::from(MEMBERS[0]);
    for tick in 0..HISTORY {
        let requests: Vec<ClaimRequest> = definitions
            .iter()
            .map(|job| ClaimRequest {
                job: Arc::from(job.name.as_str()),
                tick_ms: 1_000 * (tick + 1),
                node: node.clone(),
                lease_ttl: Duration::from_secs(30),
                overlap: Overlap::Skip,
                preferred: None,
                handoff: Duration::ZERO,
                claim_id: fourit::coordinator::new_claim_id(),
                schedule: None,
            })
            .collect();
        let runs: Vec<_> = store
            .claim(&requests)
            .await
            .expect("claim")
            .into_iter()
            .filter_map(|outcome| match outcome {
                ClaimOutcome::Run(lease) => Some((lease, record.clone())),
                _ => None,
            })
            .collect();
        store.release_all(&runs).await;
    }
}

fn views(c: &mut Criterion) {
    let server = match fourit_testkit::RedisServer::builder().try_start() {
        Ok(server) => server,
        Err(why) => {
            eprintln!("views benchmarks skipped: {why}");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut group = c.benchmark_group("status");
    group.sample_size(10);
    for jobs in [100usize, 1_000] {
        let namespace = format!("views-{jobs}");
        let store: Arc<dyn Store> = Arc::new(
            runtime
                .block_on(RedisCoordinator::connect(&server.url(), &namespace))
                .expect("connecting to the benchmark's redis-server"),
        );
        runtime.block_on(fill(&store, jobs));
        let names: Vec<String> = (0..jobs).map(|i| format!("job-{i}")).collect();
        // What a status reads, one part at a time.
        group.bench_function(BenchmarkId::new("catalog", jobs), |b| {
            b.iter(|| runtime.block_on(store.catalog()).expect("catalog"))
        });
        group.bench_function(BenchmarkId::new("histories", jobs), |b| {
            b.iter(|| {
                runtime
                    .block_on(store.histories(&names, 30))
                    .expect("histories")
            })
        });
        let admin = FleetAdmin::new(store);
        group.bench_function(BenchmarkId::new("jobs", jobs), |b| {
            b.iter(|| {
                let statuses = runtime.block_on(admin.status()).expect("status");
                assert_eq!(statuses.len(), jobs);
                statuses
            })
        });
    }
    group.finish();
    drop(server);
}

criterion_group!(benches, views);
criterion_main!(benches);
