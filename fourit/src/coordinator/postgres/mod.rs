//! The Postgres coordinator (`postgres://`, `postgresql://`, the `postgres` feature). Every
//! operation is one statement, most of them a call of a function of `schema.sql` (created and
//! migrated at connect), so each is atomic on the server, a batch of claims is one statement
//! (one round trip, one commit), and nothing depends on a session (no advisory lock, no temporary table):
//! it works behind a transaction-pooling proxy. Decided ticks are announced with `NOTIFY`
//! (delivered on commit) and heard on a dedicated `LISTEN` connection that reconnects by
//! itself. The server's clock (`clock_timestamp()`) is the fleet's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, Row};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::debug;

use super::sql::{millis, slot, unsigned};
use super::{
    Admin, CatalogEntry, ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator,
    FUTURE_TICK_TOLERANCE, HISTORY_LEN, Heartbeat, HistoryEntry, JobDefinition, JobState, Lease,
    ManualOutcome, ManualRequest, ManualState, Member, MissedNotice, MissedTicks, NoticeSender,
    PauseState, Registrations, RunRecord, redact_url,
};
use crate::error::{CoordinatorError, Error, ErrorKind};
use crate::job::{BoxFuture, FenceToken, Overlap};

mod listen;
mod options;

use self::listen::listen;

/// The schema's version, in `fourit_meta`.
const SCHEMA_VERSION: i32 = 6;

/// Every call's deadline.
const DEADLINE: Duration = Duration::from_secs(5);

/// How long a call may wait for a connection opened again (after one closed or was
/// retired): short, because while a link is silently dropped every attempt waits it out,
/// and once the link heals the attempts already waiting must not hold the member back.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(2);

const SCHEMA: &str = include_str!("schema.sql");

/// The channel decided ticks and manual requests are announced on; payload `ns<TAB><tick>
/// <job>` or `ns<TAB>manual <job>`.
const CHANNEL: &str = "fourit_claims";

/// One connection of a coordinator's pool, and how many calls are on it.
struct Slot {
    client: Mutex<Option<Arc<Client>>>,
    /// Whether it holds a connection (it may have closed since).
    opened: AtomicBool,
    busy: AtomicUsize,
}

impl Slot {
    fn open(client: Client) -> Slot {
        Slot {
            client: Mutex::new(Some(Arc::new(client))),
            opened: AtomicBool::new(true),
            busy: AtomicUsize::new(0),
        }
    }

    fn unopened() -> Slot {
        Slot {
            client: Mutex::new(None),
            opened: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
        }
    }
}

/// A call in flight on a slot, counted until dropped.
struct Busy<'a>(&'a Slot);

