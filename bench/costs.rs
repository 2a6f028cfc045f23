//! `costs`: what each of fourit's calls costs Redis, measured through fourit's own coordinator
//! (`RedisCoordinator`): µs of Redis time per call (`INFO commandstats`) for a won claim, a
//! refused claim, a release, a keep-alive and a heartbeat, against node-cron's call,
//! `SET key val NX PX`. Redis runs every call on one thread, so these set the ceiling on
//! claims per second whatever the clients do. Every job has run once before the measured
//! round, so its hash and history stream exist, as they do for a job that runs every second.

use std::sync::Arc;
use std::time::Duration;

use fourit::Overlap;
use fourit::coordinator::{
    ClaimOutcome, ClaimRequest, Coordinator, Lease, Outcome, RedisCoordinator, RunRecord,
};
use serde_json::json;

use crate::common::Ctx;
use crate::measure::round2;
use crate::redis_server::{Info, flush};
use crate::report::table;

/// Calls per kind.
const CALLS: usize = 10_000;

/// Runs `f` and returns Redis's µs per call of `command` meanwhile.
async fn usec_per_call<F, T>(ctx: &mut Ctx, command: &str, f: F) -> Result<(f64, T), String>
where
    F: AsyncFnOnce() -> Result<T, String>,
{
    let before = Info::fetch(&mut ctx.conn).await?;
    let value = f().await?;
    let usec = Info::fetch(&mut ctx.conn)
        .await?
        .since(&before)
        .usec_per_call(command)
        .unwrap_or(0.0);
    Ok((usec, value))
}

/// Measures every call and prints the table.
pub async fn script_costs(ctx: &mut Ctx) -> Result<(), String> {
    println!(
        "\n== costs: Redis time per call, {CALLS} calls each, through fourit's RedisCoordinator"
    );
    flush(&mut ctx.conn).await?;
    let url = ctx.redis.url();
    let coordinator = RedisCoordinator::connect(&url, "costs")
        .await
        .map_err(|err| format!("connecting fourit's coordinator: {err}"))?;
    let node: Arc<str> = Arc::from("costs-node");
    let requests = |claimer: &Arc<str>| -> Vec<ClaimRequest> {
        (0..CALLS)
            .map(|i| ClaimRequest {
                job: Arc::from(format!("job-{i}").as_str()),
                tick_ms: 1_000,
                node: claimer.clone(),
                lease_ttl: Duration::from_secs(30),
                overlap: Overlap::Skip,
                preferred: Some(node.clone()),
                handoff: Duration::from_millis(25),
                claim_id: fourit::coordinator::new_claim_id(),
                schedule: None,
            })
            .collect()
    };
    // A first round creates every job's keys (hash, lease, history stream), unmeasured.
    let first = requests(&node);
    let leases: Vec<Lease> = coordinator
        .claim(&first)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|outcome| match outcome {
            ClaimOutcome::Run(lease) => Some(lease),
            _ => None,
        })
        .collect();
    let record = RunRecord {
        outcome: Outcome::Succeeded,
        started: chrono::Utc::now(),
        duration: Duration::from_millis(3),
    };
    for lease in &leases {
        coordinator
            .release(lease, &record)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut won = requests(&node);
    for request in &mut won {
        request.tick_ms = 2_000;
    }
    let (won_usec, outcomes) = usec_per_call(ctx, "evalsha", async || {
        coordinator.claim(&won).await.map_err(|e| e.to_string())
    })
    .await?;
    let leases: Vec<Lease> = outcomes
        .into_iter()
        .filter_map(|outcome| match outcome {
            ClaimOutcome::Run(lease) => Some(lease),
            _ => None,
        })
        .collect();
    if leases.len() != CALLS {
        return Err(format!("{} of {CALLS} claims won", leases.len()));
    }
    let other: Arc<str> = Arc::from("costs-other");
    let mut taken = requests(&other);
    for request in &mut taken {
        request.tick_ms = 2_000;
    }
    let (taken_usec, _) = usec_per_call(ctx, "evalsha", async || {
        coordinator.claim(&taken).await.map_err(|e| e.to_string())
    })
    .await?;
    let keep = &leases[..1_000];
    let (keep_usec, _) = usec_per_call(ctx, "evalsha", async || {
        for lease in keep {
            coordinator
                .keep_alive(lease, Duration::from_secs(30))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .await?;
    let (release_usec, _) = usec_per_call(ctx, "evalsha", async || {
        for lease in &leases {
            coordinator
                .release(lease, &record)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .await?;
    let (heartbeat_usec, _) = usec_per_call(ctx, "evalsha", async || {
        for _ in 0..100 {
            coordinator
                .heartbeat("costs-node", Duration::from_secs(6), Some(0))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .await?;
    let mut conn = ctx.conn.clone();
    let (set_usec, _) = usec_per_call(ctx, "set", async || {
        let mut pipe = redis::pipe();
        for i in 0..CALLS {
            pipe.cmd("SET")
                .arg(format!("peer-job-{i}:2026-01-01T00:00:01.000Z"))
                .arg("costs-node")
                .arg("NX")
                .arg("PX")
                .arg(30_000)
                .ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    })
    .await?;
    flush(&mut ctx.conn).await?;

    let per_run = won_usec + release_usec;
    let rows = vec![
        vec!["claim, won".to_string(), format!("{won_usec:.2}")],
        vec![
            "claim, refused (tick already claimed)".to_string(),
            format!("{taken_usec:.2}"),
        ],
        vec!["release".to_string(), format!("{release_usec:.2}")],
        vec!["keep-alive".to_string(), format!("{keep_usec:.2}")],
        vec!["heartbeat".to_string(), format!("{heartbeat_usec:.2}")],
        vec![
            "node-cron's claim: SET key val NX PX".to_string(),
            format!("{set_usec:.2}"),
        ],
        vec![
            "a short run, 1 process: fourit (claim + release) / node-cron (SET)".to_string(),
            format!("{per_run:.2} / {set_usec:.2}"),
        ],
    ];
    table(
        "Redis time per call (µs, INFO commandstats; one Redis thread runs them all)",
        &["call", "µs"],
        &rows,
    );
    if set_usec > 0.0 {
        ctx.report.ratio(
            "Redis µs per short run, 1 process (claim + release vs SET NX PX)",
            per_run,
            set_usec,
        );
    }
    ctx.report.scenarios.insert(
        "costs".to_string(),
        json!({
            "calls": CALLS,
            "claim_won_usec": round2(won_usec),
            "claim_taken_usec": round2(taken_usec),
            "release_usec": round2(release_usec),
            "keep_alive_usec": round2(keep_usec),
            "heartbeat_usec": round2(heartbeat_usec),
            "set_nx_px_usec": round2(set_usec),
        }),
    );
    Ok(())
}
