//! The pages: what each shows, computed here as plain text; the templates only lay it out
//! (and escape every value). Text from the fleet goes through [`shown`] first, so control
//! and invisible characters (bidi overrides, zero-width) appear as `\u{202e}`, as the CLI
//! prints them.

use std::collections::BTreeMap;

use askama::Template;
use chrono::Utc;

use super::json::relative;
use super::{Dashboard, HISTORY_SHOWN};
use crate::admin::{JobStatus, RECENT_ENTRIES, shown};
use crate::coordinator::HistoryEntry;
use crate::error::Error;

/// One run of a job's strip: its outcome's class and a title.
pub(super) struct Cell {
    pub(super) class: String,
    pub(super) title: String,
}

pub(super) struct JobRow {
    pub(super) name: String,
    pub(super) href: String,
    pub(super) schedule: String,
    pub(super) tz: String,
    pub(super) state: &'static str,
    pub(super) note: String,
    pub(super) strip: Vec<Cell>,
    pub(super) last_outcome: String,
    pub(super) last_class: String,
    pub(super) last_detail: String,
    pub(super) last_error: String,
    pub(super) next: Vec<String>,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage<'a> {
    title: &'a str,
    fleet: &'a str,
    read_only: bool,
    jobs: Vec<JobRow>,
}

pub(super) struct HistoryRow {
    pub(super) tick: String,
    pub(super) ago: String,
    pub(super) outcome: String,
    pub(super) class: String,
    pub(super) node: String,
    pub(super) fence: String,
    pub(super) duration: String,
    pub(super) delay: String,
    pub(super) detail: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage<'a> {
    title: &'a str,
    fleet: &'a str,
    read_only: bool,
    name: &'a str,
    href: String,
    state: &'static str,
    note: String,
    notice: String,
    paused: bool,
    actions: bool,
    schedule: String,
    tz: String,
    chart: String,
    history: Vec<HistoryRow>,
}

pub(super) struct MemberRow {
    pub(super) node: String,
    pub(super) age: String,
    pub(super) offset: String,
    pub(super) version: String,
    pub(super) share: String,
    pub(super) jobs: String,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage<'a> {
    title: &'a str,
    fleet: &'a str,
    read_only: bool,
    members: Vec<MemberRow>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    title: &'a str,
    fleet: &'a str,
    read_only: bool,
    wrong: bool,
}

/// A name made safe for a URL path segment (every byte but `A-Za-z0-9-_.~` percent-encoded).
pub(super) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An outcome as a CSS class (`timed out` → `timed-out`).
fn class_of(outcome: &str) -> String {
    outcome.replace(' ', "-")
}

fn time_of(ms: i64) -> String {
    super::json::rfc3339(ms).unwrap_or_default()
}

fn render(template: impl Template) -> String {
    template
        .render()
        .unwrap_or_else(|err| format!("<!doctype html><p>the page could not be rendered: {err}"))
}

fn job_row(job: &JobStatus, history: &[HistoryEntry], now_ms: i64) -> JobRow {
    let definition = job.definition.as_ref();
    let last = job.last.as_ref();
    let mut strip: Vec<Cell> = history
        .iter()
        .take(RECENT_ENTRIES)
        .map(|entry| Cell {
            class: class_of(&entry.outcome),
            title: shown(&format!(
                "{} {} on {}{}",
                time_of(entry.tick_ms),
                entry.outcome,
                entry.node,
                entry
                    .duration_ms
                    .map(|ms| format!(", {ms} ms"))
                    .unwrap_or_default()
            )),
        })
        .collect();
    // Oldest on the left.
    strip.reverse();
    let last_detail = last
        .map(|last| {
            let when = last
                .started_ms
                .map(|ms| relative(ms, now_ms))
                .unwrap_or_default();
            let took = last
                .duration_ms()
                .map(|ms| format!(", {ms} ms"))
                .unwrap_or_default();
            let node = last
                .node
                .as_deref()
                .map(|node| format!(" on {node}"))
                .unwrap_or_default();
            shown(&format!("{when}{took}{node}"))
        })
        .unwrap_or_default();
    JobRow {
        name: shown(&job.name),
        href: encode(&job.name),
        schedule: definition.map(|d| shown(&d.schedule)).unwrap_or_default(),
        tz: definition.map(|d| shown(&d.timezone)).unwrap_or_default(),
        state: job.state(),
        note: job
            .paused
            .as_ref()
            .map(|p| match &p.note {
                Some(note) => format!("{} (by {})", shown(note), shown(&p.by)),
                None => format!("by {}", shown(&p.by)),
            })
            .unwrap_or_default(),
        strip,
        last_outcome: last
            .map(|l| shown(&l.outcome))
            .unwrap_or_else(|| "-".into()),
        last_class: last.map(|l| class_of(&l.outcome)).unwrap_or_default(),
        last_detail,
        last_error: last
            .and_then(|l| l.error.as_deref())
            .map(shown)
            .unwrap_or_default(),
        next: if job.next_ticks.is_empty() && definition.is_some() {
            // A known schedule with no tick left: said, as `fourit status` says it.
            vec!["no next tick".to_string()]
        } else {
            job.next_ticks
                .iter()
                .map(|tick| {
                    format!(
                        "{} ({})",
                        tick.format("%Y-%m-%d %H:%M:%S"),
                        relative(tick.timestamp_millis(), now_ms)
                    )
                })
                .collect()
        },
    }
}

pub(super) async fn jobs(dashboard: &Dashboard) -> Result<String, Error> {
    let statuses = dashboard.admin.status_with_history().await?;
    let now_ms = Utc::now().timestamp_millis();
    let rows = statuses
        .iter()
        .map(|(job, history)| job_row(job, history, now_ms))
        .collect();
    Ok(render(JobsPage {
        title: "jobs",
        fleet: &dashboard.fleet,
        read_only: !dashboard.actions(),
        jobs: rows,
    }))
}

