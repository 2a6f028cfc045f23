#[fourit::job(schedule = "0 0 0 * * * 2026")]
async fn report() {}

fn main() {}
