// A job is named after its function unless `name` says otherwise.

#[fourit::job(schedule = "0 3 * * *")]
async fn nightly_cleanup() {}

#[fourit::job(schedule = "0 4 * * *", name = "billing:invoices/eu-west.v2")]
async fn invoices() {}

fn main() {
    let names: Vec<String> = fourit::jobs()
        .unwrap()
        .iter()
        .map(|job| job.name().to_string())
        .collect();
    assert_eq!(names, ["billing:invoices/eu-west.v2", "nightly_cleanup"]);
}
