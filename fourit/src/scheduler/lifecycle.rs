//! The scheduler's lifecycle: connecting (with backoff), wiring the parts together, running
//! until a signal or a stop, and the graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::claims::Claims;
use super::dispatch::Dispatcher;
use super::driver::Driver;
use super::manual::ManualRuns;
use super::membership::{Heartbeat, Members};
use super::notices::Heard;
use super::options::{Config, Options, Target};
use super::outage::Outage;
use super::releases::{ClaimsInFlight, Releases};
use super::runner::Runner;
use super::timed::timed;
use crate::clock::FleetClock;
use crate::coordinator::{self, Coordinator, JobDefinition, redact_url};
use crate::error::Error;
use crate::events::{Event, Events};
use crate::job::Job;

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

/// A configured scheduler, ready to run. Made by [`Scheduler::builder`].
#[derive(Debug)]
pub struct Scheduler {
    pub(super) config: Config,
    pub(super) jobs: Vec<Job>,
    pub(super) stop: CancellationToken,
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
        &self.config.node
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

/// Connects, wires the parts together, drives the jobs until `stop`, then shuts down
/// gracefully.
async fn drive_until_stopped(
    config: Config,
    jobs: Vec<Job>,
    stop: &CancellationToken,
) -> Result<(), Error> {
    let Some(coordinator) = open_coordinator(&config, stop).await? else {
        return Ok(());
    };
    let Config {
        options, node: id, ..
    } = config;
    #[allow(unused_mut)]
    let mut listeners = options.listeners.0.clone();
    // The metrics listener is wired here, beside the others: `events` knows no listener.
    #[cfg(feature = "metrics")]
    listeners.push(Arc::new(crate::metrics::Metrics));
    let events = Arc::new(Events::new(listeners));
    // Round trips are timed only for someone listening.
    let coordinator: Arc<dyn Coordinator> = if events.active() {
        timed(coordinator, events.clone())
    } else {
        coordinator
    };
    let clock = Arc::new(FleetClock::new(options.clock.clone()));
    let outage = Arc::new(Outage::new(events.clone()));
    let members = Arc::new(Members::alone(&id));
    let mut heartbeat = Heartbeat {
        coordinator: coordinator.clone(),
        node: id.clone(),
        clock: clock.clone(),
        members: members.clone(),
        outage: outage.clone(),
        interval: options.heartbeat_interval,
        max_clock_offset: options.max_clock_offset,
        manual: None,
        events: events.clone(),
    };
    let clock_off = heartbeat.sync_clock().await;
    register(&*coordinator, &id, &jobs, &options).await;
    let in_flight = Arc::new(ClaimsInFlight::default());
    let (releases, releaser) = Releases::start(coordinator.clone(), in_flight.clone());
    let heard = Arc::new(Heard::new(&jobs));
    // Subscribed before the first claim (notices sent before the listener task starts wait
    // in the feed).
    let notices = coordinator.claim_notices();
    let runner = Arc::new(Runner {
        coordinator: coordinator.clone(),
        releases,
        clock: clock.clone(),
        node: id.clone(),
        shutdown: stop.clone(),
        abort: CancellationToken::new(),
        tasks: TaskTracker::new(),
        running: Default::default(),
        events: events.clone(),
    });
    let missed = forward_missed(&*coordinator, &id, &events);
    let driver = Driver {
        clock,
        dispatcher: Dispatcher {
            claims: Arc::new(Claims {
                runner: runner.clone(),
                heard,
                outage,
                in_flight,
                unreplicated: Default::default(),
            }),
            members,
            handoff: options.handoff,
        },
        shutdown: stop.clone(),
        node: id.clone(),
        options,
    };
    info!(
        node = %id,
        jobs = jobs.len(),
        namespace = %driver.options.namespace,
        "scheduler started"
    );
    let manual = Arc::new(ManualRuns::new(
        runner.clone(),
        jobs.clone(),
        driver.options.lease_ttl,
    ));
    heartbeat.manual = Some(manual.clone());
    let listener = notices.map(|notices| {
        tokio::spawn(
            driver
                .dispatcher
                .claims
                .heard
                .clone()
                .listen(notices, manual),
        )
    });
    let heartbeat = tokio::spawn(heartbeat.run(clock_off));
    driver.drive(jobs).await;
    shut_down(&runner, driver.options.shutdown_timeout).await;
    heartbeat.abort();
    releaser.abort();
    if let Some(listener) = listener {
        listener.abort();
    }
    if let Some(missed) = missed {
        missed.abort();
    }
    // A member that cannot reach the coordinator must not be held here: the others forget
    // it after three heartbeat intervals anyway.
    match tokio::time::timeout(LEAVE_DEADLINE, coordinator.leave(&id)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => warn!(
            node = %id,
            error = %err,
            "could not leave the members set: the others stop counting this member once its \
             heartbeat is missed"
        ),
        Err(_) => warn!(
            node = %id,
            deadline = ?LEAVE_DEADLINE,
            "leaving the members set did not finish in time: the others stop counting this \
             member once its heartbeat is missed"
        ),
    }
    info!(node = %id, "scheduler stopped");
    Ok(())
}

/// Hands the ticks this member's claims recorded as missed to the listeners, if any listen
/// and the coordinator tells.
fn forward_missed(
    coordinator: &dyn Coordinator,
    node: &Arc<str>,
    events: &Arc<Events>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !events.active() {
        return None;
    }
    let mut feed = coordinator.missed_ticks()?;
    let node = node.clone();
    let events = events.clone();
    Some(tokio::spawn(async move {
        loop {
            match feed.recv().await {
                Ok(missed) if missed.node == node => events.emit(&Event::Missed {
                    job: &missed.job,
                    count: missed.count,
                    first: crate::events::at(missed.first_ms),
                    last: crate::events::at(missed.last_ms),
                }),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }))
}

/// How long shutdown waits to leave the members set.
const LEAVE_DEADLINE: Duration = Duration::from_secs(1);

/// Waits for running jobs up to the timeout, then cancels the rest and waits for them to
/// release their leases.
async fn shut_down(runner: &Runner, timeout: Duration) {
    let tasks = &runner.tasks;
    tasks.close();
    // Jobs, not tasks: a claim in flight is a task too, and ends by its own deadline.
    let running = runner.running.load(std::sync::atomic::Ordering::Relaxed);
    if running > 0 {
        info!(
            node = %runner.node,
            running,
            timeout = ?timeout,
            "shutting down: waiting for running jobs"
        );
    }
    if tokio::time::timeout(timeout, tasks.wait()).await.is_err() {
        warn!(
            node = %runner.node,
            running = runner.running.load(std::sync::atomic::Ordering::Relaxed),
            "shutdown timeout passed: cancelling the jobs still running"
        );
        runner.abort.cancel();
        // Cancelled runs only release their leases now: each release has its own deadline.
        tasks.wait().await;
    }
}

/// Connects, retrying with backoff while the coordinator is unreachable. `None` if shutdown
/// was requested first.
/// Records this member's jobs in the catalog, and warns once per job that a live member
/// runs differently (a rolling deploy that changed a schedule shows). Not fatal: the
/// catalog is for operators; scheduling does not read it.
async fn register(coordinator: &dyn Coordinator, node: &str, jobs: &[Job], options: &Options) {
    let definitions: Vec<JobDefinition> = jobs
        .iter()
        .map(|job| JobDefinition {
            name: job.name().to_string(),
            schedule: job.schedule().as_str().to_string(),
            timezone: job.schedule().timezone().name().to_string(),
            overlap: job.options().overlap,
            timeout: job.options().timeout,
            grace: job.options().grace,
            location: format!("{}:{}", job.location().file, job.location().line),
            version: options.app_version.clone(),
        })
        .collect();
    // The live members, to tell a disagreement from a member long gone. This heartbeat
    // comes first: it announces this member before its registrations land, so that no
    // other member's pruning (registrations follow the live members) takes them for a gone
    // member's.
    let live = match coordinator
        .heartbeat(node, options.heartbeat_interval.saturating_mul(3), None)
        .await
    {
        Ok(beat) => beat.members,
        Err(_) => Vec::new(),
    };
    let registrations = match coordinator.register(node, &definitions).await {
        Ok(registrations) => registrations,
        Err(err) => {
            warn!(error = %err, "could not record this member's jobs in the catalog");
            return;
        }
    };
    for (own, all) in definitions.iter().zip(registrations) {
        for (other, theirs) in all {
            if other != node && live.contains(&other) && !own.agrees_with(&theirs) {
                warn!(
                    job = %own.name,
                    member = %other,
                    theirs = %format!("{} ({})", theirs.schedule, theirs.timezone),
                    ours = %format!("{} ({})", own.schedule, own.timezone),
                    "a live member runs this job differently (a rolling deploy?): the \
                     catalog shows it as disagreeing"
                );
                break;
            }
        }
    }
}

async fn open_coordinator(
    config: &Config,
    stop: &CancellationToken,
) -> Result<Option<Arc<dyn Coordinator>>, Error> {
    let options = &config.options;
    let url = match &config.target {
        Target::Coordinator(coordinator) => {
            if options.connect.replica_acks().is_some() {
                return Err(Error::InvalidOption {
                    option: "wait_for_replicas",
                    reason: "it applies to a URL the scheduler connects to; for a coordinator \
                             you connected yourself, use RedisCoordinator::connect_with_options"
                        .to_string(),
                });
            }
            return Ok(Some(coordinator.clone()));
        }
        Target::Url(url) => url,
    };
    // A coordinator without a clock of its own (memory://) keeps the configured one, which
    // the scheduler then syncs to.
    let connect = options.connect.clone().clock(options.clock.clone());
    let mut backoff = Duration::from_millis(200);
    let mut warned = false;
    loop {
        match coordinator::connect_with(url, &options.namespace, &connect).await {
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
