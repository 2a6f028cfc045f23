//! Every scheduler option, written once: its default and its check (the builder sets them).

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::coordinator::{ConnectOptions, Coordinator};
use crate::error::Error;

/// Default for [`SchedulerBuilder::namespace`](crate::SchedulerBuilder::namespace).
pub const DEFAULT_NAMESPACE: &str = "fourit";
/// Default for [`SchedulerBuilder::grace`](crate::SchedulerBuilder::grace).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// Default for [`SchedulerBuilder::shutdown_timeout`](crate::SchedulerBuilder::shutdown_timeout).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`SchedulerBuilder::heartbeat_interval`](crate::SchedulerBuilder::heartbeat_interval). A member silent for three intervals
/// counts as gone.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// Default for [`SchedulerBuilder::handoff`](crate::SchedulerBuilder::handoff): how long the preferred process has a tick to
/// itself before the others may claim it.
pub const DEFAULT_HANDOFF: Duration = Duration::from_millis(25);
/// Default for [`SchedulerBuilder::max_clock_offset`](crate::SchedulerBuilder::max_clock_offset).
pub const DEFAULT_MAX_CLOCK_OFFSET: Duration = Duration::from_millis(500);
/// Bounds of the default lease TTL (the interval to a job's next tick, clamped).
pub const LEASE_TTL_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(30));

/// Where the scheduler coordinates.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// A URL to connect to when the scheduler runs.
    Url(String),
    /// A coordinator object given by the caller.
    Coordinator(Arc<dyn Coordinator>),
}

/// The scheduler's options, each with its default; [`Options::check`] validates them all.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) namespace: String,
    pub(crate) node_id: Option<String>,
    pub(crate) grace: Duration,
    pub(crate) lease_ttl: Option<Duration>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) handoff: Duration,
    pub(crate) max_clock_offset: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) connect: ConnectOptions,
    pub(crate) app_version: Option<String>,
    pub(crate) listeners: crate::events::ListenerList,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            namespace: DEFAULT_NAMESPACE.to_string(),
            node_id: None,
            grace: DEFAULT_GRACE,
            lease_ttl: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            handoff: DEFAULT_HANDOFF,
            max_clock_offset: DEFAULT_MAX_CLOCK_OFFSET,
            clock: Arc::new(SystemClock),
            connect: ConnectOptions::new(),
            app_version: None,
            listeners: Default::default(),
        }
    }
}

impl Options {
    /// Checks every option; answers the node id to use (the configured one, or a fresh
    /// `hostname:pid:random`).
    pub(crate) fn check(&self) -> Result<Arc<str>, Error> {
        crate::spec::check_identifier("namespace", &self.namespace).map_err(|reason| {
            Error::InvalidOption {
                option: "namespace",
                reason,
            }
        })?;
        for (option, value) in [
            ("grace", self.grace),
            ("shutdown_timeout", self.shutdown_timeout),
            ("handoff", self.handoff),
            ("max_clock_offset", self.max_clock_offset),
        ] {
            if value > Duration::from_secs(365 * 86_400) {
                return Err(Error::InvalidOption {
                    option,
                    reason: format!("{value:?} is longer than a year"),
                });
            }
        }
        if self.heartbeat_interval.is_zero() {
            return Err(Error::InvalidOption {
                option: "heartbeat_interval",
                reason: "it must be longer than zero".to_string(),
            });
        }
        if let Some(ttl) = self.lease_ttl
            && ttl < Duration::from_millis(10)
        {
            return Err(Error::InvalidOption {
                option: "lease_ttl",
                reason: format!("{ttl:?} is too short to renew; use at least 10 ms"),
            });
        }
        if let Some(acks) = self.connect.replica_acks() {
            acks.check().map_err(|reason| Error::InvalidOption {
                option: "wait_for_replicas",
                reason,
            })?;
        }
        match &self.node_id {
            Some(id) => {
                crate::spec::check_identifier("node id", id).map_err(|reason| {
                    Error::InvalidOption {
                        option: "node_id",
                        reason,
                    }
                })?;
                Ok(Arc::from(id.as_str()))
            }
            None => Ok(Arc::from(default_node_id())),
        }
    }
}

/// What a built scheduler runs with.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) target: Target,
    pub(crate) options: Options,
    /// This process's node id, checked.
    pub(crate) node: Arc<str>,
}

/// `hostname:pid:random`: unique per process, readable in logs.
fn default_node_id() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let host: String = host
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && *c != '{' && *c != '}')
        .collect();
    let host = if host.is_empty() {
        "host".to_string()
    } else {
        host
    };
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{host}:{}:{:06x}", std::process::id(), random & 0xff_ffff)
}
