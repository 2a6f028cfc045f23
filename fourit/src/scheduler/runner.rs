//! One run: the body as a task of its own inside the run's span, the lease kept alive beside
//! it, the timeout, panics caught, and the release with the outcome.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, warn};

use super::releases::Releases;
use crate::clock::{Clock, FleetClock};
use crate::coordinator::{Coordinator, Lease, Outcome, RunRecord};
use crate::events::{Event, Events};
use crate::job::{Job, JobContext};

/// What every run needs, shared by all of them.
#[derive(Debug)]
pub(crate) struct Runner {
    pub(crate) coordinator: Arc<dyn Coordinator>,
    pub(crate) releases: Releases,
    pub(crate) clock: Arc<FleetClock>,
    pub(crate) node: Arc<str>,
    /// Cancelled when shutdown starts: runs are told through their context.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when the shutdown timeout has passed: runs still going are dropped.
    pub(crate) abort: CancellationToken,
    /// Every run and claim task, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    /// How many job bodies are running now (the tasks above count claims in flight too).
    pub(crate) running: AtomicUsize,
    /// The scheduler's listeners.
    pub(crate) events: Arc<Events>,
}

impl Runner {
    /// Starts the run of `job` under `lease` (its TTL `ttl`) as a tracked task.
    pub(crate) fn start(self: &Arc<Self>, job: Job, lease: Lease, ttl: Duration) {
        self.start_run(job, lease, ttl, None);
    }

    /// Starts a manual run of `job` (asked for by `by`; its tick is the instant asked).
    pub(crate) fn start_manual(
        self: &Arc<Self>,
        job: Job,
        lease: Lease,
        ttl: Duration,
        by: Arc<str>,
    ) {
        self.start_run(job, lease, ttl, Some(by));
    }

    fn start_run(
        self: &Arc<Self>,
        job: Job,
        lease: Lease,
        ttl: Duration,
        manual: Option<Arc<str>>,
    ) {
        let tick = DateTime::<Utc>::from_timestamp_millis(lease.tick_ms).unwrap_or_default();
        self.events.emit(&Event::Claimed {
            job: job.name(),
            tick,
            fence: lease.fence.get(),
            manual: manual.is_some(),
        });
        // Everything the run does, the job's own events included, carries these fields.
        let span = tracing::info_span!(
            "run",
            job = job.name(),
            tick = %tick,
            node = %self.node,
            fence = lease.fence.get()
        );
        self.tasks.spawn(
            self.clone()
                .run(job, lease, tick, ttl, manual)
                .instrument(span),
        );
    }

    /// Gives back `lease` unrun, with `outcome` recorded in the job's history (a claim too
    /// few replicas acknowledged), as a tracked task.
    pub(crate) fn decline(self: &Arc<Self>, lease: Lease, outcome: Outcome) {
        let record = RunRecord {
            outcome,
            started: self.clock.now(),
            duration: Duration::ZERO,
        };
        let releases = self.releases.clone();
        self.tasks.spawn(async move {
            if let Err(err) = releases.release(lease, record).await {
                warn!(error = %err, "could not release the unrun claim's lease; it expires by itself");
            }
        });
    }

