//! The connection to Redis: the client, a connection manager that is replaced after an
//! authentication failure, TLS, and how the client's errors map to fourit's.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind};
use tracing::debug;

use super::{BACKEND, DEADLINE};
use crate::coordinator::TlsConfig;
use crate::error::{CoordinatorError, Error, ErrorKind as Kind};

/// The connection every call goes through, and a way to start it afresh.
///
/// The client library's `ConnectionManager` reconnects after I/O errors, but not after a
/// call that went unanswered (a silently dropped link: it would retry on the same dead
/// connection, whose replies are lost mid-stream), and a reconnection that fails
/// authentication (a restarted Redis whose users are not loaded yet, a password being
/// rotated) leaves it failed for good. So a call that finds Redis unreachable, unanswering or
/// refusing the credentials **retires** the connection (later calls fail at once, never
/// sent on it) and a fresh one is made in the background (see [`Connection::replace`]).
///
/// Under Sentinel, the primary moves: the fresh connection goes to the primary the sentinels
/// name now (also after a `READONLY` answer, from a demoted primary).
pub(super) struct Connection {
    /// The connection calls go through; `None` while a retired one is being replaced.
    pub(super) manager: RwLock<Option<ConnectionManager>>,
    /// Which connection is current: bumped each time one is put in place, and told to the
    /// calls waiting for a fresh one.
    pub(super) epoch: AtomicU64,
    installed: tokio::sync::watch::Sender<u64>,
    pub(super) client: RwLock<redis::Client>,
    /// The sentinels to ask where the primary is, for a `redis+sentinel://` URL.
    pub(super) sentinel: Option<Arc<super::sentinel::Sentinel>>,
    /// A replacement is being made.
    pub(super) replacing: AtomicBool,
}

impl Connection {
    /// A connection to `manager`'s server, current from the start.
    pub(super) fn new(
        manager: ConnectionManager,
        client: redis::Client,
        sentinel: Option<Arc<super::sentinel::Sentinel>>,
    ) -> Connection {
        Connection {
            manager: RwLock::new(Some(manager)),
            epoch: AtomicU64::new(0),
            installed: tokio::sync::watch::Sender::new(0),
            client: RwLock::new(client),
            sentinel,
            replacing: AtomicBool::new(false),
        }
    }

