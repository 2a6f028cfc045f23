//! `backends`: the same fleets on one Redis, on PostgreSQL and on a SQLite file, in one run:
//! start delay of 1 process with 100 jobs every second, and the coordinator round trips per
//! run of 4 processes with 4 jobs every second. PostgreSQL is `FOURIT_BENCH_POSTGRES_URL`
//! (default the `test` database on 127.0.0.1:5432), under a namespace of this run's own.

use serde_json::Value;

use crate::cluster::side_by_side;
use crate::common::Ctx;
use crate::report::table;

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
    let measured = side_by_side(ctx, &targets, "b", secs).await;
    let _ = std::fs::remove_dir_all(&dir);
    let (rows, entries) = measured?;
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
