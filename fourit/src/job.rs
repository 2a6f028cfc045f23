//! Jobs: their definition, the context a run receives, and what a run ends with.

use std::fmt;
use std::future::Future;
use std::panic::Location;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::schedule::Schedule;
use crate::spec;

/// A boxed, sendable future, as job bodies and coordinators return (`futures-core`'s).
pub use futures_core::future::BoxFuture;

/// What a job body ends with: `Ok(())`, or the text of its error.
pub type JobResult = Result<(), String>;

type JobFn = Arc<dyn Fn(JobContext) -> BoxFuture<'static, JobResult> + Send + Sync>;

/// What to do with a tick while the previous run of the same job still runs somewhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Overlap {
    /// Skip the tick and record it as an overlap (the default).
    #[default]
    Skip,
    /// Run it anyway, concurrently with the previous run.
    Allow,
}

impl Overlap {
    /// The option's spelling: `"skip"` or `"allow"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
        }
    }
}

/// A run's fencing token: it strictly increases with every run of a job, fleet-wide.
///
/// Pass it along with writes to external systems and have them reject a token lower than the
/// highest they have seen: a run that lost its lease (a paused process, a partition) can then
/// not overwrite the work of the run that replaced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FenceToken(pub u64);

impl FenceToken {
    /// The token's value.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FenceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a job was defined: the source line of its `#[fourit::job]` or of the call that added it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLocation {
    /// The source file, as the compiler names it.
    pub file: &'static str,
    /// The line.
    pub line: u32,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// What a run is given: which job and tick it is, its fencing token, the node it runs on,
/// and a cancellation signal.
///
/// Clones are cheap and share the same cancellation.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    job: Arc<str>,
    tick: DateTime<Utc>,
    fence: FenceToken,
    node: Arc<str>,
    cancel: CancellationToken,
    /// Who asked for this run, if it is a manual one (`fourit trigger`).
    manual_by: Option<Arc<str>>,
}

impl JobContext {
    /// A context for calling a job body directly, as in a unit test of the job.
    ///
    /// ```
    /// use chrono::Utc;
    /// use fourit::{FenceToken, JobContext};
    ///
    /// let ctx = JobContext::new("report", Utc::now(), FenceToken(1), "test-node");
    /// assert_eq!(ctx.job(), "report");
    /// assert!(!ctx.is_cancelled());
    /// ```
    pub fn new(job: &str, tick: DateTime<Utc>, fence: FenceToken, node: &str) -> JobContext {
        JobContext::with_cancellation(
            Arc::from(job),
            tick,
            fence,
            Arc::from(node),
            CancellationToken::new(),
        )
    }

    pub(crate) fn with_cancellation(
        job: Arc<str>,
        tick: DateTime<Utc>,
        fence: FenceToken,
        node: Arc<str>,
        cancel: CancellationToken,
    ) -> JobContext {
        JobContext {
            inner: Arc::new(ContextInner {
                job,
                tick,
                fence,
                node,
                cancel,
                manual_by: None,
            }),
        }
    }

    /// This context, for a manual run asked for by `by`.
    pub(crate) fn manual(self, by: Arc<str>) -> JobContext {
        let inner = &self.inner;
        JobContext {
            inner: Arc::new(ContextInner {
                job: inner.job.clone(),
                tick: inner.tick,
                fence: inner.fence,
                node: inner.node.clone(),
                cancel: inner.cancel.clone(),
                manual_by: Some(by),
            }),
        }
    }

    /// Whether this is a manual run (asked for with `fourit trigger` or
    /// [`FleetAdmin::trigger`](crate::admin::FleetAdmin::trigger)) rather than a scheduled
    /// tick. A manual run's [`tick`](Self::tick) is the instant it was requested.
    pub fn is_manual(&self) -> bool {
        self.inner.manual_by.is_some()
    }

    /// Who asked for this manual run; `None` for a scheduled one.
    pub fn requested_by(&self) -> Option<&str> {
        self.inner.manual_by.as_deref()
    }

    /// The job's name.
    pub fn job(&self) -> &str {
        &self.inner.job
    }

    /// The scheduled instant this run is for (not the instant it started).
    pub fn tick(&self) -> DateTime<Utc> {
        self.inner.tick
    }

    /// This run's fencing token.
    pub fn fence(&self) -> FenceToken {
        self.inner.fence
    }

    /// The id of the process (node) running it.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Completes when the run should stop: on shutdown, when its lease is lost, or when its
    /// timeout passes. Select on it in long jobs.
    pub async fn cancelled(&self) {
        self.inner.cancel.cancelled().await
    }

