//! Coordinators: where the fleet agrees on who runs each tick.
//!
//! A [`Coordinator`] claims ticks, keeps leases alive and releases them; its [`Admin`] side
//! answers members and history. [`RedisCoordinator`] is the production backend;
//! [`MemoryCoordinator`] serves a single process (and tests of the scheduler's logic). Both
//! pass one conformance suite, and both follow the protocol of the README's "Redis protocol"
//! section:
//!
//! - a job's *high-water mark* is the highest tick ever claimed: a claim of a tick at or
//!   below it is refused, so each tick is claimed once, and a late process can never claim an
//!   old tick again;
//! - a *lease* holds the run id (`node:fence:tick`) of the run in progress, with a TTL; only that
//!   run may extend or release it;
//! - the *fence* counter gives every run a token that increases, fleet-wide.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::job::{BoxFuture, FenceToken, Overlap};

pub(crate) mod connect;
mod memory;
mod notices;
mod observed;
#[cfg(feature = "postgres")]
mod postgres;
pub(crate) mod redact;
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use self::connect::{
    ConnectOptions, EvictionCheck, MAX_REPLICA_WAIT, ReplicaAcks, TlsConfig, connect, connect_with,
};
pub use self::memory::MemoryCoordinator;
pub use self::notices::{ClaimNotice, ClaimNotices, NOTICE_BUFFER, NoticeSender};
pub use self::observed::{Call, Observed, Observer};
#[cfg(feature = "postgres")]
pub use self::postgres::PostgresCoordinator;
pub use self::redact::redact_url;
pub use self::redis::RedisCoordinator;
#[cfg(feature = "sqlite")]
pub use self::sqlite::SqliteCoordinator;
pub use crate::error::{CoordinatorError, ErrorKind};

/// How many history entries a job keeps (approximately: trimming is lazy).
pub const HISTORY_LEN: usize = 100;

/// How far ahead of the coordinator's clock a claimed tick may be.
///
/// A claim for a later tick is answered [`ClaimOutcome::Early`] and changes nothing, so a host
/// whose clock runs or steps ahead can never move a high-water mark into the future (which
/// would make the fleet's claims of every tick in between fail as taken). The tolerance
/// covers what a correct claimer can be early by: the error of its measured offset to the
/// coordinator's clock (half a round trip, plus drift between samples) and, for Redis
/// Cluster, the difference between the nodes' clocks. A claim refused for being early costs
/// one more round trip, never a run.
pub const FUTURE_TICK_TOLERANCE: Duration = Duration::from_millis(5);

/// A request to run one tick of one job.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    /// The job's name.
    pub job: Arc<str>,
    /// The tick, in UTC milliseconds.
    pub tick_ms: i64,
    /// The claiming process's node id.
    pub node: Arc<str>,
    /// How long the lease lives unless kept alive.
    pub lease_ttl: Duration,
    /// Whether the tick may run while a previous run still holds its lease.
    pub overlap: Overlap,
    /// The member preferred to run this tick, if the claimer knows the fleet's members. Any
    /// other claimer is refused until `handoff` after the tick (by the coordinator's clock).
    pub preferred: Option<Arc<str>>,
    /// How long the preferred member has the tick to itself.
    pub handoff: Duration,
    /// This claim's own id ([`new_claim_id`]): a claim sent again after its answer was lost
    /// keeps it, and only that resend is answered [`ClaimOutcome::Resumed`]; another
    /// process, even one with the same node id (a restart), is not.
    pub claim_id: u64,
    /// The job's schedule, if the claimer knows it (the scheduler always does): a claim that
    /// decides its tick while the job's high-water mark is older than the schedule's previous
    /// tick (nobody ran the ticks in between: the whole fleet was down, or stalled past
    /// grace) records them in the job's history as `missed`, with how many, the first and
    /// the last.
    pub schedule: Option<Arc<crate::Schedule>>,
}

