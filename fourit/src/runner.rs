//! The runner: one task per run that keeps the lease alive, watches the timeout, survives
//! panics, and releases the lease with the outcome. The body runs as a task of its own; the
//! releases of runs that end together share one round trip.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::coordinator::{Coordinator, Lease, Outcome, RunRecord};
use crate::error::Error;
use crate::job::{BoxFuture, Job, JobContext};
use crate::scheduler::Shared;

/// The most releases sent in one round trip.
const RELEASE_BATCH: usize = 64;

/// The longest a release waits for claims in flight to be answered.
const RELEASE_DEFER_MAX: Duration = Duration::from_millis(50);

/// Counts the claim calls waiting for their answer. Releases wait until there are none, so
/// that Redis, which runs one script at a time, decides all of a tick's claims (and their
/// bodies start) before it spends time on the releases of the tick's first runs.
#[derive(Debug, Default)]
pub(crate) struct ClaimsInFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One claim call in flight, until dropped.
pub(crate) struct ClaimInFlight(Arc<ClaimsInFlight>);

impl Drop for ClaimInFlight {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl ClaimsInFlight {
    /// Marks a claim call as in flight until the returned guard is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> ClaimInFlight {
        self.count.fetch_add(1, Ordering::AcqRel);
        ClaimInFlight(self.clone())
    }

    /// Returns when no claim is in flight, or after `at_most`.
    async fn wait_idle(&self, at_most: Duration) {
        let deadline = Instant::now() + at_most;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registered before the check, so a claim ending in between still wakes us.
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}

/// A finished run waiting for its release, and where to send the answer.
pub(crate) struct PendingRelease {
    lease: Lease,
    record: RunRecord,
    answer: oneshot::Sender<Result<bool, Error>>,
}

/// Releases finished runs: whatever has queued up while the previous batch was on its way
/// goes in the next round trip, so runs ending together (the runs of one tick) share one.
pub(crate) async fn release_in_batches(
    coordinator: Arc<dyn Coordinator>,
    claims: Arc<ClaimsInFlight>,
    mut pending: mpsc::UnboundedReceiver<PendingRelease>,
) {
    let mut batch = Vec::with_capacity(RELEASE_BATCH);
    while pending.recv_many(&mut batch, RELEASE_BATCH).await > 0 {
        claims.wait_idle(RELEASE_DEFER_MAX).await;
        // Whatever else ended meanwhile goes in the same round trip.
        while batch.len() < RELEASE_BATCH {
            match pending.try_recv() {
                Ok(release) => batch.push(release),
                Err(_) => break,
            }
        }
        let (runs, answers): (Vec<(Lease, RunRecord)>, Vec<_>) = batch
            .drain(..)
            .map(|release| ((release.lease, release.record), release.answer))
            .unzip();
        let results = coordinator.release_all(&runs).await;
        for (answer, result) in answers.into_iter().zip(results) {
            // The runner may have been dropped at shutdown: nobody left to tell.
            let _ = answer.send(result);
        }
    }
}

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
    let deadline = job.timeout_duration().map(|timeout| clock_start + timeout);
    // The lease is renewed every third of its TTL; it is lost when the coordinator says it
    // is no longer ours, or when no renewal has succeeded for a whole TTL.
    let period = (ttl / 3).max(Duration::from_millis(1));
    let renew = tokio::time::sleep(period);
    tokio::pin!(renew);
    let mut renewing: Option<BoxFuture<'_, Result<bool, Error>>> = None;
    let mut renewed = Instant::now();
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
            () = &mut renew, if renewing.is_none() && !lease_lost => {
                renewing = Some(shared.coordinator.keep_alive(&lease, ttl));
            }
            result = in_flight(&mut renewing) => {
                renewing = None;
                let lost = match result {
                    Ok(true) => {
                        renewed = Instant::now();
                        false
                    }
                    Ok(false) => true,
                    Err(err) => {
                        warn!(job = %lease.job, error = %err, "could not renew the lease");
                        renewed.elapsed() >= ttl
                    }
                };
                if lost {
                    lease_lost = true;
                    let _entered = span.enter();
                    error!(
                        ttl = ?ttl,
                        "lease lost while the job runs: another process may take the next tick; \
                         the job's context is cancelled"
                    );
                    cancel.cancel();
                } else {
                    renew.as_mut().reset(Instant::now() + period);
                }
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
    drop(renewing);
    let duration = clock_start.elapsed();
    let record = RunRecord {
        outcome,
        started,
        duration,
    };
    span.in_scope(|| match &record.outcome {
        Outcome::Succeeded => info!(duration_ms = millis(duration), "run finished"),
        Outcome::Failed(message) => {
            warn!(duration_ms = millis(duration), error = %message, "run failed")
        }
        Outcome::Panicked(message) => {
            error!(duration_ms = millis(duration), panic = %message, "run panicked")
        }
        other => warn!(duration_ms = millis(duration), outcome = %other, "run ended"),
    });
    // The span is not held across the wait: what else runs on this thread meanwhile would
    // log inside it.
    let released = release(&shared, lease, record).await;
    span.in_scope(|| match released {
        Ok(true) => {}
        Ok(false) => warn!("the lease had already expired or been taken when the run ended"),
        Err(err) => warn!(
            error = %err,
            "could not release the lease; it expires by itself within {ttl:?}"
        ),
    });
}

/// Releases through the batching releaser, or directly if it is gone.
async fn release(shared: &Shared, lease: Lease, record: RunRecord) -> Result<bool, Error> {
    let (answer, answered) = oneshot::channel();
    let pending = PendingRelease {
        lease,
        record,
        answer,
    };
    match shared.releases.send(pending) {
        Ok(()) => answered.await.unwrap_or_else(|_| {
            Err(Error::Redis {
                operation: "release",
                detail: "the releaser stopped before answering".to_string(),
            })
        }),
        Err(mpsc::error::SendError(pending)) => {
            shared
                .coordinator
                .release(&pending.lease, &pending.record)
                .await
        }
    }
}

/// The renewal in flight, if any; pending forever if none.
async fn in_flight(
    renewing: &mut Option<BoxFuture<'_, Result<bool, Error>>>,
) -> Result<bool, Error> {
    match renewing {
        Some(renewal) => renewal.await,
        None => std::future::pending().await,
    }
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