    /// Whether [`cancelled`](Self::cancelled) has completed.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Cancels this run's context, as shutdown, lease loss or timeout do.
    pub fn cancel(&self) {
        self.inner.cancel.cancel()
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("job", &self.job())
            .field("tick", &self.tick())
            .field("fence", &self.fence())
            .field("node", &self.node())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// A job's options: each set by the attribute's option and by [`Job`]'s setter of the same
/// name, and read here ([`Job::options`]). The time zone is the schedule's
/// ([`Schedule::timezone`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobOptions {
    /// `overlap`: what happens to a tick while the previous run still runs (default: skip).
    pub overlap: Overlap,
    /// `timeout`: the run is cancelled after it, if set.
    pub timeout: Option<Duration>,
    /// `grace`: how late a tick may still be claimed, if it overrides the scheduler's.
    pub grace: Option<Duration>,
}

/// A job ready to be scheduled: name, schedule, options and body.
///
/// Jobs come from `#[fourit::job]` (see [`jobs`](crate::jobs)) or are made at run time with
/// [`Job::new`] and added to a [`SchedulerBuilder`](crate::SchedulerBuilder).
#[derive(Clone)]
pub struct Job {
    name: Arc<str>,
    schedule: Arc<Schedule>,
    options: JobOptions,
    location: SourceLocation,
    body: JobFn,
}

impl Job {
    /// A job made at run time; the schedule is checked like the attribute's, with the same
    /// messages.
    ///
    /// ```
    /// let job = fourit::Job::new("cleanup", "*/10 * * * * *", |ctx| async move {
    ///     println!("cleanup for {}", ctx.tick());
    /// })?;
    /// assert_eq!(job.name(), "cleanup");
    ///
    /// let err = fourit::Job::new("bad", "61 * * * *", |_| async {}).unwrap_err();
    /// assert!(err.to_string().contains("minute field"));
    /// # Ok::<(), fourit::Error>(())
    /// ```
    #[track_caller]
    pub fn new<F, Fut, R>(name: &str, schedule: &str, body: F) -> Result<Job, Error>
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoJobResult,
    {
        let caller = Location::caller();
        let location = SourceLocation {
            file: caller.file(),
            line: caller.line(),
        };
        spec::check_name(name).map_err(|message| Error::InvalidJobName { message })?;
        let schedule = Schedule::parse(schedule)?;
        let body: JobFn = Arc::new(move |ctx| {
            let run = body(ctx);
            Box::pin(async move { run.await.into_job_result() })
        });
        Ok(Job {
            name: Arc::from(name),
            schedule: Arc::new(schedule),
            options: JobOptions::default(),
            location,
            body,
        })
    }

    /// Reads the schedule in a time zone (IANA name); the default is UTC.
    pub fn timezone(mut self, tz: &str) -> Result<Job, Error> {
        self.schedule = Arc::new((*self.schedule).clone().with_timezone(tz)?);
        Ok(self)
    }

    /// Sets what happens to a tick while the previous run still runs (default: skip).
    pub fn overlap(mut self, overlap: Overlap) -> Job {
        self.options.overlap = overlap;
        self
    }

    /// Cancels a run that lasts longer than `timeout`; its outcome is `timed out`.
    pub fn timeout(mut self, timeout: Duration) -> Job {
        self.options.timeout = Some(timeout);
        self
    }

    /// How late a tick may still be claimed (default: the scheduler's, 60 s).
    pub fn grace(mut self, grace: Duration) -> Job {
        self.options.grace = Some(grace);
        self
    }

    /// The job's name, unique in the fleet.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The job's schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The job's schedule, shared (claims carry it, to record missed ticks).
    pub(crate) fn schedule_arc(&self) -> &Arc<Schedule> {
        &self.schedule
    }

    /// The job's options, as the setters of the same names (or the attribute) left them.
    pub fn options(&self) -> &JobOptions {
        &self.options
    }

    /// Where the job was defined.
    pub fn location(&self) -> &SourceLocation {
        &self.location
    }

    /// Calls the body once with `ctx`, outside any scheduler (as a test of the job would).
    pub fn call(&self, ctx: JobContext) -> BoxFuture<'static, JobResult> {
        (self.body)(ctx)
    }

    pub(crate) fn from_definition(def: &'static Registration) -> Result<Job, Error> {
        let call = def.call;
        Ok(Job {
            name: Arc::from(def.name),
            schedule: Arc::new(Schedule::parse(def.schedule)?.with_timezone(def.tz)?),
            options: JobOptions {
                overlap: def.overlap,
                timeout: def.timeout_ms.map(Duration::from_millis),
                grace: def.grace_ms.map(Duration::from_millis),
            },
            location: SourceLocation {
                file: def.file,
                line: def.line,
            },
            body: Arc::new(call),
        })
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("schedule", &self.schedule)
            .field("options", &self.options)
            .field("location", &self.location)
            .finish()
    }
}

/// What `#[fourit::job]` registers. Not for direct use: its fields may change in any release.
#[doc(hidden)]
pub struct Registration {
    pub name: &'static str,
    pub schedule: &'static str,
    pub tz: &'static str,
    pub overlap: Overlap,
    pub timeout_ms: Option<u64>,
    pub grace_ms: Option<u64>,
    pub file: &'static str,
    pub line: u32,
    pub call: fn(JobContext) -> BoxFuture<'static, JobResult>,
}

/// What a job body may return: `()` or `Result<(), E>` with `E: Display`.
///
/// An `Err` becomes the run's recorded outcome (`failed: <error>`).
pub trait IntoJobResult {
    /// Converts the body's output into fourit's outcome.
    fn into_job_result(self) -> JobResult;
}

impl IntoJobResult for () {
    fn into_job_result(self) -> JobResult {
        Ok(())
    }
}

impl<E: fmt::Display> IntoJobResult for Result<(), E> {
    fn into_job_result(self) -> JobResult {
        self.map_err(|err| err.to_string())
    }
}
