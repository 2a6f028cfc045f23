//! `burst`: 10,000 jobs due at the same second in each of four processes. How long from the
//! tick until every claim is decided, claims per second against raw Redis
//! (`redis-benchmark -P 16`, `SET key val NX PX`, same server, same run), and whether the
//! claims went out pipelined (one round trip per batch) or one round trip each.
//!
//! The job bodies sleep 5 s, so no release or keep-alive mixes with the claims: while the
//! claims last, every script Redis runs is a claim (or one of a few heartbeats). A sampler
//! reads `INFO stats commandstats` every 5 ms; the claims are decided when the script count
//! stops growing. When each tick was won comes from Redis itself (`started` in the job's hash),
//! and the workers count their claim batches (round trips) and the claims in them. The burst
//! is repeated (3 times, once with `--quick`) and the median run is shown.

use chrono::{DateTime, Timelike, Utc};
use serde_json::{Value, json};

use crate::common::{Ctx, Flags, members, shares};
use crate::fleet::{Calls, Fleet, Kind, calls_between};
use crate::measure::{
    Noise, NoiseProbe, next_second, now_ms, round1, round2, round3, sleep_until_ms,
};
use crate::redis_server::{Info, flush};
use crate::report::{number, table};

const PROCESSES: usize = 4;
const JOBS: usize = 10_000;
const BODY_MS: i64 = 5_000;
/// How long after the tick the sampler watches the claims.
const SAMPLE_MS: i64 = 4_500;
const SAMPLE_EVERY_MS: u64 = 5;
/// redis-benchmark's client counts: one, the fleet's four connections, its default 50.
const RAW_CLIENTS: [usize; 3] = [1, 4, 50];
/// The client count the target's ratio is taken against (`redis-benchmark -P 16` as is).
const RAW_TARGET_CLIENTS: usize = 50;

/// A redis-benchmark result: requests per second and µs per SET, or why there is none.
type RawResult = Result<(f64, f64), String>;

/// One sample of the counters, relative to the tick and to the first sample.
#[derive(Clone, Copy, Debug)]
struct Sample {
    t_ms: i64,
    /// Scripts run (claims, and a few heartbeats).
    claims: u64,
    /// Socket reads, the sampler's own taken out.
    reads: u64,
    net_in: u64,
    /// µs Redis spent in scripts.
    script_usec: u64,
}

/// More scripts between two samples than heartbeats could make: claims are still coming.
const CLAIMING: u64 = 8;

/// What one burst measured.
struct Burst {
    samples: Vec<Sample>,
    /// The sample at which every claim had been decided.
    decided: Sample,
    first_claim: Option<Sample>,
    unfinished: bool,
    /// The workers' own counts over the burst.
    calls: Calls,
    ran_once: usize,
    ran_twice: usize,
    last_start_ms: f64,
    last_claimed_ms: Option<i64>,
    shares: Vec<f64>,
    /// CPU seconds the four processes used from just before the tick to the sampler's end.
    worker_cpu_s: f64,
    noise: Option<Noise>,
    margin_ms: i64,
}

impl Burst {
    fn decided_s(&self) -> f64 {
        self.decided.t_ms.max(1) as f64 / 1000.0
    }

    fn claims_per_s(&self) -> f64 {
        self.decided.claims as f64 / self.decided_s()
    }

    fn ticks_per_s(&self) -> Option<f64> {
        self.last_claimed_ms
            .map(|t| JOBS as f64 / (t.max(1) as f64 / 1000.0))
    }

    fn claim_reads(&self) -> u64 {
        self.decided.reads
    }

    /// Pipelined if the workers sent their claims in batches of four or more on average
    /// (fourit sends pipelines of 8; one claim per round trip would average 1).
    fn pipelined(&self) -> bool {
        self.calls.batches > 0 && self.calls.batches * 4 <= self.calls.claims
    }

