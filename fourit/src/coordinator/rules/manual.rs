//! Manual runs (`fourit trigger`): a request recorded at the coordinator's time (the run's
//! tick), then taken once fleet-wide by a member that registers the job.
//!
//! A manual run has a fence of its own and never moves the high-water mark. Unless it is
//! forced or the job allows overlap it takes the job's lease, and is skipped (recorded as an
//! overlap) while another run holds it; otherwise it takes a lease of its own, keyed by its
//! tick. Translated by `redis/request_manual.lua`, `redis/manual.lua` and
//! `fourit_claim_manual` in `postgres/schema.sql`.

use std::sync::Arc;
use std::time::Duration;

use super::super::{Lease, ManualOutcome, ManualRequest, ManualState};
use super::{Held, JobRecord, LastRun, Now, Writes, ms, texts};
use crate::job::{FenceToken, Overlap};

/// A new request of a manual run of `job` by `by`, with its id. Its tick is `now`, or one
/// millisecond past the job's latest request (`latest_ms`) when that is not earlier: each
/// request of a job has a tick of its own, so two runs with leases of their own (keyed by
/// their tick) never share one. Who asked is kept on one line (tabs and line breaks become
/// spaces).
pub(crate) fn request(
    job: &str,
    id: String,
    by: &str,
    force: bool,
    latest_ms: Option<i64>,
    now: Now,
) -> ManualRequest {
    let requested_ms = match latest_ms {
        Some(latest) if latest >= now.ms => latest.saturating_add(1),
        _ => now.ms,
    };
    ManualRequest {
        job: job.to_string(),
        id,
        by: by.replace(['\t', '\n'], " "),
        requested_ms,
        force,
    }
}

/// Takes the manual run `request`, where it stands as `state`, for `node`: once, while it is
/// pending. Changes `state` to where it stands after.
pub(crate) fn claim(
    job: &mut JobRecord,
    request: &ManualRequest,
    state: &mut ManualState,
    node: &str,
    lease_ttl: Duration,
    overlap: Overlap,
    now: Now,
) -> (ManualOutcome, Writes) {
    if *state != ManualState::Pending {
        return (ManualOutcome::Taken, Writes::none());
    }
    let own = overlap == Overlap::Allow || request.force;
    if !own && let Some(holder) = job.holder(now) {
        let holder = holder.to_string();
        let entry = texts::manual_skipped(request.requested_ms, node, &request.by, &holder);
        *state = ManualState::Skipped {
            holder: holder.clone(),
        };
        return (ManualOutcome::Overlap { holder }, Writes::entry(entry));
    }
    job.fence += 1;
    // The latest run is now this one: a scheduled claim sent again after its answer was lost
    // can no longer resume (its fence is not the job's any more), and is answered taken.
    job.claim = None;
    let lease = Lease {
        job: Arc::from(request.job.as_str()),
        tick_ms: request.requested_ms,
        fence: FenceToken(job.fence),
        node: Arc::from(node),
        overlap: if own { Overlap::Allow } else { Overlap::Skip },
        manual: true,
    };
    let held = Held {
        run_id: lease.run_id(),
        expires_ms: now.lease_ms.saturating_add(ms(lease_ttl)),
    };
    job.take_slot(lease.slot(), held, now);
    job.last = LastRun {
        node: Some(node.to_string()),
        started_ms: Some(now.ms),
        finished_ms: None,
        outcome: Some("running".to_string()),
        error: None,
    };
    *state = ManualState::Started {
        node: node.to_string(),
        fence: job.fence,
    };
    let entry = texts::manual(request.requested_ms, node, &request.by, job.fence);
    (ManualOutcome::Run(lease), Writes::entry(entry))
}
