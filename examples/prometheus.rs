//! fourit's metrics served for Prometheus: `fourit` with its `metrics` feature reports
//! through the `metrics` facade, and `metrics-exporter-prometheus` serves them.
//!
//! ```text
//! cargo run --example prometheus            # memory://, metrics on 127.0.0.1:9464
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example prometheus
//! curl -s 127.0.0.1:9464/metrics | grep fourit_
//! ```

use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let listen: SocketAddr = std::env::var("METRICS_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:9464".to_string())
        .parse()?;
    // Installs the recorder and serves GET /metrics (any path) on `listen`.
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .install()?;
    println!("metrics on http://{listen}/metrics");
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "memory://".to_string());
    fourit::Scheduler::builder()
        .url(&url)
        .registered_jobs(false)
        .add_job("every-2s", "*/2 * * * * *", |ctx| async move {
            println!("every-2s tick {}", ctx.tick().format("%H:%M:%S"));
        })
        .add_job("flaky", "*/3 * * * * *", |ctx| async move {
            if ctx.fence().get() % 2 == 0 {
                Err(format!("flaky failed at {}", ctx.tick().format("%H:%M:%S")))
            } else {
                Ok(())
            }
        })
        .build()?
        .run()
        .await?;
    Ok(())
}
