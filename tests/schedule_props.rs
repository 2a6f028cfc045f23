//! Property tests of `fourit::Schedule`: no input panics the parser, and for generated valid
//! expressions the upcoming ticks strictly increase and agree with an independent brute-force
//! matcher written here (a scan in UTC, second by second for 6-field expressions and minute by
//! minute for 5-field ones, skipping whole days, hours and minutes that cannot match).
//!
//! The matcher follows the README's semantics: day of week 0 and 7 are Sunday; when both day
//! of month and day of week are restricted a day matches if either does (Vixie cron); a field
//! counts as restricted unless it is exactly `*` or `?` (so `*/10` is restricted, the one
//! documented difference from Vixie cron, which fourit takes from croner).

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use fourit::Schedule;
use proptest::prelude::*;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
/// How many upcoming ticks are compared per expression.
const TICKS: usize = 5;

/// A day that depends on the month: `L`, `LW`, `15W` in day-of-month, `5L`, `1#2` in
/// day-of-week.
#[derive(Clone, Copy, Debug)]
enum Special {
    LastDay,
    LastWeekday,
    NearestWeekday(u32),
    LastOf(u32),
    Nth(u32, u32),
}

/// One generated field: its text, the values it stands for, and its month-dependent days.
#[derive(Clone, Debug)]
struct Field {
    text: String,
    values: Vec<u32>,
    specials: Vec<Special>,
    restricted: bool,
}

impl Field {
    fn has(&self, value: u32) -> bool {
        self.values.contains(&value)
    }

    fn plain(text: String, values: Vec<u32>) -> Field {
        Field {
            text,
            values,
            specials: Vec::new(),
            restricted: true,
        }
    }

    fn special(text: String, special: Special) -> Field {
        Field {
            text,
            values: Vec::new(),
            specials: vec![special],
            restricted: true,
        }
    }
}

/// A generated expression and what it means.
#[derive(Clone, Debug)]
struct Expr {
    text: String,
    seconds: Option<Field>,
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
}

fn stepped(start: u32, end: u32, step: u32) -> Vec<u32> {
    (start..=end).step_by(step as usize).collect()
}

/// The month-dependent items of day-of-month (`L`, `LW`, `15W`) and day-of-week (`5L`, `1#2`).
fn specials(field: &str) -> Vec<BoxedStrategy<Field>> {
    match field {
        "day-of-month" => vec![
            Just(Field::special("L".into(), Special::LastDay)).boxed(),
            Just(Field::special("LW".into(), Special::LastWeekday)).boxed(),
            (1..=28u32)
                .prop_map(|d| Field::special(format!("{d}W"), Special::NearestWeekday(d)))
                .boxed(),
        ],
        "day-of-week" => vec![
            (0..=7u32)
                .prop_map(|d| Field::special(format!("{d}L"), Special::LastOf(d % 7)))
                .boxed(),
            (0..=7u32, 1..=5u32)
                .prop_map(|(d, n)| Field::special(format!("{d}#{n}"), Special::Nth(d % 7, n)))
                .boxed(),
        ],
        _ => Vec::new(),
    }
}

/// One list item of a field in `min..=max`: `n`, `a-b`, `*/n`, `a-b/n`, a name / name range,
/// or one of the field's month-dependent items.
fn item(
    min: u32,
    max: u32,
    names: &'static [&'static str],
    base: u32,
    special: &str,
) -> BoxedStrategy<Field> {
    let ordered = move |a: u32, b: u32| (a.min(b), a.max(b));
    let mut options: Vec<BoxedStrategy<Field>> = vec![
        (min..=max)
            .prop_map(|n| Field::plain(n.to_string(), vec![n]))
            .boxed(),
        (min..=max, min..=max)
            .prop_map(move |(a, b)| {
                let (a, b) = ordered(a, b);
                Field::plain(format!("{a}-{b}"), (a..=b).collect())
            })
            .boxed(),
        (1..=max)
            .prop_map(move |step| Field::plain(format!("*/{step}"), stepped(min, max, step)))
            .boxed(),
        (min..=max, min..=max, 1..=max)
            .prop_map(move |(a, b, step)| {
                let (a, b) = ordered(a, b);
                Field::plain(format!("{a}-{b}/{step}"), stepped(a, b, step))
            })
            .boxed(),
    ];
    if !names.is_empty() {
        let count = names.len();
        options.push(
            (0..count, any::<bool>())
                .prop_map(move |(i, lower)| {
                    let text = if lower {
                        names[i].to_lowercase()
                    } else {
                        names[i].to_string()
                    };
                    Field::plain(text, vec![i as u32 + base])
                })
                .boxed(),
        );
        options.push(
            // Name ranges of two different names (`SUN-SUN` has a test of its own below).
            (0..count, 0..count)
                .prop_filter("two different names", |(a, b)| a != b)
                .prop_map(move |(a, b)| {
                    let (a, b) = (a.min(b), a.max(b));
                    Field::plain(
                        format!("{}-{}", names[a], names[b]),
                        (a as u32 + base..=b as u32 + base).collect(),
                    )
                })
                .boxed(),
        );
    }
    options.extend(specials(special));
    proptest::strategy::Union::new(options).boxed()
}

