#[fourit::job]
async fn report() {}

fn main() {}
