//! Dispatching the ticks due together: placement over the members, the preferred claims at
//! once in a few pipelines, the others after the handoff.

use std::sync::Arc;
use std::time::Duration;

use super::claims::{Claims, IndexedClaim};
use super::membership::Members;
use crate::clock::Clock;
use crate::job::Job;
use crate::placement;

/// Claims sent in one pipeline; a larger batch goes out as several pipelines at once.
const CLAIM_CHUNK: usize = 8;

/// Hands due ticks to the claims.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    pub(crate) claims: Arc<Claims>,
    pub(crate) members: Arc<Members>,
    pub(crate) handoff: Duration,
}

impl Dispatcher {
    /// Places the due ticks: the ones this process is preferred for are claimed at once, the
    /// others after the handoff, each group in one round trip.
    pub(crate) fn dispatch(&self, jobs: &Arc<[Job]>, mut batch: Vec<IndexedClaim>) {
        let runner = &self.claims.runner;
        let node = &runner.node;
        let members = self.members.view();
        // Jobs due at the same tick are placed together, so they spread over the members.
        // Alone, this process is preferred for everything: no placement, no handoff, no
        // notices.
        batch.sort_by_key(|(_, request)| request.tick_ms);
        let mut start = if members.len() > 1 { 0 } else { batch.len() };
        while start < batch.len() {
            let tick_ms = batch[start].1.tick_ms;
            let end = batch[start..]
                .iter()
                .position(|(_, request)| request.tick_ms != tick_ms)
                .map_or(batch.len(), |offset| start + offset);
            let names: Vec<&str> = batch[start..end]
                .iter()
                .map(|(_, request)| &*request.job)
                .collect();
            let placed = placement::preferred(&names, tick_ms, &members);
            for ((_, request), preferred) in batch[start..end].iter_mut().zip(placed) {
                request.preferred = preferred;
            }
            start = end;
        }
        let (mine, others): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(_, request)| {
            request.handoff.is_zero()
                || request
                    .preferred
                    .as_ref()
                    .is_none_or(|preferred| preferred == node)
        });
        // Several pipelines sent at once rather than one: the coordinator answers the first
        // while it still runs the later ones' scripts, so the first runs start sooner.
        let mut mine = mine.into_iter().peekable();
        let mut claiming = Vec::new();
        while mine.peek().is_some() {
            let chunk: Vec<_> = mine.by_ref().take(CLAIM_CHUNK).collect();
            let claims = self.claims.clone();
            let jobs = jobs.clone();
            claiming.push(runner.tasks.spawn(async move {
                claims.claim_and_run(&jobs, chunk, None).await;
            }));
        }
        if others.is_empty() {
            return;
        }
        let claims = self.claims.clone();
        let jobs = jobs.clone();
        let handoff_ms = i64::try_from(self.handoff.as_millis()).unwrap_or(i64::MAX);
        let open_at = others
            .iter()
            .map(|(_, request)| request.tick_ms)
            .max()
            .unwrap_or_default()
            .saturating_add(handoff_ms);
        runner.tasks.spawn(async move {
            // The other members started claiming when this one did. However long this one's
            // own claims took (thousands of jobs due at once take a while), theirs take about
            // as long: give them a handoff after that, so their claims are heard of first.
            for claim in claiming {
                let _ = claim.await;
            }
            let own_claims_done = claims.runner.clock.now().timestamp_millis();
            let not_before = open_at.max(own_claims_done.saturating_add(handoff_ms));
            claims.claim_and_run(&jobs, others, Some(not_before)).await;
        });
    }
}
