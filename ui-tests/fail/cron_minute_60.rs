#[fourit::job(schedule = "60 * * * *")]
async fn report() {}

fn main() {}
