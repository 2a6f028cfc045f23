//! A fleet of benchmark processes on this machine: fourit workers (this binary in `--worker`
//! mode) or node-cron peers (`node peer.mjs`), whose run lines are collected as they come.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::measure::{Memory, cpu_seconds};

/// Which scheduler a member runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// fourit: this binary with `--worker`.
    Fourit,
    /// node-cron 4.6: `node peer.mjs`.
    Peer,
}

impl Kind {
    /// `fourit` or `node-cron`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Fourit => "fourit",
            Kind::Peer => "node-cron",
        }
    }
}

/// One member to start: its node name and its flags (besides `--url` and `--node`).
#[derive(Clone, Debug)]
pub struct Spec {
    /// The node id (`w0`, `p1`...).
    pub node: String,
    /// Flags for the worker or peer script.
    pub args: Vec<String>,
}

/// One run a member reported: job index, tick (ms), body start (µs, host clock), member.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// The job's index (`job-I`).
    pub job: u32,
    /// The tick, UTC ms.
    pub tick_ms: i64,
    /// When the body started, UTC µs by the host's clock.
    pub start_us: i64,
    /// Which member ran it (index into the fleet).
    pub member: usize,
}

impl Run {
    /// Start minus tick, µs.
    pub fn delay_us(&self) -> i64 {
        self.start_us - self.tick_ms * 1000
    }
}

/// Calls a fourit member made to its coordinator (cumulative, or a difference of two
/// snapshots): claim batches (each one round trip), the claims in them, releases,
/// keep-alives, heartbeats, and anything else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    /// Claim calls: one pipelined round trip each.
    pub batches: u64,
    /// Ticks claimed in them.
    pub claims: u64,
    /// Runs released.
    pub releases: u64,
    /// Release calls: one pipelined round trip each (runs ending together share one).
    pub release_batches: u64,
    /// Lease renewals, one round trip each.
    pub keep_alives: u64,
    /// Heartbeats, one round trip each.
    pub heartbeats: u64,
    /// Anything else (clock samples, leaving, history).
    pub other: u64,
}

impl Calls {
    /// `self - earlier`.
    pub fn since(self, earlier: Calls) -> Calls {
        Calls {
            batches: self.batches.saturating_sub(earlier.batches),
            claims: self.claims.saturating_sub(earlier.claims),
            releases: self.releases.saturating_sub(earlier.releases),
            release_batches: self.release_batches.saturating_sub(earlier.release_batches),
            keep_alives: self.keep_alives.saturating_sub(earlier.keep_alives),
            heartbeats: self.heartbeats.saturating_sub(earlier.heartbeats),
            other: self.other.saturating_sub(earlier.other),
        }
    }

    /// The sum of both.
    pub fn plus(self, other: Calls) -> Calls {
        Calls {
            batches: self.batches + other.batches,
            claims: self.claims + other.claims,
            releases: self.releases + other.releases,
            release_batches: self.release_batches + other.release_batches,
            keep_alives: self.keep_alives + other.keep_alives,
            heartbeats: self.heartbeats + other.heartbeats,
            other: self.other + other.other,
        }
    }

    /// Round trips besides heartbeats: claim batches, release batches, keep-alives, other.
    pub fn round_trips(self) -> u64 {
        self.batches + self.release_batches + self.keep_alives + self.other
    }
}

/// Each member's `calls` snapshots: (UTC ms, cumulative calls).
pub type CallHistory = Vec<Vec<(i64, Calls)>>;

/// The calls between the snapshots nearest `from_ms` and `to_ms`, summed over members
/// (`None` if a member printed none, as node-cron members do).
pub fn calls_between(history: &CallHistory, from_ms: i64, to_ms: i64) -> Option<Calls> {
    let nearest = |snapshots: &[(i64, Calls)], at: i64| {
        snapshots
            .iter()
            .min_by_key(|(t, _)| (t - at).abs())
            .map(|(_, calls)| *calls)
    };
    let mut total = Calls::default();
    for snapshots in history {
        let from = nearest(snapshots, from_ms)?;
        let to = nearest(snapshots, to_ms)?;
        total = total.plus(to.since(from));
    }
    Some(total)
}

