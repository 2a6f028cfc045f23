//! Opening a coordinator from a URL, TLS material for it, and URLs fit for logs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{MemoryCoordinator, RedisCoordinator, Store, redact_url};
use crate::clock::Clock;
use crate::error::Error;

/// TLS material for `rediss://` beyond the public root certificates that fourit trusts by
/// default: a private certificate authority, and a client certificate for mutual TLS.
/// Needs the `tls` cargo feature to have any effect.
///
/// ```
/// let tls = fourit::coordinator::TlsConfig::new()
///     .root_certificates(b"-----BEGIN CERTIFICATE-----\n...".to_vec());
/// assert!(!tls.is_empty());
/// ```
#[derive(Clone, Default)]
pub struct TlsConfig {
    pub(crate) root_certificates: Option<Vec<u8>>,
    pub(crate) client_identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsConfig {
    /// No extra material.
    pub fn new() -> TlsConfig {
        TlsConfig::default()
    }

    /// Trusts the certificate authorities in `pem` (PEM-encoded) instead of the public roots.
    pub fn root_certificates(mut self, pem: Vec<u8>) -> TlsConfig {
        self.root_certificates = Some(pem);
        self
    }

    /// Presents this client certificate and key (both PEM) for mutual TLS.
    pub fn client_identity(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> TlsConfig {
        self.client_identity = Some((cert_pem, key_pem));
        self
    }

    /// Whether nothing was configured.
    pub fn is_empty(&self) -> bool {
        self.root_certificates.is_none() && self.client_identity.is_none()
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("TlsConfig")
            .field("root_certificates", &self.root_certificates.is_some())
            .field("client_identity", &self.client_identity.is_some())
            .finish()
    }
}

/// How many replicas must acknowledge a claim before it runs, and how long to wait for them:
/// see [`ConnectOptions::wait_for_replicas`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaAcks {
    /// Replicas that must have the claim.
    pub replicas: usize,
    /// How long a claim waits for them (Redis's `WAIT` timeout).
    pub timeout: Duration,
}

/// The longest [`ReplicaAcks::timeout`]: a claim's whole round trip must fit in its
/// deadline, and a tick waits for it.
pub const MAX_REPLICA_WAIT: Duration = Duration::from_secs(1);

impl ReplicaAcks {
    /// Checks the numbers: at least one replica, a timeout from 1 ms to [`MAX_REPLICA_WAIT`].
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.replicas == 0 {
            return Err("wait for at least 1 replica (or do not set it)".to_string());
        }
        if self.replicas > 64 {
            return Err(format!(
                "{} replicas is more than Redis serves",
                self.replicas
            ));
        }
        if self.timeout < Duration::from_millis(1) || self.timeout > MAX_REPLICA_WAIT {
            return Err(format!(
                "the timeout {:?} must be from 1 ms to {MAX_REPLICA_WAIT:?}",
                self.timeout
            ));
        }
        Ok(())
    }
}

/// What to do when Redis may evict fourit's keys (its `maxmemory-policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EvictionCheck {
    /// Log a warning at connect (the default).
    #[default]
    Warn,
    /// Refuse to start when Redis may evict any key (`allkeys-*`), which can cost a tick run
    /// twice; warn for `volatile-*`, which can only cost an overlap.
    Strict,
}

/// Everything about connecting beyond the URL. Each setting also has a URL query form, so
/// `fourit::run(url)` users can set it; a builder setting wins over the URL's.
///
/// | Setting | URL query |
/// |---|---|
/// | [`wait_for_replicas`](Self::wait_for_replicas) | `?wait_replicas=1&wait_timeout=200ms` |
/// | [`eviction`](Self::eviction) | `?eviction=strict` |
/// | [`sentinel_credentials`](Self::sentinel_credentials) | `?sentinel_username=u&sentinel_password=p` |
///
/// ```
/// use std::time::Duration;
/// let options = fourit::coordinator::ConnectOptions::new()
///     .wait_for_replicas(1, Duration::from_millis(200));
/// assert_eq!(options.replica_acks().map(|acks| acks.replicas), Some(1));
/// ```
#[derive(Clone, Default)]
pub struct ConnectOptions {
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) replica_acks: Option<ReplicaAcks>,
    pub(crate) eviction: Option<EvictionCheck>,
    pub(crate) sentinel_credentials: Option<(Option<String>, String)>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
}

