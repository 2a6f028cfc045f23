//! What the admin answers about jobs and members: the catalog joined with the live members.

use chrono::{DateTime, Utc};

use crate::coordinator::{self, CatalogEntry, HistoryEntry, JobDefinition, PauseState};

/// A job as the fleet runs it now: what [`FleetAdmin::status`](super::FleetAdmin::status) answers per job.
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
    /// No live member registers it any more (it can be [removed](super::FleetAdmin::remove)).
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

/// A live member as [`FleetAdmin::member_status`](super::FleetAdmin::member_status) answers it.
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

/// How a manual run ended ([`FleetAdmin::wait_manual`](super::FleetAdmin::wait_manual)).
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

/// How many next ticks [`FleetAdmin::status`](super::FleetAdmin::status) gives per job.
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

pub(super) fn status_of(entry: CatalogEntry, live: &[String], now: DateTime<Utc>) -> JobStatus {
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

/// Text from the fleet (a job's error, a note, a requester, a node id, a version, a name) as
/// a person must see it, on a terminal or a page: data, never control. Control characters
/// (C0, DEL, C1: escapes, OSC title changes, carriage returns that overwrite a row) and
/// invisible format characters (bidi controls, zero-width characters, line and paragraph
/// separators) are written out as `\u{1b}`; the rest is unchanged.
///
/// ```
/// assert_eq!(fourit::admin::shown("ok\u{202e}txt"), "ok\\u{202e}txt");
/// assert_eq!(fourit::admin::shown("<b>é</b>"), "<b>é</b>");
/// ```
pub fn shown(text: &str) -> String {
    let hidden = |ch: char| {
        ch.is_control()
            || crate::spec::invisible(ch)
            || matches!(ch, '\u{2028}' | '\u{2029}' | '\u{fdd0}'..='\u{fdef}')
    };
    if !text.chars().any(hidden) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        if hidden(ch) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(ch)));
        } else {
            out.push(ch);
        }
    }
    out
}
