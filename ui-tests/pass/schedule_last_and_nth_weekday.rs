// `5L` (the last Friday) and `1#2` (the second Monday) in day-of-week.

use chrono::{DateTime, Utc};

const FORMAT: &str = "%Y-%m-%d %a";

#[fourit::job(schedule = "0 18 * * 5L")]
async fn last_friday() {}

#[fourit::job(schedule = "0 9 * * 1#2")]
async fn second_monday() {}

fn main() {
    assert_eq!(fourit::jobs().unwrap().len(), 2);
    let after = "2026-01-01T00:00:00Z";
    assert_eq!(
        ticks("last_friday", after, 3),
        ["2026-01-30 Fri", "2026-02-27 Fri", "2026-03-27 Fri"]
    );
    assert_eq!(
        ticks("second_monday", after, 3),
        ["2026-01-12 Mon", "2026-02-09 Mon", "2026-03-09 Mon"]
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
