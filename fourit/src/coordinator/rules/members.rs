//! The fleet's members: a heartbeat marks a member alive at the coordinator's time and
//! forgets those silent for longer than the caller's timeout; leaving forgets one at once; a
//! registration records the jobs a member runs. Translated by `redis/heartbeat.lua` and
//! `fourit_heartbeat` in `postgres/schema.sql`.

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

/// Records that `node` runs `job` as defined (replacing its earlier registration) among the
/// job's `registrations` (by node), and answers them all, by node.
pub(crate) fn register(
    registrations: &mut BTreeMap<String, JobDefinition>,
    node: &str,
    job: &JobDefinition,
) -> Registrations {
    registrations.insert(node.to_string(), job.clone());
    registrations
        .iter()
        .map(|(node, def)| (node.clone(), def.clone()))
        .collect()
}
