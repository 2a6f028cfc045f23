//! fourit's fleet benchmark: start delay, burst claims, round trips per run, idle cost,
//! spread over the fleet and scale, side by side with node-cron 4.6 and raw Redis, measured in
//! one run on this machine.
//!
//! ```text
//! cargo run --release -p fourit-bench                         # every scenario (~25 min)
//! cargo run --release -p fourit-bench -- --quick              # short windows (~8 min)
//! cargo run --release -p fourit-bench -- start-delay burst    # some scenarios
//! cargo run --release -p fourit-bench -- --help
//! ```
//!
//! It starts its own `redis-server` on a free loopback port (no persistence), starts the
//! fleets as copies of itself (`--worker`, see `worker.rs`) or as node-cron processes
//! (`peer/peer.mjs`, installed with npm on first use; skipped with a message if that fails),
//! prints a table per scenario, then the targets and the fourit/node-cron ratios, and writes
//! everything to `target/bench/results.json`. Job bodies report the host's clock, read first
//! thing, on stdout; the benchmark's own Redis calls are taken out of the counts.
//!
//! Timings depend on what else the machine does: each window reports "other CPU", the share
//! of the machine used by processes that are not the benchmark's. Re-run on a quiet machine
//! when it is more than a few percent.

mod backends;
mod burst;
mod cluster;
mod common;
mod costs;
mod delay;
mod fleet;
mod fleet_size;
mod measure;
mod redis_server;
mod report;
mod spread;
mod trips;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use crate::common::Ctx;
use crate::fleet::{Programs, prepare_peer};
use crate::redis_server::RedisServer;
use crate::report::Report;

/// Every scenario, in the order they run.
const SCENARIOS: [(&str, &str); 10] = [
    (
        "start-delay",
        "1 process, 100 jobs every second: body start minus tick (and node-cron)",
    ),
    (
        "costs",
        "Redis time per call: claim won/refused, release, keep-alive, heartbeat, SET NX PX",
    ),
    (
        "burst",
        "10,000 jobs due at one second in 4 processes: claim time, claims/s vs redis-benchmark",
    ),
    (
        "round-trips",
        "Redis calls and round trips per short run (and node-cron)",
    ),
    (
        "idle",
        "10,000 hourly jobs, none due: CPU, RSS, Redis calls (and node-cron)",
    ),
    (
        "spread",
        "4 processes: shares with equal and skewed clocks, handoff vs racing, failover",
    ),
    (
        "fleet-size",
        "4 and 64 processes, idle and 32 jobs/s: Redis commands and bytes per process, shares",
    ),
    (
        "cluster",
        "the same fleets on one Redis and on a 3-primary Redis Cluster: start delay, round trips",
    ),
    (
        "scale",
        "start delay and idle cost at 1, 100, 1,000, 10,000 jobs",
    ),
    (
        "backends",
        "the same fleets on Redis, PostgreSQL and SQLite: start delay, round trips",
    ),
];

const USAGE: &str = "usage: bench [--quick] [--no-peer] [--out FILE] [SCENARIO ...]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        return match worker::main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("worker: {err}");
                ExitCode::FAILURE
            }
        };
    }
    // The parent only reads pipes and sleeps: one thread keeps it off the cores it measures.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(parent(args)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Options of a benchmark run.
struct Options {
    quick: bool,
    peer: bool,
    out: Option<PathBuf>,
    scenarios: Vec<&'static str>,
}

fn options(args: Vec<String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        quick: false,
        peer: true,
        out: None,
        scenarios: Vec::new(),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--no-peer" => options.peer = false,
            "--out" => options.out = Some(args.next().ok_or("--out needs a file")?.into()),
            "-h" | "--help" => {
                println!("{USAGE}\n\nscenarios (default: all):");
                for (name, what) in SCENARIOS {
                    println!("  {name:<12} {what}");
                }
                println!(
                    "\n--quick    short windows (10-15 s instead of 30-60 s): a smoke run\n\
                     --no-peer  skip node-cron\n--out FILE where the JSON goes \
                     (default target/bench/results.json)"
                );
                return Ok(None);
            }
            name => {
                let known = SCENARIOS
                    .iter()
                    .find(|(known, _)| *known == name)
                    .ok_or_else(|| format!("unknown scenario or flag `{name}`\n{USAGE}"))?;
                if !options.scenarios.contains(&known.0) {
                    options.scenarios.push(known.0);
                }
            }
        }
    }
    if options.scenarios.is_empty() {
        options.scenarios = SCENARIOS.iter().map(|(name, _)| *name).collect();
    }
    Ok(Some(options))
}

