#[fourit::job(schedule = "0 0 * * 1W")]
async fn report() {}

fn main() {}
