//! The README's example: two jobs from the attribute and one added at run time.
//!
//! ```text
//! cargo run --example basic -- --id one                                   # a SQLite file (restart-safe)
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example basic -- --id one  # a fleet
//! ```
//!
//! Start it in two terminals against one Redis with different ids: every tick of every job
//! prints in one terminal only.

use std::sync::OnceLock;

use fourit::JobContext;

/// This process's `--id`, for the jobs to print.
static ID: OnceLock<String> = OnceLock::new();

fn id() -> &'static str {
    ID.get().map_or("?", String::as_str)
}

#[fourit::job(schedule = "* * * * *", name = "print-it")]
async fn print_it(ctx: JobContext) {
    println!(
        "[{}] print-it    tick {}",
        id(),
        ctx.tick().format("%H:%M:%S")
    );
}

#[fourit::job(schedule = "*/2 * * * *", name = "say-hello")]
async fn say_hello(ctx: JobContext) -> Result<(), std::io::Error> {
    println!(
        "[{}] say-hello   tick {} (fence {})",
        id(),
        ctx.tick().format("%H:%M:%S"),
        ctx.fence()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = match (args.next().as_deref(), args.next()) {
        (Some("--id"), Some(name)) => name,
        _ => {
            eprintln!(
                "usage: basic --id <name>   (REDIS_URL selects Redis; default a SQLite file in \
                 the temp directory)"
            );
            std::process::exit(2);
        }
    };
    let _ = ID.set(name);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    // Without Redis, a SQLite file: one host, no server, and a restart runs no tick twice.
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| {
        format!(
            "sqlite://{}",
            std::env::temp_dir().join("fourit-example.db").display()
        )
    });
    fourit::Scheduler::builder()
        .url(&url)
        // A job added at run time, every five seconds, so there is output at once.
        .add_job("every-5s", "*/5 * * * * *", |ctx| async move {
            println!(
                "[{}] every-5s    tick {}",
                id(),
                ctx.tick().format("%H:%M:%S")
            );
        })
        .build()?
        .run()
        .await?;
    Ok(())
}
