#[fourit::job(schedule = "0 9 * MON *")]
async fn report() {}

fn main() {}
