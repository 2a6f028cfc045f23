#[fourit::job(schedule = "0 9 * * *", tz = "Europe/Berln")]
async fn report() {}

fn main() {}
