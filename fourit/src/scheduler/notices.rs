//! What the claim notices say: the latest tick of each job decided somewhere in the fleet, so
//! that the fallback claims after the handoff go out only for ticks nobody claimed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::manual::ManualRuns;
use crate::coordinator::{ClaimNotice, ClaimNotices};
use crate::job::Job;

/// The latest decided tick heard of, per job.
#[derive(Debug)]
pub(crate) struct Heard {
    /// Job name → index in `ticks`.
    index: HashMap<Arc<str>, usize>,
    /// Per job, the latest decided tick heard of (UTC ms; `i64::MIN` for none).
    ticks: Vec<AtomicI64>,
}

impl Heard {
    pub(crate) fn new(jobs: &[Job]) -> Heard {
        Heard {
            index: jobs
                .iter()
                .enumerate()
                .map(|(index, job)| (job.name_arc().clone(), index))
                .collect(),
            ticks: jobs.iter().map(|_| AtomicI64::new(i64::MIN)).collect(),
        }
    }

    fn record(&self, notice: &ClaimNotice) {
        if notice.manual {
            return;
        }
        if let Some(&index) = self.index.get(&notice.job) {
            self.ticks[index].fetch_max(notice.tick_ms, Ordering::Relaxed);
        }
    }

    /// Whether the tick `tick_ms` of the job at `index` is known to be decided.
    pub(crate) fn decided(&self, index: usize, tick_ms: i64) -> bool {
        self.ticks
            .get(index)
            .is_some_and(|tick| tick.load(Ordering::Relaxed) >= tick_ms)
    }

    /// Records every notice of the feed until it ends, and hands the news of a manual run of
    /// one of this member's jobs to `manual`. Missed notices (a slow listener) only cost
    /// refused claims, or a manual run taken at the next heartbeat instead of at once.
    pub(crate) async fn listen(
        self: Arc<Heard>,
        mut notices: ClaimNotices,
        manual: Arc<ManualRuns>,
    ) {
        while let Some(notice) = notices.next().await {
            if notice.manual {
                if self.index.contains_key(&notice.job) {
                    manual.take_waiting();
                }
            } else {
                self.record(&notice);
            }
        }
    }
}
