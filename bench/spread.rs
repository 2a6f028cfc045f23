//! `spread`: four processes, 100 jobs every second: each process's share of the runs, with
//! equal clocks and with clocks −700/−200/+300/+800 ms off, with fourit's handoff and with
//! handoff 0 (every process races for every tick, the baseline); the start delay of the
//! preferred claimer and of the others; and the delay after a process is SIGKILLed
//! (failover), until the fleet's membership forgets it; and a sweep of shorter handoffs.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::common::{Ctx, Flags, Measured, Window, measure, members, shares};
use crate::fleet::{Kind, Run};
use crate::measure::{Summary, next_second, round1, round3};
use crate::report::table;

const PROCESSES: usize = 4;
const JOBS: usize = 100;
const SKEW_MS: [i64; PROCESSES] = [-700, -200, 300, 800];

/// One variant of the scenario.
struct Variant {
    name: &'static str,
    skew: bool,
    /// `None`: fourit's default handoff.
    handoff_ms: Option<u64>,
    failover: bool,
}

const VARIANTS: [Variant; 10] = [
    Variant {
        name: "equal clocks",
        skew: false,
        handoff_ms: None,
        failover: false,
    },
    Variant {
        name: "clocks -700/-200/+300/+800 ms",
        skew: true,
        handoff_ms: None,
        failover: false,
    },
    Variant {
        name: "equal clocks, handoff 0 (racing)",
        skew: false,
        handoff_ms: Some(0),
        failover: false,
    },
    Variant {
        name: "skewed clocks, handoff 0 (racing)",
        skew: true,
        handoff_ms: Some(0),
        failover: false,
    },
    // The handoff sweep: how short can the handoff be and still keep the shares even?
    Variant {
        name: "skewed clocks, handoff 15 ms",
        skew: true,
        handoff_ms: Some(15),
        failover: false,
    },
    Variant {
        name: "skewed clocks, handoff 10 ms",
        skew: true,
        handoff_ms: Some(10),
        failover: false,
    },
    Variant {
        name: "skewed clocks, handoff 5 ms",
        skew: true,
        handoff_ms: Some(5),
        failover: false,
    },
    Variant {
        name: "failover: w3 SIGKILLed",
        skew: false,
        handoff_ms: None,
        failover: true,
    },
    Variant {
        name: "failover, handoff 10 ms",
        skew: false,
        handoff_ms: Some(10),
        failover: true,
    },
    Variant {
        name: "failover, handoff 0 (racing)",
        skew: false,
        handoff_ms: Some(0),
        failover: true,
    },
];

