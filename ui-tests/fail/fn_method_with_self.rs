struct Reports;

impl Reports {
    #[fourit::job(schedule = "0 9 * * *")]
    async fn send(&self) {}
}

fn main() {
    let _ = Reports;
}
