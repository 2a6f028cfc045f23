//! Claiming a batch of ticks: one round trip, the retries the coordinator asks for (the
//! handoff window, a tick still in its future), then the runs this process won.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::DateTime;
use tracing::{debug, info, warn};

use super::notices::Heard;
use super::outage::Outage;
use super::releases::ClaimsInFlight;
use super::runner::Runner;
use crate::clock::Clock;
use crate::coordinator::{ClaimOutcome, ClaimRequest};
use crate::events::{Event, Skip};
use crate::job::Job;

/// How many times a claimer that is told to wait (the handoff, an early tick) tries again.
const CLAIM_RETRIES: usize = 3;

/// A claim of one tick of the job at an index of the scheduler's jobs.
pub(crate) type IndexedClaim = (usize, ClaimRequest);

/// What claiming needs.
#[derive(Debug)]
pub(crate) struct Claims {
    pub(crate) runner: Arc<Runner>,
    pub(crate) heard: Arc<Heard>,
    pub(crate) outage: Arc<Outage>,
    pub(crate) in_flight: Arc<ClaimsInFlight>,
    /// Claims won but not run because too few replicas acknowledged them.
    pub(crate) unreplicated: AtomicU64,
}

impl Claims {
    /// Claims `batch` in one round trip (after `not_before`, fleet time, if given), retries
    /// what the coordinator asked to retry, then starts the runs this process won.
    pub(crate) async fn claim_and_run(
        &self,
        jobs: &[Job],
        mut batch: Vec<IndexedClaim>,
        not_before: Option<i64>,
    ) {
        let runner = &self.runner;
        if let Some(at_ms) = not_before {
            let wait_ms = at_ms - runner.clock.now().timestamp_millis();
            if !self.sleep_ms(wait_ms).await {
                return;
            }
        }
        // Whether the batch (or part of it) was already sent again after a lost answer.
        let mut resent = false;
        // Waits the coordinator asked for (handoff, early); a resend does not count.
        let mut waits = 0;
        loop {
            if not_before.is_some() && !resent {
                // Waiting out the handoff: claim only what the preferred members have not.
                // (Not when sending again after a lost answer: the notice heard may be of
                // this very claim.)
                batch.retain(|(index, request)| !self.heard.decided(*index, request.tick_ms));
                if batch.is_empty() {
                    return;
                }
            }
            let requests: Vec<ClaimRequest> =
                batch.iter().map(|(_, request)| request.clone()).collect();
            let in_flight = self.in_flight.start();
            let answer = runner.coordinator.claim(&requests).await;
            drop(in_flight);
            let outcomes = match answer {
                Ok(outcomes) => {
                    // Part of a cluster batch unanswered is not the coordinator back.
                    if !outcomes
                        .iter()
                        .any(|outcome| matches!(outcome, ClaimOutcome::Undecided { .. }))
                    {
                        self.outage.succeeded();
                    }
                    outcomes
                }
                // The answer was lost (a cut connection, a timeout): the claims may have been
                // decided. Sent once more, a claim this process had won is answered
                // `Resumed` with the same fence, so a lost answer costs no tick and can
                // never cost two runs.
                // (Not once shutdown has begun: the process must not wait out a second
                // deadline for a coordinator it cannot reach; a won claim whose answer was
                // lost holds its lease until the TTL, as after a crash.)
                Err(err) if err.is_unavailable() && !resent && !runner.shutdown.is_cancelled() => {
                    debug!(error = %err, "claim answer lost: sending the claims again");
                    resent = true;
                    continue;
                }
                Err(err) => {
                    let skipped = u64::try_from(requests.len()).unwrap_or(u64::MAX);
                    self.outage.failed("claim", &err, skipped);
                    return;
                }
            };
            let mut retry = Vec::new();
            let mut unanswered = Vec::new();
            // How long to wait before retrying, by the coordinator's clock (ms).
            let mut retry_wait_ms = 0i64;
            for ((index, request), outcome) in batch.into_iter().zip(outcomes) {
                let job = &jobs[index];
                let tick = DateTime::from_timestamp_millis(request.tick_ms).unwrap_or_default();
                match outcome {
                    ClaimOutcome::Run(lease) => {
                        runner.start(job.clone(), lease, request.lease_ttl);
                    }
                    ClaimOutcome::Resumed(lease) => {
                        info!(
                            job = job.name(),
                            tick = %tick,
                            fence = lease.fence.get(),
                            "claim answered again after its first answer was lost: running it"
                        );
                        runner.start(job.clone(), lease, request.lease_ttl);
                    }
                    ClaimOutcome::NotDurable {
                        lease,
                        acknowledged,
                        wanted,
                    } => {
                        let declined = self.unreplicated.fetch_add(1, Ordering::Relaxed) + 1;
                        warn!(
                            job = job.name(),
                            tick = %tick,
                            node = %runner.node,
                            fence = lease.fence.get(),
                            acknowledged,
                            wanted,
                            declined_so_far = declined,
                            "tick not run: too few replicas acknowledged the claim, so a \
                             failover could lose it and the tick run again elsewhere"
                        );
                        let why =
                            format!("{acknowledged} of {wanted} replicas acknowledged the claim");
                        runner.decline(lease, crate::coordinator::Outcome::NotReplicated(why));
                    }
                    ClaimOutcome::Paused => {
                        debug!(job = job.name(), tick = %tick, "tick paused fleet-wide: not run");
                        runner.events.emit(&Event::Skipped {
                            job: job.name(),
                            tick,
                            reason: Skip::Paused,
                        });
                    }
                    ClaimOutcome::Taken => {
                        debug!(job = job.name(), tick = %tick, node = %runner.node, "tick claimed elsewhere");
                        runner.events.emit(&Event::Taken {
                            job: job.name(),
                            tick,
                        });
                    }
                    ClaimOutcome::Overlap { holder } => {
                        runner.events.emit(&Event::Skipped {
                            job: job.name(),
                            tick,
                            reason: Skip::Overlap { holder: &holder },
                        });
                        // A tick not run is worth a warning: the holder may be a run still
                        // going (a long job) or one whose member died or was cut off, whose
                        // lease then lapses within its TTL of the last renewal.
                        warn!(
                            job = job.name(),
                            tick = %tick,
                            node = %runner.node,
                            holder = %holder,
                            lease_expires_within = ?request.lease_ttl,
                            "tick not run: the previous run still holds the lease (overlap = \
                             \"skip\"); the lease lapses within its TTL unless that run renews it"
                        );
                    }
                    ClaimOutcome::Undecided { detail } if !resent => {
                        // Its node did not answer: once more, as for a lost answer.
                        debug!(job = job.name(), tick = %tick, error = %detail, "claim unanswered: sending it again");
                        unanswered.push((index, request));
                    }
                    ClaimOutcome::Undecided { detail } => {
                        self.outage.failed("claim", &detail, 1);
                    }
                    ClaimOutcome::Retry { at_ms, now_ms } => {
                        retry_wait_ms = retry_wait_ms.max(at_ms - now_ms);
                        retry.push((index, request));
                    }
                    ClaimOutcome::Early { now_ms } => {
                        // This host's clock runs ahead of the coordinator's by more than the
                        // estimate allows: wait for the tick by the coordinator's clock, and
                        // have the offset measured again.
                        debug!(
                            job = job.name(),
                            tick = %tick,
                            early_ms = request.tick_ms - now_ms,
                            "claim refused as early: retrying at the tick"
                        );
                        runner.clock.request_measurement();
                        retry_wait_ms = retry_wait_ms.max(request.tick_ms - now_ms);
                        retry.push((index, request));
                    }
                }
            }
            if !unanswered.is_empty() {
                // Sent again at once: the wait below is only for what the coordinator refused.
                resent = true;
                batch = unanswered;
                batch.extend(retry);
                continue;
            }
            if retry.is_empty() {
                return;
            }
            if waits == CLAIM_RETRIES {
                warn!(
                    node = %runner.node,
                    ticks = retry.len(),
                    "the coordinator kept refusing claims for the handoff window or as early; \
                     is this host's clock far off?"
                );
                return;
            }
            waits += 1;
            // The coordinator says how long to wait, by its own clock, so the wait is right
            // even while this host's clock is off.
            if !self.sleep_ms(retry_wait_ms).await {
                return;
            }
            batch = retry;
        }
    }

    /// Sleeps `wait_ms` (monotonic time); `false` if shutdown came first.
    async fn sleep_ms(&self, wait_ms: i64) -> bool {
        if wait_ms <= 0 {
            return !self.runner.shutdown.is_cancelled();
        }
        let wait = Duration::from_millis(wait_ms.unsigned_abs());
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = self.runner.shutdown.cancelled() => false,
        }
    }
}
