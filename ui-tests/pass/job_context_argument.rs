// A job may take a `JobContext`, written with its full path or imported.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, Utc};
use fourit::{FenceToken, JobContext};

#[fourit::job(schedule = "0 * * * *")]
async fn full_path(ctx: fourit::JobContext) -> Result<(), String> {
    check(&ctx, "full_path")
}

#[fourit::job(schedule = "0 * * * *")]
async fn imported(ctx: JobContext) -> Result<(), String> {
    check(&ctx, "imported")
}

#[fourit::job(schedule = "0 * * * *")]
async fn ignored(_: JobContext) {}

fn check(ctx: &JobContext, job: &str) -> Result<(), String> {
    if ctx.job() != job {
        return Err(format!("ctx.job() is {:?}, not {job:?}", ctx.job()));
    }
    if ctx.fence() != FenceToken(7) || ctx.node() != "node-a" || ctx.tick() != tick() {
        return Err(format!("unexpected context {ctx:?}"));
    }
    Ok(())
}

fn tick() -> DateTime<Utc> {
    "2026-05-04T03:00:00Z".parse().unwrap()
}

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
    let jobs = fourit::jobs().unwrap();
    assert_eq!(jobs.len(), 3);
    for job in &jobs {
        let ctx = JobContext::new(job.name(), tick(), FenceToken(7), "node-a");
        assert_eq!(block_on(job.call(ctx)), Ok(()), "job {}", job.name());
    }
}
