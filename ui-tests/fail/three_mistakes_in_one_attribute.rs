#[fourit::job(schedule = "0 25 * * *", tz = "Europe/Berln", timeout = "90")]
async fn report() {}

fn main() {}
