//! Cron expressions: the fields, what each accepts, and the messages that name the field.

use chrono::{TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

pub use super::field::Field;
use super::field::{FIVE, MONTH_NAMES, SIX, WEEKDAY_NAMES};

/// The cron nicknames fourit accepts, and what each stands for.
pub const NICKNAMES: [(&str, &str); 6] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Parses a cron expression exactly as fourit runs it, or says precisely what is wrong.
///
/// The message names the offending field and what it accepts; it is the text of both the
/// compile error and the run-time [`Error::InvalidSchedule`](crate::Error::InvalidSchedule).
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let fail = |why: String| format!("invalid cron schedule `{expr}`: {why}");
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err(fail(
            "the schedule is empty; write 5 fields (minute hour day-of-month month day-of-week), \
             e.g. \"*/5 * * * *\""
                .to_string(),
        ));
    }
    let expanded = if trimmed.starts_with('@') {
        match NICKNAMES
            .iter()
            .find(|(nick, _)| nick.eq_ignore_ascii_case(trimmed))
        {
            Some((_, fields)) => *fields,
            None => {
                let known: Vec<&str> = NICKNAMES.iter().map(|(nick, _)| *nick).collect();
                return Err(fail(format!(
                    "unknown nickname `{trimmed}`; fourit knows {}",
                    known.join(", ")
                )));
            }
        }
    } else {
        trimmed
    };
    let parts: Vec<&str> = expanded.split_whitespace().collect();
    let fields: &[Field] = match parts.len() {
        5 => &FIVE,
        6 => &SIX,
        n => {
            return Err(fail(format!(
                "found {n} field{}, expected 5 (minute hour day-of-month month day-of-week) \
                 or 6 with a leading second field (second minute hour day-of-month month day-of-week)",
                if n == 1 { "" } else { "s" }
            )));
        }
    };
    for (field, text) in fields.iter().zip(&parts) {
        check_field(*field, text)
            .map_err(|why| fail(format!("{} field `{text}`: {why}", field.name())))?;
    }
    // What passed the field checks is handed to croner as written, so the run time parses the
    // very same text. croner is the authority; should it still refuse, the message names the
    // field it refuses (found by handing it that field alone) and says what a field may hold.
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    let cron = parser
        .parse(expanded)
        .map_err(|err| fail(croner_refusal(&parser, fields, &parts, &err.to_string())))?;
    if never_fires(&cron) {
        return Err(fail(
            "it can never fire: no month has that day (day-of-month and month never meet)"
                .to_string(),
        ));
    }
    Ok(cron)
}

/// What to say when croner refuses a schedule that passed fourit's own checks: the field it
/// refuses when one field alone is refused, and how a field is written.
pub(super) fn croner_refusal(
    parser: &CronParser,
    fields: &[Field],
    parts: &[&str],
    why: &str,
) -> String {
    let refused = (0..parts.len()).find(|at| {
        let alone: Vec<&str> = (0..parts.len())
            .map(|i| if i == *at { parts[i] } else { "*" })
            .collect();
        parser.parse(&alone.join(" ")).is_err()
    });
    let how = "write values, ranges (`a-b`) and steps (`*/n`, `a-b/n`) separated by commas, \
               e.g. `0,30` or `8-18/2`";
    match refused.and_then(|at| Some((fields.get(at)?, parts.get(at)?))) {
        Some((field, text)) => format!(
            "{} field `{text}`: not understood ({why}); {how}; the {} field takes {}",
            field.name(),
            field.name(),
            field.allowed()
        ),
        None => format!("not understood ({why}); {how}"),
    }
}

/// True when the schedule has no occurrence in the 400-year Gregorian cycle from 2001: such a
/// schedule has none at all.
fn never_fires(cron: &Cron) -> bool {
    let (Some(start), Some(end)) = (
        Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).single(),
        Utc.with_ymd_and_hms(2401, 1, 1, 0, 0, 0).single(),
    ) else {
        return false;
    };
    match cron.find_next_occurrence(&start, true) {
        Ok(found) => found >= end,
        Err(_) => true,
    }
}