    /// µs Redis spent per claim script.
    fn claim_usec(&self) -> f64 {
        self.decided.script_usec as f64 / self.decided.claims.max(1) as f64
    }

    /// Share of the claiming time Redis spent running scripts, %.
    fn redis_busy_pct(&self) -> f64 {
        100.0 * self.decided.script_usec as f64 / (self.decided_s() * 1e6)
    }

    fn json(&self) -> Value {
        json!({
            "claim_attempts": self.decided.claims,
            "claim_batches": self.calls.batches,
            "claims_counted_by_workers": self.calls.claims,
            "ran_once": self.ran_once,
            "ran_twice": self.ran_twice,
            "first_claim_seen_ms": self.first_claim.map(|s| s.t_ms),
            "every_claim_decided_ms": self.decided.t_ms,
            "still_deciding_at_sampler_end": self.unfinished,
            "last_claim_started_redis_ms": self.last_claimed_ms,
            "last_body_start_ms": round1(self.last_start_ms),
            "claims_per_s": round1(self.claims_per_s()),
            "ticks_won_per_s": self.ticks_per_s().map(round1),
            "socket_reads_while_claiming": self.claim_reads(),
            "net_input_bytes_while_claiming": self.decided.net_in,
            "pipelined": self.pipelined(),
            "redis_usec_per_claim_script": round2(self.claim_usec()),
            "redis_busy_in_scripts_pct": round1(self.redis_busy_pct()),
            "worker_cpu_s": round3(self.worker_cpu_s),
            "worker_cpu_us_per_claim": round1(self.worker_cpu_s * 1e6 / self.decided.claims.max(1) as f64),
            "shares_pct": self.shares.iter().map(|s| round1(*s)).collect::<Vec<_>>(),
            "ready_margin_ms": self.margin_ms,
            "noise": self.noise.map(Noise::json),
            "samples_t_scripts_reads": self.samples.iter().map(|s| [s.t_ms, s.claims as i64, s.reads as i64]).collect::<Vec<_>>(),
        })
    }
}

/// `redis-benchmark -c CLIENTS -P 16 SET raw:RANDOM x NX PX 60000`: requests per second, and
/// the µs Redis spent per SET.
async fn raw_redis(ctx: &mut Ctx, clients: usize, requests: usize) -> RawResult {
    let before = Info::fetch(&mut ctx.conn).await?;
    let output = tokio::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &ctx.redis.port().to_string()])
        .args(["-c", &clients.to_string(), "-P", "16"])
        .args(["-n", &requests.to_string(), "-r", "1000000", "--csv"])
        .args(["SET", "raw:__rand_int__", "x", "NX", "PX", "60000"])
        .output()
        .await
        .map_err(|err| format!("running redis-benchmark: {err}"))?;
    let usec = Info::fetch(&mut ctx.conn)
        .await?
        .since(&before)
        .usec_per_call("set")
        .unwrap_or(0.0);
    let text = String::from_utf8_lossy(&output.stdout);
    let rps = text
        .lines()
        .filter(|line| !line.starts_with("\"test\""))
        .find_map(|line| {
            line.split("\",\"")
                .nth(1)
                .and_then(|rps| rps.trim_matches('"').parse().ok())
        })
        .ok_or_else(|| format!("unexpected redis-benchmark output: {text}"))?;
    Ok((rps, usec))
}

