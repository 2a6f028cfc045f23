//! Manual runs (`fourit trigger`) on the member's side: the waiting ones read, one taken by
//! `fourit_claim_manual`.

use std::sync::Arc;
use std::time::Duration;

use super::{PostgresCoordinator, cap};
use crate::coordinator::sql::{millis, unsigned};
use crate::coordinator::{Lease, ManualOutcome, ManualRequest, ManualState};
use crate::error::Error;
use crate::job::{BoxFuture, FenceToken, Overlap};

impl PostgresCoordinator {
    /// The manual runs waiting, oldest first ([`Coordinator::manual_requests`](crate::coordinator::Coordinator::manual_requests)).
    pub(super) fn waiting_manual(&self) -> BoxFuture<'_, Result<Vec<ManualRequest>, Error>> {
        Box::pin(async move {
            let rows = self
                .rows(
                    "manual requests",
                    "SELECT job, id, record FROM fourit_manual WHERE ns = $1
                     AND record LIKE E'%\\tpending' ORDER BY requested",
                    typed![&self.namespace],
                )
                .await?;
            Ok(rows
                .iter()
                .filter_map(|row| {
                    ManualRequest::parse(row.get(0), row.get(1), row.get(2))
                        .filter(|(_, state)| *state == ManualState::Pending)
                        .map(|(request, _)| request)
                })
                .collect())
        })
    }

    /// Takes a manual run for `node` ([`Coordinator::claim_manual`](crate::coordinator::Coordinator::claim_manual)).
    pub(super) fn take_manual<'a>(
        &'a self,
        request: &'a ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: Overlap,
    ) -> BoxFuture<'a, Result<ManualOutcome, Error>> {
        Box::pin(async move {
            let row = self
                .one(
                    "manual run",
                    "SELECT code, fence, holder, requested FROM fourit_claim_manual(\
                     $1, $2, $3, $4, $5, $6, $7)",
                    typed![
                        &self.namespace,
                        &request.job,
                        &request.id,
                        &node,
                        &millis(lease_ttl).max(1),
                        &(overlap == Overlap::Allow),
                        &cap(),
                    ],
                )
                .await?;
            let code: i32 = row.get(0);
            Ok(match code {
                1 => {
                    let requested: Option<i64> = row.get(3);
                    let own = overlap == Overlap::Allow || request.force;
                    ManualOutcome::Run(Lease {
                        job: Arc::from(request.job.as_str()),
                        tick_ms: requested.unwrap_or(request.requested_ms),
                        fence: FenceToken(unsigned(row.get(1)).unwrap_or(0)),
                        node: Arc::from(node),
                        overlap: if own { Overlap::Allow } else { Overlap::Skip },
                        manual: true,
                    })
                }
                2 => ManualOutcome::Overlap {
                    holder: row.get::<_, Option<String>>(2).unwrap_or_default(),
                },
                _ => ManualOutcome::Taken,
            })
        })
    }
}
