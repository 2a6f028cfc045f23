//! The Lua scripts and their typed invocations. Each script's KEYS and ARGV order and its
//! invocations are written here once, beside the `.lua` files (their reply codes in
//! `replies.rs`); the coordinator and the permission probe build every call through these
//! functions.
//!
//! The run id (`node:fence:tick`) is made by the claim script from its ARGV and by
//! [`Lease::run_id`] in Rust; the conformance suite checks that the two agree (an overlap
//! names the holder's run id as the claim script stored it).

use std::time::Duration;

use redis::{Cmd, Script};

use super::keys::{JobKeys, clocks_key, manual_index_key, version_key};
use crate::coordinator::{
    ClaimRequest, FUTURE_TICK_TOLERANCE, HISTORY_LEN, Lease, MissedTicks, RunRecord,
};
use crate::job::Overlap;

/// Claims one tick: see the header of `claim.lua`.
pub(super) const CLAIM: &str = include_str!("claim.lua");
/// Extends a lease that is still the run's.
pub(super) const KEEP_ALIVE: &str = include_str!("keep_alive.lua");
/// Ends a run: deletes its lease if still held, records the outcome.
pub(super) const RELEASE: &str = include_str!("release.lua");
/// Marks a member alive, forgets silent ones, answers the time and the members.
pub(super) const HEARTBEAT: &str = include_str!("heartbeat.lua");
/// Pauses a job fleet-wide.
pub(super) const PAUSE: &str = include_str!("pause.lua");
/// Resumes a paused job, recording the pause's count.
pub(super) const RESUME: &str = include_str!("resume.lua");
/// Takes a manual run for one member.
pub(super) const MANUAL: &str = include_str!("manual.lua");
/// Records a manual run request at Redis's time.
pub(super) const REQUEST_MANUAL: &str = include_str!("request_manual.lua");
/// The loaded scripts, by hash.
#[derive(Debug)]
pub(super) struct Scripts {
    claim: Script,
    keep_alive: Script,
    release: Script,
    heartbeat: Script,
    pause: Script,
    resume: Script,
    manual: Script,
    request_manual: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            claim: Script::new(CLAIM),
            keep_alive: Script::new(KEEP_ALIVE),
            release: Script::new(RELEASE),
            heartbeat: Script::new(HEARTBEAT),
            pause: Script::new(PAUSE),
            resume: Script::new(RESUME),
            manual: Script::new(MANUAL),
            request_manual: Script::new(REQUEST_MANUAL),
        }
    }

    /// Every script's source, for `SCRIPT LOAD`.
    pub(super) fn sources() -> [&'static str; 8] {
        [
            CLAIM,
            KEEP_ALIVE,
            RELEASE,
            HEARTBEAT,
            PAUSE,
            RESUME,
            MANUAL,
            REQUEST_MANUAL,
        ]
    }

    /// Takes the manual request `id` of the job of `keys` for `node`.
    pub(super) fn manual(
        &self,
        keys: &JobKeys,
        requested_ms: i64,
        id: &str,
        node: &str,
        lease_ttl: Duration,
        allow_overlap: bool,
    ) -> Cmd {
        let run_lease = keys.manual_lease(requested_ms);
        let manual = keys.manual();
        let mut cmd = evalsha(
            &self.manual,
            &[&keys.state, &keys.lease, &keys.runs, &run_lease, &manual],
        );
        cmd.arg(id)
            .arg(node)
            .arg(millis(lease_ttl).max(1))
            .arg(flag(allow_overlap))
            .arg(HISTORY_LEN);
        cmd
    }

    /// Records the manual request `id` of the job of `keys`.
    pub(super) fn request_manual(&self, keys: &JobKeys, id: &str, by: &str, force: bool) -> Cmd {
        let mut cmd = evalsha(&self.request_manual, &[&keys.manual()]);
        cmd.arg(id)
            .arg(by.replace(['\t', '\n'], " "))
            .arg(flag(force));
        cmd
    }

    /// Pauses the job of `keys`: `by` whom, with `note`.
    pub(super) fn pause(&self, keys: &JobKeys, by: &str, note: Option<&str>) -> Cmd {
        let mut cmd = evalsha(&self.pause, &[&keys.state]);
        cmd.arg(by).arg(note.unwrap_or(""));
        cmd
    }

    /// Resumes the job of `keys`, `by` whom.
    pub(super) fn resume(&self, keys: &JobKeys, by: &str) -> Cmd {
        let mut cmd = evalsha(&self.resume, &[&keys.state, &keys.runs]);
        cmd.arg(by).arg(HISTORY_LEN);
        cmd
    }

    /// Claims `request` on `keys`; `notice` is the channel and job name to announce the
    /// decision on, for claims that others may be waiting out the handoff for.
    pub(super) fn claim(
        &self,
        keys: &JobKeys,
        request: &ClaimRequest,
        notice: Option<(&str, &str)>,
    ) -> Cmd {
        let run_lease = keys.run_lease(request.tick_ms);
        let mut cmd = evalsha(
            &self.claim,
            &[&keys.state, &keys.lease, &keys.runs, &run_lease],
        );
        cmd.arg(request.tick_ms)
            .arg(&*request.node)
            .arg(millis(request.lease_ttl).max(1))
            .arg(flag(request.overlap == Overlap::Allow))
            .arg(HISTORY_LEN)
            .arg(request.preferred.as_deref().unwrap_or(""))
            .arg(millis(request.handoff))
            .arg(millis(FUTURE_TICK_TOLERANCE))
            .arg(request.claim_id.to_string())
            .arg(
                request
                    .schedule
                    .as_deref()
                    .and_then(|schedule| MissedTicks::previous_tick(schedule, request.tick_ms))
                    .map(|tick| tick.to_string())
                    .unwrap_or_default(),
            );
        if let Some((channel, job)) = notice {
            cmd.arg(channel).arg(job);
        }
        cmd
    }

    /// Extends the lease at `lease_key` by `ttl` if it still holds `run_id`.
    pub(super) fn keep_alive(&self, lease_key: &str, run_id: &str, ttl: Duration) -> Cmd {
        let mut cmd = evalsha(&self.keep_alive, &[lease_key]);
        cmd.arg(run_id).arg(millis(ttl).max(1));
        cmd
    }

    /// Releases `lease` (at `lease_key`) with `record`.
    pub(super) fn release(
        &self,
        keys: &JobKeys,
        lease_key: &str,
        lease: &Lease,
        record: &RunRecord,
    ) -> Cmd {
        let error = record.outcome.error();
        let mut cmd = evalsha(&self.release, &[&keys.state, lease_key, &keys.runs]);
        cmd.arg(lease.run_id())
            .arg(lease.tick_ms)
            .arg(&*lease.node)
            .arg(lease.fence.get())
            .arg(record.outcome.as_str())
            .arg(error.unwrap_or_default())
            .arg(millis(record.duration))
            .arg(HISTORY_LEN)
            .arg(flag(error.is_some()))
            .arg(record.delay_ms(lease.tick_ms));
        cmd
    }

    /// Marks `node` alive in `nodes_key`, forgetting members silent for `stale_after` and
    /// recording its clock offset (µs) if it has one; the members come back only if the
    /// membership's version is not `known`.
    pub(super) fn heartbeat(
        &self,
        nodes_key: &str,
        node: &str,
        stale_after: Duration,
        known: Option<&str>,
        clock_offset_us: Option<i64>,
    ) -> Cmd {
        let mut cmd = evalsha(
            &self.heartbeat,
            &[
                nodes_key,
                &version_key(nodes_key),
                &manual_index_key(nodes_key),
                &clocks_key(nodes_key),
            ],
        );
        cmd.arg(node)
            .arg(millis(stale_after).max(1))
            .arg(known.unwrap_or(""))
            .arg(clock_offset_us.map_or_else(String::new, |us| us.to_string()));
        cmd
    }
}

fn evalsha(script: &Script, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
