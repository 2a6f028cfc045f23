//! The SQLite coordinator's read side and the operators' writes: members, history, the
//! catalog, pauses and manual runs, each one transaction.

use std::sync::Arc;

use rusqlite::params;

use super::super::rules;
use super::super::{
    Admin, CatalogEntry, ClaimNotice, HistoryEntry, ManualRequest, ManualState, Member, PauseState,
};
use super::SqliteCoordinator;
use crate::error::Error;
use crate::job::BoxFuture;

impl Admin for SqliteCoordinator {
    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>, Error>> {
        Box::pin(self.read("members", move |tx, _| {
            let mut members: Vec<Member> = tx
                .members()?
                .into_iter()
                .map(|(node, record)| Member {
                    node,
                    heartbeat_ms: record.heartbeat_ms,
                    clock_offset_us: record.clock_offset_us,
                })
                .collect();
            members.sort_by(|a, b| (a.heartbeat_ms, &a.node).cmp(&(b.heartbeat_ms, &b.node)));
            Ok(members)
        }))
    }

    fn history<'a>(
        &'a self,
        job: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<HistoryEntry>, Error>> {
        let job = job.to_string();
        Box::pin(self.read("history", move |tx, _| tx.history(&job, limit)))
    }

    fn histories<'a>(
        &'a self,
        jobs: &'a [String],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<HistoryEntry>>, Error>> {
        let jobs = jobs.to_vec();
        // One transaction on the file (a snapshot): no round trip to count.
        Box::pin(self.read("history", move |tx, _| {
            jobs.iter().map(|job| tx.history(job, limit)).collect()
        }))
    }

    fn pause<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        note: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let (job, by) = (job.to_string(), by.to_string());
        let note = note.map(str::to_string);
        Box::pin(self.write("pause", move |tx, now| {
            let before = tx.load(&job)?;
            let mut record = before.clone();
            let writes = rules::pause::pause(&mut record, &by, note.as_deref(), now);
            tx.store(&job, &before, &record)?;
            tx.append(&job, &writes.history)
        }))
    }

    fn resume<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
    ) -> BoxFuture<'a, Result<Option<PauseState>, Error>> {
        let (job, by) = (job.to_string(), by.to_string());
        Box::pin(self.write("resume", move |tx, _| {
            let before = tx.load(&job)?;
            let mut record = before.clone();
            let (ended, writes) = rules::pause::resume(&mut record, &by);
            tx.store(&job, &before, &record)?;
            tx.append(&job, &writes.history)?;
            Ok(ended)
        }))
    }

    fn pause_state<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Option<PauseState>, Error>> {
        let job = job.to_string();
        Box::pin(self.read("pause", move |tx, _| Ok(tx.load(&job)?.pause)))
    }

    fn catalog(&self) -> BoxFuture<'_, Result<Vec<CatalogEntry>, Error>> {
        // A read (it takes no write lock, so a view never holds up a claim): registrations
        // follow the members (`rules::members::prune`) in what it answers; the file itself is
        // pruned by registrations, leaves and evictions.
        Box::pin(self.read("catalog", move |tx, now| {
            let members = tx.members()?;
            let mut catalog = tx.registrations_of(None)?;
            rules::members::prune_all(&mut catalog, &|node| members.contains_key(node));
            let mut entries = Vec::with_capacity(catalog.len());
            for (name, registrations) in catalog {
                entries.push(CatalogEntry {
                    registrations: rules::members::answer(&registrations),
                    state: tx.load(&name)?.state(now),
                    name,
                });
            }
            Ok(entries)
        }))
    }

    fn request_manual<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<ManualRequest, Error>> {
        let (job, by) = (job.to_string(), by.to_string());
        Box::pin(async move {
            let id = format!("{:016x}", super::super::new_claim_id());
            let request = self
                .write("trigger", move |tx, now| {
                    let latest = tx.latest_manual(&job)?;
                    let request = rules::manual::request(&job, id, &by, force, latest, now);
                    tx.put_manual(&request, &ManualState::Pending)?;
                    Ok(request)
                })
                .await?;
            // Wakes the members of this process now; the others see it at their heartbeat.
            self.notices.send(ClaimNotice {
                job: Arc::from(request.job.as_str()),
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
        let (job, id) = (job.to_string(), id.to_string());
        Box::pin(self.read("trigger", move |tx, _| {
            Ok(tx.manual(&job, &id)?.map(|(_, state)| state))
        }))
    }

    fn remove<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let job = job.to_string();
        Box::pin(self.write("remove", move |tx, _| {
            for table in [
                "fourit_jobs",
                "fourit_leases",
                "fourit_history",
                "fourit_defs",
                "fourit_manual",
            ] {
                tx.tx.execute(
                    &format!("DELETE FROM {table} WHERE ns = ?1 AND job = ?2"),
                    params![tx.ns, job],
                )?;
            }
            Ok(())
        }))
    }
}
