//! The rule for ticks nobody ran: the scheduled ticks strictly between a job's high-water mark
//! and the tick a claim decides, counted up to [`crate::MISSED_COUNT_LIMIT`].

use chrono::DateTime;

use super::super::{ClaimRequest, MissedNotice};
use super::texts;

/// The ticks of a job that nobody ran, between the high-water mark and a claimed tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MissedTicks {
    /// How many (a lower bound past [`crate::MISSED_COUNT_LIMIT`]).
    pub(crate) count: u32,
    /// The first missed tick (UTC ms).
    pub(crate) first_ms: i64,
    /// The last missed tick (UTC ms).
    pub(crate) last_ms: i64,
}

impl MissedTicks {
    /// The scheduled ticks strictly between `mark_ms` (the last tick decided) and `tick_ms`
    /// (the one claimed now), if any.
    pub(crate) fn between(
        schedule: &crate::Schedule,
        mark_ms: i64,
        tick_ms: i64,
    ) -> Option<MissedTicks> {
        let after = DateTime::from_timestamp_millis(mark_ms)?;
        let mut ticks = schedule
            .upcoming(after)
            .map(|tick| tick.timestamp_millis())
            .take_while(|tick| *tick < tick_ms);
        let first_ms = ticks.next()?;
        let mut missed = MissedTicks {
            count: 1,
            first_ms,
            last_ms: first_ms,
        };
        for tick in ticks {
            if missed.count < crate::MISSED_COUNT_LIMIT {
                missed.count += 1;
            }
            missed.last_ms = tick;
            if missed.count >= crate::MISSED_COUNT_LIMIT {
                // Past the limit only the last one still matters: jump to it.
                if let Some(previous) = MissedTicks::previous_tick(schedule, tick_ms) {
                    missed.last_ms = previous;
                }
                break;
            }
        }
        Some(missed)
    }

    /// The schedule's tick before `tick_ms`: a translation that cannot evaluate the schedule
    /// compares the mark with it to tell whether any tick was missed.
    pub(crate) fn previous_tick(schedule: &crate::Schedule, tick_ms: i64) -> Option<i64> {
        let before = DateTime::from_timestamp_millis(tick_ms - 1)?;
        schedule
            .latest_at_or_before(before)
            .map(|tick| tick.timestamp_millis())
    }

    /// The history entry's text: `4 ticks missed, 2026-...Z to 2026-...Z`.
    pub(crate) fn detail(&self) -> String {
        self.entry("").detail.unwrap_or_default()
    }

    /// The history entry recording them, by `node`'s claim.
    pub(crate) fn entry(&self, node: &str) -> crate::coordinator::HistoryEntry {
        texts::missed(self.count, self.first_ms, self.last_ms, node)
    }
}

impl MissedNotice {
    /// The notice of `ticks`, recorded by `request`'s claim.
    pub(crate) fn new(request: &ClaimRequest, ticks: &MissedTicks) -> MissedNotice {
        MissedNotice {
            job: request.job.clone(),
            node: request.node.clone(),
            count: ticks.count,
            first_ms: ticks.first_ms,
            last_ms: ticks.last_ms,
        }
    }
}
