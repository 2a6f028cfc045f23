//! What every scenario shares: the benchmark's context, and one measured window of a fleet.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};

use crate::fleet::{Calls, Fleet, Kind, Programs, Run, Spec, calls_between};
use crate::measure::{Memory, Noise, NoiseProbe, Summary, next_second, now_ms, sleep_until_ms};
use crate::redis_server::{Info, RedisServer, flush};
use crate::report::Report;

/// The benchmark's state: its Redis, the programs, the options and the report so far.
pub struct Ctx {
    /// The Redis every fleet coordinates through.
    pub redis: RedisServer,
    /// The benchmark's own connection (FLUSHALL, INFO).
    pub conn: MultiplexedConnection,
    /// Where the worker and peer programs are.
    pub programs: Programs,
    /// `--quick`: short windows for a smoke run.
    pub quick: bool,
    /// What has been measured.
    pub report: Report,
}

impl Ctx {
    /// The window length: `full` seconds, or `quick` with `--quick`.
    pub fn secs(&self, full: i64, quick: i64) -> i64 {
        if self.quick { quick } else { full }
    }

    /// Whether the node-cron peer can run.
    pub fn has_peer(&self) -> bool {
        self.programs.peer_dir.is_some()
    }
}

/// How to measure a fleet: start it, wait `warmup_ms` after every member is ready, then
/// measure `secs` whole seconds of ticks.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Time after every member is ready before the window opens (start-up, membership).
    pub warmup_ms: i64,
    /// Whole seconds of ticks measured.
    pub secs: i64,
    /// SIGKILL this member this long after the window opens.
    pub kill: Option<(usize, i64)>,
}

impl Window {
    /// A window of `secs` seconds after a warm-up of `warmup_ms`.
    pub fn new(warmup_ms: i64, secs: i64) -> Window {
        Window {
            warmup_ms,
            secs,
            kill: None,
        }
    }
}

/// What one window measured.
pub struct Measured {
    /// The members' node ids.
    pub nodes: Vec<String>,
    /// Every run reported, inside the window or not.
    pub runs: Vec<Run>,
    /// The first tick of the window (UTC ms, a whole second).
    pub t0_ms: i64,
    /// The end of the window: ticks in `t0_ms..t1_ms` count.
    pub t1_ms: i64,
    /// CPU seconds each member used during the window.
    pub cpu: Vec<f64>,
    /// CPU seconds each member used from its start to the window's.
    pub startup_cpu: Vec<f64>,
    /// Each member's memory at the end of the window.
    pub memory: Vec<Memory>,
    /// Redis's counters over the window (the benchmark's own INFO calls taken out).
    pub info: Info,
    /// The calls fourit members made to their coordinator during the window, all members
    /// together (`None` for node-cron).
    pub calls: Option<Calls>,
    /// How busy the machine was, and with what else.
    pub noise: Option<Noise>,
    /// Seconds from start until every member printed `ready`.
    pub ready_secs: f64,
    /// When the member was killed (UTC ms), if one was.
    pub kill_ms: Option<i64>,
    /// Lines each member printed on stderr (warnings).
    pub stderr_lines: Vec<usize>,
}

impl Measured {
    /// The runs of ticks inside the window.
    pub fn window_runs(&self) -> Vec<Run> {
        self.runs
            .iter()
            .copied()
            .filter(|run| run.tick_ms >= self.t0_ms && run.tick_ms < self.t1_ms)
            .collect()
    }

    /// Start delays of the window's runs.
    pub fn delays(&self) -> Summary {
        Summary::of(self.window_runs().iter().map(Run::delay_us).collect())
    }

    /// The window's length in seconds.
    pub fn secs(&self) -> f64 {
        (self.t1_ms - self.t0_ms) as f64 / 1000.0
    }

    /// CPU seconds per minute of the window, all members together.
    pub fn cpu_per_minute(&self) -> f64 {
        self.cpu.iter().sum::<f64>() * 60.0 / self.secs()
    }

    /// The largest member RSS at the end of the window, MiB.
    pub fn rss_mib(&self) -> f64 {
        self.memory.iter().map(|m| m.rss_mib()).fold(0.0, f64::max)
    }

    /// Runs per (job, tick) in the window, to find double runs and missed ticks.
    pub fn per_tick(&self) -> HashMap<(u32, i64), Vec<usize>> {
        let mut map: HashMap<(u32, i64), Vec<usize>> = HashMap::new();
        for run in self.window_runs() {
            map.entry((run.job, run.tick_ms))
                .or_default()
                .push(run.member);
        }
        map
    }

    /// The window's other-CPU percentage, as text for tables.
    pub fn noise_text(&self) -> String {
        self.noise
            .map_or("?".to_string(), |n| format!("{:.0}%", n.other_pct))
    }

    /// The common figures, as JSON.
    pub fn json(&self) -> Value {
        json!({
            "members": self.nodes,
            "window_s": self.secs(),
            "ready_s": crate::measure::round2(self.ready_secs),
            "cpu_s": self.cpu.iter().map(|c| crate::measure::round3(*c)).collect::<Vec<_>>(),
            "startup_cpu_s": self.startup_cpu.iter().map(|c| crate::measure::round3(*c)).collect::<Vec<_>>(),
            "memory": self.memory.iter().map(|m| m.json()).collect::<Vec<_>>(),
            "redis": {
                "calls": self.info.calls,
                "usec": self.info.usec,
                "socket_reads": self.info.reads,
                "net_input_bytes": self.info.net_in,
            },
            "coordinator_calls": self.calls.map(|c| json!({
                "claim_batches": c.batches,
                "claims": c.claims,
                "releases": c.releases,
                "release_batches": c.release_batches,
                "keep_alives": c.keep_alives,
                "heartbeats": c.heartbeats,
                "other": c.other,
            })),
            "noise": self.noise.map(Noise::json),
            "stderr_lines": self.stderr_lines,
        })
    }
}

