//! The SQLite coordinator (`sqlite://path`, the `sqlite` feature): one file on one host, shared
//! by any number of processes there, and kept across restarts. Every call is one transaction
//! (`BEGIN IMMEDIATE` for what writes: SQLite's write lock, so the processes on the file take
//! turns; a deferred one for what only reads, which waits for no writer), in WAL mode with a
//! busy timeout; the protocol is the Redis scripts', with the host's clock as the
//! coordinator's.
//!
//! Tables (all keyed by namespace, created and migrated at connect, `PRAGMA user_version`):
//! `fourit_jobs` (the job's high-water mark, fence, latest run and pause), `fourit_leases`
//! (run id and expiry per job, and per run for `overlap = "allow"` and forced manual runs),
//! `fourit_history` (the last [`HISTORY_LEN`] entries per job), `fourit_members`,
//! `fourit_defs` (the catalog) and `fourit_manual` (manual run requests).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::sql::{millis, slot, unsigned};
use super::{
    Admin, CatalogEntry, ClaimNotice, ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator,
    FUTURE_TICK_TOLERANCE, HISTORY_LEN, Heartbeat, HistoryEntry, JobDefinition, JobState, Lease,
    ManualOutcome, ManualRequest, ManualState, Member, MissedNotice, MissedTicks, NoticeSender,
    PauseState, Registrations, RunRecord,
};
use crate::clock::{Clock, SystemClock};
use crate::error::{CoordinatorError, Error, ErrorKind};
use crate::job::{BoxFuture, FenceToken, Overlap};

/// How long a call waits for another process's transaction on the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema's version (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS fourit_jobs (
  ns TEXT NOT NULL, job TEXT NOT NULL,
  tick INTEGER, fence INTEGER NOT NULL DEFAULT 0, node TEXT, claim TEXT,
  started INTEGER, finished INTEGER, outcome TEXT, error TEXT, released TEXT,
  paused INTEGER NOT NULL DEFAULT 0, paused_by TEXT, paused_note TEXT, paused_at INTEGER,
  paused_ticks INTEGER NOT NULL DEFAULT 0, paused_first INTEGER, paused_last INTEGER,
  PRIMARY KEY (ns, job)
);
CREATE TABLE IF NOT EXISTS fourit_leases (
  ns TEXT NOT NULL, job TEXT NOT NULL, slot TEXT NOT NULL,
  run_id TEXT NOT NULL, expires INTEGER NOT NULL,
  PRIMARY KEY (ns, job, slot)
);
CREATE TABLE IF NOT EXISTS fourit_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT, ns TEXT NOT NULL, job TEXT NOT NULL,
  tick INTEGER NOT NULL, node TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT,
  fence INTEGER, duration_ms INTEGER, delay_ms INTEGER
);
CREATE INDEX IF NOT EXISTS fourit_history_job ON fourit_history (ns, job, id);
CREATE TABLE IF NOT EXISTS fourit_members (
  ns TEXT NOT NULL, node TEXT NOT NULL, heartbeat INTEGER NOT NULL, clock_offset INTEGER,
  PRIMARY KEY (ns, node)
);
CREATE TABLE IF NOT EXISTS fourit_defs (
  ns TEXT NOT NULL, job TEXT NOT NULL, node TEXT NOT NULL, line TEXT NOT NULL,
  PRIMARY KEY (ns, job, node)
);
CREATE TABLE IF NOT EXISTS fourit_manual (
  ns TEXT NOT NULL, job TEXT NOT NULL, id TEXT NOT NULL, record TEXT NOT NULL,
  requested INTEGER NOT NULL,
  PRIMARY KEY (ns, job, id)
);
";

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
    /// The coordinator's clock: the host's, or a test's ([`SqliteCoordinator::with_clock`]).
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

/// The file a `sqlite://` URL names: `sqlite://fourit.db` (relative to the working
/// directory), `sqlite:///var/lib/app/fourit.db` (absolute).
fn path_of(url: &str) -> Result<PathBuf, Error> {
    let path = url
        .strip_prefix("sqlite://")
        .map(|rest| rest.split(['?', '#']).next().unwrap_or(rest))
        .filter(|path| !path.is_empty());
    path.map(PathBuf::from).ok_or_else(|| Error::InvalidUrl {
        url: url.to_string(),
        reason: "a SQLite URL names a file: sqlite://fourit.db or sqlite:///var/lib/app/fourit.db"
            .to_string(),
    })
}