/// The durations and start delays of the runs in `history`, oldest left, as an SVG of
/// numbers only (nothing from the history's text goes in).
fn chart(history: &[HistoryEntry]) -> String {
    let runs: Vec<&HistoryEntry> = history
        .iter()
        .rev()
        .filter(|entry| entry.duration_ms.is_some())
        .collect();
    let (width, height, pad) = (720.0_f64, 160.0_f64, 28.0_f64);
    if runs.is_empty() {
        return "<p>No runs yet.</p>".to_string();
    }
    let max = runs
        .iter()
        .flat_map(|entry| [entry.duration_ms, entry.delay_ms])
        .flatten()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let step = if runs.len() > 1 {
        (width - 2.0 * pad) / (runs.len() - 1) as f64
    } else {
        0.0
    };
    let line = |values: &dyn Fn(&HistoryEntry) -> Option<u64>| {
        runs.iter()
            .enumerate()
            .filter_map(|(index, entry)| {
                let value = values(entry)? as f64;
                let x = pad + step * index as f64;
                let y = height - pad - (height - 2.0 * pad) * value / max;
                Some(format!("{x:.1},{y:.1}"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let durations = line(&|entry| entry.duration_ms);
    let delays = line(&|entry| entry.delay_ms);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"durations and start delays\">\
         <line x1=\"{pad}\" y1=\"{base}\" x2=\"{right}\" y2=\"{base}\" stroke=\"#c3c9d0\"/>\
         <text x=\"4\" y=\"14\" font-size=\"11\" fill=\"#5b6470\">{max} ms</text>\
         <text x=\"4\" y=\"{base}\" font-size=\"11\" fill=\"#5b6470\">0</text>\
         <polyline fill=\"none\" stroke=\"#2f6fd1\" stroke-width=\"1.5\" points=\"{durations}\"/>\
         <polyline fill=\"none\" stroke=\"#d99a1e\" stroke-width=\"1.5\" points=\"{delays}\"/>\
         <text x=\"{legend}\" y=\"14\" font-size=\"11\" fill=\"#2f6fd1\">duration</text>\
         <text x=\"{legend2}\" y=\"14\" font-size=\"11\" fill=\"#d99a1e\">start delay</text>\
         </svg>",
        base = height - pad,
        right = width - pad,
        legend = width - 170.0,
        legend2 = width - 100.0,
    )
}

pub(super) async fn job(
    dashboard: &Dashboard,
    name: &str,
    notice: Option<&str>,
) -> Result<String, Error> {
    let status = dashboard.admin.job(name).await?;
    let history = dashboard.admin.history(name, HISTORY_SHOWN).await?;
    let now_ms = Utc::now().timestamp_millis();
    let row = job_row(&status, &history, now_ms);
    let rows = history
        .iter()
        .map(|entry| HistoryRow {
            tick: time_of(entry.tick_ms),
            ago: relative(entry.tick_ms, now_ms),
            outcome: shown(&entry.outcome),
            class: class_of(&entry.outcome),
            node: shown(&entry.node),
            fence: entry.fence.map(|f| f.to_string()).unwrap_or_default(),
            duration: entry
                .duration_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_default(),
            delay: entry
                .delay_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_default(),
            detail: entry.detail.as_deref().map(shown).unwrap_or_default(),
        })
        .collect();
    let name = shown(name);
    Ok(render(JobPage {
        title: &name,
        fleet: &dashboard.fleet,
        read_only: !dashboard.actions(),
        name: &name,
        href: row.href,
        state: row.state,
        note: row.note,
        notice: notice.unwrap_or_default().to_string(),
        paused: status.paused.is_some(),
        actions: dashboard.actions(),
        schedule: row.schedule,
        tz: row.tz,
        chart: chart(&history),
        history: rows,
    }))
}

pub(super) async fn members(dashboard: &Dashboard) -> Result<String, Error> {
    let members = dashboard.admin.member_status().await?;
    let statuses = dashboard.admin.status_with_history().await?;
    // Each member's share of the runs in the jobs' recent history.
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0usize;
    for (_, history) in statuses {
        for entry in history {
            if entry.fence.is_some() && entry.duration_ms.is_some() {
                *runs.entry(entry.node).or_default() += 1;
                total += 1;
            }
        }
    }
    let now_ms = Utc::now().timestamp_millis();
    let rows = members
        .into_iter()
        .map(|member| {
            let share = runs.get(&member.node).copied().unwrap_or(0);
            MemberRow {
                age: relative(member.last_heartbeat_ms, now_ms),
                offset: member
                    .clock_offset_us
                    .map(|us| format!("{:+.1} ms", us as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into()),
                version: member
                    .version
                    .as_deref()
                    .map(shown)
                    .unwrap_or_else(|| "-".into()),
                share: if total == 0 {
                    "-".to_string()
                } else {
                    format!(
                        "{:.0} % ({share} of {total})",
                        100.0 * share as f64 / total as f64
                    )
                },
                jobs: shown(&member.jobs.join(", ")),
                node: shown(&member.node),
            }
        })
        .collect();
    Ok(render(MembersPage {
        title: "members",
        fleet: &dashboard.fleet,
        read_only: !dashboard.actions(),
        members: rows,
    }))
}

pub(super) fn login(dashboard: &Dashboard, wrong: bool) -> String {
    render(LoginPage {
        title: "log in",
        fleet: &dashboard.fleet,
        read_only: !dashboard.actions(),
        wrong,
    })
}
