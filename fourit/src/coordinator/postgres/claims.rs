//! Claims and releases as one statement a batch (one round trip, one commit), in the order
//! of the jobs' names so two batches cannot deadlock; the ticks nobody ran recorded as missed.

use tokio_postgres::Row;
use tracing::debug;

use super::errors::answers;
use super::{PostgresCoordinator, cap};
use crate::coordinator::sql::{millis, slot, unsigned};
use crate::coordinator::{
    ClaimOutcome, ClaimRequest, FUTURE_TICK_TOLERANCE, Lease, MissedNotice, MissedTicks, RunRecord,
};
use crate::error::{CoordinatorError, Error, ErrorKind};
use crate::job::{BoxFuture, FenceToken, Overlap};

const CLAIM: &str = "SELECT code, fence, holder, at_ms, now_ms, old_mark FROM \
    fourit_claim_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
const RELEASE: &str = "SELECT held FROM \
    fourit_release_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// The indices of `jobs` in the order of the jobs' names (stable: one job's entries keep
/// their order).
fn by_job<'a>(jobs: impl Iterator<Item = &'a str>) -> Vec<usize> {
    let names: Vec<&str> = jobs.collect();
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&index| names[index]);
    order
}

impl PostgresCoordinator {
    /// Claims `requests` in one statement ([`Coordinator::claim`](crate::coordinator::Coordinator::claim)).
    pub(super) fn claim_batch<'a>(
        &'a self,
        requests: &'a [ClaimRequest],
    ) -> BoxFuture<'a, Result<Vec<ClaimOutcome>, Error>> {
        Box::pin(async move {
            // One statement, one transaction, one commit: the batch's claims in the order of
            // their jobs' names (so two batches lock rows in one order and cannot deadlock),
            // each seeing the earlier ones.
            let order = by_job(requests.iter().map(|request| &*request.job));
            let sorted: Vec<&ClaimRequest> = order.iter().map(|&index| &requests[index]).collect();
            let jobs: Vec<&str> = sorted.iter().map(|r| &*r.job).collect();
            let ticks: Vec<i64> = sorted.iter().map(|r| r.tick_ms).collect();
            let nodes: Vec<&str> = sorted.iter().map(|r| &*r.node).collect();
            let ttls: Vec<i64> = sorted.iter().map(|r| millis(r.lease_ttl).max(1)).collect();
            let allows: Vec<bool> = sorted.iter().map(|r| r.overlap == Overlap::Allow).collect();
            let preferred: Vec<Option<&str>> =
                sorted.iter().map(|r| r.preferred.as_deref()).collect();
            let handoffs: Vec<i64> = sorted.iter().map(|r| millis(r.handoff)).collect();
            let claims: Vec<String> = sorted.iter().map(|r| r.claim_id.to_string()).collect();
            // The schedule's tick before this one: a mark older than it means ticks nobody
            // decided (the caller records them as missed).
            let previous: Vec<Option<i64>> = sorted
                .iter()
                .map(|r| {
                    r.schedule
                        .as_deref()
                        .and_then(|schedule| MissedTicks::previous_tick(schedule, r.tick_ms))
                })
                .collect();
            let tolerance = millis(FUTURE_TICK_TOLERANCE);
            let rows = self
                .rows(
                    "claim",
                    CLAIM,
                    typed![
                        &self.namespace,
                        &jobs,
                        &ticks,
                        &nodes,
                        &ttls,
                        &allows,
                        &preferred,
                        &handoffs,
                        &tolerance,
                        &claims,
                        &previous,
                        &cap(),
                    ],
                )
                .await?;
            answers("claim", &rows, requests.len())?;
            let mut rows: Vec<(usize, Row)> = order.into_iter().zip(rows).collect();
            rows.sort_by_key(|(index, _)| *index);
            let mut outcomes = Vec::with_capacity(requests.len());
            for (request, (_, row)) in requests.iter().zip(rows) {
                let code: i32 = row.get(0);
                let fence: Option<i64> = row.get(1);
                let holder: Option<String> = row.get(2);
                let at_ms: Option<i64> = row.get(3);
                let now_ms: i64 = row.get(4);
                let old_mark: Option<i64> = row.get(5);
                let lease = |fence: Option<i64>| Lease {
                    job: request.job.clone(),
                    tick_ms: request.tick_ms,
                    fence: FenceToken(unsigned(fence).unwrap_or(0)),
                    node: request.node.clone(),
                    overlap: request.overlap,
                    manual: false,
                };
                let outcome = match code {
                    1 => ClaimOutcome::Run(lease(fence)),
                    5 => ClaimOutcome::Resumed(lease(fence)),
                    0 => ClaimOutcome::Taken,
                    2 => ClaimOutcome::Overlap {
                        holder: holder.unwrap_or_default(),
                    },
                    3 => ClaimOutcome::Retry {
                        at_ms: at_ms.unwrap_or(now_ms),
                        now_ms,
                    },
                    4 => ClaimOutcome::Early { now_ms },
                    6 => ClaimOutcome::Paused,
                    other => {
                        return Err(Error::Coordinator(CoordinatorError::new(
                            "Postgres",
                            "claim",
                            ErrorKind::Protocol,
                            format!("unknown claim answer {other}"),
                        )));
                    }
                };
                if let (Some(mark), Some(schedule)) = (old_mark, &request.schedule)
                    && let Some(ticks) = MissedTicks::between(schedule, mark, request.tick_ms)
                {
                    self.record_missed(request, &ticks).await;
                }
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
    }

    pub(super) async fn record_missed(&self, request: &ClaimRequest, ticks: &MissedTicks) {
        let detail = ticks.detail();
        let answer = self
            .rows(
                "record missed",
                "SELECT fourit_record($1, $2, $3, $4, 'missed', $5, NULL, NULL, NULL, $6)",
                typed![
                    &self.namespace,
                    &&*request.job,
                    &ticks.last_ms,
                    &&*request.node,
                    &detail,
                    &cap(),
                ],
            )
            .await;
        if let Err(err) = answer {
            debug!(error = %err, "could not record missed ticks");
        }
        tracing::warn!(
            job = &*request.job,
            missed = ticks.count,
            first = ticks.first_ms,
            last = ticks.last_ms,
            "ticks nobody ran (the fleet was down or stalled): recorded as missed"
        );
        let _ = self.missed.send(MissedNotice::new(request, ticks));
    }

    /// Ends `runs` in one statement (one round trip, one commit), in the order of their
    /// jobs' names; answers, in `runs`' order, whether each lease was still the run's.
    pub(super) async fn release_runs(
        &self,
        runs: &[(Lease, RunRecord)],
    ) -> Result<Vec<bool>, Error> {
        let order = by_job(runs.iter().map(|(lease, _)| &*lease.job));
        let sorted: Vec<&(Lease, RunRecord)> = order.iter().map(|&index| &runs[index]).collect();
        let jobs: Vec<&str> = sorted.iter().map(|(lease, _)| &*lease.job).collect();
        let slots: Vec<String> = sorted.iter().map(|(lease, _)| slot(lease.slot())).collect();
        let run_ids: Vec<String> = sorted.iter().map(|(lease, _)| lease.run_id()).collect();
        let ticks: Vec<i64> = sorted.iter().map(|(lease, _)| lease.tick_ms).collect();
        let nodes: Vec<&str> = sorted.iter().map(|(lease, _)| &*lease.node).collect();
        let fences: Vec<i64> = sorted
            .iter()
            .map(|(lease, _)| i64::try_from(lease.fence.get()).unwrap_or(i64::MAX))
            .collect();
        let outcomes: Vec<&str> = sorted.iter().map(|(_, r)| r.outcome.as_str()).collect();
        let errors: Vec<Option<&str>> = sorted.iter().map(|(_, r)| r.outcome.error()).collect();
        let durations: Vec<i64> = sorted.iter().map(|(_, r)| millis(r.duration)).collect();
        let delays: Vec<i64> = sorted
            .iter()
            .map(|(lease, r)| i64::try_from(r.delay_ms(lease.tick_ms)).unwrap_or(i64::MAX))
            .collect();
        let rows = self
            .rows(
                "release",
                RELEASE,
                typed![
                    &self.namespace,
                    &jobs,
                    &slots,
                    &run_ids,
                    &ticks,
                    &nodes,
                    &fences,
                    &outcomes,
                    &errors,
                    &durations,
                    &delays,
                    &cap(),
                ],
            )
            .await?;
        answers("release", &rows, runs.len())?;
        let mut answers = vec![false; runs.len()];
        for (index, row) in order.into_iter().zip(rows) {
            answers[index] = row.get::<_, bool>(0);
        }
        Ok(answers)
    }
}
