#[fourit::job(schedule = "0 9 * * *", tz = "")]
async fn report() {}

fn main() {}
