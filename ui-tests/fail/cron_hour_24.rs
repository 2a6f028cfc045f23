#[fourit::job(schedule = "0 24 * * *")]
async fn report() {}

fn main() {}
