#[fourit::job(schedule = "*/x * * * *")]
async fn report() {}

fn main() {}