/// A whole field: `*` (or `?` where allowed), or a list of one to three items.
fn field(
    min: u32,
    max: u32,
    names: &'static [&'static str],
    base: u32,
    question: bool,
    special: &str,
) -> BoxedStrategy<Field> {
    let star = if question {
        prop_oneof![Just("*"), Just("?")].boxed()
    } else {
        Just("*").boxed()
    };
    prop_oneof![
        2 => star.prop_map(move |text| Field {
            text: text.to_string(),
            values: (min..=max).collect(),
            specials: Vec::new(),
            restricted: false,
        }),
        3 => prop::collection::vec(item(min, max, names, base, special), 1..=3).prop_map(|items| {
            let mut values: Vec<u32> = items.iter().flat_map(|i| i.values.clone()).collect();
            values.sort_unstable();
            values.dedup();
            Field {
                text: items.iter().map(|i| i.text.as_str()).collect::<Vec<_>>().join(","),
                values,
                specials: items.iter().flat_map(|i| i.specials.clone()).collect(),
                restricted: true,
            }
        }),
    ]
    .boxed()
}

fn expr() -> impl Strategy<Value = Expr> {
    (
        prop::option::of(field(0, 59, &[], 0, false, "second")),
        field(0, 59, &[], 0, false, "minute"),
        field(0, 23, &[], 0, false, "hour"),
        field(1, 31, &[], 1, true, "day-of-month"),
        field(1, 12, &MONTHS, 1, false, "month"),
        field(0, 7, &DAYS, 0, true, "day-of-week"),
    )
        .prop_map(|(seconds, minute, hour, dom, month, mut dow)| {
            // Day of week 7 is Sunday, as 0 is.
            dow.values = dow.values.iter().map(|d| d % 7).collect();
            let mut parts: Vec<&str> = Vec::new();
            if let Some(seconds) = &seconds {
                parts.push(&seconds.text);
            }
            parts.extend([
                minute.text.as_str(),
                hour.text.as_str(),
                dom.text.as_str(),
                month.text.as_str(),
                dow.text.as_str(),
            ]);
            Expr {
                text: parts.join(" "),
                seconds,
                minute,
                hour,
                dom,
                month,
                dow,
            }
        })
}

