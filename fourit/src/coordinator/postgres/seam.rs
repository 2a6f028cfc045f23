//! The seam's side of the Postgres coordinator: `Coordinator`, each method one statement (a
//! heartbeat two, sent at once), the claims, manual runs and catalog in their own files.

use std::time::Duration;

use tracing::debug;

use super::errors::{answers, detail, ends_session, must_retry};
use super::pool::{Busy, forget};
use super::{DEADLINE, PostgresCoordinator};
use crate::coordinator::sql::{millis, slot};
use crate::coordinator::{
    ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator, Heartbeat, JobDefinition, Lease,
    ManualOutcome, ManualRequest, MissedNotice, Registrations, RunRecord,
};
use crate::error::{CoordinatorError, Error, ErrorKind};
use crate::job::{BoxFuture, Overlap};

/// Forgets the members of a namespace silent for longer than `$3` ms (not `$2`, the caller),
/// naming them.
const EVICT: &str = "WITH gone AS (DELETE FROM fourit_members WHERE ns = $1 AND node <> $2 \
    AND heartbeat < floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - $3 \
    RETURNING node) SELECT coalesce(array_agg(node), '{}') FROM gone";

/// The rule book's keep-alive (`rules/lease.rs: keep_alive`) of the job's lease, in its row
/// (`$3`, the slot, is `''`).
const KEEP_ALIVE_JOB: &str = "WITH now AS (SELECT fourit_now() AS ms) \
    UPDATE fourit_jobs SET lease_expires = (SELECT ms FROM now) + $5 \
    WHERE ns = $1 AND job = $2 AND $3 = '' AND lease_run = $4 \
      AND lease_expires > (SELECT ms FROM now) \
    RETURNING true";

/// The rule book's keep-alive (`rules/lease.rs: keep_alive`) of a run's own lease.
const KEEP_ALIVE_OWN: &str = "WITH now AS (SELECT fourit_now() AS ms) \
    UPDATE fourit_leases SET expires = (SELECT ms FROM now) + $5 \
    WHERE ns = $1 AND job = $2 AND slot = $3 AND run_id = $4 \
      AND expires > (SELECT ms FROM now) \
    RETURNING true";

const HEARTBEAT: &str =
    "SELECT now_us, members, manual_pending FROM fourit_heartbeat($1, $2, $3, $4)";

