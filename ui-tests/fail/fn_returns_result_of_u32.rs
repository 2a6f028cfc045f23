#[fourit::job(schedule = "0 9 * * *")]
async fn report() -> Result<u32, String> {
    Ok(42)
}

fn main() {}
