// `tz` takes an IANA name; the default is UTC.

use chrono::{DateTime, Utc};

#[fourit::job(schedule = "0 9 * * *", tz = "America/New_York")]
async fn new_york() {}

#[fourit::job(schedule = "0 9 * * *", tz = "Asia/Kolkata")]
async fn kolkata() {}

#[fourit::job(schedule = "0 9 * * *", tz = "UTC")]
async fn utc() {}

fn next(name: &str) -> String {
    let jobs = fourit::jobs().unwrap();
    let job = jobs.iter().find(|job| job.name() == name).unwrap();
    let after: DateTime<Utc> = "2026-07-01T00:00:00Z".parse().unwrap();
    let tick = job.schedule().next_after(after).unwrap();
    format!(
        "{} {}",
        job.schedule().timezone().name(),
        tick.format("%m-%d %H:%M")
    )
}

fn main() {
    // 09:00 local time, in UTC: New York is at UTC-4 in July, Kolkata at UTC+5:30.
    assert_eq!(next("new_york"), "America/New_York 07-01 13:00");
    assert_eq!(next("kolkata"), "Asia/Kolkata 07-01 03:30");
    assert_eq!(next("utc"), "UTC 07-01 09:00");
}
