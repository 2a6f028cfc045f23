#[fourit::job(schedule = "0 9 * * *", timeout = "10min")]
async fn report() {}

fn main() {}
