//! The Lua scripts and their typed invocations. Each script's KEYS and ARGV order and its
//! reply codes are written here once, beside the `.lua` files; the coordinator and the
//! permission probe build every call through these functions.
//!
//! The run id (`node:fence:tick`) is made by the claim script from its ARGV and by
//! [`Lease::run_id`] in Rust; the conformance suite checks that the two agree (an overlap
//! names the holder's run id as the claim script stored it).

use std::time::Duration;

use redis::{Cmd, Script, Value};

use super::BACKEND;
use crate::coordinator::{
    ClaimOutcome, ClaimRequest, FUTURE_TICK_TOLERANCE, HISTORY_LEN, Lease, MissedTicks, RunRecord,
};
use crate::error::{CoordinatorError, Error, ErrorKind};
use crate::job::{FenceToken, Overlap};

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

/// The claim script's reply codes, the first element of its answer.
mod reply {
    /// `{0}`: the tick (or a later one) is already claimed.
    pub(super) const TAKEN: i64 = 0;
    /// `{1, fence}`: run it.
    pub(super) const RUN: i64 = 1;
    /// `{2, holder}`: skipped as an overlap; the holder's run id.
    pub(super) const OVERLAP: i64 = 2;
    /// `{3, at, now}`: the handoff window is open until `at` (ms); Redis's time `now`.
    pub(super) const HANDOFF: i64 = 3;
    /// `{4, now}`: the tick is in Redis's future; Redis's time `now` (ms).
    pub(super) const EARLY: i64 = 4;
    /// `{5, fence}`: this node's own claim of this tick, sent again: run it, same fence.
    pub(super) const RESUMED: i64 = 5;
    /// `{6}`: the job is paused; the tick is decided as paused.
    pub(super) const PAUSED: i64 = 6;
}

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

    /// The key of `lease`: the job's one lease, or the run's own with `overlap = "allow"`.
    pub(super) fn lease_of(&self, lease: &Lease) -> String {
        match lease.overlap {
            Overlap::Skip => self.lease.clone(),
            Overlap::Allow => self.run_lease(lease.tick_ms),
        }
    }

    /// With `overlap = "allow"`, the lease of the run of `tick_ms`: one per tick, since each
    /// tick is claimed once, and known before the claim, so the claim script can declare it.
    pub(super) fn run_lease(&self, tick_ms: i64) -> String {
        format!("{}:{tick_ms}", self.lease)
    }
}

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
        let run_lease = keys.run_lease(requested_ms);
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

fn malformed(operation: &'static str) -> Error {
    Error::Coordinator(CoordinatorError::new(
        BACKEND,
        operation,
        ErrorKind::Protocol,
        format!("the {operation} script answered in an unexpected shape"),
    ))
}

/// The claim script's answer to `request`, and the old high-water mark when the decision
/// skipped scheduled ticks (see `claim.lua`).
pub(super) fn decode_claim(
    request: &ClaimRequest,
    reply: Value,
) -> Result<(ClaimOutcome, Option<i64>), Error> {
    let items: Vec<Value> = redis::from_redis_value(reply).map_err(|_| malformed("claim"))?;
    let mut items = items.into_iter();
    let outcome = decode_outcome(request, &mut items)?;
    // What is left, after a decision, is the old mark.
    let mark = items
        .next()
        .and_then(|value| redis::from_redis_value::<String>(value).ok())
        .and_then(|text| text.parse().ok());
    Ok((outcome, mark))
}

fn decode_outcome(
    request: &ClaimRequest,
    items: &mut std::vec::IntoIter<Value>,
) -> Result<ClaimOutcome, Error> {
    let mut next = || items.next().ok_or_else(|| malformed("claim"));
    let integer = |value: Value| -> Result<i64, Error> {
        redis::from_redis_value(value).map_err(|_| malformed("claim"))
    };
    // Times go as text: Lua numbers are doubles, which Redis would truncate to integers
    // anyway, but text keeps the script's formatting in one place.
    let millis_text = |value: Value| -> Result<i64, Error> {
        let text: String = redis::from_redis_value(value).map_err(|_| malformed("claim"))?;
        text.parse().map_err(|_| malformed("claim"))
    };
    match integer(next()?)? {
        reply::TAKEN => Ok(ClaimOutcome::Taken),
        code @ (reply::RUN | reply::RESUMED) => {
            let fence = u64::try_from(integer(next()?)?).map_err(|_| malformed("claim"))?;
            let lease = Lease {
                job: request.job.clone(),
                tick_ms: request.tick_ms,
                fence: FenceToken(fence),
                node: request.node.clone(),
                overlap: request.overlap,
            };
            Ok(if code == reply::RUN {
                ClaimOutcome::Run(lease)
            } else {
                ClaimOutcome::Resumed(lease)
            })
        }
        reply::OVERLAP => {
            let holder: String =
                redis::from_redis_value(next()?).map_err(|_| malformed("claim"))?;
            Ok(ClaimOutcome::Overlap { holder })
        }
        reply::HANDOFF => {
            let at_ms = millis_text(next()?)?;
            let now_ms = millis_text(next()?)?;
            Ok(ClaimOutcome::Retry { at_ms, now_ms })
        }
        reply::PAUSED => Ok(ClaimOutcome::Paused),
        reply::EARLY => Ok(ClaimOutcome::Early {
            now_ms: millis_text(next()?)?,
        }),
        _ => Err(malformed("claim")),
    }
}

