// `Job::call` runs the body; an `Err` comes back as the error's text. `Result<(), E>` works for
// any `E: Display`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use fourit::{FenceToken, JobContext};

#[fourit::job(schedule = "0 * * * *")]
async fn fails_with_string() -> Result<(), String> {
    Err("the report server said no".to_string())
}

#[fourit::job(schedule = "0 * * * *")]
async fn fails_with_io_error() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("disk full"))
}

#[fourit::job(schedule = "0 * * * *")]
async fn succeeds() -> Result<(), std::io::Error> {
    Ok(())
}

#[fourit::job(schedule = "0 * * * *")]
async fn returns_unit() -> () {}

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

fn main() {
    let outcomes: Vec<(String, fourit::job::JobResult)> = fourit::jobs()
        .unwrap()
        .iter()
        .map(|job| {
            let ctx = JobContext::new(job.name(), chrono::Utc::now(), FenceToken(1), "test");
            (job.name().to_string(), block_on(job.call(ctx)))
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                "fails_with_io_error".to_string(),
                Err("disk full".to_string())
            ),
            (
                "fails_with_string".to_string(),
                Err("the report server said no".to_string())
            ),
            ("returns_unit".to_string(), Ok(())),
            ("succeeds".to_string(), Ok(())),
        ]
    );
}
