#[fourit::job(schedule = "0 9 * * *", name = "daily report")]
async fn report() {}

fn main() {}
