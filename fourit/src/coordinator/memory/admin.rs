//! The memory coordinator's read side and the operators' writes: members, history, the
//! catalog, pauses and manual runs.

use std::sync::Arc;

use super::super::rules;
use super::super::{
    Admin, CatalogEntry, ClaimNotice, HistoryEntry, ManualRequest, ManualState, Member, PauseState,
};
use super::MemoryCoordinator;
use crate::error::Error;
use crate::job::BoxFuture;

impl Admin for MemoryCoordinator {
    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>, Error>> {
        Box::pin(async move {
            let mut members: Vec<Member> = self
                .state()
                .members
                .iter()
                .map(|(node, record)| Member {
                    node: node.clone(),
                    heartbeat_ms: record.heartbeat_ms,
                    clock_offset_us: record.clock_offset_us,
                })
                .collect();
            members.sort_by(|a, b| (a.heartbeat_ms, &a.node).cmp(&(b.heartbeat_ms, &b.node)));
            Ok(members)
        })
    }

    fn history<'a>(
        &'a self,
        job: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<HistoryEntry>, Error>> {
        Box::pin(async move {
            Ok(self
                .state()
                .jobs
                .get(job)
                .map(|job| job.history.iter().take(limit).cloned().collect())
                .unwrap_or_default())
        })
    }

    fn histories<'a>(
        &'a self,
        jobs: &'a [String],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<HistoryEntry>>, Error>> {
        Box::pin(async move {
            let state = self.state();
            Ok(jobs
                .iter()
                .map(|name| {
                    state
                        .jobs
                        .get(name)
                        .map(|job| job.history.iter().take(limit).cloned().collect())
                        .unwrap_or_default()
                })
                .collect())
        })
    }

    fn catalog(&self) -> BoxFuture<'_, Result<Vec<CatalogEntry>, Error>> {
        Box::pin(async move {
            let now = self.now();
            let mut state = self.state();
            state.prune_catalog();
            Ok(state
                .catalog
                .iter()
                .map(|(name, defs)| CatalogEntry {
                    name: name.clone(),
                    registrations: rules::members::answer(defs),
                    state: state
                        .jobs
                        .get(name)
                        .map(|job| job.record.state(now))
                        .unwrap_or_default(),
                })
                .collect())
        })
    }

    fn remove<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut state = self.state();
            state.catalog.remove(job);
            state.jobs.remove(job);
            state.manual.retain(|(name, _), _| name != job);
            Ok(())
        })
    }

    fn request_manual<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<ManualRequest, Error>> {
        Box::pin(async move {
            let id = format!("{:016x}", super::super::new_claim_id());
            let mut state = self.state();
            let latest = state
                .manual
                .values()
                .filter(|(request, _)| request.job == job)
                .map(|(request, _)| request.requested_ms)
                .max();
            let request = rules::manual::request(job, id, by, force, latest, self.now());
            state.manual.insert(
                (job.to_string(), request.id.clone()),
                (request.clone(), ManualState::Pending),
            );
            drop(state);
            self.notices.send(ClaimNotice {
                job: Arc::from(job),
                tick_ms: request.requested_ms,
                manual: true,
            });
            Ok(request)
        })
    }

    fn manual_state<'a>(
        &'a self,
        job: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ManualState>, Error>> {
        Box::pin(async move {
            Ok(self
                .state()
                .manual
                .get(&(job.to_string(), id.to_string()))
                .map(|(_, stands)| stands.clone()))
        })
    }

    fn pause<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        note: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let now = self.now();
            let mut state = self.state();
            let job = state.jobs.entry(job.to_string()).or_default();
            let writes = rules::pause::pause(&mut job.record, by, note, now);
            job.apply(writes);
            Ok(())
        })
    }

    fn resume<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
    ) -> BoxFuture<'a, Result<Option<PauseState>, Error>> {
        Box::pin(async move {
            let mut state = self.state();
            let Some(job) = state.jobs.get_mut(job) else {
                return Ok(None);
            };
            let (ended, writes) = rules::pause::resume(&mut job.record, by);
            job.apply(writes);
            Ok(ended)
        })
    }

    fn pause_state<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Option<PauseState>, Error>> {
        Box::pin(async move {
            Ok(self
                .state()
                .jobs
                .get(job)
                .and_then(|job| job.record.pause.clone()))
        })
    }
}
