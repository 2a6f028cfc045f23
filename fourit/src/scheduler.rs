//! The scheduler: one driver task with a min-heap of next ticks, handing due ticks to the
//! coordinator in one batch and their runs to the runner.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::clock::{Clock, FleetClock, SystemClock};
use crate::coordinator::{
    self, ClaimNotice, ClaimOutcome, ClaimRequest, Coordinator, MemoryCoordinator, TlsConfig,
    redact_url,
};
use crate::error::Error;
use crate::job::{Job, JobContext};
use crate::placement;
use crate::registry;
use crate::runner;

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
/// Samples taken to measure the offset to the coordinator's clock, at start and after a step.
const CLOCK_SAMPLES: usize = 5;
/// The driver sleeps until this long before a tick and yields until the tick itself, so the
/// timer's millisecond resolution does not make every run late.
const PRECISE_WAKE_US: i64 = 2_000;
/// Claims sent in one pipeline; a larger batch goes out as several pipelines at once.
const CLAIM_CHUNK: usize = 8;
/// How many times a claimer that is told to wait for the handoff tries again.
const HANDOFF_RETRIES: usize = 3;
/// Bounds of the default lease TTL (the interval to a job's next tick, clamped).
pub const LEASE_TTL_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(30));
/// How many late ticks are counted one by one before the count is given as "at least".
const MISSED_COUNT_LIMIT: u32 = 10_000;

/// Runs the jobs registered with `#[fourit::job]` against the coordinator at `url`, until
/// SIGINT or SIGTERM, then shuts down gracefully.
///
/// `url` is `redis://[user:password@]host[:port][/db]`, `rediss://...` (TLS, with the `tls`
/// feature) or `memory://` (this process only). Returns `Err` at once for a URL it cannot use,
/// credentials Redis rejects, or two jobs with one name; an unreachable Redis is retried.
/// For other options use [`Scheduler::builder`].
pub async fn run(url: &str) -> Result<(), Error> {
    Scheduler::builder().url(url).build()?.run().await
}

/// Options of a [`Scheduler`], with defaults a user should rarely change.
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
///     })?
///     .build()?;
/// let handle = scheduler.handle();
/// tokio::spawn(async move {
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     handle.stop();
/// });
/// scheduler.run().await
/// # }
/// ```
#[derive(Debug)]
pub struct SchedulerBuilder {
    url: Option<String>,
    coordinator: Option<Arc<dyn Coordinator>>,
    namespace: String,
    node_id: Option<String>,
    grace: Duration,
    lease_ttl: Option<Duration>,
    shutdown_timeout: Duration,
    heartbeat_interval: Duration,
    handoff: Duration,
    max_clock_offset: Duration,
    clock: Arc<dyn Clock>,
    registered: bool,
    jobs: Vec<Job>,
    tls: Option<TlsConfig>,
}

impl Default for SchedulerBuilder {
    fn default() -> Self {
        SchedulerBuilder {
            url: None,
            coordinator: None,
            namespace: DEFAULT_NAMESPACE.to_string(),
            node_id: None,
            grace: DEFAULT_GRACE,
            lease_ttl: None,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            handoff: DEFAULT_HANDOFF,
            max_clock_offset: DEFAULT_MAX_CLOCK_OFFSET,
            clock: Arc::new(SystemClock),
            registered: true,
            jobs: Vec::new(),
            tls: None,
        }
    }
}

impl SchedulerBuilder {
    /// The coordinator URL: `redis://`, `rediss://` or `memory://`.
    pub fn url(mut self, url: &str) -> Self {
        self.url = Some(url.to_string());
        self
    }

    /// A coordinator object instead of a URL (a custom backend, or one shared in tests).
    pub fn coordinator(mut self, coordinator: Arc<dyn Coordinator>) -> Self {
        self.coordinator = Some(coordinator);
        self
    }

