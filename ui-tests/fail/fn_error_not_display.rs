#[derive(Debug)]
struct ReportError;

#[fourit::job(schedule = "0 9 * * *")]
async fn report() -> Result<(), ReportError> {
    Err(ReportError)
}

fn main() {}
