#[fourit::job(schedule = "0 0 W * *")]
async fn report() {}

fn main() {}
