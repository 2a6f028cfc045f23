//! Cron schedules and all tick arithmetic.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::error::Error;
use crate::spec;

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
    cron: Cron,
    tz: Tz,
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
        let cron = spec::parse_cron(expr).map_err(|message| Error::InvalidSchedule { message })?;
        Ok(Schedule {
            expr: expr.trim().to_string(),
            cron,
            tz: Tz::UTC,
        })
    }

    /// The same schedule read in another time zone (an IANA name such as `Europe/Berlin`).
    ///
    /// Daylight-saving changes follow Vixie cron: a time in the spring-forward gap runs once,
    /// at the first valid instant after it; a time in the repeated fall-back hour runs once.
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

    /// The first tick strictly after `after`, or `None` if there is none before the year 5000.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|tick| tick.with_timezone(&Utc))
    }

    /// The last tick at or before `at`, if any.
    pub fn latest_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.tz);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|tick| tick.with_timezone(&Utc))
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
