#[fourit::job(schedule = "0 9 * * *", schedule = "0 10 * * *")]
async fn report() {}

fn main() {}
