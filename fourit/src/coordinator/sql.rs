//! The SQL backends' rows, shared: a run's lease slot (the job's own, `""`, or for a run with
//! a lease of its own its tick's, as Redis's `ns:{job}:lease:<tick>`), durations in ms, and
//! stored numbers as unsigned.

use std::time::Duration;

use crate::job::Overlap;

pub(crate) fn slot(overlap: Overlap, tick_ms: i64) -> String {
    match overlap {
        Overlap::Skip => String::new(),
        Overlap::Allow => format!("t:{tick_ms}"),
    }
}

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn unsigned(value: Option<i64>) -> Option<u64> {
    value.map(|v| v.max(0).unsigned_abs())
}
