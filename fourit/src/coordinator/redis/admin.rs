//! The read side of the Redis coordinator: members and history.

use std::collections::HashMap;

use super::{RedisCoordinator, keys, link, replies, scripts};
use crate::coordinator::rules;
use crate::coordinator::{Admin, CatalogEntry, HistoryEntry, JobState, Member, PauseState};
use crate::error::Error;
use crate::job::BoxFuture;

impl RedisCoordinator {
    /// The error of a history reply that is not the entries `XREVRANGE` answers.
    fn not_a_stream(&self) -> Error {
        self.fail(
            "history",
            crate::error::ErrorKind::Protocol,
            "a history stream's entries were not as XREVRANGE answers them",
        )
    }
}

impl Admin for RedisCoordinator {
    fn members(&self) -> BoxFuture<'_, Result<Vec<Member>, Error>> {
        Box::pin(async move {
            let nodes = self.nodes_key();
            let mut conn = self.link.get();
            let mut cmd = redis::cmd("ZRANGE");
            cmd.arg(&nodes).arg(0).arg(-1).arg("WITHSCORES");
            let members: Vec<(String, f64)> =
                self.call("members", cmd.query_async(&mut conn)).await?;
            let mut cmd = redis::cmd("HGETALL");
            cmd.arg(keys::clocks_key(&nodes));
            let clocks: HashMap<String, String> =
                self.call("members", cmd.query_async(&mut conn)).await?;
            Ok(members
                .into_iter()
                .map(|(node, at)| Member {
                    clock_offset_us: clocks.get(&node).and_then(|us| us.parse().ok()),
                    node,
                    heartbeat_ms: at as i64,
                })
                .collect())
        })
    }

    fn histories<'a>(
        &'a self,
        jobs: &'a [String],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<HistoryEntry>>, Error>> {
        Box::pin(async move {
            if jobs.is_empty() {
                return Ok(Vec::new());
            }
            // Redis takes a signed 64-bit count.
            let count = i64::try_from(limit).unwrap_or(i64::MAX);
            let commands = jobs
                .iter()
                .map(|job| {
                    let keys = self.job_keys(job);
                    let mut cmd = redis::cmd("XREVRANGE");
                    cmd.arg(&keys.runs)
                        .arg("+")
                        .arg("-")
                        .arg("COUNT")
                        .arg(count);
                    (link::slot(&keys.state), cmd)
                })
                .collect();
            // One pipeline (one per slot on a cluster, sent at once).
            let replies = self
                .call(
                    "history",
                    self.link.pipeline(scripts::CLAIM, commands, None),
                )
                .await?;
            replies
                .into_iter()
                .map(|reply| {
                    let value = reply.map_err(|err| self.error("history", err))?.value;
                    stream_entries(value).ok_or_else(|| self.not_a_stream())
                })
                .collect()
        })
    }

    fn history<'a>(
        &'a self,
        job: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<HistoryEntry>, Error>> {
        Box::pin(async move {
            let runs = self.job_keys(job).runs;
            let mut conn = self.link.get();
            let mut cmd = redis::cmd("XREVRANGE");
            // Redis takes a signed 64-bit count.
            let count = i64::try_from(limit).unwrap_or(i64::MAX);
            cmd.arg(runs).arg("+").arg("-").arg("COUNT").arg(count);
            let reply: redis::Value = self.call("history", cmd.query_async(&mut conn)).await?;
            stream_entries(reply).ok_or_else(|| self.not_a_stream())
        })
    }

    fn catalog(&self) -> BoxFuture<'_, Result<Vec<CatalogEntry>, Error>> {
        Box::pin(async move {
            let mut conn = self.link.get();
            let mut members = redis::cmd("SMEMBERS");
            members.arg(self.jobs_key());
            let mut names: Vec<String> =
                self.call("catalog", members.query_async(&mut conn)).await?;
            names.sort();
            if names.is_empty() {
                return Ok(Vec::new());
            }
            // Registrations follow the members (the rule book's `prune`, rules/members.rs):
            // the live members first, then per job what goes is deleted in the job's slot.
            let live = self.live_members("catalog").await?;
            let mut gone = Vec::new();
            // Per job, in one pipeline (per slot on a cluster): registrations, state, lease.
            let mut commands = Vec::with_capacity(names.len() * 3);
            for name in &names {
                let keys = self.job_keys(name);
                let slot = link::slot(&keys.state);
                let mut defs = redis::cmd("HGETALL");
                defs.arg(keys.defs());
                let mut state = redis::cmd("HMGET");
                state.arg(&keys.state).arg(&STATE_FIELDS[..]);
                let mut lease = redis::cmd("GET");
                lease.arg(&keys.lease);
                commands.extend([(slot, defs), (slot, state), (slot, lease)]);
            }
            let replies = self
                .call(
                    "catalog",
                    self.link.pipeline(scripts::CLAIM, commands, None),
                )
                .await?;
            let mut replies = replies.into_iter();
            let mut entries = Vec::with_capacity(names.len());
            for name in names {
                let mut next = || -> Result<redis::Value, Error> {
                    match replies.next() {
                        Some(Ok(answer)) => Ok(answer.value),
                        Some(Err(err)) => Err(self.error("catalog", err)),
                        None => Err(self.error(
                            "catalog",
                            redis::RedisError::from((redis::ErrorKind::Io, "no answer")),
                        )),
                    }
                };
                let defs: HashMap<String, String> =
                    redis::from_redis_value(next()?).unwrap_or_default();
                let fields: Vec<Option<String>> =
                    redis::from_redis_value(next()?).unwrap_or_default();
                let running: Option<String> = redis::from_redis_value(next()?).unwrap_or_default();
                let mut stored = super::catalog::parse_defs(&name, defs);
                let live = |node: &str| live.contains(node);
                for node in rules::members::prune(&mut stored, &live) {
                    gone.push((name.clone(), node));
                }
                let registrations = rules::members::answer(&stored);
                let state = job_state(&fields, running);
                entries.push(CatalogEntry {
                    name,
                    registrations,
                    state,
                });
            }
            self.forget_registrations("catalog", &gone).await?;
            Ok(entries)
        })
    }

    fn remove<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let keys = self.job_keys(job);
            let mut drop_keys = redis::cmd("DEL");
            drop_keys
                .arg(&keys.state)
                .arg(&keys.lease)
                .arg(&keys.runs)
                .arg(keys.defs())
                .arg(keys.manual());
            let mut forget = redis::cmd("SREM");
            forget.arg(self.jobs_key()).arg(job);
            let mut conn = self.link.get();
            let _: i64 = self
                .call("remove", drop_keys.query_async(&mut conn))
                .await?;
            let _: i64 = self.call("remove", forget.query_async(&mut conn)).await?;
            Ok(())
        })
    }

    fn request_manual<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<crate::coordinator::ManualRequest, Error>> {
        Box::pin(async move {
            let id = format!("{:016x}", crate::coordinator::new_claim_id());
            let keys = self.job_keys(job);
            let command = self.scripts.request_manual(&keys, &id, by, force);
            let reply = self
                .script("trigger", scripts::REQUEST_MANUAL, command)
                .await?;
            let requested_ms: i64 = redis::from_redis_value::<String>(reply)
                .ok()
                .and_then(|ms| ms.parse().ok())
                .ok_or_else(|| {
                    self.fail("trigger", crate::error::ErrorKind::Protocol, "no time")
                })?;
            let mut index = redis::cmd("ZADD");
            index
                .arg(keys::manual_index_key(&self.nodes_key()))
                .arg(requested_ms)
                .arg(format!("{job}\t{id}"));
            let mut conn = self.link.get();
            let _: i64 = self.call("trigger", index.query_async(&mut conn)).await?;
            // Wakes the members now; best effort: without it they see the request at their
            // next heartbeat.
            let mut wake = redis::cmd("PUBLISH");
            wake.arg(&self.channel)
                .arg(format!("{} {job}", super::notices::MANUAL_NOTICE));
            if let Err(err) = self
                .call::<i64>("trigger", wake.query_async(&mut conn))
                .await
            {
                tracing::debug!(error = %err, "could not announce the manual run at once");
            }
            Ok(crate::coordinator::ManualRequest {
                job: job.to_string(),
                id,
                by: by.to_string(),
                requested_ms,
                force,
            })
        })
    }

    fn manual_state<'a>(
        &'a self,
        job: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<crate::coordinator::ManualState>, Error>> {
        Box::pin(async move {
            let mut conn = self.link.get();
            let mut get = redis::cmd("HGET");
            get.arg(self.job_keys(job).manual()).arg(id);
            let text: Option<String> = self.call("trigger", get.query_async(&mut conn)).await?;
            Ok(text
                .and_then(|text| crate::coordinator::ManualRequest::parse(job, id, &text))
                .map(|(_, state)| state))
        })
    }

    fn pause<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
        note: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let command = self.scripts.pause(&self.job_keys(job), by, note);
            self.script("pause", scripts::PAUSE, command).await?;
            Ok(())
        })
    }

    fn resume<'a>(
        &'a self,
        job: &'a str,
        by: &'a str,
    ) -> BoxFuture<'a, Result<Option<PauseState>, Error>> {
        Box::pin(async move {
            let command = self.scripts.resume(&self.job_keys(job), by);
            let reply = self.script("resume", scripts::RESUME, command).await?;
            replies::decode_resume(reply)
        })
    }

    fn pause_state<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Option<PauseState>, Error>> {
        Box::pin(async move {
            let mut conn = self.link.get();
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(self.job_keys(job).state).arg(&[
                "paused",
                "paused_by",
                "paused_note",
                "paused_at",
                "paused_ticks",
                "paused_first",
                "paused_last",
            ]);
            let fields: Vec<Option<String>> =
                self.call("pause state", cmd.query_async(&mut conn)).await?;
            let text = |index: usize| fields.get(index).cloned().flatten().unwrap_or_default();
            if text(0) != "1" {
                return Ok(None);
            }
            Ok(Some(replies::pause_state(
                &text(1),
                &text(2),
                &text(3),
                &text(4),
                &text(5),
                &text(6),
            )))
        })
    }
}

