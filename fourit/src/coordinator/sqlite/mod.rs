//! The SQLite coordinator (`sqlite://path`, the `sqlite` feature): one file on one host, shared
//! by any number of processes there, and kept across restarts. Every call is one transaction
//! (`BEGIN IMMEDIATE` for what writes: SQLite's write lock, so the processes on the file take
//! turns; a deferred one for what only reads, which waits for no writer), in WAL mode with a
//! busy timeout. Inside it the rule book ([`super::rules`]) decides: load the job's record,
//! apply the rule, store what changed; the host's clock is the coordinator's.
//!
//! Tables (all keyed by namespace, created and migrated at connect, `PRAGMA user_version`):
//! `fourit_jobs` (the job's high-water mark, fence, latest run and pause), `fourit_leases`
//! (run id and expiry per job, and per run for `overlap = "allow"` and forced manual runs),
//! `fourit_history` (the last [`HISTORY_LEN`](super::HISTORY_LEN) entries per job),
//! `fourit_members`, `fourit_defs` (the catalog) and `fourit_manual` (manual run requests).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::rules::{self, Now};
use super::{
    ClaimNotice, ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator, Heartbeat, JobDefinition,
    Lease, ManualOutcome, ManualRequest, MissedNotice, NoticeSender, Registrations, RunRecord,
};
use crate::clock::Clock;
use crate::error::{CoordinatorError, Error, ErrorKind};
use crate::job::{BoxFuture, Overlap};

mod admin;
mod open;
mod store;

use self::open::error;
use self::store::Tx;

/// A coordinator on a SQLite file.
pub struct SqliteCoordinator {
    connection: Arc<Mutex<Connection>>,
    namespace: Arc<str>,
    /// The URL as given (a path: no secret in it).
    url: String,
    missed: tokio::sync::broadcast::Sender<MissedNotice>,
    /// The ticks decided through this coordinator (SQLite has no channel between processes:
    /// members on other processes claim after the handoff and are refused, a round trip).
    notices: NoticeSender,
    /// The coordinator's clock: the host's.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqliteCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCoordinator")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl SqliteCoordinator {
    /// The same coordinator with `clock` as the coordinator's clock instead of the host's
    /// (tests that drive the coordinator's time by hand).
    #[doc(hidden)]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SqliteCoordinator {
        self.clock = clock;
        self
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction (the file's write lock), on a
    /// blocking thread, with the clock read once the lock is taken; commits if it answers
    /// `Ok`.
    async fn write<T: Send + 'static>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&Tx<'_>, Now) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        self.run(operation, TransactionBehavior::Immediate, work)
            .await
    }

    /// Runs `work`, which only reads, in one deferred transaction: a snapshot of the file
    /// that takes no write lock (in WAL mode readers and the writer do not wait for each
    /// other), so the command and the dashboard never hold up a claim.
    async fn read<T: Send + 'static>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&Tx<'_>, Now) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        self.run(operation, TransactionBehavior::Deferred, work)
            .await
    }

    async fn run<T: Send + 'static>(
        &self,
        operation: &'static str,
        behavior: TransactionBehavior,
        work: impl FnOnce(&Tx<'_>, Now) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let connection = self.connection.clone();
        let ns = self.namespace.clone();
        let clock = self.clock.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let tx = conn
                .transaction_with_behavior(behavior)
                .map_err(|e| error(operation, e))?;
            let tx = Tx { tx, ns: &ns };
            let now = Now::at(clock.now().timestamp_millis());
            let answer = work(&tx, now).map_err(|e| error(operation, e))?;
            tx.tx.commit().map_err(|e| error(operation, e))?;
            Ok(answer)
        })
        .await
        .map_err(|e| {
            Error::Coordinator(CoordinatorError::new(
                "SQLite",
                operation,
                ErrorKind::Unavailable,
                e.to_string(),
            ))
        })?
    }
}