impl ConnectOptions {
    /// The defaults: no TLS material beyond the public roots, no replica acknowledgements,
    /// eviction risks logged as warnings.
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// TLS material for `rediss://` (needs the `tls` cargo feature).
    pub fn tls(mut self, tls: TlsConfig) -> ConnectOptions {
        self.tls = Some(tls);
        self
    }

    /// Runs a claim only once `replicas` replicas have it: each batch of claims is followed,
    /// on the same connection, by `WAIT replicas timeout`, and a claim acknowledged by fewer
    /// is not run (it is logged and recorded in the job's history as `not replicated`).
    ///
    /// This closes the window in which a primary that fails right after answering a claim
    /// loses it, so the promoted replica admits the tick again, *provided the replica
    /// promoted is one that acknowledged*: set `replicas` to the number of replicas, or make
    /// sure your failover promotes the most up-to-date one (Sentinel and Redis Cluster do).
    /// It does not make Redis's replication synchronous: a claim not run for want of acks
    /// may still reach the replicas later, and the tick is then missed, not run twice.
    pub fn wait_for_replicas(mut self, replicas: usize, timeout: Duration) -> ConnectOptions {
        self.replica_acks = Some(ReplicaAcks { replicas, timeout });
        self
    }

    /// What to do when Redis may evict fourit's keys; see [`EvictionCheck`].
    pub fn eviction(mut self, check: EvictionCheck) -> ConnectOptions {
        self.eviction = Some(check);
        self
    }

    /// The user and password for the sentinels of a `redis+sentinel://` URL, when they
    /// differ from the data nodes' (the URL's own credentials are the data nodes').
    pub fn sentinel_credentials(
        mut self,
        username: Option<&str>,
        password: &str,
    ) -> ConnectOptions {
        self.sentinel_credentials = Some((username.map(str::to_string), password.to_string()));
        self
    }

    /// The clock of a coordinator that has none of its own (`memory://`): its time, which the
    /// schedulers using it sync to. The scheduler sets it to its own
    /// [`clock`](crate::SchedulerBuilder::clock); the default is the host's.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> ConnectOptions {
        self.clock = Some(clock);
        self
    }

    /// The replica acknowledgements asked for, if any.
    pub fn replica_acks(&self) -> Option<ReplicaAcks> {
        self.replica_acks
    }

    /// These options, with each setting this one lacks taken from `other`.
    pub(crate) fn or(mut self, other: ConnectOptions) -> ConnectOptions {
        self.tls = self.tls.or(other.tls);
        self.replica_acks = self.replica_acks.or(other.replica_acks);
        self.eviction = self.eviction.or(other.eviction);
        self.sentinel_credentials = self.sentinel_credentials.or(other.sentinel_credentials);
        self.clock = self.clock.or(other.clock);
        self
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a password.
        f.debug_struct("ConnectOptions")
            .field("tls", &self.tls)
            .field("replica_acks", &self.replica_acks)
            .field("eviction", &self.eviction)
            .field("clock", &self.clock.is_some())
            .field(
                "sentinel_credentials",
                &self
                    .sentinel_credentials
                    .as_ref()
                    .map(|(user, _)| format!("{}:***", user.as_deref().unwrap_or(""))),
            )
            .finish()
    }
}

/// The schemes fourit opens, each with its backend: one table, so the error for an unknown
/// scheme lists exactly what works.
const SCHEMES: &[(&str, Backend)] = &[
    ("redis", Backend::Redis),
    ("rediss", Backend::Redis),
    ("redis+unix", Backend::Redis),
    ("redis+cluster", Backend::Redis),
    ("rediss+cluster", Backend::Redis),
    ("redis+sentinel", Backend::Redis),
    ("rediss+sentinel", Backend::Redis),
    ("unix", Backend::Redis),
    ("memory", Backend::Memory),
    ("sqlite", Backend::Sqlite),
    ("postgres", Backend::Postgres),
    ("postgresql", Backend::Postgres),
];

