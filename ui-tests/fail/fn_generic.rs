#[fourit::job(schedule = "0 9 * * *")]
async fn report<T: Default>() {}

fn main() {}