    /// The prefix of every Redis key (default `fourit`). Fleets with different namespaces
    /// share one Redis without seeing each other.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_string();
        self
    }

    /// This process's id in the fleet (default `hostname:pid:random`). Must be unique.
    pub fn node_id(mut self, node_id: &str) -> Self {
        self.node_id = Some(node_id.to_string());
        self
    }

    /// How late a tick may still be claimed (default 60 s); a job's `grace` overrides it.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// A fixed lease TTL for every job. By default each job's lease lives for the interval
    /// to its next tick, clamped to 1-30 s, and is renewed every third of it.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }

    /// How long shutdown waits for running jobs before cancelling them (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How often this process announces itself in the members set and measures its clock's
    /// offset to the coordinator's (default 2 s). A member silent for three intervals counts
    /// as gone.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// How long the preferred process has a tick to itself before the others may claim it
    /// (default 25 ms). Zero makes every process race for every tick. A dead preferred
    /// process delays a tick by this much, until the others notice it is gone.
    pub fn handoff(mut self, handoff: Duration) -> Self {
        self.handoff = handoff;
        self
    }

    /// The offset between this host's clock and the coordinator's above which a warning is
    /// logged (default 500 ms). fourit schedules by the coordinator's clock either way.
    pub fn max_clock_offset(mut self, offset: Duration) -> Self {
        self.max_clock_offset = offset;
        self
    }

    /// The local clock, corrected by the measured offset to the coordinator's clock
    /// (default: the host's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// TLS material for `rediss://`: a private certificate authority to trust, a client
    /// certificate. Needs fourit's `tls` cargo feature.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Whether to run the jobs registered with `#[fourit::job]` (default `true`).
    pub fn registered_jobs(mut self, include: bool) -> Self {
        self.registered = include;
        self
    }

    /// Adds a job made at run time with [`Job::new`].
    pub fn job(mut self, job: Job) -> Self {
        self.jobs.push(job);
        self
    }

    /// Adds a job from a name, a cron schedule and an async closure; an invalid name or
    /// schedule is an `Err` with the message `#[fourit::job]` would give.
    #[track_caller]
    pub fn add_job<F, Fut, R>(self, name: &str, schedule: &str, body: F) -> Result<Self, Error>
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: crate::IntoJobResult,
    {
        Ok(self.job(Job::new(name, schedule, body)?))
    }

    /// Checks the options and collects the jobs (registered ones first), rejecting duplicate
    /// names. Connecting happens in [`Scheduler::run`].
    pub fn build(self) -> Result<Scheduler, Error> {
        let url = match (&self.url, &self.coordinator) {
            (_, Some(_)) => None,
            (Some(url), None) => Some(url.clone()),
            (None, None) => {
                return Err(Error::InvalidOption {
                    option: "url",
                    reason:
                        "no coordinator: give a URL such as redis://127.0.0.1:6379 or memory://"
                            .to_string(),
                });
            }
        };
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
        let node_id = match self.node_id {
            Some(id) => {
                crate::spec::check_name(&id).map_err(|message| Error::InvalidOption {
                    option: "node_id",
                    reason: message.replacen("invalid job name", "invalid node id", 1),
                })?;
                id
            }
            None => default_node_id(),
        };
        let mut jobs = if self.registered {
            registry::jobs()?
        } else {
            Vec::new()
        };
        jobs.extend(self.jobs);
        registry::check_unique_names(&jobs)?;
        Ok(Scheduler {
            config: Config {
                url,
                coordinator: self.coordinator,
                namespace: self.namespace,
                node_id: Arc::from(node_id),
                grace: self.grace,
                lease_ttl: self.lease_ttl,
                shutdown_timeout: self.shutdown_timeout,
                heartbeat_interval: self.heartbeat_interval,
                handoff: self.handoff,
                max_clock_offset: self.max_clock_offset,
                clock: self.clock,
                tls: self.tls,
            },
            jobs,
            stop: CancellationToken::new(),
        })
    }
}

#[derive(Debug)]
struct Config {
    url: Option<String>,
    coordinator: Option<Arc<dyn Coordinator>>,
    namespace: String,
    node_id: Arc<str>,
    grace: Duration,
    lease_ttl: Option<Duration>,
    shutdown_timeout: Duration,
    heartbeat_interval: Duration,
    handoff: Duration,
    max_clock_offset: Duration,
    clock: Arc<dyn Clock>,
    tls: Option<TlsConfig>,
}

/// A configured scheduler, ready to run. Made by [`Scheduler::builder`].
#[derive(Debug)]
pub struct Scheduler {
    config: Config,
    jobs: Vec<Job>,
    stop: CancellationToken,
}

/// Stops a running [`Scheduler`] from elsewhere. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SchedulerHandle {
    stop: CancellationToken,
}

impl SchedulerHandle {
    /// Starts a graceful shutdown: no new claims, running jobs get the shutdown timeout to
    /// finish, then the scheduler's `run` returns.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Whether [`stop`](Self::stop) has been called.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }
}

impl Scheduler {
    /// Starts configuring a scheduler.
    pub fn builder() -> SchedulerBuilder {
        SchedulerBuilder::default()
    }

    /// A handle whose [`stop`](SchedulerHandle::stop) shuts this scheduler down.
    pub fn handle(&self) -> SchedulerHandle {
        SchedulerHandle {
            stop: self.stop.clone(),
        }
    }

