//! A time zone's timeline as stretches of constant UTC offset, found by asking chrono-tz for
//! the offset at a few instants (it has no public list of its transitions).
//!
//! Offsets are read [`PROBE`] apart and a change between two readings is narrowed down by
//! bisection to the second. That finds every transition as long as no two lie within
//! [`PROBE`] of each other: in the tz database shipped with chrono-tz 0.10 the closest pair,
//! in any zone and any year, is 6.9 days apart (America/Cambridge_Bay, October 2000), and the
//! transition tests in `tests/schedule_props.rs` find transitions independently (hour by hour)
//! and check the ticks around them against a minute-by-minute walk of real time.

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::Tz;

/// How far apart the offset is read: under the closest two transitions of the tz database.
pub(crate) const PROBE: i64 = 6 * 86_400;

/// The UTC offset, in seconds east, at an instant in Unix seconds.
pub(crate) fn offset_at(tz: Tz, at: i64) -> Option<i32> {
    let utc = DateTime::from_timestamp(at, 0)?.naive_utc();
    Some(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc())
}

/// A stretch of the timeline with one offset, and what follows (forward) or precedes
/// (backward) it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stretch {
    /// The offset throughout the stretch, in seconds east of UTC.
    pub(crate) offset: i32,
    /// Where the stretch ends (forward: exclusive) or begins (backward: inclusive), in Unix
    /// seconds.
    pub(crate) edge: i64,
    /// The offset just past the edge: equal to `offset` when the edge is only where the
    /// reading stopped, different when the zone changes offset there.
    pub(crate) beyond: i32,
}

/// The stretch that begins at `from`: the offset holds on `from..edge`, and `beyond` holds
/// from `edge` on.
pub(crate) fn forward(tz: Tz, from: i64) -> Option<Stretch> {
    let offset = offset_at(tz, from)?;
    let probe = from.checked_add(PROBE)?;
    let beyond = offset_at(tz, probe)?;
    if beyond == offset {
        return Some(Stretch {
            offset,
            edge: probe,
            beyond,
        });
    }
    // One change in (from, probe]: the first instant with the new offset.
    let (mut same, mut changed) = (from, probe);
    while changed - same > 1 {
        let mid = same + (changed - same) / 2;
        if offset_at(tz, mid)? == offset {
            same = mid;
        } else {
            changed = mid;
        }
    }
    Some(Stretch {
        offset,
        edge: changed,
        beyond: offset_at(tz, changed)?,
    })
}

/// The stretch that ends at `upto` (inclusive): the offset holds on `edge..=upto`, and
/// `beyond` holds just before `edge`.
pub(crate) fn backward(tz: Tz, upto: i64) -> Option<Stretch> {
    let offset = offset_at(tz, upto)?;
    let probe = upto.checked_sub(PROBE)?;
    let beyond = offset_at(tz, probe)?;
    if beyond == offset {
        return Some(Stretch {
            offset,
            edge: probe + 1,
            beyond,
        });
    }
    // One change in (probe, upto]: the first instant with the later offset.
    let (mut before, mut same) = (probe, upto);
    while same - before > 1 {
        let mid = before + (same - before) / 2;
        if offset_at(tz, mid)? == offset {
            same = mid;
        } else {
            before = mid;
        }
    }
    Some(Stretch {
        offset,
        edge: same,
        beyond: offset_at(tz, before)?,
    })
}
