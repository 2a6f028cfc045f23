//! Unit tests of the option checks.

use std::time::Duration;

use super::{check_name, parse_duration, parse_tz};

#[test]
fn durations_combine_units() {
    let ok = |text: &str| parse_duration(text).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(ok("90s"), Duration::from_secs(90));
    assert_eq!(ok("10m"), Duration::from_secs(600));
    assert_eq!(ok("1h30m"), Duration::from_secs(5400));
    assert_eq!(ok("2d"), Duration::from_secs(172_800));
    assert_eq!(ok("500ms"), Duration::from_millis(500));
    assert_eq!(ok("1m30s250ms"), Duration::from_millis(90_250));
}

#[test]
fn bad_durations_say_what_to_write() {
    for text in ["", "90", "5 min", "0s", "s", "99999999999999999999s"] {
        let err = parse_duration(text).err().unwrap_or_default();
        assert!(
            err.starts_with(&format!("invalid duration `{text}`: ")),
            "{text:?}: {err}"
        );
        assert!(err.contains("e.g. \"90s\""), "{text:?}: {err}");
    }
}

#[test]
fn names_refuse_what_breaks_redis_keys_or_logs() {
    assert!(check_name("report").is_ok());
    assert!(check_name("billing.nightly-export_v2").is_ok());
    assert!(check_name("").is_err());
    assert!(check_name(&"x".repeat(201)).is_err());
    assert!(check_name(&"x".repeat(200)).is_ok());
    for bad in ["a b", "a\tb", "a{b", "a}b", "a\u{7}b"] {
        assert!(check_name(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn time_zones_suggest_the_closest_name() {
    assert!(parse_tz("Europe/Berlin").is_ok());
    assert_eq!(
        parse_tz("europe/berlin").err().as_deref(),
        Some("unknown time zone `europe/berlin`; did you mean \"Europe/Berlin\"?")
    );
    let far = parse_tz("Mars/Olympus").err().unwrap_or_default();
    assert!(far.contains("use an IANA name"), "{far}");
}

#[test]
fn a_field_croner_refuses_after_fourits_checks_is_named_with_the_fix() {
    use croner::parser::{CronParser, Seconds, Year};
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    let fields = super::field::FIVE;
    let message = super::cron::croner_refusal(
        &parser,
        &fields,
        &["0", "0", "*", "*", "banana"],
        "Component error: Invalid number.",
    );
    assert!(
        message.starts_with(
            "day-of-week field `banana`: not understood (Component error: Invalid number.); \
             write values, ranges"
        ),
        "{message}"
    );
    assert!(
        message.contains("the day-of-week field takes 0-7 or SUN-SAT"),
        "{message}"
    );
}

#[test]
fn names_refuse_invisible_characters_that_impersonate() {
    for bad in [
        "report\u{202e}cod",
        "rep\u{200b}ort",
        "\u{2066}report\u{2069}",
        "report\u{feff}",
    ] {
        let reason = check_name(bad).err().unwrap_or_default();
        assert!(reason.contains("invisible character"), "{bad:?}: {reason}");
    }
    assert!(super::check_identifier("node id", "node\u{200d}a").is_err());
    assert!(
        check_name("rapport-été").is_ok(),
        "visible non-ASCII stays allowed"
    );
}