    /// The jobs this scheduler runs.
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// This process's node id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// Runs until SIGINT or SIGTERM (or [`SchedulerHandle::stop`]), then shuts down gracefully.
    pub async fn run(self) -> Result<(), Error> {
        let signals = shutdown_signal()?;
        self.run_until(signals).await
    }

    /// Runs until `shutdown` completes (or [`SchedulerHandle::stop`]), then shuts down
    /// gracefully. Installs no signal handlers.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let Scheduler { config, jobs, stop } = self;
        let stop_on_signal = stop.clone();
        let watcher = async move {
            tokio::select! {
                () = shutdown => stop_on_signal.cancel(),
                () = stop_on_signal.cancelled() => {}
            }
        };
        let driver = async move {
            let result = drive_until_stopped(config, jobs, &stop).await;
            // On an error at start, end the watcher too.
            stop.cancel();
            result
        };
        let (result, ()) = tokio::join!(driver, watcher);
        result
    }
}

/// Connects, drives the jobs until `stop`, then shuts down gracefully.
async fn drive_until_stopped(
    config: Config,
    jobs: Vec<Job>,
    stop: &CancellationToken,
) -> Result<(), Error> {
    let Some(coordinator) = open_coordinator(&config, stop).await? else {
        return Ok(());
    };
    let clock = Arc::new(FleetClock::new(config.clock.clone()));
    let clock_off = sync_clock(coordinator.as_ref(), &clock, config.max_clock_offset).await;
    let (releases, pending) = mpsc::unbounded_channel();
    let claims_in_flight = Arc::new(runner::ClaimsInFlight::default());
    let releaser = tokio::spawn(runner::release_in_batches(
        coordinator.clone(),
        claims_in_flight.clone(),
        pending,
    ));
    let heard = Arc::new(Heard::new(&jobs));
    let listener = coordinator
        .claim_notices()
        .map(|notices| tokio::spawn(heard.clone().listen(notices)));
    let shared = Arc::new(Shared {
        coordinator,
        releases,
        claims_in_flight,
        heard,
        node: config.node_id.clone(),
        clock,
        members: RwLock::new(Arc::from(vec![config.node_id.clone()])),
        clock_off: AtomicBool::new(clock_off),
        shutdown: stop.clone(),
        abort: CancellationToken::new(),
        runs: TaskTracker::new(),
        outage: Outage::default(),
    });
    info!(
        node = %shared.node,
        jobs = jobs.len(),
        namespace = %config.namespace,
        "scheduler started"
    );
    let heartbeat = tokio::spawn(heartbeat(
        shared.clone(),
        config.heartbeat_interval,
        config.max_clock_offset,
    ));
    drive(&shared, &config, jobs).await;
    shut_down(&shared, config.shutdown_timeout).await;
    heartbeat.abort();
    releaser.abort();
    if let Some(listener) = listener {
        listener.abort();
    }
    if let Err(err) = shared.coordinator.leave(&shared.node).await {
        warn!(node = %shared.node, error = %err, "could not leave the members set");
    }
    info!(node = %shared.node, "scheduler stopped");
    Ok(())
}

/// What the driver, the claim tasks and the runners share.
pub(crate) struct Shared {
    pub(crate) coordinator: Arc<dyn Coordinator>,
    /// Finished runs waiting to be released, in batches (see [`runner::release_in_batches`]).
    pub(crate) releases: mpsc::UnboundedSender<runner::PendingRelease>,
    /// Claim calls waiting for their answer: releases wait for them.
    pub(crate) claims_in_flight: Arc<runner::ClaimsInFlight>,
    /// The latest tick of each job known to be decided elsewhere.
    pub(crate) heard: Arc<Heard>,
    pub(crate) node: Arc<str>,
    /// The fleet's clock: local time corrected to the coordinator's.
    pub(crate) clock: Arc<FleetClock>,
    /// The live members as of the last heartbeat, sorted; always includes this node.
    pub(crate) members: RwLock<Arc<[Arc<str>]>>,
    /// Whether the local clock is off by more than the allowed offset (warned once).
    pub(crate) clock_off: AtomicBool,
    /// Cancelled when shutdown starts: no new claims; runs are told through their context.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when the shutdown timeout has passed: runs still going are dropped.
    pub(crate) abort: CancellationToken,
    pub(crate) runs: TaskTracker,
    pub(crate) outage: Outage,
}

/// The latest tick of each job that the coordinator's claim notices say is decided, so that
/// the fallback claims after the handoff are only sent for ticks nobody claimed.
pub(crate) struct Heard {
    /// Job name → index in `ticks`.
    index: HashMap<Arc<str>, usize>,
    /// Per job, the latest decided tick heard of (UTC ms; `i64::MIN` for none).
    ticks: Vec<AtomicI64>,
}

