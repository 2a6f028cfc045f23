//! The runner: one task per run that keeps the lease alive, watches the timeout, survives
//! panics, and releases the lease with the outcome.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::coordinator::{Lease, Outcome, RunRecord};
use crate::job::{Job, JobContext};
use crate::scheduler::Shared;

/// Starts the run of `job` under `lease` as a tracked task.
pub(crate) fn spawn(shared: &Arc<Shared>, job: Job, lease: Lease, ttl: Duration) {
    let shared_for_run = shared.clone();
    shared.runs.spawn(run(shared_for_run, job, lease, ttl));
}

async fn run(shared: Arc<Shared>, job: Job, lease: Lease, ttl: Duration) {
    let tick = DateTime::<Utc>::from_timestamp_millis(lease.tick_ms).unwrap_or_default();
    // The context is cancelled when shutdown starts (a child of the shutdown token), and by
    // this runner on lease loss or timeout.
    let cancel = shared.shutdown.child_token();
    let ctx = JobContext::with_cancellation(
        job.name_arc().clone(),
        tick,
        lease.fence,
        shared.node.clone(),
        cancel.clone(),
    );
    let span = tracing::info_span!(
        "run",
        job = job.name(),
        tick = %tick,
        node = %shared.node,
        fence = lease.fence.get()
    );
    let _entered = span.enter();
    let started = shared.clock.now();
    let clock_start = Instant::now();
    info!(late_ms = (started - tick).num_milliseconds(), "run started");
    drop(_entered);

    // The body runs as a task of its own, so a panic ends that task, not the scheduler.
    let mut body = tokio::spawn(job.call(ctx));
    let lost = CancellationToken::new();
    let keeper = tokio::spawn(keep_alive(shared.clone(), lease.clone(), ttl, lost.clone()));
    let deadline = job.timeout_duration().map(|timeout| clock_start + timeout);
    let mut lease_lost = false;

    let outcome = loop {
        tokio::select! {
            joined = &mut body => {
                break match joined {
                    Ok(Ok(())) if lease_lost => Outcome::LeaseLost,
                    Ok(Ok(())) => Outcome::Succeeded,
                    Ok(Err(message)) => Outcome::Failed(message),
                    Err(err) if err.is_panic() => Outcome::Panicked(panic_message(err.into_panic())),
                    Err(_) => Outcome::Cancelled,
                };
            }
            () = lost.cancelled(), if !lease_lost => {
                lease_lost = true;
                let _entered = span.enter();
                error!(
                    ttl = ?ttl,
                    "lease lost while the job runs: another process may take the next tick; \
                     the job's context is cancelled"
                );
                cancel.cancel();
            }
            () = sleep_until(deadline) => {
                cancel.cancel();
                body.abort();
                break Outcome::TimedOut;
            }
            () = shared.abort.cancelled() => {
                cancel.cancel();
                body.abort();
                break Outcome::Cancelled;
            }
        }
    };
    keeper.abort();
    let duration = clock_start.elapsed();
    let record = RunRecord {
        outcome,
        started,
        duration,
    };
    let _entered = span.enter();
    match &record.outcome {
        Outcome::Succeeded => info!(duration_ms = millis(duration), "run finished"),
        Outcome::Failed(message) => {
            warn!(duration_ms = millis(duration), error = %message, "run failed")
        }
        Outcome::Panicked(message) => {
            error!(duration_ms = millis(duration), panic = %message, "run panicked")
        }
        other => warn!(duration_ms = millis(duration), outcome = %other, "run ended"),
    }
    match shared.coordinator.release(&lease, &record).await {
        Ok(true) => {}
        Ok(false) => warn!("the lease had already expired or been taken when the run ended"),
        Err(err) => warn!(
            error = %err,
            "could not release the lease; it expires by itself within {ttl:?}"
        ),
    }
}

/// Renews the lease every third of its TTL; cancels `lost` when the lease is gone, or when no
/// renewal has succeeded for a whole TTL (it has then expired as far as anyone can tell).
async fn keep_alive(shared: Arc<Shared>, lease: Lease, ttl: Duration, lost: CancellationToken) {
    let period = (ttl / 3).max(Duration::from_millis(1));
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(period).await;
        match shared.coordinator.keep_alive(&lease, ttl).await {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => break,
            Err(err) => {
                warn!(job = %lease.job, error = %err, "could not renew the lease");
                if renewed.elapsed() >= ttl {
                    break;
                }
            }
        }
    }
    lost.cancel();
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_string(),
            Err(_) => "a panic with a non-string payload".to_string(),
        },
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
