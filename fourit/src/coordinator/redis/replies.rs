//! What the scripts answer: the claim script's reply codes, and each answer decoded into
//! fourit's types (an answer of an unexpected shape is a protocol error).

use redis::Value;

use super::BACKEND;
use crate::coordinator::{ClaimOutcome, ClaimRequest, Lease};
use crate::error::{CoordinatorError, Error, ErrorKind};
use crate::job::FenceToken;

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
                manual: false,
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
