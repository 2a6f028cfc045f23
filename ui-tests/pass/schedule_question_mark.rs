// `?` means "any" in day-of-month and day-of-week.

use chrono::{DateTime, Utc};

const FORMAT: &str = "%Y-%m-%d %H:%M %a";

#[fourit::job(schedule = "0 12 ? * MON")]
async fn mondays() {}

#[fourit::job(schedule = "0 6 1 * ?")]
async fn first_of_month() {}

fn main() {
    assert_eq!(fourit::jobs().unwrap().len(), 2);
    assert_eq!(
        ticks("mondays", "2026-11-27T12:00:00Z", 2),
        ["2026-11-30 12:00 Mon", "2026-12-07 12:00 Mon"]
    );
    assert_eq!(
        ticks("first_of_month", "2026-11-27T12:00:00Z", 2),
        ["2026-12-01 06:00 Tue", "2027-01-01 06:00 Fri"]
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
