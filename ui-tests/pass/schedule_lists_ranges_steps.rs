// Lists, ranges, steps over `*` and over ranges, and day-of-month OR day-of-week.

use chrono::{DateTime, Utc};

const FORMAT: &str = "%Y-%m-%d %H:%M %a";

#[fourit::job(schedule = "0,30 9-17/4 * * 1-5")]
async fn office_hours() {}

#[fourit::job(schedule = "0 0 1-10/3,20 * *")]
async fn some_days() {}

#[fourit::job(schedule = "0 0 13 * FRI")]
async fn thirteenth_or_friday() {}

fn main() {
    assert_eq!(fourit::jobs().unwrap().len(), 3);
    // Friday 2026-11-27, 12:00: hours 9, 13 and 17, on the hour and half past, Monday to Friday.
    assert_eq!(
        ticks("office_hours", "2026-11-27T12:00:00Z", 5),
        [
            "2026-11-27 13:00 Fri",
            "2026-11-27 13:30 Fri",
            "2026-11-27 17:00 Fri",
            "2026-11-27 17:30 Fri",
            "2026-11-30 09:00 Mon",
        ]
    );
    assert_eq!(
        ticks("some_days", "2026-01-01T12:00:00Z", 5),
        [
            "2026-01-04 00:00 Sun",
            "2026-01-07 00:00 Wed",
            "2026-01-10 00:00 Sat",
            "2026-01-20 00:00 Tue",
            "2026-02-01 00:00 Sun",
        ]
    );
    // Vixie cron: with both day fields restricted, either one matching is enough.
    assert_eq!(
        ticks("thirteenth_or_friday", "2026-11-10T00:00:00Z", 3),
        [
            "2026-11-13 00:00 Fri",
            "2026-11-20 00:00 Fri",
            "2026-11-27 00:00 Fri"
        ]
    );
    assert_eq!(
        ticks("thirteenth_or_friday", "2026-12-10T00:00:00Z", 2),
        ["2026-12-11 00:00 Fri", "2026-12-13 00:00 Sun"]
    );
}

fn ticks(name: &str, after: &str, n: usize) -> Vec<String> {
    let jobs = fourit::jobs().unwrap();
    let job = jobs.iter().find(|job| job.name() == name).unwrap();
    let after: DateTime<Utc> = after.parse().unwrap();
    job.schedule()
        .upcoming(after)
        .take(n)
        .map(|tick| tick.format(FORMAT).to_string())
        .collect()
}
