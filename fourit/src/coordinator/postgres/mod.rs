//! The Postgres coordinator (`postgres://`, `postgresql://`, the `postgres` feature). Every
//! operation is one statement, most of them a call of a function of `schema.sql` (created and
//! migrated at connect), so each is atomic on the server, a batch of claims is one statement
//! (one round trip, one commit), and nothing depends on a session (no advisory lock, no temporary table):
//! it works behind a transaction-pooling proxy. Decided ticks are announced with `NOTIFY`
//! (delivered on commit) and heard on a dedicated `LISTEN` connection that reconnects by
//! itself. The server's clock (`clock_timestamp()`) is the fleet's.
//!
//! This file holds the coordinator's state; connecting, the pool, the calls, the claims and
//! releases, the seam's methods, the manual runs, the catalog and the read side each have a
//! file of their own.

use std::time::Duration;

use tokio_postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::DropGuard;

use self::pool::Slot;
use super::{HISTORY_LEN, MissedNotice, NoticeSender};

#[macro_use]
mod params;
mod admin;
mod calls;
mod catalog;
mod claims;
mod connect;
mod errors;
mod listen;
mod manual;
mod options;
mod pool;
mod seam;

/// Every call's deadline.
const DEADLINE: Duration = Duration::from_secs(5);

/// How long a call may wait for a connection opened again (after one closed or was
/// retired): short, because while a link is silently dropped every attempt waits it out,
/// and once the link heals the attempts already waiting must not hold the member back.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(2);

/// The channel decided ticks and manual requests are announced on; payload `ns<TAB><tick>
/// <job>` or `ns<TAB>manual <job>`.
const CHANNEL: &str = "fourit_claims";

/// A coordinator on a Postgres database.
pub struct PostgresCoordinator {
    config: Config,
    connector: MakeRustlsConnect,
    /// The connections the calls use: the first opened at connect, the others only when
    /// calls overlap (a batch of claims sent as several statements at once runs on several
    /// sessions, in parallel on the server, each waiting for its own commit).
    pool: Vec<Slot>,
    namespace: String,
    url: String,
    notices: NoticeSender,
    missed: tokio::sync::broadcast::Sender<MissedNotice>,
    _listener: DropGuard,
}

impl std::fmt::Debug for PostgresCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCoordinator")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// How many history entries a job keeps, as the schema's functions take it.
fn cap() -> i32 {
    i32::try_from(HISTORY_LEN).unwrap_or(i32::MAX)
}
