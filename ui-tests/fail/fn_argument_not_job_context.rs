#[fourit::job(schedule = "0 9 * * *")]
async fn report(_count: u32) {}

fn main() {}