fn error(operation: &'static str, err: rusqlite::Error) -> Error {
    let kind = match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            ErrorKind::Timeout
        }
        Some(
            rusqlite::ErrorCode::CannotOpen
            | rusqlite::ErrorCode::SystemIoFailure
            | rusqlite::ErrorCode::DiskFull,
        ) => ErrorKind::Unavailable,
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::PermissionDenied) => {
            ErrorKind::Permission
        }
        _ => ErrorKind::Protocol,
    };
    Error::Coordinator(CoordinatorError::new(
        "SQLite",
        operation,
        kind,
        err.to_string(),
    ))
}

/// The coordinator's time (UTC ms) by `clock`.
fn now_ms(clock: &dyn Clock) -> i64 {
    clock.now().timestamp_millis()
}

/// A job's row, as the claim and release read and write it.
#[derive(Debug, Default)]
struct Row {
    tick: Option<i64>,
    fence: u64,
    node: Option<String>,
    claim: Option<String>,
    started: Option<i64>,
    finished: Option<i64>,
    outcome: Option<String>,
    error: Option<String>,
    released: Option<String>,
    pause: Option<PauseState>,
}

struct Tx<'a> {
    tx: Transaction<'a>,
    ns: &'a str,
}

impl Tx<'_> {
    fn load(&self, job: &str) -> rusqlite::Result<Row> {
        self.tx
            .query_row(
                "SELECT tick, fence, node, claim, started, finished, outcome, error, released,
                        paused, paused_by, paused_note, paused_at, paused_ticks, paused_first,
                        paused_last
                 FROM fourit_jobs WHERE ns = ?1 AND job = ?2",
                params![self.ns, job],
                |r| {
                    let paused: i64 = r.get(9)?;
                    Ok(Row {
                        tick: r.get(0)?,
                        fence: r.get::<_, i64>(1)?.max(0).unsigned_abs(),
                        node: r.get(2)?,
                        claim: r.get(3)?,
                        started: r.get(4)?,
                        finished: r.get(5)?,
                        outcome: r.get(6)?,
                        error: r.get(7)?,
                        released: r.get(8)?,
                        pause: if paused == 1 {
                            Some(PauseState {
                                by: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
                                note: r.get::<_, Option<String>>(11)?.filter(|n| !n.is_empty()),
                                since_ms: r.get::<_, Option<i64>>(12)?.unwrap_or_default(),
                                ticks: r.get::<_, i64>(13)?.max(0).unsigned_abs(),
                                first_tick_ms: r.get(14)?,
                                last_tick_ms: r.get(15)?,
                            })
                        } else {
                            None
                        },
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
    }

    fn save(&self, job: &str, row: &Row) -> rusqlite::Result<()> {
        let pause = row.pause.as_ref();
        self.tx.execute(
            "INSERT OR REPLACE INTO fourit_jobs (ns, job, tick, fence, node, claim, started,
               finished, outcome, error, released, paused, paused_by, paused_note, paused_at,
               paused_ticks, paused_first, paused_last)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
               ?18)",
            params![
                self.ns,
                job,
                row.tick,
                i64::try_from(row.fence).unwrap_or(i64::MAX),
                row.node,
                row.claim,
                row.started,
                row.finished,
                row.outcome,
                row.error,
                row.released,
                i64::from(pause.is_some()),
                pause.map(|p| p.by.clone()),
                pause.and_then(|p| p.note.clone()),
                pause.map(|p| p.since_ms),
                pause.map_or(0, |p| i64::try_from(p.ticks).unwrap_or(i64::MAX)),
                pause.and_then(|p| p.first_tick_ms),
                pause.and_then(|p| p.last_tick_ms),
            ],
        )?;
        Ok(())
    }

    /// The live holder of a lease slot (an expired one is dropped).
    fn holder(&self, job: &str, slot: &str, now: i64) -> rusqlite::Result<Option<String>> {
        self.tx.execute(
            "DELETE FROM fourit_leases WHERE ns = ?1 AND job = ?2 AND slot = ?3 AND expires <= ?4",
            params![self.ns, job, slot, now],
        )?;
        self.live_holder(job, slot, now)
    }

    /// The live holder of a lease slot, read only.
    fn live_holder(&self, job: &str, slot: &str, now: i64) -> rusqlite::Result<Option<String>> {
        self.tx
            .query_row(
                "SELECT run_id FROM fourit_leases
                 WHERE ns = ?1 AND job = ?2 AND slot = ?3 AND expires > ?4",
                params![self.ns, job, slot, now],
                |r| r.get(0),
            )
            .optional()
    }

    fn set_lease(&self, job: &str, slot: &str, run_id: &str, expires: i64) -> rusqlite::Result<()> {
        self.tx.execute(
            "INSERT OR REPLACE INTO fourit_leases (ns, job, slot, run_id, expires)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![self.ns, job, slot, run_id, expires],
        )?;
        Ok(())
    }

    fn drop_lease(&self, job: &str, slot: &str) -> rusqlite::Result<()> {
        self.tx.execute(
            "DELETE FROM fourit_leases WHERE ns = ?1 AND job = ?2 AND slot = ?3",
            params![self.ns, job, slot],
        )?;
        Ok(())
    }

    /// Appends to the job's history, keeping the last [`HISTORY_LEN`] entries.
    fn record(&self, job: &str, entry: &HistoryEntry) -> rusqlite::Result<()> {
        let number = |value: Option<u64>| value.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        self.tx.execute(
            "INSERT INTO fourit_history (ns, job, tick, node, outcome, detail, fence,
               duration_ms, delay_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                self.ns,
                job,
                entry.tick_ms,
                entry.node,
                entry.outcome,
                entry.detail,
                number(entry.fence),
                number(entry.duration_ms),
                number(entry.delay_ms),
            ],
        )?;
        self.tx.execute(
            "DELETE FROM fourit_history WHERE ns = ?1 AND job = ?2 AND id <= (
               SELECT id FROM fourit_history WHERE ns = ?1 AND job = ?2
               ORDER BY id DESC LIMIT 1 OFFSET ?3)",
            params![self.ns, job, i64::try_from(HISTORY_LEN).unwrap_or(i64::MAX)],
        )?;
        Ok(())
    }
}