impl<'a> Busy<'a> {
    fn on(slot: &'a Slot) -> Busy<'a> {
        slot.busy.fetch_add(1, Ordering::Relaxed);
        Busy(slot)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

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

/// The Postgres type a parameter is sent as: statements are unnamed, so their parameters'
/// types travel with them.
trait PgType {
    /// The type of a value.
    const TYPE: Type;
    /// The type of an array of such values.
    const ARRAY: Type;
}

macro_rules! pg_type {
    ($($rust:ty => $scalar:ident, $array:ident;)*) => {
        $(impl PgType for $rust {
            const TYPE: Type = Type::$scalar;
            const ARRAY: Type = Type::$array;
        })*
    };
}

pg_type! {
    str => TEXT, TEXT_ARRAY;
    String => TEXT, TEXT_ARRAY;
    i64 => INT8, INT8_ARRAY;
    i32 => INT4, INT4_ARRAY;
    bool => BOOL, BOOL_ARRAY;
}

impl<T: PgType + ?Sized> PgType for &T {
    const TYPE: Type = T::TYPE;
    const ARRAY: Type = T::ARRAY;
}

impl<T: PgType> PgType for Option<T> {
    const TYPE: Type = T::TYPE;
    const ARRAY: Type = T::ARRAY;
}

impl<T: PgType> PgType for Vec<T> {
    const TYPE: Type = T::ARRAY;
    const ARRAY: Type = T::ARRAY;
}

/// A parameter with its type.
fn typed<T: PgType + ToSql + Sync>(value: &T) -> (&(dyn ToSql + Sync), Type) {
    (value, T::TYPE)
}

/// A statement's parameters with their types: `typed![&a, &b]`.
macro_rules! typed {
    ($($value:expr),* $(,)?) => {
        &[$(typed($value)),*]
    };
}

fn kind_of(err: &tokio_postgres::Error) -> ErrorKind {
    use tokio_postgres::error::SqlState;
    match err.code() {
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            ErrorKind::Authentication
        }
        Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => ErrorKind::Permission,
        Some(code)
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            ErrorKind::Unavailable
        }
        _ if ends_session(err) => ErrorKind::Unavailable,
        _ => ErrorKind::Protocol,
    }
}

/// A failed call's error, at the redacted `url`.
fn failure(url: &str, operation: &'static str, err: &tokio_postgres::Error) -> Error {
    Error::Coordinator(
        CoordinatorError::new("Postgres", operation, kind_of(err), detail(err)).at(url),
    )
}

/// An unanswered call's error, at the redacted `url`.
fn no_answer(url: &str, operation: &'static str) -> Error {
    Error::Coordinator(
        CoordinatorError::new(
            "Postgres",
            operation,
            ErrorKind::Timeout,
            format!("no answer within {DEADLINE:?}"),
        )
        .at(url),
    )
}

/// `rows` answer `expected` requests, one row each, or the server broke the protocol.
fn answers(operation: &'static str, rows: &[Row], expected: usize) -> Result<(), Error> {
    if rows.len() == expected {
        return Ok(());
    }
    Err(Error::Coordinator(CoordinatorError::new(
        "Postgres",
        operation,
        ErrorKind::Protocol,
        format!("{} answers to {expected} requests", rows.len()),
    )))
}

/// Drops the slot's `client` if it is still the one there, so the next call connects again
/// (the server may end a session before the client sees its socket close).
async fn forget(slot: &Slot, client: &Arc<Client>) {
    let mut held = slot.client.lock().await;
    if held
        .as_ref()
        .is_some_and(|current| Arc::ptr_eq(current, client))
    {
        *held = None;
    }
}

/// Whether the server refused `err`'s statement for a retry: a serialization failure
/// (40001) or a deadlock it broke (40P01).
fn must_retry(err: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    err.code().is_some_and(|code| {
        *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// Whether `err` ended the session: the connection closed or broke, or the server is ending
/// it (shut down, restarting, `pg_terminate_backend`).
fn ends_session(err: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match err.code() {
        Some(code) => {
            *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
        None => true,
    }
}

/// The error's text with the server's message (tokio-postgres says only "db error"), or with
/// its causes (a TLS handshake's, say).
fn detail(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!("{}: {} ({})", err, db.message(), db.code().code());
    }
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(source) = cause {
        text.push_str(": ");
        text.push_str(&source.to_string());
        cause = source.source();
    }
    text
}

fn cap() -> i32 {
    i32::try_from(HISTORY_LEN).unwrap_or(i32::MAX)
}

/// TCP keepalive probes after 10 s idle, every 5 s, 3 unanswered end the connection,
/// `TCP_USER_TIMEOUT` of 15 s and a `connect_timeout` of 1 s per host, unless the URL says
/// otherwise (`keepalives_idle` other than the driver's default of two hours,
/// `keepalives_interval`, `keepalives_retries`, `tcp_user_timeout`, `connect_timeout`): a
/// half-open link is found while idle, not after the kernel's default two hours (or 15
/// minutes of retransmissions).
fn find_silent_links(config: &mut Config) {
    /// libpq's and tokio-postgres's default idle time.
    const DRIVER_DEFAULT_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
    if config.get_keepalives_idle() == DRIVER_DEFAULT_IDLE {
        config.keepalives_idle(Duration::from_secs(10));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(5));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(15));
    }
    // Per host: with several hosts, one that drops the SYN silently must not use up the
    // reconnect deadline before the next host is tried.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(1));
    }
}

/// The first connection of a coordinator. With several hosts in the URL, each is tried in
/// turn (as the driver would), so that when none will do, the error names every host and
/// why it would not (a standby refused by `target_session_attrs`, one unreachable, ...).
async fn open_first(
    config: &Config,
    url: &str,
    connector: &MakeRustlsConnect,
    shown: &str,
) -> Result<Client, Error> {
    let hosts = options::each_host(url);
    if hosts.len() < 2 {
        return tokio::time::timeout(DEADLINE, open(config, connector))
            .await
            .map_err(|_| no_answer(shown, "connect"))?
            .map_err(|err| failure(shown, "connect", &err));
    }
    let mut why = Vec::new();
    let mut kind = ErrorKind::Unavailable;
    for (host, single) in hosts {
        let Ok(mut one) = single.parse::<Config>() else {
            why.push(format!("{host}: not a Postgres URL"));
            continue;
        };
        if one.get_application_name().is_none() {
            one.application_name("fourit");
        }
        find_silent_links(&mut one);
        match tokio::time::timeout(DEADLINE, open(&one, connector)).await {
            Ok(Ok(client)) => return Ok(client),
            Ok(Err(err)) => {
                // One refusal of the credentials is the answer for all: they are the same.
                if kind_of(&err) == ErrorKind::Authentication {
                    kind = ErrorKind::Authentication;
                }
                why.push(format!("{host}: {}", detail(&err)));
            }
            Err(_) => why.push(format!("{host}: no answer within {DEADLINE:?}")),
        }
    }
    Err(Error::Coordinator(
        CoordinatorError::new("Postgres", "connect", kind, why.join("; ")).at(shown),
    ))
}

/// Opens a connection (its driver task spawned, ended when the client is dropped).
async fn open(
    config: &Config,
    connector: &MakeRustlsConnect,
) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(connector.clone()).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            debug!(error = %err, "Postgres connection ended");
        }
    });
    Ok(client)
}

