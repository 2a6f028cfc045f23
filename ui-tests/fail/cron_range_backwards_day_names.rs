#[fourit::job(schedule = "0 9 * * FRI-MON")]
async fn report() {}

fn main() {}