impl Heard {
    fn new(jobs: &[Job]) -> Heard {
        Heard {
            index: jobs
                .iter()
                .enumerate()
                .map(|(index, job)| (job.name_arc().clone(), index))
                .collect(),
            ticks: jobs.iter().map(|_| AtomicI64::new(i64::MIN)).collect(),
        }
    }

    fn record(&self, notice: &ClaimNotice) {
        if let Some(&index) = self.index.get(&notice.job) {
            self.ticks[index].fetch_max(notice.tick_ms, Ordering::Relaxed);
        }
    }

    /// Whether the tick `tick_ms` of the job at `index` is known to be decided.
    fn decided(&self, index: usize, tick_ms: i64) -> bool {
        self.ticks
            .get(index)
            .is_some_and(|tick| tick.load(Ordering::Relaxed) >= tick_ms)
    }

    async fn listen(self: Arc<Heard>, mut notices: broadcast::Receiver<ClaimNotice>) {
        loop {
            match notices.recv().await {
                Ok(notice) => self.record(&notice),
                // Missed notices only cost refused claims.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// Logs a coordinator outage once when it starts and once when it ends, not once per tick.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    down: AtomicBool,
    skipped: AtomicU64,
}

impl Outage {
    pub(crate) fn failed(&self, what: &str, err: &Error, skipped_ticks: u64) {
        self.skipped.fetch_add(skipped_ticks, Ordering::Relaxed);
        if !self.down.swap(true, Ordering::AcqRel) {
            warn!(
                error = %err,
                "coordinator unavailable during {what}: ticks are skipped (fail closed) until it \
                 answers again"
            );
        } else {
            debug!(error = %err, "coordinator still unavailable during {what}");
        }
    }

    pub(crate) fn succeeded(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            let skipped = self.skipped.swap(0, Ordering::Relaxed);
            info!(skipped_ticks = skipped, "coordinator reachable again");
        }
    }
}

/// Connects, retrying with backoff while the coordinator is unreachable. `None` if shutdown
/// was requested first.
async fn open_coordinator(
    config: &Config,
    stop: &CancellationToken,
) -> Result<Option<Arc<dyn Coordinator>>, Error> {
    if let Some(coordinator) = &config.coordinator {
        return Ok(Some(coordinator.clone()));
    }
    let Some(url) = &config.url else {
        return Err(Error::InvalidOption {
            option: "url",
            reason: "no coordinator configured".to_string(),
        });
    };
    if url.starts_with("memory://") {
        info!(
            "coordinating through memory://: jobs run once per tick within this process only; \
             use redis:// to coordinate a fleet"
        );
        // Its time is the configured clock, which the scheduler then syncs to.
        return Ok(Some(Arc::new(MemoryCoordinator::with_clock(
            config.clock.clone(),
        ))));
    }
    let mut backoff = Duration::from_millis(200);
    let mut warned = false;
    loop {
        match coordinator::connect_with(url, &config.namespace, config.tls.as_ref()).await {
            Ok(coordinator) => {
                if warned {
                    info!(url = %redact_url(url), "coordinator reachable; scheduling starts");
                }
                return Ok(Some(coordinator));
            }
            Err(err) if err.is_unavailable() => {
                if !warned {
                    warn!(
                        url = %redact_url(url),
                        error = %err,
                        "coordinator unreachable; retrying with backoff, no job runs until it answers"
                    );
                    warned = true;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return Ok(None),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(err) => return Err(err),
        }
    }
}

/// Takes a few samples of the coordinator's clock, so scheduling starts in the fleet's time.
/// Returns whether the offset is above `max_offset` (and says so).
async fn sync_clock(
    coordinator: &dyn Coordinator,
    clock: &FleetClock,
    max_offset: Duration,
) -> bool {
    if !measure_clock(coordinator, clock).await {
        return false;
    }
    // A step noticed before the first sample is part of the initial offset, not news.
    clock.take_pending_step();
    let offset_ms = clock.offset_us() / 1000;
    let off = offset_ms.unsigned_abs() > u64::try_from(max_offset.as_millis()).unwrap_or(u64::MAX);
    if off {
        warn_clock_off(offset_ms);
    }
    off
}

/// Takes [`CLOCK_SAMPLES`] samples of the coordinator's clock, one after the other; `false`
/// if the coordinator has no clock (or did not answer), which leaves the offset as it was.
async fn measure_clock(coordinator: &dyn Coordinator, clock: &FleetClock) -> bool {
    for _ in 0..CLOCK_SAMPLES {
        let start = clock.sample_start();
        match coordinator.server_time().await {
            Ok(Some(server_us)) => {
                clock.record(start, server_us);
            }
            Ok(None) | Err(_) => return false,
        }
    }
    true
}

/// Measures the offset again after a step, and says so once, with the step and the new
/// offset. The offset warning's state follows silently: this warning already gave it.
async fn remeasure_after_step(shared: &Shared, max_offset_ms: i64) {
    let measured = measure_clock(shared.coordinator.as_ref(), &shared.clock).await;
    let Some(step) = shared.clock.take_pending_step() else {
        return;
    };
    let offset_ms = shared.clock.offset_us() / 1000;
    if step.local_us != 0 {
        warn!(
            step_ms = step.local_us / 1000,
            offset_ms,
            measured,
            "this host's wall clock stepped; fourit noticed it at once and keeps scheduling by \
             the coordinator's clock (the offset to it was measured again)"
        );
    }
    if step.offset_jump_us != 0 {
        warn!(
            moved_ms = step.offset_jump_us / 1000,
            offset_ms,
            measured,
            "the coordinator's clock moved against this host's; fourit follows the \
             coordinator's clock (the offset to it was measured again)"
        );
    }
    shared
        .clock_off
        .store(offset_ms.abs() > max_offset_ms, Ordering::Relaxed);
}

/// The one warning about a host clock that is off from the coordinator's.
fn warn_clock_off(offset_ms: i64) {
    warn!(
        offset_ms,
        "this host's clock is off from the coordinator's; fourit schedules by the \
         coordinator's clock, but check the host's time synchronisation"
    );
}

/// Announces this process, refreshes the members view and measures the clock offset; after
/// a step of either clock, measures the offset again at once.
async fn heartbeat(shared: Arc<Shared>, interval: Duration, max_offset: Duration) {
    let stale_after = interval.saturating_mul(3);
    let max_offset_ms = i64::try_from(max_offset.as_millis()).unwrap_or(i64::MAX);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shared.clock.stepped() => {
                remeasure_after_step(&shared, max_offset_ms).await;
                continue;
            }
        }
        let start = shared.clock.sample_start();
        match shared
            .coordinator
            .heartbeat(&shared.node, stale_after)
            .await
        {
            Ok(beat) => {
                shared.outage.succeeded();
                if let Some(server_us) = beat.server_us {
                    let offset_ms = shared.clock.record(start, server_us) / 1000;
                    let off = offset_ms.abs() > max_offset_ms;
                    // After a step, the re-measurement says it all, once.
                    if !shared.clock.step_pending()
                        && off != shared.clock_off.swap(off, Ordering::Relaxed)
                    {
                        if off {
                            warn_clock_off(offset_ms);
                        } else {
                            info!(
                                offset_ms,
                                "this host's clock agrees with the coordinator's again"
                            );
                        }
                    }
                }
                let mut members: Vec<Arc<str>> = beat.members.into_iter().map(Arc::from).collect();
                if !members.contains(&shared.node) {
                    members.push(shared.node.clone());
                }
                members.sort();
                if let Ok(mut view) = shared.members.write() {
                    *view = Arc::from(members);
                }
            }
            Err(err) => shared.outage.failed("heartbeat", &err, 0),
        }
    }
}

/// A job's next tick, in UTC milliseconds, for the min-heap.
type Due = Reverse<(i64, usize)>;

/// The driver loop: sleep until the earliest tick, re-read the clock, batch every due job.
async fn drive(shared: &Arc<Shared>, config: &Config, jobs: Vec<Job>) {
    let jobs: Arc<[Job]> = Arc::from(jobs);
    let mut heap: BinaryHeap<Due> = BinaryHeap::with_capacity(jobs.len());
    let start = shared.clock.now();
    for (index, job) in jobs.iter().enumerate() {
        // On start, the latest tick still within grace is due now: a fleet restarted across
        // a tick still runs it once (the high-water mark refuses it if it already ran).
        let grace = job_grace(job, config);
        let first = match job.schedule().latest_at_or_before(start) {
            Some(latest) if start - latest <= grace => Some(latest),
            _ => job.schedule().next_after(start),
        };
        match first {
            Some(tick) => heap.push(Reverse((tick.timestamp_millis(), index))),
            None => warn!(
                job = job.name(),
                "schedule has no future tick; the job never runs"
            ),
        }
    }
    let mut last_spin = None;
    // Wakes the driver when the fleet's time jumps (a step of either clock was measured):
    // the heap holds ticks, which need no change, but the wait for them does.
    let mut clock_epoch = shared.clock.epoch();
    clock_epoch.mark_unchanged();
    // The claims of the next tick, prepared while waiting the last moments for it.
    let mut prepared: Option<(i64, Vec<(usize, ClaimRequest)>)> = None;
    loop {
        let now = shared.clock.now();
        if let Some((due_ms, _)) = &prepared
            && now.timestamp_millis() >= *due_ms
            && let Some((_, batch)) = prepared.take()
        {
            dispatch(shared, &jobs, batch, config.handoff);
        }
        if prepared.is_none() {
            let batch = take_due(&mut heap, &jobs, config, now, &shared.node);
            if !batch.is_empty() {
                dispatch(shared, &jobs, batch, config.handoff);
            }
        }
        let next_ms = match (&prepared, heap.peek()) {
            (Some((due_ms, _)), _) => *due_ms,
            (None, Some(Reverse((next_ms, _)))) => *next_ms,
            (None, None) => {
                shared.shutdown.cancelled().await;
                return;
            }
        };
        let wait_us = next_ms.saturating_mul(1000) - shared.clock.now().timestamp_micros();
        if wait_us > PRECISE_WAKE_US {
            // tokio's timer has millisecond resolution and wakes up to a millisecond late:
            // sleep to just before the tick, then yield until it.
            let sleep =
                Duration::from_micros(u64::try_from(wait_us - PRECISE_WAKE_US).unwrap_or(0));
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                _ = clock_epoch.changed() => {
                    clock_epoch.mark_unchanged();
                    debug!(node = %shared.node, "the fleet's time jumped: re-planning the wait");
                }
                () = shared.shutdown.cancelled() => return,
            }
        } else if wait_us > 0 {
            if prepared.is_none()
                && let Some(at) = DateTime::from_timestamp_millis(next_ms)
            {
                // Walk the schedules and build the claims now, so that at the tick they
                // only need sending.
                let batch = take_due(&mut heap, &jobs, config, at, &shared.node);
                prepared = Some((next_ms, batch));
                continue;
            }
            let now = shared.clock.now();
            if last_spin == Some(now) {
                // The clock did not move between two turns: it is a paused test clock, which
                // only advances while every task sleeps.
                tokio::time::sleep(Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)))
                    .await;
            } else {
                tokio::task::yield_now().await;
            }
            last_spin = Some(now);
            if shared.shutdown.is_cancelled() {
                return;
            }
        }
    }
}

