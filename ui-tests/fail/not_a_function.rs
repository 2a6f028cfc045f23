#[fourit::job(schedule = "0 9 * * *")]
struct Report;

fn main() {}
