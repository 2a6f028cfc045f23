//! `backends`: the same fleets on one Redis, on PostgreSQL and on a SQLite file, in one run:
//! start delay of 1 process with 100 jobs every second, and the coordinator round trips per
//! run of 4 processes with 4 jobs every second. PostgreSQL is `FOURIT_BENCH_POSTGRES_URL`
//! (default the `test` database on 127.0.0.1:5432), under a namespace of this run's own.

use serde_json::{Value, json};

use crate::common::{Ctx, Flags, Measured, Window, measure_at, members};
use crate::fleet::Kind;
use crate::report::{number, table};

/// Runs the scenario and prints its table.
pub async fn backends(ctx: &mut Ctx) -> Result<(), String> {
    let secs = ctx.secs(30, 10);
    println!("\n== backends: one Redis, PostgreSQL and a SQLite file, {secs} s windows");
    let postgres = std::env::var("FOURIT_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let dir = std::env::temp_dir().join(format!("fourit-bench-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sqlite = format!("sqlite://{}/bench.db", dir.display());
    let targets = [
        ("Redis", ctx.redis.url()),
        ("PostgreSQL", postgres),
        ("SQLite", sqlite),
    ];
    let mut rows = Vec::new();
    let mut entries: Vec<Value> = Vec::new();
    for (processes, jobs) in [(1usize, 100usize), (4, 4)] {
        for (name, url) in &targets {
            let specs = members("b", processes, |_| Flags::new().with("jobs", jobs));
            let m: Measured =
                measure_at(ctx, url, Kind::Fourit, &specs, Window::new(4_000, secs)).await?;
            let runs = m.window_runs();
            let per_tick = m.per_tick();
            let doubles = per_tick.values().filter(|runs| runs.len() > 1).count();
            let missed = (jobs * secs as usize).saturating_sub(per_tick.len());
            let calls = m.calls.unwrap_or_default();
            let trips = calls.round_trips() as f64 / runs.len().max(1) as f64;
            let delays = m.delays();
            let variant = format!("{processes} x {jobs} jobs/s, {name}");
            rows.push(vec![
                variant.clone(),
                format!("{}/{}", runs.len(), jobs * secs as usize),
                delays.text(),
                number(trips),
                format!("{:.3}", m.cpu_per_minute()),
                format!("{doubles}/{missed}"),
                m.noise_text(),
            ]);
            let mut entry = m.json();
            entry["variant"] = json!(variant);
            entry["start_delay"] = delays.json();
            entry["round_trips_per_run"] = json!(trips);
            entries.push(entry);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    table(
        "backends (the same fleets on Redis, PostgreSQL and SQLite)",
        &[
            "variant",
            "runs",
            "start delay p50 / p99 / max ms",
            "round trips per run",
            "CPU s/min",
            "double/missed",
            "other CPU",
        ],
        &rows,
    );
    ctx.report
        .scenarios
        .insert("backends".to_string(), Value::Array(entries));
    Ok(())
}