/// The SQL backends' rows, shared: a run's lease slot (the job's own, `""`, or for a run
/// with a lease of its own its tick's, as Redis's `ns:{job}:lease:<tick>`), durations in ms,
/// and stored numbers as unsigned.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql {
    use std::time::Duration;

    use crate::job::Overlap;

    pub(crate) fn slot(overlap: Overlap, tick_ms: i64) -> String {
        match overlap {
            Overlap::Skip => String::new(),
            Overlap::Allow => format!("t:{tick_ms}"),
        }
    }

    pub(crate) fn millis(duration: Duration) -> i64 {
        i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
    }

    pub(crate) fn unsigned(value: Option<i64>) -> Option<u64> {
        value.map(|v| v.max(0).unsigned_abs())
    }
}

/// Ticks a claim recorded as missed ([`Coordinator::missed_ticks`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissedNotice {
    /// The job's name.
    pub job: Arc<str>,
    /// The member whose claim moved the mark past them.
    pub node: Arc<str>,
    /// How many (a lower bound past [`crate::MISSED_COUNT_LIMIT`]).
    pub count: u32,
    /// The first of them (UTC ms).
    pub first_ms: i64,
    /// The last of them (UTC ms).
    pub last_ms: i64,
}

impl MissedNotice {
    pub(crate) fn new(request: &ClaimRequest, ticks: &MissedTicks) -> MissedNotice {
        MissedNotice {
            job: request.job.clone(),
            node: request.node.clone(),
            count: ticks.count,
            first_ms: ticks.first_ms,
            last_ms: ticks.last_ms,
        }
    }
}

/// The ticks of a job that nobody ran, between the high-water mark and a claimed tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MissedTicks {
    /// How many (a lower bound past [`crate::MISSED_COUNT_LIMIT`]).
    pub(crate) count: u32,
    /// The first missed tick (UTC ms).
    pub(crate) first_ms: i64,
    /// The last missed tick (UTC ms).
    pub(crate) last_ms: i64,
}

impl MissedTicks {
    /// The scheduled ticks strictly between `mark_ms` (the last tick decided) and `tick_ms`
    /// (the one claimed now), if any.
    pub(crate) fn between(
        schedule: &crate::Schedule,
        mark_ms: i64,
        tick_ms: i64,
    ) -> Option<MissedTicks> {
        let after = DateTime::from_timestamp_millis(mark_ms)?;
        let mut ticks = schedule
            .upcoming(after)
            .map(|tick| tick.timestamp_millis())
            .take_while(|tick| *tick < tick_ms);
        let first_ms = ticks.next()?;
        let mut missed = MissedTicks {
            count: 1,
            first_ms,
            last_ms: first_ms,
        };
        for tick in ticks {
            if missed.count < crate::MISSED_COUNT_LIMIT {
                missed.count += 1;
            }
            missed.last_ms = tick;
            if missed.count >= crate::MISSED_COUNT_LIMIT {
                // Past the limit only the last one still matters: jump to it.
                if let Some(previous) =
                    schedule.latest_at_or_before(DateTime::from_timestamp_millis(tick_ms - 1)?)
                {
                    missed.last_ms = previous.timestamp_millis();
                }
                break;
            }
        }
        Some(missed)
    }

    /// The schedule's tick before `tick_ms`, which the claim script compares with the mark.
    pub(crate) fn previous_tick(schedule: &crate::Schedule, tick_ms: i64) -> Option<i64> {
        let before = DateTime::from_timestamp_millis(tick_ms - 1)?;
        schedule
            .latest_at_or_before(before)
            .map(|tick| tick.timestamp_millis())
    }

