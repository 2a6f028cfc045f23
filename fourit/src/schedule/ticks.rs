//! Ticks: the wall-clock readings of a pattern turned into instants in a time zone, by the one
//! rule for transitions (the README's "Daylight saving and other clock changes").
//!
//! - An *interval* schedule (its minute or hour field begins with `*`) runs by elapsed time:
//!   every instant whose local reading matches. Both copies of a repeated hour run; a reading
//!   that a forward change skips does not happen, so nothing runs for it.
//! - An *appointment* (every other schedule) runs each matching reading once: at its earliest
//!   instant when the reading happens twice, and at the first instant after the change when
//!   the reading is skipped; the readings one change skips make one run between them.
//!
//! The search walks the zone's timeline stretch by stretch ([`timeline`]). Within a stretch
//! the offset is constant, so the next tick is the next matching reading ([`Readings`]); at
//! a change the appointment rule adds the run for skipped readings. Backward is the mirror
//! image, so [`previous`] finds exactly the ticks [`next`] finds.

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone};
use chrono_tz::Tz;

use super::readings::Readings;
use super::timeline::{self, Stretch};

/// The local reading of an instant (Unix seconds) at an offset.
fn reading(at: i64, offset: i32) -> Option<NaiveDateTime> {
    Some(DateTime::from_timestamp(at.checked_add(i64::from(offset))?, 0)?.naive_utc())
}

/// The instant (Unix seconds) of a reading at an offset.
fn instant(reading: NaiveDateTime, offset: i32) -> i64 {
    reading.and_utc().timestamp() - i64::from(offset)
}

/// Whether `at` is the earliest instant with this reading (false for the second copy of a
/// repeated hour).
fn is_first_copy(tz: Tz, reading: NaiveDateTime, at: i64) -> bool {
    tz.from_local_datetime(&reading)
        .earliest()
        .is_some_and(|first| first.timestamp() == at)
}

const SECOND: TimeDelta = TimeDelta::seconds(1);

/// The first tick strictly after `after` (Unix seconds).
pub(crate) fn next(readings: &Readings, tz: Tz, after: i64) -> Option<i64> {
    let appointments = !readings.is_interval();
    let mut from = after.checked_add(1)?;
    // The first matching reading at or after `known.0`, kept while stretches share an offset.
    let mut known: Option<(NaiveDateTime, NaiveDateTime)> = None;
    loop {
        let Stretch {
            offset,
            edge,
            beyond,
        } = timeline::forward(tz, from)?;
        let low = reading(from, offset)?;
        let high = reading(edge, offset)?;
        let mut found = match known {
            Some((since, found)) if since <= low && low <= found => found,
            _ => readings.first_at_or_after(low)?,
        };
        while found < high {
            let at = instant(found, offset);
            if !appointments || is_first_copy(tz, found, at) {
                return Some(at);
            }
            found = readings.first_at_or_after(found.checked_add_signed(SECOND)?)?;
        }
        // `found` is now the first matching reading at or after `high`.
        if appointments && beyond > offset && found < reading(edge, beyond)? {
            // The clock jumps from `high` to `reading(edge, beyond)`: the skipped readings
            // that match run once, at the first instant after the jump.
            return Some(edge);
        }
        known = Some((high, found));
        from = edge;
    }
}

/// The last tick at or before `upto` (Unix seconds): the mirror image of [`next`].
pub(crate) fn previous(readings: &Readings, tz: Tz, upto: i64) -> Option<i64> {
    let appointments = !readings.is_interval();
    let mut upto = upto;
    // The last matching reading at or before `known.0`, kept while stretches share an offset.
    let mut known: Option<(NaiveDateTime, NaiveDateTime)> = None;
    loop {
        let Stretch {
            offset,
            edge,
            beyond,
        } = timeline::backward(tz, upto)?;
        let high = reading(upto, offset)?;
        let low = reading(edge, offset)?;
        let mut found = match known {
            Some((since, found)) if found <= high && high <= since => found,
            _ => readings.last_at_or_before(high)?,
        };
        while found >= low {
            let at = instant(found, offset);
            if !appointments || is_first_copy(tz, found, at) {
                return Some(at);
            }
            found = readings.last_at_or_before(found.checked_sub_signed(SECOND)?)?;
        }
        // `found` is now the last matching reading before `low`.
        if appointments && offset > beyond {
            // `edge` is a forward jump from `reading(edge, beyond)` to `low`: it is a tick if
            // a skipped reading matches.
            let skipped = found >= reading(edge, beyond)?;
            if skipped {
                return Some(edge);
            }
        }
        known = Some((low.checked_sub_signed(SECOND)?, found));
        upto = edge.checked_sub(1)?;
    }
}
