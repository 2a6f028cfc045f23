// `timeout` and `grace` durations, in every unit and combined.

use std::time::Duration;

#[fourit::job(schedule = "0 * * * *", timeout = "10m", grace = "90s")]
async fn minutes_and_seconds() {}

#[fourit::job(schedule = "0 * * * *", timeout = "1h30m", grace = "500ms")]
async fn combined_and_millis() {}

#[fourit::job(schedule = "0 0 * * *", timeout = "2d")]
async fn days_no_grace() {}

#[fourit::job(schedule = "0 0 * * *", grace = "1h")]
async fn grace_no_timeout() {}

fn main() {
    let options: Vec<(String, Option<Duration>, Option<Duration>)> = fourit::jobs()
        .unwrap()
        .iter()
        .map(|job| {
            (
                job.name().to_string(),
                job.options().timeout,
                job.options().grace,
            )
        })
        .collect();
    let secs = |s: u64| Some(Duration::from_secs(s));
    assert_eq!(
        options,
        [
            (
                "combined_and_millis".to_string(),
                secs(5400),
                Some(Duration::from_millis(500))
            ),
            ("days_no_grace".to_string(), secs(2 * 86_400), None),
            ("grace_no_timeout".to_string(), None, secs(3600)),
            ("minutes_and_seconds".to_string(), secs(600), secs(90)),
        ]
    );
}
