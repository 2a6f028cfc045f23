#[fourit::job(schedule = "0 9 * * *", timezone = "Europe/Berlin")]
async fn report() {}

fn main() {}
