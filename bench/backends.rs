//! `backends`: the same fleets on one Redis, on PostgreSQL and on a SQLite file, in one run:
//! start delay of 1 process with 100 jobs every second, and the coordinator round trips per
//! run of 4 processes with 4 jobs every second. PostgreSQL is `FOURIT_BENCH_POSTGRES_URL`
//! (default the `test` database on 127.0.0.1:5432), under a namespace of this run's own.
//! Then what a claim and its release cost the PostgreSQL server: batches of 100 claims and
//! their releases through the coordinator, the server's CPU for fourit's sessions (from
//! `/proc`, when the server runs on this machine), WAL bytes and commits (from the server's
//! own counters) per claim.

use std::time::{Duration, Instant};

use fourit::coordinator::{
    ClaimOutcome, ClaimRequest, Coordinator, Outcome, PostgresCoordinator, RunRecord, new_claim_id,
};
use serde_json::{Value, json};

use crate::cluster::{SIDE_BY_SIDE_COLUMNS, side_by_side};
use crate::common::Ctx;
use crate::report::table;

/// Runs the scenario and prints its table.
pub async fn backends(ctx: &mut Ctx) -> Result<(), String> {
    let secs = ctx.secs(30, 10);
    println!("\n== backends: one Redis, PostgreSQL and a SQLite file, {secs} s windows");
    let postgres = std::env::var("FOURIT_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let dir = std::env::temp_dir().join(format!("fourit-bench-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sqlite = format!("sqlite://{}/bench.db", dir.display());
    let targets = [
        ("Redis", ctx.redis.url()),
        ("PostgreSQL", postgres),
        ("SQLite", sqlite),
    ];
    let measured = side_by_side(ctx, &targets, "b", secs).await;
    let cost = postgres_cost(&targets[1].1, if secs >= 30 { 50 } else { 10 }).await;
    let _ = std::fs::remove_dir_all(&dir);
    let (rows, mut entries) = measured?;
    table(
        "backends (the same fleets on Redis, PostgreSQL and SQLite)",
        &SIDE_BY_SIDE_COLUMNS,
        &rows,
    );
    let cost = cost?;
    table(
        "what PostgreSQL spends on fourit (batches of 100 claims, then their releases)",
        &[
            "claims",
            "batch claim / release ms (p50)",
            "server CPU µs per claim+release",
            "WAL bytes per claim+release",
            "commits per batch",
        ],
        &[vec![
            cost["claims"].to_string(),
            format!(
                "{:.2} / {:.2}",
                cost["claim_batch_ms_p50"].as_f64().unwrap_or(0.0),
                cost["release_batch_ms_p50"].as_f64().unwrap_or(0.0)
            ),
            cost["server_cpu_us_per_claim"]
                .as_f64()
                .map_or("n/a (server not on this machine)".to_string(), |v| {
                    format!("{v:.0}")
                }),
            format!("{:.0}", cost["wal_bytes_per_claim"].as_f64().unwrap_or(0.0)),
            format!("{:.2}", cost["commits_per_batch"].as_f64().unwrap_or(0.0)),
        ]],
    );
    entries.push(json!({ "variant": "PostgreSQL server cost", "cost": cost }));
    ctx.report
        .scenarios
        .insert("backends".to_string(), Value::Array(entries));
    Ok(())
}

/// The server's counters: WAL position, commits in the database, and the CPU (clock ticks)
/// its backends for `application` used, if they run on this machine.
async fn counters(
    admin: &tokio_postgres::Client,
    application: &str,
) -> Result<(i64, i64, Option<u64>), String> {
    let row = admin
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,
               (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
               (SELECT array_agg(pid) FROM pg_stat_activity WHERE application_name = $1)",
            &[&application],
        )
        .await
        .map_err(|e| format!("reading the server's counters: {e}"))?;
    let pids: Option<Vec<i32>> = row.get(2);
    let mut ticks = Some(0u64);
    for pid in pids.unwrap_or_default() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        // Fields 14 and 15 (utime, stime) after the command's closing parenthesis.
        let used = stat.as_deref().and_then(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        });
        ticks = match (ticks, used) {
            (Some(total), Some(used)) => Some(total + used),
            _ => None,
        };
    }
    Ok((row.get(0), row.get(1), ticks))
}

