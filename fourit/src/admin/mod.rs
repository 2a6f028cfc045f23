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

use chrono::{DateTime, Utc};

use crate::coordinator::{
    self, HistoryEntry, ManualRequest, ManualState, Member, PauseState, Store,
};
use crate::error::Error;

mod status;

use self::status::status_of;
pub use self::status::{
    JobStatus, LastRun, ManualEnd, MemberStatus, RECENT_ENTRIES, RunningNow, STATUS_NEXT_TICKS,
    next_ticks, shown,
};

/// Longest pause note accepted, in bytes (the CLI, the admin API and the dashboard alike):
/// a note is sent with every page refresh, so it stays short.
pub const MAX_NOTE_LEN: usize = 4096;

fn check_note(note: Option<&str>) -> Result<(), Error> {
    match note {
        Some(note) if note.len() > MAX_NOTE_LEN => Err(Error::InvalidOption {
            option: "note",
            reason: format!(
                "the note is {} bytes long, the limit is {MAX_NOTE_LEN}",
                note.len()
            ),
        }),
        _ => Ok(()),
    }
}

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
    ///
    /// [`Error::NoSuchJob`] for a job the fleet does not know (no member ever registered it,
    /// no history, no pause): a typo is an error, not a pause of nothing. To pause a job
    /// before its first deploy, use [`pause_ahead`](Self::pause_ahead). A note longer than
    /// [`MAX_NOTE_LEN`] bytes is refused ([`Error::InvalidOption`]).
    pub async fn pause(&self, job: &str, note: Option<&str>) -> Result<(), Error> {
        FleetAdmin::check(job)?;
        check_note(note)?;
        self.must_know(job).await?;
        self.store.pause(job, &self.operator, note).await
    }

    /// Pauses `job` whether or not the fleet knows it yet: the pause is waiting when the job
    /// is first deployed, so it never runs until resumed. Otherwise as [`pause`](Self::pause).
    pub async fn pause_ahead(&self, job: &str, note: Option<&str>) -> Result<(), Error> {
        FleetAdmin::check(job)?;
        check_note(note)?;
        self.store.pause(job, &self.operator, note).await
    }

    /// Resumes `job` from its next tick (no backfill); answers the pause it ended (who, why,
    /// since when, how many ticks it decided), or `None` if the job was not paused.
    /// [`Error::NoSuchJob`] for a job the fleet does not know and that is not paused.
    pub async fn resume(&self, job: &str) -> Result<Option<PauseState>, Error> {
        FleetAdmin::check(job)?;
        match self.store.resume(job, &self.operator).await? {
            Some(pause) => Ok(Some(pause)),
            None => {
                self.must_know(job).await?;
                Ok(None)
            }
        }
    }

    /// Whether the fleet knows `job`: the catalog has it (a member registers or registered
    /// it), it has history, or it is paused.
    pub async fn knows(&self, job: &str) -> Result<bool, Error> {
        FleetAdmin::check(job)?;
        if !self.statuses_of(Some(job)).await?.is_empty() {
            return Ok(true);
        }
        if self.store.pause_state(job).await?.is_some() {
            return Ok(true);
        }
        Ok(!self.store.history(job, 1).await?.is_empty())
    }

    async fn must_know(&self, job: &str) -> Result<(), Error> {
        if self.knows(job).await? {
            Ok(())
        } else {
            Err(Error::NoSuchJob {
                job: job.to_string(),
            })
        }
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

    /// Every job in the catalog, by name: definition, live members, disagreement, orphan,
    /// pause, run in progress, last run and next ticks.
    pub async fn status(&self) -> Result<Vec<JobStatus>, Error> {
        Ok(self
            .status_with_history()
            .await?
            .into_iter()
            .map(|(job, _)| job)
            .collect())
    }

    /// [`status`](Self::status), each job with its last [`RECENT_ENTRIES`] history entries
    /// (newest first), as the dashboard shows them: the members, the catalog and every job's
    /// history read in a bounded number of round trips, whatever the number of jobs.
    pub async fn status_with_history(&self) -> Result<Vec<(JobStatus, Vec<HistoryEntry>)>, Error> {
        let mut jobs = self.statuses_of(None).await?;
        let names: Vec<String> = jobs.iter().map(|job| job.name.clone()).collect();
        let histories = self.store.histories(&names, RECENT_ENTRIES).await?;
        for (job, history) in jobs.iter_mut().zip(&histories) {
            count_recent(job, history);
        }
        Ok(jobs.into_iter().zip(histories).collect())
    }

    /// The catalog's entries (only `only`'s, if given), joined with the live members; the
    /// recent counts are left to `count_recent`.
    async fn statuses_of(&self, only: Option<&str>) -> Result<Vec<JobStatus>, Error> {
        let live: Vec<String> = self
            .store
            .members()
            .await?
            .into_iter()
            .map(|member| member.node)
            .collect();
        let now = Utc::now();
        Ok(self
            .store
            .catalog()
            .await?
            .into_iter()
            .filter(|entry| only.is_none_or(|name| entry.name == name))
            .map(|entry| status_of(entry, &live, now))
            .collect())
    }

    /// The live members with their last heartbeat, their clock offset, the version their
    /// jobs were registered with, and those jobs, oldest heartbeat first.
    pub async fn member_status(&self) -> Result<Vec<MemberStatus>, Error> {
        let catalog = self.store.catalog().await?;
        Ok(self
            .store
            .members()
            .await?
            .into_iter()
            .map(|member| {
                let node = member.node;
                let mut version = None;
                let mut jobs = Vec::new();
                for entry in &catalog {
                    if let Some((_, definition)) = entry
                        .registrations
                        .iter()
                        .find(|(member, _)| *member == node)
                    {
                        jobs.push(entry.name.clone());
                        version = version.or_else(|| definition.version.clone());
                    }
                }
                MemberStatus {
                    node,
                    last_heartbeat_ms: member.heartbeat_ms,
                    clock_offset_us: member.clock_offset_us,
                    version,
                    jobs,
                }
            })
            .collect())
    }

    /// One job's status; [`Error::NoSuchJob`] if the catalog does not have it.
    pub async fn job(&self, job: &str) -> Result<JobStatus, Error> {
        FleetAdmin::check(job)?;
        let mut status =
            self.statuses_of(Some(job))
                .await?
                .pop()
                .ok_or_else(|| Error::NoSuchJob {
                    job: job.to_string(),
                })?;
        let history = self.store.history(&status.name, RECENT_ENTRIES).await?;
        count_recent(&mut status, &history);
        Ok(status)
    }

    /// The job's next `n` ticks, by its schedule as the live members register it.
    pub async fn next(&self, job: &str, n: usize) -> Result<Vec<DateTime<Utc>>, Error> {
        let status = self.job(job).await?;
        Ok(status
            .definition
            .map(|definition| next_ticks(&definition, Utc::now(), n))
            .unwrap_or_default())
    }

    /// Removes an orphaned job (no live member registers it) from the catalog, with its
    /// state and history. Refused ([`Error::Refused`]) while a live member registers it.
    pub async fn remove(&self, job: &str) -> Result<(), Error> {
        let status = self.job(job).await?;
        if !status.orphaned {
            return Err(Error::Refused {
                reason: format!(
                    "`{job}` is registered by live members ({}); only an orphaned job can be \
                     removed",
                    status
                        .members
                        .iter()
                        .map(|(node, _)| node.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        self.store.remove(job).await
    }

    /// Asks for a manual run of `job`, now: exactly one live member that registers it takes
    /// it at its next heartbeat (within the heartbeat interval, 2 s by default), runs it under
    /// a fence of its own (the job's `overlap` policy applies unless `force`), and history
    /// records it as `manual` with who asked; the job's high-water mark does not move, so the
    /// next scheduled tick runs as usual. [`Error::NoSuchJob`] for a job not in the catalog,
    /// [`Error::Refused`] at once when no live member registers it.
    pub async fn trigger(&self, job: &str, force: bool) -> Result<ManualRequest, Error> {
        let status = self.job(job).await?;
        if status.orphaned {
            return Err(Error::Refused {
                reason: format!("no live member registers `{job}`: nobody could run it"),
            });
        }
        self.store.request_manual(job, &self.operator, force).await
    }

    /// Where a manual request stands; `None` if there is none with that id.
    pub async fn manual_state(&self, job: &str, id: &str) -> Result<Option<ManualState>, Error> {
        FleetAdmin::check(job)?;
        self.store.manual_state(job, id).await
    }

    /// Waits (polling, at most `within`) until the manual run `request` has been taken and
    /// has ended; answers its history entry, or the overlap that skipped it. `Ok(None)` if no
    /// member took it, or it did not end, in time.
    pub async fn wait_manual(
        &self,
        request: &ManualRequest,
        within: std::time::Duration,
    ) -> Result<Option<ManualEnd>, Error> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.manual_state(&request.job, &request.id).await? {
                Some(ManualState::Skipped { holder }) => {
                    return Ok(Some(ManualEnd::Skipped { holder }));
                }
                Some(ManualState::Started { node, fence }) => {
                    let ended = self
                        .history(&request.job, coordinator::HISTORY_LEN)
                        .await?
                        .into_iter()
                        .find(|entry| entry.fence == Some(fence) && entry.outcome != "manual");
                    if let Some(entry) = ended {
                        return Ok(Some(ManualEnd::Ran { node, entry }));
                    }
                }
                Some(ManualState::Pending) | None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The live members, their last heartbeat and clock offset, oldest heartbeat first.
    pub async fn members(&self) -> Result<Vec<Member>, Error> {
        self.store.members().await
    }
}

/// Fills `job.recent` from its last [`RECENT_ENTRIES`] history entries, `history`.
fn count_recent(job: &mut JobStatus, history: &[HistoryEntry]) {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for entry in history.iter().take(RECENT_ENTRIES) {
        match counts
            .iter_mut()
            .find(|(outcome, _)| *outcome == entry.outcome)
        {
            Some((_, count)) => *count += 1,
            None => counts.push((entry.outcome.clone(), 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    job.recent = counts;
}
