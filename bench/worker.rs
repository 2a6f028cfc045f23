//! `bench --worker ...`: one fleet member, a fourit scheduler with N jobs whose bodies note the
//! host's wall clock first thing and report it on stdout.
//!
//! ```text
//! bench --worker --url redis://127.0.0.1:PORT --node NAME [--ns bench] --jobs N
//!       [--schedule "* * * * * *" | --hourly-from-minute M] [--handoff-ms H]
//!       [--clock-offset-ms O] [--body-ms B]
//! ```
//!
//! Stdout: `ready` once the scheduler is built, then `run job-I TICK_MS START_US NODE` per run,
//! and every second (at x.500 s) `calls T_MS BATCHES CLAIMS RELEASES KEEP_ALIVES HEARTBEATS
//! OTHER`: the calls the scheduler has made to its coordinator so far, counted by a wrapper
//! around fourit's Redis coordinator (claim batches are round trips, claims the ticks in them).
//! The lines go through a channel to a writer thread, so a body only reads the clock and sends
//! three integers. Logs (tracing, `RUST_LOG`, default `warn`) go to stderr.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use fourit::coordinator::{Call, Coordinator, Observed, Observer};
use fourit::{JobContext, OffsetClock, Scheduler};

/// What the worker was asked to run.
struct Options {
    url: String,
    node: String,
    namespace: String,
    jobs: usize,
    schedule: String,
    hourly_from_minute: Option<u32>,
    handoff_ms: Option<u64>,
    clock_offset_ms: i64,
    body_ms: u64,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        url: String::new(),
        node: format!("w{}", std::process::id()),
        namespace: "bench".to_string(),
        jobs: 1,
        schedule: "* * * * * *".to_string(),
        hourly_from_minute: None,
        handoff_ms: None,
        clock_offset_ms: 0,
        body_ms: 0,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<i64>().map_err(|e| format!("{flag}: {e}"));
        let unsigned = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--url" => options.url = value.clone(),
            "--node" => options.node = value.clone(),
            "--ns" => options.namespace = value.clone(),
            "--jobs" => {
                options.jobs = usize::try_from(unsigned(value)?).map_err(|e| e.to_string())?
            }
            "--schedule" => options.schedule = value.clone(),
            "--hourly-from-minute" => {
                options.hourly_from_minute =
                    Some(u32::try_from(unsigned(value)? % 60).map_err(|e| e.to_string())?)
            }
            "--handoff-ms" => options.handoff_ms = Some(unsigned(value)?),
            "--clock-offset-ms" => options.clock_offset_ms = number(value)?,
            "--body-ms" => options.body_ms = unsigned(value)?,
            other => return Err(format!("unknown worker flag {other}")),
        }
    }
    if options.url.is_empty() {
        return Err("--url is required".to_string());
    }
    Ok(options)
}

/// The calls a scheduler makes to its coordinator, counted.
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    claims: AtomicU64,
    releases: AtomicU64,
    release_batches: AtomicU64,
    keep_alives: AtomicU64,
    heartbeats: AtomicU64,
    other: AtomicU64,
}

impl Counters {
    fn line(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "calls {} {} {} {} {} {} {} {}",
            crate::measure::now_ms(),
            get(&self.batches),
            get(&self.claims),
            get(&self.releases),
            get(&self.release_batches),
            get(&self.keep_alives),
            get(&self.heartbeats),
            get(&self.other)
        )
    }
}

