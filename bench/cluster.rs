//! `cluster`: the same fleets on one Redis and on a Redis Cluster of three primaries (started
//! by the benchmark from `redis-server --cluster-enabled yes`), in one run: start delay of 1
//! process with 100 jobs every second, and the coordinator round trips per run of 4 processes
//! with 4 jobs every second (whose keys fall on different primaries).

use serde_json::{Value, json};

use crate::common::{Ctx, Flags, Measured, Window, measure_at, members};
use crate::fleet::Kind;
use crate::report::{number, table};

/// Runs the scenario and prints its table.
pub async fn cluster(ctx: &mut Ctx) -> Result<(), String> {
    let secs = ctx.secs(30, 10);
    println!("\n== cluster: one Redis beside a 3-primary Redis Cluster, {secs} s windows");
    let cluster = fourit_testkit::RedisCluster::try_start(3, 0)?;
    let targets = [
        ("one Redis", ctx.redis.url()),
        ("cluster, 3 primaries", cluster.url()),
    ];
    let (rows, entries) = side_by_side(ctx, &targets, "c", secs).await?;
    table(
        "cluster (the same fleets on one Redis and on a Redis Cluster)",
        &SIDE_BY_SIDE_COLUMNS,
        &rows,
    );
    ctx.report
        .scenarios
        .insert("cluster".to_string(), Value::Array(entries));
    Ok(())
}

/// The columns of [`side_by_side`]'s rows.
pub const SIDE_BY_SIDE_COLUMNS: [&str; 7] = [
    "variant",
    "runs",
    "start delay p50 / p99 / max ms",
    "round trips per run",
    "CPU s/min",
    "double/missed",
    "other CPU",
];

/// The same two fleets on each of `targets` (name, URL), one after the other: 1 process with
/// 100 jobs every second, then 4 processes with 4 jobs every second. Answers the table rows
/// (variant, runs, start delay, round trips per run, CPU, double/missed, other CPU) and each
/// window's JSON.
pub async fn side_by_side(
    ctx: &mut Ctx,
    targets: &[(&str, String)],
    prefix: &str,
    secs: i64,
) -> Result<(Vec<Vec<String>>, Vec<Value>), String> {
    let mut rows = Vec::new();
    let mut entries: Vec<Value> = Vec::new();
    for (processes, jobs) in [(1usize, 100usize), (4, 4)] {
        for (name, url) in targets {
            let specs = members(prefix, processes, |_| Flags::new().with("jobs", jobs));
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
    Ok((rows, entries))
}