    /// The history entry's text: `4 ticks missed, 2026-...Z to 2026-...Z`.
    pub(crate) fn detail(&self) -> String {
        let at = |ms: i64| {
            DateTime::from_timestamp_millis(ms)
                .map(|at| at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_default()
        };
        let bound = if self.count >= crate::MISSED_COUNT_LIMIT {
            "at least "
        } else {
            ""
        };
        let noun = if self.count == 1 { "tick" } else { "ticks" };
        format!(
            "{bound}{} {noun} missed, {} to {}",
            self.count,
            at(self.first_ms),
            at(self.last_ms)
        )
    }
}

/// A fresh, unpredictable id for a [`ClaimRequest`].
pub fn new_claim_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// The answer to a [`ClaimRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This process runs the tick, under this lease.
    Run(Lease),
    /// This very claim (same [`ClaimRequest::claim_id`]) had already won the tick: the answer
    /// to a claim sent again after the first answer was lost (a cut connection, a timeout).
    /// Run it, under this lease, the same as the first claim's (taken again if it expired
    /// meanwhile).
    Resumed(Lease),
    /// Another process claimed this tick (or a later one) first.
    Taken,
    /// The tick was claimed, but the previous run still holds the lease (overlap is
    /// forbidden): the tick is skipped and recorded as an overlap.
    Overlap {
        /// The run id holding the lease.
        holder: String,
    },
    /// The claimer is not the preferred member and the handoff window is still open: try
    /// again at this instant (UTC milliseconds, coordinator time). Nothing was recorded.
    Retry {
        /// When the window closes.
        at_ms: i64,
        /// The coordinator's time when it answered (UTC milliseconds): the claimer waits
        /// `at_ms - now_ms`, whatever its own clock says.
        now_ms: i64,
    },
    /// This claim got no answer while others of its batch did (a Redis Cluster node that
    /// owns its slot did not answer). Whether it was decided is unknown: it is not run
    /// (fail closed), and the tick is skipped unless the claim is retried.
    Unanswered {
        /// Why, as the client library said it (no secrets).
        detail: String,
    },
    /// The job is paused fleet-wide ([`Admin::pause`]): the tick is decided as paused, run by
    /// no member, and counted in the job's pause (the first paused tick of a pause is also
    /// recorded in its history as `paused`).
    Paused,
    /// The tick was claimed for this process, but fewer replicas acknowledged the claim than
    /// [`ConnectOptions::wait_for_replicas`] asks: a failover now could lose it and let the
    /// tick run again elsewhere, so it is not run (fail closed). The claimer releases the
    /// lease with [`Outcome::NotReplicated`], which records the tick in history.
    Unreplicated {
        /// The lease the claim took.
        lease: Lease,
        /// How many replicas acknowledged it.
        acknowledged: usize,
        /// How many were asked for.
        wanted: usize,
    },
    /// The tick is later than the coordinator's clock (beyond [`FUTURE_TICK_TOLERANCE`]):
    /// the claimer's clock runs ahead. Nothing was recorded; try again at the tick, which is
    /// `tick_ms - now_ms` from now.
    Early {
        /// The coordinator's time when it answered (UTC milliseconds).
        now_ms: i64,
    },
}

/// The right to run one tick, held until released or expired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The job's name.
    pub job: Arc<str>,
    /// The tick, in UTC milliseconds.
    pub tick_ms: i64,
    /// The run's fencing token.
    pub fence: FenceToken,
    /// The node running it.
    pub node: Arc<str>,
    /// With [`Overlap::Allow`] each run has a lease of its own; with `Skip` a job has one.
    pub overlap: Overlap,
}

impl Lease {
    /// The run id stored in the lease: `node:fence:tick`. The tick keeps it unique even
    /// after a Redis restart without persistence has reset the fence counter.
    pub fn run_id(&self) -> String {
        format!("{}:{}:{}", self.node, self.fence, self.tick_ms)
    }

