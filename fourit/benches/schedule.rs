//! `Schedule::next_after` (the driver calls it once per tick of every job) and
//! `Schedule::parse`, for typical and worst-case expressions.
//!
//! ```text
//! cargo bench -p fourit --bench schedule
//! ```

use std::hint::black_box;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use fourit::Schedule;

/// (label, expression, time zone, searching from: y, m, d, h UTC): typical ones first, then
/// the ones that search far or cross a daylight-saving change.
type Case = (
    &'static str,
    &'static str,
    &'static str,
    (i32, u32, u32, u32),
);

/// Just before Berlin's spring-forward gap of 2026 (29 March, 02:00 -> 03:00 local), after
/// the leap day of 2024 (so the leap-day case searches almost four years), and an ordinary
/// day for comparison.
const CASES: [Case; 10] = [
    ("every 5 minutes", "*/5 * * * *", "UTC", (2026, 3, 28, 23)),
    ("weekdays at 9", "0 9 * * MON-FRI", "UTC", (2026, 3, 28, 23)),
    (
        "every second (6 fields)",
        "* * * * * *",
        "UTC",
        (2026, 3, 28, 23),
    ),
    (
        "every 10 s, business hours",
        "*/10 * 8-18 * * MON-FRI",
        "UTC",
        (2026, 3, 28, 23),
    ),
    (
        "29 February (leap day)",
        "0 0 29 2 *",
        "UTC",
        (2026, 3, 28, 23),
    ),
    (
        "last Friday of the month",
        "0 0 * * 5L",
        "UTC",
        (2026, 3, 28, 23),
    ),
    (
        "last weekday of the month",
        "0 17 LW * *",
        "UTC",
        (2026, 3, 28, 23),
    ),
    (
        "every 5 minutes, Berlin, ordinary day",
        "*/5 * * * *",
        "Europe/Berlin",
        (2026, 6, 10, 12),
    ),
    (
        "02:30 Berlin, ordinary day",
        "30 2 * * *",
        "Europe/Berlin",
        (2026, 6, 10, 12),
    ),
    (
        "02:30 Berlin, across spring-forward",
        "30 2 * * *",
        "Europe/Berlin",
        (2026, 3, 28, 23),
    ),
];

fn next_after(c: &mut Criterion) {
    let mut group = c.benchmark_group("next_after");
    for (label, expr, tz, (y, m, d, h)) in CASES {
        let schedule = Schedule::parse(expr)
            .and_then(|s| s.with_timezone(tz))
            .expect("the benchmark's schedules are valid");
        let after: DateTime<Utc> = Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap();
        assert!(
            schedule.next_after(after).is_some(),
            "{label} has a next tick"
        );
        group.bench_function(label, |b| {
            b.iter(|| black_box(&schedule).next_after(black_box(after)))
        });
    }
    group.finish();
}

/// What each claim computes to tell missed ticks: the schedule's tick before the claimed one.
fn latest_at_or_before(c: &mut Criterion) {
    let mut group = c.benchmark_group("latest_at_or_before");
    for (label, expr, tz, (y, m, d, h)) in CASES {
        let schedule = Schedule::parse(expr)
            .and_then(|s| s.with_timezone(tz))
            .expect("the benchmark's schedules are valid");
        let at: DateTime<Utc> = Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap();
        group.bench_function(label, |b| {
            b.iter(|| black_box(&schedule).latest_at_or_before(black_box(at)))
        });
    }
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (label, expr, _, _) in CASES {
        group.bench_function(label, |b| b.iter(|| Schedule::parse(black_box(expr))));
    }
    group.finish();
}

criterion_group!(benches, next_after, latest_at_or_before, parse);
criterion_main!(benches);
