#[fourit::job(schedule = "0 9 * * FOO")]
async fn report() {}

fn main() {}
