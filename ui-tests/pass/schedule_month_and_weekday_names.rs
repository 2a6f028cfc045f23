// Month and day names, in ranges and lists, in any case.

use chrono::{DateTime, Utc};

const FORMAT: &str = "%Y-%m-%d %H:%M %a";

#[fourit::job(schedule = "0 9 * * MON-FRI")]
async fn weekdays() {}

#[fourit::job(schedule = "0 0 1 JAN,JUL *")]
async fn half_yearly() {}

#[fourit::job(schedule = "30 8 * * sat,sun")]
async fn weekends() {}

#[fourit::job(schedule = "0 12 * * MON-SUN")]
async fn monday_to_sunday() {}

fn main() {
    assert_eq!(fourit::jobs().unwrap().len(), 4);
    // 2026-11-27 is a Friday.
    assert_eq!(
        ticks("weekdays", "2026-11-27T12:00:00Z", 3),
        [
            "2026-11-30 09:00 Mon",
            "2026-12-01 09:00 Tue",
            "2026-12-02 09:00 Wed"
        ]
    );
    assert_eq!(
        ticks("half_yearly", "2026-03-01T00:00:00Z", 3),
        [
            "2026-07-01 00:00 Wed",
            "2027-01-01 00:00 Fri",
            "2027-07-01 00:00 Thu"
        ]
    );
    assert_eq!(
        ticks("weekends", "2026-11-27T12:00:00Z", 3),
        [
            "2026-11-28 08:30 Sat",
            "2026-11-29 08:30 Sun",
            "2026-12-05 08:30 Sat"
        ]
    );
    // `SUN` ends a range as 7, so MON-SUN is the whole week.
    assert_eq!(
        ticks("monday_to_sunday", "2026-11-27T13:00:00Z", 7).len(),
        7
    );
    assert_eq!(
        ticks("monday_to_sunday", "2026-11-28T13:00:00Z", 2),
        ["2026-11-29 12:00 Sun", "2026-11-30 12:00 Mon"]
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
