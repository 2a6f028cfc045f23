//! Cron schedules and all tick arithmetic.
//!
//! `readings.rs` finds the wall-clock readings a pattern matches, `timeline.rs` the stretches
//! of constant offset of a time zone, and `ticks.rs` puts the two together by the rule for
//! clock changes; this file is the public surface.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::error::Error;
use crate::spec;

mod readings;
mod ticks;
mod timeline;

use self::readings::Readings;

/// A parsed cron schedule in a time zone: the instants ("ticks") at which a job runs.
///
/// Every process of a fleet computes the same ticks from the same schedule, whatever its own
/// time zone: the default zone is UTC, and ticks are instants, identified by their UTC
/// milliseconds.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use fourit::Schedule;
///
/// let schedule = Schedule::parse("0 9 * * MON-FRI")?.with_timezone("Europe/Berlin")?;
/// let friday = Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap();
/// // The next weekday 09:00 in Berlin after Friday noon is Monday, 08:00 UTC in winter.
/// assert_eq!(
///     schedule.next_after(friday),
///     Some(Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap())
/// );
/// # Ok::<(), fourit::Error>(())
/// ```
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    /// Shared between schedules with the same text: a parsed expression holds a few KiB of
    /// bit fields (its year field alone spans 1-5000), which adds up over thousands of jobs.
    readings: Arc<Readings>,
    tz: Tz,
}

/// Parsed expressions by their text, shared while any schedule uses them.
fn parsed(expr: &str) -> Result<Arc<Readings>, Error> {
    static CACHE: OnceLock<Mutex<HashMap<String, Weak<Readings>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    // Parsing is deterministic, so a poisoned cache still holds valid entries.
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(cron) = cache.get(expr).and_then(Weak::upgrade) {
        return Ok(cron);
    }
    let cron = Arc::new(Readings::new(
        spec::parse_cron(expr).map_err(|message| Error::InvalidSchedule { message })?,
    ));
    if cache.len() >= 1024 {
        cache.retain(|_, cron| cron.strong_count() > 0);
    }
    cache.insert(expr.to_string(), Arc::downgrade(&cron));
    Ok(cron)
}

impl Schedule {
    /// Parses a cron expression, in UTC.
    ///
    /// Accepts 5 fields (minute hour day-of-month month day-of-week), or 6 with a leading
    /// second field; names (`JAN`, `MON-FRI`); lists, ranges, `*/step` and `a-b/step`; `L`,
    /// `LW` and `15W` in day-of-month; `5L` and `1#2` in day-of-week; and `@yearly`,
    /// `@annually`, `@monthly`, `@weekly`, `@daily`, `@hourly`. Day of week 0 and 7 are
    /// Sunday. When both day-of-month and day-of-week are restricted, a day matches if either
    /// matches. The error message is the one `#[fourit::job]` gives at compile time.
    pub fn parse(expr: &str) -> Result<Schedule, Error> {
        let readings = parsed(expr)?;
        Ok(Schedule {
            expr: expr.trim().to_string(),
            readings,
            tz: Tz::UTC,
        })
    }

    /// The same schedule read in another time zone (an IANA name such as `Europe/Berlin`).
    ///
    /// Clock changes (daylight saving, and any other change of the zone's offset) follow one
    /// rule, Vixie cron's: a schedule whose minute or hour field begins with `*` runs by
    /// elapsed time (every real minute or hour, both copies of a repeated hour, nothing for
    /// the skipped readings); any other schedule is an appointment on the wall clock, run once
    /// per matching reading (at its first instant when repeated, at the first instant after
    /// the change when skipped, one run for all the readings one change skips).
    pub fn with_timezone(self, tz: &str) -> Result<Schedule, Error> {
        let tz = spec::parse_tz(tz).map_err(|message| Error::InvalidTimeZone { message })?;
        Ok(Schedule { tz, ..self })
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// The time zone the expression is read in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// Whether the schedule runs by elapsed time across clock changes (its minute or hour
    /// field begins with `*`) rather than as appointments on the wall clock.
    pub fn is_interval(&self) -> bool {
        self.readings.is_interval()
    }

    /// The first tick strictly after `after`, or `None` if there is none before the year 5000
    /// (a schedule that fires at all always has one: no clock change stops it).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let tick = ticks::next(&self.readings, self.tz, after.timestamp())?;
        DateTime::from_timestamp(tick, 0)
    }

