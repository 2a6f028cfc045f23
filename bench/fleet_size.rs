//! `fleet-size`: what one process costs Redis at 4 and at 64 processes, idle (membership
//! only: an hourly job, not due) and busy (32 jobs every second): Redis commands, scripts and
//! bytes each way per process per second, heartbeats, the shares of the runs, start delay,
//! and every tick run once. With the membership version a steady heartbeat answers a version,
//! not the member list, so the idle cost per process must not grow with the fleet.

use serde_json::{Value, json};

use crate::common::{Ctx, Flags, Measured, Window, measure, members, quiet_minute, shares};
use crate::fleet::Kind;
use crate::measure::round1;
use crate::report::{number, table};

/// Jobs of the busy variant, every second.
const BUSY_JOBS: usize = 32;

/// Per process per second: Redis commands (scripts' own included), script calls, bytes in,
/// bytes out, heartbeats.
fn per_process(m: &Measured, processes: usize) -> [f64; 5] {
    let per = |total: u64| total as f64 / m.secs() / processes as f64;
    let commands: u64 = m.info.calls.values().sum();
    [
        per(commands),
        per(m.info.get("evalsha")),
        per(m.info.net_in),
        per(m.info.net_out),
        per(m.calls.map_or(0, |calls| calls.heartbeats)),
    ]
}

/// Runs the scenario and prints its table.
pub async fn fleet_size(ctx: &mut Ctx) -> Result<(), String> {
    let secs = ctx.secs(30, 12);
    println!(
        "\n== fleet-size: one process's cost to Redis at 4 and 64 processes, {secs} s windows"
    );
    let mut rows = Vec::new();
    let mut entries: Vec<Value> = Vec::new();
    let mut idle_bytes = Vec::new();
    for busy in [false, true] {
        for processes in [4usize, 64] {
            let minute = quiet_minute();
            let specs = members("m", processes, |_| {
                let flags = Flags::new();
                if busy {
                    flags.with("jobs", BUSY_JOBS)
                } else {
                    flags.with("jobs", 1).with("hourly-from-minute", minute)
                }
            });
            // Long enough for every member to have joined and every view to be current.
            let window = Window::new(6_000, secs);
            let m = measure(ctx, Kind::Fourit, &specs, window).await?;
            let [commands, scripts, bytes_in, bytes_out, heartbeats] = per_process(&m, processes);
            let runs = m.window_runs();
            let per_tick = m.per_tick();
            let doubles = per_tick.values().filter(|runs| runs.len() > 1).count();
            let expected = if busy { BUSY_JOBS * secs as usize } else { 0 };
            let missed = expected.saturating_sub(per_tick.len());
            let shares = shares(&runs, processes);
            let (low, high) = shares
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), s| (lo.min(*s), hi.max(*s)));
            let delays = m.delays();
            let variant = format!(
                "{processes} processes, {}",
                if busy {
                    format!("{BUSY_JOBS} jobs/s")
                } else {
                    "idle".to_string()
                }
            );
            if !busy {
                idle_bytes.push((processes, bytes_out));
            }
            rows.push(vec![
                variant.clone(),
                number(commands),
                number(scripts),
                number(bytes_in),
                number(bytes_out),
                number(heartbeats),
                if busy {
                    format!("{low:.2}-{high:.2} (fair {:.2})", 100.0 / processes as f64)
                } else {
                    "-".to_string()
                },
                if busy { delays.text() } else { "-".to_string() },
                format!("{doubles}/{missed}"),
                m.noise_text(),
            ]);
            let mut entry = m.json();
            entry["variant"] = json!(variant);
            entry["per_process_per_s"] = json!({
                "redis_commands": round1(commands),
                "scripts": round1(scripts),
                "bytes_in": round1(bytes_in),
                "bytes_out": round1(bytes_out),
                "heartbeats": round1(heartbeats),
            });
            entry["shares_pct"] = json!(shares.iter().map(|s| round1(*s)).collect::<Vec<_>>());
            entry["start_delay"] = delays.json();
            entry["doubles"] = json!(doubles);
            entry["missed"] = json!(missed);
            entries.push(entry);
            if busy {
                ctx.report.target(
                    "fleet-size",
                    &format!("exactly once, {processes} processes"),
                    "0 double, 0 missed",
                    format!("{doubles} double, {missed} missed"),
                    Some(doubles == 0 && missed == 0),
                );
            }
        }
    }
    if let [(_, small), (_, large)] = idle_bytes[..] {
        ctx.report.target(
            "fleet-size",
            "idle bytes out per process, 64 vs 4 processes",
            "within 1.5x",
            format!("{} vs {} B/s", number(large), number(small)),
            Some(large <= small * 1.5),
        );
    }
    table(
        "fleet-size (per process per second)",
        &[
            "variant",
            "Redis commands",
            "scripts",
            "bytes in",
            "bytes out",
            "heartbeats",
            "shares min-max %",
            "start delay p50 / p99 / max ms",
            "double/missed",
            "other CPU",
        ],
        &rows,
    );
    ctx.report
        .scenarios
        .insert("fleet-size".to_string(), Value::Array(entries));
    Ok(())
}