    /// The node, fence and tick of a [`run_id`](Self::run_id) (the node id may hold colons
    /// itself, so the fields are taken from the right).
    pub(crate) fn parse_run_id(id: &str) -> Option<(&str, u64, i64)> {
        let mut parts = id.rsplitn(3, ':');
        let tick = parts.next()?.parse().ok()?;
        let fence = parts.next()?.parse().ok()?;
        Some((parts.next()?, fence, tick))
    }
}

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
    /// ([`ConnectOptions::wait_for_replicas`]); the text says how many.
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
    /// One line of text (fields separated by tabs), as the catalog stores it.
    pub fn to_line(&self) -> String {
        let clean = |text: &str| text.replace(['\t', '\n', '\r'], " ");
        let millis = |d: Option<Duration>| d.map_or("-".to_string(), |d| d.as_millis().to_string());
        format!(
            "v1\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
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

    /// The definition of `name` from a [`to_line`](Self::to_line) line; `None` for a line
    /// this version cannot read.
    pub fn from_line(name: &str, line: &str) -> Option<JobDefinition> {
        let fields: Vec<&str> = line.split('\t').collect();
        let [
            "v1",
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
        Some(JobDefinition {
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
        })
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
/// [`Coordinator::register`] answers it per job.
pub type Registrations = Vec<(String, JobDefinition)>;

/// A job's entry in the catalog ([`Admin::catalog`]): what each member registered, and
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

/// A manual run asked for ([`Admin::request_manual`], `fourit trigger`), until a member
/// takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManualRequest {
    /// The job.
    pub job: String,
    /// The request's id, unique in the namespace.
    pub id: String,
    /// Who asked.
    pub by: String,
    /// When (UTC ms, the coordinator's clock): the run's tick.
    pub requested_ms: i64,
    /// Run even while a previous run holds the job's lease (overlap = skip).
    pub force: bool,
}

/// The answer to a member's claim of a manual run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManualOutcome {
    /// This member runs it, under this lease (a fence of its own; the job's high-water mark
    /// does not move).
    Run(Lease),
    /// Not forced, and a previous run holds the lease: skipped, and recorded so.
    Overlap {
        /// The holder's run id.
        holder: String,
    },
    /// Another member took it (or it is gone).
    Taken,
}

/// Where a manual request stands ([`Admin::manual_state`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManualState {
    /// No member has taken it yet.
    Pending,
    /// A member runs (or ran) it, with this fence.
    Started {
        /// The member.
        node: String,
        /// The run's fence: its outcome is the history entry with this fence.
        fence: u64,
    },
    /// Skipped: a previous run held the lease, and it was not forced.
    Skipped {
        /// The holder's run id.
        holder: String,
    },
}

impl ManualRequest {
    /// The stored form: `by \t requested ms \t force \t state...`.
    pub(crate) fn record(&self) -> String {
        format!(
            "{}\t{}\t{}\tpending",
            self.by.replace(['\t', '\n'], " "),
            self.requested_ms,
            if self.force { "1" } else { "0" }
        )
    }

    /// A request of `job` from its stored form, and where it stands.
    pub(crate) fn parse(job: &str, id: &str, text: &str) -> Option<(ManualRequest, ManualState)> {
        let fields: Vec<&str> = text.split('\t').collect();
        let request = ManualRequest {
            job: job.to_string(),
            id: id.to_string(),
            by: (*fields.first()?).to_string(),
            requested_ms: fields.get(1)?.parse().ok()?,
            force: *fields.get(2)? == "1",
        };
        let state = match *fields.get(3)? {
            "pending" => ManualState::Pending,
            "started" => ManualState::Started {
                node: (*fields.get(4)?).to_string(),
                fence: fields.get(5)?.parse().ok()?,
            },
            "skipped" => ManualState::Skipped {
                holder: fields.get(4).map(|h| (*h).to_string()).unwrap_or_default(),
            },
            _ => return None,
        };
        Some((request, state))
    }
}

/// A job's pause, fleet-wide, as [`Admin::pause_state`] answers it.
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
    /// Manual runs are waiting for a member ([`Coordinator::manual_requests`]).
    pub manual_pending: bool,
    /// The members this heartbeat forgot because they were silent for longer than
    /// `stale_after` (they went away without leaving), sorted; members that left are not here.
    pub evicted: Vec<String>,
}

