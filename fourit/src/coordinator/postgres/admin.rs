//! The read side of the Postgres coordinator (`Admin`): members, history, pauses, the
//! catalog, manual requests and removal.

use tokio_postgres::Row;

use super::{PostgresCoordinator, cap};
use crate::coordinator::rules;
use crate::coordinator::sql::unsigned;
use crate::coordinator::{
    Admin, CatalogEntry, HISTORY_LEN, HistoryEntry, JobState, Lease, ManualRequest, ManualState,
    Member, PauseState,
};
use crate::error::Error;
use crate::job::BoxFuture;

fn pause_of(row: &Row, offset: usize) -> PauseState {
    PauseState {
        by: row.get::<_, Option<String>>(offset).unwrap_or_default(),
        note: row
            .get::<_, Option<String>>(offset + 1)
            .filter(|note| !note.is_empty()),
        since_ms: row.get::<_, Option<i64>>(offset + 2).unwrap_or_default(),
        ticks: unsigned(row.get(offset + 3)).unwrap_or(0),
        first_tick_ms: row.get(offset + 4),
        last_tick_ms: row.get(offset + 5),
    }
}

impl Admin for PostgresCoordinator {
    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>, Error>> {
        Box::pin(async move {
            let rows = self
                .rows(
                    "members",
                    "SELECT node, heartbeat, clock_offset FROM fourit_members WHERE ns = $1
                     ORDER BY heartbeat, node",
                    typed![&self.namespace],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| Member {
                    node: row.get(0),
                    heartbeat_ms: row.get(1),
                    clock_offset_us: row.get(2),
                })
                .collect())
        })
    }

    fn histories<'a>(
        &'a self,
        jobs: &'a [String],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<HistoryEntry>>, Error>> {
        Box::pin(async move {
            if jobs.is_empty() {
                return Ok(Vec::new());
            }
            // One query: each job's newest entries, numbered per job.
            let rows = self
                .rows(
                    "history",
                    "SELECT job, tick, node, outcome, detail, fence, duration_ms, delay_ms
                     FROM (SELECT h.*, row_number() OVER (PARTITION BY job ORDER BY id DESC) AS n
                           FROM fourit_history h WHERE ns = $1 AND job = ANY($2)) AS numbered
                     WHERE n <= $3 ORDER BY job, id DESC",
                    typed![
                        &self.namespace,
                        &jobs.to_vec(),
                        &i64::try_from(limit.min(HISTORY_LEN)).unwrap_or(i64::MAX),
                    ],
                )
                .await?;
            let mut by_job: std::collections::HashMap<String, Vec<HistoryEntry>> =
                std::collections::HashMap::new();
            for row in &rows {
                by_job.entry(row.get(0)).or_default().push(entry_of(row, 1));
            }
            Ok(jobs
                .iter()
                .map(|job| by_job.remove(job).unwrap_or_default())
                .collect())
        })
    }

    fn history<'a>(
        &'a self,
        job: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<HistoryEntry>, Error>> {
        Box::pin(async move {
            let rows = self
                .rows(
                    "history",
                    "SELECT tick, node, outcome, detail, fence, duration_ms, delay_ms
                     FROM fourit_history WHERE ns = $1 AND job = $2 ORDER BY id DESC LIMIT $3",
                    typed![
                        &self.namespace,
                        &job,
                        // The table may hold a few more than the cap (trimmed on one
                        // append in eight): no more than the cap is ever answered.
                        &i64::try_from(limit.min(HISTORY_LEN)).unwrap_or(i64::MAX),
                    ],
                )
                .await?;
            Ok(rows.iter().map(|row| entry_of(row, 0)).collect())
        })
    }

    fn pause<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        note: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let note = note.filter(|note| !note.is_empty());
            self.rows(
                "pause",
                "INSERT INTO fourit_jobs (ns, job, paused, paused_by, paused_note, paused_at)
                 VALUES ($1, $2, true, $3, $4, fourit_now())
                 ON CONFLICT (ns, job) DO UPDATE SET paused = true,
                   paused_by = excluded.paused_by, paused_note = excluded.paused_note,
                   paused_at = excluded.paused_at,
                   paused_ticks = CASE WHEN fourit_jobs.paused THEN fourit_jobs.paused_ticks
                     ELSE 0 END,
                   paused_first = CASE WHEN fourit_jobs.paused THEN fourit_jobs.paused_first END,
                   paused_last = CASE WHEN fourit_jobs.paused THEN fourit_jobs.paused_last END",
                typed![&self.namespace, &job, &by, &note],
            )
            .await?;
            Ok(())
        })
    }

    fn resume<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
    ) -> BoxFuture<'a, Result<Option<PauseState>, Error>> {
        Box::pin(async move {
            let rows = self
                .rows(
                    "resume",
                    "SELECT by_whom, note, since, ticks, first_tick, last_tick
                     FROM fourit_resume($1, $2, $3, $4)",
                    typed![&self.namespace, &job, &by, &cap()],
                )
                .await?;
            Ok(rows.first().map(|row| pause_of(row, 0)))
        })
    }

    fn pause_state<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Option<PauseState>, Error>> {
        Box::pin(async move {
            let rows = self
                .rows(
                    "pause",
                    "SELECT paused_by, paused_note, paused_at, paused_ticks, paused_first,
                       paused_last FROM fourit_jobs WHERE ns = $1 AND job = $2 AND paused",
                    typed![&self.namespace, &job],
                )
                .await?;
            Ok(rows.first().map(|row| pause_of(row, 0)))
        })
    }

    fn catalog(&self) -> BoxFuture<'_, Result<Vec<CatalogEntry>, Error>> {
        Box::pin(async move {
            // Registrations follow the members (the rule book's `prune`) as it reads.
            let catalog = self.prune_catalog("catalog").await?;
            let states = self
                .rows(
                    "catalog",
                    "SELECT j.job, j.tick, j.node, j.fence, j.started, j.finished, j.outcome,
                       j.error, CASE WHEN j.lease_expires > fourit_now() THEN j.lease_run END,
                       j.paused, j.paused_by, j.paused_note, j.paused_at, j.paused_ticks,
                       j.paused_first, j.paused_last
                     FROM fourit_jobs j WHERE j.ns = $1",
                    typed![&self.namespace],
                )
                .await?;
            let mut entries: Vec<CatalogEntry> = catalog
                .iter()
                .map(|(name, registrations)| CatalogEntry {
                    name: name.clone(),
                    registrations: rules::members::answer(registrations),
                    state: JobState::default(),
                })
                .collect();
            for row in &states {
                let name: &str = row.get(0);
                let Some(entry) = entries.iter_mut().find(|entry| entry.name == name) else {
                    continue;
                };
                let running: Option<String> = row.get(8);
                let fence = unsigned(row.get(3)).filter(|fence| *fence > 0);
                entry.state = JobState {
                    high_water_ms: row.get(1),
                    last_tick_ms: running
                        .as_deref()
                        .and_then(Lease::parse_run_id)
                        .map(|(_, _, tick)| tick),
                    last_node: row.get(2),
                    last_fence: fence,
                    last_started_ms: row.get(4),
                    last_finished_ms: row.get(5),
                    last_outcome: row.get(6),
                    last_error: row.get(7),
                    running,
                    pause: row.get::<_, bool>(9).then(|| pause_of(row, 10)),
                };
            }
            Ok(entries)
        })
    }

    fn request_manual<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<ManualRequest, Error>> {
        Box::pin(async move {
            let id = format!("{:016x}", crate::coordinator::new_claim_id());
            let by = by.replace(['\t', '\n'], " ");
            let row = self
                .one(
                    "trigger",
                    "WITH now AS (
                       SELECT GREATEST(fourit_now(), (SELECT max(requested) + 1
                         FROM fourit_manual WHERE ns = $1 AND job = $2)) AS ms),
                     asked AS (
                       INSERT INTO fourit_manual (ns, job, id, record, requested)
                       SELECT $1, $2, $3, $4 || E'\\t' || ms || E'\\t' || $5 || E'\\tpending', ms
                       FROM now RETURNING requested)
                     SELECT requested FROM asked,
                       LATERAL (SELECT pg_notify('fourit_claims', $1 || E'\\tmanual ' || $2)) AS told",
                    typed![
                        &self.namespace,
                        &job,
                        &id,
                        &by,
                        &(if force { "1" } else { "0" }),
                    ],
                )
                .await?;
            Ok(ManualRequest {
                job: job.to_string(),
                id,
                by,
                requested_ms: row.get(0),
                force,
            })
        })
    }

    fn manual_state<'a>(
        &'a self,
        job: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ManualState>, Error>> {
        Box::pin(async move {
            let rows = self
                .rows(
                    "trigger",
                    "SELECT record FROM fourit_manual WHERE ns = $1 AND job = $2 AND id = $3",
                    typed![&self.namespace, &job, &id],
                )
                .await?;
            Ok(rows
                .first()
                .and_then(|row| ManualRequest::parse(job, id, row.get(0)).map(|(_, state)| state)))
        })
    }

    fn remove<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.rows(
                "remove",
                "SELECT fourit_remove($1, $2)",
                typed![&self.namespace, &job],
            )
            .await?;
            Ok(())
        })
    }
}

/// A history entry from a row whose columns, from `first` on, are `tick, node, outcome,
/// detail, fence, duration_ms, delay_ms`.
fn entry_of(row: &tokio_postgres::Row, first: usize) -> HistoryEntry {
    HistoryEntry {
        tick_ms: row.get(first),
        node: row.get(first + 1),
        outcome: row.get(first + 2),
        detail: row.get(first + 3),
        fence: unsigned(row.get(first + 4)),
        duration_ms: unsigned(row.get(first + 5)),
        delay_ms: unsigned(row.get(first + 6)),
    }
}
