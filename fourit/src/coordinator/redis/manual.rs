//! Manual runs (`fourit trigger`) on the member's side: the waiting ones read from the
//! index, one taken by the manual script, a decided one dropped from the index.

use std::time::Duration;

use redis::Value;

use super::{RedisCoordinator, keys, link, scripts};
use crate::coordinator::Lease;
use crate::error::{Error, ErrorKind as Kind};
use crate::job::BoxFuture;

impl RedisCoordinator {
    /// Drops a decided manual request from the index of waiting ones (best effort: a
    /// leftover entry only costs the next reader one lookup).
    pub(super) async fn forget_manual(&self, job: &str, id: &str) {
        let mut conn = self.link.get();
        let mut forget = redis::cmd("ZREM");
        forget
            .arg(keys::manual_index_key(&self.nodes_key()))
            .arg(format!("{job}\t{id}"));
        let _ = self
            .call("manual requests", forget.query_async::<i64>(&mut conn))
            .await;
    }

    /// The manual runs waiting for a member, oldest first ([`Coordinator::manual_requests`](crate::coordinator::Coordinator::manual_requests)).
    pub(super) fn waiting_manual(
        &self,
    ) -> BoxFuture<'_, Result<Vec<crate::coordinator::ManualRequest>, Error>> {
        Box::pin(async move {
            let index = keys::manual_index_key(&self.nodes_key());
            let mut conn = self.link.get();
            let mut range = redis::cmd("ZRANGE");
            range.arg(&index).arg(0).arg(-1);
            let entries: Vec<String> = self
                .call("manual requests", range.query_async(&mut conn))
                .await?;
            let wanted: Vec<(String, String)> = entries
                .iter()
                .filter_map(|entry| entry.split_once('\t'))
                .map(|(job, id)| (job.to_string(), id.to_string()))
                .collect();
            if wanted.is_empty() {
                return Ok(Vec::new());
            }
            let commands = wanted
                .iter()
                .map(|(job, id)| {
                    let keys = self.job_keys(job);
                    let mut get = redis::cmd("HGET");
                    get.arg(keys.manual()).arg(id);
                    (link::slot(&keys.state), get)
                })
                .collect();
            let replies = self
                .call(
                    "manual requests",
                    self.link.pipeline(scripts::CLAIM, commands, None),
                )
                .await?;
            let mut pending = Vec::new();
            for ((job, id), reply) in wanted.into_iter().zip(replies) {
                let text: Option<String> = reply
                    .ok()
                    .and_then(|answer| redis::from_redis_value(answer.value).ok());
                match text
                    .and_then(|text| crate::coordinator::ManualRequest::parse(&job, &id, &text))
                {
                    Some((request, crate::coordinator::ManualState::Pending)) => {
                        pending.push(request)
                    }
                    // Taken or gone: drop it from the index (best effort).
                    _ => self.forget_manual(&job, &id).await,
                }
            }
            Ok(pending)
        })
    }

    /// Takes a waiting manual run for `node` ([`Coordinator::claim_manual`](crate::coordinator::Coordinator::claim_manual)).
    pub(super) fn take_manual<'a>(
        &'a self,
        request: &'a crate::coordinator::ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: crate::job::Overlap,
    ) -> BoxFuture<'a, Result<crate::coordinator::ManualOutcome, Error>> {
        Box::pin(async move {
            use crate::coordinator::ManualOutcome;
            let keys = self.job_keys(&request.job);
            let allow = overlap == crate::job::Overlap::Allow;
            let command = self.scripts.manual(
                &keys,
                request.requested_ms,
                &request.id,
                node,
                lease_ttl,
                allow,
            );
            let reply = self.script("manual run", scripts::MANUAL, command).await?;
            let items: Vec<Value> = redis::from_redis_value(reply)
                .map_err(|_| self.fail("manual run", Kind::Protocol, "unexpected answer"))?;
            let mut items = items.into_iter();
            let code: i64 = items
                .next()
                .and_then(|value| redis::from_redis_value(value).ok())
                .unwrap_or_default();
            let outcome = match code {
                1 => {
                    let fence: u64 = items
                        .next()
                        .and_then(|value| redis::from_redis_value(value).ok())
                        .ok_or_else(|| self.fail("manual run", Kind::Protocol, "no fence"))?;
                    ManualOutcome::Run(Lease {
                        job: std::sync::Arc::from(request.job.as_str()),
                        tick_ms: request.requested_ms,
                        fence: crate::job::FenceToken(fence),
                        node: std::sync::Arc::from(node),
                        overlap: if allow || request.force {
                            crate::job::Overlap::Allow
                        } else {
                            crate::job::Overlap::Skip
                        },
                        manual: true,
                    })
                }
                2 => ManualOutcome::Overlap {
                    holder: items
                        .next()
                        .and_then(|value| redis::from_redis_value(value).ok())
                        .unwrap_or_default(),
                },
                _ => ManualOutcome::Taken,
            };
            self.forget_manual(&request.job, &request.id).await;
            Ok(outcome)
        })
    }
}
