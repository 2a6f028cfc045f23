//! The builder: every setter returns it, so a chain never breaks; the first invalid value
//! is kept and returned by `build`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::lifecycle::Scheduler;
use super::options::{Config, Options, Target};
use crate::clock::Clock;
use crate::coordinator::{Coordinator, TlsConfig};
use crate::error::Error;
use crate::job::{Job, JobContext};
use crate::registry;

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
    /// to its next tick, clamped to [`LEASE_TTL_BOUNDS`](crate::LEASE_TTL_BOUNDS), and is renewed every third of it.
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
        self.options.connect = self.options.connect.tls(tls);
        self
    }

    /// Runs a claim only once `replicas` Redis replicas have it, waiting at most `timeout`
    /// (1 ms to 1 s) per batch of claims; a claim acknowledged by fewer is not run, and is
    /// logged and recorded as `not replicated`. Off by default; the URL form is
    /// `?wait_replicas=1&wait_timeout=200ms`. See
    /// [`ConnectOptions::wait_for_replicas`](crate::coordinator::ConnectOptions::wait_for_replicas)
    /// for what it guarantees and what it does not.
    pub fn wait_for_replicas(mut self, replicas: usize, timeout: Duration) -> Self {
        self.options.connect = self.options.connect.wait_for_replicas(replicas, timeout);
        self
    }

    /// What to do when Redis may evict fourit's keys (default: warn at start);
    /// [`EvictionCheck::Strict`](crate::coordinator::EvictionCheck::Strict) refuses to start
    /// on an `allkeys-*` policy. The URL form is `?eviction=strict`.
    pub fn eviction(mut self, check: crate::coordinator::EvictionCheck) -> Self {
        self.options.connect = self.options.connect.eviction(check);
        self
    }

    /// The credentials of the sentinels of a `redis+sentinel://` URL, when they differ from
    /// the data nodes' (the URL's own). The URL form is
    /// `?sentinel_username=u&sentinel_password=p`.
    pub fn sentinel_credentials(mut self, username: Option<&str>, password: &str) -> Self {
        self.options.connect = self
            .options
            .connect
            .sentinel_credentials(username, password);
        self
    }

    /// The application's version, shown beside this member's jobs in the catalog
    /// (`fourit::admin`, `fourit status`), so a rolling deploy can be told apart.
    pub fn app_version(mut self, version: &str) -> Self {
        self.options.app_version = Some(version.to_string());
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

    /// Adds a listener of every event of the scheduler ([`crate::events::Event`]): claims,
    /// starts, outcomes, skips, missed ticks, lost leases, outages, members, clock steps. A
    /// closure `|event: &Event<'_>| ...` will do. Listeners are called inline and must not
    /// block (spawn anything slow); a panicking listener is caught and logged once.
    pub fn on_event(mut self, listener: impl crate::events::Listener) -> Self {
        self.options.listeners.0.push(Arc::new(listener));
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

impl Scheduler {
    /// Starts configuring a scheduler.
    pub fn builder() -> SchedulerBuilder {
        SchedulerBuilder::default()
    }
}