/// A history entry of a skipped or decided tick (no run).
fn entry(tick_ms: i64, node: &str, outcome: &str, detail: Option<String>) -> HistoryEntry {
    HistoryEntry {
        tick_ms,
        node: node.to_string(),
        outcome: outcome.to_string(),
        detail,
        fence: None,
        duration_ms: None,
        delay_ms: None,
    }
}

impl SqliteCoordinator {
    /// Opens (creating if need be) the file `url` names and its tables for `namespace`.
    pub async fn connect(url: &str, namespace: &str) -> Result<SqliteCoordinator, Error> {
        let path = path_of(url)?;
        let shown = url.to_string();
        let connection = tokio::task::spawn_blocking(move || -> Result<Connection, Error> {
            let mut conn = Connection::open(&path).map_err(|e| error("connect", e))?;
            conn.busy_timeout(BUSY_TIMEOUT)
                .map_err(|e| error("connect", e))?;
            // WAL: readers do not wait for the writer; NORMAL is durable across a process
            // crash (a power loss may lose the last transactions).
            let _: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| error("connect", e))?;
            conn.execute_batch("PRAGMA synchronous = NORMAL")
                .map_err(|e| error("connect", e))?;
            // Migrations under the write lock: processes starting together take turns.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| error("migrate", e))?;
            let version: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|e| error("migrate", e))?;
            if version > SCHEMA_VERSION {
                return Err(Error::Coordinator(CoordinatorError::new(
                    "SQLite",
                    "migrate",
                    ErrorKind::Protocol,
                    format!(
                        "the file's schema is version {version}, newer than this fourit's \
                         {SCHEMA_VERSION}: upgrade fourit"
                    ),
                )));
            }
            if version < SCHEMA_VERSION {
                tx.execute_batch(SCHEMA).map_err(|e| error("migrate", e))?;
                tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                    .map_err(|e| error("migrate", e))?;
            }
            tx.commit().map_err(|e| error("migrate", e))?;
            Ok(conn)
        })
        .await
        .map_err(|e| {
            Error::Coordinator(CoordinatorError::new(
                "SQLite",
                "connect",
                ErrorKind::Unavailable,
                e.to_string(),
            ))
        })??;
        Ok(SqliteCoordinator {
            connection: Arc::new(Mutex::new(connection)),
            namespace: Arc::from(namespace),
            url: shown,
            missed: tokio::sync::broadcast::channel(super::NOTICE_BUFFER).0,
            notices: NoticeSender::new(),
            clock: Arc::new(SystemClock),
        })
    }

    /// This coordinator with `clock` as its clock (leases, the handoff, member timestamps,
    /// the server time), for tests that drive time.
    #[doc(hidden)]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction (the file's write lock), on a
    /// blocking thread; commits if it answers `Ok`.
    async fn write<T: Send + 'static>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&Tx<'_>) -> rusqlite::Result<T> + Send + 'static,
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
        work: impl FnOnce(&Tx<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        self.run(operation, TransactionBehavior::Deferred, work)
            .await
    }

    async fn run<T: Send + 'static>(
        &self,
        operation: &'static str,
        behavior: TransactionBehavior,
        work: impl FnOnce(&Tx<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let connection = self.connection.clone();
        let ns = self.namespace.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let tx = conn
                .transaction_with_behavior(behavior)
                .map_err(|e| error(operation, e))?;
            let tx = Tx { tx, ns: &ns };
            let answer = work(&tx).map_err(|e| error(operation, e))?;
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

    fn claim_one(tx: &Tx<'_>, request: &ClaimRequest, now: i64) -> rusqlite::Result<ClaimOutcome> {
        let job = &*request.job;
        let mut row = tx.load(job)?;
        let claim_id = request.claim_id.to_string();
        if row.tick.is_some_and(|mark| mark >= request.tick_ms) {
            // This very claim sent again after its answer was lost: the same run.
            if row.tick == Some(request.tick_ms)
                && row.claim.as_deref() == Some(claim_id.as_str())
                && row.fence > 0
            {
                let again = Lease {
                    job: request.job.clone(),
                    tick_ms: request.tick_ms,
                    fence: FenceToken(row.fence),
                    node: request.node.clone(),
                    overlap: request.overlap,
                };
                let slot = slot(request.overlap, request.tick_ms);
                let run_id = again.run_id();
                match tx.holder(job, &slot, now)? {
                    Some(holder) if holder == run_id => return Ok(ClaimOutcome::Resumed(again)),
                    None => {
                        tx.set_lease(job, &slot, &run_id, now + millis(request.lease_ttl))?;
                        return Ok(ClaimOutcome::Resumed(again));
                    }
                    Some(_) => {}
                }
            }
            return Ok(ClaimOutcome::Taken);
        }
        if request.tick_ms > now.saturating_add(millis(FUTURE_TICK_TOLERANCE)) {
            return Ok(ClaimOutcome::Early { now_ms: now });
        }
        if let Some(preferred) = &request.preferred
            && *preferred != request.node
        {
            let open_at = request.tick_ms.saturating_add(millis(request.handoff));
            if now < open_at {
                return Ok(ClaimOutcome::Retry {
                    at_ms: open_at,
                    now_ms: now,
                });
            }
        }
        row.tick = Some(request.tick_ms);
        if let Some(pause) = &mut row.pause {
            pause.ticks += 1;
            pause.last_tick_ms = Some(request.tick_ms);
            if pause.ticks == 1 {
                pause.first_tick_ms = Some(request.tick_ms);
                let detail = match &pause.note {
                    Some(note) => format!("paused by {}: {note}", pause.by),
                    None => format!("paused by {}", pause.by),
                };
                tx.record(
                    job,
                    &entry(request.tick_ms, &request.node, "paused", Some(detail)),
                )?;
            }
            tx.save(job, &row)?;
            return Ok(ClaimOutcome::Paused);
        }
        let fence = row.fence + 1;
        let lease = Lease {
            job: request.job.clone(),
            tick_ms: request.tick_ms,
            fence: FenceToken(fence),
            node: request.node.clone(),
            overlap: request.overlap,
        };
        let slot = slot(request.overlap, request.tick_ms);
        if request.overlap == Overlap::Skip
            && let Some(holder) = tx.holder(job, &slot, now)?
        {
            tx.record(
                job,
                &entry(
                    request.tick_ms,
                    &request.node,
                    "overlap",
                    Some(holder.clone()),
                ),
            )?;
            tx.save(job, &row)?;
            return Ok(ClaimOutcome::Overlap { holder });
        }
        tx.set_lease(job, &slot, &lease.run_id(), now + millis(request.lease_ttl))?;
        row.fence = fence;
        row.node = Some(request.node.to_string());
        row.claim = Some(claim_id);
        row.started = Some(now);
        row.finished = None;
        row.outcome = Some("running".to_string());
        row.error = None;
        tx.save(job, &row)?;
        Ok(ClaimOutcome::Run(lease))
    }
}

