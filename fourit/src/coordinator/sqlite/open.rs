//! Opening a SQLite file: its URL, the schema and its migration at connect (under the
//! file's write lock, so processes starting together take turns), errors as fourit's kinds.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::super::{NOTICE_BUFFER, NoticeSender};
use super::SqliteCoordinator;
use crate::clock::SystemClock;
use crate::error::{CoordinatorError, Error, ErrorKind};

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

pub(super) fn error(operation: &'static str, err: rusqlite::Error) -> Error {
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
            missed: tokio::sync::broadcast::channel(NOTICE_BUFFER).0,
            notices: NoticeSender::new(),
            clock: Arc::new(SystemClock),
        })
    }
}