fn number<T: std::str::FromStr>(text: Option<String>) -> Option<T> {
    text.and_then(|t| t.parse().ok())
}

/// The job hash's fields a catalog entry shows, in this order.
const STATE_FIELDS: [&str; 14] = [
    "tick",
    "node",
    "fence",
    "started",
    "finished",
    "outcome",
    "error",
    "paused",
    "paused_by",
    "paused_note",
    "paused_at",
    "paused_ticks",
    "paused_first",
    "paused_last",
];

/// A job's state from its hash's [`STATE_FIELDS`] and the run id holding its lease.
fn job_state(fields: &[Option<String>], running: Option<String>) -> JobState {
    let text = |index: usize| {
        fields
            .get(index)
            .cloned()
            .flatten()
            .filter(|t| !t.is_empty())
    };
    let pause = (text(7).as_deref() == Some("1")).then(|| {
        replies::pause_state(
            &text(8).unwrap_or_default(),
            &text(9).unwrap_or_default(),
            &text(10).unwrap_or_default(),
            &text(11).unwrap_or_default(),
            &text(12).unwrap_or_default(),
            &text(13).unwrap_or_default(),
        )
    });
    JobState {
        high_water_ms: number(text(0)),
        // The hash keeps the mark, not the last run's tick; a run in progress names its own.
        last_tick_ms: running
            .as_deref()
            .and_then(crate::coordinator::Lease::parse_run_id)
            .map(|(_, _, tick)| tick),
        last_node: text(1),
        last_fence: number(text(2)),
        last_started_ms: number(text(3)),
        last_finished_ms: number(text(4)),
        last_outcome: text(5),
        last_error: text(6),
        running,
        pause,
    }
}

