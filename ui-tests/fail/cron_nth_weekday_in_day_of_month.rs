#[fourit::job(schedule = "0 0 1#2 * *")]
async fn report() {}

fn main() {}
