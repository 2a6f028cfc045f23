//! What history records, word for word: every entry a rule writes is made here (the Lua and
//! PL/pgSQL translations write the same texts).

use chrono::DateTime;

use super::super::{HistoryEntry, Lease, PauseState, RunRecord};

/// An entry of a tick decided without a run (`overlap`, `paused`, `missed`, `resumed`).
pub(crate) fn decided(tick_ms: i64, node: &str, outcome: &str, detail: String) -> HistoryEntry {
    HistoryEntry {
        tick_ms,
        node: node.to_string(),
        outcome: outcome.to_string(),
        detail: Some(detail),
        fence: None,
        duration_ms: None,
        delay_ms: None,
    }
}

/// A tick skipped because `holder` still holds the job's lease: the detail is the holder.
pub(crate) fn overlap(tick_ms: i64, node: &str, holder: &str) -> HistoryEntry {
    decided(tick_ms, node, "overlap", holder.to_string())
}

/// The first tick of a pause: `paused by <who>[: <note>]`.
pub(crate) fn paused(tick_ms: i64, node: &str, pause: &PauseState) -> HistoryEntry {
    let detail = match &pause.note {
        Some(note) => format!("paused by {}: {note}", pause.by),
        None => format!("paused by {}", pause.by),
    };
    decided(tick_ms, node, "paused", detail)
}

/// The end of a pause that paused ticks: how many, the first and last (ms), who paused and
/// who resumed. `None` when it paused none.
pub(crate) fn resumed(pause: &PauseState, by: &str) -> Option<HistoryEntry> {
    let (first, last) = (pause.first_tick_ms?, pause.last_tick_ms?);
    Some(decided(
        last,
        by,
        "resumed",
        format!(
            "{} ticks paused, {first} to {last} (ms); paused by {}, resumed by {by}",
            pause.ticks, pause.by
        ),
    ))
}

/// `count` ticks nobody ran, from `first_ms` to `last_ms`, at the last of them: `4 ticks
/// missed, <first> to <last>` (RFC 3339, ms; `at least` past the count's limit).
pub(crate) fn missed(count: u32, first_ms: i64, last_ms: i64, node: &str) -> HistoryEntry {
    let at = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .map(|at| at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default()
    };
    let bound = if count >= crate::MISSED_COUNT_LIMIT {
        "at least "
    } else {
        ""
    };
    let noun = if count == 1 { "tick" } else { "ticks" };
    decided(
        last_ms,
        node,
        "missed",
        format!(
            "{bound}{count} {noun} missed, {} to {}",
            at(first_ms),
            at(last_ms)
        ),
    )
}

/// A manual run taken by `node`: `asked by <who>`, with its fence.
pub(crate) fn manual(tick_ms: i64, node: &str, by: &str, fence: u64) -> HistoryEntry {
    HistoryEntry {
        fence: Some(fence),
        ..decided(tick_ms, node, "manual", format!("asked by {by}"))
    }
}

/// A manual run skipped because `holder` holds the job's lease.
pub(crate) fn manual_skipped(tick_ms: i64, node: &str, by: &str, holder: &str) -> HistoryEntry {
    decided(
        tick_ms,
        node,
        "overlap",
        format!("manual run asked by {by} skipped: {holder}"),
    )
}

/// A finished run: its outcome, error text, fence, duration and start delay.
pub(crate) fn finished(lease: &Lease, record: &RunRecord) -> HistoryEntry {
    HistoryEntry {
        tick_ms: lease.tick_ms,
        node: lease.node.to_string(),
        outcome: record.outcome.as_str().to_string(),
        detail: record.outcome.error().map(str::to_string),
        fence: Some(lease.fence.get()),
        duration_ms: Some(u64::try_from(record.duration.as_millis()).unwrap_or(u64::MAX)),
        delay_ms: Some(record.delay_ms(lease.tick_ms)),
    }
}
