#[fourit::job(name = "report")]
async fn report() {}

fn main() {}