/// `target/bench/results.json` in the target folder this binary was built in.
fn default_out(exe: &std::path::Path) -> PathBuf {
    exe.ancestors()
        .find(|dir| dir.file_name().is_some_and(|name| name == "target"))
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("bench")
        .join("results.json")
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

async fn parent(args: Vec<String>) -> Result<ExitCode, String> {
    let Some(options) = options(args)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let exe = std::env::current_exe().map_err(|err| format!("finding this binary: {err}"))?;
    if cfg!(debug_assertions) {
        println!("note: a debug build; measure with `cargo run --release -p fourit-bench`");
    }
    let redis = RedisServer::start().await?;
    let conn = redis.connect().await?;
    let redis_version = redis.version().await;

    let peer_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peer");
    let mut report = Report::default();
    let peer = if options.peer {
        match prepare_peer(&peer_dir) {
            Ok(version) => Some(version),
            Err(reason) => {
                report.note(format!("node-cron skipped: {reason}"));
                None
            }
        }
    } else {
        None
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let header = json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "quick": options.quick,
        "scenarios": options.scenarios,
        "started_utc": chrono::Utc::now().to_rfc3339(),
        "git": command_output("git", &["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--dirty"]),
        // Identifies uncommitted changes to the library measured.
        "fourit_diff_sha1": command_output("sh", &["-c", &format!(
            "git -C {} diff HEAD -- ../fourit ../fourit-macros | sha1sum | cut -c1-12",
            env!("CARGO_MANIFEST_DIR")
        )]),
        "machine": {
            "cores": cores,
            "cpu": cpu_model(),
            "kernel": command_output("uname", &["-r"]),
            "load_average_at_start": std::fs::read_to_string("/proc/loadavg").ok().map(|l| l.trim().to_string()),
        },
        "redis": redis_version,
        "peer": peer,
        "metrics_feature": cfg!(feature = "metrics"),
    });
    println!(
        "fourit bench: {} scenario(s){}{}, {cores} cores ({}), Redis {redis_version} on 127.0.0.1:{}, peer: {}",
        options.scenarios.len(),
        if options.quick { ", quick" } else { "" },
        if cfg!(feature = "metrics") {
            ", metrics feature on (Prometheus recorder in every worker)"
        } else {
            ""
        },
        cpu_model(),
        redis.port(),
        peer.as_deref().unwrap_or("none"),
    );
    let mut ctx = Ctx {
        redis,
        conn,
        programs: Programs {
            exe: exe.clone(),
            peer_dir: peer.as_ref().map(|_| peer_dir),
        },
        quick: options.quick,
        report,
    };
    let mut failed = false;
    for scenario in &options.scenarios {
        let result = match *scenario {
            "start-delay" => delay::start_delay(&mut ctx).await,
            "costs" => costs::script_costs(&mut ctx).await,
            "burst" => burst::burst(&mut ctx).await,
            "round-trips" => trips::round_trips(&mut ctx).await,
            "idle" => delay::idle(&mut ctx).await,
            "spread" => spread::spread(&mut ctx).await,
            "scale" => delay::scale(&mut ctx).await,
            "fleet-size" => fleet_size::fleet_size(&mut ctx).await,
            "cluster" => cluster::cluster(&mut ctx).await,
            "backends" => backends::backends(&mut ctx).await,
            _ => Ok(()),
        };
        if let Err(err) = result {
            failed = true;
            ctx.report.note(format!("{scenario} failed: {err}"));
        }
    }
    ctx.report.print_summary();

    let mut header = header;
    header["load_average_at_end"] = json!(
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .map(|l| l.trim().to_string())
    );
    let out = options.out.unwrap_or_else(|| default_out(&exe));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|err| format!("creating {}: {err}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&ctx.report.json(header))
        .map_err(|err| format!("encoding the results: {err}"))?;
    std::fs::write(&out, text).map_err(|err| format!("writing {}: {err}", out.display()))?;
    println!("\nresults written to {}", out.display());
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