impl Coordinator for PostgresCoordinator {
    fn claim<'a>(
        &'a self,
        requests: &'a [ClaimRequest],
    ) -> BoxFuture<'a, Result<Vec<ClaimOutcome>, Error>> {
        self.claim_batch(requests)
    }

    fn keep_alive<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            // The job's lease is in its row, a lease of its own in `fourit_leases`.
            let sql = match lease.slot() {
                None => KEEP_ALIVE_JOB,
                Some(_) => KEEP_ALIVE_OWN,
            };
            let rows = self
                .rows(
                    "keep_alive",
                    sql,
                    typed![
                        &self.namespace,
                        &&*lease.job,
                        &slot(lease.slot()),
                        &lease.run_id(),
                        &millis(ttl).max(1),
                    ],
                )
                .await?;
            Ok(!rows.is_empty())
        })
    }

    fn release<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let run = [(lease.clone(), record.clone())];
            let mut answers = self.release_runs(&run).await?;
            answers.pop().ok_or_else(|| {
                Error::Coordinator(CoordinatorError::new(
                    "Postgres",
                    "release",
                    ErrorKind::Protocol,
                    "no answer for the release",
                ))
            })
        })
    }

    fn release_all<'a>(
        &'a self,
        runs: &'a [(Lease, RunRecord)],
    ) -> BoxFuture<'a, Vec<Result<bool, Error>>> {
        Box::pin(async move {
            if runs.is_empty() {
                return Vec::new();
            }
            match self.release_runs(runs).await {
                Ok(answers) => answers.into_iter().map(Ok).collect(),
                // One error for the batch: the first run gets it, the others its words.
                Err(err) => crate::error::for_each_of_batch(err, runs.len()),
            }
        })
    }

    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        stale_after: Duration,
        clock_offset_us: Option<i64>,
    ) -> BoxFuture<'a, Result<Heartbeat, Error>> {
        Box::pin(async move {
            // The silent members are forgotten first, by a statement of their own, to name
            // them: both statements go out at once on one connection, which the server runs
            // in order (the heartbeat still costs one round trip), so the function's own
            // clean-up finds none of them.
            let stale = millis(stale_after);
            let evict = typed![&self.namespace, &node, &stale];
            let beat = typed![&self.namespace, &node, &stale, &clock_offset_us];
            let slot = self.slot();
            let busy = Busy::on(slot);
            let client = self.client(slot, "heartbeat").await?;
            let both = async {
                tokio::join!(
                    client.query_typed(EVICT, evict),
                    client.query_typed(HEARTBEAT, beat)
                )
            };
            let (evicted, row) = match tokio::time::timeout(DEADLINE, both).await {
                Ok((evicted, Ok(mut rows))) if rows.len() == 1 => (evicted, rows.remove(0)),
                Ok((_, Ok(rows))) => {
                    answers("heartbeat", &rows, 1)?;
                    return Err(self.timeout("heartbeat"));
                }
                Ok((_, Err(err))) => {
                    if ends_session(&err) {
                        forget(slot, &client).await;
                    }
                    drop(busy);
                    // A deadlock broken between members' clean-ups, say: once more the
                    // ordinary way (which retries what the server asks to), unnamed.
                    if !must_retry(&err) {
                        return Err(self.error("heartbeat", &err));
                    }
                    (
                        Ok(Vec::new()),
                        self.one("heartbeat", HEARTBEAT, beat).await?,
                    )
                }
                Err(_) => {
                    // As any call with no answer: every pooled connection is suspect.
                    forget(slot, &client).await;
                    self.forget_all().await;
                    return Err(self.timeout("heartbeat"));
                }
            };
            let mut evicted: Vec<String> = match evicted {
                Ok(rows) => rows.first().map(|row| row.get(0)).unwrap_or_default(),
                Err(err) => {
                    debug!(error = %detail(&err), "could not name the silent members");
                    Vec::new()
                }
            };
            evicted.sort();
            if !evicted.is_empty() {
                self.prune_after("heartbeat").await;
            }
            Ok(Heartbeat {
                server_us: Some(row.get(0)),
                members: row.get(1),
                manual_pending: row.get(2),
                evicted,
            })
        })
    }

    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>> {
        Box::pin(async move {
            let row = self
                .one(
                    "time",
                    "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint",
                    typed![],
                )
                .await?;
            Ok(Some(row.get(0)))
        })
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.rows(
                "leave",
                "DELETE FROM fourit_members WHERE ns = $1 AND node = $2",
                typed![&self.namespace, &node],
            )
            .await?;
            self.prune_after("leave").await;
            Ok(())
        })
    }
    fn manual_requests(&self) -> BoxFuture<'_, Result<Vec<ManualRequest>, Error>> {
        self.waiting_manual()
    }

    fn claim_manual<'a>(
        &'a self,
        request: &'a ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: Overlap,
    ) -> BoxFuture<'a, Result<ManualOutcome, Error>> {
        self.take_manual(request, node, lease_ttl, overlap)
    }

    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<Registrations>, Error>> {
        self.register_jobs(node, jobs)
    }

    fn claim_notices(&self) -> Option<ClaimNotices> {
        Some(self.notices.subscribe())
    }

    fn missed_ticks(&self) -> Option<tokio::sync::broadcast::Receiver<MissedNotice>> {
        Some(self.missed.subscribe())
    }

    fn backend(&self) -> &'static str {
        "Postgres"
    }
}
