// `overlap = "skip"` (the default) and `overlap = "allow"`.

use fourit::Overlap;

#[fourit::job(schedule = "* * * * *", overlap = "allow")]
async fn concurrent() {}

#[fourit::job(schedule = "* * * * *", overlap = "skip")]
async fn exclusive() {}

#[fourit::job(schedule = "* * * * *")]
async fn default_policy() {}

fn main() {
    let policies: Vec<(String, Overlap)> = fourit::jobs()
        .unwrap()
        .iter()
        .map(|job| (job.name().to_string(), job.options().overlap))
        .collect();
    assert_eq!(
        policies,
        [
            ("concurrent".to_string(), Overlap::Allow),
            ("default_policy".to_string(), Overlap::Skip),
            ("exclusive".to_string(), Overlap::Skip),
        ]
    );
    assert_eq!(Overlap::Allow.as_str(), "allow");
}
