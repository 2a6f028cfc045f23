//! The process the fleet and fault tests start: a fourit scheduler with N jobs whose bodies
//! record each run in Redis (one counter per job and tick) and print it on stdout.
//!
//! ```text
//! worker --url redis://127.0.0.1:PORT --namespace NS --node NAME
//!        [--jobs 3] [--schedule "* * * * * *"] [--body-ms 5] [--clock-offset-ms 0]
//!        [--record-url URL] [--lease-ttl-ms N] [--shutdown-timeout-ms 10000]
//!        [--on-cancel ignore|stop]
//!        [--extra panics|fails|fails-html|hostile|hostile-name|times-out]...
//!        [--timeout-ms 300] [--app-version V]
//! ```
//!
//! Records go to `--record-url` (default: `--url`), under `NS-record:` (outside the
//! scheduler's namespace): `NS-record:runs:JOB:TICK_MS` counts the runs of one tick,
//! `NS-record:log` lists `JOB TICK_MS NODE` lines, `NS-record:starts` lists
//! `JOB TICK_MS NODE REDIS_MS` (the start by the recording Redis's clock), and
//! `NS-record:spans` lists `JOB TICK_MS NODE START_MS END_MS` (host wall clock) for every
//! body that returned.
//!
//! Stdout gets `ready` once, then per run: `ran JOB TICK_MS NODE` when the body starts,
//! `cancelled JOB TICK_MS NODE` when the body sees its context cancelled, and
//! `done JOB TICK_MS NODE` when it returns. With `--on-cancel stop` (the default is `ignore`) a
//! body returns as soon as its context is cancelled; with `ignore` it sleeps its full
//! `--body-ms` whatever happens.
//!
//! `--extra KIND` adds a job named KIND on the same schedule, besides `job-0..job-N`:
//! `panics` panics, `fails` returns `Err("deliberate failure")`, `times-out` sleeps 5 s with a
//! `--timeout-ms` timeout; `hostile` is named `fourit_tests::hostile::JOB` and fails with
//! `fourit_tests::hostile::ERROR` (markup, terminal escapes, bidi); `hostile-name` is named
//! `fourit_tests::hostile::BIDI_NAME`, which the scheduler refuses (the worker exits). Logs (tracing, `RUST_LOG`, default `warn`) go to stderr.

use std::sync::Arc;
use std::time::Duration;

use fourit::{Job, JobContext, OffsetClock, Scheduler};

struct Options {
    url: String,
    record_url: Option<String>,
    namespace: String,
    node: String,
    jobs: usize,
    schedule: String,
    body_ms: u64,
    clock_offset_ms: i64,
    lease_ttl_ms: Option<u64>,
    shutdown_timeout_ms: u64,
    stop_on_cancel: bool,
    extras: Vec<String>,
    timeout_ms: u64,
    heartbeat_ms: Option<u64>,
    metrics: bool,
    app_version: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        url: String::new(),
        record_url: None,
        namespace: "fourit".to_string(),
        node: format!("worker-{}", std::process::id()),
        jobs: 3,
        schedule: "* * * * * *".to_string(),
        body_ms: 5,
        clock_offset_ms: 0,
        lease_ttl_ms: None,
        shutdown_timeout_ms: 10_000,
        stop_on_cancel: false,
        extras: Vec::new(),
        timeout_ms: 300,
        heartbeat_ms: None,
        metrics: false,
        app_version: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<i64>().map_err(|e| format!("{flag}: {e}"));
        let unsigned = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--url" => options.url = value,
            "--record-url" => options.record_url = Some(value),
            "--namespace" => options.namespace = value,
            "--node" => options.node = value,
            "--jobs" => {
                options.jobs = usize::try_from(unsigned(&value)?).map_err(|e| e.to_string())?
            }
            "--schedule" => options.schedule = value,
            "--body-ms" => options.body_ms = unsigned(&value)?,
            "--clock-offset-ms" => options.clock_offset_ms = number(&value)?,
            "--lease-ttl-ms" => options.lease_ttl_ms = Some(unsigned(&value)?),
            "--shutdown-timeout-ms" => options.shutdown_timeout_ms = unsigned(&value)?,
            "--on-cancel" => {
                options.stop_on_cancel = match value.as_str() {
                    "stop" => true,
                    "ignore" => false,
                    other => return Err(format!("--on-cancel: `{other}` is not stop|ignore")),
                }
            }
            "--extra" => match value.as_str() {
                "panics" | "fails" | "times-out" | "fails-html" | "hostile" | "hostile-name" => {
                    options.extras.push(value)
                }
                other => return Err(format!("--extra: unknown kind `{other}`")),
            },
            "--timeout-ms" => options.timeout_ms = unsigned(&value)?,
            "--heartbeat-ms" => options.heartbeat_ms = Some(unsigned(&value)?),
            "--metrics" => options.metrics = value == "on",
            "--app-version" => options.app_version = Some(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if options.url.is_empty() {
        return Err("--url is required".to_string());
    }
    Ok(options)
}

/// Counts the run (KEYS[1]), logs it (KEYS[2]) and logs it again with Redis's time in ms
/// (KEYS[3]); ARGV[1] is `JOB TICK NODE`.
const RECORD_START: &str = r"
redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], ARGV[1])
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('RPUSH', KEYS[3], ARGV[1] .. ' ' .. string.format('%.0f', ms))
";

/// Where and how a body records its run.
#[derive(Clone)]
struct Recorder {
    conn: redis::aio::MultiplexedConnection,
    prefix: Arc<str>,
}

