//! A job's pause, fleet-wide: from the next claim on, each tick is decided as paused (the
//! claim rule counts it) until the job is resumed. Translated by `redis/pause.lua`,
//! `redis/resume.lua` and `fourit_resume` in `postgres/schema.sql`.

use super::super::PauseState;
use super::{JobRecord, Now, Writes, texts};

/// Pauses the job by `by`, with `note` (an empty note is none). Pausing a paused job replaces
/// who, why and since when, and keeps its count.
pub(crate) fn pause(job: &mut JobRecord, by: &str, note: Option<&str>, now: Now) -> Writes {
    let kept = job.pause.take();
    job.pause = Some(PauseState {
        by: by.to_string(),
        note: note.filter(|note| !note.is_empty()).map(str::to_string),
        since_ms: now.ms,
        ticks: kept.as_ref().map_or(0, |pause| pause.ticks),
        first_tick_ms: kept.as_ref().and_then(|pause| pause.first_tick_ms),
        last_tick_ms: kept.as_ref().and_then(|pause| pause.last_tick_ms),
    });
    Writes::record()
}

/// Resumes the job (from its next tick: no backfill), answering the pause it ended; a pause
/// that paused ticks goes to history as `resumed`, with their count, first and last.
pub(crate) fn resume(job: &mut JobRecord, by: &str) -> (Option<PauseState>, Writes) {
    let Some(pause) = job.pause.take() else {
        return (None, Writes::none());
    };
    let writes = match texts::resumed(&pause, by) {
        Some(entry) => Writes::entry(entry),
        None => Writes::record(),
    };
    (Some(pause), writes)
}
