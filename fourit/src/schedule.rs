//! Cron schedules and all tick arithmetic.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, Weak};

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
    /// Shared between schedules with the same text: a parsed expression holds a few KiB of
    /// bit fields (its year field alone spans 1-5000), which adds up over thousands of jobs.
    cron: Arc<Cron>,
    tz: Tz,
}

/// Parsed expressions by their text, shared while any schedule uses them.
fn parsed(expr: &str) -> Result<Arc<Cron>, Error> {
    static CACHE: OnceLock<Mutex<HashMap<String, Weak<Cron>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    // Parsing is deterministic, so a poisoned cache still holds valid entries.
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(cron) = cache.get(expr).and_then(Weak::upgrade) {
        return Ok(cron);
    }
    let cron =
        Arc::new(spec::parse_cron(expr).map_err(|message| Error::InvalidSchedule { message })?);
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
        let cron = parsed(expr)?;
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
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    use super::Schedule;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|err| panic!("bad test instant {text}: {err}"))
    }

    /// The next `n` ticks after `after`, as RFC 3339 UTC strings.
    fn ticks(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        let schedule = Schedule::parse(expr)
            .and_then(|s| s.with_timezone(tz))
            .unwrap_or_else(|err| panic!("{expr}: {err}"));
        schedule
            .upcoming(at(after))
            .take(n)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .collect()
    }

    #[test]
    fn five_fields_fire_on_the_minute() {
        assert_eq!(
            ticks("*/15 * * * *", "UTC", "2026-11-28T10:07:00Z", 4),
            [
                "2026-11-28T10:15:00Z",
                "2026-11-28T10:30:00Z",
                "2026-11-28T10:45:00Z",
                "2026-11-28T11:00:00Z"
            ]
        );
    }

    #[test]
    fn six_fields_have_a_leading_second_field() {
        assert_eq!(
            ticks("*/20 * * * * *", "UTC", "2026-11-28T10:07:59Z", 3),
            [
                "2026-11-28T10:08:00Z",
                "2026-11-28T10:08:20Z",
                "2026-11-28T10:08:40Z"
            ]
        );
    }

    #[test]
    fn day_of_week_is_posix_with_sunday_as_zero_and_seven() {
        // 2026-11-28 is a Saturday.
        assert_eq!(
            ticks("0 0 * * 1-5", "UTC", "2026-11-28T00:00:00Z", 2),
            ["2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z"]
        );
        for sunday in ["0 0 * * 0", "0 0 * * 7", "0 0 * * SUN"] {
            assert_eq!(
                ticks(sunday, "UTC", "2026-11-28T00:00:00Z", 2),
                ["2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z"],
                "{sunday}"
            );
        }
        assert_eq!(
            ticks("0 9 * * MON-FRI", "UTC", "2026-11-27T12:00:00Z", 2),
            ["2026-11-30T09:00:00Z", "2026-12-01T09:00:00Z"]
        );
        assert_eq!(
            ticks("0 0 * * SAT-SUN", "UTC", "2026-11-26T00:00:00Z", 2),
            ["2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z"]
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_matches_as_in_vixie_cron() {
        // The 13th or any Friday; 2026-11-13 is a Friday, 2026-12-13 a Sunday.
        assert_eq!(
            ticks("0 0 13 * 5", "UTC", "2026-11-01T00:00:00Z", 8),
            [
                "2026-11-06T00:00:00Z",
                "2026-11-13T00:00:00Z",
                "2026-11-20T00:00:00Z",
                "2026-11-27T00:00:00Z",
                "2026-12-04T00:00:00Z",
                "2026-12-11T00:00:00Z",
                "2026-12-13T00:00:00Z",
                "2026-12-18T00:00:00Z"
            ]
        );
    }

    #[test]
    fn steps_ranges_lists_and_names() {
        assert_eq!(
            ticks("5-20/5 * * * *", "UTC", "2026-11-28T10:00:00Z", 5),
            [
                "2026-11-28T10:05:00Z",
                "2026-11-28T10:10:00Z",
                "2026-11-28T10:15:00Z",
                "2026-11-28T10:20:00Z",
                "2026-11-28T11:05:00Z"
            ]
        );
        assert_eq!(
            ticks("0 */6 * * *", "UTC", "2026-11-28T10:00:00Z", 3),
            [
                "2026-11-28T12:00:00Z",
                "2026-11-28T18:00:00Z",
                "2026-11-29T00:00:00Z"
            ]
        );
        assert_eq!(
            ticks("0 0 1 JAN,jul *", "UTC", "2026-11-28T10:00:00Z", 2),
            ["2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z"]
        );
    }

    #[test]
    fn nicknames() {
        let after = "2026-11-28T10:00:00Z";
        assert_eq!(ticks("@yearly", "UTC", after, 1), ["2027-01-01T00:00:00Z"]);
        assert_eq!(
            ticks("@annually", "UTC", after, 1),
            ["2027-01-01T00:00:00Z"]
        );
        assert_eq!(ticks("@monthly", "UTC", after, 1), ["2026-12-01T00:00:00Z"]);
        assert_eq!(ticks("@weekly", "UTC", after, 1), ["2026-11-29T00:00:00Z"]);
        assert_eq!(ticks("@daily", "UTC", after, 1), ["2026-11-29T00:00:00Z"]);
        assert_eq!(ticks("@hourly", "UTC", after, 1), ["2026-11-28T11:00:00Z"]);
    }

    #[test]
    fn last_day_of_month_follows_leap_years() {
        assert_eq!(
            ticks("0 0 L * *", "UTC", "2028-01-31T00:00:00Z", 3),
            [
                "2028-02-29T00:00:00Z",
                "2028-03-31T00:00:00Z",
                "2028-04-30T00:00:00Z"
            ]
        );
        assert_eq!(
            ticks("0 0 L 2 *", "UTC", "2026-03-01T00:00:00Z", 3),
            [
                "2027-02-28T00:00:00Z",
                "2028-02-29T00:00:00Z",
                "2029-02-28T00:00:00Z"
            ]
        );
        assert_eq!(
            ticks("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", 2),
            ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]
        );
    }

    #[test]
    fn nth_and_last_weekday_of_the_month() {
        // 2026-12-01 is a Tuesday: its Mondays are the 7th and 14th.
        assert_eq!(
            ticks("0 0 * * 1#2", "UTC", "2026-12-01T00:00:00Z", 2),
            ["2026-12-14T00:00:00Z", "2027-01-11T00:00:00Z"]
        );
        // Last Friday of November 2026 is the 27th, of December the 25th.
        assert_eq!(
            ticks("0 0 * * 5L", "UTC", "2026-11-01T00:00:00Z", 2),
            ["2026-11-27T00:00:00Z", "2026-12-25T00:00:00Z"]
        );
    }

    #[test]
    fn nearest_weekday_stays_in_its_month() {
        // 2026-11-15 is a Sunday: Monday the 16th. 2026-08-01 is a Saturday: Monday the 3rd,
        // not Friday in July.
        assert_eq!(
            ticks("0 0 15W * *", "UTC", "2026-11-01T00:00:00Z", 2),
            ["2026-11-16T00:00:00Z", "2026-12-15T00:00:00Z"]
        );
        assert_eq!(
            ticks("0 0 1W * *", "UTC", "2026-07-15T00:00:00Z", 1),
            ["2026-08-03T00:00:00Z"]
        );
        // Last weekday: 2026-10-31 is a Saturday.
        assert_eq!(
            ticks("0 0 LW * *", "UTC", "2026-10-15T00:00:00Z", 2),
            ["2026-10-30T00:00:00Z", "2026-11-30T00:00:00Z"]
        );
    }

    #[test]
    fn year_end_rolls_over() {
        assert_eq!(
            ticks("59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z", 1),
            ["2027-12-31T23:59:00Z"]
        );
        assert_eq!(
            ticks("0 0 1 1 *", "UTC", "2026-12-31T23:59:59Z", 1),
            ["2027-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn next_after_is_strictly_after_even_exactly_on_a_tick() {
        let schedule = Schedule::parse("*/5 * * * *").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            schedule.next_after(at("2026-11-28T10:05:00Z")),
            Some(at("2026-11-28T10:10:00Z"))
        );
        let just_before =
            Utc.timestamp_millis_opt(at("2026-11-28T10:05:00Z").timestamp_millis() - 1);
        assert_eq!(
            schedule.next_after(just_before.single().unwrap_or_else(|| panic!("instant"))),
            Some(at("2026-11-28T10:05:00Z"))
        );
        let half_past = at("2026-11-28T10:05:00.500Z");
        assert_eq!(
            schedule.next_after(half_past),
            Some(at("2026-11-28T10:10:00Z"))
        );
        assert_eq!(
            schedule.latest_at_or_before(at("2026-11-28T10:05:00Z")),
            Some(at("2026-11-28T10:05:00Z"))
        );
        assert_eq!(
            schedule.latest_at_or_before(half_past),
            Some(at("2026-11-28T10:05:00Z"))
        );
    }

    #[test]
    fn new_york_spring_gap_runs_once_at_the_first_valid_instant() {
        // 2026-03-08 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
        assert_eq!(
            ticks("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 3),
            [
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:30:00Z",
                "2026-03-10T06:30:00Z"
            ]
        );
    }

    #[test]
    fn new_york_fall_back_runs_a_fixed_time_once_and_every_hour_each_hour() {
        // 2026-11-01 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
        assert_eq!(
            ticks("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
        );
        // An hourly job runs in both copies of the repeated hour: every real hour.
        assert_eq!(
            ticks("0 * * * *", "America/New_York", "2026-11-01T03:00:00Z", 4),
            [
                "2026-11-01T04:00:00Z",
                "2026-11-01T05:00:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T07:00:00Z"
            ]
        );
    }

    #[test]
    fn berlin_gap_and_repeat() {
        // 2026-03-29 02:00 CET jumps to 03:00 CEST.
        assert_eq!(
            ticks("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
        );
        // 2026-10-25 03:00 CEST falls back to 02:00 CET; 02:30 happens twice, runs once.
        assert_eq!(
            ticks("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
    }

    #[test]
    fn default_time_zone_is_utc_not_the_host_zone() {
        let schedule = Schedule::parse("0 12 * * *").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(schedule.timezone(), chrono_tz::Tz::UTC);
        assert_eq!(
            schedule.next_after(at("2026-11-28T10:00:00Z")),
            Some(at("2026-11-28T12:00:00Z"))
        );
    }

    #[test]
    fn errors_name_the_field_and_what_it_takes() {
        let message = |expr: &str| match Schedule::parse(expr) {
            Ok(_) => panic!("{expr} was accepted"),
            Err(err) => err.to_string(),
        };
        assert!(message("*/5 * * *").contains("found 4 fields, expected 5"));
        assert!(message("60 * * * *").contains("minute field `60`: 60 is out of range"));
        assert!(message("0 24 * * *").contains("the hour field takes 0-23"));
        assert!(message("0 0 * * 8").contains("day-of-week field"));
        assert!(message("0/15 * * * *").contains("write `*/15`"));
        assert!(message("0 0 * MON *").contains("day names belong in the day-of-week field"));
        assert!(message("0 0 30 2 *").contains("can never fire"));
        assert!(message("@reboot").contains("unknown nickname"));
        assert!(message("5-1 * * * *").contains("runs backwards"));
        assert!(message("").contains("empty"));
        let tz = Schedule::parse("* * * * *")
            .and_then(|s| s.with_timezone("Europe/Berln"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            tz.as_deref(),
            Some("unknown time zone `Europe/Berln`; did you mean \"Europe/Berlin\"?")
        );
    }
}
