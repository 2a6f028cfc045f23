#[fourit::job(schedule = "*/0 * * * *")]
async fn report() {}

fn main() {}
