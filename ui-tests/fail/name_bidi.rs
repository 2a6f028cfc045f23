#[fourit::job(schedule = "0 9 * * *", name = "report\u{202e}cod")]
async fn report() {}

fn main() {}
