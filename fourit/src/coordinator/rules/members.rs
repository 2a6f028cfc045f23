//! The fleet's members: a heartbeat marks a member alive at the coordinator's time and
//! forgets those silent for longer than the caller's timeout; leaving forgets one at once; a
//! registration records the jobs a member runs, and registrations follow the members
//! ([`prune`]). The heartbeat is translated by `redis/heartbeat.lua` and `fourit_heartbeat`
//! in `postgres/schema.sql`; the pruning is run over what `redis/catalog.rs` and
//! `postgres/catalog.rs` read, and its deletions sent back.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::{JobDefinition, Registrations};
use super::{MemberRecord, Now, ms};

/// Marks `node` alive at `now` (keeping its last clock offset when it sends none), forgets
/// the members whose last heartbeat is more than `stale_after` old, and answers those, sorted.
pub(crate) fn heartbeat(
    members: &mut BTreeMap<String, MemberRecord>,
    node: &str,
    stale_after: Duration,
    clock_offset_us: Option<i64>,
    now: Now,
) -> Vec<String> {
    let member = members.entry(node.to_string()).or_insert(MemberRecord {
        heartbeat_ms: now.ms,
        clock_offset_us: None,
    });
    member.heartbeat_ms = now.ms;
    if clock_offset_us.is_some() {
        member.clock_offset_us = clock_offset_us;
    }
    let stale = ms(stale_after);
    let silent = |record: &MemberRecord| now.ms.saturating_sub(record.heartbeat_ms) > stale;
    let evicted: Vec<String> = members
        .iter()
        .filter(|(_, record)| silent(record))
        .map(|(node, _)| node.clone())
        .collect();
    members.retain(|_, record| !silent(record));
    evicted
}

/// A member's registration of a job as stored: its definition and when it was recorded (the
/// coordinator's clock, ms; `None` for one recorded before registrations had a time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Registered {
    /// The member's definition of the job.
    pub(crate) def: JobDefinition,
    /// When it was registered.
    pub(crate) at_ms: Option<i64>,
}

impl Registered {
    /// A registration of `job` from its stored line; `None` for a line this version cannot
    /// read.
    pub(crate) fn parse(job: &str, line: &str) -> Option<Registered> {
        JobDefinition::from_stored(job, line).map(|(def, at_ms)| Registered { def, at_ms })
    }
}

/// A job's registrations, by node.
pub(crate) type JobRegistrations = BTreeMap<String, Registered>;

/// Records that `node` runs `job` as defined at `now` (replacing its earlier registration),
/// prunes the job's registrations with `node` and the members in `live` live ([`prune`]),
/// and answers the ones left, by node.
pub(crate) fn register(
    registrations: &mut JobRegistrations,
    node: &str,
    job: &JobDefinition,
    live: &dyn Fn(&str) -> bool,
    now: Now,
) -> Registrations {
    registrations.insert(
        node.to_string(),
        Registered {
            def: job.clone(),
            at_ms: Some(now.ms),
        },
    );
    prune(registrations, &|other| other == node || live(other));
    answer(registrations)
}

/// A job's registrations as the seam answers them, by node.
pub(crate) fn answer(registrations: &JobRegistrations) -> Registrations {
    registrations
        .iter()
        .map(|(node, registered)| (node.clone(), registered.def.clone()))
        .collect()
}

/// Registrations follow the members: every registration whose member is not `live` goes,
/// except, for a job no live member registers, exactly one, the *last*: the one registered
/// latest (a registration without a time counts as older than every one with a time; equal
/// times, the greatest node id). Answers the nodes whose registrations went, sorted.
///
/// Run when the live members change (a member registers, leaves, or is forgotten as silent)
/// and when the catalog is read, so that the last registrant left of a job is the last of
/// its registrants to go, and `fourit status` shows the job as orphaned with its last
/// definition.
pub(crate) fn prune(
    registrations: &mut JobRegistrations,
    live: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let keep: Option<String> = if registrations.keys().any(|node| live(node)) {
        None
    } else {
        registrations
            .iter()
            .max_by_key(|(node, registered)| (registered.at_ms, node.as_str()))
            .map(|(node, _)| node.clone())
    };
    let gone: Vec<String> = registrations
        .keys()
        .filter(|node| !live(node) && keep.as_deref() != Some(node.as_str()))
        .cloned()
        .collect();
    for node in &gone {
        registrations.remove(node);
    }
    gone
}

/// [`prune`] over every job of a catalog (job name → registrations): answers the (job, node)
/// registrations that went, by job then node.
pub(crate) fn prune_all(
    catalog: &mut BTreeMap<String, JobRegistrations>,
    live: &dyn Fn(&str) -> bool,
) -> Vec<(String, String)> {
    let mut gone = Vec::new();
    for (job, registrations) in catalog.iter_mut() {
        for node in prune(registrations, live) {
            gone.push((job.clone(), node));
        }
    }
    gone
}
