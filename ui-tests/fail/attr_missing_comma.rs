#[fourit::job(schedule = "0 9 * * *" name = "report")]
async fn report() {}

fn main() {}
