//! The records the rules read and write: a job's state, a lease, a member, and the writes a
//! rule asks for beyond the record.

use std::collections::BTreeMap;

use super::super::{HistoryEntry, JobState, MissedTicks, PauseState};
use super::{Now, parse_run_id};
use crate::job::Overlap;

/// A lease as stored: the run id it holds and when it expires (the lease clock, ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// `node:fence:tick` of the run holding it.
    pub(crate) run_id: String,
    /// It is held while the lease clock is before this instant.
    pub(crate) expires_ms: i64,
}

impl Held {
    /// Whether it is still held at `now`.
    pub(crate) fn live(&self, now: Now) -> bool {
        self.expires_ms > now.lease_ms
    }
}

/// Where a run with a lease of its own keeps it: by its tick, scheduled runs and manual runs
/// apart (each tick of a job is claimed once, and each manual request of a job has a tick of
/// its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Slot {
    /// A scheduled run's (`overlap = "allow"`).
    Tick(i64),
    /// A manual run's (forced, or `overlap = "allow"`).
    Manual(i64),
}

impl Slot {
    /// The slot of `lease`'s run, if it has a lease of its own.
    pub(crate) fn of(overlap: Overlap, manual: bool, tick_ms: i64) -> Option<Slot> {
        match (overlap, manual) {
            (Overlap::Skip, _) => None,
            (Overlap::Allow, false) => Some(Slot::Tick(tick_ms)),
            (Overlap::Allow, true) => Some(Slot::Manual(tick_ms)),
        }
    }
}

/// The latest run, as status shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LastRun {
    /// The member that runs (or ran) it.
    pub(crate) node: Option<String>,
    /// When it started (the coordinator's clock, ms).
    pub(crate) started_ms: Option<i64>,
    /// When it ended, once it has.
    pub(crate) finished_ms: Option<i64>,
    /// `running`, then how it ended.
    pub(crate) outcome: Option<String>,
    /// Its error text, if it has one.
    pub(crate) error: Option<String>,
}

/// Everything the protocol keeps about one job, except its history (appended to, never
/// read by a rule) and its manual requests (records of their own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct JobRecord {
    /// The high-water mark: the highest tick decided (UTC ms).
    pub(crate) mark: Option<i64>,
    /// The fence counter: the latest run's fence (0 before the first run).
    pub(crate) fence: u64,
    /// The id of the claim that won the latest scheduled run, until that run is released.
    pub(crate) claim: Option<u64>,
    /// The run id of the latest run once it was released: that release sent again (its answer
    /// was lost) is recognised, even after a later run started.
    pub(crate) released: Option<String>,
    /// The job's lease (`overlap = "skip"`, and manual runs that are not forced).
    pub(crate) lease: Option<Held>,
    /// The runs with a lease of their own (`overlap = "allow"`, forced manual runs).
    pub(crate) run_leases: BTreeMap<Slot, Held>,
    /// The latest run.
    pub(crate) last: LastRun,
    /// The job's pause, fleet-wide.
    pub(crate) pause: Option<PauseState>,
}

impl JobRecord {
    /// The live holder of the job's lease.
    pub(crate) fn holder(&self, now: Now) -> Option<&str> {
        self.lease
            .as_ref()
            .filter(|held| held.live(now))
            .map(|held| held.run_id.as_str())
    }

    /// The live holder of the lease slot `slot` (`None`: the job's lease).
    pub(crate) fn slot_holder(&self, slot: Option<Slot>, now: Now) -> Option<&str> {
        match slot {
            None => self.holder(now),
            Some(slot) => self
                .run_leases
                .get(&slot)
                .filter(|held| held.live(now))
                .map(|held| held.run_id.as_str()),
        }
    }

    /// Puts `held` in the lease slot `slot` (`None`: the job's lease), forgetting expired
    /// leases.
    pub(crate) fn take_slot(&mut self, slot: Option<Slot>, held: Held, now: Now) {
        self.drop_expired(now);
        match slot {
            None => self.lease = Some(held),
            Some(slot) => {
                self.run_leases.insert(slot, held);
            }
        }
    }

    /// Frees the lease slot `slot` (`None`: the job's lease).
    pub(crate) fn free_slot(&mut self, slot: Option<Slot>) {
        match slot {
            None => self.lease = None,
            Some(slot) => {
                self.run_leases.remove(&slot);
            }
        }
    }

    /// Forgets the leases that expired (a store may keep them until then; none is ever read
    /// past its expiry).
    pub(crate) fn drop_expired(&mut self, now: Now) {
        if self.lease.as_ref().is_some_and(|held| !held.live(now)) {
            self.lease = None;
        }
        self.run_leases.retain(|_, held| held.live(now));
    }

    /// What status shows of the job: the latest run (the one in progress names its tick),
    /// the holder of its lease, its pause.
    pub(crate) fn state(&self, now: Now) -> JobState {
        let running = self.holder(now).map(str::to_string);
        JobState {
            high_water_ms: self.mark,
            last_tick_ms: running
                .as_deref()
                .and_then(parse_run_id)
                .map(|(_, _, tick)| tick),
            last_node: self.last.node.clone(),
            last_fence: (self.fence > 0 && self.last.node.is_some()).then_some(self.fence),
            last_started_ms: self.last.started_ms,
            last_finished_ms: self.last.finished_ms,
            last_outcome: self.last.outcome.clone(),
            last_error: self.last.error.clone(),
            running,
            pause: self.pause.clone(),
        }
    }
}

/// A live member, as the heartbeat keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemberRecord {
    /// Its last heartbeat (the coordinator's clock, ms).
    pub(crate) heartbeat_ms: i64,
    /// How far its clock runs ahead of the coordinator's (µs), as it last measured it.
    pub(crate) clock_offset_us: Option<i64>,
}

/// What a rule writes beyond the record: history entries to append (in this order) and the
/// ticks it recorded as missed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Writes {
    /// Entries for the job's history, oldest first.
    pub(crate) history: Vec<HistoryEntry>,
    /// The ticks a claim moved the mark over (also in `history`), for the missed-tick feed.
    pub(crate) missed: Option<MissedTicks>,
    /// Whether the record changed (a store writes it back only then).
    pub(crate) changed: bool,
}

impl Writes {
    /// Nothing written.
    pub(crate) fn none() -> Writes {
        Writes::default()
    }

    /// The record changed, and nothing else.
    pub(crate) fn record() -> Writes {
        Writes {
            changed: true,
            ..Writes::default()
        }
    }

    /// The record changed, and `entry` goes to history.
    pub(crate) fn entry(entry: HistoryEntry) -> Writes {
        Writes {
            history: vec![entry],
            missed: None,
            changed: true,
        }
    }
}