/// Creates or migrates the schema: one process at a time (the lock on `fourit_meta`, held
/// to the transaction's end), the others find it done.
async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let tx = client.transaction().await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS fourit_meta (version integer NOT NULL);
                 LOCK TABLE fourit_meta IN EXCLUSIVE MODE",
            )
            .await?;
            let version: Option<i32> = tx
                .query_typed_opt("SELECT max(version) FROM fourit_meta", &[])
                .await?
                .and_then(|row| row.get(0));
            if version.unwrap_or(0) < SCHEMA_VERSION {
                tx.batch_execute(SCHEMA).await?;
                tx.batch_execute(&format!(
                    "DELETE FROM fourit_meta; INSERT INTO fourit_meta VALUES ({SCHEMA_VERSION})"
                ))
                .await?;
            }
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            // Two processes creating `fourit_meta` at once: one loses with a duplicate; the
            // next attempt finds the table and waits for the lock.
            Err(err) if attempt < 5 && err.code().is_some() => {
                debug!(error = %err, "schema migration raced another process; again");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

impl PostgresCoordinator {
    /// Connects to the database `url` names, creates or migrates fourit's schema, and starts
    /// listening for the fleet's notices.
    pub async fn connect(url: &str, namespace: &str) -> Result<PostgresCoordinator, Error> {
        let shown = redact_url(url);
        let invalid = |reason: String| Error::InvalidUrl {
            url: shown.clone(),
            reason,
        };
        // tokio-postgres ends the user-info at the first `@`: a password holding one (or a
        // `/ ? #`) is encoded first, so it reads the password the user meant.
        let encoded = super::redact::encode_userinfo(url);
        let settings = options::settings(&encoded).map_err(invalid)?;
        let mut config: Config = settings.url.parse().map_err(|err: tokio_postgres::Error| {
            let reason = crate::coordinator::redact::scrub(&err.to_string(), url);
            invalid(format!("not a Postgres URL: {reason}"))
        })?;
        let connector = settings.connector().map_err(invalid)?;
        // So operators (and the tests) can tell fourit's sessions in pg_stat_activity.
        if config.get_application_name().is_none() {
            config.application_name("fourit");
        }
        find_silent_links(&mut config);
        let mut client = open_first(&config, &settings.url, &connector, &shown).await?;
        migrate(&mut client)
            .await
            .map_err(|err| failure(&shown, "migrate", &err))?;
        let stop = CancellationToken::new();
        let notices = NoticeSender::new();
        let mut pool = vec![Slot::open(client)];
        pool.extend((1..settings.pool).map(|_| Slot::unopened()));
        let (listening, listens) = tokio::sync::watch::channel(false);
        tokio::spawn(listen(
            config.clone(),
            connector.clone(),
            namespace.to_string(),
            notices.clone(),
            listening,
            stop.clone(),
        ));
        // Ready once it hears the fleet's notices (a claim decided sooner would go unheard);
        // without them the claims are still right, only slower: go on after the deadline.
        let mut listens = listens;
        if tokio::time::timeout(DEADLINE, listens.wait_for(|ready| *ready))
            .await
            .is_err()
        {
            debug!("claim notices: not listening yet; going on without them for now");
        }
        Ok(PostgresCoordinator {
            config,
            connector,
            pool,
            namespace: namespace.to_string(),
            url: shown,
            notices,
            missed: tokio::sync::broadcast::channel(super::NOTICE_BUFFER).0,
            _listener: stop.drop_guard(),
        })
    }

    fn error(&self, operation: &'static str, err: &tokio_postgres::Error) -> Error {
        failure(&self.url, operation, err)
    }

    fn timeout(&self, operation: &'static str) -> Error {
        no_answer(&self.url, operation)
    }

    /// The slot for a call: an open connection with no call on it, else one not opened
    /// yet (overlapping calls open more, up to the pool's size), else the least busy.
    fn slot(&self) -> &Slot {
        let idle = self.pool.iter().find(|slot| {
            slot.opened.load(Ordering::Relaxed) && slot.busy.load(Ordering::Relaxed) == 0
        });
        let unopened = || {
            self.pool
                .iter()
                .find(|slot| !slot.opened.load(Ordering::Relaxed))
        };
        let least = || {
            self.pool
                .iter()
                .min_by_key(|slot| slot.busy.load(Ordering::Relaxed))
        };
        match idle.or_else(unopened).or_else(least) {
            Some(slot) => slot,
            // The pool is never empty (it starts with the connection of `connect`).
            None => &self.pool[0],
        }
    }

    /// The slot's connection, connecting (again, if it closed).
    async fn client(&self, slot: &Slot, operation: &'static str) -> Result<Arc<Client>, Error> {
        let mut held = slot.client.lock().await;
        if let Some(client) = held.as_ref().filter(|client| !client.is_closed()) {
            return Ok(client.clone());
        }
        let client = tokio::time::timeout(RECONNECT_DEADLINE, open(&self.config, &self.connector))
            .await
            .map_err(|_| self.timeout(operation))?
            .map_err(|err| self.error(operation, &err))?;
        let client = Arc::new(client);
        *held = Some(client.clone());
        slot.opened.store(true, Ordering::Relaxed);
        Ok(client)
    }

    /// Runs one statement and answers its rows. The statement is unnamed, its parameters'
    /// types given (one round trip, nothing left on the server's session): what a
    /// transaction-pooling proxy needs.
    async fn rows(
        &self,
        operation: &'static str,
        sql: &'static str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, Error> {
        let slot = self.slot();
        let _busy = Busy::on(slot);
        let client = self.client(slot, operation).await?;
        let mut answer = tokio::time::timeout(DEADLINE, client.query_typed(sql, params)).await;
        if let Ok(Err(err)) = &answer
            && must_retry(err)
        {
            // Each statement is its own transaction: one that lost a deadlock or a
            // serialization check changed nothing, and sent again it is decided afresh.
            debug!(operation, error = %detail(err), "Postgres asked for a retry; sending again");
            answer = tokio::time::timeout(DEADLINE, client.query_typed(sql, params)).await;
        }
        match answer {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(err)) => {
                if ends_session(&err) {
                    forget(slot, &client).await;
                }
                Err(self.error(operation, &err))
            }
            Err(_) => {
                // No answer: the connection may be stuck (a partition); the next call opens
                // another.
                forget(slot, &client).await;
                Err(self.timeout(operation))
            }
        }
    }

    async fn one(
        &self,
        operation: &'static str,
        sql: &'static str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Row, Error> {
        self.rows(operation, sql, params)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::Coordinator(CoordinatorError::new(
                    "Postgres",
                    operation,
                    ErrorKind::Protocol,
                    "no row",
                ))
            })
    }

    async fn record_missed(&self, request: &ClaimRequest, ticks: &MissedTicks) {
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
}

