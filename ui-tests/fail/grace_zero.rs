#[fourit::job(schedule = "0 9 * * *", grace = "0s")]
async fn report() {}

fn main() {}