/// The release script's answer: whether the lease was still the run's.
pub(super) fn decode_release(reply: Value) -> Result<bool, Error> {
    let released: i64 = redis::from_redis_value(reply).map_err(|_| malformed("release"))?;
    Ok(released == 1)
}

/// The keep-alive script's answer: whether the lease was extended.
pub(super) fn decode_keep_alive(reply: Value) -> Result<bool, Error> {
    let extended: i64 = redis::from_redis_value(reply).map_err(|_| malformed("keep-alive"))?;
    Ok(extended == 1)
}

/// The heartbeat script's answer.
#[derive(Debug)]
pub(super) struct HeartbeatReply {
    /// Redis's time (µs).
    pub(super) server_us: Option<i64>,
    /// The membership's version.
    pub(super) version: String,
    /// The live members, sorted; `None` when the caller's version was current.
    pub(super) members: Option<Vec<String>>,
    /// Manual runs are waiting.
    pub(super) manual_pending: bool,
    /// The members this heartbeat forgot as silent, sorted.
    pub(super) evicted: Vec<String>,
}

/// The heartbeat script's answer: Redis's time, the membership's version and, if the
/// caller's copy was out of date, the live members.
pub(super) fn decode_heartbeat(reply: Value) -> Result<HeartbeatReply, Error> {
    let reply: Vec<String> = redis::from_redis_value(reply).map_err(|_| malformed("heartbeat"))?;
    let mut reply = reply.into_iter();
    let server_us = reply.next().and_then(|us| us.parse().ok());
    let version = reply.next().ok_or_else(|| malformed("heartbeat"))?;
    let manual_pending = reply
        .next()
        .and_then(|count| count.parse::<u64>().ok())
        .ok_or_else(|| malformed("heartbeat"))?
        > 0;
    let evicted = reply
        .next()
        .and_then(|count| count.parse::<usize>().ok())
        .ok_or_else(|| malformed("heartbeat"))?;
    let mut evicted: Vec<String> = reply.by_ref().take(evicted).collect();
    evicted.sort();
    // The caller is always a member, so a list is never empty: no list means "unchanged".
    let mut members: Vec<String> = reply.collect();
    members.sort();
    Ok(HeartbeatReply {
        server_us,
        version,
        members: (!members.is_empty()).then_some(members),
        manual_pending,
        evicted,
    })
}

/// The resume script's answer: the pause it ended, if the job was paused.
pub(super) fn decode_resume(reply: Value) -> Result<Option<crate::coordinator::PauseState>, Error> {
    let items: Vec<Value> = redis::from_redis_value(reply).map_err(|_| malformed("resume"))?;
    let mut items = items.into_iter();
    let code: i64 = items
        .next()
        .and_then(|value| redis::from_redis_value(value).ok())
        .ok_or_else(|| malformed("resume"))?;
    if code == 0 {
        return Ok(None);
    }
    let texts: Vec<String> = items
        .map(|value| redis::from_redis_value(value).unwrap_or_default())
        .collect();
    let [by, note, since, ticks, first, last] = texts.as_slice() else {
        return Err(malformed("resume"));
    };
    Ok(Some(pause_state(by, note, since, ticks, first, last)))
}

/// A pause from its stored fields (texts, empty for none).
pub(super) fn pause_state(
    by: &str,
    note: &str,
    since: &str,
    ticks: &str,
    first: &str,
    last: &str,
) -> crate::coordinator::PauseState {
    crate::coordinator::PauseState {
        by: by.to_string(),
        note: (!note.is_empty()).then(|| note.to_string()),
        since_ms: since.parse().unwrap_or_default(),
        ticks: ticks.parse().unwrap_or_default(),
        first_tick_ms: first.parse().ok(),
        last_tick_ms: last.parse().ok(),
    }
}