fn check_field(field: Field, text: &str) -> Result<(), String> {
    if text.starts_with('+') && field == Field::DayOfWeek {
        return Err(
            "the `+` (AND) prefix is not supported: fourit follows Vixie cron, where a day \
             matches when day-of-month OR day-of-week matches"
                .to_string(),
        );
    }
    if text.contains('+') {
        return Err("`+` is not allowed; write numbers without a sign, e.g. `5` or `1-5`".into());
    }
    let items: Vec<&str> = text.split(',').collect();
    for item in &items {
        if item.is_empty() {
            return Err("empty list item; separate values with single commas, e.g. `1,15`".into());
        }
        if items.len() > 1 && (*item == "*" || *item == "?") {
            return Err(format!(
                "`{item}` (every value) cannot be part of a list; write `{item}` alone for every \
                 value, or list the values you mean (e.g. `0,15,30,45` or `*/15`)"
            ));
        }
        check_item(field, item)?;
    }
    if field == Field::DayOfMonth {
        let upper: Vec<String> = items.iter().map(|i| i.to_ascii_uppercase()).collect();
        if upper.iter().any(|i| i == "L") && upper.iter().any(|i| i == "LW") {
            // croner keeps `LW` as "last" plus "weekday" flags, which would swallow the `L`.
            return Err(
                "`L` and `LW` cannot share a field; the last day (`L`) and the last weekday \
                 (`LW`) need two jobs"
                    .into(),
            );
        }
    }
    Ok(())
}

/// Checks one list item as written (names and `L`/`W` in any case; messages quote the text).
fn check_item(field: Field, item: &str) -> Result<(), String> {
    let (min, max) = field.range();
    // ASCII upper-casing keeps every byte where it was, so `upper` and `item` share indices.
    let upper = item.to_ascii_uppercase();
    if item == "*" {
        return Ok(());
    }
    if item == "?" {
        return match field {
            Field::DayOfMonth | Field::DayOfWeek => Ok(()),
            _ => Err("`?` is only allowed in day-of-month and day-of-week; use `*`".to_string()),
        };
    }
    if let Some((range, step)) = item.split_once('/') {
        let step = number(step)
            .ok_or_else(|| format!("step `/{step}` is not a whole number, as in `*/15`"))?;
        if step == 0 {
            return Err("a step of 0 never advances; use a step of 1 or more".into());
        }
        if step > max {
            return Err(format!(
                "step /{step} is larger than the field's range {min}-{max}"
            ));
        }
        if range == "*" {
            return Ok(());
        }
        if range.is_empty() {
            return Err(format!("a step needs a range: write `*/{step}`"));
        }
        if !range.contains('-') {
            let hint = match value(field, range) {
                Ok(start) if start == min => format!("`*/{step}` (every {step} from {min})"),
                Ok(start) if start <= max => format!(
                    "`{start}-{max}/{step}` (every {step} from {start}) or `*/{step}` (every \
                     {step} from {min})"
                ),
                _ => format!("`*/{step}` or a range such as `{min}-{max}/{step}`"),
            };
            return Err(format!(
                "a step needs a range, not a single value: write {hint}"
            ));
        }
        return check_range(field, range).map(|_| ());
    }
    if field == Field::DayOfMonth {
        if upper == "L" || upper == "LW" {
            return Ok(());
        }
        if upper.ends_with('W') {
            let day = number(&item[..item.len() - 1]).ok_or_else(|| {
                "`W` follows a single day of month, as in `15W` (the weekday nearest the 15th)"
                    .to_string()
            })?;
            return check_bounds(field, day);
        }
    }
    if field == Field::DayOfWeek {
        if let Some((day, nth)) = item.split_once('#') {
            let day = value(field, day).map_err(|_| {
                "`#` takes a day of week and a week number, as in `1#2` (the second Monday)"
                    .to_string()
            })?;
            check_bounds(field, day)?;
            return match number(nth) {
                Some(1..=5) => Ok(()),
                _ => Err(format!(
                    "`#{nth}`: the week number after `#` must be 1-5, as in `1#2` (the second Monday)"
                )),
            };
        }
        if upper == "L" {
            return Err(
                "`L` in day-of-week needs a day: `5L` is the last Friday of the month; \
                        for the last day of the month put `L` in day-of-month"
                    .into(),
            );
        }
        // `5L`, `FRIL`: the last Friday. (`JUL` ends in `L` too; the name check below has it.)
        if let Some(Ok(day)) = upper
            .ends_with('L')
            .then(|| value(field, &item[..item.len() - 1]))
        {
            return check_bounds(field, day);
        }
    }
    // A name on its own (`JAN`, `MON`, or a typo): `value` says which field a name belongs in.
    if upper.len() > 2 && upper.bytes().all(|b| b.is_ascii_alphabetic()) {
        return check_bounds(field, value(field, item)?);
    }
    // What is left are numbers, names and ranges of them: an `L`, `W` or `#` outside a name is
    // misplaced.
    let bare = MONTH_NAMES
        .iter()
        .chain(&WEEKDAY_NAMES)
        .fold(upper.clone(), |rest, name| rest.replace(name, ""));
    if field == Field::DayOfMonth && (bare.contains('L') || bare.contains('W')) {
        return Err(
            "`L` (last day of the month), `LW` (last weekday) and `15W` (weekday \
                    nearest the 15th) stand alone in a list item"
                .into(),
        );
    }
    if bare.contains('L') {
        return Err(match field {
            Field::DayOfWeek => {
                "`L` in day-of-week follows a single day, as in `5L` (the last Friday)".to_string()
            }
            _ => "`L` (last) is only allowed in day-of-month, as in `L`, and in day-of-week, as \
                  in `5L`"
                .to_string(),
        });
    }
    if bare.contains('W') {
        return Err("`W` (nearest weekday) is only allowed in day-of-month, as in `15W`".into());
    }
    if item.contains('#') {
        return Err(
            "`#` (nth weekday of the month) is only allowed in day-of-week, as in `1#2` (the \
             second Monday)"
                .into(),
        );
    }
    if item.contains('-') {
        return check_range(field, item).map(|_| ());
    }
    check_bounds(field, value(field, item)?)
}

