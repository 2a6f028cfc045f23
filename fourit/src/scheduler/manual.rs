//! Manual runs (`fourit trigger`): when a heartbeat says some are waiting, this member asks
//! which, and claims those of its own jobs; the coordinator gives each to exactly one member.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{debug, info, warn};

use super::options::LEASE_TTL_BOUNDS;
use super::runner::Runner;
use crate::coordinator::ManualOutcome;
use crate::job::Job;

/// What taking manual runs needs.
#[derive(Debug)]
pub(crate) struct ManualRuns {
    pub(crate) runner: Arc<Runner>,
    pub(crate) jobs: Vec<Job>,
    /// The configured lease TTL, if any (else the longest default).
    pub(crate) lease_ttl: Option<Duration>,
    /// A pass is under way: news meanwhile does not start another...
    busy: AtomicBool,
    /// ...but asks the pass under way to look once more when it is done.
    again: AtomicBool,
}

impl ManualRuns {
    pub(crate) fn new(runner: Arc<Runner>, jobs: Vec<Job>, lease_ttl: Option<Duration>) -> Self {
        ManualRuns {
            runner,
            jobs,
            lease_ttl,
            busy: AtomicBool::new(false),
            again: AtomicBool::new(false),
        }
    }

    /// Claims, in a task of its own, the waiting manual runs of this member's jobs (a
    /// heartbeat said some wait, or a notice said one was just requested). Called while a
    /// pass is under way, that pass looks again when done, so no request waits for the next
    /// heartbeat.
    pub(crate) fn take_waiting(self: &Arc<Self>) {
        self.again.store(true, Ordering::Release);
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        self.runner.tasks.spawn(async move {
            loop {
                while this.again.swap(false, Ordering::AcqRel) {
                    this.take_once().await;
                }
                this.busy.store(false, Ordering::Release);
                // News that came between the last look and `busy` going down: look again,
                // unless another call took over.
                if !this.again.load(Ordering::Acquire) || this.busy.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
        });
    }

    async fn take_once(&self) {
        if self.runner.shutdown.is_cancelled() {
            return;
        }
        let coordinator = &self.runner.coordinator;
        let requests = match coordinator.manual_requests().await {
            Ok(requests) => requests,
            Err(err) => {
                debug!(error = %err, "could not read the manual runs waiting");
                return;
            }
        };
        let ttl = self.lease_ttl.unwrap_or(LEASE_TTL_BOUNDS.1);
        for request in requests {
            let Some(job) = self.jobs.iter().find(|job| job.name() == request.job) else {
                continue;
            };
            let overlap = job.options().overlap;
            match coordinator
                .claim_manual(&request, &self.runner.node, ttl, overlap)
                .await
            {
                Ok(ManualOutcome::Run(lease)) => {
                    info!(
                        job = job.name(),
                        requested_by = %request.by,
                        fence = lease.fence.get(),
                        "manual run: starting"
                    );
                    self.runner.start_manual(
                        job.clone(),
                        lease,
                        ttl,
                        Arc::from(request.by.as_str()),
                    );
                }
                Ok(ManualOutcome::Overlap { holder }) => info!(
                    job = job.name(),
                    requested_by = %request.by,
                    holder = %holder,
                    "manual run skipped: the previous run still holds the lease (not forced)"
                ),
                Ok(ManualOutcome::Taken) => {}
                Err(err) => warn!(job = job.name(), error = %err, "could not claim a manual run"),
            }
        }
    }
}
