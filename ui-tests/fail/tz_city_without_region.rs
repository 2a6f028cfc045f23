#[fourit::job(schedule = "0 9 * * *", tz = "Berlin")]
async fn report() {}

fn main() {}