fn last_day_of_month(date: NaiveDate) -> u32 {
    (28..=31)
        .rev()
        .find(|day| date.with_day(*day).is_some())
        .unwrap_or(28)
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Whether a month-dependent item admits this date.
fn special_matches(special: Special, date: NaiveDate) -> bool {
    let last = last_day_of_month(date);
    let weekday = date.weekday().num_days_from_sunday();
    let day = date.day();
    match special {
        Special::LastDay => day == last,
        Special::LastWeekday => {
            let last_weekday = (1..=last)
                .rev()
                .find(|d| date.with_day(*d).is_some_and(|d| !is_weekend(d)));
            !is_weekend(date) && Some(day) == last_weekday
        }
        Special::NearestWeekday(n) => {
            // The weekday nearest the n-th, without leaving the month.
            let target = date.with_day(n).map(|t| match t.weekday() {
                Weekday::Sat if n == 1 => 3,
                Weekday::Sat => n - 1,
                Weekday::Sun if n == last => n - 2,
                Weekday::Sun => n + 1,
                _ => n,
            });
            Some(day) == target
        }
        Special::LastOf(of) => weekday == of && day + 7 > last,
        Special::Nth(of, nth) => weekday == of && (day - 1) / 7 + 1 == nth,
    }
}

/// Whether the expression's day fields admit this date (Vixie's OR when both are restricted).
fn day_matches(e: &Expr, date: NaiveDate) -> bool {
    if !e.month.has(date.month()) {
        return false;
    }
    let dom = e.dom.has(date.day()) || e.dom.specials.iter().any(|s| special_matches(*s, date));
    let dow = e.dow.has(date.weekday().num_days_from_sunday())
        || e.dow.specials.iter().any(|s| special_matches(*s, date));
    match (e.dom.restricted, e.dow.restricted) {
        (true, true) => dom || dow,
        (true, false) => dom,
        (false, true) => dow,
        (false, false) => true,
    }
}

fn midnight_after(t: DateTime<Utc>) -> DateTime<Utc> {
    let date = t.date_naive() + Duration::days(1);
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// The first `n` instants strictly after `after` that the expression matches, scanning
/// forward (at most ten years).
fn brute_force(e: &Expr, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let unit = if e.seconds.is_some() {
        Duration::seconds(1)
    } else {
        Duration::minutes(1)
    };
    let truncated = if e.seconds.is_some() {
        after.with_nanosecond(0)
    } else {
        after.with_nanosecond(0).and_then(|t| t.with_second(0))
    }
    .unwrap_or(after);
    let mut t = truncated + unit;
    let limit = after + Duration::days(3660);
    let mut found = Vec::new();
    while found.len() < n && t < limit {
        if !day_matches(e, t.date_naive()) {
            t = midnight_after(t);
        } else if !e.hour.has(t.hour()) {
            t = t.with_minute(0).and_then(|t| t.with_second(0)).unwrap_or(t) + Duration::hours(1);
        } else if !e.minute.has(t.minute()) {
            t = t.with_second(0).unwrap_or(t) + Duration::minutes(1);
        } else {
            if e.seconds.as_ref().is_none_or(|s| s.has(t.second())) {
                found.push(t);
            }
            t += unit;
        }
    }
    found
}

/// Whether any day from 2001 to 2008 (two leap years) matches the day fields.
fn ever_fires(e: &Expr) -> bool {
    let mut day = Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2009, 1, 1, 0, 0, 0).unwrap();
    while day < end {
        if day_matches(e, day.date_naive()) {
            return true;
        }
        day += Duration::days(1);
    }
    false
}

/// Cases per property, without writing regression files into the source tree, from a fixed
/// seed so that every run checks the same cases (`PROPTEST_RNG_SEED` picks others).
fn config(cases: u32) -> ProptestConfig {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(22);
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

/// croner's own error texts: a message may quote one only beside the field it refuses.
const CRONER_TEXTS: [&str; 5] = [
    "Component error",
    "Invalid pattern",
    "illegal characters",
    "CronPattern cannot",
    "CronScheduler",
];

fn names_the_field_if_croner_refused(message: &str) -> bool {
    !CRONER_TEXTS.iter().any(|raw| message.contains(raw))
        || (message.contains(" field `") && message.contains("not understood ("))
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn arbitrary_strings_never_panic_the_parser(text in any::<String>()) {
        if let Ok(schedule) = Schedule::parse(&text) {
            let _ = schedule.next_after(Utc::now());
        }
    }

    #[test]
    fn cron_like_strings_never_panic_the_parser_nor_show_crons_raw_error(
        text in "[0-9*/,?LW#@ a-zA-Z-]{0,40}"
    ) {
        match Schedule::parse(&text) {
            Ok(schedule) => {
                let _ = schedule.next_after(Utc::now());
                let _ = schedule.latest_at_or_before(Utc::now());
            }
            Err(err) => {
                let message = err.to_string();
                prop_assert!(names_the_field_if_croner_refused(&message), "{}", message);
            }
        }
    }

    #[test]
    fn field_like_strings_never_show_crons_raw_error(
        fields in prop::collection::vec("[0-9*/,?LW#-]{1,6}|[A-Za-z]{3}(-[A-Za-z]{3})?", 5..=6)
    ) {
        let text = fields.join(" ");
        if let Err(err) = Schedule::parse(&text) {
            let message = err.to_string();
            prop_assert!(names_the_field_if_croner_refused(&message), "{}", message);
        }
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn upcoming_ticks_increase_and_agree_with_a_brute_force_matcher(
        e in expr(),
        // Any instant from 2001 to 2040, to the millisecond.
        after_ms in 978_307_200_000i64..2_208_988_800_000i64,
    ) {
        let after = Utc.timestamp_millis_opt(after_ms).unwrap();
        let schedule = match Schedule::parse(&e.text) {
            Ok(schedule) => schedule,
            Err(err) => {
                // The valid-grammar refusals: a day-of-month that no month has, and `L` with
                // `LW` (which croner cannot tell from `LW` alone).
                let both_lasts = ["L", "LW"].iter().all(|last| {
                    e.dom.text.split(',').any(|item| item.eq_ignore_ascii_case(last))
                });
                if both_lasts {
                    prop_assert!(err.to_string().contains("cannot share a field"), "{}", err);
                    return Ok(());
                }
                prop_assert!(
                    err.to_string().contains("never fire"),
                    "`{}` refused: {}", e.text, err
                );
                prop_assert!(!ever_fires(&e), "`{}` refused but it fires", e.text);
                return Ok(());
            }
        };
        let ticks: Vec<DateTime<Utc>> = schedule.upcoming(after).take(TICKS).collect();
        for pair in ticks.windows(2) {
            prop_assert!(pair[0] < pair[1], "`{}`: {:?} not increasing", e.text, ticks);
        }
        let expected = brute_force(&e, after, TICKS);
        prop_assert_eq!(&ticks, &expected, "`{}` after {}", e.text, after);
        if let Some(first) = ticks.first() {
            prop_assert_eq!(schedule.latest_at_or_before(*first), Some(*first));
        }
    }
}

/// A range from Sunday to Sunday is Sunday, or refused: never every day. (fourit reads `SUN`
/// at the end of a range as 7 so that `MON-SUN` runs to Sunday, which would make `SUN-SUN`
/// read 0-7; it is refused with a message saying to write `SUN`.)
#[test]
fn a_sunday_to_sunday_range_is_sunday_only_or_refused() {
    let monday = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
    for text in ["0 12 * * 0-0", "0 12 * * 7-7", "0 12 * * SUN"] {
        let schedule = Schedule::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"));
        let days: Vec<String> = schedule
            .upcoming(monday)
            .take(2)
            .map(|t| t.format("%a %F").to_string())
            .collect();
        assert_eq!(days, ["Sun 2026-12-06", "Sun 2026-12-13"], "`{text}`");
    }
    let err = Schedule::parse("0 12 * * SUN-SUN")
        .err()
        .map(|err| err.to_string())
        .unwrap_or_default();
    assert!(err.contains("for Sundays write `SUN`"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Clock changes: every zone's transitions, checked against a walk of real time.
//
// The oracle knows nothing of fourit's search: it walks real time in a window, minute by
// minute (second by second for 6-field schedules, and where a zone's offset is not a whole
// number of minutes), reads each instant's local time with chrono-tz, and applies the
// README's rule ("Daylight saving and other clock changes") to the model's own matcher:
// - an interval schedule (minute or hour field beginning with `*`) runs at every instant
//   whose local time matches;
// - an appointment runs at an instant whose local time matches if that instant is the local
//   time's earliest, and at the first instant after a forward jump if any local time the
//   jump skipped matches.

/// Whether the model matches a local reading.
fn reading_matches(e: &Expr, reading: NaiveDateTime) -> bool {
    day_matches(e, reading.date())
        && e.hour.has(reading.hour())
        && e.minute.has(reading.minute())
        && match &e.seconds {
            Some(seconds) => seconds.has(reading.second()),
            None => reading.second() == 0,
        }
}

fn is_interval(e: &Expr) -> bool {
    e.minute.text.starts_with('*') || e.hour.text.starts_with('*')
}

fn offset_at(tz: Tz, at: i64) -> i32 {
    use chrono::Offset;
    let utc = DateTime::from_timestamp(at, 0).unwrap_or_default();
    utc.with_timezone(&tz).offset().fix().local_minus_utc()
}

fn local_reading(tz: Tz, at: i64) -> NaiveDateTime {
    DateTime::from_timestamp(at, 0)
        .unwrap_or_default()
        .with_timezone(&tz)
        .naive_local()
}

/// The ticks in `from..=to` (Unix seconds) by the oracle's walk.
fn oracle(e: &Expr, tz: Tz, from: i64, to: i64) -> Vec<i64> {
    let whole_minutes = offset_at(tz, from) % 60 == 0 && offset_at(tz, to) % 60 == 0;
    let step = if e.seconds.is_none() && whole_minutes {
        60
    } else {
        1
    };
    let interval = is_interval(e);
    let mut ticks = Vec::new();
    let mut at = from.div_euclid(step) * step;
    let mut before = local_reading(tz, at - step);
    while at <= to {
        let reading = local_reading(tz, at);
        let tick = if interval {
            reading_matches(e, reading)
        } else {
            let first = tz
                .from_local_datetime(&reading)
                .earliest()
                .is_some_and(|first| first.timestamp() == at);
            let jumped = (reading - before).num_seconds() > step;
            (first && reading_matches(e, reading))
                || (jumped && {
                    // The local times the jump skipped, on the walk's grid.
                    let mut skipped = before + Duration::seconds(step);
                    let mut any = false;
                    while skipped < reading && !any {
                        any = reading_matches(e, skipped);
                        skipped += Duration::seconds(step);
                    }
                    any
                })
        };
        if tick && at >= from {
            ticks.push(at);
        }
        before = reading;
        at += step;
    }
    ticks
}

/// The zone's offset changes in `from..to`, found by reading the offset every `step` seconds
/// and bisecting each change to the second (the test's own search, not fourit's).
fn transitions(tz: Tz, from: i64, to: i64, step: i64) -> Vec<i64> {
    let mut found = Vec::new();
    let mut at = from;
    while at < to {
        let next = (at + step).min(to);
        if offset_at(tz, at) != offset_at(tz, next) {
            let (mut same, mut changed) = (at, next);
            while changed - same > 1 {
                let mid = same + (changed - same) / 2;
                if offset_at(tz, mid) == offset_at(tz, at) {
                    same = mid;
                } else {
                    changed = mid;
                }
            }
            found.push(changed);
        }
        at = next;
    }
    found
}

/// fourit's ticks in `from..=to`, forward with `next_after` and backward with
/// `latest_at_or_before`; both must equal the oracle's.
fn check_window(e: &Expr, schedule: &Schedule, from: i64, to: i64) -> Result<(), String> {
    let tz = schedule.timezone();
    let expected = oracle(e, tz, from, to);
    let show = |ticks: &[i64]| -> Vec<String> {
        ticks
            .iter()
            .map(|t| local_reading(tz, *t).format("%F %T").to_string() + &format!(" ({t})"))
            .collect()
    };
    let mut forward = Vec::new();
    let mut cursor = DateTime::from_timestamp(from - 1, 0).unwrap_or_default();
    while let Some(tick) = schedule.next_after(cursor) {
        if tick.timestamp() > to {
            break;
        }
        forward.push(tick.timestamp());
        cursor = tick;
    }
    let mut backward = Vec::new();
    let mut cursor = DateTime::from_timestamp(to, 0).unwrap_or_default();
    while let Some(tick) = schedule.latest_at_or_before(cursor) {
        if tick.timestamp() < from {
            break;
        }
        backward.push(tick.timestamp());
        cursor = tick - Duration::seconds(1);
    }
    backward.reverse();
    if forward != expected || backward != expected {
        return Err(format!(
            "`{}` in {} from {from} to {to}:\n expected {:?}\n forward  {:?}\n backward {:?}",
            e.text,
            tz.name(),
            show(&expected),
            show(&forward),
            show(&backward)
        ));
    }
    Ok(())
}

/// How far either side of a transition the oracle walks: a day and more for 5-field
/// schedules, so a daily appointment on both sides is seen; three hours for 6-field ones,
/// which the oracle walks second by second.
fn half_window(e: &Expr) -> i64 {
    if e.seconds.is_some() {
        3 * 3600
    } else {
        26 * 3600
    }
}

const YEAR_1970: i64 = 0;
const YEAR_SECONDS: i64 = 31_556_952;

proptest! {
    #![proptest_config(config(160))]

    #[test]
    fn ticks_across_transitions_follow_the_documented_rule_in_every_zone(
        e in expr(),
        zone in 0..chrono_tz::TZ_VARIANTS.len(),
        year in 0i64..68,
        pick in any::<prop::sample::Index>(),
    ) {
        let tz = chrono_tz::TZ_VARIANTS[zone];
        let schedule = match Schedule::parse(&e.text).and_then(|s| s.with_timezone(tz.name())) {
            Ok(schedule) => schedule,
            // Refusals are the UTC property's business.
            Err(_) => return Ok(()),
        };
        prop_assert_eq!(schedule.is_interval(), is_interval(&e));
        let start = YEAR_1970 + year * YEAR_SECONDS;
        let found = transitions(tz, start, start + YEAR_SECONDS, 6 * 3600);
        // A transition of that year, or (zones without one) some instant of it.
        let anchor = if found.is_empty() {
            start + pick.index(YEAR_SECONDS as usize) as i64
        } else {
            *pick.get(&found)
        };
        let half = half_window(&e);
        if let Err(message) = check_window(&e, &schedule, anchor - half, anchor + half) {
            prop_assert!(false, "{}", message);
        }
    }
}

/// Every zone with a transition from 1970 to 2037, its first and one later transition, with
/// an appointment, a list of hours, an interval and a schedule that fires once a day at the
/// hour most zones change.
#[test]
fn every_zone_with_a_transition_keeps_the_rule_and_never_stops() {
    let texts = [
        ("30 2 * * *", "30", "2"),
        ("0,30 0-3,23 * * *", "0,30", "0-3,23"),
        ("*/15 * * * *", "*/15", "*"),
    ];
    let exprs: Vec<Expr> = texts
        .iter()
        .map(|(text, minute, hour)| {
            let values = |field: &str, max: u32| -> Vec<u32> {
                (0..=max)
                    .filter(|v| {
                        field.split(',').any(|item| match item.split_once('/') {
                            Some((_, step)) => v % step.parse::<u32>().unwrap_or(1) == 0,
                            None => match item.split_once('-') {
                                Some((a, b)) => {
                                    (a.parse().unwrap_or(0)..=b.parse().unwrap_or(0)).contains(v)
                                }
                                None => item == "*" || item.parse() == Ok(*v),
                            },
                        })
                    })
                    .collect()
            };
            let all = |text: &str, max: u32, base: u32| Field {
                text: text.into(),
                values: (base..=max).collect(),
                specials: Vec::new(),
                restricted: false,
            };
            Expr {
                text: text.to_string(),
                seconds: None,
                minute: Field::plain(minute.to_string(), values(minute, 59)),
                hour: Field::plain(hour.to_string(), values(hour, 23)),
                dom: all("*", 31, 1),
                month: all("*", 12, 1),
                dow: all("*", 6, 0),
            }
        })
        .collect();
    let mut zones_checked = 0;
    for (index, tz) in chrono_tz::TZ_VARIANTS.iter().enumerate() {
        // Changes 1970-2037, read every 10 days (enough to find one per DST season).
        let found = transitions(*tz, YEAR_1970, YEAR_1970 + 68 * YEAR_SECONDS, 10 * 86_400);
        if found.is_empty() {
            continue;
        }
        zones_checked += 1;
        // The first change, and one picked by the zone's index.
        for anchor in [found[0], found[index * 7 % found.len()]] {
            for e in &exprs {
                let schedule = Schedule::parse(&e.text)
                    .and_then(|s| s.with_timezone(tz.name()))
                    .unwrap_or_else(|err| panic!("{err}"));
                if let Err(message) =
                    check_window(e, &schedule, anchor - 26 * 3600, anchor + 26 * 3600)
                {
                    panic!("{message}");
                }
            }
        }
    }
    assert!(
        zones_checked > 300,
        "only {zones_checked} zones have transitions?"
    );
}
