//! Cron-scheduled async jobs that run exactly once per tick across a fleet of processes,
//! coordinated through Redis, with schedules checked at compile time.
//!
//! ```no_run
//! #[fourit::job(schedule = "*/5 * * * *", name = "report")]
//! async fn report() {
//!     println!("five minutes passed, and only this process says so");
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), fourit::Error> {
//!     fourit::run("redis://127.0.0.1:6379").await
//! }
//! ```
//!
//! Start the same binary on as many machines as you like: each tick of each job runs on one
//! of them. A bad cron string is a compile error that points at it:
//!
//! ```compile_fail
//! #[fourit::job(schedule = "*/5 * * *")] // four fields
//! async fn report() {}
//! ```
//!
//! # The attribute
//!
//! `#[fourit::job(schedule = "...", name = "...", tz = "...", overlap = "skip" | "allow",
//! timeout = "90s", grace = "2m")]` goes on a free `async fn` that takes nothing or one
//! [`JobContext`] and returns `()` or `Result<(), E>` with `E: Display`. Only `schedule` is
//! required. See the README for the full reference and the cron syntax.
//!
//! # Link rule
//!
//! Jobs are collected with the `inventory` crate when the binary starts. A job in a library
//! crate is collected only if that crate is linked into the binary; a crate nothing refers to
//! is not linked. Refer to it once, e.g. `use my_jobs as _;`.
#![deny(missing_docs)]

pub mod admin;
pub mod clock;
pub mod coordinator;
#[cfg(feature = "dashboard")]
pub mod dashboard;
mod error;
pub mod events;
pub mod job;
#[cfg(feature = "metrics")]
mod metrics;
// Who is preferred to claim each tick: public for the benchmark and the spread tests, not an
// API.
#[doc(hidden)]
pub mod placement;
mod redact;
mod registry;
pub mod schedule;
pub mod scheduler;
mod spec;

// What a user writes: the attribute, `run` or a `Scheduler`, jobs defined at run time and
// their context, schedules, errors. The rest lives in its module (`clock`, `coordinator`,
// `job`, `schedule`, `scheduler`, `events`, `admin`, `dashboard`).
pub use error::{Error, ErrorKind};
pub use job::{FenceToken, Job, JobContext, Overlap};
pub use registry::jobs;
pub use schedule::Schedule;
pub use scheduler::{Scheduler, SchedulerBuilder, SchedulerHandle, run};

// The same items at the root, as earlier releases had them; their homes are the modules.
#[doc(hidden)]
pub use clock::{Clock, OffsetClock, SystemClock};
#[doc(hidden)]
pub use error::CoordinatorError;
#[doc(hidden)]
pub use job::{BoxFuture, IntoJobResult, JobResult, SourceLocation};
#[doc(hidden)]
pub use redact::redact_url;
#[doc(hidden)]
pub use schedule::{Due, MISSED_COUNT_LIMIT, Ticks};
#[doc(hidden)]
pub use scheduler::{
    DEFAULT_GRACE, DEFAULT_HANDOFF, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_CLOCK_OFFSET,
    DEFAULT_NAMESPACE, DEFAULT_SHUTDOWN_TIMEOUT, LEASE_TTL_BOUNDS,
};

/// Marks an `async fn` as a job that runs on a cron schedule. See the [crate docs](crate).
pub use fourit_macros::job;

/// Re-exports for the code `#[fourit::job]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::job::Overlap;
    pub use crate::job::{BoxFuture, IntoJobResult, JobResult, Registration};
    pub use inventory;
    pub use std::boxed::Box;
}
