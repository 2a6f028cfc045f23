//! Event hooks: every decision and happening of a scheduler, handed to listeners in code (for
//! Sentry reports, dead-man's-switch pings, custom alerts) and, with the `metrics` feature, to
//! the `metrics` facade.
//!
//! ```no_run
//! use fourit::events::Event;
//!
//! # async fn demo() -> Result<(), fourit::Error> {
//! fourit::Scheduler::builder()
//!     .url("redis://127.0.0.1:6379")
//!     .on_event(|event: &Event<'_>| {
//!         if let Event::Finished { job, outcome, .. } = event
//!             && !outcome.is_success()
//!         {
//!             // Slow work (an HTTP call) goes to a task of its own: listeners must not block.
//!             eprintln!("{job} did not succeed: {outcome}");
//!         }
//!     })
//!     .build()?
//!     .run()
//!     .await
//! # }
//! ```
//!
//! Listeners are called inline, on the scheduler's own tasks, so they must be cheap and never
//! block: spawn anything slow. A listener that panics is caught (the event is lost for it, the
//! scheduler goes on) and the first panic of each listener is logged.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::error;

use crate::coordinator::Outcome;

/// Something a scheduler decided or saw. Borrowed: copy out what a listener keeps.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// This process won a tick (or a manual run) and is about to run it.
    Claimed {
        /// The job's name.
        job: &'a str,
        /// The tick (a manual run's: the instant it was asked for).
        tick: DateTime<Utc>,
        /// The run's fence token.
        fence: u64,
        /// A manual run (`fourit trigger`), not a scheduled tick.
        manual: bool,
    },
    /// A run's body started.
    Started {
        /// The job's name.
        job: &'a str,
        /// The tick.
        tick: DateTime<Utc>,
        /// The run's fence token.
        fence: u64,
        /// A manual run.
        manual: bool,
        /// How long after the tick it started, by the fleet's clock (zero if not after).
        delay: Duration,
    },
    /// A run ended and its outcome is being recorded.
    Finished {
        /// The job's name.
        job: &'a str,
        /// The tick.
        tick: DateTime<Utc>,
        /// The run's fence token.
        fence: u64,
        /// A manual run.
        manual: bool,
        /// How it ended (the error text is in it).
        outcome: &'a Outcome,
        /// How long the body ran.
        duration: Duration,
    },
    /// A tick this process claimed was decided without a run.
    Skipped {
        /// The job's name.
        job: &'a str,
        /// The tick.
        tick: DateTime<Utc>,
        /// Why.
        reason: Skip<'a>,
    },
    /// Another member had already claimed the tick this process asked for.
    Taken {
        /// The job's name.
        job: &'a str,
        /// The tick.
        tick: DateTime<Utc>,
    },
    /// This process's claim moved a job past ticks nobody ran (the fleet was down or stalled
    /// past grace); they are recorded in history as `missed`.
    Missed {
        /// The job's name.
        job: &'a str,
        /// How many ticks (a lower bound past [`crate::MISSED_COUNT_LIMIT`]).
        count: u32,
        /// The first of them.
        first: DateTime<Utc>,
        /// The last of them.
        last: DateTime<Utc>,
    },
    /// A running job lost its lease (it could not be renewed for a whole TTL, or another
    /// process holds it): its context is cancelled.
    LeaseLost {
        /// The job's name.
        job: &'a str,
        /// The tick.
        tick: DateTime<Utc>,
        /// The run's fence token.
        fence: u64,
    },
    /// This process cannot reach the coordinator: it claims nothing (fail closed) until it is
    /// back; members that reach it claim the ticks. Once per outage.
    CoordinatorUnavailable {
        /// What was being done (`claim`, `heartbeat`).
        operation: &'a str,
        /// The error, redacted (no passwords).
        error: &'a str,
    },
    /// The coordinator answers again, after an outage.
    CoordinatorBack {
        /// How many ticks this process could not claim meanwhile (others may have run them:
        /// the job's history records as missed the ticks nobody ran).
        skipped_ticks: u64,
    },
    /// A member joined the fleet (as this process's heartbeat learned).
    MemberJoined {
        /// Its node id.
        node: &'a str,
    },
    /// A member left the fleet or was forgotten after falling silent.
    MemberLeft {
        /// Its node id.
        node: &'a str,
    },
    /// This host's wall clock stepped, or the coordinator's moved against it; fourit keeps
    /// scheduling by the coordinator's clock.
    ClockStep {
        /// The step of this host's clock (ms; zero if the coordinator's moved instead).
        step_ms: i64,
        /// The offset measured afterwards (ms, coordinator minus this host).
        offset_ms: i64,
    },
    /// A heartbeat was answered.
    Heartbeat {
        /// How many live members the fleet has.
        members: usize,
        /// How far this host's clock runs ahead of the coordinator's (µs).
        clock_offset_us: i64,
    },
    /// The next tick of a job this process will claim.
    NextTick {
        /// The job's name.
        job: &'a str,
        /// The tick.
        tick: DateTime<Utc>,
    },
    /// A round trip to the coordinator finished.
    RoundTrip {
        /// What it was: `claim`, `keep_alive`, `release`, `heartbeat`, `server_time`,
        /// `leave`, `manual` or `register` ([`Call::operation`](crate::coordinator::Call::operation)).
        operation: &'static str,
        /// How long it took.
        duration: Duration,
        /// Whether it was answered.
        ok: bool,
    },
}

