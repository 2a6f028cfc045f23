//! The SQL backends' rows, shared: a run's lease slot (the job's own, `""`; for a run with a
//! lease of its own its tick's, `t:<tick>`, or a manual run's, `m:<tick>`, as Redis's
//! `ns:{job}:lease:<tick>` and `ns:{job}:lease:m:<tick>`), durations in ms, and stored numbers
//! as unsigned.

use std::time::Duration;

use super::rules::Slot;

/// The stored name of a lease slot (`None`: the job's lease).
pub(crate) fn slot(slot: Option<Slot>) -> String {
    match slot {
        None => String::new(),
        Some(Slot::Tick(tick_ms)) => format!("t:{tick_ms}"),
        Some(Slot::Manual(tick_ms)) => format!("m:{tick_ms}"),
    }
}

/// The lease slot a stored name names (`Some(None)`: the job's lease); `None` for a name
/// this version does not know.
pub(crate) fn parse_slot(name: &str) -> Option<Option<Slot>> {
    if name.is_empty() {
        return Some(None);
    }
    let (kind, tick) = name.split_once(':')?;
    let tick = tick.parse().ok()?;
    match kind {
        "t" => Some(Some(Slot::Tick(tick))),
        "m" => Some(Some(Slot::Manual(tick))),
        _ => None,
    }
}

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn unsigned(value: Option<i64>) -> Option<u64> {
    value.map(|v| v.max(0).unsigned_abs())
}
