//! The connection to Redis: a connection manager that is retired after a call that got no
//! answer (or found Redis unreachable, or had its credentials refused) and replaced in the
//! background, and how the client's errors map to fourit's (building the client, with its
//! TCP settings and TLS, is `client.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind};
use tracing::debug;

use super::BACKEND;
use super::reconnect::until_connected;
use crate::error::{CoordinatorError, Error, ErrorKind as Kind};

/// The connection every call goes through, and a way to start it afresh.
///
/// The client library's `ConnectionManager` reconnects after I/O errors, but not after a
/// call that went unanswered (a silently dropped link: it would retry on the same dead
/// connection), and a reconnection that fails authentication (a restarted Redis whose users
/// are not loaded yet, a password being rotated) leaves it failed for good. So a call that
/// gets no answer, finds Redis unreachable or has its credentials refused **retires** the
/// connection it used (see `Handle`, in `handle.rs`): no later call is sent on it,
/// calls made meanwhile wait (within their deadline) for the fresh one, which is made in the
/// background (see [`Connection::replace`]).
///
/// Under Sentinel, the primary moves: the fresh connection goes to the primary the sentinels
/// name now (also after a `READONLY` answer, from a demoted primary).
pub(super) struct Connection {
    /// The connection calls go through, with its epoch (bumped each time one is put in
    /// place); `None` while a retired one is being replaced.
    current: RwLock<(u64, Option<ConnectionManager>)>,
    /// Tells the calls waiting for a fresh connection that one is in place, or that an
    /// attempt to make one failed (and why: refused credentials, say, are worth more than
    /// the timeout the call would otherwise end with).
    news: tokio::sync::watch::Sender<News>,
    client: RwLock<redis::Client>,
    /// The sentinels to ask where the primary is, for a `redis+sentinel://` URL.
    sentinel: Option<Arc<super::sentinel::Sentinel>>,
    /// A replacement is being made.
    replacing: AtomicBool,
}

impl Connection {
    /// A connection to `manager`'s server, current from the start.
    pub(super) fn new(
        manager: ConnectionManager,
        client: redis::Client,
        sentinel: Option<Arc<super::sentinel::Sentinel>>,
    ) -> Connection {
        Connection {
            current: RwLock::new((0, Some(manager))),
            news: tokio::sync::watch::Sender::new(News::default()),
            client: RwLock::new(client),
            sentinel,
            replacing: AtomicBool::new(false),
        }
    }

    /// The current connection and its epoch (cheap: handles share it); `None` while a
    /// retired one is being replaced.
    pub(super) fn get(&self) -> Option<(u64, ConnectionManager)> {
        let current = match self.current.read() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        current.1.clone().map(|manager| (current.0, manager))
    }

    /// The current connection, once there is one again after a retirement (the caller's
    /// deadline bounds the wait), or the error of the next attempt that failed to make one.
    pub(super) async fn fresh(&self) -> Result<(u64, ConnectionManager), RedisError> {
        let mut news = self.news.subscribe();
        let failed_before = news.borrow().failed;
        loop {
            if let Some(current) = self.get() {
                return Ok(current);
            }
            if news.changed().await.is_err() {
                // The connection is being dropped: nothing will be installed.
                std::future::pending::<()>().await;
            }
            let news = news.borrow();
            if news.failed > failed_before
                && let Some((kind, detail)) = &news.last_failure
            {
                return Err(RedisError::from((
                    *kind,
                    "reconnecting failed",
                    detail.clone(),
                )));
            }
        }
    }

    /// The database number calls go to (from the URL).
    pub(super) fn db(&self) -> i64 {
        self.current_client()
            .get_connection_info()
            .redis_settings()
            .db()
    }

    /// Retires the connection of `epoch` if it is still the current one, and starts
    /// replacing it; nothing if a fresh one is in place already.
    pub(super) fn retire(self: &Arc<Self>, epoch: u64) {
        let retired = {
            let mut current = match self.current.write() {
                Ok(current) => current,
                Err(poisoned) => poisoned.into_inner(),
            };
            current.0 == epoch && current.1.take().is_some()
        };
        if retired {
            debug!("the connection to Redis is retired; calls wait for a fresh one");
            self.replace();
        }
    }

    fn install(&self, client: redis::Client, fresh: ConnectionManager) {
        match self.client.write() {
            Ok(mut current) => *current = client,
            Err(poisoned) => *poisoned.into_inner() = client,
        }
        {
            let mut current = match self.current.write() {
                Ok(current) => current,
                Err(poisoned) => poisoned.into_inner(),
            };
            *current = (current.0 + 1, Some(fresh));
        }
        self.news.send_modify(|news| news.installed += 1);
    }