fn check_range(field: Field, range: &str) -> Result<(u32, u32), String> {
    let (min, max) = field.range();
    let Some((start, end)) = range.split_once('-') else {
        return Err(format!("`{range}` is not a range"));
    };
    if start.is_empty() || end.is_empty() {
        return Err(format!(
            "range `{range}` needs a start and an end, as in `{min}-{max}`"
        ));
    }
    // Suggestions use names if the range does.
    let named = field
        .names()
        .iter()
        .any(|name| name.eq_ignore_ascii_case(start));
    if field == Field::DayOfWeek
        && start.eq_ignore_ascii_case("SUN")
        && end.eq_ignore_ascii_case("SUN")
    {
        // `SUN` ends a range as 7, so `SUN-SUN` would read 0-7: every day.
        return Err(format!(
            "`{range}` would mean every day; for Sundays write `SUN`"
        ));
    }
    let start = value(field, start)?;
    // In day-of-week, `SUN` at the end of a range is 7, so `MON-SUN` runs to Sunday.
    let end = if field == Field::DayOfWeek && end.eq_ignore_ascii_case("SUN") {
        7
    } else {
        value(field, end)?
    };
    check_bounds(field, start)?;
    check_bounds(field, end)?;
    if start > end {
        let label = |v: u32| match field {
            Field::DayOfWeek if named => WEEKDAY_NAMES[v as usize % 7].to_string(),
            Field::Month if named => MONTH_NAMES[v as usize - 1].to_string(),
            _ => v.to_string(),
        };
        let span = |a: u32, b: u32| {
            if a == b {
                label(a)
            } else {
                format!("{}-{}", label(a), label(b))
            }
        };
        let fix = match field {
            // Sunday is both 7 and 0: `7-1` is Sunday to Monday.
            Field::DayOfWeek if start == 7 => format!("write `{}`", span(0, end)),
            // The week wraps after Saturday (6) to Sunday (0).
            Field::DayOfWeek => {
                format!("write it as a list: `{},{}`", span(start, 6), span(0, end))
            }
            _ => format!(
                "write it as a list: `{},{}`",
                span(start, max),
                span(min, end)
            ),
        };
        return Err(format!(
            "range `{range}` runs backwards; ranges do not wrap around, {fix}"
        ));
    }
    Ok((start, end))
}

fn check_bounds(field: Field, value: u32) -> Result<(), String> {
    let (min, max) = field.range();
    if value < min || value > max {
        return Err(format!(
            "{value} is out of range; the {} field takes {}",
            field.name(),
            field.allowed()
        ));
    }
    Ok(())
}

/// A whole number written with digits only (no sign), as cron accepts it.
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A number or (in the month and day-of-week fields) a name, in any case.
fn value(field: Field, text: &str) -> Result<u32, String> {
    if let Some(number) = number(text) {
        return Ok(number);
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{text} is out of range; the {} field takes {}",
            field.name(),
            field.allowed()
        ));
    }
    if let Some(index) = field
        .names()
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
    {
        let first = if field == Field::Month { 1 } else { 0 };
        return Ok(index as u32 + first);
    }
    let is = |names: &[&str]| names.iter().any(|name| name.eq_ignore_ascii_case(text));
    let hint = if is(&WEEKDAY_NAMES) {
        " (day names belong in the day-of-week field, the last one)"
    } else if is(&MONTH_NAMES) {
        " (month names belong in the month field, the fourth of five)"
    } else {
        ""
    };
    Err(format!(
        "`{text}` is not a valid value{hint}; the {} field takes {}",
        field.name(),
        field.allowed()
    ))
}
