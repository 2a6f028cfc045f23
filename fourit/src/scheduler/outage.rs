//! One warning when the coordinator stops answering and one when it is back, not one per tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tracing::{debug, info, warn};

use crate::events::{Event, Events};

/// Tracks whether the coordinator is answering, for the claims and the heartbeat alike.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    down: AtomicBool,
    skipped: AtomicU64,
    events: Arc<Events>,
}

impl Outage {
    /// Tracking that tells `events` too.
    pub(crate) fn new(events: Arc<Events>) -> Outage {
        Outage {
            events,
            ..Outage::default()
        }
    }

    /// A call failed during `what`; `skipped_ticks` ticks were skipped because of it.
    pub(crate) fn failed(&self, what: &str, err: &dyn std::fmt::Display, skipped_ticks: u64) {
        self.skipped.fetch_add(skipped_ticks, Ordering::Relaxed);
        if !self.down.swap(true, Ordering::AcqRel) {
            warn!(
                error = %err,
                "coordinator unavailable during {what}: ticks are skipped (fail closed) until it \
                 answers again"
            );
            if self.events.active() {
                self.events.emit(&Event::CoordinatorUnavailable {
                    operation: what,
                    error: &err.to_string(),
                });
            }
        } else {
            debug!(error = %err, "coordinator still unavailable during {what}");
        }
    }

    /// A call succeeded.
    pub(crate) fn succeeded(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            let skipped = self.skipped.swap(0, Ordering::Relaxed);
            info!(skipped_ticks = skipped, "coordinator reachable again");
            self.events.emit(&Event::CoordinatorBack {
                skipped_ticks: skipped,
            });
        }
    }
}
