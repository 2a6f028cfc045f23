#[fourit::job(schedule = "0 0 30 2 *")]
async fn report() {}

fn main() {}