fn job_grace(job: &Job, config: &Config) -> TimeDelta {
    let grace = job.grace_duration().unwrap_or(config.grace);
    TimeDelta::from_std(grace).unwrap_or(TimeDelta::MAX)
}

/// Pops every job due at `now`, keeps only its latest due tick (older ones are missed), and
/// pushes its next tick back. Returns the claims to make, with each job's index.
fn take_due(
    heap: &mut BinaryHeap<Due>,
    jobs: &[Job],
    config: &Config,
    now: DateTime<Utc>,
    node: &Arc<str>,
) -> Vec<(usize, ClaimRequest)> {
    let now_ms = now.timestamp_millis();
    let mut batch = Vec::new();
    while let Some(Reverse((due_ms, index))) = heap.peek().copied() {
        if due_ms > now_ms {
            break;
        }
        heap.pop();
        let job = &jobs[index];
        let schedule = job.schedule();
        let Some(due) = DateTime::from_timestamp_millis(due_ms) else {
            continue;
        };
        // Walk to the latest tick at or before now: the ones passed over were missed (the
        // process slept, or the host was suspended). `following` ends as the first tick after
        // now: the next one to wait for, and the end of this run's default lease.
        let mut latest = due;
        let mut passed_over = 0u32;
        let mut following = schedule.next_after(latest);
        while let Some(next) = following {
            if next > now {
                break;
            }
            passed_over += 1;
            if passed_over >= MISSED_COUNT_LIMIT {
                latest = schedule.latest_at_or_before(now).unwrap_or(next);
                following = schedule.next_after(latest.max(now));
                break;
            }
            latest = next;
            following = schedule.next_after(latest);
        }
        if passed_over > 0 {
            warn!(
                job = job.name(),
                missed = passed_over,
                latest = %latest,
                "missed ticks: the process woke too late for them; only the latest is considered"
            );
        }
        if now - latest <= job_grace(job, config) {
            batch.push((
                index,
                ClaimRequest {
                    job: job.name_arc().clone(),
                    tick_ms: latest.timestamp_millis(),
                    node: node.clone(),
                    lease_ttl: lease_ttl_until(latest, following, config.lease_ttl),
                    overlap: job.overlap_policy(),
                    preferred: None,
                    handoff: config.handoff,
                },
            ));
        } else {
            warn!(
                job = job.name(),
                tick = %latest,
                late_ms = (now - latest).num_milliseconds(),
                "missed tick: later than its grace"
            );
        }
        if let Some(next) = following {
            heap.push(Reverse((next.timestamp_millis(), index)));
        }
    }
    batch
}

