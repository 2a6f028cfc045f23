//! What the benchmark reads from the host: CPU time and memory of a process (`/proc`), the
//! machine's CPU use (to say how much other work disturbed a run), and percentiles.

use std::sync::OnceLock;

use serde_json::{Value, json};

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`, usually 100).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User plus system CPU seconds a process has used (`/proc/PID/stat` utime + stime; the
/// resolution is one clock tick, 10 ms).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// A process's resident memory, from `/proc/PID/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// VmRSS, KiB: resident now.
    pub rss_kib: u64,
    /// VmHWM, KiB: the peak resident size so far.
    pub peak_kib: u64,
}

impl Memory {
    /// Reads a live process's memory.
    pub fn of(pid: u32) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find(|line| line.starts_with(name))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:").unwrap_or(0),
        })
    }

    /// VmRSS in MiB.
    pub fn rss_mib(self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    /// As JSON.
    pub fn json(self) -> Value {
        json!({ "rss_mib": round2(self.rss_mib()), "peak_mib": round2(self.peak_kib as f64 / 1024.0) })
    }
}

/// Busy and total jiffies of the whole machine (`/proc/stat`, all CPUs).
fn host_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    let total: u64 = values.iter().take(8).sum();
    Some((total - idle, total))
}

/// How busy the machine was during a measurement, and how much of that was not ours.
#[derive(Clone, Copy, Debug)]
pub struct Noise {
    /// CPU used by everything, % of the whole machine (all cores).
    pub host_pct: f64,
    /// CPU used by processes other than the benchmark's own (Redis, workers, itself), % of
    /// the whole machine. Above a few % the timings of the run are disturbed.
    pub other_pct: f64,
}

impl Noise {
    /// As JSON.
    pub fn json(self) -> Value {
        json!({ "host_cpu_pct": round1(self.host_pct), "other_cpu_pct": round1(self.other_pct) })
    }
}

/// A started noise measurement: the machine's and our processes' CPU at its start.
pub struct NoiseProbe {
    host: Option<(u64, u64)>,
    ours: f64,
    pids: Vec<u32>,
}

impl NoiseProbe {
    /// Starts measuring, counting `pids` (and this process) as ours.
    pub fn start(pids: &[u32]) -> NoiseProbe {
        let mut pids = pids.to_vec();
        pids.push(std::process::id());
        let ours = pids.iter().filter_map(|pid| cpu_seconds(*pid)).sum();
        NoiseProbe {
            host: host_jiffies(),
            ours,
            pids,
        }
    }

    /// Ends the measurement.
    pub fn finish(&self) -> Option<Noise> {
        let (busy0, total0) = self.host?;
        let (busy1, total1) = host_jiffies()?;
        let total = total1.checked_sub(total0)? as f64;
        if total <= 0.0 {
            return None;
        }
        let busy = busy1.saturating_sub(busy0) as f64;
        let ours: f64 = self
            .pids
            .iter()
            .filter_map(|pid| cpu_seconds(*pid))
            .sum::<f64>()
            - self.ours;
        let ours_jiffies = ours * clock_ticks();
        Some(Noise {
            host_pct: 100.0 * busy / total,
            other_pct: (100.0 * (busy - ours_jiffies) / total).max(0.0),
        })
    }
}

/// Nearest-rank percentiles of a set of durations in µs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// How many values.
    pub n: usize,
    /// Median, µs.
    pub p50: i64,
    /// 99th percentile, µs.
    pub p99: i64,
    /// Largest, µs.
    pub max: i64,
    /// Smallest, µs.
    pub min: i64,
}

impl Summary {
    /// Summarises `values` (µs); all zero if empty.
    pub fn of(mut values: Vec<i64>) -> Summary {
        if values.is_empty() {
            return Summary::default();
        }
        values.sort_unstable();
        let rank = |p: f64| {
            let index = ((p / 100.0) * values.len() as f64).ceil() as usize;
            values[index.clamp(1, values.len()) - 1]
        };
        Summary {
            n: values.len(),
            p50: rank(50.0),
            p99: rank(99.0),
            max: values[values.len() - 1],
            min: values[0],
        }
    }

    /// p50 / p99 / max in ms, e.g. `0.84 / 2.10 / 7.31`.
    pub fn text(self) -> String {
        if self.n == 0 {
            return "-".to_string();
        }
        format!("{} / {} / {}", ms(self.p50), ms(self.p99), ms(self.max))
    }

    /// As JSON, in ms.
    pub fn json(self) -> Value {
        json!({
            "n": self.n,
            "p50_ms": round3(self.p50 as f64 / 1000.0),
            "p99_ms": round3(self.p99 as f64 / 1000.0),
            "max_ms": round3(self.max as f64 / 1000.0),
            "min_ms": round3(self.min as f64 / 1000.0),
        })
    }
}

/// µs as ms text with two decimals.
pub fn ms(us: i64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// Rounds to one decimal, for JSON.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Rounds to two decimals, for JSON.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Rounds to three decimals, for JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Milliseconds since the Unix epoch, by the host's wall clock.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// Sleeps until the wall clock reads `at_ms`.
pub async fn sleep_until_ms(at_ms: i64) {
    let wait = at_ms - now_ms();
    if wait > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(wait.unsigned_abs())).await;
    }
}

/// The first whole second (UTC ms) at or after `ms`.
pub fn next_second(ms: i64) -> i64 {
    (ms + 999).div_euclid(1000) * 1000
}
