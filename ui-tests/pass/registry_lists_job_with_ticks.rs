// The registry lists an attributed job with its options, and its ticks follow the time zone,
// daylight saving included.

use chrono::{DateTime, Utc};

#[fourit::job(schedule = "0 9 * * MON-FRI", tz = "Europe/Berlin")]
async fn morning() {}

fn ticks(job: &fourit::Job, after: &str, n: usize) -> Vec<String> {
    let after: DateTime<Utc> = after.parse().unwrap();
    job.schedule()
        .upcoming(after)
        .take(n)
        .map(|tick| tick.format("%Y-%m-%dT%H:%MZ").to_string())
        .collect()
}

fn main() {
    let jobs = fourit::jobs().unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.name(), "morning");
    assert_eq!(job.schedule().as_str(), "0 9 * * MON-FRI");
    assert_eq!(job.schedule().timezone().name(), "Europe/Berlin");
    assert_eq!(
        job.schedule().to_string(),
        "0 9 * * MON-FRI (Europe/Berlin)"
    );
    assert_eq!(job.options().overlap, fourit::Overlap::Skip);
    assert_eq!(job.options().timeout, None);
    assert_eq!(job.options().grace, None);
    assert!(
        job.location()
            .file
            .ends_with("registry_lists_job_with_ticks.rs")
    );
    assert_eq!(job.location().line, 7);

    // Friday noon in winter (CET, UTC+1): Monday to Wednesday at 08:00 UTC.
    assert_eq!(
        ticks(job, "2026-11-27T12:00:00Z", 3),
        [
            "2026-11-30T08:00Z",
            "2026-12-01T08:00Z",
            "2026-12-02T08:00Z"
        ]
    );
    // Berlin moves to CEST (UTC+2) on Sunday 2026-03-29: the Monday after runs at 07:00 UTC.
    assert_eq!(
        ticks(job, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-30T07:00Z",
            "2026-03-31T07:00Z",
            "2026-04-01T07:00Z"
        ]
    );
    // And back to CET on Sunday 2026-10-25.
    assert_eq!(
        ticks(job, "2026-10-23T12:00:00Z", 2),
        ["2026-10-26T08:00Z", "2026-10-27T08:00Z"]
    );
    // A tick is strictly after the instant given.
    assert_eq!(ticks(job, "2026-11-30T08:00:00Z", 1), ["2026-12-01T08:00Z"]);
}