/// Why a claimed tick was not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skip<'a> {
    /// The previous run still held the lease (`overlap = "skip"`).
    Overlap {
        /// The run id holding it.
        holder: &'a str,
    },
    /// The job is paused fleet-wide.
    Paused,
}

/// Observes a scheduler's events. Implemented for every `Fn(&Event<'_>) + Send + Sync`.
pub trait Listener: Send + Sync + 'static {
    /// Called for each event, inline: must be cheap and must not block.
    fn on_event(&self, event: &Event<'_>);
}

impl<F> Listener for F
where
    F: Fn(&Event<'_>) + Send + Sync + 'static,
{
    fn on_event(&self, event: &Event<'_>) {
        self(event)
    }
}

/// The listeners given to a builder.
#[derive(Clone, Default)]
pub(crate) struct ListenerList(pub(crate) Vec<Arc<dyn Listener>>);

impl std::fmt::Debug for ListenerList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} listener(s)", self.0.len())
    }
}

/// A listener and whether it has panicked yet (logged once).
struct Registered {
    listener: Arc<dyn Listener>,
    panicked: AtomicBool,
}

/// The listeners of one scheduler.
#[derive(Default)]
pub(crate) struct Events {
    listeners: Vec<Registered>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("listeners", &self.listeners.len())
            .finish()
    }
}

impl Events {
    /// The listeners given (the scheduler adds the metrics one, with the `metrics` feature).
    pub(crate) fn new(listeners: Vec<Arc<dyn Listener>>) -> Events {
        Events {
            listeners: listeners
                .into_iter()
                .map(|listener| Registered {
                    listener,
                    panicked: AtomicBool::new(false),
                })
                .collect(),
        }
    }

    /// Whether anyone listens (so callers can skip building an event).
    pub(crate) fn active(&self) -> bool {
        !self.listeners.is_empty()
    }

    /// Hands `event` to every listener; a panic is caught, and logged once per listener.
    pub(crate) fn emit(&self, event: &Event<'_>) {
        for (index, registered) in self.listeners.iter().enumerate() {
            let listener = &registered.listener;
            if catch_unwind(AssertUnwindSafe(|| listener.on_event(event))).is_err()
                && !registered.panicked.swap(true, Ordering::AcqRel)
            {
                error!(
                    listener = index,
                    "an event listener panicked; fourit goes on (later panics of this \
                     listener are not logged)"
                );
            }
        }
    }
}

/// The UTC instant of `ms`, or the epoch for an out-of-range value.
pub(crate) fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
