#[fourit::job(schedule = "0 0 1 * +MON")]
async fn report() {}

fn main() {}
