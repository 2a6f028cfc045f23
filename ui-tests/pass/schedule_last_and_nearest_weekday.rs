// `L`, `LW` and `15W` in day-of-month.

use chrono::{DateTime, Utc};

const FORMAT: &str = "%Y-%m-%d %a";

#[fourit::job(schedule = "0 0 L * *")]
async fn last_day() {}

#[fourit::job(schedule = "0 0 LW * *")]
async fn last_weekday() {}

#[fourit::job(schedule = "0 0 15W * *")]
async fn weekday_nearest_the_15th() {}

fn main() {
    assert_eq!(fourit::jobs().unwrap().len(), 3);
    let after = "2026-01-31T12:00:00Z";
    assert_eq!(
        ticks("last_day", after, 3),
        ["2026-02-28 Sat", "2026-03-31 Tue", "2026-04-30 Thu"]
    );
    // 2026-02-28 is a Saturday: the last weekday of February is Friday the 27th.
    assert_eq!(
        ticks("last_weekday", after, 3),
        ["2026-02-27 Fri", "2026-03-31 Tue", "2026-04-30 Thu"]
    );
    // The 15th of February and of March 2026 are Sundays: the nearest weekday is Monday.
    assert_eq!(
        ticks("weekday_nearest_the_15th", after, 3),
        ["2026-02-16 Mon", "2026-03-16 Mon", "2026-04-15 Wed"]
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
