//! The checks at connect, besides the permission probe: a cluster node behind a plain URL,
//! the eviction policy, the replicas connected, and the scripts loaded.

use redis::Value;

use super::RedisCoordinator;
use super::scripts::Scripts;
use crate::coordinator::EvictionCheck;
use crate::error::Error;

/// Every text in a reply (a cluster answers `INFO` with one text per node).
fn collect_text(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::BulkString(bytes) => out.push(String::from_utf8_lossy(bytes).into_owned()),
        Value::VerbatimString { text, .. } => out.push(text.clone()),
        Value::SimpleString(text) => out.push(text.clone()),
        Value::Array(items) | Value::Set(items) => {
            items.iter().for_each(|item| collect_text(item, out));
        }
        Value::Map(pairs) => pairs.iter().for_each(|(key, item)| {
            collect_text(key, out);
            collect_text(item, out);
        }),
        _ => {}
    }
}

impl RedisCoordinator {
    /// Loads every script (the server forgets them on restart or `SCRIPT FLUSH`), which
    /// also proves at start that the user may run them. To a cluster, each `SCRIPT LOAD`
    /// goes to every node.
    pub(super) async fn load_scripts(&mut self) -> Result<(), Error> {
        for code in Scripts::sources() {
            let mut conn = self.link.get();
            let mut load = redis::cmd("SCRIPT");
            load.arg("LOAD").arg(code);
            let _: Value = self
                .call("script load", load.query_async(&mut conn))
                .await?;
        }
        Ok(())
    }

    /// The values of `field` in the server's `INFO section` (one per node of a cluster);
    /// none if the server will not tell.
    pub(super) async fn info_field(&self, section: &str, field: &str) -> Vec<String> {
        let mut conn = self.link.get();
        let mut info = redis::cmd("INFO");
        info.arg(section);
        let Ok(reply) = self
            .call("connect", info.query_async::<Value>(&mut conn))
            .await
        else {
            return Vec::new();
        };
        let mut texts = Vec::new();
        collect_text(&reply, &mut texts);
        let prefix = format!("{field}:");
        texts
            .iter()
            .flat_map(|text| text.lines())
            .filter_map(|line| line.trim().strip_prefix(prefix.as_str()))
            .map(str::to_string)
            .collect()
    }

    /// Says at start when the server may evict fourit's keys: `allkeys-*` can evict a
    /// job's high-water mark (then a tick can run twice: refused with
    /// [`EvictionCheck::Strict`]), `volatile-*` its leases (then a run can overlap the
    /// next). A server that will not tell is not an error.
    pub(super) async fn check_eviction(&self, check: EvictionCheck) -> Result<(), Error> {
        let policies: std::collections::BTreeSet<String> = self
            .info_field("memory", "maxmemory_policy")
            .await
            .into_iter()
            .collect();
        for policy in policies {
            if policy.starts_with("allkeys-") && check == EvictionCheck::Strict {
                return Err(Error::InvalidOption {
                    option: "eviction",
                    reason: format!(
                        "{} has maxmemory-policy {policy}, which may evict fourit's \
                         high-water marks (a tick could then run twice); set it to \
                         noeviction or a volatile-* policy, or drop eviction=strict",
                        self.url
                    ),
                });
            }
            if policy.starts_with("allkeys-") {
                tracing::warn!(
                    url = %self.url,
                    maxmemory_policy = %policy,
                    "this Redis may evict any key when full, fourit's high-water marks \
                     included: a tick could then run twice; set maxmemory-policy noeviction (or \
                     a volatile-* policy) for the database fourit uses"
                );
            } else if policy.starts_with("volatile-") {
                tracing::warn!(
                    url = %self.url,
                    maxmemory_policy = %policy,
                    "this Redis may evict keys with a TTL when full, fourit's leases included: \
                     a run could then overlap the next tick; noeviction avoids it"
                );
            }
        }
        Ok(())
    }

    /// With replica acknowledgements asked for, says at start when fewer replicas are
    /// connected than asked (every claim would then be refused until they are).
    pub(super) async fn check_replicas(&self) {
        let Some(acks) = self.replica_acks else {
            return;
        };
        let connected: Vec<usize> = self
            .info_field("replication", "connected_slaves")
            .await
            .iter()
            .filter_map(|count| count.parse().ok())
            .collect();
        if let Some(fewest) = connected.iter().min()
            && *fewest < acks.replicas
        {
            tracing::warn!(
                url = %self.url,
                connected = fewest,
                wanted = acks.replicas,
                "fewer replicas are connected than wait_for_replicas asks: claims will not \
                 run until enough replicas acknowledge them"
            );
        }
    }

    /// A plain `redis://` URL naming a node of a Redis Cluster would see every other node's
    /// slots answered `MOVED`, so every tick skipped: an error at start instead.
    pub(super) async fn refuse_cluster_node_without_cluster_url(&self) -> Result<(), Error> {
        if self.link.is_cluster() {
            return Ok(());
        }
        let mut conn = self.link.get();
        let mut info = redis::cmd("INFO");
        info.arg("cluster");
        // A user who may not run `INFO` learns it here, as for any command fourit needs.
        let text: String = self.call("connect", info.query_async(&mut conn)).await?;
        if text.lines().any(|line| line.trim() == "cluster_enabled:1") {
            return Err(Error::InvalidUrl {
                url: self.url.clone(),
                reason: "this server is a node of a Redis Cluster; use \
                         redis+cluster://host:port[,host:port...] (rediss+cluster:// with TLS)"
                    .to_string(),
            });
        }
        Ok(())
    }
}
