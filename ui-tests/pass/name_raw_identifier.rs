// A raw identifier names the job without its `r#`.

#[fourit::job(schedule = "0 0 * * *")]
async fn r#type() {}

#[fourit::job(schedule = "0 0 * * *")]
async fn r#move() {}

fn main() {
    let names: Vec<String> = fourit::jobs()
        .unwrap()
        .iter()
        .map(|job| job.name().to_string())
        .collect();
    assert_eq!(names, ["move", "type"]);
    // The function itself is unchanged.
    let _ = r#type();
}
