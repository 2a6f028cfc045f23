//! A user's own `tracing` events inside a job body carry the run's span: job, tick, node and
//! fence, also after the body has awaited.

use std::time::Duration;

use fourit::{JobContext, Scheduler};
use fourit_tests::faults::LogBuffer;

#[tokio::test]
async fn events_inside_a_job_body_carry_the_job_tick_node_and_fence() {
    let logs = LogBuffer::default();
    let _capture = logs.install();
    let scheduler = Scheduler::builder()
        .url("memory://")
        .registered_jobs(false)
        .node_id("span-node")
        .add_job("spanned", "* * * * * *", |ctx: JobContext| async move {
            tokio::task::yield_now().await;
            tracing::info!(tick_ms = ctx.tick().timestamp_millis(), "inside the body");
        })
        .build()
        .unwrap_or_else(|err| panic!("build: {err}"));
    let handle = scheduler.handle();
    let running = tokio::spawn(scheduler.run_until(std::future::pending()));
    logs.wait_until(Duration::from_secs(10), "an event from the body", |text| {
        text.contains("inside the body")
    })
    .await;
    handle.stop();
    running
        .await
        .unwrap_or_else(|err| panic!("scheduler task: {err}"))
        .unwrap_or_else(|err| panic!("run: {err}"));
    let text = logs.text();
    let line = text
        .lines()
        .find(|line| line.contains("inside the body"))
        .unwrap_or_else(|| panic!("no event from the body in:\n{text}"));
    for field in ["job=\"spanned\"", "tick=", "node=span-node", "fence=1"] {
        assert!(line.contains(field), "`{field}` missing from: {line}");
    }
}
