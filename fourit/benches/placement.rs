//! `fourit::placement::preferred`: the preferred claimer of every job due at one tick, which
//! every process computes for each batch of due jobs, for 4 members and 1, 100 and 10,000
//! jobs (and 1,000 members for 1 and 32 jobs); and the 64-bit `score` it ranks members by.
//!
//! ```text
//! cargo bench -p fourit --bench placement
//! ```

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fourit::placement::{preferred, score};

/// A tick in the scheduler's unit, UTC milliseconds.
const TICK_MS: i64 = 1_795_860_000_000;

fn members(count: usize) -> Vec<Arc<str>> {
    (0..count)
        .map(|i| Arc::from(format!("host-{i}:{}:a1b2c3", 1000 + i).as_str()))
        .collect()
}

fn placement(c: &mut Criterion) {
    let four = members(4);
    let mut group = c.benchmark_group("preferred, 4 members");
    for jobs in [1usize, 100, 10_000] {
        let names: Vec<String> = (0..jobs).map(|i| format!("job-{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        group.throughput(Throughput::Elements(jobs as u64));
        group.bench_with_input(BenchmarkId::from_parameter(jobs), &names, |b, names| {
            b.iter(|| preferred(black_box(names), black_box(TICK_MS), black_box(&four)))
        });
    }
    group.finish();

    // A fleet of a thousand: every process places each tick's jobs over every member.
    let fleet = members(1_000);
    let mut group = c.benchmark_group("preferred, 1000 members");
    for jobs in [1usize, 32] {
        let names: Vec<String> = (0..jobs).map(|i| format!("job-{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        group.throughput(Throughput::Elements(jobs as u64));
        group.bench_with_input(BenchmarkId::from_parameter(jobs), &names, |b, names| {
            b.iter(|| preferred(black_box(names), black_box(TICK_MS), black_box(&fleet)))
        });
    }
    group.finish();

    c.bench_function("score", |b| {
        b.iter(|| {
            score(
                black_box("nightly-report"),
                black_box(TICK_MS),
                black_box("host-1:1001:a1b2c3"),
            )
        })
    });
}

criterion_group!(benches, placement);
criterion_main!(benches);
