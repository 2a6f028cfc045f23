#[fourit::job(schedule = "0 9 * * *")]
async unsafe fn report() {}

fn main() {}