#[derive(Default)]
struct Collected {
    runs: Vec<Run>,
    calls: CallHistory,
    ready: Vec<Option<Instant>>,
    stderr_lines: Vec<usize>,
}

/// Where the programs are.
#[derive(Clone, Debug)]
pub struct Programs {
    /// This benchmark binary (workers are copies of it).
    pub exe: PathBuf,
    /// The peer's folder (holding `peer.mjs` and `node_modules`), if the peer is usable.
    pub peer_dir: Option<PathBuf>,
}

/// Running members and what they reported.
pub struct Fleet {
    kind: Kind,
    children: Vec<Option<Child>>,
    pids: Vec<u32>,
    nodes: Vec<String>,
    collected: Arc<Mutex<Collected>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// Most stderr lines echoed per member; the rest are counted.
const STDERR_ECHO: usize = 5;

impl Fleet {
    /// Starts one process per spec against `url`.
    pub fn spawn(
        kind: Kind,
        programs: &Programs,
        url: &str,
        specs: &[Spec],
    ) -> Result<Fleet, String> {
        let collected = Arc::new(Mutex::new(Collected {
            runs: Vec::new(),
            calls: vec![Vec::new(); specs.len()],
            ready: vec![None; specs.len()],
            stderr_lines: vec![0; specs.len()],
        }));
        let mut fleet = Fleet {
            kind,
            children: Vec::new(),
            pids: Vec::new(),
            nodes: specs.iter().map(|spec| spec.node.clone()).collect(),
            collected,
            readers: Vec::new(),
        };
        for (member, spec) in specs.iter().enumerate() {
            let mut command = match kind {
                Kind::Fourit => {
                    let mut command = Command::new(&programs.exe);
                    command.arg("--worker");
                    command
                }
                Kind::Peer => {
                    let dir = programs
                        .peer_dir
                        .as_deref()
                        .ok_or("the peer is not installed")?;
                    let mut command = Command::new("node");
                    command.arg(dir.join("peer.mjs")).current_dir(dir);
                    command
                }
            };
            command
                .args(["--url", url, "--node", &spec.node])
                .args(&spec.args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            let mut child = command
                .spawn()
                .map_err(|err| format!("starting a {} process: {err}", kind.label()))?;
            fleet.pids.push(child.id().unwrap_or(0));
            if let Some(stdout) = child.stdout.take() {
                let collected = fleet.collected.clone();
                fleet.readers.push(tokio::spawn(async move {
                    let mut lines = BufReader::new(stdout).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        record(&collected, member, &line);
                    }
                }));
            }
            if let Some(stderr) = child.stderr.take() {
                let collected = fleet.collected.clone();
                let node = spec.node.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let seen = {
                            let mut collected = lock(&collected);
                            collected.stderr_lines[member] += 1;
                            collected.stderr_lines[member]
                        };
                        if seen <= STDERR_ECHO {
                            eprintln!("    [{node}] {line}");
                        } else if seen == STDERR_ECHO + 1 {
                            eprintln!("    [{node}] (further lines counted, not shown)");
                        }
                    }
                });
            }
            fleet.children.push(Some(child));
        }
        Ok(fleet)
    }

    /// Waits until every member has printed `ready`; the seconds that took.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<f64, String> {
        let started = Instant::now();
        loop {
            let ready = lock(&self.collected).ready.iter().all(Option::is_some);
            if ready {
                return Ok(started.elapsed().as_secs_f64());
            }
            for (member, child) in self.children.iter_mut().enumerate() {
                if let Some(child) = child
                    && let Ok(Some(status)) = child.try_wait()
                {
                    return Err(format!(
                        "{} member {} exited before it was ready ({status})",
                        self.kind.label(),
                        self.nodes[member]
                    ));
                }
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "{} members not ready after {timeout:?}",
                    self.kind.label()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The members' process ids (0 for one that could not be read).
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// The members' node ids.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Each live member's CPU seconds so far (`None` once it has exited).
    pub fn cpu(&self) -> Vec<Option<f64>> {
        self.pids.iter().map(|pid| cpu_seconds(*pid)).collect()
    }

    /// Each live member's memory.
    pub fn memory(&self) -> Vec<Option<Memory>> {
        self.pids.iter().map(|pid| Memory::of(*pid)).collect()
    }

    /// Lines each member printed on stderr.
    pub fn stderr_lines(&self) -> Vec<usize> {
        lock(&self.collected).stderr_lines.clone()
    }

    /// SIGKILLs one member, as a crash would.
    pub async fn kill(&mut self, member: usize) {
        if let Some(mut child) = self.children[member].take() {
            let _ = child.kill().await;
        }
    }

    /// Stops every member gracefully (SIGTERM, then SIGKILL after 15 s) and returns every run
    /// reported, and each member's call counts over time.
    pub async fn stop(mut self) -> (Vec<Run>, CallHistory) {
        for child in self.children.iter().flatten() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status()
                    .await;
            }
        }
        for child in self.children.iter_mut().flatten() {
            if tokio::time::timeout(Duration::from_secs(15), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        let mut collected = lock(&self.collected);
        (
            std::mem::take(&mut collected.runs),
            std::mem::take(&mut collected.calls),
        )
    }
}

fn lock(collected: &Mutex<Collected>) -> std::sync::MutexGuard<'_, Collected> {
    collected
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn record(collected: &Mutex<Collected>, member: usize, line: &str) {
    let mut words = line.split_whitespace();
    match words.next() {
        Some("ready") => {
            lock(collected).ready[member].get_or_insert_with(Instant::now);
        }
        Some("run") => {
            let job = words
                .next()
                .and_then(|job| job.strip_prefix("job-"))
                .and_then(|index| index.parse().ok());
            let tick_ms = words.next().and_then(|v| v.parse().ok());
            let start_us = words.next().and_then(|v| v.parse().ok());
            if let (Some(job), Some(tick_ms), Some(start_us)) = (job, tick_ms, start_us) {
                lock(collected).runs.push(Run {
                    job,
                    tick_ms,
                    start_us,
                    member,
                });
            }
        }
        Some("calls") => {
            let numbers: Vec<u64> = words.filter_map(|w| w.parse().ok()).collect();
            if let [
                t_ms,
                batches,
                claims,
                releases,
                release_batches,
                keep_alives,
                heartbeats,
                other,
            ] = numbers[..]
            {
                let calls = Calls {
                    batches,
                    claims,
                    releases,
                    release_batches,
                    keep_alives,
                    heartbeats,
                    other,
                };
                lock(collected).calls[member].push((i64::try_from(t_ms).unwrap_or(0), calls));
            }
        }
        _ => {}
    }
}

/// Makes the peer usable: checks Node.js (20 or newer) and installs the peer's packages with
/// npm if they are missing. `Err` says why the peer is skipped.
pub fn prepare_peer(dir: &Path) -> Result<String, String> {
    let version = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map_err(|err| format!("Node.js is not available (`node --version`: {err})"))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        return Err(format!(
            "node-cron 4.6 needs Node.js 20 or newer; found `{version}`"
        ));
    }
    if !dir.join("node_modules/node-cron/package.json").exists()
        || !dir.join("node_modules/redis/package.json").exists()
    {
        let subcommand = if dir.join("package-lock.json").exists() {
            "ci"
        } else {
            "install"
        };
        println!(
            "installing the peer (node-cron) with `npm {subcommand}` in {}",
            dir.display()
        );
        let output = std::process::Command::new("npm")
            .args([subcommand, "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir)
            .output()
            .map_err(|err| format!("npm is not available: {err}"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last: Vec<&str> = stderr.lines().rev().take(3).collect();
            return Err(format!(
                "`npm {subcommand}` failed (no network to the npm registry?): {}",
                last.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
    }
    let package = std::fs::read_to_string(dir.join("node_modules/node-cron/package.json"))
        .map_err(|err| format!("reading node-cron's package.json: {err}"))?;
    let cron_version = package
        .lines()
        .find_map(|line| line.trim().strip_prefix("\"version\": \""))
        .map(|rest| rest.trim_end_matches(['"', ',']).to_string())
        .unwrap_or_else(|| "?".to_string());
    Ok(format!("node-cron {cron_version} on Node.js {version}"))
}