/// [`counters`] once the sessions' commit counts reached the server's statistics: an idle
/// backend reports them within 10 s (PostgreSQL 15's `PGSTAT_IDLE_INTERVAL`).
async fn settled_counters(
    admin: &tokio_postgres::Client,
    application: &str,
) -> Result<(i64, i64, Option<u64>), String> {
    tokio::time::sleep(Duration::from_secs(11)).await;
    counters(admin, application).await
}

/// `batches` batches of 100 claims, each batch then released in one call; the server's
/// cost per claim and release.
async fn postgres_cost(url: &str, batches: usize) -> Result<Value, String> {
    const JOBS: usize = 100;
    let namespace = format!("bench-cost-{}", std::process::id());
    let separator = if url.contains('?') { '&' } else { '?' };
    let coordinator = PostgresCoordinator::connect(
        &format!("{url}{separator}application_name={namespace}"),
        &namespace,
    )
    .await
    .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
    // The test's own connection takes the URL without fourit's parameters (`fourit_pool`).
    let plain = match url.split_once('?') {
        Some((base, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| !pair.starts_with("fourit_"))
                .collect();
            format!("{base}?{}", kept.join("&"))
        }
        None => url.to_string(),
    };
    let (admin, connection) = tokio_postgres::connect(&plain, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
    tokio::spawn(connection);
    let node: std::sync::Arc<str> = std::sync::Arc::from("cost");
    let jobs: Vec<std::sync::Arc<str>> = (0..JOBS)
        .map(|i| std::sync::Arc::from(format!("cost-{i}")))
        .collect();
    let first_tick = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let mut claim_ms = Vec::new();
    let mut release_ms = Vec::new();
    let mut before = None;
    // The first batch warms the session (plans, catalog caches) and is not counted.
    for batch in 0..=batches {
        if batch == 1 {
            before = Some(settled_counters(&admin, &namespace).await?);
        }
        let tick_ms = first_tick + 1_000 * batch as i64;
        let requests: Vec<ClaimRequest> = jobs
            .iter()
            .map(|job| ClaimRequest {
                job: job.clone(),
                tick_ms,
                node: node.clone(),
                lease_ttl: Duration::from_secs(30),
                overlap: fourit::Overlap::Skip,
                preferred: None,
                handoff: Duration::ZERO,
                claim_id: new_claim_id(),
                schedule: None,
            })
            .collect();
        let started = Instant::now();
        let outcomes = coordinator
            .claim(&requests)
            .await
            .map_err(|e| format!("claim: {e}"))?;
        claim_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let runs: Vec<_> = outcomes
            .into_iter()
            .filter_map(|outcome| match outcome {
                ClaimOutcome::Run(lease) => Some((
                    lease,
                    RunRecord {
                        outcome: Outcome::Succeeded,
                        started: chrono::Utc::now(),
                        duration: Duration::from_millis(1),
                    },
                )),
                _ => None,
            })
            .collect();
        if runs.len() != JOBS {
            return Err(format!("{} of {JOBS} claims ran", runs.len()));
        }
        let started = Instant::now();
        for answer in coordinator.release_all(&runs).await {
            answer.map_err(|e| format!("release: {e}"))?;
        }
        release_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let after = settled_counters(&admin, &namespace).await?;
    let (wal, commits, cpu) = before.ok_or("no batches")?;
    let claims = (batches * JOBS) as f64;
    // Clock ticks are 1/100 s on Linux.
    let cpu_us = match (cpu, after.2) {
        (Some(start), Some(end)) => Some((end.saturating_sub(start)) as f64 * 10_000.0 / claims),
        _ => None,
    };
    let median = |values: &mut Vec<f64>| {
        values.remove(0);
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    drop(coordinator);
    let _ = admin
        .execute(
            "SELECT fourit_remove($1, job) FROM unnest($2::text[]) AS job",
            &[
                &namespace,
                &jobs.iter().map(|j| j.to_string()).collect::<Vec<_>>(),
            ],
        )
        .await;
    Ok(json!({
        "claims": batches * JOBS,
        "claim_batch_ms_p50": median(&mut claim_ms),
        "release_batch_ms_p50": median(&mut release_ms),
        "server_cpu_us_per_claim": cpu_us,
        "wal_bytes_per_claim": (after.0 - wal) as f64 / claims,
        // The counters' own reads commit too (two per snapshot): left in, they are few.
        "commits_per_batch": (after.1 - commits) as f64 / batches as f64,
    }))
}