/// The preferred member of every (job, tick) in the window, by fourit's own placement over
/// all four members (as every process sees them once the heartbeats have gone round).
fn preferred_member(m: &Measured, job: u32, tick_ms: i64, cache: &mut PlacementCache) -> usize {
    if cache.tick != tick_ms {
        let names: Vec<String> = (0..JOBS).map(|i| format!("job-{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut sorted: Vec<Arc<str>> = m.nodes.iter().map(|n| Arc::from(n.as_str())).collect();
        sorted.sort();
        let placed = fourit::placement::preferred(&names, tick_ms, &sorted);
        cache.tick = tick_ms;
        cache.members = placed
            .into_iter()
            .map(|p| {
                p.and_then(|node| m.nodes.iter().position(|n| n.as_str() == &*node))
                    .unwrap_or(usize::MAX)
            })
            .collect();
    }
    cache
        .members
        .get(job as usize)
        .copied()
        .unwrap_or(usize::MAX)
}

struct PlacementCache {
    tick: i64,
    members: Vec<usize>,
}

/// Runs every variant.
pub async fn spread(ctx: &mut Ctx) -> Result<(), String> {
    let secs = ctx.secs(30, 10);
    let failover_secs = ctx.secs(30, 16);
    // Half-way between two ticks, so no run is in flight when the process dies.
    let kill_after_ms = ctx.secs(10, 5) * 1000 + 500;
    println!(
        "\n== spread: {PROCESSES} processes, {JOBS} jobs every second, {secs} s per variant \
         (failover: {failover_secs} s, w3 killed after {} s)",
        kill_after_ms as f64 / 1000.0
    );
    let mut rows = Vec::new();
    let mut failover_rows = Vec::new();
    let mut entries = Vec::new();
    for variant in VARIANTS {
        let specs = members("w", PROCESSES, |i| {
            let mut flags = Flags::new()
                .with("jobs", JOBS)
                .with("schedule", "* * * * * *");
            if variant.skew {
                flags = flags.with("clock-offset-ms", SKEW_MS[i]);
            }
            if let Some(handoff) = variant.handoff_ms {
                flags = flags.with("handoff-ms", handoff);
            }
            flags
        });
        let mut window = Window::new(
            4_000,
            if variant.failover {
                failover_secs
            } else {
                secs
            },
        );
        if variant.failover {
            window.kill = Some((PROCESSES - 1, kill_after_ms));
        }
        let m = measure(ctx, Kind::Fourit, &specs, window).await?;
        let runs = m.window_runs();
        let per_tick = m.per_tick();
        let expected = JOBS * m.secs() as usize;
        let doubles = per_tick
            .values()
            .filter(|members| members.len() > 1)
            .count();
        let missed = expected.saturating_sub(per_tick.len());

        // Start delays of the preferred claimer's runs and of the others'.
        let mut cache = PlacementCache {
            tick: i64::MIN,
            members: Vec::new(),
        };
        let mut preferred = Vec::new();
        let mut others = Vec::new();
        let mut sorted_runs: Vec<Run> = runs.clone();
        sorted_runs.sort_by_key(|run| run.tick_ms);
        for run in &sorted_runs {
            if preferred_member(&m, run.job, run.tick_ms, &mut cache) == run.member {
                preferred.push(run.delay_us());
            } else {
                others.push(run.delay_us());
            }
        }
        let preferred = Summary::of(preferred);
        let others = Summary::of(others);
        let all = m.delays();

        let mut entry = json!({
            "variant": variant.name,
            "clock_offsets_ms": if variant.skew { SKEW_MS.to_vec() } else { vec![0; PROCESSES] },
            "handoff_ms": variant.handoff_ms.map_or(Value::from("default"), Value::from),
            "runs": runs.len(),
            "expected_runs": expected,
            "double_runs": doubles,
            "missed_ticks": missed,
            "start_delay": all.json(),
            "start_delay_preferred": preferred.json(),
            "start_delay_not_preferred": others.json(),
            "detail": m.json(),
        });

        if variant.failover {
            let killed = PROCESSES - 1;
            let kill_ms = m.kill_ms.unwrap_or(m.t0_ms);
            // Ticks after the kill that the dead process would have been preferred for.
            let mut orphaned = Vec::new();
            let mut last_delayed_tick = None;
            let before: Vec<Run> = sorted_runs
                .iter()
                .copied()
                .filter(|run| run.tick_ms < kill_ms)
                .collect();
            // A run that waited out most of the handoff was handed over, not placed afresh.
            let handoff_us = variant.handoff_ms.map_or(
                fourit::scheduler::DEFAULT_HANDOFF.as_micros() as i64,
                |ms| ms as i64 * 1000,
            );
            let waited_us = (handoff_us * 4 / 5).max(1);
            for run in sorted_runs.iter().filter(|run| run.tick_ms >= kill_ms) {
                if preferred_member(&m, run.job, run.tick_ms, &mut cache) == killed {
                    orphaned.push(run.delay_us());
                    if handoff_us > 0 && run.delay_us() >= waited_us {
                        last_delayed_tick = Some(run.tick_ms);
                    }
                }
            }
            let after_ticks = ((m.t1_ms - next_second(kill_ms)) / 1000).max(0) as usize;
            let after_expected = JOBS * after_ticks;
            let after_seen = per_tick
                .keys()
                .filter(|(_, tick)| *tick >= next_second(kill_ms))
                .count();
            // Until every process's view has dropped the dead one, its ticks wait for the
            // handoff; after that they are placed on the living at once.
            let waited = Summary::of(
                sorted_runs
                    .iter()
                    .filter(|run| {
                        run.tick_ms >= kill_ms
                            && last_delayed_tick.is_some_and(|last| run.tick_ms <= last)
                            && preferred_member(&m, run.job, run.tick_ms, &mut cache) == killed
                    })
                    .map(Run::delay_us)
                    .collect(),
            );
            let orphaned = Summary::of(orphaned);
            let recovery = last_delayed_tick.map(|tick| (tick - kill_ms) as f64 / 1000.0);
            let before_shares = shares(&before, PROCESSES);
            failover_rows.push(vec![
                variant.name.to_string(),
                orphaned.n.to_string(),
                orphaned.text(),
                format!("{} ({})", waited.text(), waited.n),
                recovery.map_or("-".to_string(), |s| format!("{s:.1} s")),
                format!("{}", after_expected.saturating_sub(after_seen)),
                doubles.to_string(),
                m.noise_text(),
            ]);
            entry["failover"] = json!({
                "killed": m.nodes[killed],
                "kill_after_window_start_ms": kill_ms - m.t0_ms,
                "orphaned_ticks": orphaned.n,
                "orphaned_start_delay": orphaned.json(),
                "orphaned_start_delay_until_membership_converged": waited.json(),
                "last_delayed_orphan_after_kill_s": recovery,
                "missed_ticks_after_kill": after_expected.saturating_sub(after_seen),
                "shares_before_kill_pct": before_shares.iter().map(|s| round1(*s)).collect::<Vec<_>>(),
            });
        } else {
            let shares = shares(&runs, PROCESSES);
            let worst = shares.iter().map(|s| (s - 25.0).abs()).fold(0.0, f64::max);
            rows.push(vec![
                variant.name.to_string(),
                shares
                    .iter()
                    .map(|s| format!("{s:.1}"))
                    .collect::<Vec<_>>()
                    .join(" / "),
                format!("{}/{expected}", runs.len()),
                format!("{doubles}/{missed}"),
                preferred.text(),
                format!("{} ({})", others.text(), others.n),
                m.noise_text(),
            ]);
            entry["shares_pct"] = json!(shares.iter().map(|s| round1(*s)).collect::<Vec<_>>());
            entry["worst_share_deviation_pct"] = json!(round3(worst));
            let baseline = variant.handoff_ms == Some(0);
            ctx.report.target(
                "spread",
                &format!("shares, {}", variant.name),
                if baseline {
                    "(baseline)"
                } else {
                    "each 25% +- 5%"
                },
                shares
                    .iter()
                    .map(|s| format!("{s:.1}"))
                    .collect::<Vec<_>>()
                    .join(" / "),
                if baseline { None } else { Some(worst <= 5.0) },
            );
            if !baseline {
                ctx.report.target(
                    "spread",
                    &format!("exactly once, {}", variant.name),
                    "0 double, 0 missed",
                    format!("{doubles} double, {missed} missed"),
                    Some(doubles == 0 && missed == 0),
                );
            }
        }
        entries.push(entry);
    }
    table(
        "spread (shares of w0 / w1 / w2 / w3, %)",
        &[
            "variant",
            "shares %",
            "runs",
            "double/missed",
            "preferred claimer p50 / p99 / max ms",
            "others p50 / p99 / max ms (runs)",
            "other CPU",
        ],
        &rows,
    );
    table(
        "failover (ticks after the kill that w3 was preferred for)",
        &[
            "variant",
            "ticks",
            "delay p50 / p99 / max ms",
            "until views dropped w3: p50 / p99 / max (ticks)",
            "last handed over after kill",
            "missed after kill",
            "double",
            "other CPU",
        ],
        &failover_rows,
    );
    ctx.report
        .scenarios
        .insert("spread".to_string(), Value::Array(entries));
    Ok(())
}
