#[fourit::job(schedule = "0/15 * * * *")]
async fn report() {}

fn main() {}
