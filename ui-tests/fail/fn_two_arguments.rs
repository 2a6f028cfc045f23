#[fourit::job(schedule = "0 9 * * *")]
async fn report(_ctx: fourit::JobContext, _retries: u32) {}

fn main() {}
