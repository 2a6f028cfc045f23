//! A fleet on one machine: three processes of this example against one Redis, printing which
//! process ran each tick of each job, then a tally.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example fleet            # 20 seconds
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example fleet -- 60      # 60 seconds
//! ```
//!
//! Each process runs the same three jobs, every second and every two seconds. Every tick
//! shows up once in total, and the jobs spread over the processes.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const PROCESSES: [&str; 3] = ["alpha", "bravo", "charlie"];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if let [flag, name] = args.as_slice()
        && flag == "--worker"
    {
        return worker(&url, name).await;
    }
    let seconds: u64 = match args.first() {
        Some(text) => text.parse()?,
        None => 20,
    };
    println!(
        "{} processes against {} for {seconds} s",
        PROCESSES.len(),
        fourit::coordinator::redact_url(&url)
    );

    // One namespace per run, so earlier runs' high-water marks do not interfere.
    let namespace = format!("fleet-demo-{}", std::process::id());
    let exe = std::env::current_exe()?;
    let (lines, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut children = Vec::new();
    for name in PROCESSES {
        let mut child = Command::new(&exe)
            .args(["--worker", name])
            .env("FLEET_NAMESPACE", &namespace)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        if let Some(stdout) = child.stdout.take() {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    let _ = lines.send(line);
                }
            });
        }
        children.push(child);
    }
    drop(lines);

    // (job, tick) -> the processes that ran it.
    let mut runs: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let deadline = tokio::time::sleep(Duration::from_secs(seconds));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            line = rx.recv() => match line {
                Some(line) => {
                    println!("{line}");
                    let mut words = line.split_whitespace();
                    if let (Some(process), Some(job), Some(tick)) = (words.next(), words.next(), words.next()) {
                        runs.entry((job.to_string(), tick.to_string())).or_default().push(process.to_string());
                    }
                }
                None => break,
            },
        }
    }
    for child in &mut children {
        if let Some(pid) = child.id() {
            // A graceful stop, as a deployment would send.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
    }
    for child in &mut children {
        let _ = child.wait().await;
    }

    let mut per_process: BTreeMap<String, usize> = BTreeMap::new();
    let mut twice = 0;
    for processes in runs.values() {
        if processes.len() > 1 {
            twice += 1;
        }
        for process in processes {
            *per_process.entry(process.clone()).or_default() += 1;
        }
    }
    println!("\n{} ticks ran, {twice} of them more than once", runs.len());
    for (process, count) in per_process {
        println!("  {process:<8} ran {count}");
    }
    Ok(())
}

async fn worker(url: &str, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let namespace = std::env::var("FLEET_NAMESPACE").unwrap_or_else(|_| "fleet-demo".into());
    let mut builder = fourit::Scheduler::builder()
        .url(url)
        .namespace(&namespace)
        .node_id(&format!("{name}:{}", std::process::id()))
        .shutdown_timeout(Duration::from_secs(5));
    for (job, schedule) in [
        ("ping", "* * * * * *"),
        ("sync", "* * * * * *"),
        ("report", "*/2 * * * * *"),
    ] {
        let name = name.to_string();
        builder = builder.add_job(job, schedule, move |ctx| {
            let name = name.clone();
            async move {
                println!(
                    "{name:<8} {:<7} {}",
                    ctx.job(),
                    ctx.tick().format("%H:%M:%S")
                );
            }
        });
    }
    builder.build()?.run().await?;
    Ok(())
}
