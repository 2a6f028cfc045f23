// A `pub` job in a module stays callable as a plain function.

mod jobs {
    #[fourit::job(schedule = "*/5 * * * *")]
    pub async fn report() -> Result<(), String> {
        Ok(())
    }

    #[fourit::job(schedule = "0 * * * *")]
    pub(crate) async fn hourly() {}
}

fn main() {
    let names: Vec<String> = fourit::jobs()
        .unwrap()
        .iter()
        .map(|job| format!("{} {}", job.name(), job.location().line))
        .collect();
    assert_eq!(names, ["hourly 10", "report 5"]);
    let _report = jobs::report();
    let _hourly = jobs::hourly();
}
