#[fourit::job(schedule = "0 9 * * *")]
unsafe async fn report() {}

fn main() {}
