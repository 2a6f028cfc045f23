#[fourit::job(schedule = "0 9 * * *")]
async fn report()
where
    String: Clone,
{
}

fn main() {}