/// Starts a fleet of `kind` with `specs`, measures one window, stops it.
pub async fn measure(
    ctx: &mut Ctx,
    kind: Kind,
    specs: &[Spec],
    window: Window,
) -> Result<Measured, String> {
    let url = ctx.redis.url();
    measure_at(ctx, &url, kind, specs, window).await
}

/// [`measure`], with the fleet coordinating through `url` (a Redis Cluster, say) instead of
/// the benchmark's Redis, whose counters (`info`) then show only the benchmark's own calls.
pub async fn measure_at(
    ctx: &mut Ctx,
    url: &str,
    kind: Kind,
    specs: &[Spec],
    window: Window,
) -> Result<Measured, String> {
    flush(&mut ctx.conn).await?;
    let mut fleet = Fleet::spawn(kind, &ctx.programs, url, specs)?;
    let ready_secs = match fleet.wait_ready(Duration::from_secs(120)).await {
        Ok(secs) => secs,
        Err(err) => {
            fleet.stop().await;
            return Err(err);
        }
    };
    let t0_ms = next_second(now_ms() + window.warmup_ms);
    let t1_ms = t0_ms + window.secs * 1000;
    let mut pids = fleet.pids().to_vec();
    pids.push(ctx.redis.pid());

    // Snapshots half a second before the window's first tick and before its end: the window
    // holds exactly `secs` ticks, and no run is in flight at either snapshot.
    sleep_until_ms(t0_ms - 500).await;
    let cpu0 = fleet.cpu();
    let info0 = Info::fetch(&mut ctx.conn).await?;
    let probe = NoiseProbe::start(&pids);

    let mut kill_ms = None;
    if let Some((member, after_ms)) = window.kill {
        sleep_until_ms(t0_ms + after_ms).await;
        fleet.kill(member).await;
        kill_ms = Some(now_ms());
    }

    sleep_until_ms(t1_ms - 500).await;
    let cpu1 = fleet.cpu();
    let memory = fleet.memory();
    let mut info = Info::fetch(&mut ctx.conn).await?.since(&info0);
    // The second INFO's own request.
    info.reads = info.reads.saturating_sub(1);
    info.calls.remove("info");
    let noise = probe.finish();

    // Let the last ticks' runs report, then stop.
    sleep_until_ms(t1_ms + 1_000).await;
    let stderr_lines = fleet.stderr_lines();
    let nodes = fleet.nodes().to_vec();
    let (runs, history) = fleet.stop().await;
    let calls = calls_between(&history, t0_ms - 500, t1_ms - 500);
    let cpu = cpu0
        .iter()
        .zip(&cpu1)
        .map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        })
        .collect();
    Ok(Measured {
        nodes,
        runs,
        t0_ms,
        t1_ms,
        cpu,
        startup_cpu: cpu0.iter().map(|c| c.unwrap_or(0.0)).collect(),
        memory: memory.iter().map(|m| m.unwrap_or_default()).collect(),
        info,
        calls,
        noise,
        ready_secs,
        kill_ms,
        stderr_lines,
    })
}

/// Flags for a fleet member.
pub struct Flags(Vec<String>);

impl Flags {
    /// No flags.
    pub fn new() -> Flags {
        Flags(Vec::new())
    }

    /// Adds `--name value`.
    pub fn with(mut self, name: &str, value: impl ToString) -> Flags {
        self.0.push(format!("--{name}"));
        self.0.push(value.to_string());
        self
    }

    /// A spec for member `node` with these flags.
    pub fn spec(&self, node: String) -> Spec {
        Spec {
            node,
            args: self.0.clone(),
        }
    }
}

/// `count` members named `prefix0`, `prefix1`..., each with the flags `flags(i)` gives.
pub fn members(prefix: &str, count: usize, flags: impl Fn(usize) -> Flags) -> Vec<Spec> {
    (0..count)
        .map(|i| flags(i).spec(format!("{prefix}{i}")))
        .collect()
}

/// Each member's share of `runs`, in %.
pub fn shares(runs: &[Run], members: usize) -> Vec<f64> {
    let mut counts = vec![0usize; members];
    for run in runs {
        if let Some(count) = counts.get_mut(run.member) {
            *count += 1;
        }
    }
    let total = runs.len().max(1) as f64;
    counts.iter().map(|c| 100.0 * *c as f64 / total).collect()
}

/// The minute of the hour five minutes from now (UTC): hourly jobs from there on are not
/// due for at least five minutes.
pub fn quiet_minute() -> u32 {
    let minute = (now_ms() / 60_000) % 60;
    u32::try_from((minute + 5) % 60).unwrap_or(0)
}

/// Command calls as compact text: `evalsha 30, zadd 15`.
pub fn calls_text(calls: &BTreeMap<String, u64>) -> String {
    if calls.is_empty() {
        return "none".to_string();
    }
    calls
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