    async fn run(
        self: Arc<Self>,
        job: Job,
        lease: Lease,
        tick: DateTime<Utc>,
        ttl: Duration,
        manual: Option<Arc<str>>,
    ) {
        // The context is cancelled when shutdown starts (a child of the shutdown token), and
        // by this runner on lease loss or timeout.
        let cancel = self.shutdown.child_token();
        let ctx = JobContext::with_cancellation(
            job.name_arc().clone(),
            tick,
            lease.fence,
            self.node.clone(),
            cancel.clone(),
        );
        let is_manual = manual.is_some();
        let ctx = match manual {
            Some(by) => ctx.manual(by),
            None => ctx,
        };
        let started = self.clock.now();
        let clock_start = Instant::now();
        info!(late_ms = (started - tick).num_milliseconds(), "run started");
        let fence = lease.fence.get();
        self.events.emit(&Event::Started {
            job: job.name(),
            tick,
            fence,
            manual: is_manual,
            delay: (started - tick).to_std().unwrap_or_default(),
        });

        // The body runs as a task of its own, so a panic ends that task, not the scheduler;
        // it runs inside the current (the run's) span.
        let mut body = tokio::spawn(job.call(ctx).in_current_span());
        let running = Running::count(&self.running);
        let deadline = job.options().timeout.map(|timeout| clock_start + timeout);
        // The lease keeper borrows the lease until the run is over.
        let outcome = {
            let keeper = keep_lease(self.coordinator.as_ref(), &lease, ttl);
            tokio::pin!(keeper);
            let mut lease_lost = false;
            loop {
                tokio::select! {
                    joined = &mut body => {
                        break match joined {
                            Ok(Ok(())) if lease_lost => Outcome::LeaseLost,
                            Ok(Ok(())) => Outcome::Succeeded,
                            Ok(Err(message)) => Outcome::Failed(message),
                            Err(err) if err.is_panic() => {
                                Outcome::Panicked(panic_message(err.into_panic()))
                            }
                            Err(_) => Outcome::Cancelled,
                        };
                    }
                    () = &mut keeper, if !lease_lost => {
                        lease_lost = true;
                        error!(
                            ttl = ?ttl,
                            "lease lost while the job runs: another process may take the next \
                             tick; the job's context is cancelled"
                        );
                        cancel.cancel();
                        self.events.emit(&Event::LeaseLost { job: job.name(), tick, fence });
                    }
                    () = sleep_until(deadline) => {
                        cancel.cancel();
                        body.abort();
                        break Outcome::TimedOut;
                    }
                    () = self.abort.cancelled() => {
                        cancel.cancel();
                        body.abort();
                        break Outcome::Cancelled;
                    }
                }
            }
        };
        drop(running);
        let duration = clock_start.elapsed();
        log_outcome(&outcome, duration);
        self.events.emit(&Event::Finished {
            job: job.name(),
            tick,
            fence,
            manual: is_manual,
            outcome: &outcome,
            duration,
        });
        let record = RunRecord {
            outcome,
            started,
            duration,
        };
        match self.releases.release(lease, record).await {
            Ok(true) => {}
            Ok(false) => warn!("the lease had already expired or been taken when the run ended"),
            Err(err) => warn!(
                error = %err,
                "could not release the lease; it expires by itself within {ttl:?}"
            ),
        }
    }
}

/// One running body, counted in [`Runner::running`] until dropped.
struct Running<'a>(&'a AtomicUsize);

impl<'a> Running<'a> {
    fn count(running: &'a AtomicUsize) -> Running<'a> {
        running.fetch_add(1, Ordering::Relaxed);
        Running(running)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Renews `lease` every third of its TTL; completes when it is lost: the coordinator says it
/// is no longer ours, or no renewal has succeeded for a whole TTL.
async fn keep_lease(coordinator: &dyn Coordinator, lease: &Lease, ttl: Duration) {
    let period = (ttl / 3).max(Duration::from_millis(1));
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(period).await;
        match coordinator.keep_alive(lease, ttl).await {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => return,
            Err(err) => {
                warn!(error = %err, "could not renew the lease");
                if renewed.elapsed() >= ttl {
                    return;
                }
            }
        }
    }
}

fn log_outcome(outcome: &Outcome, duration: Duration) {
    let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Outcome::Succeeded => info!(duration_ms, "run finished"),
        Outcome::Failed(message) => warn!(duration_ms, error = %message, "run failed"),
        Outcome::Panicked(message) => error!(duration_ms, panic = %message, "run panicked"),
        other => warn!(duration_ms, outcome = %other, "run ended"),
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
