//! The seam's side of the Redis coordinator: `Coordinator`, each method one script call or
//! pipeline (the manual runs and the catalog in their own files).

use std::time::Duration;

use super::{BACKEND, RedisCoordinator, keys, link, replies, scripts};
use crate::coordinator::{
    ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator, Heartbeat, Lease, RunRecord,
};
use crate::error::{Error, ErrorKind as Kind};
use crate::job::BoxFuture;

impl Coordinator for RedisCoordinator {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn claim_notices(&self) -> Option<ClaimNotices> {
        Some(self.notices.subscribe())
    }

    fn missed_ticks(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<crate::coordinator::MissedNotice>> {
        Some(self.missed.subscribe())
    }

    fn claim<'a>(
        &'a self,
        requests: &'a [ClaimRequest],
    ) -> BoxFuture<'a, Result<Vec<ClaimOutcome>, Error>> {
        Box::pin(self.claim_all(requests))
    }

    fn keep_alive<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let key = self.job_keys(&lease.job).lease_of(lease);
            let command = self.scripts.keep_alive(&key, &lease.run_id(), ttl);
            let reply = self
                .script("keep-alive", scripts::KEEP_ALIVE, command)
                .await?;
            replies::decode_keep_alive(reply)
        })
    }

    fn release<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let run = [(lease.clone(), record.clone())];
            self.release_runs(&run).await.pop().unwrap_or_else(|| {
                Err(self.fail("release", Kind::Protocol, "no answer for the release"))
            })
        })
    }

    fn release_all<'a>(
        &'a self,
        runs: &'a [(Lease, RunRecord)],
    ) -> BoxFuture<'a, Vec<Result<bool, Error>>> {
        Box::pin(self.release_runs(runs))
    }

    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        stale_after: Duration,
        clock_offset_us: Option<i64>,
    ) -> BoxFuture<'a, Result<Heartbeat, Error>> {
        Box::pin(async move {
            let known = self.known_members().map(|(version, _)| version);
            let command = self.scripts.heartbeat(
                &self.nodes_key(),
                node,
                stale_after,
                known.as_deref(),
                clock_offset_us,
            );
            let reply = self
                .script("heartbeat", scripts::HEARTBEAT, command)
                .await?;
            let mut reply = replies::decode_heartbeat(reply)?;
            let members = match reply.members.take() {
                Some(members) => {
                    self.remember_members(reply.version.clone(), members.clone());
                    members
                }
                None => match self.known_members() {
                    Some((version, members)) if version == reply.version => members,
                    // Another heartbeat of this coordinator replaced the copy meanwhile:
                    // ask for the list outright.
                    _ => {
                        let command = self.scripts.heartbeat(
                            &self.nodes_key(),
                            node,
                            stale_after,
                            None,
                            clock_offset_us,
                        );
                        let raw = self
                            .script("heartbeat", scripts::HEARTBEAT, command)
                            .await?;
                        let again = replies::decode_heartbeat(raw)?;
                        // Members forgotten by either heartbeat are named.
                        reply.evicted.extend(again.evicted);
                        let members = again.members.unwrap_or_default();
                        self.remember_members(again.version, members.clone());
                        members
                    }
                },
            };
            // Members forgotten as silent: registrations follow the members (the rule
            // book's `prune`, rules/members.rs, in the jobs' slots). Maintenance: the
            // heartbeat's answer does not wait on it failing (the next catalog read or
            // registration prunes them).
            if !reply.evicted.is_empty()
                && let Err(err) = self.prune_catalog("heartbeat").await
            {
                tracing::debug!(error = %err, "could not prune the registrations of silent members");
            }
            Ok(Heartbeat {
                server_us: reply.server_us,
                members,
                manual_pending: reply.manual_pending,
                evicted: reply.evicted,
            })
        })
    }

    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>> {
        Box::pin(async move {
            let slot = link::slot(&self.nodes_key());
            let (seconds, micros) = self.call("time", self.link.time(slot)).await?;
            Ok(Some(seconds * 1_000_000 + micros))
        })
    }

    fn manual_requests(
        &self,
    ) -> BoxFuture<'_, Result<Vec<crate::coordinator::ManualRequest>, Error>> {
        self.waiting_manual()
    }

    fn claim_manual<'a>(
        &'a self,
        request: &'a crate::coordinator::ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: crate::job::Overlap,
    ) -> BoxFuture<'a, Result<crate::coordinator::ManualOutcome, Error>> {
        self.take_manual(request, node, lease_ttl, overlap)
    }

    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [crate::coordinator::JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<crate::coordinator::Registrations>, Error>> {
        self.register_jobs(node, jobs)
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // The version goes with the member: a token of this leave's own replaces it, so
            // every member fetches the list again, and the heartbeat script hands out versions
            // that differ from every one before, even at the same instant. (Both keys share a
            // slot.)
            let nodes = self.nodes_key();
            let token = format!("left-{:016x}", crate::coordinator::new_claim_id());
            let mut pipe = redis::pipe();
            pipe.cmd("ZREM")
                .arg(&nodes)
                .arg(node)
                .ignore()
                .cmd("SET")
                .arg(keys::version_key(&nodes))
                .arg(token)
                .ignore()
                // Its clock offset goes with it (the heartbeat prunes the offsets only when a
                // heartbeat follows: not after the last member left).
                .cmd("HDEL")
                .arg(keys::clocks_key(&nodes))
                .arg(node)
                .ignore();
            let mut conn = self.link.get();
            let () = self.call("leave", pipe.query_async(&mut conn)).await?;
            // Its registrations go, but the last of a job (the rule book's `prune`); left to
            // the next registration or catalog read if this fails: the member has left.
            if let Err(err) = self.prune_catalog("leave").await {
                tracing::debug!(error = %err, "could not prune the registrations of a member that left");
            }
            Ok(())
        })
    }
}
