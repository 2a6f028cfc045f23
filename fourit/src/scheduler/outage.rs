//! What an operator is told while this member cannot reach the coordinator: one warning when
//! it stops answering, a reminder at a slow, bounded rate with how long it has lasted, and one
//! line when it is back with how long it was out — not one line per tick.
//!
//! The wording is about this member: while it cannot claim, the other members claim the
//! ticks they can reach, so "not claimed here" is not "not run". The fleet's history (and
//! its missed records) tells what really ran.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::events::{Event, Events};

/// How often a reminder is logged while the outage lasts.
pub(crate) const REMINDER_EVERY: Duration = Duration::from_secs(30);

/// When the outage began, and when it was last told.
#[derive(Clone, Copy, Debug)]
struct Down {
    since: Instant,
    told: Instant,
}

/// Tracks whether the coordinator is answering, for the claims and the heartbeat alike.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    down: Mutex<Option<Down>>,
    unclaimed: AtomicU64,
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

    fn down(&self) -> std::sync::MutexGuard<'_, Option<Down>> {
        self.down.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A call failed during `what`; this member could not claim `unclaimed_ticks` ticks
    /// because of it.
    pub(crate) fn failed(&self, what: &str, err: &dyn std::fmt::Display, unclaimed_ticks: u64) {
        let unclaimed =
            self.unclaimed.fetch_add(unclaimed_ticks, Ordering::Relaxed) + unclaimed_ticks;
        let now = Instant::now();
        let mut down = self.down();
        match &mut *down {
            None => {
                *down = Some(Down {
                    since: now,
                    told: now,
                });
                drop(down);
                warn!(
                    error = %err,
                    "this member cannot reach the coordinator ({what} failed): it claims no \
                     tick until the coordinator answers again (fail closed); members that \
                     reach it run the ticks"
                );
                if self.events.active() {
                    self.events.emit(&Event::CoordinatorUnavailable {
                        operation: what,
                        error: &err.to_string(),
                    });
                }
            }
            Some(state) if now.duration_since(state.told) >= REMINDER_EVERY => {
                state.told = now;
                let out_for = now.duration_since(state.since);
                drop(down);
                warn!(
                    error = %err,
                    out_for = ?Duration::from_secs(out_for.as_secs()),
                    unclaimed_ticks = unclaimed,
                    "this member still cannot reach the coordinator ({what} failed); ticks it \
                     could not claim meanwhile ran on members that reach it, if any (the \
                     fleet's history shows which)"
                );
            }
            Some(_) => {
                drop(down);
                debug!(error = %err, "coordinator still unreachable during {what}");
            }
        }
    }

    /// A call succeeded.
    pub(crate) fn succeeded(&self) {
        let Some(state) = self.down().take() else {
            return;
        };
        let unclaimed = self.unclaimed.swap(0, Ordering::Relaxed);
        let out_for = state.since.elapsed();
        info!(
            out_for = ?Duration::from_millis(u64::try_from(out_for.as_millis()).unwrap_or(u64::MAX)),
            unclaimed_ticks = unclaimed,
            "this member reaches the coordinator again and claims ticks as before; the ticks \
             it could not claim meanwhile ran elsewhere unless the fleet's history records \
             them as missed"
        );
        self.events.emit(&Event::CoordinatorBack {
            skipped_ticks: unclaimed,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unit tests' logs, captured.
    fn logs() -> (tracing::subscriber::DefaultGuard, Arc<Mutex<Vec<u8>>>) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Captured(writer.clone()))
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (tracing::subscriber::set_default(subscriber), buffer)
    }

    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_is_told_once_reminded_every_30_s_and_its_end_says_how_long() {
        let (_guard, buffer) = logs();
        let outage = Outage::default();
        let text = || String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned();
        // A failed call every 2 s for 65 s: the first tells, then 30 s and 60 s remind.
        for _ in 0..33 {
            outage.failed("heartbeat", &"timed out", 1);
            tokio::time::advance(Duration::from_secs(2)).await;
        }
        assert!(outage.down().is_some());
        let told = text();
        assert_eq!(
            told.matches("cannot reach the coordinator").count(),
            3,
            "{told}"
        );
        assert_eq!(told.matches("still cannot reach").count(), 2, "{told}");
        assert!(told.contains("out_for=30s"), "{told}");
        assert!(told.contains("out_for=60s"), "{told}");
        assert!(!told.contains("skipped"), "no wording of lost runs: {told}");
        outage.succeeded();
        assert!(outage.down().is_none());
        let told = text();
        assert!(told.contains("reaches the coordinator again"), "{told}");
        assert!(told.contains("out_for=66s"), "{told}");
        assert!(told.contains("unclaimed_ticks=33"), "{told}");
        // Back to normal: a success says nothing more.
        outage.succeeded();
        assert_eq!(text().matches("again and claims").count(), 1);
    }
}
