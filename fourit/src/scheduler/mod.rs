//! The scheduler: [`SchedulerBuilder`] and its defaults, [`Scheduler`], [`SchedulerHandle`]
//! and [`run`].
//!
//! Inside, data flows one way: the driver finds the due ticks, the dispatcher places them,
//! the claims ask the coordinator, the runner runs what was won and hands the end to the
//! releases. Beside them the heartbeat keeps the members view and the fleet's clock
//! (`docs/ARCHITECTURE.md` has a line per file).

mod builder;
mod claims;
mod dispatch;
mod driver;
mod lifecycle;
mod manual;
mod membership;
mod notices;
mod options;
mod outage;
mod releases;
mod runner;
mod timed;

pub use self::builder::SchedulerBuilder;
pub use self::lifecycle::{Scheduler, SchedulerHandle, run};
pub use self::options::{
    DEFAULT_GRACE, DEFAULT_HANDOFF, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_CLOCK_OFFSET,
    DEFAULT_NAMESPACE, DEFAULT_SHUTDOWN_TIMEOUT, LEASE_TTL_BOUNDS,
};

#[cfg(test)]
mod tests;