/// The lease TTL of a run at `tick`: fixed if configured, else the interval to the job's
/// `next` tick, clamped to [`LEASE_TTL_BOUNDS`].
fn lease_ttl_until(
    tick: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    fixed: Option<Duration>,
) -> Duration {
    if let Some(ttl) = fixed {
        return ttl;
    }
    let (min, max) = LEASE_TTL_BOUNDS;
    next.and_then(|next| (next - tick).to_std().ok())
        .map_or(max, |interval| interval.clamp(min, max))
}

/// Places the due ticks: the ones this process is preferred for are claimed at once, the
/// others after the handoff, each group in one round trip.
fn dispatch(
    shared: &Arc<Shared>,
    jobs: &Arc<[Job]>,
    mut batch: Vec<(usize, ClaimRequest)>,
    handoff: Duration,
) {
    let members = shared
        .members
        .read()
        .map(|view| view.clone())
        .unwrap_or_else(|_| Arc::from(vec![shared.node.clone()]));
    // Jobs due at the same tick are placed together, so they spread over the members. Alone,
    // this process is preferred for everything: no placement, no handoff, no notices.
    batch.sort_by_key(|(_, request)| request.tick_ms);
    let mut start = if members.len() > 1 { 0 } else { batch.len() };
    while start < batch.len() {
        let tick_ms = batch[start].1.tick_ms;
        let end = batch[start..]
            .iter()
            .position(|(_, request)| request.tick_ms != tick_ms)
            .map_or(batch.len(), |offset| start + offset);
        let names: Vec<&str> = batch[start..end]
            .iter()
            .map(|(_, request)| &*request.job)
            .collect();
        let placed = placement::preferred(&names, tick_ms, &members);
        for ((_, request), preferred) in batch[start..end].iter_mut().zip(placed) {
            request.preferred = preferred;
        }
        start = end;
    }
    let (mine, others): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(_, request)| {
        request.handoff.is_zero()
            || request
                .preferred
                .as_ref()
                .is_none_or(|preferred| *preferred == shared.node)
    });
    // Several pipelines sent at once rather than one: Redis answers the first while it still
    // runs the later ones' scripts, so the first runs start sooner.
    let mut mine = mine.into_iter().peekable();
    let mut claiming = Vec::new();
    while mine.peek().is_some() {
        let chunk: Vec<_> = mine.by_ref().take(CLAIM_CHUNK).collect();
        let shared_for_claims = shared.clone();
        let jobs = jobs.clone();
        claiming.push(shared.runs.spawn(async move {
            claim_and_run(shared_for_claims, jobs, chunk, None).await;
        }));
    }
    if !others.is_empty() {
        let shared_for_claims = shared.clone();
        let jobs = jobs.clone();
        let handoff_ms = i64::try_from(handoff.as_millis()).unwrap_or(i64::MAX);
        let open_at = others
            .iter()
            .map(|(_, request)| request.tick_ms)
            .max()
            .unwrap_or_default()
            .saturating_add(handoff_ms);
        shared.runs.spawn(async move {
            // The other members started claiming when this one did. However long this one's
            // own claims took (thousands of jobs due at once take a while), theirs take about
            // as long: give them a handoff after that, so their claims are heard of first.
            for claim in claiming {
                let _ = claim.await;
            }
            let own_claims_done = shared_for_claims.clock.now().timestamp_millis();
            let not_before = open_at.max(own_claims_done.saturating_add(handoff_ms));
            claim_and_run(shared_for_claims, jobs, others, Some(not_before)).await;
        });
    }
}

