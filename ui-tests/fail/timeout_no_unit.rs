#[fourit::job(schedule = "0 9 * * *", timeout = "90")]
async fn report() {}

fn main() {}
