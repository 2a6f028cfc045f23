//! A member's registration of its jobs in the catalog (`ns:jobs`, `ns:{job}:defs`), answered
//! with every member's registration of each.

use super::{RedisCoordinator, link, scripts};
use crate::error::{Error, ErrorKind as Kind};
use crate::job::BoxFuture;

impl RedisCoordinator {
    /// Records `node`'s jobs in the catalog and answers every registration of each
    /// ([`Coordinator::register`](crate::coordinator::Coordinator::register)).
    pub(super) fn register_jobs<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [crate::coordinator::JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<crate::coordinator::Registrations>, Error>> {
        Box::pin(async move {
            if jobs.is_empty() {
                return Ok(Vec::new());
            }
            let mut index = redis::cmd("SADD");
            index.arg(self.jobs_key());
            for job in jobs {
                index.arg(&job.name);
            }
            let mut commands = vec![(link::slot(&self.jobs_key()), index)];
            for job in jobs {
                let keys = self.job_keys(&job.name);
                let slot = link::slot(&keys.state);
                let mut set = redis::cmd("HSET");
                set.arg(keys.defs()).arg(node).arg(job.to_line());
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
            if let Some(Err(err)) = replies.next() {
                return Err(self.error("register", err));
            }
            let mut answers = Vec::with_capacity(jobs.len());
            for job in jobs {
                let (Some(set), Some(all)) = (replies.next(), replies.next()) else {
                    return Err(self.fail("register", Kind::Protocol, "no answer"));
                };
                set.map_err(|err| self.error("register", err))?;
                let all: std::collections::HashMap<String, String> =
                    redis::from_redis_value(all.map_err(|err| self.error("register", err))?.value)
                        .unwrap_or_default();
                let mut registrations: crate::coordinator::Registrations = all
                    .into_iter()
                    .filter_map(|(node, line)| {
                        crate::coordinator::JobDefinition::from_line(&job.name, &line)
                            .map(|def| (node, def))
                    })
                    .collect();
                // By node, as the rule book answers them (the hash's order is Redis's own,
                // and the map's random).
                registrations.sort_by(|a, b| a.0.cmp(&b.0));
                answers.push(registrations);
            }
            Ok(answers)
        })
    }
}