impl Coordinator for SqliteCoordinator {
    fn claim<'a>(
        &'a self,
        requests: &'a [ClaimRequest],
    ) -> BoxFuture<'a, Result<Vec<ClaimOutcome>, Error>> {
        let clock = self.clock.clone();
        Box::pin(async move {
            let batch = requests.to_vec();
            let (outcomes, missed) = self
                .write("claim", move |tx| {
                    let now = now_ms(&*clock);
                    let mut outcomes = Vec::with_capacity(batch.len());
                    let mut missed = Vec::new();
                    for request in &batch {
                        let mark = tx.load(&request.job)?.tick;
                        let outcome = SqliteCoordinator::claim_one(tx, request, now)?;
                        // The claim that moved the mark over scheduled ticks nobody decided
                        // records them as missed.
                        let decided = matches!(
                            outcome,
                            ClaimOutcome::Run(_)
                                | ClaimOutcome::Overlap { .. }
                                | ClaimOutcome::Paused
                        );
                        if decided
                            && let (Some(mark), Some(schedule)) = (mark, &request.schedule)
                            && let Some(ticks) =
                                MissedTicks::between(schedule, mark, request.tick_ms)
                        {
                            tx.record(
                                &request.job,
                                &entry(
                                    ticks.last_ms,
                                    &request.node,
                                    "missed",
                                    Some(ticks.detail()),
                                ),
                            )?;
                            missed.push(MissedNotice::new(request, &ticks));
                        }
                        outcomes.push(outcome);
                    }
                    Ok((outcomes, missed))
                })
                .await?;
            for (request, outcome) in requests.iter().zip(&outcomes) {
                // As in Redis: only a claim others may be waiting out the handoff for.
                if request.preferred.is_some()
                    && matches!(
                        outcome,
                        ClaimOutcome::Run(_) | ClaimOutcome::Overlap { .. } | ClaimOutcome::Paused
                    )
                {
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
        let clock = self.clock.clone();
        Box::pin(self.write("keep_alive", move |tx| {
            let now = now_ms(&*clock);
            let slot = slot(lease.overlap, lease.tick_ms);
            let run_id = lease.run_id();
            if tx.holder(&lease.job, &slot, now)?.as_deref() != Some(run_id.as_str()) {
                return Ok(false);
            }
            tx.set_lease(&lease.job, &slot, &run_id, now + millis(ttl))?;
            Ok(true)
        }))
    }

    fn release<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let (lease, record) = (lease.clone(), record.clone());
        let clock = self.clock.clone();
        Box::pin(self.write("release", move |tx| {
            let now = now_ms(&*clock);
            let job = &*lease.job;
            let slot = slot(lease.overlap, lease.tick_ms);
            let run_id = lease.run_id();
            let mut row = tx.load(job)?;
            let holder = tx.holder(job, &slot, now)?;
            let held = holder.as_deref() == Some(run_id.as_str());
            if !held && row.released.as_deref() == Some(run_id.as_str()) {
                // This very release sent again: already done and recorded.
                return Ok(true);
            }
            if held {
                tx.drop_lease(job, &slot)?;
            }
            if row.fence == lease.fence.get() {
                row.claim = None;
                row.released = Some(run_id);
                row.finished = Some(now);
                row.outcome = Some(record.outcome.as_str().to_string());
                row.error = record.outcome.error().map(str::to_string);
                tx.save(job, &row)?;
            }
            tx.record(
                job,
                &HistoryEntry {
                    tick_ms: lease.tick_ms,
                    node: lease.node.to_string(),
                    outcome: record.outcome.as_str().to_string(),
                    detail: record.outcome.error().map(str::to_string),
                    fence: Some(lease.fence.get()),
                    duration_ms: Some(
                        u64::try_from(record.duration.as_millis()).unwrap_or(u64::MAX),
                    ),
                    delay_ms: Some(record.delay_ms(lease.tick_ms)),
                },
            )?;
            Ok(held)
        }))
    }

    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        stale_after: Duration,
        clock_offset_us: Option<i64>,
    ) -> BoxFuture<'a, Result<Heartbeat, Error>> {
        let node = node.to_string();
        let clock = self.clock.clone();
        Box::pin(self.write("heartbeat", move |tx| {
            let now = clock.now();
            let now_ms = now.timestamp_millis();
            tx.tx.execute(
                "INSERT INTO fourit_members (ns, node, heartbeat, clock_offset)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (ns, node) DO UPDATE SET heartbeat = excluded.heartbeat,
                   clock_offset = COALESCE(excluded.clock_offset, clock_offset)",
                params![tx.ns, node, now_ms, clock_offset_us],
            )?;
            let mut evicted = Vec::new();
            {
                let mut statement = tx.tx.prepare(
                    "DELETE FROM fourit_members WHERE ns = ?1 AND heartbeat < ?2 RETURNING node",
                )?;
                let rows = statement.query_map(
                    params![tx.ns, now_ms.saturating_sub(millis(stale_after))],
                    |r| r.get::<_, String>(0),
                )?;
                for row in rows {
                    evicted.push(row?);
                }
            }
            evicted.sort();
            let mut members = Vec::new();
            {
                let mut statement = tx
                    .tx
                    .prepare("SELECT node FROM fourit_members WHERE ns = ?1 ORDER BY node")?;
                let rows = statement.query_map(params![tx.ns], |r| r.get::<_, String>(0))?;
                for row in rows {
                    members.push(row?);
                }
            }
            let manual_pending: bool = tx.tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM fourit_manual WHERE ns = ?1
                   AND record LIKE '%' || char(9) || 'pending')",
                params![tx.ns],
                |r| r.get(0),
            )?;
            Ok(Heartbeat {
                server_us: Some(now.timestamp_micros()),
                members,
                manual_pending,
                evicted,
            })
        }))
    }

    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>> {
        // The host's clock is the file's: every process on it reads the same one.
        let now = self.clock.now();
        Box::pin(async move { Ok(Some(now.timestamp_micros())) })
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let node = node.to_string();
        Box::pin(self.write("leave", move |tx| {
            tx.tx.execute(
                "DELETE FROM fourit_members WHERE ns = ?1 AND node = ?2",
                params![tx.ns, node],
            )?;
            Ok(())
        }))
    }

    fn manual_requests(&self) -> BoxFuture<'_, Result<Vec<ManualRequest>, Error>> {
        Box::pin(self.read("manual requests", move |tx| {
            let mut statement = tx.tx.prepare(
                "SELECT job, id, record FROM fourit_manual WHERE ns = ?1 ORDER BY requested",
            )?;
            let rows = statement.query_map(params![tx.ns], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut pending = Vec::new();
            for row in rows {
                let (job, id, text) = row?;
                if let Some((request, ManualState::Pending)) =
                    ManualRequest::parse(&job, &id, &text)
                {
                    pending.push(request);
                }
            }
            Ok(pending)
        }))
    }

    fn claim_manual<'a>(
        &'a self,
        request: &'a ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: Overlap,
    ) -> BoxFuture<'a, Result<ManualOutcome, Error>> {
        let (request, node) = (request.clone(), node.to_string());
        let clock = self.clock.clone();
        Box::pin(self.write("manual run", move |tx| {
            let now = now_ms(&*clock);
            let job = request.job.as_str();
            let text: Option<String> = tx
                .tx
                .query_row(
                    "SELECT record FROM fourit_manual WHERE ns = ?1 AND job = ?2 AND id = ?3",
                    params![tx.ns, job, request.id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some((stored, ManualState::Pending)) =
                text.and_then(|text| ManualRequest::parse(job, &request.id, &text))
            else {
                return Ok(ManualOutcome::Taken);
            };
            let base = format!(
                "{}\t{}\t{}\t",
                stored.by,
                stored.requested_ms,
                if stored.force { "1" } else { "0" }
            );
            let update = |record: String| {
                tx.tx.execute(
                    "UPDATE fourit_manual SET record = ?4 WHERE ns = ?1 AND job = ?2 AND id = ?3",
                    params![tx.ns, job, request.id, record],
                )
            };
            let own = overlap == Overlap::Allow || stored.force;
            if !own && let Some(holder) = tx.holder(job, "", now)? {
                tx.record(
                    job,
                    &entry(
                        stored.requested_ms,
                        &node,
                        "overlap",
                        Some(format!(
                            "manual run asked by {} skipped: {holder}",
                            stored.by
                        )),
                    ),
                )?;
                update(format!("{base}skipped\t{holder}"))?;
                return Ok(ManualOutcome::Overlap { holder });
            }
            let mut row = tx.load(job)?;
            row.fence += 1;
            let lease = Lease {
                job: Arc::from(job),
                tick_ms: stored.requested_ms,
                fence: FenceToken(row.fence),
                node: Arc::from(node.as_str()),
                overlap: if own { Overlap::Allow } else { Overlap::Skip },
            };
            tx.set_lease(
                job,
                &slot(lease.overlap, lease.tick_ms),
                &lease.run_id(),
                now + millis(lease_ttl),
            )?;
            row.node = Some(node.clone());
            row.started = Some(now);
            row.finished = None;
            row.outcome = Some("running".to_string());
            row.error = None;
            tx.save(job, &row)?;
            let mut record = entry(
                stored.requested_ms,
                &node,
                "manual",
                Some(format!("asked by {}", stored.by)),
            );
            record.fence = Some(row.fence);
            tx.record(job, &record)?;
            update(format!("{base}started\t{node}\t{}", row.fence))?;
            Ok(ManualOutcome::Run(lease))
        }))
    }

    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<Registrations>, Error>> {
        let (node, jobs) = (node.to_string(), jobs.to_vec());
        Box::pin(self.write("register", move |tx| {
            let mut answers = Vec::with_capacity(jobs.len());
            for job in &jobs {
                tx.tx.execute(
                    "INSERT OR REPLACE INTO fourit_defs (ns, job, node, line)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![tx.ns, job.name, node, job.to_line()],
                )?;
                answers.push(registrations(tx, &job.name)?);
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

/// Every member's definition of `job`, by node.
fn registrations(tx: &Tx<'_>, job: &str) -> rusqlite::Result<Registrations> {
    let mut statement = tx
        .tx
        .prepare("SELECT node, line FROM fourit_defs WHERE ns = ?1 AND job = ?2 ORDER BY node")?;
    let rows = statement.query_map(params![tx.ns, job], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (node, line) = row?;
        if let Some(definition) = JobDefinition::from_line(job, &line) {
            out.push((node, definition));
        }
    }
    Ok(out)
}

impl Admin for SqliteCoordinator {
    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>, Error>> {
        Box::pin(self.read("members", move |tx| {
            let mut statement = tx.tx.prepare(
                "SELECT node, heartbeat, clock_offset FROM fourit_members WHERE ns = ?1
                 ORDER BY heartbeat, node",
            )?;
            let rows = statement.query_map(params![tx.ns], |r| {
                Ok(Member {
                    node: r.get(0)?,
                    heartbeat_ms: r.get(1)?,
                    clock_offset_us: r.get(2)?,
                })
            })?;
            rows.collect()
        }))
    }

    fn history<'a>(
        &'a self,
        job: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<HistoryEntry>, Error>> {
        let job = job.to_string();
        Box::pin(self.read("history", move |tx| {
            let mut statement = tx.tx.prepare(
                "SELECT tick, node, outcome, detail, fence, duration_ms, delay_ms
                 FROM fourit_history WHERE ns = ?1 AND job = ?2 ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = statement.query_map(
                params![tx.ns, job, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    Ok(HistoryEntry {
                        tick_ms: r.get(0)?,
                        node: r.get(1)?,
                        outcome: r.get(2)?,
                        detail: r.get(3)?,
                        fence: unsigned(r.get(4)?),
                        duration_ms: unsigned(r.get(5)?),
                        delay_ms: unsigned(r.get(6)?),
                    })
                },
            )?;
            rows.collect()
        }))
    }

    fn pause<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        note: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let (job, by) = (job.to_string(), by.to_string());
        let note = note.filter(|n| !n.is_empty()).map(str::to_string);
        let clock = self.clock.clone();
        Box::pin(self.write("pause", move |tx| {
            let mut row = tx.load(&job)?;
            let kept = row.pause.take();
            row.pause = Some(PauseState {
                by,
                note,
                since_ms: now_ms(&*clock),
                ticks: kept.as_ref().map_or(0, |pause| pause.ticks),
                first_tick_ms: kept.as_ref().and_then(|pause| pause.first_tick_ms),
                last_tick_ms: kept.as_ref().and_then(|pause| pause.last_tick_ms),
            });
            tx.save(&job, &row)
        }))
    }

    fn resume<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
    ) -> BoxFuture<'a, Result<Option<PauseState>, Error>> {
        let (job, by) = (job.to_string(), by.to_string());
        Box::pin(self.write("resume", move |tx| {
            let mut row = tx.load(&job)?;
            let Some(pause) = row.pause.take() else {
                return Ok(None);
            };
            tx.save(&job, &row)?;
            if let (Some(first), Some(last)) = (pause.first_tick_ms, pause.last_tick_ms) {
                tx.record(
                    &job,
                    &entry(
                        last,
                        &by,
                        "resumed",
                        Some(format!(
                            "{} ticks paused, {first} to {last} (ms); paused by {}, resumed by {by}",
                            pause.ticks, pause.by
                        )),
                    ),
                )?;
            }
            Ok(Some(pause))
        }))
    }

    fn pause_state<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Option<PauseState>, Error>> {
        let job = job.to_string();
        Box::pin(self.read("pause", move |tx| Ok(tx.load(&job)?.pause)))
    }

    fn catalog(&self) -> BoxFuture<'_, Result<Vec<CatalogEntry>, Error>> {
        let clock = self.clock.clone();
        Box::pin(self.read("catalog", move |tx| {
            let now = now_ms(&*clock);
            let names: Vec<String> = {
                let mut statement = tx
                    .tx
                    .prepare("SELECT DISTINCT job FROM fourit_defs WHERE ns = ?1 ORDER BY job")?;
                let rows = statement.query_map(params![tx.ns], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut entries = Vec::with_capacity(names.len());
            for name in names {
                let row = tx.load(&name)?;
                let running = tx.live_holder(&name, "", now)?;
                let state = JobState {
                    high_water_ms: row.tick,
                    last_tick_ms: running
                        .as_deref()
                        .and_then(Lease::parse_run_id)
                        .map(|(_, _, tick)| tick),
                    last_node: row.node,
                    last_fence: (row.fence > 0).then_some(row.fence),
                    last_started_ms: row.started,
                    last_finished_ms: row.finished,
                    last_outcome: row.outcome,
                    last_error: row.error,
                    running,
                    pause: row.pause,
                };
                entries.push(CatalogEntry {
                    registrations: registrations(tx, &name)?,
                    name,
                    state,
                });
            }
            Ok(entries)
        }))
    }

    fn request_manual<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<ManualRequest, Error>> {
        let request = ManualRequest {
            job: job.to_string(),
            id: format!("{:016x}", super::new_claim_id()),
            by: by.replace(['\t', '\n'], " "),
            requested_ms: now_ms(&*self.clock),
            force,
        };
        let notices = self.notices.clone();
        Box::pin(async move {
            let request = self
                .write("trigger", move |tx| {
                    tx.tx.execute(
                        "INSERT INTO fourit_manual (ns, job, id, record, requested)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            tx.ns,
                            request.job,
                            request.id,
                            request.record(),
                            request.requested_ms
                        ],
                    )?;
                    Ok(request)
                })
                .await?;
            // Wakes the members of this process now; the others see it at their heartbeat.
            notices.send(ClaimNotice {
                job: Arc::from(request.job.as_str()),
                tick_ms: request.requested_ms,
                manual: true,
            });
            Ok(request)
        })
    }

    fn manual_state<'a>(
        &'a self,
        job: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ManualState>, Error>> {
        let (job, id) = (job.to_string(), id.to_string());
        Box::pin(self.read("trigger", move |tx| {
            let text: Option<String> = tx
                .tx
                .query_row(
                    "SELECT record FROM fourit_manual WHERE ns = ?1 AND job = ?2 AND id = ?3",
                    params![tx.ns, job, id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(text
                .and_then(|text| ManualRequest::parse(&job, &id, &text))
                .map(|(_, state)| state))
        }))
    }

    fn remove<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let job = job.to_string();
        Box::pin(self.write("remove", move |tx| {
            for table in [
                "fourit_jobs",
                "fourit_leases",
                "fourit_history",
                "fourit_defs",
                "fourit_manual",
            ] {
                tx.tx.execute(
                    &format!("DELETE FROM {table} WHERE ns = ?1 AND job = ?2"),
                    params![tx.ns, job],
                )?;
            }
            Ok(())
        }))
    }
}
