//! The process the fleet tests start: a fourit scheduler with N jobs whose bodies record each
//! run in Redis (one counter per job and tick) and print it on stdout.
//!
//! ```text
//! worker --url redis://127.0.0.1:PORT --namespace NS --node NAME
//!        [--jobs 3] [--schedule "* * * * * *"] [--body-ms 5] [--clock-offset-ms 0]
//! ```
//!
//! Records go under `NS-record:` (outside the scheduler's namespace):
//! `NS-record:runs:JOB:TICK_MS` counts the runs of one tick, `NS-record:log` lists
//! `JOB TICK_MS NODE` lines. Stdout gets `ready` once, then `ran JOB TICK_MS NODE` per run.

use std::sync::Arc;
use std::time::Duration;

use fourit::{JobContext, OffsetClock, Scheduler};

struct Options {
    url: String,
    namespace: String,
    node: String,
    jobs: usize,
    schedule: String,
    body_ms: u64,
    clock_offset_ms: i64,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        url: String::new(),
        namespace: "fourit".to_string(),
        node: format!("worker-{}", std::process::id()),
        jobs: 3,
        schedule: "* * * * * *".to_string(),
        body_ms: 5,
        clock_offset_ms: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<i64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--url" => options.url = value,
            "--namespace" => options.namespace = value,
            "--node" => options.node = value,
            "--jobs" => {
                options.jobs = usize::try_from(number(&value)?).map_err(|e| e.to_string())?
            }
            "--schedule" => options.schedule = value,
            "--body-ms" => {
                options.body_ms = u64::try_from(number(&value)?).map_err(|e| e.to_string())?
            }
            "--clock-offset-ms" => options.clock_offset_ms = number(&value)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if options.url.is_empty() {
        return Err("--url is required".to_string());
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = options()?;
    // Logs go to stderr: stdout carries the `ran` lines the tests read.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let recorder = redis::Client::open(options.url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let prefix: Arc<str> = Arc::from(format!("{}-record", options.namespace));
    let mut builder = Scheduler::builder()
        .url(&options.url)
        .namespace(&options.namespace)
        .node_id(&options.node)
        .registered_jobs(false)
        .shutdown_timeout(Duration::from_secs(10))
        .clock(Arc::new(OffsetClock::new(chrono::TimeDelta::milliseconds(
            options.clock_offset_ms,
        ))));
    for index in 0..options.jobs {
        let recorder = recorder.clone();
        let prefix = prefix.clone();
        let body = Duration::from_millis(options.body_ms);
        builder = builder.add_job(
            &format!("job-{index}"),
            &options.schedule,
            move |ctx: JobContext| {
                let mut recorder = recorder.clone();
                let prefix = prefix.clone();
                async move {
                    let tick = ctx.tick().timestamp_millis();
                    let mut pipe = redis::pipe();
                    pipe.incr(format!("{prefix}:runs:{}:{tick}", ctx.job()), 1)
                        .ignore()
                        .rpush(
                            format!("{prefix}:log"),
                            format!("{} {tick} {}", ctx.job(), ctx.node()),
                        )
                        .ignore();
                    pipe.query_async::<()>(&mut recorder)
                        .await
                        .map_err(|err| format!("recording the run: {err}"))?;
                    println!("ran {} {tick} {}", ctx.job(), ctx.node());
                    tokio::time::sleep(body).await;
                    Ok::<(), String>(())
                }
            },
        )?;
    }
    let scheduler = builder.build()?;
    println!("ready");
    scheduler.run().await?;
    Ok(())
}
