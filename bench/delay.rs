//! Start delay (one process, jobs every second: body start minus tick), idle cost, and how
//! both grow with the number of jobs (scale).

use serde_json::{Value, json};

use crate::common::{Ctx, Flags, Measured, Window, calls_text, measure, members, quiet_minute};
use crate::fleet::Kind;
use crate::measure::{round2, round3};
use crate::report::{number, table};

/// One process, `jobs` jobs every second, `secs` seconds.
async fn delay_run(ctx: &mut Ctx, kind: Kind, jobs: usize, secs: i64) -> Result<Measured, String> {
    let prefix = if kind == Kind::Fourit { "w" } else { "p" };
    let specs = members(prefix, 1, |_| {
        Flags::new()
            .with("jobs", jobs)
            .with("schedule", "* * * * * *")
    });
    let warmup = if jobs >= 1_000 { 5_000 } else { 3_000 };
    measure(ctx, kind, &specs, Window::new(warmup, secs)).await
}

/// One process, `jobs` hourly jobs none of which is due, `secs` seconds.
async fn idle_run(ctx: &mut Ctx, kind: Kind, jobs: usize, secs: i64) -> Result<Measured, String> {
    let prefix = if kind == Kind::Fourit { "w" } else { "p" };
    let minute = quiet_minute();
    let specs = members(prefix, 1, |_| {
        Flags::new()
            .with("jobs", jobs)
            .with("hourly-from-minute", minute)
    });
    measure(ctx, kind, &specs, Window::new(5_000, secs)).await
}

fn delay_json(m: &Measured, jobs: usize) -> Value {
    let runs = m.window_runs().len();
    json!({
        "jobs": jobs,
        "runs": runs,
        "expected_runs": jobs as i64 * m.secs() as i64,
        "start_delay": m.delays().json(),
        "cpu_s_per_min": round3(m.cpu_per_minute()),
        "rss_mib": round2(m.rss_mib()),
        "detail": m.json(),
    })
}

/// What an idle window shows beyond heartbeats: the scheduler's other calls to its
/// coordinator, and Redis scripts beyond one per heartbeat. For node-cron, every command.
fn non_heartbeat_calls(m: &Measured) -> std::collections::BTreeMap<String, u64> {
    let Some(calls) = m.calls else {
        return m.info.calls.clone();
    };
    let mut out = std::collections::BTreeMap::new();
    for (name, n) in [
        ("claim batches", calls.batches),
        ("releases", calls.releases),
        ("release batches", calls.release_batches),
        ("keep-alives", calls.keep_alives),
        ("other calls", calls.other),
        (
            "Redis scripts beyond heartbeats",
            m.info.get("evalsha").saturating_sub(calls.heartbeats),
        ),
    ] {
        if n > 0 {
            out.insert(name.to_string(), n);
        }
    }
    out
}

/// Heartbeats in the window, as the scheduler counted them.
fn heartbeats(m: &Measured) -> u64 {
    m.calls.map_or(0, |c| c.heartbeats)
}

fn idle_json(m: &Measured, jobs: usize) -> Value {
    json!({
        "jobs": jobs,
        "runs": m.window_runs().len(),
        "cpu_s_per_min": round3(m.cpu_per_minute()),
        "rss_mib": round2(m.rss_mib()),
        "startup_cpu_s": round3(m.startup_cpu.iter().sum::<f64>()),
        "heartbeats": heartbeats(m),
        "calls_besides_heartbeats": non_heartbeat_calls(m),
        "detail": m.json(),
    })
}

