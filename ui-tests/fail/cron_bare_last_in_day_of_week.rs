#[fourit::job(schedule = "0 0 * * L")]
async fn report() {}

fn main() {}
