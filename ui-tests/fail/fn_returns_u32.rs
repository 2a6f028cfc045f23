#[fourit::job(schedule = "0 9 * * *")]
async fn report() -> u32 {
    42
}

fn main() {}
