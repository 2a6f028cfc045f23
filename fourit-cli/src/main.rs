//! `fourit`: steer and inspect a fourit fleet from a shell.
//!
//! ```text
//! fourit [--url URL] [--namespace NS] status [--json]
//! fourit history JOB [-n N] [--json]
//! fourit next JOB [-n N] [--json]
//! fourit remove JOB
//! fourit trigger JOB [--force] [--wait] [--by NAME]
//! fourit members [--json]
//! fourit pause JOB [--note TEXT] [--by NAME] [--force]
//! fourit resume JOB [--by NAME]
//! fourit paused JOB [--json]
//! fourit check "<cron>" [--tz ZONE] [-n N] [--json]
//! ```
//!
//! `--url` defaults to `$FOURIT_URL`, then `redis://127.0.0.1:6379`; `--namespace` to
//! `$FOURIT_NAMESPACE`, then `fourit`. Exit codes: 0 done, 2 usage error or bad input (a bad
//! job name, a cron string that does not parse, a note over 4 kB), 3 coordinator unreachable
//! or refused, 4 no such job (`pause` and `resume` of a name the fleet does not know too).
//! Passwords in URLs are never printed; text from the fleet (errors, notes, names, node ids,
//! versions) is printed with its control characters escaped (`\u{1b}`); `--json` is exact.

mod output;

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use fourit::admin::FleetAdmin;
use serde_json::json;

use crate::output::{Style, ago, next_run, rfc3339, shown, table};

/// Exit code: usage error or bad input.
const EXIT_USAGE: u8 = 2;
/// Exit code: the coordinator is unreachable or refused the request.
const EXIT_COORDINATOR: u8 = 3;
/// Exit code: no such job.
const EXIT_NO_JOB: u8 = 4;

