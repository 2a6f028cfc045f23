//! Connecting: the URL read (TLS, the pool's size, each host), TCP settings that find a
//! silent link, the first connection (each host tried, every refusal named), the schema
//! migrated, and the notice listener started.

use std::time::Duration;

use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::errors::{detail, failure, kind_of, no_answer};
use super::listen::listen;
use super::pool::{Slot, open};
use super::{DEADLINE, PostgresCoordinator, options};
use crate::coordinator::{NoticeSender, redact_url};
use crate::error::{CoordinatorError, Error, ErrorKind};

/// The schema's version, in `fourit_meta`.
const SCHEMA_VERSION: i32 = 8;

const SCHEMA: &str = include_str!("schema.sql");

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
        let encoded = crate::redact::encode_userinfo(url);
        let settings = options::settings(&encoded).map_err(invalid)?;
        let mut config: Config = settings.url.parse().map_err(|err: tokio_postgres::Error| {
            let reason = crate::redact::scrub(&err.to_string(), url);
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
            missed: tokio::sync::broadcast::channel(crate::coordinator::NOTICE_BUFFER).0,
            _listener: stop.drop_guard(),
        })
    }
}