/// `start-delay`: one process, 100 jobs every second (the target), then one job every second
/// (the peers' figures in ANCHORS.md are for one job); fourit, then the peer.
pub async fn start_delay(ctx: &mut Ctx) -> Result<(), String> {
    let secs = ctx.secs(60, 10);
    println!("\n== start-delay: 1 process, 100 jobs (then 1 job) every second, {secs} s each");
    let mut rows = Vec::new();
    let mut json = serde_json::Map::new();
    for jobs in [100usize, 1] {
        let fourit = delay_run(ctx, Kind::Fourit, jobs, secs).await?;
        let peer = if ctx.has_peer() {
            Some(delay_run(ctx, Kind::Peer, jobs, secs).await?)
        } else {
            None
        };
        for (label, m) in [("fourit", Some(&fourit)), ("node-cron", peer.as_ref())] {
            let Some(m) = m else { continue };
            rows.push(vec![
                jobs.to_string(),
                label.to_string(),
                format!("{}/{}", m.window_runs().len(), jobs as i64 * secs),
                m.delays().text(),
                format!("{:.3}", m.cpu_per_minute()),
                format!("{:.1}", m.rss_mib()),
                m.noise_text(),
            ]);
        }
        let d = fourit.delays();
        let report = &mut ctx.report;
        if jobs == 100 {
            report.target(
                "start-delay",
                "p50 start delay, 100 jobs",
                "<= 1.5 ms",
                format!("{} ms", crate::measure::ms(d.p50)),
                Some(d.p50 <= 1_500),
            );
            report.target(
                "start-delay",
                "p99 start delay, 100 jobs",
                "<= 5 ms",
                format!("{} ms", crate::measure::ms(d.p99)),
                Some(d.p99 <= 5_000),
            );
        }
        let mut entry = json!({ "fourit": delay_json(&fourit, jobs) });
        if let Some(peer) = &peer {
            let p = peer.delays();
            report.ratio(
                &format!("start delay p50, {jobs} job(s) (ms)"),
                ms_f(d.p50),
                ms_f(p.p50),
            );
            report.ratio(
                &format!("start delay p99, {jobs} job(s) (ms)"),
                ms_f(d.p99),
                ms_f(p.p99),
            );
            report.ratio(
                &format!("start delay max, {jobs} job(s) (ms)"),
                ms_f(d.max),
                ms_f(p.max),
            );
            report.ratio(
                &format!("RSS, {jobs} job(s) every second (MiB)"),
                fourit.rss_mib(),
                peer.rss_mib(),
            );
            report.ratio(
                &format!("CPU, {jobs} job(s) every second (s/min)"),
                fourit.cpu_per_minute(),
                peer.cpu_per_minute(),
            );
            entry["node-cron"] = delay_json(peer, jobs);
        }
        json.insert(format!("{jobs} jobs"), entry);
    }
    table(
        "start delay (body start minus tick; 1 process)",
        &[
            "jobs",
            "",
            "runs",
            "p50 / p99 / max ms",
            "CPU s/min",
            "RSS MiB",
            "other CPU",
        ],
        &rows,
    );
    ctx.report
        .scenarios
        .insert("start-delay".to_string(), Value::Object(json));
    Ok(())
}

