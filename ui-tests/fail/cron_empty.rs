#[fourit::job(schedule = "")]
async fn report() {}

fn main() {}
