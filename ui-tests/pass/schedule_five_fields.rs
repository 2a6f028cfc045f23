// Five fields, and the defaults of every option.

use chrono::{DateTime, Utc};

#[fourit::job(schedule = "*/15 * * * *")]
async fn quarterly() {}

fn main() {
    let jobs = fourit::jobs().unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.name(), "quarterly");
    assert_eq!(job.schedule().as_str(), "*/15 * * * *");
    assert_eq!(job.schedule().timezone().name(), "UTC");
    assert_eq!(job.schedule().to_string(), "*/15 * * * *");
    assert_eq!(job.options().overlap, fourit::Overlap::Skip);
    assert_eq!(job.options().timeout, None);
    assert_eq!(job.options().grace, None);
    assert!(job.location().file.ends_with("schedule_five_fields.rs"));
    assert_eq!(job.location().line, 6);

    let after: DateTime<Utc> = "2026-01-01T00:07:00Z".parse().unwrap();
    let ticks: Vec<String> = job
        .schedule()
        .upcoming(after)
        .take(4)
        .map(|tick| tick.format("%H:%M:%S").to_string())
        .collect();
    assert_eq!(ticks, ["00:15:00", "00:30:00", "00:45:00", "01:00:00"]);
}
