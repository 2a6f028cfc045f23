//! A member's registration of its jobs in the catalog (`ns:jobs`, `ns:{job}:defs`), answered
//! with every member's registration of each; and the catalog pruned as the members change.
//!
//! Runs the rule book's `register` and `prune` (`coordinator/rules/members.rs`) over what it
//! reads and sends the deletions back: a job's keys live in its slot and the members in
//! another, so the members are read first (or in the same pipeline) and each job's
//! registrations that go are deleted in the job's slot (`HDEL`), one pipeline per slot.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{RedisCoordinator, link, scripts};
use crate::coordinator::rules::members::{self, JobRegistrations, Registered};
use crate::coordinator::{JobDefinition, Registrations};
use crate::error::{Error, ErrorKind as Kind};
use crate::job::BoxFuture;

/// A job's `defs` hash as the rules read it (lines this version cannot read left out).
pub(super) fn parse_defs(job: &str, defs: HashMap<String, String>) -> JobRegistrations {
    defs.into_iter()
        .filter_map(|(node, line)| {
            Registered::parse(job, &line).map(|registered| (node, registered))
        })
        .collect()
}

impl RedisCoordinator {
    /// Records `node`'s jobs in the catalog at Redis's time, prunes their registrations to
    /// the live members (this one included), and answers the registrations of each
    /// ([`Coordinator::register`](crate::coordinator::Coordinator::register)).
    pub(super) fn register_jobs<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<Registrations>, Error>> {
        Box::pin(async move {
            if jobs.is_empty() {
                return Ok(Vec::new());
            }
            // Redis's time where the members live (a cluster's nodes each have a clock).
            let nodes_slot = link::slot(&self.nodes_key());
            let (seconds, micros) = self.call("register", self.link.time(nodes_slot)).await?;
            let now_ms = seconds * 1000 + micros / 1000;
            let mut index = redis::cmd("SADD");
            index.arg(self.jobs_key());
            for job in jobs {
                index.arg(&job.name);
            }
            let mut live = redis::cmd("ZRANGE");
            live.arg(self.nodes_key()).arg(0).arg(-1);
            let mut commands = vec![(link::slot(&self.jobs_key()), index), (nodes_slot, live)];
            for job in jobs {
                let keys = self.job_keys(&job.name);
                let slot = link::slot(&keys.state);
                let mut set = redis::cmd("HSET");
                set.arg(keys.defs()).arg(node).arg(job.to_line_at(now_ms));
                let mut all = redis::cmd("HGETALL");
                all.arg(keys.defs());
                commands.extend([(slot, set), (slot, all)]);
            }
            let mut replies = self
                .call(
                    "register",
                    self.link.pipeline(scripts::CLAIM, commands, None),
                )
                .await?
                .into_iter();
            let mut next = || -> Result<redis::Value, Error> {
                match replies.next() {
                    Some(Ok(answer)) => Ok(answer.value),
                    Some(Err(err)) => Err(self.error("register", err)),
                    None => Err(self.fail("register", Kind::Protocol, "no answer")),
                }
            };
            next()?;
            let live: HashSet<String> = redis::from_redis_value(next()?).unwrap_or_default();
            let mut answers = Vec::with_capacity(jobs.len());
            let mut gone = Vec::new();
            for job in jobs {
                next()?;
                let all: HashMap<String, String> =
                    redis::from_redis_value(next()?).unwrap_or_default();
                let mut registrations = parse_defs(&job.name, all);
                // The rule book's `register` (this member's line is in the hash already).
                let def = job.clone();
                let stored = Registered {
                    def,
                    at_ms: Some(now_ms),
                };
                registrations.insert(node.to_string(), stored);
                let live = |other: &str| other == node || live.contains(other);
                for other in members::prune(&mut registrations, &live) {
                    gone.push((job.name.clone(), other));
                }
                answers.push(members::answer(&registrations));
            }
            self.forget_registrations("register", &gone).await?;
            Ok(answers)
        })
    }

    /// The live members (`ns:nodes`).
    pub(super) async fn live_members(
        &self,
        operation: &'static str,
    ) -> Result<HashSet<String>, Error> {
        let mut conn = self.link.get();
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.nodes_key()).arg(0).arg(-1);
        self.call(operation, cmd.query_async(&mut conn)).await
    }

    /// Deletes the registrations `gone` names (job, node): one `HDEL` per job, in the job's
    /// slot, one pipeline per slot.
    pub(super) async fn forget_registrations(
        &self,
        operation: &'static str,
        gone: &[(String, String)],
    ) -> Result<(), Error> {
        let mut by_job: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (job, node) in gone {
            by_job.entry(job).or_default().push(node);
        }
        if by_job.is_empty() {
            return Ok(());
        }
        let commands = by_job
            .into_iter()
            .map(|(job, nodes)| {
                let keys = self.job_keys(job);
                let mut cmd = redis::cmd("HDEL");
                cmd.arg(keys.defs()).arg(nodes);
                (link::slot(&keys.state), cmd)
            })
            .collect();
        let replies = self
            .call(
                operation,
                self.link.pipeline(scripts::CLAIM, commands, None),
            )
            .await?;
        for reply in replies {
            reply.map_err(|err| self.error(operation, err))?;
        }
        Ok(())
    }

    /// Registrations follow the members ([`members::prune_all`]) over every job in
    /// `ns:jobs`: after a leave, and after a heartbeat that forgot silent members.
    pub(super) async fn prune_catalog(&self, operation: &'static str) -> Result<(), Error> {
        let mut conn = self.link.get();
        let mut names = redis::cmd("SMEMBERS");
        names.arg(self.jobs_key());
        let names: Vec<String> = self.call(operation, names.query_async(&mut conn)).await?;
        if names.is_empty() {
            return Ok(());
        }
        let live = self.live_members(operation).await?;
        let commands = names
            .iter()
            .map(|name| {
                let keys = self.job_keys(name);
                let mut all = redis::cmd("HGETALL");
                all.arg(keys.defs());
                (link::slot(&keys.state), all)
            })
            .collect();
        let replies = self
            .call(
                operation,
                self.link.pipeline(scripts::CLAIM, commands, None),
            )
            .await?;
        let mut catalog = BTreeMap::new();
        for (name, reply) in names.into_iter().zip(replies) {
            let value = reply.map_err(|err| self.error(operation, err))?.value;
            let defs: HashMap<String, String> = redis::from_redis_value(value).unwrap_or_default();
            catalog.insert(name.clone(), parse_defs(&name, defs));
        }
        let gone = members::prune_all(&mut catalog, &|node| live.contains(node));
        self.forget_registrations(operation, &gone).await
    }
}
