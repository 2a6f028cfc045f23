#[fourit::job(schedule = "0 22-2 * * *")]
async fn report() {}

fn main() {}