    /// The last tick at or before `at`, if any: the mirror image of
    /// [`next_after`](Schedule::next_after).
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let tick = ticks::previous(&self.readings, self.tz, at.timestamp())?;
        DateTime::from_timestamp(tick, 0)
    }

    /// Where the schedule stands at `now` for a process that planned to wake at `planned` (a
    /// tick at or before `now`): the latest tick due, how many it passed over, and the next.
    /// `None` if `planned` is still ahead of `now`.
    ///
    /// A process that wakes on time passes over nothing; one that slept through ticks (a
    /// suspended host, a busy runtime) gets only the latest, and the count of the others is a
    /// lower bound past [`MISSED_COUNT_LIMIT`].
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// let minutely = fourit::Schedule::parse("* * * * *")?;
    /// let at = |m, s| Utc.with_ymd_and_hms(2026, 1, 1, 0, m, s).unwrap();
    /// let due = minutely.due(at(1, 0), at(4, 30)).unwrap();
    /// assert_eq!(due.latest, at(4, 0));
    /// assert_eq!(due.missed, 3); // 00:01, 00:02 and 00:03
    /// assert_eq!(due.next, Some(at(5, 0)));
    /// assert!(minutely.due(at(5, 0), at(4, 30)).is_none());
    /// # Ok::<(), fourit::Error>(())
    /// ```
    pub fn due(&self, planned: DateTime<Utc>, now: DateTime<Utc>) -> Option<Due> {
        if planned > now {
            return None;
        }
        let following = self.next_after(planned);
        if following.is_none_or(|next| next > now) {
            // On time: one look-up.
            return Some(Due {
                latest: planned,
                missed: 0,
                next: following,
            });
        }
        let latest = self
            .latest_at_or_before(now)
            .filter(|latest| *latest > planned)
            .unwrap_or(planned);
        let mut missed = 1u32;
        let mut cursor = following;
        while let Some(tick) = cursor {
            if tick >= latest || missed >= MISSED_COUNT_LIMIT {
                break;
            }
            missed += 1;
            cursor = self.next_after(tick);
        }
        // `missed` counted `planned` and every tick after it before `latest`.
        let missed = if latest == planned { 0 } else { missed };
        Some(Due {
            latest,
            missed,
            next: self.next_after(latest.max(now)),
        })
    }

    /// The ticks strictly after `after`, in order.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// let every_quarter = fourit::Schedule::parse("*/15 * * * *")?;
    /// let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    /// let minutes: Vec<_> = every_quarter
    ///     .upcoming(start)
    ///     .take(3)
    ///     .map(|tick| tick.format("%H:%M").to_string())
    ///     .collect();
    /// assert_eq!(minutes, ["00:15", "00:30", "00:45"]);
    /// # Ok::<(), fourit::Error>(())
    /// ```
    pub fn upcoming(&self, after: DateTime<Utc>) -> Ticks<'_> {
        Ticks {
            schedule: self,
            cursor: Some(after),
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("expr", &self.expr)
            .field("tz", &self.tz.name())
            .finish()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tz == Tz::UTC {
            f.write_str(&self.expr)
        } else {
            write!(f, "{} ({})", self.expr, self.tz.name())
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = Error;

    fn from_str(expr: &str) -> Result<Self, Error> {
        Schedule::parse(expr)
    }
}

/// How far [`Schedule::due`] counts passed-over ticks one by one; a count at the limit means
/// at least that many.
pub const MISSED_COUNT_LIMIT: u32 = 1_000;

/// The answer of [`Schedule::due`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    /// The latest tick at or before the moment asked about: the one to claim.
    pub latest: DateTime<Utc>,
    /// How many ticks between the planned one and `latest` were passed over (the planned one
    /// included when it is not `latest`); at most [`MISSED_COUNT_LIMIT`].
    pub missed: u32,
    /// The first tick after the moment asked about: the next one to wait for.
    pub next: Option<DateTime<Utc>>,
}

/// Iterator over a schedule's ticks, made by [`Schedule::upcoming`].
#[derive(Debug, Clone)]
pub struct Ticks<'a> {
    schedule: &'a Schedule,
    cursor: Option<DateTime<Utc>>,
}

impl Iterator for Ticks<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        let next = self.schedule.next_after(self.cursor?);
        self.cursor = next;
        next
    }
}

#[cfg(test)]
mod tests;
