//! The rule book: the protocol's rules, once, as pure functions.
//!
//! Every backend keeps a job's state as a [`JobRecord`] (its high-water mark, fence, leases,
//! latest run and pause) and its members as [`MemberRecord`]s. A rule takes the record, the
//! request and the coordinator's clock ([`Now`]), changes the record in place and answers the
//! decision together with the [`Writes`] beyond the record (history entries to append, a
//! notice to send, missed ticks). It does no I/O and knows no backend:
//!
//! - the memory and SQLite coordinators run these functions: load the record, apply the rule,
//!   store what changed (SQLite inside one transaction); a key-value store with a conditional
//!   write (a version compare-and-set) needs nothing more;
//! - the Redis scripts (`redis/*.lua`) and the PL/pgSQL functions (`postgres/schema.sql`) are
//!   translations of them, one round trip per batch; each translation names the rule it
//!   translates, and the differential test (`tests/differential.rs`) runs generated sequences
//!   against every backend and compares the answers and the state.
//!
//! The rules, one file each: [`claim`] (with the resend of a claim and the ticks recorded as
//! missed), [`lease`] (keep-alive and release), [`manual`] (the request and its claim),
//! [`pause`] (pause and resume), [`members`] (heartbeat, eviction, leave, registration). The
//! texts history records are in [`texts`], the limits here.
//!
//! Where a translation legitimately differs, it is said here, and the differential test
//! encodes it:
//! - Redis keeps a lease alive until its expiry instant included (`PX`), the others until
//!   just before it: at the exact millisecond a Redis lease is still held;
//! - Redis and Postgres record missed ticks in a second round trip after the claim (the
//!   schedule is evaluated in Rust, not in the server), memory and SQLite inside the claim;
//! - Redis recognises a release sent again also from a job hash written before it kept the
//!   released run id (the latest run's fence, node and end).
//!
//! - a manual request's tick is one millisecond past the job's latest request when the clock
//!   has not passed it (so two runs with leases of their own, keyed by their tick, never share
//!   one); PostgreSQL reads the latest request in the same statement, so two requests of one
//!   job sent in the same millisecond from two sessions at once may still get one tick.

use std::time::Duration;

use super::Lease;

pub(crate) mod claim;
pub(crate) mod lease;
pub(crate) mod manual;
pub(crate) mod members;
pub(crate) mod missed;
pub(crate) mod pause;
mod record;
pub(crate) mod texts;

#[cfg(test)]
mod tests;

pub(crate) use self::record::{Held, JobRecord, LastRun, MemberRecord, Slot, Writes};

/// How far ahead of the coordinator's clock a claimed tick may be.
///
/// A claim for a later tick is answered [`ClaimOutcome::Early`](super::ClaimOutcome::Early)
/// and changes nothing, so a host whose clock runs or steps ahead can never move a high-water
/// mark into the future (which would make the fleet's claims of every tick in between fail as
/// taken). The tolerance covers what a correct claimer can be early by: the error of its
/// measured offset to the coordinator's clock (half a round trip, plus drift between samples)
/// and, for Redis Cluster, the difference between the nodes' clocks. A claim refused for being
/// early costs one more round trip, never a run.
pub const FUTURE_TICK_TOLERANCE: Duration = Duration::from_millis(5);

/// How many history entries a job keeps (approximately: trimming is lazy).
pub const HISTORY_LEN: usize = 100;

/// The coordinator's clock, as a rule reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Now {
    /// The coordinator's time (UTC ms): the handoff, the future-tick refusal, run starts and
    /// ends, pauses, member heartbeats.
    pub(crate) ms: i64,
    /// The clock leases expire by (ms). The coordinator's time for every backend but memory,
    /// whose leases follow tokio's monotonic clock (so tests with paused time see them expire
    /// on time, and a step of the wall clock it is given expires none).
    pub(crate) lease_ms: i64,
}

impl Now {
    /// One clock for everything.
    // Used by the SQLite coordinator and the tests.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn at(ms: i64) -> Now {
        Now { ms, lease_ms: ms }
    }
}

/// A duration as the rules count it (ms), saturating.
pub(crate) fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Lease {
    /// The run id stored in the lease: `node:fence:tick`. The tick keeps it unique even
    /// after a store restart without persistence has reset the fence counter.
    pub fn run_id(&self) -> String {
        format!("{}:{}:{}", self.node, self.fence.get(), self.tick_ms)
    }

    /// The node, fence and tick of a [`run_id`](Self::run_id) (the node id may hold colons
    /// itself, so the fields are taken from the right).
    pub(crate) fn parse_run_id(id: &str) -> Option<(&str, u64, i64)> {
        parse_run_id(id)
    }

    /// The lease slot this run holds: `None` for the job's lease.
    pub(crate) fn slot(&self) -> Option<Slot> {
        Slot::of(self.overlap, self.manual, self.tick_ms)
    }
}

/// The node, fence and tick of a run id (see [`Lease::run_id`]).
pub(crate) fn parse_run_id(id: &str) -> Option<(&str, u64, i64)> {
    let mut parts = id.rsplitn(3, ':');
    let tick = parts.next()?.parse().ok()?;
    let fence = parts.next()?.parse().ok()?;
    Some((parts.next()?, fence, tick))
}
