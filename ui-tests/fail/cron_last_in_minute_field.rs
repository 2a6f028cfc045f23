#[fourit::job(schedule = "L * * * *")]
async fn report() {}

fn main() {}