impl Recorder {
    /// Counts the run and prints `ran`; fails (and the run with it) if the record fails.
    async fn started(&self, ctx: &JobContext) -> Result<(), String> {
        let tick = ctx.tick().timestamp_millis();
        let prefix = &self.prefix;
        let run = format!("{} {tick} {}", ctx.job(), ctx.node());
        // One script, so the start is stamped by Redis's clock (a stepped host's own lies).
        redis::Script::new(RECORD_START)
            .key(format!("{prefix}:runs:{}:{tick}", ctx.job()))
            .key(format!("{prefix}:log"))
            .key(format!("{prefix}:starts"))
            .arg(&run)
            .invoke_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|err| format!("recording the run: {err}"))?;
        // A manual run (`fourit trigger`) says so: its tick is the instant it was asked for.
        let kind = if ctx.is_manual() { "manual" } else { "ran" };
        println!("{kind} {} {tick} {}", ctx.job(), ctx.node());
        Ok(())
    }

    /// Records the body's span and prints `done`.
    async fn finished(&self, ctx: &JobContext, started_ms: i64) -> Result<(), String> {
        let tick = ctx.tick().timestamp_millis();
        let ended_ms = chrono::Utc::now().timestamp_millis();
        redis::cmd("RPUSH")
            .arg(format!("{}:spans", self.prefix))
            .arg(format!(
                "{} {tick} {} {started_ms} {ended_ms}",
                ctx.job(),
                ctx.node()
            ))
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(|err| format!("recording the end of the run: {err}"))?;
        println!("done {} {tick} {}", ctx.job(), ctx.node());
        Ok(())
    }
}

/// Installs the Prometheus recorder and serves its text on a port the OS picks, printing
/// `metrics <address>` for the test to scrape.
async fn serve_metrics() -> Result<(), Box<dyn std::error::Error>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("metrics {}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let handle = handle.clone();
            tokio::spawn(async move {
                // One GET per connection; the request itself does not matter.
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                let body = handle.render();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(())
}

/// Sleeps `body`, printing `cancelled` when the context is cancelled; returns early then if
/// `stop_on_cancel`.
async fn sleep_body(ctx: &JobContext, body: Duration, stop_on_cancel: bool) {
    let sleep = tokio::time::sleep(body);
    tokio::pin!(sleep);
    let mut seen = false;
    loop {
        tokio::select! {
            () = &mut sleep => return,
            () = ctx.cancelled(), if !seen => {
                seen = true;
                println!(
                    "cancelled {} {} {}",
                    ctx.job(),
                    ctx.tick().timestamp_millis(),
                    ctx.node()
                );
                if stop_on_cancel {
                    return;
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    // Errors are printed with their Display text (what a user reads), not Debug.
    if let Err(err) = run().await {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let options = options()?;
    // Logs go to stderr: stdout carries the lines the tests read.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    if options.metrics {
        serve_metrics().await?;
    }
    let record_url = options.record_url.as_deref().unwrap_or(&options.url);
    let recorder = Recorder {
        conn: redis::Client::open(record_url)?
            .get_multiplexed_async_connection()
            .await?,
        prefix: Arc::from(format!("{}-record", options.namespace)),
    };
    let mut builder = Scheduler::builder()
        .url(&options.url)
        .namespace(&options.namespace)
        .node_id(&options.node)
        .registered_jobs(false)
        .shutdown_timeout(Duration::from_millis(options.shutdown_timeout_ms))
        .clock(Arc::new(OffsetClock::new(chrono::TimeDelta::milliseconds(
            options.clock_offset_ms,
        ))));
    if let Some(ttl) = options.lease_ttl_ms {
        builder = builder.lease_ttl(Duration::from_millis(ttl));
    }
    if let Some(version) = &options.app_version {
        builder = builder.app_version(version);
    }
    if let Some(interval) = options.heartbeat_ms {
        builder = builder.heartbeat_interval(Duration::from_millis(interval));
    }
    let body = Duration::from_millis(options.body_ms);
    let stop_on_cancel = options.stop_on_cancel;
    for index in 0..options.jobs {
        let recorder = recorder.clone();
        builder = builder.add_job(
            &format!("job-{index}"),
            &options.schedule,
            move |ctx: JobContext| {
                let recorder = recorder.clone();
                async move {
                    let started_ms = chrono::Utc::now().timestamp_millis();
                    recorder.started(&ctx).await?;
                    sleep_body(&ctx, body, stop_on_cancel).await;
                    recorder.finished(&ctx, started_ms).await
                }
            },
        );
    }
    for kind in &options.extras {
        let recorder = recorder.clone();
        let kind_for_body = kind.clone();
        let name = match kind.as_str() {
            "hostile" => fourit_tests::hostile::JOB,
            "hostile-name" => fourit_tests::hostile::BIDI_NAME,
            other => other,
        };
        let job = Job::new(name, &options.schedule, move |ctx: JobContext| {
            let recorder = recorder.clone();
            let kind = kind_for_body.clone();
            async move {
                recorder.started(&ctx).await?;
                match kind.as_str() {
                    "panics" => panic!("deliberate panic at tick {}", ctx.tick()),
                    "fails" => Err("deliberate failure".to_string()),
                    // An error text a dashboard must show as text.
                    "fails-html" => Err("<script>alert(1)</script>".to_string()),
                    "hostile" => Err(fourit_tests::hostile::ERROR.to_string()),
                    _ => {
                        sleep_body(&ctx, Duration::from_secs(5), false).await;
                        Ok(())
                    }
                }
            }
        })?;
        let job = if kind == "times-out" {
            job.timeout(Duration::from_millis(options.timeout_ms))
        } else {
            job
        };
        builder = builder.job(job);
    }
    let scheduler = builder.build()?;
    println!("ready");
    scheduler.run().await?;
    Ok(())
}