#[derive(Clone, Copy, Debug)]
enum Backend {
    Redis,
    Memory,
    Sqlite,
    Postgres,
}

/// Opens the coordinator a URL names: `redis://`, `rediss://`, `redis+cluster://host:port,...`,
/// `rediss+cluster://...`, `redis+sentinel://host:port,.../<master>`,
/// `rediss+sentinel://...` or `memory://`.
pub async fn connect(url: &str, namespace: &str) -> Result<Arc<dyn Store>, Error> {
    connect_with(url, namespace, &ConnectOptions::new()).await
}

/// [`connect`], with [`ConnectOptions`] (TLS material, replica acknowledgements, ...).
pub async fn connect_with(
    url: &str,
    namespace: &str,
    options: &ConnectOptions,
) -> Result<Arc<dyn Store>, Error> {
    let Some(scheme) = scheme(url) else {
        return Err(Error::InvalidUrl {
            url: redact_url(url),
            reason: "it has no scheme; write e.g. redis://127.0.0.1:6379 or memory://".to_string(),
        });
    };
    match SCHEMES.iter().find(|(name, _)| *name == scheme) {
        Some((_, Backend::Redis)) => Ok(Arc::new(
            RedisCoordinator::connect_with_options(url, namespace, options).await?,
        )),
        Some((_, Backend::Memory)) => {
            refuse_replica_acks(url, options)?;
            tracing::info!(
                "coordinating through memory://: jobs run once per tick within this process \
                 only; use redis:// to coordinate a fleet"
            );
            Ok(Arc::new(match &options.clock {
                Some(clock) => MemoryCoordinator::with_clock(clock.clone()),
                None => MemoryCoordinator::new(),
            }))
        }
        #[cfg(feature = "sqlite")]
        Some((_, Backend::Sqlite)) => {
            refuse_replica_acks(url, options)?;
            Ok(Arc::new(
                super::sqlite::SqliteCoordinator::connect(url, namespace).await?,
            ))
        }
        #[cfg(feature = "postgres")]
        Some((_, Backend::Postgres)) => {
            refuse_replica_acks(url, options)?;
            Ok(Arc::new(
                super::postgres::PostgresCoordinator::connect(url, namespace).await?,
            ))
        }
        #[cfg(not(feature = "postgres"))]
        Some((_, Backend::Postgres)) => Err(Error::InvalidUrl {
            url: redact_url(url),
            reason: "this fourit was built without Postgres: enable its `postgres` feature"
                .to_string(),
        }),
        #[cfg(not(feature = "sqlite"))]
        Some((_, Backend::Sqlite)) => Err(Error::InvalidUrl {
            url: redact_url(url),
            reason: "this fourit was built without SQLite: enable its `sqlite` feature".to_string(),
        }),
        None => Err(Error::InvalidUrl {
            url: redact_url(url),
            reason: format!(
                "unknown scheme `{scheme}`; use redis://, rediss:// (TLS), redis+cluster:// \
                 (Redis Cluster), redis+sentinel:// (Redis Sentinel), postgres://, sqlite:// (one host) \
                 or memory:// (one process)"
            ),
        }),
    }
}

/// Replica acknowledgements asked of a coordinator without replicas would stop every run:
/// an error at start instead.
pub(crate) fn refuse_replica_acks(url: &str, options: &ConnectOptions) -> Result<(), Error> {
    if options.replica_acks.is_some() {
        return Err(Error::InvalidOption {
            option: "wait_for_replicas",
            reason: format!(
                "{} has no replicas to acknowledge claims; it needs Redis with replicas",
                redact_url(url)
            ),
        });
    }
    Ok(())
}

fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once("://")?;
    (!scheme.is_empty()).then_some(scheme)
}