/// One burst, on a fresh Redis keyspace.
async fn one_burst(ctx: &mut Ctx) -> Result<Burst, String> {
    flush(&mut ctx.conn).await?;
    // Far enough ahead for four processes to register 10,000 jobs and see each other.
    let fire_ms = next_second(now_ms() + 15_000);
    let fire = DateTime::<Utc>::from_timestamp_millis(fire_ms).ok_or("bad time")?;
    let schedule = format!("{} {} {} * * *", fire.second(), fire.minute(), fire.hour());
    let specs = members("w", PROCESSES, |_| {
        Flags::new()
            .with("jobs", JOBS)
            .with("schedule", &schedule)
            .with("body-ms", BODY_MS)
    });
    let mut fleet = Fleet::spawn(Kind::Fourit, &ctx.programs, &ctx.redis.url(), &specs)?;
    if let Err(err) = fleet.wait_ready(std::time::Duration::from_secs(60)).await {
        fleet.stop().await;
        return Err(err);
    }
    let margin_ms = fire_ms - now_ms();
    if margin_ms < 5_000 {
        ctx.report.note(format!(
            "burst: the processes were ready only {margin_ms} ms before the tick; membership \
             may not have settled"
        ));
    }
    let mut pids = fleet.pids().to_vec();
    pids.push(ctx.redis.pid());

    sleep_until_ms(fire_ms - 300).await;
    let probe = NoiseProbe::start(&pids);
    let cpu0 = fleet.cpu();
    let info0 = Info::fetch(&mut ctx.conn).await?;
    let mut samples = Vec::new();
    let mut polls = 0u64;
    while now_ms() <= fire_ms + SAMPLE_MS {
        let info = Info::fetch(&mut ctx.conn).await?;
        polls += 1;
        let d = info.since(&info0);
        samples.push(Sample {
            t_ms: now_ms() - fire_ms,
            claims: d.get("evalsha"),
            reads: d.reads.saturating_sub(polls),
            net_in: d.net_in,
            script_usec: d.usec.get("evalsha").copied().unwrap_or(0),
        });
        tokio::time::sleep(std::time::Duration::from_millis(SAMPLE_EVERY_MS)).await;
    }
    let worker_cpu_s = fleet
        .cpu()
        .iter()
        .zip(&cpu0)
        .filter_map(|(b, a)| Some(b.as_ref()? - a.as_ref()?))
        .sum();
    let noise = probe.finish();
    let last = samples.last().copied().ok_or("no samples")?;
    // The last sample that still saw claims arrive.
    let decided = samples
        .windows(2)
        .rfind(|pair| pair[1].claims > pair[0].claims + CLAIMING)
        .map(|pair| pair[1])
        .unwrap_or(last);
    let unfinished = decided.t_ms > SAMPLE_MS - 500;
    if unfinished {
        ctx.report.note(format!(
            "burst: claims were still being decided {} ms after the tick; the figures are a \
             lower bound",
            decided.t_ms
        ));
    }

    // Let the bodies end and be released, then stop.
    sleep_until_ms(fire_ms + BODY_MS + 2_000).await;
    let (runs, history) = fleet.stop().await;
    let calls = calls_between(&history, fire_ms - 500, fire_ms + 4_500).unwrap_or_default();
    let mut once = vec![0u32; JOBS];
    for run in runs.iter().filter(|run| run.tick_ms == fire_ms) {
        if let Some(count) = once.get_mut(run.job as usize) {
            *count += 1;
        }
    }
    let last_start_ms = runs.iter().map(|run| run.delay_us()).max().unwrap_or(0) as f64 / 1000.0;

    // When each tick was claimed, by Redis's clock (`started` in the job's hash).
    let mut pipe = redis::pipe();
    for job in 0..JOBS {
        pipe.hget(format!("bench:{{job-{job}}}"), "started");
    }
    let started: Vec<Option<i64>> = pipe
        .query_async(&mut ctx.conn)
        .await
        .map_err(|err| format!("reading claim times: {err}"))?;
    Ok(Burst {
        decided,
        first_claim: samples.iter().find(|s| s.claims > CLAIMING).copied(),
        calls,
        samples,
        unfinished,
        ran_once: once.iter().filter(|c| **c == 1).count(),
        ran_twice: once.iter().filter(|c| **c > 1).count(),
        last_start_ms,
        last_claimed_ms: started.iter().flatten().max().map(|t| t - fire_ms),
        shares: shares(&runs, PROCESSES),
        worker_cpu_s,
        noise,
        margin_ms,
    })
}