/// The fleet's shared state as the scheduler needs it: claims, leases, membership, the clock.
///
/// # The contract every backend keeps
///
/// - **Errors.** Every call has a deadline. An `Err` means the effect did not happen *or is
///   unknown*; the scheduler never runs a job on an `Err` (fail closed). Say which
///   [`ErrorKind`] it is: `Unavailable` and `Timeout` are retried, the others are not.
/// - **Atomic.** A claim decides one tick in one indivisible step against the job's
///   high-water mark: check the mark and the coordinator's clock (a tick later than it plus
///   [`FUTURE_TICK_TOLERANCE`] is [`ClaimOutcome::Early`], recording nothing), the handoff
///   window for a claimer that is not preferred ([`ClaimOutcome::Retry`], recording nothing),
///   then set the mark, and either record an overlap or take the fence and the lease. A
///   keep-alive and a release act only if the lease still holds the run's id
///   ([`Lease::run_id`]); a release records the outcome either way. Requests in one batch see
///   the effects of the earlier ones.
/// - **Clock.** The handoff, the future-tick refusal, lease expiry and member timestamps all
///   follow the coordinator's own clock, which [`server_time`](Self::server_time) and the
///   heartbeat answer; the fleet schedules by it.
/// - **Notices** ([`claim_notices`](Self::claim_notices)) are best effort: a notice may be
///   lost, but one is only ever sent for a tick that a claim decided (run or overlap) and that
///   named a preferred member. A notice that was never sent costs a refused claim; a wrong
///   notice would cost a tick, so there are none.
///
/// Every backend passes the conformance suite (`tests/conformance.rs`) unchanged.
///
/// Every method but [`release_all`](Self::release_all) is required: a backend (or a
/// wrapper, such as [`Observed`]) says what it does for each, so none loses a feature
/// (manual runs, the catalog, the feeds) by omission.
pub trait Coordinator: Send + Sync + fmt::Debug + 'static {
    /// Claims the given ticks, all in one round trip, answering each in order.
    fn claim<'a>(
        &'a self,
        requests: &'a [ClaimRequest],
    ) -> BoxFuture<'a, Result<Vec<ClaimOutcome>, Error>>;

    /// Extends the lease by `ttl` if it is still this run's; `Ok(false)` if it is not.
    fn keep_alive<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    /// Records the run's outcome and deletes the lease if it is still this run's;
    /// `Ok(false)` if the lease had expired or been taken (the outcome is still recorded).
    fn release<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<bool, Error>>;

    /// Marks `node` alive now, forgets members silent for longer than `stale_after`, and
    /// answers the coordinator's time and the live members. `clock_offset_us` is how far the
    /// member's clock runs ahead of the coordinator's (µs, negative when behind), as the
    /// member last measured it, kept for operators ([`Admin::members`]); `None` when it has
    /// not measured one.
    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        stale_after: Duration,
        clock_offset_us: Option<i64>,
    ) -> BoxFuture<'a, Result<Heartbeat, Error>>;

    /// The coordinator's clock (UTC microseconds), which the fleet schedules by; `None` if
    /// the coordinator has no clock of its own (the schedulers then use their local clocks).
    /// The memory coordinator answers the wall clock it was given.
    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>>;

    /// Removes `node` from the members, as a graceful shutdown does.
    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// The manual runs waiting for a member, oldest first. A backend that cannot hold
    /// manual requests answers none, on purpose.
    fn manual_requests(&self) -> BoxFuture<'_, Result<Vec<ManualRequest>, Error>>;

    /// Takes the manual run `request` for `node`, once fleet-wide: answers
    /// [`ManualOutcome::Run`] to exactly one member (a fence of its own, the lease by the
    /// job's `overlap` policy unless forced, never the high-water mark), and records it in
    /// history as `manual` with who asked.
    fn claim_manual<'a>(
        &'a self,
        request: &'a ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: Overlap,
    ) -> BoxFuture<'a, Result<ManualOutcome, Error>>;

    /// Records in the catalog that `node` runs `jobs` as defined, and answers, per job in
    /// order, every registration of it (node and definition), this one included, so the
    /// member can tell whether others disagree.
    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<Registrations>, Error>>;

    /// Releases several runs in one round trip, answering each as
    /// [`release`](Self::release) would, in order. The default calls `release` for each (one
    /// round trip each: correct, only slower); a wrapper must forward it, so that the
    /// wrapped backend's own batch is used.
    fn release_all<'a>(
        &'a self,
        runs: &'a [(Lease, RunRecord)],
    ) -> BoxFuture<'a, Vec<Result<bool, Error>>> {
        Box::pin(async move {
            let mut answers = Vec::with_capacity(runs.len());
            for (lease, record) in runs {
                answers.push(self.release(lease, record).await);
            }
            answers
        })
    }

    /// A feed of the ticks claimed anywhere in the fleet, or `None` if the backend has none
    /// (every implementor says which; a wrapper forwards its inner one's). The feed is best
    /// effort: a notice may be lost (the scheduler then claims the tick itself after the
    /// handoff and is refused), but a notice is only ever sent for a tick that was claimed.
    fn claim_notices(&self) -> Option<ClaimNotices>;

    /// A feed of the ticks this coordinator's claims recorded as missed (each with the
    /// claimer), for the schedulers' events; `None` if the backend offers none (every
    /// implementor says which; a wrapper forwards its inner one's).
    fn missed_ticks(&self) -> Option<tokio::sync::broadcast::Receiver<MissedNotice>>;

    /// How errors and logs name this backend (`Redis`, `Postgres`, `memory`); a wrapper
    /// answers its inner one's.
    fn backend(&self) -> &'static str;
}

