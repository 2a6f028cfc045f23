#[fourit::job(schedule = "0 0 32 * *")]
async fn report() {}

fn main() {}
