// Every nickname, and what it stands for.

use chrono::{DateTime, Utc};

const FORMAT: &str = "%Y-%m-%d %H:%M";

#[fourit::job(schedule = "@yearly")]
async fn yearly() {}

#[fourit::job(schedule = "@annually")]
async fn annually() {}

#[fourit::job(schedule = "@monthly")]
async fn monthly() {}

#[fourit::job(schedule = "@weekly")]
async fn weekly() {}

#[fourit::job(schedule = "@daily")]
async fn daily() {}

#[fourit::job(schedule = "@hourly")]
async fn hourly() {}

fn main() {
    let names: Vec<String> = fourit::jobs()
        .unwrap()
        .iter()
        .map(|job| format!("{} {}", job.name(), job.schedule()))
        .collect();
    // Sorted by name; the schedule is kept as written.
    assert_eq!(
        names,
        [
            "annually @annually",
            "daily @daily",
            "hourly @hourly",
            "monthly @monthly",
            "weekly @weekly",
            "yearly @yearly",
        ]
    );
    // 2026-03-14 is a Saturday.
    let after = "2026-03-14T10:30:00Z";
    assert_eq!(
        ticks("yearly", after, 2),
        ["2027-01-01 00:00", "2028-01-01 00:00"]
    );
    assert_eq!(
        ticks("annually", after, 2),
        ["2027-01-01 00:00", "2028-01-01 00:00"]
    );
    assert_eq!(
        ticks("monthly", after, 2),
        ["2026-04-01 00:00", "2026-05-01 00:00"]
    );
    assert_eq!(
        ticks("weekly", after, 2),
        ["2026-03-15 00:00", "2026-03-22 00:00"]
    );
    assert_eq!(
        ticks("daily", after, 2),
        ["2026-03-15 00:00", "2026-03-16 00:00"]
    );
    assert_eq!(
        ticks("hourly", after, 2),
        ["2026-03-14 11:00", "2026-03-14 12:00"]
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
