// `crate = "..."` for code that reaches fourit through a re-export, as a framework built on
// fourit would offer it to its users.

mod re {
    pub use fourit;
}

#[re::fourit::job(schedule = "0 9 * * *", crate = "re::fourit")]
async fn through_reexport(ctx: re::fourit::JobContext) {
    let _ = ctx;
}

mod nested {
    #[crate::re::fourit::job(schedule = "0 10 * * *", crate = "crate::re::fourit")]
    async fn absolute_path() {}
}

fn main() {
    let jobs = re::fourit::jobs().unwrap();
    let names: Vec<&str> = jobs.iter().map(|job| job.name()).collect();
    assert_eq!(names, ["absolute_path", "through_reexport"]);
}