/// Forgets the members of a namespace silent for longer than `$3` ms (not `$2`, the caller),
/// naming them.
const EVICT: &str = "WITH gone AS (DELETE FROM fourit_members WHERE ns = $1 AND node <> $2 \
    AND heartbeat < floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - $3 \
    RETURNING node) SELECT coalesce(array_agg(node), '{}') FROM gone";

const HEARTBEAT: &str =
    "SELECT now_us, members, manual_pending FROM fourit_heartbeat($1, $2, $3, $4)";

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
    /// Ends `runs` in one statement (one round trip, one commit), in the order of their
    /// jobs' names; answers, in `runs`' order, whether each lease was still the run's.
    async fn release_runs(&self, runs: &[(Lease, RunRecord)]) -> Result<Vec<bool>, Error> {
        let order = by_job(runs.iter().map(|(lease, _)| &*lease.job));
        let sorted: Vec<&(Lease, RunRecord)> = order.iter().map(|&index| &runs[index]).collect();
        let jobs: Vec<&str> = sorted.iter().map(|(lease, _)| &*lease.job).collect();
        let slots: Vec<String> = sorted
            .iter()
            .map(|(lease, _)| slot(lease.overlap, lease.tick_ms))
            .collect();
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

impl Coordinator for PostgresCoordinator {
    fn claim<'a>(
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

    fn keep_alive<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let rows = self
                .rows(
                    "keep_alive",
                    "WITH now AS (SELECT fourit_now() AS ms)
                     UPDATE fourit_leases SET expires = (SELECT ms FROM now) + $5
                     WHERE ns = $1 AND job = $2 AND slot = $3 AND run_id = $4
                       AND expires > (SELECT ms FROM now)
                     RETURNING true",
                    typed![
                        &self.namespace,
                        &&*lease.job,
                        &slot(lease.overlap, lease.tick_ms),
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
                Err(err) => {
                    // One error for the batch: the first run gets it, the others its words.
                    let (kind, detail) = match &err {
                        Error::Coordinator(failure) => {
                            (failure.kind(), failure.detail().to_string())
                        }
                        other => (ErrorKind::Unavailable, other.to_string()),
                    };
                    let mut answers = vec![Err(err)];
                    answers.extend(runs[1..].iter().map(|_| {
                        Err(Error::Coordinator(
                            CoordinatorError::new("Postgres", "release", kind, detail.clone())
                                .at(self.url.clone()),
                        ))
                    }));
                    answers
                }
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
                    forget(slot, &client).await;
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
            Ok(())
        })
    }

    fn manual_requests(&self) -> BoxFuture<'_, Result<Vec<ManualRequest>, Error>> {
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

    fn claim_manual<'a>(
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
                    })
                }
                2 => ManualOutcome::Overlap {
                    holder: row.get::<_, Option<String>>(2).unwrap_or_default(),
                },
                _ => ManualOutcome::Taken,
            })
        })
    }

    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<Registrations>, Error>> {
        Box::pin(async move {
            let names: Vec<&str> = jobs.iter().map(|job| job.name.as_str()).collect();
            let lines: Vec<String> = jobs.iter().map(JobDefinition::to_line).collect();
            // One statement: record this member's lines, then read every member's.
            let rows = self
                .rows(
                    "register",
                    "WITH written AS (
                       INSERT INTO fourit_defs (ns, job, node, line)
                       SELECT $1, job, $2, line FROM unnest($3::text[], $4::text[]) AS t(job, line)
                       ON CONFLICT (ns, job, node) DO UPDATE SET line = excluded.line
                       RETURNING job, node, line)
                     SELECT job, node, line FROM written
                     UNION ALL
                     SELECT d.job, d.node, d.line FROM fourit_defs d
                     WHERE d.ns = $1 AND d.job = ANY($3) AND d.node <> $2",
                    typed![&self.namespace, &node, &names, &lines],
                )
                .await?;
            Ok(names
                .iter()
                .map(|name| {
                    let mut registrations: Registrations = rows
                        .iter()
                        .filter(|row| row.get::<_, &str>(0) == *name)
                        .filter_map(|row| {
                            JobDefinition::from_line(name, row.get(2))
                                .map(|def| (row.get::<_, String>(1), def))
                        })
                        .collect();
                    registrations.sort_by(|a, b| a.0.cmp(&b.0));
                    registrations
                })
                .collect())
        })
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
            Ok(rows
                .iter()
                .map(|row| HistoryEntry {
                    tick_ms: row.get(0),
                    node: row.get(1),
                    outcome: row.get(2),
                    detail: row.get(3),
                    fence: unsigned(row.get(4)),
                    duration_ms: unsigned(row.get(5)),
                    delay_ms: unsigned(row.get(6)),
                })
                .collect())
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
            let defs = self
                .rows(
                    "catalog",
                    "SELECT job, node, line FROM fourit_defs WHERE ns = $1 ORDER BY job, node",
                    typed![&self.namespace],
                )
                .await?;
            let states = self
                .rows(
                    "catalog",
                    "SELECT j.job, j.tick, j.node, j.fence, j.started, j.finished, j.outcome,
                       j.error, l.run_id, j.paused, j.paused_by, j.paused_note, j.paused_at,
                       j.paused_ticks, j.paused_first, j.paused_last
                     FROM fourit_jobs j LEFT JOIN fourit_leases l
                       ON l.ns = j.ns AND l.job = j.job AND l.slot = '' AND l.expires > fourit_now()
                     WHERE j.ns = $1",
                    typed![&self.namespace],
                )
                .await?;
            let mut entries: Vec<CatalogEntry> = Vec::new();
            for row in &defs {
                let name: String = row.get(0);
                if entries.last().is_none_or(|entry| entry.name != name) {
                    entries.push(CatalogEntry {
                        name: name.clone(),
                        registrations: Vec::new(),
                        state: JobState::default(),
                    });
                }
                if let (Some(entry), Some(def)) = (
                    entries.last_mut(),
                    JobDefinition::from_line(&name, row.get(2)),
                ) {
                    entry.registrations.push((row.get(1), def));
                }
            }
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
            let id = format!("{:016x}", super::new_claim_id());
            let by = by.replace(['\t', '\n'], " ");
            let row = self
                .one(
                    "trigger",
                    "WITH now AS (SELECT fourit_now() AS ms),
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
