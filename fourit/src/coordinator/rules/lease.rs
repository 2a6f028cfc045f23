//! A run's lease after its claim: kept alive while the run lasts, released when it ends.
//!
//! Both act only while the lease still holds the run's id (`node:fence:tick`): an expired
//! lease that another run took is never extended nor deleted by the old run. Translated by
//! `redis/keep_alive.lua`, `redis/release.lua` and `fourit_release` in `postgres/schema.sql`.

use std::time::Duration;

use super::super::{Lease, RunRecord};
use super::{Held, JobRecord, Now, Writes, ms, texts};

/// Extends `lease` by `ttl` from `now` if it is still this run's; whether it was.
pub(crate) fn keep_alive(job: &mut JobRecord, lease: &Lease, ttl: Duration, now: Now) -> bool {
    let id = lease.run_id();
    if job.slot_holder(lease.slot(), now) != Some(id.as_str()) {
        return false;
    }
    let held = Held {
        run_id: id,
        expires_ms: now.lease_ms.saturating_add(ms(ttl)),
    };
    job.take_slot(lease.slot(), held, now);
    true
}

/// Ends the run of `lease`: deletes the lease if it is still this run's (the answer), records
/// the outcome in history either way, and, for the job's latest run, its end (and forgets the
/// winning claim's id, so a late resend of that claim is not resumed).
///
/// A release sent again after its answer was lost (the run released last, whose lease is no
/// longer its own) changes nothing and answers `true`, even after a later run started. Only
/// the job's latest run is remembered so: an earlier run released after a later one started
/// (`overlap = "allow"`, a forced manual run) is recorded again if its release is sent twice.
pub(crate) fn release(
    job: &mut JobRecord,
    lease: &Lease,
    record: &RunRecord,
    now: Now,
) -> (bool, Writes) {
    let id = lease.run_id();
    let held = job.slot_holder(lease.slot(), now) == Some(id.as_str());
    let latest = job.fence == lease.fence.get();
    if !held && job.released.as_deref() == Some(id.as_str()) {
        return (true, Writes::none());
    }
    if held {
        job.free_slot(lease.slot());
    }
    if latest {
        job.claim = None;
        job.released = Some(id);
        job.last.finished_ms = Some(now.ms);
        job.last.outcome = Some(record.outcome.as_str().to_string());
        job.last.error = record.outcome.error().map(str::to_string);
    }
    job.drop_expired(now);
    (held, Writes::entry(texts::finished(lease, record)))
}
