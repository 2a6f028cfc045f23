//! The key names: a job's keys under one hash tag (one Redis Cluster slot), and the keys
//! beside the members key (the manual index, the clocks, the membership's version).

use crate::coordinator::Lease;
use crate::coordinator::rules::Slot;

/// The keys of one job: `ns:{job}`, `ns:{job}:lease`, `ns:{job}:runs`. One hash tag, so one
/// Redis Cluster slot.
#[derive(Clone, Debug)]
pub(super) struct JobKeys {
    pub(super) state: String,
    pub(super) lease: String,
    pub(super) runs: String,
}

impl JobKeys {
    pub(super) fn new(namespace: &str, job: &str) -> JobKeys {
        let state = format!("{namespace}:{{{job}}}");
        JobKeys {
            lease: format!("{state}:lease"),
            runs: format!("{state}:runs"),
            state,
        }
    }

    /// `ns:{job}:manual`: the job's manual run requests, by id.
    pub(super) fn manual(&self) -> String {
        format!("{}:manual", self.state)
    }

    /// `ns:{job}:defs`: each member's definition of the job (the catalog).
    pub(super) fn defs(&self) -> String {
        format!("{}:defs", self.state)
    }

    /// The key of `lease`: the job's one lease, or the run's own (`overlap = "allow"`, or a
    /// forced manual run).
    pub(super) fn lease_of(&self, lease: &Lease) -> String {
        match lease.slot() {
            None => self.lease.clone(),
            Some(Slot::Tick(tick_ms)) => self.run_lease(tick_ms),
            Some(Slot::Manual(tick_ms)) => self.manual_lease(tick_ms),
        }
    }

    /// The lease of its own of the manual run of `tick_ms` (forced, or `overlap = "allow"`):
    /// apart from the scheduled runs', and one per request (each request of a job has a tick
    /// of its own).
    pub(super) fn manual_lease(&self, tick_ms: i64) -> String {
        format!("{}:m:{tick_ms}", self.lease)
    }

    /// With `overlap = "allow"`, the lease of the run of `tick_ms`: one per tick, since each
    /// tick is claimed once, and known before the claim, so the claim script can declare it.
    pub(super) fn run_lease(&self, tick_ms: i64) -> String {
        format!("{}:{tick_ms}", self.lease)
    }
}

/// The key of the manual runs waiting for a member, beside the members key (same slot, so
/// the heartbeat can say there are some).
pub(super) fn manual_index_key(nodes_key: &str) -> String {
    format!("{nodes_key}:manual{{{nodes_key}}}")
}

/// The key of the members' clock offsets beside the members key (same slot).
pub(super) fn clocks_key(nodes_key: &str) -> String {
    format!("{nodes_key}:clocks{{{nodes_key}}}")
}

/// The key of the membership's version beside the members key: in its hash slot (the tag is
/// the members key itself, or its own tag) and under the namespace, so a `~ns:*` ACL covers it.
pub(super) fn version_key(nodes_key: &str) -> String {
    format!("{nodes_key}:version{{{nodes_key}}}")
}
