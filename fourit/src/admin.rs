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
    self, CatalogEntry, HistoryEntry, JobDefinition, ManualRequest, ManualState, Member,
    PauseState, Store,
};
use crate::error::Error;

/// A job as the fleet runs it now: what [`FleetAdmin::status`] answers per job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobStatus {
    /// The job's name.
    pub name: String,
    /// Its definition, as the live members register it (the first, if they disagree; the
    /// latest registration of any member, if no live member registers it).
    pub definition: Option<JobDefinition>,
    /// The live members that register it, with their definitions.
    pub members: Vec<(String, JobDefinition)>,
    /// Live members register it with different schedules, zones or options.
    pub disagreeing: bool,
    /// No live member registers it any more (it can be [removed](FleetAdmin::remove)).
    pub orphaned: bool,
    /// Its pause, if it is paused.
    pub paused: Option<PauseState>,
    /// The run in progress, if one holds the job's lease.
    pub running: Option<RunningNow>,
    /// The latest run's outcome (`running` while it runs), start, end and node.
    pub last: Option<LastRun>,
    /// The next ticks, by its definition's schedule and zone.
    pub next_ticks: Vec<DateTime<Utc>>,
    /// How its last [`RECENT_ENTRIES`] history entries ended: outcome and count, most
    /// frequent first.
    pub recent: Vec<(String, usize)>,
}

impl JobStatus {
    /// Its state in one word: `paused`, `orphaned`, `disagreeing`, `running` or `active`.
    pub fn state(&self) -> &'static str {
        if self.paused.is_some() {
            "paused"
        } else if self.orphaned {
            "orphaned"
        } else if self.disagreeing {
            "disagreeing"
        } else if self.running.is_some() {
            "running"
        } else {
            "active"
        }
    }
}

/// How many history entries [`JobStatus::recent`] counts.
pub const RECENT_ENTRIES: usize = 30;

/// A live member as [`FleetAdmin::member_status`] answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its node id.
    pub node: String,
    /// Its last heartbeat (UTC ms, the coordinator's clock).
    pub last_heartbeat_ms: i64,
    /// How far its clock runs ahead of the coordinator's (µs, negative when behind), as it
    /// measured it at its last heartbeat; `None` before its first measurement.
    pub clock_offset_us: Option<i64>,
    /// The application version its jobs were registered with, if its builder named one.
    pub version: Option<String>,
    /// The jobs it registers.
    pub jobs: Vec<String>,
}

/// The run holding a job's lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningNow {
    /// The member running it.
    pub node: String,
    /// Its fence token.
    pub fence: u64,
    /// Its tick (UTC ms).
    pub tick_ms: i64,
    /// When it started (UTC ms), when known.
    pub since_ms: Option<i64>,
}

/// A job's latest run, as the coordinator recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastRun {
    /// `succeeded`, `failed`, ..., or `running`.
    pub outcome: String,
    /// When it started (UTC ms).
    pub started_ms: Option<i64>,
    /// When it finished (UTC ms), if it has.
    pub finished_ms: Option<i64>,
    /// The member that ran it.
    pub node: Option<String>,
    /// Its error text, if any.
    pub error: Option<String>,
}

impl LastRun {
    /// How long it ran, if it has finished.
    pub fn duration_ms(&self) -> Option<i64> {
        Some(self.finished_ms? - self.started_ms?).filter(|ms| *ms >= 0)
    }
}

/// How a manual run ended ([`FleetAdmin::wait_manual`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManualEnd {
    /// It ran on `node`; its history entry says how it ended.
    Ran {
        /// The member that ran it.
        node: String,
        /// Its outcome, duration and error text.
        entry: HistoryEntry,
    },
    /// A previous run held the lease and it was not forced: it did not run.
    Skipped {
        /// The holder's run id.
        holder: String,
    },
}

/// How many next ticks [`FleetAdmin::status`] gives per job.
pub const STATUS_NEXT_TICKS: usize = 3;

/// The next `n` ticks of `definition` after `after`; none if it does not parse (a member
/// of another version may write one this version cannot read).
pub fn next_ticks(
    definition: &JobDefinition,
    after: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    crate::Schedule::parse(&definition.schedule)
        .and_then(|schedule| schedule.with_timezone(&definition.timezone))
        .map(|schedule| schedule.upcoming(after).take(n).collect())
        .unwrap_or_default()
}

fn status_of(entry: CatalogEntry, live: &[String], now: DateTime<Utc>) -> JobStatus {
    let members: Vec<(String, JobDefinition)> = entry
        .registrations
        .iter()
        .filter(|(node, _)| live.contains(node))
        .cloned()
        .collect();
    let disagreeing = members
        .windows(2)
        .any(|pair| !pair[0].1.agrees_with(&pair[1].1));
    let definition = members
        .first()
        .or(entry.registrations.last())
        .map(|(_, definition)| definition.clone());
    let state = entry.state;
    let running = state.running.as_deref().and_then(|id| {
        let (node, fence, tick_ms) = coordinator::Lease::parse_run_id(id)?;
        let since_ms = state
            .last_started_ms
            .filter(|_| state.last_fence == Some(fence));
        Some(RunningNow {
            node: node.to_string(),
            fence,
            tick_ms,
            since_ms,
        })
    });
    let last = state.last_outcome.clone().map(|outcome| LastRun {
        outcome,
        started_ms: state.last_started_ms,
        finished_ms: state.last_finished_ms,
        node: state.last_node.clone(),
        error: state.last_error.clone(),
    });
    JobStatus {
        recent: Vec::new(),
        next_ticks: definition
            .as_ref()
            .map(|definition| next_ticks(definition, now, STATUS_NEXT_TICKS))
            .unwrap_or_default(),
        name: entry.name,
        orphaned: members.is_empty(),
        members,
        disagreeing,
        definition,
        paused: state.pause,
        running,
        last,
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

    /// Every job in the catalog, by name: definition, live members, disagreement, orphan,
    /// pause, run in progress, last run and next ticks.
    pub async fn status(&self) -> Result<Vec<JobStatus>, Error> {
        let mut jobs = self.statuses_of(None).await?;
        for job in &mut jobs {
            self.count_recent(job).await?;
        }
        Ok(jobs)
    }

    /// The catalog's entries (only `only`'s, if given), joined with the live members; the
    /// recent counts are left to [`count_recent`](Self::count_recent).
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

    /// Fills `job.recent` from its last [`RECENT_ENTRIES`] history entries.
    async fn count_recent(&self, job: &mut JobStatus) -> Result<(), Error> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for entry in self.store.history(&job.name, RECENT_ENTRIES).await? {
            match counts
                .iter_mut()
                .find(|(outcome, _)| *outcome == entry.outcome)
            {
                Some((_, count)) => *count += 1,
                None => counts.push((entry.outcome, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        job.recent = counts;
        Ok(())
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
        self.count_recent(&mut status).await?;
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
