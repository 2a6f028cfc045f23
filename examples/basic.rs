#[fourit::job(schedule = "0 9 * * MON-FRI", tz = "Europe/Berlin")]
async fn morning() {}

#[fourit::job(
    schedule = "*/5 * * * * *",
    name = "five",
    timeout = "1h30m",
    overlap = "allow"
)]
async fn with_ctx(ctx: fourit::JobContext) -> Result<(), std::io::Error> {
    let _ = ctx.tick();
    Ok(())
}

fn main() {
    let now = chrono::Utc::now();
    for job in fourit::jobs().unwrap() {
        println!(
            "{job:?} {:?}",
            job.schedule().upcoming(now).take(3).collect::<Vec<_>>()
        );
    }
}
