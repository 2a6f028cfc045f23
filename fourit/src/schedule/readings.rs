//! The wall-clock readings a cron pattern matches, found without regard to any time zone: the
//! first matching local date-time at or after a reading, and the last at or before one.
//!
//! croner parses the pattern and decides which days match (`L`, `W`, `#` and the day-of-month
//! OR day-of-week rule); the hours, minutes and seconds are bit sets, so a search skips a whole
//! day, hour or minute that cannot match in one step.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use croner::{Cron, Weekday};

/// The first and last years searched (croner's own year range): a schedule with no reading
/// in between has none, and the macro refuses such schedules anyway.
const FIRST_YEAR: i32 = 1;
const LAST_YEAR: i32 = 5000;

/// A parsed pattern as sets of readings.
#[derive(Debug)]
pub(crate) struct Readings {
    cron: Cron,
    seconds: u64,
    minutes: u64,
    hours: u64,
    months: u64,
    interval: bool,
}

fn bits(values: Vec<u16>) -> u64 {
    values
        .into_iter()
        .filter(|value| *value < 64)
        .fold(0, |set, value| set | 1 << value)
}

/// The smallest member of `set` at or above `from`.
fn first_from(set: u64, from: u32) -> Option<u32> {
    let above = set.checked_shr(from)?.checked_shl(from)?;
    (above != 0).then(|| above.trailing_zeros())
}

/// The largest member of `set` at or below `upto`.
fn last_upto(set: u64, upto: u32) -> Option<u32> {
    let below = set & u64::MAX.checked_shr(63u32.checked_sub(upto)?)?;
    (below != 0).then(|| 63 - below.leading_zeros())
}

impl Readings {
    /// The readings of a parsed pattern.
    pub(crate) fn new(cron: Cron) -> Readings {
        let pattern = &cron.pattern;
        // Vixie cron's classification is by the text: `0,*/5` is not an interval, `*/5` is.
        let fields: Vec<&str> = pattern.as_str().split_whitespace().collect();
        let minute_and_hour = if fields.len() == 6 { 1..3 } else { 0..2 };
        let interval = fields
            .get(minute_and_hour)
            .is_some_and(|fields| fields.iter().any(|field| field.starts_with('*')));
        Readings {
            interval,
            seconds: bits(pattern.seconds.values()),
            minutes: bits(pattern.minutes.values()),
            hours: bits(pattern.hours.values()),
            months: bits(pattern.months.values()),
            cron,
        }
    }

    /// Whether the schedule is read by elapsed time rather than as appointments on the wall
    /// clock: its minute or hour field begins with `*` (`*`, `*/15`).
    pub(crate) fn is_interval(&self) -> bool {
        self.interval
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let weekday = Weekday::from_days_from_sunday(date.weekday().num_days_from_sunday());
        self.cron
            .pattern
            .day_match(date.year(), date.month(), date.day(), weekday)
            .unwrap_or(false)
    }

    fn month_matches(&self, month: u32) -> bool {
        self.months & (1 << month) != 0
    }

    /// The first matching time of day at or after `from`.
    fn first_time_from(&self, from: NaiveTime) -> Option<NaiveTime> {
        let (h0, m0, s0) = (from.hour(), from.minute(), from.second());
        let hour = first_from(self.hours, h0)?;
        let first_second = first_from(self.seconds, 0)?;
        let first_minute = first_from(self.minutes, 0)?;
        if hour == h0 {
            if let Some(minute) = first_from(self.minutes, m0) {
                let second = if minute == m0 {
                    first_from(self.seconds, s0)
                } else {
                    Some(first_second)
                };
                if let Some(second) = second {
                    return NaiveTime::from_hms_opt(hour, minute, second);
                }
                if let Some(minute) = first_from(self.minutes, m0 + 1) {
                    return NaiveTime::from_hms_opt(hour, minute, first_second);
                }
            }
            let hour = first_from(self.hours, h0 + 1)?;
            return NaiveTime::from_hms_opt(hour, first_minute, first_second);
        }
        NaiveTime::from_hms_opt(hour, first_minute, first_second)
    }

    /// The last matching time of day at or before `upto`.
    fn last_time_upto(&self, upto: NaiveTime) -> Option<NaiveTime> {
        let (h0, m0, s0) = (upto.hour(), upto.minute(), upto.second());
        let hour = last_upto(self.hours, h0)?;
        let last_second = last_upto(self.seconds, 59)?;
        let last_minute = last_upto(self.minutes, 59)?;
        if hour == h0 {
            if let Some(minute) = last_upto(self.minutes, m0) {
                let second = if minute == m0 {
                    last_upto(self.seconds, s0)
                } else {
                    Some(last_second)
                };
                if let Some(second) = second {
                    return NaiveTime::from_hms_opt(hour, minute, second);
                }
                if let Some(minute) = m0.checked_sub(1).and_then(|m| last_upto(self.minutes, m)) {
                    return NaiveTime::from_hms_opt(hour, minute, last_second);
                }
            }
            let hour = h0.checked_sub(1).and_then(|h| last_upto(self.hours, h))?;
            return NaiveTime::from_hms_opt(hour, last_minute, last_second);
        }
        NaiveTime::from_hms_opt(hour, last_minute, last_second)
    }

    /// The first matching reading at or after `from`, or `None` past the year 5000.
    pub(crate) fn first_at_or_after(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut date = from.date();
        let mut time = Some(from.time());
        while date.year() <= LAST_YEAR {
            if !self.month_matches(date.month()) {
                // On to the first of the next month.
                let (year, month) = match date.month() {
                    12 => (date.year() + 1, 1),
                    month => (date.year(), month + 1),
                };
                date = NaiveDate::from_ymd_opt(year, month, 1)?;
                time = None;
                continue;
            }
            if self.day_matches(date)
                && let Some(found) = self.first_time_from(time.unwrap_or(NaiveTime::MIN))
            {
                return Some(date.and_time(found));
            }
            date = date.succ_opt()?;
            time = None;
        }
        None
    }

    /// The last matching reading at or before `upto`, or `None` before the year 1.
    pub(crate) fn last_at_or_before(&self, upto: NaiveDateTime) -> Option<NaiveDateTime> {
        let end_of_day = NaiveTime::from_hms_opt(23, 59, 59)?;
        let mut date = upto.date();
        let mut time = Some(upto.time());
        while date.year() >= FIRST_YEAR {
            if !self.month_matches(date.month()) {
                // Back to the last day of the previous month.
                date = date.with_day(1)?.pred_opt()?;
                time = None;
                continue;
            }
            if self.day_matches(date)
                && let Some(found) = self.last_time_upto(time.unwrap_or(end_of_day))
            {
                return Some(date.and_time(found));
            }
            date = date.pred_opt()?;
            time = None;
        }
        None
    }
}
