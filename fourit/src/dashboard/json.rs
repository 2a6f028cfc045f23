//! The JSON of the fleet's state: what `fourit status|history|members --json` print and the
//! dashboard's API answers, with the same field names (documented in README).

use chrono::DateTime;
use serde_json::{Map, Value, json};

use crate::admin::{JobStatus, MemberStatus};
use crate::coordinator::HistoryEntry;

/// RFC 3339 in UTC with milliseconds, or `None` for an out-of-range value.
pub fn rfc3339(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|at| at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// `3 s ago`, `in 2 min`, `now`: `at_ms` against `now_ms`, as the command and the pages
/// print times beside their RFC 3339 form.
pub fn relative(at_ms: i64, now_ms: i64) -> String {
    let delta = now_ms - at_ms;
    let span = delta.unsigned_abs() / 1000;
    if span == 0 {
        return "now".to_string();
    }
    let amount = match span {
        0..60 => format!("{span} s"),
        60..3_600 => format!("{} min", span / 60),
        3_600..86_400 => format!("{} h", span / 3_600),
        _ => format!("{} d", span / 86_400),
    };
    if delta > 0 {
        format!("{amount} ago")
    } else {
        format!("in {amount}")
    }
}

/// `fourit status --json`, `GET /api/jobs`: one object per job.
pub fn jobs(jobs: &[JobStatus]) -> Value {
    Value::Array(jobs.iter().map(job).collect())
}

/// One job of [`jobs`].
pub fn job(job: &JobStatus) -> Value {
    let definition = job.definition.as_ref();
    let last = job.last.as_ref();
    json!({
        "name": job.name,
        "schedule": definition.map(|d| d.schedule.clone()),
        "tz": definition.map(|d| d.timezone.clone()),
        "state": job.state(),
        "paused": job.paused.is_some(),
        "paused_by": job.paused.as_ref().map(|p| p.by.clone()),
        "paused_note": job.paused.as_ref().and_then(|p| p.note.clone()),
        "running": job.running.is_some(),
        "running_node": job.running.as_ref().map(|r| r.node.clone()),
        "orphaned": job.orphaned,
        "disagreeing": job.disagreeing,
        "members": job.members.iter().map(|(node, _)| node.clone()).collect::<Vec<_>>(),
        "last_outcome": last.map(|l| l.outcome.clone()),
        "last_started": last.and_then(|l| l.started_ms).and_then(rfc3339),
        "last_duration_ms": last.and_then(|l| l.duration_ms()),
        "last_node": last.and_then(|l| l.node.clone()),
        "last_error": last.and_then(|l| l.error.clone()),
        "next_tick": job.next_ticks.first().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "version": definition.and_then(|d| d.version.clone()),
        "recent_outcomes": job
            .recent
            .iter()
            .map(|(outcome, count)| (outcome.clone(), json!(count)))
            .collect::<Map<String, Value>>(),
    })
}

/// `fourit history --json`, `GET /api/jobs/<name>/history`: newest first.
pub fn history(entries: &[HistoryEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|entry| {
                json!({
                    "tick": rfc3339(entry.tick_ms),
                    "tick_ms": entry.tick_ms,
                    "node": entry.node,
                    "outcome": entry.outcome,
                    "detail": entry.detail,
                    "fence": entry.fence,
                    "duration_ms": entry.duration_ms,
                    "delay_ms": entry.delay_ms,
                })
            })
            .collect(),
    )
}

/// `fourit members --json`, `GET /api/members`.
pub fn members(members: &[MemberStatus]) -> Value {
    Value::Array(
        members
            .iter()
            .map(|member| {
                json!({
                    "node": member.node,
                    "last_heartbeat": rfc3339(member.last_heartbeat_ms),
                    "last_heartbeat_ms": member.last_heartbeat_ms,
                    "clock_offset_ms": member.clock_offset_us.map(|us| us as f64 / 1000.0),
                    "version": member.version,
                    "jobs": member.jobs,
                })
            })
            .collect(),
    )
}
