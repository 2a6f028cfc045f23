//! The claim: one tick of one job decided against its high-water mark, once fleet-wide.
//!
//! In order (translated by `redis/claim.lua` and `fourit_claim` in `postgres/schema.sql`):
//! 1. **Taken or resumed.** A tick at or below the mark was decided: refused as
//!    [`ClaimOutcome::Taken`], unless this very claim (same claim id) won it and sends again
//!    after its answer was lost — then it is [`ClaimOutcome::Resumed`] with the same fence,
//!    its lease taken again if it expired and nobody holds it.
//! 2. **Early.** A tick later than the coordinator's clock plus [`FUTURE_TICK_TOLERANCE`]:
//!    refused, nothing recorded.
//! 3. **Handoff.** A claimer that is not the preferred member, before `tick + handoff`:
//!    [`ClaimOutcome::Retry`] at that instant, nothing recorded.
//! 4. **Decided.** The mark moves to the tick, and the tick is decided: `paused` if the job is
//!    paused (the pause counts it; its first goes to history), `overlap` if the job allows
//!    none and its lease is held (the holder goes to history), else a run with the next fence
//!    under a fresh lease. The scheduled ticks the mark moved over are recorded as `missed`.

use super::super::{ClaimOutcome, ClaimRequest, Lease};
use super::missed::MissedTicks;
use super::{FUTURE_TICK_TOLERANCE, Held, JobRecord, Now, Writes, ms, texts};
use crate::job::{FenceToken, Overlap};

/// Decides `request` against `job` at `now`.
pub(crate) fn claim(
    job: &mut JobRecord,
    request: &ClaimRequest,
    now: Now,
) -> (ClaimOutcome, Writes) {
    let mark = job.mark;
    if mark.is_some_and(|mark| mark >= request.tick_ms) {
        return resend(job, request, now);
    }
    if request.tick_ms > now.ms.saturating_add(ms(FUTURE_TICK_TOLERANCE)) {
        return (ClaimOutcome::Early { now_ms: now.ms }, Writes::none());
    }
    if let Some(preferred) = &request.preferred
        && *preferred != request.node
    {
        let open_at = request.tick_ms.saturating_add(ms(request.handoff));
        if now.ms < open_at {
            let retry = ClaimOutcome::Retry {
                at_ms: open_at,
                now_ms: now.ms,
            };
            return (retry, Writes::none());
        }
    }
    job.mark = Some(request.tick_ms);
    let (outcome, mut writes) = decide(job, request, now);
    if let (Some(mark), Some(schedule)) = (mark, &request.schedule)
        && let Some(ticks) = MissedTicks::between(schedule, mark, request.tick_ms)
    {
        writes.history.push(ticks.entry(&request.node));
        writes.missed = Some(ticks);
    }
    (outcome, writes)
}

/// Whether a claim's answer is sent on the notice channel: a decided tick that named a
/// preferred member (others may be waiting out its handoff).
pub(crate) fn notifies(request: &ClaimRequest, outcome: &ClaimOutcome) -> bool {
    request.preferred.is_some()
        && matches!(
            outcome,
            ClaimOutcome::Run(_) | ClaimOutcome::Overlap { .. } | ClaimOutcome::Paused
        )
}

/// The lease a claim's run holds.
fn lease(request: &ClaimRequest, fence: u64) -> Lease {
    Lease {
        job: request.job.clone(),
        tick_ms: request.tick_ms,
        fence: FenceToken(fence),
        node: request.node.clone(),
        overlap: request.overlap,
        manual: false,
    }
}

/// A claim of a tick already decided: resumed if it is this very claim's (its lease taken
/// again if it expired and nobody holds it), else taken.
fn resend(job: &mut JobRecord, request: &ClaimRequest, now: Now) -> (ClaimOutcome, Writes) {
    if job.mark != Some(request.tick_ms) || job.claim != Some(request.claim_id) || job.fence == 0 {
        return (ClaimOutcome::Taken, Writes::none());
    }
    let again = lease(request, job.fence);
    let id = again.run_id();
    match job.slot_holder(again.slot(), now) {
        Some(holder) if holder == id => (ClaimOutcome::Resumed(again), Writes::none()),
        Some(_) => (ClaimOutcome::Taken, Writes::none()),
        None => {
            let held = Held {
                run_id: id,
                expires_ms: now.lease_ms.saturating_add(ms(request.lease_ttl)),
            };
            job.take_slot(again.slot(), held, now);
            (ClaimOutcome::Resumed(again), Writes::record())
        }
    }
}

/// The tick is decided: paused, an overlap, or a run.
fn decide(job: &mut JobRecord, request: &ClaimRequest, now: Now) -> (ClaimOutcome, Writes) {
    if let Some(pause) = &mut job.pause {
        pause.ticks += 1;
        pause.last_tick_ms = Some(request.tick_ms);
        if pause.ticks == 1 {
            pause.first_tick_ms = Some(request.tick_ms);
            let entry = texts::paused(request.tick_ms, &request.node, pause);
            return (ClaimOutcome::Paused, Writes::entry(entry));
        }
        return (ClaimOutcome::Paused, Writes::record());
    }
    if request.overlap == Overlap::Skip
        && let Some(holder) = job.holder(now)
    {
        let holder = holder.to_string();
        let entry = texts::overlap(request.tick_ms, &request.node, &holder);
        return (ClaimOutcome::Overlap { holder }, Writes::entry(entry));
    }
    job.fence += 1;
    let run = lease(request, job.fence);
    job.claim = Some(request.claim_id);
    job.last = super::LastRun {
        node: Some(request.node.to_string()),
        started_ms: Some(now.ms),
        finished_ms: None,
        outcome: Some("running".to_string()),
        error: None,
    };
    let held = Held {
        run_id: run.run_id(),
        expires_ms: now.lease_ms.saturating_add(ms(request.lease_ttl)),
    };
    job.take_slot(run.slot(), held, now);
    (ClaimOutcome::Run(run), Writes::record())
}