/// `idle`: one process, 10,000 hourly jobs none of which is due; fourit, then the peer.
pub async fn idle(ctx: &mut Ctx) -> Result<(), String> {
    let secs = ctx.secs(60, 15);
    let jobs = 10_000;
    println!("\n== idle: 1 process, {jobs} hourly jobs, none due, {secs} s");
    let fourit = idle_run(ctx, Kind::Fourit, jobs, secs).await?;
    let peer = if ctx.has_peer() {
        Some(idle_run(ctx, Kind::Peer, jobs, secs).await?)
    } else {
        None
    };
    let mut rows = Vec::new();
    for (label, m) in [("fourit", Some(&fourit)), ("node-cron", peer.as_ref())] {
        let Some(m) = m else { continue };
        let beats = if label == "fourit" {
            heartbeats(m).to_string()
        } else {
            "-".to_string()
        };
        rows.push(vec![
            label.to_string(),
            format!("{:.3}", m.cpu_per_minute()),
            format!("{:.1}", m.rss_mib()),
            format!("{:.2}", m.startup_cpu.iter().sum::<f64>()),
            beats,
            calls_text(&non_heartbeat_calls(m)),
            m.noise_text(),
        ]);
    }
    table(
        "idle cost",
        &[
            "",
            "CPU s/min",
            "RSS MiB",
            "start-up CPU s",
            "heartbeats",
            "other Redis calls",
            "other CPU",
        ],
        &rows,
    );
    let cpu = fourit.cpu_per_minute();
    let rss = fourit.rss_mib();
    let others = non_heartbeat_calls(&fourit);
    let report = &mut ctx.report;
    report.target(
        "idle",
        "CPU, 10,000 idle jobs",
        "< 0.1 s/min",
        format!("{cpu:.3} s/min"),
        Some(cpu < 0.1),
    );
    report.target(
        "idle",
        "RSS, 10,000 idle jobs",
        "< 20 MiB",
        format!("{rss:.1} MiB"),
        Some(rss < 20.0),
    );
    report.target(
        "idle",
        "Redis calls while idle",
        "heartbeats only",
        format!(
            "{} heartbeats; besides: {}",
            heartbeats(&fourit),
            calls_text(&others)
        ),
        Some(others.is_empty()),
    );
    let mut json = json!({ "fourit": idle_json(&fourit, jobs) });
    if let Some(peer) = &peer {
        report.ratio(
            "RSS, 10,000 idle jobs (MiB)",
            fourit.rss_mib(),
            peer.rss_mib(),
        );
        report.ratio(
            "CPU, 10,000 idle jobs (s/min)",
            fourit.cpu_per_minute(),
            peer.cpu_per_minute(),
        );
        json["node-cron"] = json!({
            "jobs": jobs,
            "cpu_s_per_min": round3(peer.cpu_per_minute()),
            "rss_mib": round2(peer.rss_mib()),
            "detail": peer.json(),
        });
    }
    report.scenarios.insert("idle".to_string(), json);
    Ok(())
}

/// `scale`: start delay and idle cost at 1, 100, 1,000 and 10,000 jobs.
pub async fn scale(ctx: &mut Ctx) -> Result<(), String> {
    let secs = ctx.secs(20, 5);
    println!("\n== scale: start delay and idle cost at 1, 100, 1,000, 10,000 jobs, {secs} s each");
    let mut rows = Vec::new();
    let mut entries = Vec::new();
    for jobs in [1usize, 100, 1_000, 10_000] {
        let active = delay_run(ctx, Kind::Fourit, jobs, secs).await?;
        let quiet = idle_run(ctx, Kind::Fourit, jobs, secs).await?;
        let d = active.delays();
        let expected = jobs as i64 * secs;
        rows.push(vec![
            jobs.to_string(),
            format!("{}/{expected}", active.window_runs().len()),
            d.text(),
            number(active.cpu_per_minute()),
            format!("{:.1}", active.rss_mib()),
            format!("{:.3}", quiet.cpu_per_minute()),
            format!("{:.1}", quiet.rss_mib()),
            calls_text(&non_heartbeat_calls(&quiet)),
            format!("{}/{}", active.noise_text(), quiet.noise_text()),
        ]);
        entries.push(json!({
            "jobs": jobs,
            "every_second": delay_json(&active, jobs),
            "idle": idle_json(&quiet, jobs),
        }));
    }
    table(
        "scale (1 process; jobs every second, then the same number of idle hourly jobs)",
        &[
            "jobs",
            "runs",
            "delay p50 / p99 / max ms",
            "CPU s/min",
            "RSS MiB",
            "idle CPU s/min",
            "idle RSS MiB",
            "idle calls besides heartbeats",
            "other CPU",
        ],
        &rows,
    );
    ctx.report
        .scenarios
        .insert("scale".to_string(), Value::Array(entries));
    Ok(())
}

fn ms_f(us: i64) -> f64 {
    us as f64 / 1000.0
}
