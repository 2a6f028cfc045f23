#[fourit::job(schedule = "0 9 * * *")]
fn report() {}

fn main() {}
