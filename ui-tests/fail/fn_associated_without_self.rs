struct Reports;

impl Reports {
    #[fourit::job(schedule = "0 9 * * *")]
    async fn send() {}
}

fn main() {
    let _ = Reports;
}
