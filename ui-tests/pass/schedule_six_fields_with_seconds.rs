// Six fields: the first is the second.

use chrono::{DateTime, Utc};

const FORMAT: &str = "%H:%M:%S";

#[fourit::job(schedule = "*/20 * * * * *")]
async fn every_twenty_seconds() {}

#[fourit::job(schedule = "30 0 12 * * *")]
async fn half_a_minute_past_noon() {}

fn main() {
    assert_eq!(fourit::jobs().unwrap().len(), 2);
    assert_eq!(
        ticks("every_twenty_seconds", "2026-01-01T00:00:00Z", 4),
        ["00:00:20", "00:00:40", "00:01:00", "00:01:20"]
    );
    assert_eq!(
        ticks("half_a_minute_past_noon", "2026-01-01T00:00:00Z", 1),
        ["12:00:30"]
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
