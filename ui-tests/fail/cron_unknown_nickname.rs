#[fourit::job(schedule = "@reboot")]
async fn report() {}

fn main() {}
