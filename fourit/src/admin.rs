//! Steering a fleet from outside it: pause and resume a job fleet-wide, and read what the
//! fleet recorded (history, members). Everything goes through the coordinator the fleet uses,
//! so it works from any process that can reach it: an operator's shell, a deploy script, an
//! admin endpoint of a service.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fourit::Error> {
//! let fleet = fourit::admin::connect("redis://127.0.0.1:6379", "fourit").await?;
//! fleet.pause("nightly-report", Some("INC-4211: the warehouse is read-only")).await?;
//! // ... every member decides the job's ticks as paused, from its next tick ...
//! if let Some(pause) = fleet.resume("nightly-report").await? {
//!     println!("{} ticks were paused", pause.ticks);
//! }
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use crate::coordinator::{self, HistoryEntry, PauseState, Store};
use crate::error::Error;

/// A fleet's coordinator, as an operator sees it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FleetAdmin {
    store: Arc<dyn Store>,
    operator: String,
}

/// Connects to the coordinator at `url` (any URL [`crate::run`] takes), for the fleet under
/// `namespace`; the operator is [`default_operator`].
///
/// `memory://` gives a new, empty coordinator of this process only: to steer an in-process
/// fleet, pass its coordinator to [`FleetAdmin::new`] instead.
pub async fn connect(url: &str, namespace: &str) -> Result<FleetAdmin, Error> {
    Ok(FleetAdmin::new(coordinator::connect(url, namespace).await?))
}

/// `user@host` of this process (`$USER`, or `$USERNAME`, and the host name): who an admin
/// action is recorded as, unless [`FleetAdmin::operator`] says otherwise.
pub fn default_operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("{user}@{host}")
}

impl FleetAdmin {
    /// Steers the fleet coordinating through `store`.
    pub fn new(store: Arc<dyn Store>) -> FleetAdmin {
        FleetAdmin {
            store,
            operator: default_operator(),
        }
    }

    /// Records actions as done by `name` (a free-text operator name).
    pub fn operator(mut self, name: &str) -> FleetAdmin {
        self.operator = name.to_string();
        self
    }

    /// Who actions are recorded as.
    pub fn operator_name(&self) -> &str {
        &self.operator
    }

    fn check(job: &str) -> Result<(), Error> {
        crate::spec::check_identifier("job name", job).map_err(|reason| Error::InvalidOption {
            option: "job",
            reason,
        })
    }

    /// Pauses `job` fleet-wide, with an optional note: from its next tick no member runs it,
    /// each tick is decided as paused (the first goes to history as `paused`, the others are
    /// counted), until [`resume`](Self::resume). Survives every member restarting.
    pub async fn pause(&self, job: &str, note: Option<&str>) -> Result<(), Error> {
        FleetAdmin::check(job)?;
        self.store.pause(job, &self.operator, note).await
    }

    /// Resumes `job` from its next tick (no backfill); answers the pause it ended (who, why,
    /// since when, how many ticks it decided), or `None` if the job was not paused.
    pub async fn resume(&self, job: &str) -> Result<Option<PauseState>, Error> {
        FleetAdmin::check(job)?;
        self.store.resume(job, &self.operator).await
    }

    /// The job's pause, or `None` if it is not paused.
    pub async fn paused(&self, job: &str) -> Result<Option<PauseState>, Error> {
        FleetAdmin::check(job)?;
        self.store.pause_state(job).await
    }

    /// The job's most recent `limit` history entries, newest first.
    pub async fn history(&self, job: &str, limit: usize) -> Result<Vec<HistoryEntry>, Error> {
        FleetAdmin::check(job)?;
        self.store.history(job, limit).await
    }

    /// The live members and their last heartbeat (UTC milliseconds), oldest first.
    pub async fn members(&self) -> Result<Vec<(String, i64)>, Error> {
        self.store.members().await
    }
}