#[derive(Parser, Debug)]
#[command(name = "fourit", version, about = "Steer and inspect a fourit fleet")]
struct Cli {
    /// The fleet's coordinator (any URL `fourit::run` takes).
    #[arg(
        long,
        env = "FOURIT_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true,
        hide_env_values = true
    )]
    url: String,
    /// The fleet's namespace.
    #[arg(
        long,
        env = "FOURIT_NAMESPACE",
        default_value = "fourit",
        global = true
    )]
    namespace: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One line per job: schedule, zone, state, last run, next run.
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A job's next ticks, by its schedule as the live members register it.
    Next {
        /// The job's name.
        job: String,
        /// How many ticks.
        #[arg(short = 'n', default_value_t = 5)]
        n: usize,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a job once now, on one live member that registers it.
    Trigger {
        /// The job's name.
        job: String,
        /// Run even while a previous run holds the job's lease.
        #[arg(long)]
        force: bool,
        /// Wait for the run to end; exit 1 if it failed or was skipped.
        #[arg(long)]
        wait: bool,
        /// Who asks (default: user@host).
        #[arg(long)]
        by: Option<String>,
    },
    /// Remove an orphaned job (no live member registers it) with its state and history.
    Remove {
        /// The job's name.
        job: String,
    },
    /// A job's history, newest first: runs, overlaps, pauses.
    History {
        /// The job's name.
        job: String,
        /// How many entries.
        #[arg(short = 'n', default_value_t = 20)]
        n: usize,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The live members: last heartbeat, app version, the jobs they register.
    Members {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Pause a job fleet-wide from its next tick (it survives member restarts).
    Pause {
        /// The job's name.
        job: String,
        /// Why (shown with the pause and in history).
        #[arg(long)]
        note: Option<String>,
        /// Who pauses it (default: user@host).
        #[arg(long)]
        by: Option<String>,
        /// Pause it even though the fleet does not know it yet (no member registers it, no
        /// history): it will not run when first deployed, until resumed.
        #[arg(long)]
        force: bool,
    },
    /// Resume a paused job from its next tick (no backfill).
    Resume {
        /// The job's name.
        job: String,
        /// Who resumes it (default: user@host).
        #[arg(long)]
        by: Option<String>,
    },
    /// Whether a job is paused: by whom, why, since when, how many ticks.
    Paused {
        /// The job's name.
        job: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve the web dashboard: jobs, history, members; pause, resume, trigger with a token.
    Dashboard {
        /// Where to listen (loopback by default; anything else is reachable by others).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The token pages, API and actions need (bearer header or login session), at least
        /// 16 characters; prefer $FOURIT_DASHBOARD_TOKEN or --token-file (a command line is
        /// visible in `ps`). Without one every page is open and no action is offered.
        #[arg(long, env = "FOURIT_DASHBOARD_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A file holding the token (its first line).
        #[arg(long, conflicts_with = "token")]
        token_file: Option<std::path::PathBuf>,
        /// No action offered; with a token, every page and the API still need it.
        #[arg(long)]
        read_only: bool,
        /// Also answer to this host name (a proxy's, a DNS name); loopback names and IP
        /// addresses are always answered. Repeatable.
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
        /// Mark the session cookie `Secure` (TLS in front; also set when the proxy sends
        /// `X-Forwarded-Proto: https`).
        #[arg(long)]
        secure_cookie: bool,
        /// Who actions are recorded as done by (default: user@host).
        #[arg(long)]
        by: Option<String>,
    },
    /// Check a cron schedule with the messages `#[fourit::job]` gives, and print its next
    /// ticks in its zone and in UTC. Needs no coordinator.
    Check {
        /// The schedule, e.g. "*/5 * * * *" (5 fields, or 6 with seconds first).
        schedule: String,
        /// The IANA time zone it runs in.
        #[arg(long)]
        tz: Option<String>,
        /// How many ticks.
        #[arg(short = 'n', default_value_t = 5)]
        n: usize,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Why a command failed, and its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<fourit::Error> for Failure {
    fn from(err: fourit::Error) -> Failure {
        let code = match &err {
            fourit::Error::InvalidOption { .. }
            | fourit::Error::InvalidUrl { .. }
            | fourit::Error::Refused { .. } => EXIT_USAGE,
            fourit::Error::NoSuchJob { .. } => EXIT_NO_JOB,
            _ => EXIT_COORDINATOR,
        };
        // fourit's errors carry redacted URLs only.
        Failure::new(code, err.to_string())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Errors quote names and the coordinator's words: shown as data.
            eprintln!("fourit: {}", shown(&failure.message));
            ExitCode::from(failure.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let style = Style::detect();
    if let Command::Check {
        schedule,
        tz,
        n,
        json,
    } = &cli.command
    {
        return check(schedule, tz.as_deref(), *n, *json);
    }
    let admin = fourit::admin::connect(&cli.url, &cli.namespace).await?;
    match cli.command {
        Command::Status { json } => status(&admin, json, style).await,
        Command::Next { job, n, json } => next(&admin, &job, n, json).await,
        Command::Trigger {
            job,
            force,
            wait,
            by,
        } => trigger(with_operator(admin, by), &job, force, wait).await,
        Command::Remove { job } => {
            admin.remove(&job).await?;
            println!(
                "removed {}: its registrations, state and history",
                shown(&job)
            );
            Ok(())
        }
        Command::History { job, n, json } => history(&admin, &job, n, json, style).await,
        Command::Members { json } => members(&admin, json).await,
        Command::Pause {
            job,
            note,
            by,
            force,
        } => {
            let admin = with_operator(admin, by);
            let paused = if force {
                admin.pause_ahead(&job, note.as_deref()).await
            } else {
                admin.pause(&job, note.as_deref()).await
            };
            match paused {
                Err(fourit::Error::NoSuchJob { .. }) => {
                    return Err(Failure::new(
                        EXIT_NO_JOB,
                        format!(
                            "no such job: `{job}` is not known in this namespace (nothing \
                             registers it, no history); nothing was paused. To pause it before \
                             its first deploy, add --force"
                        ),
                    ));
                }
                other => other?,
            }
            println!(
                "paused {} fleet-wide from its next tick (by {})",
                shown(&job),
                shown(admin.operator_name())
            );
            Ok(())
        }
        Command::Resume { job, by } => {
            let admin = with_operator(admin, by);
            match admin.resume(&job).await? {
                Some(pause) => println!(
                    "resumed {} from its next tick; {} ticks were paused (paused by {} {})",
                    shown(&job),
                    pause.ticks,
                    shown(&pause.by),
                    ago(pause.since_ms, Utc::now().timestamp_millis())
                ),
                None => println!("{} was not paused", shown(&job)),
            }
            Ok(())
        }
        Command::Paused { job, json } => paused(&admin, &job, json).await,
        Command::Dashboard {
            listen,
            token,
            token_file,
            read_only,
            allow_hosts,
            secure_cookie,
            by,
        } => {
            let fleet = format!(
                "{} · {}",
                fourit::coordinator::redact_url(&cli.url),
                cli.namespace
            );
            let token = match token_file {
                Some(path) => Some(read_token(&path)?),
                None => token,
            };
            if let Some(token) = &token {
                fourit::dashboard::check_token(token)
                    .map_err(|reason| Failure::new(EXIT_USAGE, reason))?;
            }
            let mut app = fourit::dashboard::Dashboard::new(with_operator(admin, by))
                .read_only(read_only)
                .secure_cookie(secure_cookie)
                .fleet_name(&fleet);
            if let Some(token) = &token {
                app = app.token(token);
            }
            for host in &allow_hosts {
                app = app.allow_host(host);
            }
            dashboard(app, &listen, &fleet).await
        }
        Command::Check { .. } => Ok(()),
    }
}

fn with_operator(admin: FleetAdmin, by: Option<String>) -> FleetAdmin {
    match by {
        Some(name) => admin.operator(&name),
        None => admin,
    }
}

/// The token in `path`: its first line, trimmed.
fn read_token(path: &std::path::Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        Failure::new(
            EXIT_USAGE,
            format!("cannot read the token file {}: {err}", path.display()),
        )
    })?;
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

async fn dashboard(
    app: fourit::dashboard::Dashboard,
    listen: &str,
    fleet: &str,
) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|err| Failure::new(EXIT_USAGE, format!("cannot listen on {listen}: {err}")))?;
    let address = listener
        .local_addr()
        .map_err(|err| Failure::new(EXIT_USAGE, format!("cannot listen on {listen}: {err}")))?;
    // Exactly what is protected, in the words of what a request meets.
    let mode = match (app.locked(), app.actions()) {
        (true, true) => "every page, the API and every action need the token",
        (true, false) => "read-only: every page and the API need the token; no actions",
        (false, _) => {
            "OPEN: no token, every page and the API answer anyone who reaches it; no actions"
        }
    };
    println!(
        "dashboard of {} on http://{address}/ ({mode})",
        shown(fleet)
    );
    if !address.ip().is_loopback() && !app.locked() {
        eprintln!(
            "fourit: warning: {address} is reachable from other hosts and no token is set: \
             anyone who reaches it reads the fleet"
        );
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let limits = fourit::dashboard::Limits::default();
    fourit::dashboard::serve(listener, app.router(), limits, shutdown).await;
    Ok(())
}

/// Exit code: a manual run that failed or was skipped (`trigger --wait`).
const EXIT_RUN_FAILED: u8 = 1;

async fn trigger(admin: FleetAdmin, job: &str, force: bool, wait: bool) -> Result<(), Failure> {
    let request = admin.trigger(job, force).await?;
    println!(
        "triggered {} (request {}, by {}); a live member that registers it takes it now",
        shown(job),
        shown(&request.id),
        shown(&request.by)
    );
    if !wait {
        return Ok(());
    }
    match admin
        .wait_manual(&request, std::time::Duration::from_secs(120))
        .await?
    {
        Some(fourit::admin::ManualEnd::Ran { node, entry }) => {
            let took = entry
                .duration_ms
                .map(|ms| format!(" in {ms} ms"))
                .unwrap_or_default();
            let detail = entry
                .detail
                .map(|detail| format!(": {detail}"))
                .unwrap_or_default();
            println!(
                "{} ran on {}: {}{took}{}",
                shown(job),
                shown(&node),
                shown(&entry.outcome),
                shown(&detail)
            );
            if entry.outcome == "succeeded" {
                Ok(())
            } else {
                Err(Failure::new(
                    EXIT_RUN_FAILED,
                    format!("the manual run of {job} {}", entry.outcome),
                ))
            }
        }
        Some(fourit::admin::ManualEnd::Skipped { holder }) => Err(Failure::new(
            EXIT_RUN_FAILED,
            format!("the manual run of {job} was skipped: {holder} still runs (use --force)"),
        )),
        None => Err(Failure::new(
            EXIT_COORDINATOR,
            format!("no member ran {job} within 120 s"),
        )),
    }
}

async fn status(admin: &FleetAdmin, json: bool, style: Style) -> Result<(), Failure> {
    let jobs = admin.status().await?;
    if json {
        println!("{}", fourit::dashboard::json::jobs(&jobs));
        return Ok(());
    }
    let now = Utc::now().timestamp_millis();
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|job| {
            let definition = job.definition.as_ref();
            let last = job.last.as_ref().map(|last| {
                let when = last.started_ms.map(|ms| ago(ms, now)).unwrap_or_default();
                let took = last
                    .duration_ms()
                    .map(|ms| format!(", {ms} ms"))
                    .unwrap_or_default();
                let node = last
                    .node
                    .as_deref()
                    .map(|node| format!(" on {}", shown(node)))
                    .unwrap_or_default();
                format!("{} {when}{took}{node}", style.outcome(&last.outcome))
            });
            vec![
                job.name.clone(),
                definition.map(|d| d.schedule.clone()).unwrap_or_default(),
                definition.map(|d| d.timezone.clone()).unwrap_or_default(),
                style.outcome(job.state()),
                last.unwrap_or_else(|| "never ran".to_string()),
                next_run(
                    job.next_ticks.first().map(|tick| tick.timestamp_millis()),
                    definition.is_some(),
                    now,
                ),
            ]
        })
        .collect();
    table(
        &["job", "schedule", "tz", "state", "last run", "next"],
        &rows,
    );
    Ok(())
}

async fn next(admin: &FleetAdmin, job: &str, n: usize, json: bool) -> Result<(), Failure> {
    let ticks = admin.next(job, n).await?;
    if json {
        let rows: Vec<_> = ticks
            .iter()
            .map(|tick| tick.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .collect();
        println!("{}", json!(rows));
        return Ok(());
    }
    let now = Utc::now().timestamp_millis();
    let rows: Vec<Vec<String>> = ticks
        .iter()
        .map(|tick| {
            vec![
                tick.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                ago(tick.timestamp_millis(), now),
            ]
        })
        .collect();
    table(&["next tick (UTC)", ""], &rows);
    Ok(())
}

async fn history(
    admin: &FleetAdmin,
    job: &str,
    n: usize,
    json: bool,
    style: Style,
) -> Result<(), Failure> {
    let entries = admin.history(job, n).await?;
    let cataloged = || async {
        match admin.job(job).await {
            Ok(_) => Ok(true),
            Err(fourit::Error::NoSuchJob { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    };
    if entries.is_empty() && admin.paused(job).await?.is_none() && !cataloged().await? {
        return Err(Failure::new(
            EXIT_NO_JOB,
            format!("no such job: `{job}` has no history in this namespace"),
        ));
    }
    if json {
        println!("{}", fourit::dashboard::json::history(&entries));
        return Ok(());
    }
    let now = Utc::now().timestamp_millis();
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            vec![
                rfc3339(entry.tick_ms).unwrap_or_default(),
                ago(entry.tick_ms, now),
                style.outcome(&entry.outcome),
                entry.node.clone(),
                entry.fence.map(|f| f.to_string()).unwrap_or_default(),
                entry
                    .duration_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_default(),
                entry.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["tick", "", "outcome", "node", "fence", "duration", "detail"],
        &rows,
    );
    Ok(())
}

async fn members(admin: &FleetAdmin, json: bool) -> Result<(), Failure> {
    let members = admin.member_status().await?;
    if json {
        println!("{}", fourit::dashboard::json::members(&members));
        return Ok(());
    }
    let now = Utc::now().timestamp_millis();
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|member| {
            vec![
                member.node.clone(),
                rfc3339(member.last_heartbeat_ms).unwrap_or_default(),
                ago(member.last_heartbeat_ms, now),
                member
                    .clock_offset_us
                    .map_or_else(|| "-".to_string(), clock_offset),
                member.version.clone().unwrap_or_else(|| "-".to_string()),
                member.jobs.join(", "),
            ]
        })
        .collect();
    table(
        &["node", "last heartbeat", "", "clock", "version", "jobs"],
        &rows,
    );
    Ok(())
}

/// A member's clock offset as people read it: "+1.2 ms" ahead, "-40 ms" behind.
fn clock_offset(us: i64) -> String {
    let ms = us as f64 / 1000.0;
    if ms.abs() < 10.0 {
        format!("{ms:+.1} ms")
    } else {
        format!("{ms:+.0} ms")
    }
}

async fn paused(admin: &FleetAdmin, job: &str, json: bool) -> Result<(), Failure> {
    let pause = admin.paused(job).await?;
    if json {
        let value = match &pause {
            Some(pause) => json!({
                "job": job,
                "paused": true,
                "by": pause.by,
                "note": pause.note,
                "since": rfc3339(pause.since_ms),
                "ticks": pause.ticks,
                "first_tick": pause.first_tick_ms.and_then(rfc3339),
                "last_tick": pause.last_tick_ms.and_then(rfc3339),
            }),
            None => json!({ "job": job, "paused": false }),
        };
        println!("{value}");
        return Ok(());
    }
    match pause {
        Some(pause) => println!(
            "{} is paused by {} since {} ({}){}; {} ticks paused",
            shown(job),
            shown(&pause.by),
            rfc3339(pause.since_ms).unwrap_or_default(),
            ago(pause.since_ms, Utc::now().timestamp_millis()),
            pause
                .note
                .map(|note| format!(": {}", shown(&note)))
                .unwrap_or_default(),
            pause.ticks
        ),
        None => println!("{} is not paused", shown(job)),
    }
    Ok(())
}

fn check(text: &str, tz: Option<&str>, n: usize, json: bool) -> Result<(), Failure> {
    let schedule = fourit::Schedule::parse(text)
        .and_then(|schedule| match tz {
            Some(tz) => schedule.with_timezone(tz),
            None => Ok(schedule),
        })
        .map_err(|err| Failure::new(EXIT_USAGE, err.to_string()))?;
    let zone = schedule.timezone();
    let ticks: Vec<DateTime<Utc>> = schedule.upcoming(Utc::now()).take(n).collect();
    if json {
        let rows: Vec<_> = ticks
            .iter()
            .map(|tick| {
                json!({
                    "local": tick.with_timezone(&zone).to_rfc3339(),
                    "utc": tick.to_rfc3339(),
                })
            })
            .collect();
        println!(
            "{}",
            json!({ "schedule": text, "tz": zone.name(), "ticks": rows })
        );
        return Ok(());
    }
    println!("{} is a valid schedule ({})", shown(text), zone.name());
    let now = Utc::now().timestamp_millis();
    let rows: Vec<Vec<String>> = ticks
        .iter()
        .map(|tick| {
            vec![
                tick.with_timezone(&zone)
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string(),
                tick.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                ago(tick.timestamp_millis(), now),
            ]
        })
        .collect();
    table(&[zone.name(), "UTC", ""], &rows);
    Ok(())
}
