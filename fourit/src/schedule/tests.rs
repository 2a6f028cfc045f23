//! Unit tests of `schedule/`: the public tick arithmetic, and the rule for clock changes.

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
    let just_before = Utc.timestamp_millis_opt(at("2026-11-28T10:05:00Z").timestamp_millis() - 1);
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
    assert!(
        message("*,5 * * * *")
            .contains("minute field `*,5`: `*` (every value) cannot be part of a list")
    );
    assert!(message("0 ?,1 * * *").contains("hour field `?,1`"));
    assert!(message("0 0 L,lw * *").contains("`L` and `LW` cannot share a field"));
    let tz = Schedule::parse("* * * * *")
        .and_then(|s| s.with_timezone("Europe/Berln"))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        tz.as_deref(),
        Some("unknown time zone `Europe/Berln`; did you mean \"Europe/Berlin\"?")
    );
}

/// The ticks before `before`, latest first, as RFC 3339 UTC strings.
fn ticks_before(expr: &str, tz: &str, before: &str, n: usize) -> Vec<String> {
    let schedule = Schedule::parse(expr)
        .and_then(|s| s.with_timezone(tz))
        .unwrap_or_else(|err| panic!("{expr}: {err}"));
    let mut cursor = at(before) - chrono::TimeDelta::seconds(1);
    let mut found = Vec::new();
    while found.len() < n {
        let Some(tick) = schedule.latest_at_or_before(cursor) else {
            break;
        };
        found.push(tick.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        cursor = tick - chrono::TimeDelta::seconds(1);
    }
    found
}

/// Asserts the ticks after `after` and, read backwards from just past the last, the same
/// ticks in reverse: `latest_at_or_before` is the mirror image of `next_after`.
fn assert_both_ways(expr: &str, tz: &str, after: &str, expected: &[&str]) {
    assert_eq!(
        ticks(expr, tz, after, expected.len()),
        expected,
        "`{expr}` in {tz}"
    );
    let last = expected
        .last()
        .map(|last| at(last) + chrono::TimeDelta::seconds(1));
    let last = last.unwrap_or_else(|| panic!("no ticks expected"));
    let mut backwards = ticks_before(expr, tz, &last.to_rfc3339(), expected.len());
    backwards.reverse();
    assert_eq!(backwards, expected, "`{expr}` in {tz}, backwards");
}

#[test]
fn a_skipped_day_runs_its_appointment_at_the_first_instant_after_and_the_job_goes_on() {
    // Samoa skipped 2011-12-30: 23:59:59 on the 29th (UTC-10) was followed by 00:00 on the
    // 31st (UTC+14), at 10:00 UTC. Noon on the 30th runs then; the job never stops.
    assert_both_ways(
        "0 12 * * *",
        "Pacific/Apia",
        "2011-12-28T00:00:00Z",
        &[
            "2011-12-28T22:00:00Z",
            "2011-12-29T22:00:00Z",
            "2011-12-30T10:00:00Z",
            "2011-12-30T22:00:00Z",
            "2011-12-31T22:00:00Z",
        ],
    );
}

#[test]
fn a_listed_hour_in_the_repeated_hour_runs_once() {
    // Athens fell back from 04:00 EEST to 03:00 EET on 2016-10-30: 03:00 happened at 00:00
    // and at 01:00 UTC, and runs at the first only.
    assert_both_ways(
        "0 2,3 * * *",
        "Europe/Athens",
        "2016-10-29T12:00:00Z",
        &[
            "2016-10-29T23:00:00Z",
            "2016-10-30T00:00:00Z",
            "2016-10-31T00:00:00Z",
            "2016-10-31T01:00:00Z",
        ],
    );
}

#[test]
fn a_listed_hour_in_the_gap_runs_at_the_first_instant_after_it() {
    // Nuuk, 2024-03-30: 23:00 (UTC-2) jumps to 00:00 (UTC-1), at 01:00 UTC.
    assert_both_ways(
        "0 22,23 * * *",
        "America/Nuuk",
        "2024-03-30T12:00:00Z",
        &[
            "2024-03-31T00:00:00Z",
            "2024-03-31T01:00:00Z",
            "2024-03-31T23:00:00Z",
            "2024-04-01T00:00:00Z",
        ],
    );
    // Santiago, 2026-09-06: 00:00 (UTC-4) jumps to 01:00 (UTC-3), at 04:00 UTC.
    assert_both_ways(
        "0 23,0 * * *",
        "America/Santiago",
        "2026-09-05T12:00:00Z",
        &[
            "2026-09-06T03:00:00Z",
            "2026-09-06T04:00:00Z",
            "2026-09-07T02:00:00Z",
            "2026-09-07T03:00:00Z",
        ],
    );
}

#[test]
fn an_interval_schedule_invents_nothing_in_a_gap() {
    // `*/20 3 * * *` runs by elapsed time (its minute field begins with `*`): Athens had no
    // 03:00-03:59 on 2016-03-27, so nothing ran that day.
    assert_both_ways(
        "*/20 3 * * *",
        "Europe/Athens",
        "2016-03-26T00:00:00Z",
        &[
            "2016-03-26T01:00:00Z",
            "2016-03-26T01:20:00Z",
            "2016-03-26T01:40:00Z",
            "2016-03-28T00:00:00Z",
            "2016-03-28T00:20:00Z",
        ],
    );
}

#[test]
fn several_appointments_in_one_gap_make_one_run() {
    // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT at 07:00 UTC. 02:00, 02:15, 02:30
    // and 02:45 are skipped and run once, together, at 03:00 EDT; 03:00 itself is that run.
    assert_both_ways(
        "0,15,30,45 2,3 8 3 *",
        "America/New_York",
        "2026-03-08T00:00:00Z",
        &[
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:15:00Z",
            "2026-03-08T07:30:00Z",
            "2026-03-08T07:45:00Z",
            "2027-03-08T07:00:00Z",
        ],
    );
}

#[test]
fn half_hour_and_two_hour_changes() {
    // Lord Howe moves by 30 minutes: 02:00 (+10:30) jumps to 02:30 (+11) on 2026-10-04, at
    // 15:30 UTC the day before; 02:15 runs then.
    assert_both_ways(
        "15 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-02T12:00:00Z",
        &[
            "2026-10-02T15:45:00Z",
            "2026-10-03T15:30:00Z",
            "2026-10-04T15:15:00Z",
        ],
    );
    // Troll moves by two hours: 01:00 UTC jumps to 03:00 (+02) on 2026-03-29; 02:00 runs at
    // 01:00 UTC. In October 03:00 falls back to 01:00, and 02:00 runs at its first copy.
    assert_both_ways(
        "0 2 * * *",
        "Antarctica/Troll",
        "2026-03-27T12:00:00Z",
        &[
            "2026-03-28T02:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:00:00Z",
        ],
    );
    assert_both_ways(
        "0 2 * * *",
        "Antarctica/Troll",
        "2026-10-23T12:00:00Z",
        &[
            "2026-10-24T00:00:00Z",
            "2026-10-25T00:00:00Z",
            "2026-10-26T02:00:00Z",
        ],
    );
}

#[test]
fn every_real_minute_runs_through_a_fall_back() {
    // Berlin, 2026-10-25 03:00 CEST falls back to 02:00 CET at 01:00 UTC: a minutely job
    // runs every real minute, the repeated hour's included.
    let schedule = Schedule::parse("* * * * *")
        .and_then(|s| s.with_timezone("Europe/Berlin"))
        .unwrap_or_else(|e| panic!("{e}"));
    let start = at("2026-10-24T23:30:00Z");
    let minutes: Vec<DateTime<Utc>> = schedule.upcoming(start).take(180).collect();
    for (i, tick) in minutes.iter().enumerate() {
        assert_eq!(*tick, start + chrono::TimeDelta::minutes(i as i64 + 1));
    }
}
