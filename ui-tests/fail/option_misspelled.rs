#[fourit::job(shedule = "0 9 * * *")]
async fn report() {}

fn main() {}
