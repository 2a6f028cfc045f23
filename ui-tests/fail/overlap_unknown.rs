#[fourit::job(schedule = "0 9 * * *", overlap = "queue")]
async fn report() {}

fn main() {}