/// Runs the bursts, then raw Redis on the same server.
pub async fn burst(ctx: &mut Ctx) -> Result<(), String> {
    let repeats = if ctx.quick { 1 } else { 3 };
    println!(
        "\n== burst: {JOBS} jobs due at the same second in each of {PROCESSES} processes \
         ({} claims of {JOBS} ticks), {repeats} time(s)",
        JOBS * PROCESSES
    );
    let mut bursts = Vec::new();
    for _ in 0..repeats {
        bursts.push(one_burst(ctx).await?);
    }
    let mut order: Vec<usize> = (0..bursts.len()).collect();
    order.sort_by_key(|&i| bursts[i].decided.t_ms);
    let b = &bursts[order[order.len() / 2]];

    // Raw Redis on the same server: best of three runs per client count.
    let requests = if ctx.quick { 100_000 } else { 300_000 };
    let mut raw: Vec<(usize, RawResult)> = Vec::new();
    for clients in RAW_CLIENTS {
        let mut best: RawResult = Err("not run".to_string());
        for _ in 0..repeats {
            flush(&mut ctx.conn).await?;
            let result = raw_redis(ctx, clients, requests).await;
            best = match (best, result) {
                (Ok(a), Ok(r)) => Ok(if r.0 > a.0 { r } else { a }),
                (Err(_), r) => r,
                (a, Err(_)) => a,
            };
        }
        raw.push((clients, best));
    }
    flush(&mut ctx.conn).await?;
    let raw_rps = |clients: usize| -> Option<f64> {
        raw.iter()
            .find(|(c, _)| *c == clients)
            .and_then(|(_, r)| r.as_ref().ok().map(|(rps, _)| *rps))
    };
    let set_usec = raw
        .iter()
        .find_map(|(_, r)| r.as_ref().ok().map(|(_, usec)| *usec));
    let claims_per_s = b.claims_per_s();
    let ratio = |clients: usize| raw_rps(clients).map(|raw| claims_per_s / raw);
    let ms = |s: Option<Sample>| s.map_or("-".to_string(), |s| s.t_ms.to_string());

    let rows = vec![
        vec![
            "claims (all processes)".to_string(),
            format!(
                "{} claim scripts at Redis; workers sent {} claims in {} batches; {} ticks ran \
                 once, {} twice",
                b.decided.claims, b.calls.claims, b.calls.batches, b.ran_once, b.ran_twice
            ),
        ],
        vec![
            "tick -> first claim at Redis".to_string(),
            format!("{} ms", ms(b.first_claim)),
        ],
        vec![
            "tick -> every tick won (Redis `started`)".to_string(),
            format!(
                "{} ms",
                b.last_claimed_ms.map_or("-".to_string(), |t| t.to_string())
            ),
        ],
        vec![
            "tick -> every claim decided".to_string(),
            format!(
                "{} ms (runs: {})",
                b.decided.t_ms,
                bursts
                    .iter()
                    .map(|x| format!("{} ms", x.decided.t_ms))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ],
        vec![
            "tick -> last body started".to_string(),
            format!("{:.0} ms", b.last_start_ms),
        ],
        vec![
            "claims/s (attempts / ticks won)".to_string(),
            format!(
                "{} / {}",
                number(claims_per_s),
                b.ticks_per_s().map_or("-".to_string(), number)
            ),
        ],
        vec![
            "redis-benchmark -P 16 SET NX PX, clients 1 / 4 / 50 (best of runs)".to_string(),
            RAW_CLIENTS
                .iter()
                .map(|c| raw_rps(*c).map_or("-".to_string(), number))
                .collect::<Vec<_>>()
                .join(" / ")
                + " req/s",
        ],
        vec![
            "claims/s ÷ raw, clients 1 / 4 / 50".to_string(),
            RAW_CLIENTS
                .iter()
                .map(|c| ratio(*c).map_or("-".to_string(), |r| format!("{r:.2}")))
                .collect::<Vec<_>>()
                .join(" / "),
        ],
        vec![
            "pipelining: claims per batch; socket reads while claiming".to_string(),
            format!(
                "{:.0} claims per batch: {}; {} reads for {} claims, {} KiB in ({} reads if \
                 fully pipelined)",
                b.calls.claims as f64 / b.calls.batches.max(1) as f64,
                if b.pipelined() {
                    "pipelined"
                } else {
                    "NOT pipelined"
                },
                b.claim_reads(),
                b.decided.claims,
                b.decided.net_in / 1024,
                b.decided.net_in / 16_384,
            ),
        ],
        vec![
            "Redis time per claim script / per SET NX PX".to_string(),
            format!(
                "{:.1} µs / {} µs (Redis busy in scripts {:.0}% of the claiming time)",
                b.claim_usec(),
                set_usec.map_or("-".to_string(), |u| format!("{u:.2}")),
                b.redis_busy_pct()
            ),
        ],
        vec![
            "CPU of the 4 processes, tick-0.3 s .. tick+4.5 s".to_string(),
            format!(
                "{:.2} s ({:.1} µs per claim attempt)",
                b.worker_cpu_s,
                b.worker_cpu_s * 1e6 / b.decided.claims.max(1) as f64
            ),
        ],
        vec![
            "shares of runs w0..w3".to_string(),
            b.shares
                .iter()
                .map(|s| format!("{s:.1}%"))
                .collect::<Vec<_>>()
                .join(" / "),
        ],
        vec![
            "other CPU".to_string(),
            b.noise
                .map_or("?".to_string(), |n| format!("{:.0}%", n.other_pct)),
        ],
    ];
    table("burst (median run)", &["figure", "value"], &rows);

    let target_ratio = ratio(RAW_TARGET_CLIENTS);
    let report = &mut ctx.report;
    report.target(
        "burst",
        "claims/s ÷ redis-benchmark -P 16 SET NX PX",
        ">= 0.5",
        target_ratio.map_or("-".to_string(), |r| {
            format!(
                "{r:.2} ({} vs {} req/s)",
                number(claims_per_s),
                number(raw_rps(RAW_TARGET_CLIENTS).unwrap_or(0.0))
            )
        }),
        target_ratio.map(|r| r >= 0.5),
    );
    report.target(
        "burst",
        "claims pipelined (one round trip per batch)",
        "yes",
        format!(
            "{} claims in {} batches ({} socket reads)",
            b.calls.claims,
            b.calls.batches,
            b.claim_reads()
        ),
        Some(bursts.iter().all(Burst::pipelined)),
    );
    report.target(
        "burst",
        "10,000 ticks, each run once",
        "10000 once, 0 twice",
        format!("{} once, {} twice", b.ran_once, b.ran_twice),
        Some(
            bursts
                .iter()
                .all(|x| x.ran_once == JOBS && x.ran_twice == 0),
        ),
    );
    report.scenarios.insert(
        "burst".to_string(),
        json!({
            "processes": PROCESSES,
            "jobs_per_process": JOBS,
            "median": b.json(),
            "runs": bursts.iter().map(Burst::json).collect::<Vec<_>>(),
            "redis_benchmark_p16": raw.iter().map(|(clients, r)| json!({
                "clients": clients,
                "rps": r.as_ref().ok().map(|(rps, _)| *rps),
                "usec_per_set": r.as_ref().ok().map(|(_, usec)| round2(*usec)),
                "error": r.as_ref().err(),
                "claims_per_s_ratio": ratio(*clients).map(round2),
            })).collect::<Vec<_>>(),
            "target_ratio_clients": RAW_TARGET_CLIENTS,
        }),
    );
    Ok(())
}