impl Coordinator for SqliteCoordinator {
    fn claim<'a>(
        &'a self,
        requests: &'a [ClaimRequest],
    ) -> BoxFuture<'a, Result<Vec<ClaimOutcome>, Error>> {
        Box::pin(async move {
            let batch = requests.to_vec();
            let (outcomes, missed) = self
                .write("claim", move |tx, now| {
                    let mut outcomes = Vec::with_capacity(batch.len());
                    let mut missed = Vec::new();
                    for request in &batch {
                        let before = tx.load(&request.job)?;
                        let mut record = before.clone();
                        let (outcome, writes) = rules::claim::claim(&mut record, request, now);
                        tx.store(&request.job, &before, &record)?;
                        tx.append(&request.job, &writes.history)?;
                        if let Some(ticks) = &writes.missed {
                            missed.push(MissedNotice::new(request, ticks));
                        }
                        outcomes.push(outcome);
                    }
                    Ok((outcomes, missed))
                })
                .await?;
            for (request, outcome) in requests.iter().zip(&outcomes) {
                if rules::claim::notifies(request, outcome) {
                    self.notices.send(ClaimNotice {
                        job: request.job.clone(),
                        tick_ms: request.tick_ms,
                        manual: false,
                    });
                }
            }
            for notice in missed {
                tracing::warn!(
                    job = &*notice.job,
                    missed = notice.count,
                    first = notice.first_ms,
                    last = notice.last_ms,
                    "ticks nobody ran (the fleet was down or stalled): recorded as missed"
                );
                let _ = self.missed.send(notice);
            }
            Ok(outcomes)
        })
    }

    fn keep_alive<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let lease = lease.clone();
        Box::pin(self.write("keep_alive", move |tx, now| {
            let before = tx.load(&lease.job)?;
            let mut record = before.clone();
            let kept = rules::lease::keep_alive(&mut record, &lease, ttl, now);
            tx.store(&lease.job, &before, &record)?;
            Ok(kept)
        }))
    }

    fn release<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let (lease, run) = (lease.clone(), record.clone());
        Box::pin(self.write("release", move |tx, now| {
            let before = tx.load(&lease.job)?;
            let mut record = before.clone();
            let (held, writes) = rules::lease::release(&mut record, &lease, &run, now);
            tx.store(&lease.job, &before, &record)?;
            tx.append(&lease.job, &writes.history)?;
            Ok(held)
        }))
    }

    fn release_all<'a>(
        &'a self,
        runs: &'a [(Lease, RunRecord)],
    ) -> BoxFuture<'a, Vec<Result<bool, Error>>> {
        // One transaction for the batch: one turn of the file's write lock.
        let batch = runs.to_vec();
        let count = runs.len();
        Box::pin(async move {
            let released = self
                .write("release", move |tx, now| {
                    let mut answers = Vec::with_capacity(batch.len());
                    for (lease, run) in &batch {
                        let before = tx.load(&lease.job)?;
                        let mut record = before.clone();
                        let (held, writes) = rules::lease::release(&mut record, lease, run, now);
                        tx.store(&lease.job, &before, &record)?;
                        tx.append(&lease.job, &writes.history)?;
                        answers.push(held);
                    }
                    Ok(answers)
                })
                .await;
            match released {
                Ok(answers) => answers.into_iter().map(Ok).collect(),
                // The transaction did not commit: no release of the batch took effect.
                Err(err) => crate::error::for_each_of_batch(err, count),
            }
        })
    }

    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        stale_after: Duration,
        clock_offset_us: Option<i64>,
    ) -> BoxFuture<'a, Result<Heartbeat, Error>> {
        let (node, clock) = (node.to_string(), self.clock.clone());
        Box::pin(self.write("heartbeat", move |tx, now| {
            let mut members = tx.members()?;
            let evicted =
                rules::members::heartbeat(&mut members, &node, stale_after, clock_offset_us, now);
            tx.put_member(&node, members.get(&node))?;
            for gone in &evicted {
                tx.put_member(gone, None)?;
            }
            if !evicted.is_empty() {
                tx.prune_catalog()?;
            }
            let manual_pending = tx.manual_pending()?;
            Ok(Heartbeat {
                server_us: Some(clock.now().timestamp_micros()),
                members: members.into_keys().collect(),
                manual_pending,
                evicted,
            })
        }))
    }

    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>> {
        // The host's clock is the file's: every process on it reads the same one.
        Box::pin(async { Ok(Some(self.clock.now().timestamp_micros())) })
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let node = node.to_string();
        Box::pin(self.write("leave", move |tx, _| {
            tx.put_member(&node, None)?;
            tx.prune_catalog()
        }))
    }

    fn manual_requests(&self) -> BoxFuture<'_, Result<Vec<ManualRequest>, Error>> {
        Box::pin(self.read("manual requests", move |tx, _| tx.pending_manual()))
    }

    fn claim_manual<'a>(
        &'a self,
        request: &'a ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: Overlap,
    ) -> BoxFuture<'a, Result<ManualOutcome, Error>> {
        let (request, node) = (request.clone(), node.to_string());
        Box::pin(self.write("manual run", move |tx, now| {
            let Some((stored, mut stands)) = tx.manual(&request.job, &request.id)? else {
                return Ok(ManualOutcome::Taken);
            };
            let before = tx.load(&request.job)?;
            let mut record = before.clone();
            let (outcome, writes) = rules::manual::claim(
                &mut record,
                &stored,
                &mut stands,
                &node,
                lease_ttl,
                overlap,
                now,
            );
            if writes.changed {
                tx.store(&request.job, &before, &record)?;
                tx.append(&request.job, &writes.history)?;
                tx.put_manual(&stored, &stands)?;
            }
            Ok(outcome)
        }))
    }

    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<Registrations>, Error>> {
        let (node, jobs) = (node.to_string(), jobs.to_vec());
        Box::pin(self.write("register", move |tx, now| {
            let members = tx.members()?;
            let live = |other: &str| members.contains_key(other);
            let mut answers = Vec::with_capacity(jobs.len());
            for job in &jobs {
                let mut registrations = tx
                    .registrations_of(Some(&job.name))?
                    .remove(&job.name)
                    .unwrap_or_default();
                let before: Vec<String> = registrations.keys().cloned().collect();
                let answer = rules::members::register(&mut registrations, &node, job, &live, now);
                tx.put_registration(&node, job, now.ms)?;
                for gone in before.iter().filter(|n| !registrations.contains_key(*n)) {
                    tx.delete_registration(&job.name, gone)?;
                }
                answers.push(answer);
            }
            Ok(answers)
        }))
    }

    fn missed_ticks(&self) -> Option<tokio::sync::broadcast::Receiver<MissedNotice>> {
        Some(self.missed.subscribe())
    }

    fn claim_notices(&self) -> Option<ClaimNotices> {
        Some(self.notices.subscribe())
    }

    fn backend(&self) -> &'static str {
        "SQLite"
    }
}
