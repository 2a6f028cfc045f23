#[fourit::job(schedule = "0 9 * * *", name = "")]
async fn report() {}

fn main() {}