    /// An attempt to connect afresh failed with `err`: the calls waiting are told.
    fn attempt_failed(&self, err: &RedisError) {
        let detail = err.to_string();
        self.news.send_modify(|news| {
            news.failed += 1;
            news.last_failure = Some((err.kind(), detail));
        });
    }

    /// The client of the server connected to now.
    pub(super) fn current_client(&self) -> redis::Client {
        match self.client.read() {
            Ok(client) => client.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Starts connecting afresh (under Sentinel: to the primary the sentinels name now),
    /// unless that is already under way, and keeps trying every half second until a fresh
    /// connection is made (or the coordinator is gone): a member whose link healed is
    /// connected again within about a second, without waiting for a call to fail first.
    pub(super) fn replace(self: &Arc<Self>) {
        if self.replacing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                // The attempts hold what they need, not the connection: once the
                // coordinator drops it, this task holds the last reference and stops.
                let sentinel = this.sentinel.clone();
                let client = this.current_client();
                let attempt = || connect_afresh(sentinel.clone(), client.clone());
                let wanted = || Arc::strong_count(&this) > 1;
                let failed = |err: &RedisError| this.attempt_failed(err);
                let Some((client, manager)) = until_connected(attempt, wanted, failed).await else {
                    break;
                };
                this.install(client, manager);
                debug!("connected afresh to Redis");
                // Calls still in flight on the old connection fail after this, harmlessly:
                // their epoch is the old one, so they retire nothing. A failure of the fresh
                // one is news, and is replaced at once.
                if this.get().is_some() {
                    break;
                }
            }
            this.replacing.store(false, Ordering::Release);
            // A retirement that came in just before the flag was cleared found it set.
            if this.get().is_none() && Arc::strong_count(&this) > 1 {
                this.replace();
            }
        });
    }
}

/// What the calls waiting for a fresh connection learn: how many were put in place, how many
/// attempts failed, and the last failure.
#[derive(Debug, Default)]
struct News {
    installed: u64,
    failed: u64,
    last_failure: Option<(ErrorKind, String)>,
}

/// A new connection manager and its client: to the primary the sentinels name now under
/// Sentinel, else to `client`'s server.
async fn connect_afresh(
    sentinel: Option<Arc<super::sentinel::Sentinel>>,
    client: redis::Client,
) -> Result<(redis::Client, ConnectionManager), RedisError> {
    let client = match &sentinel {
        Some(sentinel) => match sentinel.discover().await {
            Ok(client) => client,
            Err(super::sentinel::Discovery::Failed(err)) => return Err(err),
            Err(super::sentinel::Discovery::UnknownMaster) => {
                return Err(RedisError::from((
                    ErrorKind::Io,
                    "the sentinels no longer know the master",
                )));
            }
        },
        None => client,
    };
    let manager = ConnectionManager::new_with_config(client.clone(), manager_config()).await?;
    Ok((client, manager))
}

/// How every connection to Redis behaves: one quick retry, then the call fails (and the
/// scheduler fails closed); 2 s to connect and to answer.
pub(super) fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
}

/// Maps a client error to fourit's, with any password scrubbed from its text.
pub(super) fn classify(
    operation: &'static str,
    url: &str,
    secret: Option<&str>,
    err: RedisError,
) -> Error {
    let mut detail = err.to_string();
    if let Some(secret) = secret {
        detail = crate::redact::scrub_secret(&detail, secret);
    }
    let kind = match err.kind() {
        ErrorKind::AuthenticationFailed => Kind::Authentication,
        ErrorKind::Server(ServerErrorKind::NoPerm) => Kind::Permission,
        // A script's refused command comes back as a script error quoting NOPERM.
        _ if detail.contains("NOPERM")
            || detail.contains("no permissions to")
            || detail.contains("can't run this command") =>
        {
            Kind::Permission
        }
        _ if detail.contains("certificate") || detail.contains("TLS") || detail.contains("tls") => {
            Kind::Tls
        }
        ErrorKind::InvalidClientConfig => {
            return Error::InvalidUrl {
                url: url.to_string(),
                reason: detail,
            };
        }
        // The cluster client wraps a refused AUTH in its own "initial connections" error.
        _ if detail.contains("WRONGPASS")
            || detail.contains("NOAUTH")
            || detail.contains("AuthenticationFailed") =>
        {
            Kind::Authentication
        }
        _ => Kind::Unavailable,
    };
    Error::Coordinator(
        CoordinatorError::new(BACKEND, operation, kind, detail)
            .at(url)
            .caused_by(&err, secret),
    )
}

pub(super) fn is_noscript(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}
