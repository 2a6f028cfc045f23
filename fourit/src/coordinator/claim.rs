//! A claim and its answer: the request to run one tick, the outcomes, the lease a run holds,
//! the ticks a claim recorded as missed.

use std::sync::Arc;
use std::time::Duration;

use crate::job::{FenceToken, Overlap};

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

/// Ticks a claim recorded as missed ([`Coordinator::missed_ticks`](super::Coordinator::missed_ticks)).
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
    /// Whether this claim was decided is unknown, while others of its batch were answered
    /// (with Redis Cluster: the node that owns its slot did not answer). It is not run (fail
    /// closed); the scheduler sends it again once (a resend of the same claim resumes it if
    /// it was won), and the tick is skipped if that is not answered either.
    Undecided {
        /// Why, as the backend's client said it (no secrets).
        detail: String,
    },
    /// The job is paused fleet-wide ([`Admin::pause`](super::Admin::pause)): the tick is
    /// decided as paused, run by no member, and counted in the job's pause (the first paused
    /// tick of a pause is also recorded in its history as `paused`).
    Paused,
    /// The tick was claimed for this process, but the claim's durability was not confirmed
    /// as asked (with Redis: fewer replicas acknowledged it than
    /// [`ConnectOptions::wait_for_replicas`](super::ConnectOptions::wait_for_replicas) asks): a
    /// failover now could lose it and let the tick run again elsewhere, so it is not run
    /// (fail closed). The claimer releases the lease with
    /// [`Outcome::NotReplicated`](super::Outcome::NotReplicated), which records the tick in
    /// history.
    NotDurable {
        /// The lease the claim took.
        lease: Lease,
        /// How many copies confirmed it (replicas, with Redis).
        acknowledged: usize,
        /// How many were asked for.
        wanted: usize,
    },
    /// The tick is later than the coordinator's clock (beyond
    /// [`FUTURE_TICK_TOLERANCE`](super::FUTURE_TICK_TOLERANCE)): the claimer's clock runs ahead. Nothing was recorded; try again at the tick, which is
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
    /// A manual run (`fourit trigger`): a lease of its own is kept apart from the scheduled
    /// runs' (a manual run whose tick is a scheduled tick's never shares its lease).
    pub manual: bool,
}