/// The read side of a coordinator, for operators, tools and tests: what the fleet recorded.
/// The scheduler does not need it; every backend implements it beside [`Coordinator`] (see
/// [`Store`]).
pub trait Admin: Send + Sync + fmt::Debug + 'static {
    /// The live members, their last heartbeat and clock offset, oldest heartbeat first.
    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>, Error>>;

    /// The job's most recent history entries, newest first.
    fn history<'a>(
        &'a self,
        job: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<HistoryEntry>, Error>>;

    /// Pauses `job` fleet-wide from its next claim on: every tick is decided as paused
    /// ([`ClaimOutcome::Paused`]) until [`resume`](Self::resume). Pausing a paused job
    /// replaces who and why, and keeps its count. The pause lives in the coordinator, so it
    /// survives every member restarting.
    fn pause<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        note: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Resumes `job` from its next tick (no backfill), recording the pause's count in history
    /// as `resumed` when it paused any tick; answers the pause it ended, or `None` if the job
    /// was not paused.
    fn resume<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
    ) -> BoxFuture<'a, Result<Option<PauseState>, Error>>;

    /// The job's pause, or `None` if it is not paused.
    fn pause_state<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Option<PauseState>, Error>>;

    /// Every job ever registered in the namespace, by name, with its registrations and
    /// recorded state.
    fn catalog(&self) -> BoxFuture<'_, Result<Vec<CatalogEntry>, Error>>;

    /// Asks for a manual run of `job` by `by` (forced: even while a run holds the lease);
    /// members that register the job pick it up at their next heartbeat.
    fn request_manual<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<ManualRequest, Error>>;

    /// Where the manual request `id` of `job` stands; `None` if there is none.
    fn manual_state<'a>(
        &'a self,
        job: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ManualState>, Error>>;

    /// Removes `job` from the catalog: its registrations, its state and its history.
    fn remove<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<(), Error>>;
}

/// A backend: the scheduler's seam ([`Coordinator`]) and the read side ([`Admin`]) together.
/// Implemented for every type that implements both; an `Arc<dyn Store>` coerces to an
/// `Arc<dyn Coordinator>`.
pub trait Store: Coordinator + Admin {}

impl<T: Coordinator + Admin> Store for T {}
