#[fourit::job(schedule = "0 9 * * *", name = "report{eu}")]
async fn report() {}

fn main() {}
