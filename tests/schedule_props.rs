//! Property tests of `fourit::Schedule`: no input panics the parser, and for generated valid
//! expressions the upcoming ticks strictly increase and agree with an independent brute-force
//! matcher written here (a scan in UTC, second by second for 6-field expressions and minute by
//! minute for 5-field ones, skipping whole days, hours and minutes that cannot match).
//!
//! The matcher follows the README's semantics: day of week 0 and 7 are Sunday; when both day
//! of month and day of week are restricted a day matches if either does (Vixie cron); a field
//! counts as restricted unless it is exactly `*` or `?` (so `*/10` is restricted, the one
//! documented difference from Vixie cron, which fourit takes from croner).

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use fourit::Schedule;
use proptest::prelude::*;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
/// How many upcoming ticks are compared per expression.
const TICKS: usize = 5;

/// One generated field: its text and the values it stands for.
#[derive(Clone, Debug)]
struct Field {
    text: String,
    values: Vec<u32>,
    restricted: bool,
}

impl Field {
    fn has(&self, value: u32) -> bool {
        self.values.contains(&value)
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

/// One list item of a field in `min..=max`: `n`, `a-b`, `*/n`, `a-b/n`, or a name / name range.
fn item(min: u32, max: u32, names: &'static [&'static str], base: u32) -> BoxedStrategy<Field> {
    let ordered = move |a: u32, b: u32| (a.min(b), a.max(b));
    let mut options: Vec<BoxedStrategy<Field>> = vec![
        (min..=max)
            .prop_map(|n| Field {
                text: n.to_string(),
                values: vec![n],
                restricted: true,
            })
            .boxed(),
        (min..=max, min..=max)
            .prop_map(move |(a, b)| {
                let (a, b) = ordered(a, b);
                Field {
                    text: format!("{a}-{b}"),
                    values: (a..=b).collect(),
                    restricted: true,
                }
            })
            .boxed(),
        (1..=max)
            .prop_map(move |step| Field {
                text: format!("*/{step}"),
                values: stepped(min, max, step),
                restricted: true,
            })
            .boxed(),
        (min..=max, min..=max, 1..=max)
            .prop_map(move |(a, b, step)| {
                let (a, b) = ordered(a, b);
                Field {
                    text: format!("{a}-{b}/{step}"),
                    values: stepped(a, b, step),
                    restricted: true,
                }
            })
            .boxed(),
    ];
    if !names.is_empty() {
        let count = names.len();
        options.push(
            (0..count, any::<bool>())
                .prop_map(move |(i, lower)| Field {
                    text: if lower {
                        names[i].to_lowercase()
                    } else {
                        names[i].to_string()
                    },
                    values: vec![i as u32 + base],
                    restricted: true,
                })
                .boxed(),
        );
        options.push(
            // Name ranges of two different names (`SUN-SUN` has a test of its own below).
            (0..count, 0..count)
                .prop_filter("two different names", |(a, b)| a != b)
                .prop_map(move |(a, b)| {
                    let (a, b) = (a.min(b), a.max(b));
                    Field {
                        text: format!("{}-{}", names[a], names[b]),
                        values: (a as u32 + base..=b as u32 + base).collect(),
                        restricted: true,
                    }
                })
                .boxed(),
        );
    }
    proptest::strategy::Union::new(options).boxed()
}

/// A whole field: `*` (or `?` where allowed), or a list of one to three items.
fn field(
    min: u32,
    max: u32,
    names: &'static [&'static str],
    base: u32,
    question: bool,
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
            restricted: false,
        }),
        3 => prop::collection::vec(item(min, max, names, base), 1..=3).prop_map(|items| {
            let mut values: Vec<u32> = items.iter().flat_map(|i| i.values.clone()).collect();
            values.sort_unstable();
            values.dedup();
            Field {
                text: items.iter().map(|i| i.text.as_str()).collect::<Vec<_>>().join(","),
                values,
                restricted: true,
            }
        }),
    ]
    .boxed()
}

fn expr() -> impl Strategy<Value = Expr> {
    (
        prop::option::of(field(0, 59, &[], 0, false)),
        field(0, 59, &[], 0, false),
        field(0, 23, &[], 0, false),
        field(1, 31, &[], 1, true),
        field(1, 12, &MONTHS, 1, false),
        field(0, 7, &DAYS, 0, true),
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

/// Whether the expression's day fields admit this date (Vixie's OR when both are restricted).
fn day_matches(e: &Expr, date: DateTime<Utc>) -> bool {
    if !e.month.has(date.month()) {
        return false;
    }
    let dom = e.dom.has(date.day());
    let dow = e.dow.has(date.weekday().num_days_from_sunday());
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
        if !day_matches(e, t) {
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
        if day_matches(e, day) {
            return true;
        }
        day += Duration::days(1);
    }
    false
}

/// Cases per property, without writing regression files into the source tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
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
    fn cron_like_strings_never_panic_the_parser(
        text in "[0-9*/,?LW#@ a-zA-Z-]{0,40}"
    ) {
        if let Ok(schedule) = Schedule::parse(&text) {
            let _ = schedule.next_after(Utc::now());
            let _ = schedule.latest_at_or_before(Utc::now());
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
                // The only valid-grammar refusal: a day-of-month that no month has.
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
