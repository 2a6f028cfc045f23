#[fourit::job(schedule = "0 0 0 * *")]
async fn report() {}

fn main() {}
