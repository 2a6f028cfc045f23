#[fourit::job(schedule = "0 0 1 13 *")]
async fn report() {}

fn main() {}