    /// A handle to the current connection (cheap: handles share it); `None` while a retired
    /// one is being replaced.
    pub(super) fn get(&self) -> Option<ConnectionManager> {
        match self.manager.read() {
            Ok(manager) => manager.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The current connection, once there is one again after a retirement (the caller's
    /// deadline bounds the wait).
    pub(super) async fn fresh(&self) -> ConnectionManager {
        let mut installed = self.installed.subscribe();
        loop {
            if let Some(manager) = self.get() {
                return manager;
            }
            if installed.changed().await.is_err() {
                // The connection is being dropped: nothing will be installed.
                std::future::pending::<()>().await;
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

    /// Which connection is current (see [`Connection::retire`]).
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Retires the connection that was current at `epoch`, if it still is, and starts
    /// replacing it.
    pub(super) fn retire(self: &Arc<Self>, epoch: u64) {
        {
            let mut manager = match self.manager.write() {
                Ok(manager) => manager,
                Err(poisoned) => poisoned.into_inner(),
            };
            if self.epoch() == epoch && manager.take().is_some() {
                debug!("the connection to Redis is retired: calls fail until a fresh one is made");
            }
        }
        self.replace();
    }

    fn install(&self, fresh: ConnectionManager) {
        let mut manager = match self.manager.write() {
            Ok(manager) => manager,
            Err(poisoned) => poisoned.into_inner(),
        };
        *manager = Some(fresh);
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        drop(manager);
        self.installed.send_replace(epoch);
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
            // The coordinator holds the other reference: once it is dropped, stop.
            while Arc::strong_count(&this) > 1 {
                match tokio::time::timeout(DEADLINE, this.connect_afresh()).await {
                    Ok(Ok(manager)) => {
                        this.install(manager);
                        debug!("connected afresh to Redis");
                        break;
                    }
                    // Still refused or unreachable: again shortly.
                    Ok(Err(err)) => debug!(error = err.category(), "reconnecting failed"),
                    Err(_) => debug!("reconnecting timed out"),
                }
                tokio::time::sleep(RECONNECT_EVERY).await;
            }
            // Calls still in flight on the old connection fail after this; one replacement a
            // second at most, however many do.
            tokio::time::sleep(Duration::from_secs(1)).await;
            this.replacing.store(false, Ordering::Release);
        });
    }

    /// A new connection manager, to the primary the sentinels name now under Sentinel.
    async fn connect_afresh(&self) -> Result<ConnectionManager, RedisError> {
        let client = match &self.sentinel {
            Some(sentinel) => match sentinel.discover().await {
                Ok(client) => {
                    match self.client.write() {
                        Ok(mut current) => *current = client.clone(),
                        Err(poisoned) => *poisoned.into_inner() = client.clone(),
                    }
                    client
                }
                Err(super::sentinel::Discovery::Failed(err)) => return Err(err),
                Err(super::sentinel::Discovery::UnknownMaster) => {
                    return Err(RedisError::from((
                        ErrorKind::Io,
                        "the sentinels no longer know the master",
                    )));
                }
            },
            None => self.current_client(),
        };
        ConnectionManager::new_with_config(client, manager_config()).await
    }
}

/// How often a connection that must be replaced is tried again while it cannot be made.
pub(super) const RECONNECT_EVERY: Duration = Duration::from_millis(500);

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
        detail = crate::coordinator::redact::scrub_secret(&detail, secret);
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

/// How long an idle connection waits before TCP keepalive probes start, and between them.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Probes unanswered before the kernel gives the connection up.
const KEEPALIVE_PROBES: u32 = 3;
/// How long sent data may go unacknowledged before the kernel ends the connection (without
/// it, about 15 minutes of retransmissions).
const USER_TIMEOUT: Duration = Duration::from_secs(15);

/// Every connection's TCP settings: keepalive probes find a half-open link even while the
/// connection is idle, and `TCP_USER_TIMEOUT` ends one whose data goes unacknowledged. The
/// call deadlines find a silent link first when calls are made; these find it in between.
pub(super) fn tcp_settings(base: &redis::io::tcp::TcpSettings) -> redis::io::tcp::TcpSettings {
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
    let keepalive = keepalive
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
    let _ = (KEEPALIVE_INTERVAL, KEEPALIVE_PROBES);
    let settings = base.clone().set_keepalive(keepalive);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let settings = settings.set_user_timeout(USER_TIMEOUT);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = USER_TIMEOUT;
    settings
}

/// A client for `url`, with the certificates of `tls` when the `tls` feature is on, and
/// fourit's [`tcp_settings`].
pub(super) fn open_client(url: &str, tls: Option<&TlsConfig>) -> Result<redis::Client, RedisError> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let settings = tcp_settings(info.tcp_settings());
    let info = info.set_tcp_settings(settings);
    #[cfg(feature = "tls")]
    if let Some(tls) = tls.filter(|tls| !tls.is_empty()) {
        return redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: tls.client_identity.as_ref().map(|(cert, key)| {
                    redis::ClientTlsConfig {
                        client_cert: cert.clone(),
                        client_key: key.clone(),
                    }
                }),
                root_cert: tls.root_certificates.clone(),
            },
        );
    }
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    redis::Client::open(info)
}

pub(super) fn invalid_url_reason(url: &str, err: &RedisError) -> String {
    if url.starts_with("rediss") && !cfg!(feature = "tls") {
        return "rediss:// (TLS) needs fourit's `tls` cargo feature: \
                fourit = { version = \"...\", features = [\"tls\"] }"
            .to_string();
    }
    // The client library's text may quote the URL or a piece of it: say what is wrong
    // without any secret the URL holds.
    match err.detail() {
        Some(detail) if !detail.contains(url) => format!(
            "{} ({})",
            err.category(),
            crate::coordinator::redact::scrub(detail, url)
        ),
        _ => err.category().to_string(),
    }
}

#[cfg(feature = "tls")]
pub(super) fn install_crypto_provider() {
    // Installing twice is refused, harmlessly: the first provider stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(super) fn is_noscript(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

/// A cluster client for the seed `nodes`, with the same time limits as a single server's
/// connection (the client follows `MOVED`/`ASK` and failovers by itself).
pub(super) fn open_cluster(
    nodes: &[String],
    tls: Option<&TlsConfig>,
) -> Result<redis::cluster::ClusterClient, RedisError> {
    let builder = redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2))
        .tcp_settings(tcp_settings(&redis::io::tcp::TcpSettings::default()));
    #[cfg(feature = "tls")]
    let builder = match tls.filter(|tls| !tls.is_empty()) {
        Some(tls) => builder.certs(redis::TlsCertificates {
            client_tls: tls
                .client_identity
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: tls.root_certificates.clone(),
        }),
        None => builder,
    };
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    builder.build()
}
