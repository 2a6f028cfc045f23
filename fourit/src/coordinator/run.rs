//! How a run ended and what history keeps of it.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The body returned `()` or `Ok(())`.
    Succeeded,
    /// The body returned `Err`; its text.
    Failed(String),
    /// The body panicked; the panic message.
    Panicked(String),
    /// The body outlasted its `timeout` and was cancelled.
    TimedOut,
    /// Shutdown cancelled the body after the shutdown timeout.
    Cancelled,
    /// The lease was lost (expired or taken) while the body ran; it was told to stop.
    LeaseLost,
    /// Not run: too few replicas acknowledged the claim
    /// ([`ConnectOptions::wait_for_replicas`](super::ConnectOptions::wait_for_replicas)); the text says how many.
    NotReplicated(String),
}

impl RunRecord {
    /// How long after `tick_ms` the run started (ms; zero if not after).
    pub fn delay_ms(&self, tick_ms: i64) -> u64 {
        u64::try_from(self.started.timestamp_millis().saturating_sub(tick_ms)).unwrap_or(0)
    }
}

impl Outcome {
    /// Whether the run succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded)
    }

    /// The outcome's short name as history records it: `succeeded`, `failed`, `panicked`,
    /// `timed out`, `cancelled`, `lease lost`, `not replicated`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed(_) => "failed",
            Outcome::Panicked(_) => "panicked",
            Outcome::TimedOut => "timed out",
            Outcome::Cancelled => "cancelled",
            Outcome::LeaseLost => "lease lost",
            Outcome::NotReplicated(_) => "not replicated",
        }
    }

    /// The error text of a failure or panic, or why a claim was not replicated.
    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Failed(text) | Outcome::Panicked(text) | Outcome::NotReplicated(text) => {
                Some(text)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error() {
            Some(error) => write!(f, "{}: {error}", self.as_str()),
            None => f.write_str(self.as_str()),
        }
    }
}

/// What the runner reports when a run ends.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// How it ended.
    pub outcome: Outcome,
    /// When the body started.
    pub started: DateTime<Utc>,
    /// How long it ran.
    pub duration: Duration,
}

/// One entry of a job's history: a finished run, or a tick skipped as an overlap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The tick, in UTC milliseconds.
    pub tick_ms: i64,
    /// The node that ran it (or that found the overlap).
    pub node: String,
    /// `succeeded`, `failed`, `panicked`, `timed out`, `cancelled`, `lease lost`,
    /// `not replicated`, `overlap`, `paused` (the first tick of a pause), `resumed` (the end
    /// of a pause that paused ticks: their count, first and last in `detail`) or `missed`
    /// (ticks nobody ran: `tick` is the last, `detail` says how many and the first).
    pub outcome: String,
    /// The error text of a failure or panic, or the holder's run id for an overlap.
    pub detail: Option<String>,
    /// The run's fence token (none for an overlap).
    pub fence: Option<u64>,
    /// How long the run took, in milliseconds (none for an overlap).
    pub duration_ms: Option<u64>,
    /// How long after its tick the run started, in milliseconds (runs only).
    pub delay_ms: Option<u64>,
}
