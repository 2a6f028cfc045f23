//! The `metrics` feature: every scheduler reports through the `metrics` facade, so whichever
//! exporter the application installs (Prometheus, StatsD, an OpenTelemetry bridge) gets the
//! series below. Without an installed recorder the calls cost next to nothing.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `fourit_runs_total` | counter | `job`, `outcome` (`succeeded`, `failed`, `panicked`, `timed_out`, `cancelled`, `lease_lost`, `not_replicated`) |
//! | `fourit_ticks_total` | counter | `job`, `decision` (`run`, `taken`, `overlap`, `paused`, `missed`) |
//! | `fourit_manual_runs_total` | counter | `job` |
//! | `fourit_run_duration_seconds` | histogram | `job` |
//! | `fourit_start_delay_seconds` | histogram | `job` |
//! | `fourit_running` | gauge | `job` |
//! | `fourit_last_success_timestamp_seconds` | gauge | `job` |
//! | `fourit_next_tick_timestamp_seconds` | gauge | `job` |
//! | `fourit_coordinator_round_trip_seconds` | histogram | `operation` |
//! | `fourit_coordinator_up` | gauge | |
//! | `fourit_members` | gauge | |
//! | `fourit_clock_offset_seconds` | gauge | |
//! | `fourit_clock_steps_total` | counter | |
//! | `fourit_lease_lost_total` | counter | `job` |

use crate::coordinator::Outcome;
use crate::events::{Event, Listener, Skip};

/// The listener every scheduler has with the `metrics` feature.
#[derive(Debug)]
pub(crate) struct Metrics;

/// An outcome as a label value: the history name with `_` for spaces.
fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed(_) => "failed",
        Outcome::Panicked(_) => "panicked",
        Outcome::TimedOut => "timed_out",
        Outcome::Cancelled => "cancelled",
        Outcome::LeaseLost => "lease_lost",
        Outcome::NotReplicated(_) => "not_replicated",
    }
}

fn tick(job: &str, decision: &'static str) {
    metrics::counter!("fourit_ticks_total", "job" => job.to_string(), "decision" => decision)
        .increment(1);
}

impl Listener for Metrics {
    fn on_event(&self, event: &Event<'_>) {
        match event {
            Event::Claimed { job, manual, .. } => {
                if *manual {
                    metrics::counter!("fourit_manual_runs_total", "job" => job.to_string())
                        .increment(1);
                } else {
                    tick(job, "run");
                }
            }
            Event::Started { job, delay, .. } => {
                metrics::gauge!("fourit_running", "job" => job.to_string()).increment(1.0);
                metrics::histogram!("fourit_start_delay_seconds", "job" => job.to_string())
                    .record(delay.as_secs_f64());
            }
            Event::Finished {
                job,
                outcome,
                duration,
                ..
            } => {
                let job = job.to_string();
                metrics::gauge!("fourit_running", "job" => job.clone()).decrement(1.0);
                metrics::counter!(
                    "fourit_runs_total",
                    "job" => job.clone(),
                    "outcome" => outcome_label(outcome)
                )
                .increment(1);
                metrics::histogram!("fourit_run_duration_seconds", "job" => job.clone())
                    .record(duration.as_secs_f64());
                if matches!(outcome, Outcome::Succeeded) {
                    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
                    metrics::gauge!("fourit_last_success_timestamp_seconds", "job" => job).set(now);
                }
            }
            Event::Skipped { job, reason, .. } => match reason {
                Skip::Overlap { .. } => tick(job, "overlap"),
                Skip::Paused => tick(job, "paused"),
            },
            Event::Taken { job, .. } => tick(job, "taken"),
            Event::Missed { job, count, .. } => {
                metrics::counter!(
                    "fourit_ticks_total",
                    "job" => job.to_string(),
                    "decision" => "missed"
                )
                .increment(u64::from(*count));
            }
            Event::LeaseLost { job, .. } => {
                metrics::counter!("fourit_lease_lost_total", "job" => job.to_string()).increment(1);
            }
            Event::CoordinatorUnavailable { .. } => {
                metrics::gauge!("fourit_coordinator_up").set(0.0);
            }
            Event::CoordinatorBack { .. } => metrics::gauge!("fourit_coordinator_up").set(1.0),
            Event::Heartbeat {
                members,
                clock_offset_us,
            } => {
                metrics::gauge!("fourit_coordinator_up").set(1.0);
                metrics::gauge!("fourit_members").set(*members as f64);
                metrics::gauge!("fourit_clock_offset_seconds").set(*clock_offset_us as f64 / 1e6);
            }
            Event::ClockStep { .. } => metrics::counter!("fourit_clock_steps_total").increment(1),
            Event::NextTick { job, tick } => {
                metrics::gauge!("fourit_next_tick_timestamp_seconds", "job" => job.to_string())
                    .set(tick.timestamp_millis() as f64 / 1e3);
            }
            Event::RoundTrip {
                operation,
                duration,
                ..
            } => {
                metrics::histogram!(
                    "fourit_coordinator_round_trip_seconds",
                    "operation" => *operation
                )
                .record(duration.as_secs_f64());
            }
            Event::MemberJoined { .. } | Event::MemberLeft { .. } => {}
        }
    }
}
