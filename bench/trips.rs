//! `round-trips`: what a run costs Redis. A fourit worker counts the calls its scheduler makes
//! to the coordinator (claim batches, each one pipelined round trip, the claims in them,
//! releases, keep-alives, heartbeats); node-cron's calls are its `SET NX` commands. Redis's
//! side comes from `INFO stats commandstats` before and after the window: commands (scripts
//! for fourit) and socket reads (`total_reads_processed`), the round trips as Redis sees them,
//! where calls a connection writes together share one read.

use serde_json::{Value, json};

use crate::common::{Ctx, Flags, Measured, Window, measure, members};
use crate::fleet::{Calls, Kind};
use crate::measure::round3;
use crate::report::table;

/// One variant: processes and jobs (every second).
const VARIANTS: [(usize, usize); 4] = [(1, 1), (4, 1), (1, 100), (4, 100)];

/// The calls of one window, heartbeats apart.
struct Breakdown {
    runs: usize,
    /// fourit: calls to the coordinator; node-cron: its SETs as claims.
    calls: Calls,
    /// Redis commands sent (scripts or SETs), heartbeats out.
    commands: u64,
    /// Redis socket reads, heartbeats out.
    reads: u64,
}

impl Breakdown {
    fn of(m: &Measured, kind: Kind) -> Breakdown {
        let info = &m.info;
        let runs = m.window_runs().len();
        match kind {
            Kind::Fourit => {
                let calls = m.calls.unwrap_or_default();
                Breakdown {
                    runs,
                    calls,
                    // Scripts, and the notices the claim scripts publish.
                    commands: (info.get("evalsha") + info.get("publish"))
                        .saturating_sub(calls.heartbeats),
                    reads: info.reads.saturating_sub(calls.heartbeats),
                }
            }
            Kind::Peer => {
                let sets = info.get("set");
                let others: u64 = info
                    .calls
                    .iter()
                    .filter(|(name, _)| name.as_str() != "set")
                    .map(|(_, n)| n)
                    .sum();
                Breakdown {
                    runs,
                    calls: Calls {
                        batches: sets,
                        claims: sets,
                        other: others,
                        ..Calls::default()
                    },
                    commands: sets + others,
                    reads: info.reads,
                }
            }
        }
    }

    fn per_run(&self, x: u64) -> f64 {
        x as f64 / self.runs.max(1) as f64
    }

    /// Round trips per run as the client makes them (a pipelined batch is one), heartbeats
    /// apart.
    fn trips_per_run(&self) -> f64 {
        self.per_run(self.calls.round_trips())
    }

    fn json(&self, m: &Measured, ticks: i64) -> Value {
        json!({
            "runs": self.runs,
            "ticks": ticks,
            "claim_batches": self.calls.batches,
            "claims": self.calls.claims,
            "releases": self.calls.releases,
            "release_batches": self.calls.release_batches,
            "keep_alives": self.calls.keep_alives,
            "heartbeats": self.calls.heartbeats,
            "other_calls": self.calls.other,
            "redis_commands": self.commands,
            "socket_reads": self.reads,
            "round_trips_per_run": round3(self.trips_per_run()),
            "redis_commands_per_run": round3(self.per_run(self.commands)),
            "socket_reads_per_run": round3(self.per_run(self.reads)),
            "detail": m.json(),
        })
    }
}

/// Runs every variant for fourit and the peer.
pub async fn round_trips(ctx: &mut Ctx) -> Result<(), String> {
    let secs = ctx.secs(30, 10);
    println!(
        "\n== round-trips: short runs (empty body), {secs} s per variant; heartbeats counted apart \
         (round trips: calls as the client makes them, a pipelined batch is one; socket reads: \
         as Redis sees them)"
    );
    let mut rows = Vec::new();
    let mut entries = Vec::new();
    for (processes, jobs) in VARIANTS {
        let mut measured = Vec::new();
        for kind in [Kind::Fourit, Kind::Peer] {
            if kind == Kind::Peer && !ctx.has_peer() {
                continue;
            }
            let prefix = if kind == Kind::Fourit { "w" } else { "p" };
            let specs = members(prefix, processes, |_| {
                Flags::new()
                    .with("jobs", jobs)
                    .with("schedule", "* * * * * *")
            });
            let m = measure(ctx, kind, &specs, Window::new(3_000, secs)).await?;
            let b = Breakdown::of(&m, kind);
            let ticks = jobs as i64 * secs;
            rows.push(vec![
                format!("{processes} x {jobs}"),
                kind.label().to_string(),
                format!("{}/{ticks}", b.runs),
                if kind == Kind::Fourit {
                    format!(
                        "{} claims in {} batches, {} releases in {} batches, {} keep-alives, {} heartbeats",
                        b.calls.claims,
                        b.calls.batches,
                        b.calls.releases,
                        b.calls.release_batches,
                        b.calls.keep_alives,
                        b.calls.heartbeats
                    )
                } else {
                    format!("{} SET NX, {} other", b.calls.claims, b.calls.other)
                },
                format!("{:.2}", b.trips_per_run()),
                format!("{:.2}", b.per_run(b.commands)),
                format!("{:.2}", b.per_run(b.reads)),
                m.noise_text(),
            ]);
            entries.push(json!({
                "processes": processes,
                "jobs": jobs,
                "scheduler": kind.label(),
                "figures": b.json(&m, ticks),
            }));
            measured.push((kind, b));
        }
        let fourit = measured.iter().find(|(k, _)| *k == Kind::Fourit);
        if let Some((_, b)) = fourit {
            let trips = b.trips_per_run();
            ctx.report.target(
                "round-trips",
                &format!("round trips per run, {processes} process(es) x {jobs} job(s)"),
                "<= 2",
                format!("{trips:.2}"),
                Some(trips <= 2.0),
            );
        }
        if let (Some((_, f)), Some((_, p))) =
            (fourit, measured.iter().find(|(k, _)| *k == Kind::Peer))
        {
            ctx.report.ratio(
                &format!("round trips per run, {processes} x {jobs}"),
                f.trips_per_run(),
                p.trips_per_run(),
            );
        }
    }
    table(
        "round trips (processes x jobs every second)",
        &[
            "fleet",
            "",
            "runs/ticks",
            "calls in the window",
            "round trips/run",
            "Redis commands/run",
            "socket reads/run",
            "other CPU",
        ],
        &rows,
    );
    ctx.report
        .scenarios
        .insert("round-trips".to_string(), Value::Array(entries));
    Ok(())
}
