//! What a job's options may say, and the messages for what they may not.
//!
//! This one folder is compiled into both `fourit` (run time) and `fourit-macros` (compile time,
//! through `#[path]`), so a schedule accepted by the attribute is accepted by
//! [`Schedule::parse`](crate::Schedule::parse) and every message reads the same in both places.
//! It depends only on `croner`, `chrono` and `chrono-tz`.

use std::time::Duration;

mod cron;
mod field;

pub use self::cron::parse_cron;

/// Longest job name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 200;

/// Checks a job name: not empty, at most [`MAX_NAME_LEN`] bytes, no whitespace, control
/// characters or braces (they delimit Redis Cluster hash tags).
pub fn check_name(name: &str) -> Result<(), String> {
    check_identifier("job name", name)
}

/// Checks a name used in coordinator keys (`what` says which: "job name", "namespace",
/// "node id") by the rules of [`check_name`].
pub fn check_identifier(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("invalid {what}: it is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "invalid {what}: it is {} bytes long, the limit is {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(bad) = name.chars().find(|c| invisible(*c)) {
        return Err(format!(
            "invalid {what} `{}`: it contains the invisible character U+{:04X} (a bidi \
             control or a zero-width character), with which a name can look like another",
            name.escape_debug(),
            u32::from(bad)
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '{' || *c == '}')
    {
        return Err(format!(
            "invalid {what} `{}`: it contains {}; names may not contain whitespace, control \
             characters, `{{` or `}}`",
            name.escape_debug(),
            match bad {
                '{' | '}' => format!("`{bad}` (braces delimit Redis Cluster hash tags)"),
                c if c.is_whitespace() => format!("whitespace ({:?})", c),
                c => format!("a control character ({:?})", c),
            }
        ));
    }
    Ok(())
}

/// Bidi controls (embeddings, overrides, isolates, marks), zero-width characters and the
/// other characters Unicode draws as nothing (default-ignorable: the soft hyphen, variation
/// selectors, Hangul fillers, tags, ...): they change how a name is drawn or read without
/// being seen. Names holding one are refused; text from the fleet shows them escaped.
pub(crate) fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{061c}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{17b4}'
            | '\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffb}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// Parses a duration written as `90s`, `10m`, `1h30m`, `2d` or `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let fail = |why: &str| {
        format!(
            "invalid duration `{text}`: {why}; write a number and a unit (ms, s, m, h, d), \
             e.g. \"90s\", \"10m\" or \"1h30m\""
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(fail("it is empty"));
    }
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail(&format!("expected a number at `{rest}`")));
        }
        let digits_text = &rest[..digits];
        let number: u64 = digits_text
            .parse()
            .map_err(|_| fail("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(fail(&format!("`{digits_text}` has no unit"))),
            unit => return Err(fail(&format!("unknown unit `{unit}`"))),
        };
        rest = &rest[unit_len..];
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| fail("it is too long"))?;
    }
    if total_ms == 0 {
        return Err(fail("it is zero"));
    }
    Ok(Duration::from_millis(total_ms))
}

/// Looks a time zone up in the IANA database, suggesting the closest name on a miss.
pub fn parse_tz(name: &str) -> Result<chrono_tz::Tz, String> {
    if let Ok(tz) = name.parse::<chrono_tz::Tz>() {
        return Ok(tz);
    }
    if name.trim().is_empty() {
        return Err(
            "the time zone is empty; use an IANA name such as \"Europe/Berlin\", or leave `tz` \
             out for UTC"
                .to_string(),
        );
    }
    let wanted = name.to_ascii_lowercase();
    let closest = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| {
            (
                edit_distance(&wanted, &tz.name().to_ascii_lowercase()),
                tz.name(),
            )
        })
        .min();
    // A city alone (`Berlin`) names the zone it ends (`Europe/Berlin`).
    let city = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| tz.name())
        .find(|candidate| {
            candidate
                .rsplit_once('/')
                .is_some_and(|(_, last)| last.eq_ignore_ascii_case(name))
        });
    let hint = match (city, closest) {
        (Some(candidate), _) => format!("; did you mean \"{candidate}\"?"),
        (None, Some((distance, candidate))) if distance <= (name.len() / 3).max(2) => {
            format!("; did you mean \"{candidate}\"?")
        }
        (None, _) => {
            "; use an IANA name such as \"Europe/Berlin\" or \"America/New_York\"".to_string()
        }
    };
    Err(format!("unknown time zone `{name}`{hint}"))
}

/// Levenshtein distance, for time-zone (and, in the macro, option-name) suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