fn bump(counter: &AtomicU64, by: usize) {
    counter.fetch_add(u64::try_from(by).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Every call counted on the way through fourit's own coordinator: what the scheduler asks
/// of Redis, whatever its scripts do inside.
impl Observer for Counters {
    fn observe(&self, call: Call<'_>) {
        match call {
            Call::Claim(requests) => {
                bump(&self.batches, 1);
                bump(&self.claims, requests.len());
            }
            Call::KeepAlive(_) => bump(&self.keep_alives, 1),
            Call::Release(runs) => {
                bump(&self.releases, runs.len());
                bump(&self.release_batches, 1);
            }
            Call::Heartbeat(_) => bump(&self.heartbeats, 1),
            _ => bump(&self.other, 1),
        }
    }
}

/// What the writer thread prints.
enum Line {
    Run(Record),
    Text(String),
}

/// One run, as the body saw it: the job's index, its tick and the start (host wall clock).
type Record = (u32, i64, i64);

/// Microseconds since the Unix epoch, by the host's wall clock.
fn now_us() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

/// Writes `ready` and the other lines; flushes whenever the channel is momentarily empty.
fn writer(node: String, ready: mpsc::Receiver<()>, lines: mpsc::Receiver<Line>) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    if ready.recv().is_ok() {
        let _ = writeln!(out, "ready");
        let _ = out.flush();
    }
    while let Ok(first) = lines.recv() {
        let mut next = Some(first);
        while let Some(line) = next {
            let _ = match line {
                Line::Run((job, tick_ms, start_us)) => {
                    writeln!(out, "run job-{job} {tick_ms} {start_us} {node}")
                }
                Line::Text(text) => writeln!(out, "{text}"),
            };
            next = lines.try_recv().ok();
        }
        if out.flush().is_err() {
            return;
        }
    }
    let _ = out.flush();
}

/// The worker's entry point: `args` are the flags after `--worker`.
pub fn main(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let options = options(args)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();

    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (tx, rx) = mpsc::channel::<Line>();
    let node = options.node.clone();
    let writer = std::thread::spawn(move || writer(node, ready_rx, rx));

    // The runtime a service would use: tokio's default, one worker thread per core.
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        // With the `metrics` feature, every series goes to a real recorder, as in a service
        // that exports them (the text is never rendered: a scrape's cost is not the run's).
        #[cfg(feature = "metrics")]
        let _recorder = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
        let counters = Arc::new(Counters::default());
        let coordinator = fourit::coordinator::connect(&options.url, &options.namespace).await?;
        let coordinator: Arc<dyn Coordinator> =
            Arc::new(Observed::new(coordinator, counters.clone()));
        // Every second, at x.500 s (between ticks), the calls so far.
        let tx_calls = tx.clone();
        tokio::spawn(async move {
            loop {
                let wait = 1_500 - crate::measure::now_ms().rem_euclid(1_000);
                let wait = if wait > 1_000 { wait - 1_000 } else { wait };
                tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
                if tx_calls.send(Line::Text(counters.line())).is_err() {
                    return;
                }
            }
        });
        let mut builder = Scheduler::builder()
            .coordinator(coordinator)
            .namespace(&options.namespace)
            .node_id(&options.node)
            .registered_jobs(false)
            .shutdown_timeout(Duration::from_secs(10));
        if options.clock_offset_ms != 0 {
            builder = builder.clock(Arc::new(OffsetClock::new(chrono::TimeDelta::milliseconds(
                options.clock_offset_ms,
            ))));
        }
        if let Some(handoff) = options.handoff_ms {
            builder = builder.handoff(Duration::from_millis(handoff));
        }
        let body = Duration::from_millis(options.body_ms);
        for index in 0..options.jobs {
            let job = u32::try_from(index)?;
            let schedule = match options.hourly_from_minute {
                // Hourly jobs spread over 50 minutes of the hour, starting at minute M.
                Some(minute) => format!("{} * * * *", (minute + job % 50) % 60),
                None => options.schedule.clone(),
            };
            let tx = tx.clone();
            builder = builder.add_job(
                &format!("job-{index}"),
                &schedule,
                move |ctx: JobContext| {
                    let tx = tx.clone();
                    async move {
                        // First thing in the body: the host's clock.
                        let start_us = now_us();
                        let _ = tx.send(Line::Run((job, ctx.tick().timestamp_millis(), start_us)));
                        if !body.is_zero() {
                            tokio::time::sleep(body).await;
                        }
                    }
                },
            );
        }
        let scheduler = builder.build()?;
        let _ = ready_tx.send(());
        scheduler.run().await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    });
    drop(tx);
    drop(runtime);
    let _ = writer.join();
    result
}
