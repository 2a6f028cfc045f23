//! The read side of the Redis coordinator: members and history.

use std::collections::HashMap;

use super::{RedisCoordinator, scripts};
use crate::coordinator::{Admin, HistoryEntry, PauseState};
use crate::error::Error;
use crate::job::BoxFuture;

impl Admin for RedisCoordinator {
    fn members(&self) -> BoxFuture<'_, Result<Vec<(String, i64)>, Error>> {
        Box::pin(async move {
            let mut conn = self.link.get();
            let mut cmd = redis::cmd("ZRANGE");
            cmd.arg(self.nodes_key()).arg(0).arg(-1).arg("WITHSCORES");
            let members: Vec<(String, f64)> =
                self.call("members", cmd.query_async(&mut conn)).await?;
            Ok(members
                .into_iter()
                .map(|(node, at)| (node, at as i64))
                .collect())
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
            let entries: Vec<(String, HashMap<String, String>)> =
                self.call("history", cmd.query_async(&mut conn)).await?;
            Ok(entries
                .into_iter()
                .map(|(_, mut fields)| HistoryEntry {
                    tick_ms: number(fields.remove("tick")).unwrap_or_default(),
                    node: fields.remove("node").unwrap_or_default(),
                    outcome: fields.remove("outcome").unwrap_or_default(),
                    detail: fields.remove("detail"),
                    fence: number(fields.remove("fence")),
                    duration_ms: number(fields.remove("duration_ms")),
                })
                .collect())
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
            scripts::decode_resume(reply)
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
            Ok(Some(scripts::pause_state(
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
