//! The catalog and the fleet: each member's definition of a job, a job's recorded state, its
//! pause, the live members and a heartbeat's answer.

use std::time::Duration;

use crate::job::Overlap;

/// A live member as the coordinator recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its node id.
    pub node: String,
    /// Its last heartbeat (UTC ms, the coordinator's clock).
    pub heartbeat_ms: i64,
    /// How far its clock ran ahead of the coordinator's at that heartbeat (µs, negative when
    /// behind), as it measured it; `None` if it had not measured one yet.
    pub clock_offset_us: Option<i64>,
}

/// A job as one member registers it in the coordinator's catalog: what it runs on, so an
/// operator sees the fleet's jobs, and members that disagree about one (a rolling deploy that
/// changed a schedule) show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobDefinition {
    /// The job's name.
    pub name: String,
    /// The schedule as written.
    pub schedule: String,
    /// The IANA time zone it runs in.
    pub timezone: String,
    /// The overlap policy.
    pub overlap: Overlap,
    /// The run timeout, if any.
    pub timeout: Option<Duration>,
    /// The job's own grace, if it overrides the scheduler's.
    pub grace: Option<Duration>,
    /// Where it is defined (`file:line`).
    pub location: String,
    /// The application version the member's builder names, if any.
    pub version: Option<String>,
}

impl JobDefinition {
    /// One line of text (fields separated by tabs), as the catalog stores a registration
    /// recorded at `registered_ms` (the coordinator's clock): `v2`, the time, then the
    /// fields of a `v1` line (schedule, zone, overlap, timeout, grace, location, version).
    pub(crate) fn to_line_at(&self, registered_ms: i64) -> String {
        format!("v2\t{registered_ms}\t{}", self.fields())
    }

    /// The fields after a `v2` line's time, tab-separated (the Postgres statement puts the
    /// server's time in front).
    pub(crate) fn fields(&self) -> String {
        let clean = |text: &str| text.replace(['\t', '\n', '\r'], " ");
        let millis = |d: Option<Duration>| d.map_or("-".to_string(), |d| d.as_millis().to_string());
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            clean(&self.schedule),
            clean(&self.timezone),
            match self.overlap {
                Overlap::Skip => "skip",
                Overlap::Allow => "allow",
            },
            millis(self.timeout),
            millis(self.grace),
            clean(&self.location),
            self.version
                .as_deref()
                .map(clean)
                .unwrap_or_else(|| "-".to_string()),
        )
    }

    /// The definition of `name` and when it was registered from a stored line: a `v2` line
    /// ([`to_line_at`](Self::to_line_at)) carries the time, a `v1` line (written before
    /// registrations had one) none; `None` for a line this version cannot read.
    pub(crate) fn from_stored(name: &str, line: &str) -> Option<(JobDefinition, Option<i64>)> {
        let (registered_ms, rest) = if let Some(rest) = line.strip_prefix("v2\t") {
            let (at, rest) = rest.split_once('\t')?;
            (Some(at.parse::<i64>().ok()?), rest)
        } else {
            (None, line.strip_prefix("v1\t")?)
        };
        let fields: Vec<&str> = rest.split('\t').collect();
        let [
            schedule,
            timezone,
            overlap,
            timeout,
            grace,
            location,
            version,
        ] = fields.as_slice()
        else {
            return None;
        };
        let millis = |text: &str| -> Option<Option<Duration>> {
            match text {
                "-" => Some(None),
                ms => ms.parse().ok().map(|ms| Some(Duration::from_millis(ms))),
            }
        };
        let def = JobDefinition {
            name: name.to_string(),
            schedule: (*schedule).to_string(),
            timezone: (*timezone).to_string(),
            overlap: match *overlap {
                "allow" => Overlap::Allow,
                _ => Overlap::Skip,
            },
            timeout: millis(timeout)?,
            grace: millis(grace)?,
            location: (*location).to_string(),
            version: (*version != "-").then(|| (*version).to_string()),
        };
        Some((def, registered_ms))
    }

    /// Whether two members run the job the same way: schedule, zone and options (the
    /// source location and the version may differ).
    pub fn agrees_with(&self, other: &JobDefinition) -> bool {
        (
            &self.schedule,
            &self.timezone,
            self.overlap,
            self.timeout,
            self.grace,
        ) == (
            &other.schedule,
            &other.timezone,
            other.overlap,
            other.timeout,
            other.grace,
        )
    }
}

/// Every member's registration of one job (node id and definition), as
/// [`Coordinator::register`](super::Coordinator::register) answers it per job.
pub type Registrations = Vec<(String, JobDefinition)>;

/// A job's entry in the catalog ([`Admin::catalog`](super::Admin::catalog)): what each member registered, and
/// the job's recorded state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogEntry {
    /// The job's name.
    pub name: String,
    /// Each member that registered it (live or not), with its definition.
    pub registrations: Registrations,
    /// The job's recorded state: the last run, the run in progress, the pause.
    pub state: JobState,
}

/// What the coordinator holds about a job's runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobState {
    /// The highest tick decided (UTC ms).
    pub high_water_ms: Option<i64>,
    /// The latest run: its tick, node and fence.
    pub last_tick_ms: Option<i64>,
    /// The node of the latest run.
    pub last_node: Option<String>,
    /// The fence of the latest run.
    pub last_fence: Option<u64>,
    /// When the latest run started (UTC ms, the coordinator's clock).
    pub last_started_ms: Option<i64>,
    /// When it finished, if it has.
    pub last_finished_ms: Option<i64>,
    /// How it ended (`running` while it runs).
    pub last_outcome: Option<String>,
    /// Its error text, if any.
    pub last_error: Option<String>,
    /// The run id holding the job's lease now, if one does (`node:fence:tick`).
    pub running: Option<String>,
    /// The job's pause, if it is paused.
    pub pause: Option<PauseState>,
}

/// A job's pause, fleet-wide, as [`Admin::pause_state`](super::Admin::pause_state) answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PauseState {
    /// Who paused it (a free-text operator name).
    pub by: String,
    /// Why, if they said.
    pub note: Option<String>,
    /// When it was paused (UTC milliseconds, the coordinator's clock).
    pub since_ms: i64,
    /// Ticks decided as paused since then.
    pub ticks: u64,
    /// The first and the last of them, if any.
    pub first_tick_ms: Option<i64>,
    /// The last of them.
    pub last_tick_ms: Option<i64>,
}

/// The answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// The coordinator's time when it recorded the heartbeat (UTC microseconds); `None` for
    /// a coordinator without a clock of its own.
    pub server_us: Option<i64>,
    /// The live members, sorted.
    pub members: Vec<String>,
    /// Manual runs are waiting for a member ([`Coordinator::manual_requests`](super::Coordinator::manual_requests)).
    pub manual_pending: bool,
    /// The members this heartbeat forgot because they were silent for longer than
    /// `stale_after` (they went away without leaving), sorted; members that left are not here.
    pub evicted: Vec<String>,
}
