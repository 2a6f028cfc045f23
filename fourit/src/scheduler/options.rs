//! Every scheduler option, written once: its default, its check, and the builder that sets it.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Scheduler;
use crate::clock::{Clock, SystemClock};
use crate::coordinator::{Coordinator, TlsConfig};
use crate::error::Error;
use crate::job::{Job, JobContext};
use crate::registry;

/// Default for [`SchedulerBuilder::namespace`].
pub const DEFAULT_NAMESPACE: &str = "fourit";
/// Default for [`SchedulerBuilder::grace`].
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// Default for [`SchedulerBuilder::shutdown_timeout`].
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`SchedulerBuilder::heartbeat_interval`]. A member silent for three intervals
/// counts as gone.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// Default for [`SchedulerBuilder::handoff`]: how long the preferred process has a tick to
/// itself before the others may claim it.
pub const DEFAULT_HANDOFF: Duration = Duration::from_millis(25);
/// Default for [`SchedulerBuilder::max_clock_offset`].
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
    pub(crate) tls: Option<TlsConfig>,
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
            tls: None,
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

/// Options of a [`Scheduler`], with defaults a user should rarely change.
///
/// Every setter returns the builder, so a chain never breaks; the first invalid value (a bad
/// job schedule included) is kept and returned by [`build`](Self::build).
///
/// ```no_run
/// use std::time::Duration;
///
/// # async fn demo() -> Result<(), fourit::Error> {
/// let scheduler = fourit::Scheduler::builder()
///     .url("redis://127.0.0.1:6379")
///     .namespace("billing")
///     .shutdown_timeout(Duration::from_secs(10))
///     .add_job("cleanup", "*/30 * * * * *", |ctx| async move {
///         println!("cleanup for tick {}", ctx.tick());
///     })
///     .build()?;
/// let handle = scheduler.handle();
/// tokio::spawn(async move {
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     handle.stop();
/// });
/// scheduler.run().await
/// # }
/// ```
#[derive(Debug, Default)]
pub struct SchedulerBuilder {
    target: Option<Target>,
    options: Options,
    /// Whether to include the jobs registered with `#[fourit::job]`.
    skip_registered: bool,
    jobs: Vec<Job>,
    /// The first invalid value given, returned by `build`.
    error: Option<Error>,
}

impl SchedulerBuilder {
    /// The coordinator URL: `redis://`, `rediss://` or `memory://`.
    pub fn url(mut self, url: &str) -> Self {
        self.target = Some(Target::Url(url.to_string()));
        self
    }

    /// A coordinator object instead of a URL (a custom backend, or one shared in tests).
    pub fn coordinator(mut self, coordinator: Arc<dyn Coordinator>) -> Self {
        self.target = Some(Target::Coordinator(coordinator));
        self
    }

    /// The prefix of every key in the coordinator (default `fourit`). Fleets with different
    /// namespaces share one Redis without seeing each other.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.options.namespace = namespace.to_string();
        self
    }

    /// This process's id in the fleet (default `hostname:pid:random`). Must be unique.
    pub fn node_id(mut self, node_id: &str) -> Self {
        self.options.node_id = Some(node_id.to_string());
        self
    }

    /// How late a tick may still be claimed (default 60 s); a job's `grace` overrides it.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.options.grace = grace;
        self
    }

    /// A fixed lease TTL for every job. By default each job's lease lives for the interval
    /// to its next tick, clamped to [`LEASE_TTL_BOUNDS`], and is renewed every third of it.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.options.lease_ttl = Some(ttl);
        self
    }

    /// How long shutdown waits for running jobs before cancelling them (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.options.shutdown_timeout = timeout;
        self
    }

    /// How often this process announces itself in the members set and measures its clock's
    /// offset to the coordinator's (default 2 s). A member silent for three intervals counts
    /// as gone.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.options.heartbeat_interval = interval;
        self
    }

    /// How long the preferred process has a tick to itself before the others may claim it
    /// (default 25 ms). Zero makes every process race for every tick. A dead preferred
    /// process delays a tick by this much, until the others notice it is gone.
    pub fn handoff(mut self, handoff: Duration) -> Self {
        self.options.handoff = handoff;
        self
    }

    /// The offset between this host's clock and the coordinator's above which a warning is
    /// logged (default 500 ms). fourit schedules by the coordinator's clock either way.
    pub fn max_clock_offset(mut self, offset: Duration) -> Self {
        self.options.max_clock_offset = offset;
        self
    }

    /// The local clock, corrected by the measured offset to the coordinator's clock
    /// (default: the host's). With `memory://` it is the coordinator's clock too.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.options.clock = clock;
        self
    }

    /// TLS material for `rediss://`: a private certificate authority to trust, a client
    /// certificate. Needs fourit's `tls` cargo feature.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.options.tls = Some(tls);
        self
    }

    /// Whether to run the jobs registered with `#[fourit::job]` (default `true`).
    pub fn registered_jobs(mut self, include: bool) -> Self {
        self.skip_registered = !include;
        self
    }

    /// Adds a job made at run time with [`Job::new`].
    pub fn job(mut self, job: Job) -> Self {
        self.jobs.push(job);
        self
    }

    /// Adds a job from a name, a cron schedule and an async closure. An invalid name or
    /// schedule is kept and returned by [`build`](Self::build), with the message
    /// `#[fourit::job]` would give.
    #[track_caller]
    pub fn add_job<F, Fut, R>(self, name: &str, schedule: &str, body: F) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: crate::IntoJobResult,
    {
        match Job::new(name, schedule, body) {
            Ok(job) => self.job(job),
            Err(err) => self.fail(err),
        }
    }

    fn fail(mut self, err: Error) -> Self {
        self.error.get_or_insert(err);
        self
    }

    /// Checks the options and collects the jobs (registered ones first), rejecting duplicate
    /// names; the first invalid value given to the builder is returned here. Connecting
    /// happens in [`Scheduler::run`].
    pub fn build(self) -> Result<Scheduler, Error> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let target = self.target.ok_or_else(|| Error::InvalidOption {
            option: "url",
            reason: "no coordinator: give a URL such as redis://127.0.0.1:6379 or memory://"
                .to_string(),
        })?;
        let node = self.options.check()?;
        let mut jobs = if self.skip_registered {
            Vec::new()
        } else {
            registry::jobs()?
        };
        jobs.extend(self.jobs);
        registry::check_unique_names(&jobs)?;
        Ok(Scheduler {
            config: Config {
                target,
                options: self.options,
                node,
            },
            jobs,
            stop: CancellationToken::new(),
        })
    }
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
