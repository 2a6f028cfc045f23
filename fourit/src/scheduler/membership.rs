//! Membership and the fleet's clock: the heartbeat announces this process, learns the live
//! members and samples the coordinator's clock; after a step of either clock it measures the
//! offset again at once.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tracing::{info, warn};

use super::outage::Outage;
use crate::clock::FleetClock;
use crate::coordinator::Coordinator;
use crate::events::{Event, Events};

/// Samples taken to measure the offset to the coordinator's clock, at start and after a step.
const CLOCK_SAMPLES: usize = 5;

/// The live members as of the last heartbeat, sorted; always includes this node.
#[derive(Debug)]
pub(crate) struct Members {
    view: RwLock<Arc<[Arc<str>]>>,
}

impl Members {
    /// A view of this node alone, until the first heartbeat.
    pub(crate) fn alone(node: &Arc<str>) -> Members {
        Members {
            view: RwLock::new(Arc::from(vec![node.clone()])),
        }
    }

    /// The current view.
    pub(crate) fn view(&self) -> Arc<[Arc<str>]> {
        match self.view.read() {
            Ok(view) => view.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the view; answers the previous one.
    fn set(&self, node: &Arc<str>, members: Vec<String>) -> Arc<[Arc<str>]> {
        let mut members: Vec<Arc<str>> = members.into_iter().map(Arc::from).collect();
        if !members.contains(node) {
            members.push(node.clone());
        }
        members.sort();
        let members = Arc::from(members);
        match self.view.write() {
            Ok(mut view) => std::mem::replace(&mut *view, members),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), members),
        }
    }
}

/// What the heartbeat task works with.
#[derive(Debug)]
pub(crate) struct Heartbeat {
    pub(crate) coordinator: Arc<dyn Coordinator>,
    pub(crate) node: Arc<str>,
    pub(crate) clock: Arc<FleetClock>,
    pub(crate) members: Arc<Members>,
    pub(crate) outage: Arc<Outage>,
    pub(crate) interval: Duration,
    pub(crate) max_clock_offset: Duration,
    /// Where manual runs go when a heartbeat says some are waiting.
    pub(crate) manual: Option<Arc<super::manual::ManualRuns>>,
    /// The scheduler's listeners.
    pub(crate) events: Arc<Events>,
}

impl Heartbeat {
    /// Takes a few samples of the coordinator's clock, so scheduling starts in the fleet's
    /// time. Returns whether the offset is above the allowed one (and says so).
    pub(crate) async fn sync_clock(&self) -> bool {
        if !self.measure_clock().await {
            return false;
        }
        // A step noticed before the first sample is part of the initial offset, not news.
        self.clock.take_pending_step();
        let offset_ms = self.clock.offset_us() / 1000;
        let off = offset_ms.abs() > self.max_offset_ms();
        if off {
            warn_clock_off(offset_ms);
        }
        off
    }