/// The entries of an `XREVRANGE` answer, read straight from the reply (a fleet's view reads
/// thousands: no map and no key string per field).
fn stream_entries(value: redis::Value) -> Option<Vec<HistoryEntry>> {
    use redis::Value;
    let text = |value: &Value| match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    };
    let items = match value {
        Value::Array(items) => items,
        // `COUNT 0` is answered nil.
        Value::Nil => return Some(Vec::new()),
        _ => return None,
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Array(mut parts) = item else {
                return None;
            };
            let fields = match parts.pop()? {
                Value::Array(fields) => fields,
                Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                _ => return None,
            };
            let mut entry = HistoryEntry {
                tick_ms: 0,
                node: String::new(),
                outcome: String::new(),
                detail: None,
                fence: None,
                duration_ms: None,
                delay_ms: None,
            };
            for pair in fields.chunks(2) {
                let [key, value] = pair else {
                    return None;
                };
                let Value::BulkString(key) = key else {
                    return None;
                };
                match key.as_slice() {
                    b"tick" => entry.tick_ms = number(text(value)).unwrap_or_default(),
                    b"node" => entry.node = text(value).unwrap_or_default(),
                    b"outcome" => entry.outcome = text(value).unwrap_or_default(),
                    b"detail" => entry.detail = text(value),
                    b"fence" => entry.fence = number(text(value)),
                    b"duration_ms" => entry.duration_ms = number(text(value)),
                    b"delay_ms" => entry.delay_ms = number(text(value)),
                    _ => {}
                }
            }
            Some(entry)
        })
        .collect()
}