/// Sleeps until `at_ms` in the fleet's time; `false` if shutdown came first.
async fn sleep_until_fleet_time(shared: &Shared, at_ms: i64) -> bool {
    let wait_ms = at_ms - shared.clock.now().timestamp_millis();
    if wait_ms <= 0 {
        return !shared.shutdown.is_cancelled();
    }
    let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = shared.shutdown.cancelled() => false,
    }
}

/// Claims a batch in one round trip (after `not_before`, fleet time, if given), retries what
/// the handoff window refused, then starts the runs this process won.
async fn claim_and_run(
    shared: Arc<Shared>,
    jobs: Arc<[Job]>,
    mut batch: Vec<(usize, ClaimRequest)>,
    not_before: Option<i64>,
) {
    if let Some(at_ms) = not_before
        && !sleep_until_fleet_time(&shared, at_ms).await
    {
        return;
    }
    for attempt in 0..=HANDOFF_RETRIES {
        if not_before.is_some() {
            // Waiting out the handoff: claim only what the preferred members have not.
            batch.retain(|(index, request)| !shared.heard.decided(*index, request.tick_ms));
            if batch.is_empty() {
                return;
            }
        }
        let requests: Vec<ClaimRequest> =
            batch.iter().map(|(_, request)| request.clone()).collect();
        let in_flight = shared.claims_in_flight.start();
        let answer = shared.coordinator.claim(&requests).await;
        drop(in_flight);
        let outcomes = match answer {
            Ok(outcomes) => {
                shared.outage.succeeded();
                outcomes
            }
            Err(err) => {
                shared.outage.failed(
                    "claim",
                    &err,
                    u64::try_from(requests.len()).unwrap_or(u64::MAX),
                );
                return;
            }
        };
        let mut retry = Vec::new();
        // How long to wait before retrying, by the coordinator's clock (ms).
        let mut retry_wait_ms = 0i64;
        for ((index, request), outcome) in batch.into_iter().zip(outcomes) {
            let job = &jobs[index];
            let tick = DateTime::from_timestamp_millis(request.tick_ms).unwrap_or_default();
            match outcome {
                ClaimOutcome::Run(lease) => {
                    runner::spawn(&shared, job.clone(), lease, request.lease_ttl);
                }
                ClaimOutcome::Taken => {
                    debug!(job = job.name(), tick = %tick, node = %shared.node, "tick claimed elsewhere");
                }
                ClaimOutcome::Overlap { holder } => {
                    info!(
                        job = job.name(),
                        tick = %tick,
                        node = %shared.node,
                        holder = %holder,
                        "tick skipped: the previous run still holds the lease (overlap = \"skip\")"
                    );
                }
                ClaimOutcome::Retry { at_ms, now_ms } => {
                    retry_wait_ms = retry_wait_ms.max(at_ms - now_ms);
                    retry.push((index, request));
                }
                ClaimOutcome::Early { now_ms } => {
                    // This host's clock runs ahead of the coordinator's by more than the
                    // estimate allows: wait for the tick by the coordinator's clock, and
                    // have the offset measured again.
                    debug!(
                        job = job.name(),
                        tick = %tick,
                        early_ms = request.tick_ms - now_ms,
                        "claim refused as early: retrying at the tick"
                    );
                    shared.clock.request_measurement();
                    retry_wait_ms = retry_wait_ms.max(request.tick_ms - now_ms);
                    retry.push((index, request));
                }
            }
        }
        if retry.is_empty() {
            return;
        }
        if attempt == HANDOFF_RETRIES {
            warn!(
                node = %shared.node,
                ticks = retry.len(),
                "the coordinator kept refusing claims for the handoff window or as early; is \
                 this host's clock far off?"
            );
            return;
        }
        // Our clock estimate was a little early: the coordinator says how long to wait, by
        // its own clock, so the wait is right even while this host's clock is off.
        let wait = Duration::from_millis(u64::try_from(retry_wait_ms).unwrap_or(0));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.shutdown.cancelled() => return,
        }
        batch = retry;
    }
}

/// Waits for running jobs up to the timeout, then cancels the rest and waits for them to
/// release their leases.
async fn shut_down(shared: &Arc<Shared>, timeout: Duration) {
    shared.runs.close();
    let running = shared.runs.len();
    if running > 0 {
        info!(
            node = %shared.node,
            running,
            timeout = ?timeout,
            "shutting down: waiting for running jobs"
        );
    }
    if tokio::time::timeout(timeout, shared.runs.wait())
        .await
        .is_err()
    {
        warn!(
            node = %shared.node,
            running = shared.runs.len(),
            "shutdown timeout passed: cancelling the jobs still running"
        );
        shared.abort.cancel();
        // Cancelled runs only release their leases now: each release has its own deadline.
        shared.runs.wait().await;
    }
}

#[cfg(unix)]
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let io = |source| Error::Io {
        context: "installing the SIGINT/SIGTERM handlers",
        source,
    };
    let mut interrupt = signal(SignalKind::interrupt()).map_err(io)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(io)?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => info!("SIGINT received: shutting down"),
            _ = terminate.recv() => info!("SIGTERM received: shutting down"),
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send, Error> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            info!("Ctrl-C received: shutting down");
        }
    })
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

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
