//! The permission probe: at connect, every command fourit will ever send runs once on keys
//! of its own, so a user lacking a permission learns at start which one.

use std::sync::Arc;
use std::time::Duration;

use redis::{RedisError, Value};

use super::RedisCoordinator;
use super::connection::classify;
use super::keys::{self, JobKeys};
use crate::coordinator::{ClaimRequest, HISTORY_LEN, Lease, Outcome, RunRecord};
use crate::error::{Error, ErrorKind as Kind};
use crate::job::{FenceToken, Overlap};

impl RedisCoordinator {
    /// Runs every command fourit will ever send, once, on keys of its own inside the
    /// namespace, so a user lacking a permission learns at start which one, instead of every
    /// tick being skipped later.
    pub(super) async fn check_permissions(&self) -> Result<(), Error> {
        let base = format!("{}:{{probe}}:check", self.namespace);
        let [state, lease, runs, nodes] = [
            base.clone(),
            format!("{base}:lease"),
            format!("{base}:runs"),
            format!("{base}:nodes"),
        ];
        let node = "fourit-permission-check";
        let probe_lease = Lease {
            job: Arc::from("probe"),
            tick_ms: 1,
            fence: FenceToken(1),
            node: Arc::from(node),
            overlap: Overlap::Skip,
            manual: false,
        };
        let run_id = probe_lease.run_id();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("PING")
            .cmd("TIME")
            .cmd("DEL")
            .arg(&state)
            .arg(&lease)
            .arg(&runs)
            .arg(&nodes);
        if self.replica_acks.is_some() {
            // Answers at once: no replica needs to acknowledge anything.
            pipe.cmd("WAIT").arg(0).arg(1);
        }
        // The commands the scripts use, called directly first: a refusal inside a script does
        // not say which command it was, a direct one does.
        pipe.cmd("HSET").arg(&state).arg("check").arg(1);
        pipe.cmd("HGET").arg(&state).arg("check");
        pipe.cmd("HMGET").arg(&state).arg("check").arg("fence");
        pipe.cmd("SET")
            .arg(&lease)
            .arg(&run_id)
            .arg("PX")
            .arg(60_000);
        pipe.cmd("GET").arg(&lease);
        pipe.cmd("PEXPIRE").arg(&lease).arg(60_000);
        pipe.cmd("XADD")
            .arg(&runs)
            .arg("MAXLEN")
            .arg("~")
            .arg(HISTORY_LEN)
            .arg("*")
            .arg("check")
            .arg(1);
        pipe.cmd("PUBLISH").arg(&base).arg(node);
        // The catalog: the job index and a job's definitions.
        pipe.cmd("SADD").arg(format!("{base}:jobs")).arg("probe");
        pipe.cmd("HSET")
            .arg(format!("{base}:defs"))
            .arg(node)
            .arg("v1");
        pipe.cmd("HGETALL").arg(format!("{base}:defs"));
        // Registrations of members that are gone are pruned (the job index read, a
        // registration deleted).
        pipe.cmd("SMEMBERS").arg(format!("{base}:jobs"));
        pipe.cmd("HDEL").arg(format!("{base}:defs")).arg(node);
        // The heartbeat counts the manual runs waiting.
        pipe.cmd("ZCARD").arg(&nodes);
        pipe.cmd("ZADD").arg(&nodes).arg(0).arg(node);
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&nodes)
            .arg("-inf")
            .arg("(0");
        pipe.cmd("DEL")
            .arg(&state)
            .arg(&lease)
            .arg(&runs)
            .arg(&nodes);
        // The scripts, through the same invocations the coordinator sends.
        let keys = JobKeys {
            state: state.clone(),
            lease: lease.clone(),
            runs: runs.clone(),
        };
        let probe_claim = ClaimRequest {
            job: probe_lease.job.clone(),
            tick_ms: probe_lease.tick_ms,
            node: probe_lease.node.clone(),
            lease_ttl: Duration::from_secs(60),
            overlap: Overlap::Skip,
            preferred: None,
            handoff: Duration::ZERO,
            claim_id: 1,
            schedule: None,
        };
        pipe.add_command(self.scripts.claim(&keys, &probe_claim, Some((&base, node))));
        pipe.add_command(
            self.scripts
                .keep_alive(&lease, &run_id, Duration::from_secs(60)),
        );
        let record = RunRecord {
            outcome: Outcome::Succeeded,
            started: chrono::DateTime::<chrono::Utc>::default(),
            duration: Duration::ZERO,
        };
        pipe.add_command(self.scripts.release(&keys, &lease, &probe_lease, &record));
        pipe.add_command(self.scripts.heartbeat(
            &nodes,
            node,
            Duration::from_secs(60),
            None,
            Some(0),
        ));
        pipe.cmd("ZRANGE")
            .arg(&nodes)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .cmd("ZREM")
            .arg(&nodes)
            .arg(node)
            .cmd("XREVRANGE")
            .arg(&runs)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .cmd("DEL")
            .arg(&state)
            .arg(&lease)
            .arg(&runs)
            .arg(&nodes)
            .arg(keys::version_key(&nodes))
            .arg(keys::clocks_key(&nodes))
            .arg(format!("{base}:jobs"))
            .arg(format!("{base}:defs"));
        let mut conn = self.link.get();
        let replies: Vec<Result<Value, RedisError>> = self
            .call("permission check", pipe.query_async(&mut conn))
            .await?;
        let mut denied: Vec<String> = Vec::new();
        for reply in replies {
            if let Err(err) = reply {
                match classify("permission check", &self.url, self.secret.as_deref(), err) {
                    Error::Coordinator(refused) if refused.kind() == Kind::Permission => {
                        let detail = refused.detail().to_string();
                        if !denied.contains(&detail) {
                            denied.push(detail);
                        }
                    }
                    other => return Err(other),
                }
            }
        }
        if denied.is_empty() {
            Ok(())
        } else {
            Err(self.fail("permission check", Kind::Permission, denied.join("; ")))
        }
    }
}
