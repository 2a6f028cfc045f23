#[fourit::job(schedule = "*,5 * * * *")]
async fn report() {}

fn main() {}
