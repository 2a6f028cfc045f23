#[fourit::job(schedule = "0 9 * * *", crate = "my app")]
async fn report() {}

fn main() {}
