#[fourit::job(schedule = "0 0 * * 1#6")]
async fn report() {}

fn main() {}