    /// Announces this process every interval, refreshes the members view and samples the
    /// clock; re-measures at once after a step. `clock_off`: whether the offset was above the
    /// allowed one at start (warned once already).
    pub(crate) async fn run(self, mut clock_off: bool) {
        let stale_after = self.interval.saturating_mul(3);
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.clock.stepped() => {
                    if let Some(off) = self.remeasure_after_step().await {
                        clock_off = off;
                    }
                    continue;
                }
            }
            let start = self.clock.sample_start();
            // The fleet clock's offset is the coordinator's minus this host's; operators see
            // how far this host runs ahead.
            let ahead_us = self.clock.measured().then(|| -self.clock.offset_us());
            match self
                .coordinator
                .heartbeat(&self.node, stale_after, ahead_us)
                .await
            {
                Ok(beat) => {
                    self.outage.succeeded();
                    if let Some(server_us) = beat.server_us {
                        let offset_ms = self.clock.record(start, server_us) / 1000;
                        let off = offset_ms.abs() > self.max_offset_ms();
                        // After a step, the re-measurement says it all, once.
                        if !self.clock.step_pending() && off != clock_off {
                            clock_off = off;
                            if off {
                                warn_clock_off(offset_ms);
                            } else {
                                info!(
                                    offset_ms,
                                    "this host's clock agrees with the coordinator's again"
                                );
                            }
                        }
                    }
                    let count = beat.members.len().max(1);
                    let before = self.members.set(&self.node, beat.members);
                    self.log_departures(&before, &beat.evicted, stale_after);
                    if self.events.active() {
                        self.tell_members(&before, count);
                    }
                    if beat.manual_pending
                        && let Some(manual) = &self.manual
                    {
                        manual.take_waiting();
                    }
                }
                Err(err) => self.outage.failed("heartbeat", &err, 0),
            }
        }
    }

    /// Says who left the live set since `before`: a member that left (shut down) at INFO;
    /// one this heartbeat forgot because it went silent without leaving (killed, cut off,
    /// stalled) at WARN, by the one member whose heartbeat forgot it. Either way its share
    /// of the ticks moves to the members still live.
    fn log_departures(&self, before: &[Arc<str>], evicted: &[String], stale_after: Duration) {
        let now = self.members.view();
        for node in evicted {
            warn!(
                member = %node,
                silent_for_more_than = ?stale_after,
                "a member went silent without leaving (no heartbeat): it is no longer counted \
                 as live, and the others take its ticks"
            );
        }
        for node in before.iter().filter(|node| !now.contains(node)) {
            if !evicted.iter().any(|gone| **gone == **node) {
                info!(member = %node, "a member left the live set");
            }
        }
    }

    /// Tells the listeners who joined and who left since `before`, and the heartbeat.
    fn tell_members(&self, before: &[Arc<str>], count: usize) {
        let now = self.members.view();
        for node in now.iter().filter(|node| !before.contains(node)) {
            if **node != *self.node {
                self.events.emit(&Event::MemberJoined { node });
            }
        }
        for node in before.iter().filter(|node| !now.contains(node)) {
            self.events.emit(&Event::MemberLeft { node });
        }
        self.events.emit(&Event::Heartbeat {
            members: count,
            clock_offset_us: -self.clock.offset_us(),
        });
    }

    fn max_offset_ms(&self) -> i64 {
        i64::try_from(self.max_clock_offset.as_millis()).unwrap_or(i64::MAX)
    }

    /// Takes [`CLOCK_SAMPLES`] samples of the coordinator's clock, one after the other;
    /// `false` if the coordinator has no clock (or did not answer), which leaves the offset
    /// as it was.
    async fn measure_clock(&self) -> bool {
        for _ in 0..CLOCK_SAMPLES {
            let start = self.clock.sample_start();
            match self.coordinator.server_time().await {
                Ok(Some(server_us)) => {
                    self.clock.record(start, server_us);
                }
                Ok(None) | Err(_) => return false,
            }
        }
        true
    }

    /// Measures the offset again after a step (or when a claim was refused as early), and
    /// says so once, with the step and the new offset. After a step, answers whether the
    /// offset is now above the allowed one: the warning already said it.
    async fn remeasure_after_step(&self) -> Option<bool> {
        let measured = self.measure_clock().await;
        let offset_ms = self.clock.offset_us() / 1000;
        let step = self.clock.take_pending_step()?;
        self.events.emit(&Event::ClockStep {
            step_ms: step.local_us / 1000,
            offset_ms,
        });
        if step.local_us != 0 {
            warn!(
                step_ms = step.local_us / 1000,
                offset_ms,
                measured,
                "this host's wall clock stepped; fourit noticed it at once and keeps \
                 scheduling by the coordinator's clock (the offset to it was measured again)"
            );
        }
        if step.offset_jump_us != 0 {
            warn!(
                moved_ms = step.offset_jump_us / 1000,
                offset_ms,
                measured,
                "the coordinator's clock moved against this host's; fourit follows the \
                 coordinator's clock (the offset to it was measured again)"
            );
        }
        Some(offset_ms.abs() > self.max_offset_ms())
    }
}

/// The one warning about a host clock that is off from the coordinator's.
fn warn_clock_off(offset_ms: i64) {
    warn!(
        offset_ms,
        "this host's clock is off from the coordinator's; fourit schedules by the \
         coordinator's clock, but check the host's time synchronisation"
    );
}
