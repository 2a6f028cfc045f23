#[fourit::job(schedule = "0 9 * * *", tz = "Mars/Olympus")]
async fn report() {}

fn main() {}
