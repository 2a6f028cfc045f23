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
use std::time::Duration;

use crate::error::Error;
use crate::job::Overlap;

mod catalog;
mod claim;
pub(crate) mod connect;
mod manual;
mod memory;
mod notices;
mod observed;
#[cfg(feature = "postgres")]
mod postgres;
mod redis;
pub(crate) mod rules;
mod run;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use self::catalog::{
    CatalogEntry, Heartbeat, JobDefinition, JobState, Member, PauseState, Registrations,
};
pub use self::claim::{ClaimOutcome, ClaimRequest, Lease, MissedNotice, new_claim_id};
pub use self::connect::{
    ConnectOptions, EvictionCheck, MAX_REPLICA_WAIT, ReplicaAcks, TlsConfig, connect, connect_with,
};
pub use self::manual::{ManualOutcome, ManualRequest, ManualState};
pub use self::memory::MemoryCoordinator;
pub use self::notices::{ClaimNotice, ClaimNotices, NOTICE_BUFFER, NoticeSender};
pub use self::observed::{Call, Observed, Observer};
#[cfg(feature = "postgres")]
pub use self::postgres::PostgresCoordinator;
pub use self::redis::RedisCoordinator;
pub use self::run::{HistoryEntry, Outcome, RunRecord};
#[cfg(feature = "sqlite")]
pub use self::sqlite::SqliteCoordinator;
pub use crate::error::{CoordinatorError, ErrorKind};
pub use crate::job::BoxFuture;
pub use crate::redact::redact_url;

pub(crate) use self::rules::missed::MissedTicks;
pub use self::rules::{FUTURE_TICK_TOLERANCE, HISTORY_LEN};

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

    /// The most recent history entries of each of `jobs` (at most `limit` each, newest first),
    /// in the order of `jobs`, in one round trip whatever their number (one pipeline, one
    /// query): what a view of the whole fleet reads.
    fn histories<'a>(
        &'a self,
        jobs: &'a [String],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<HistoryEntry>>, Error>>;

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
