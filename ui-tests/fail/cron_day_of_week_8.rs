#[fourit::job(schedule = "0 0 * * 8")]
async fn report() {}

fn main() {}
