//! The Redis coordinator: the protocol as Lua scripts, one round trip per call.

mod admin;
mod connection;
mod link;
mod notices;
mod probe;
mod scripts;

use std::fmt;
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisError, Value};
use tokio_util::sync::{CancellationToken, DropGuard};

use self::connection::{Connection, classify, invalid_url_reason, manager_config, open_client};
use self::link::Link;
use self::scripts::{JobKeys, Scripts};
use super::{
    ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator, Heartbeat, Lease, NoticeSender,
    RunRecord, TlsConfig, redact_url,
};
use crate::error::{CoordinatorError, Error, ErrorKind as Kind};
use crate::job::BoxFuture;
use crate::spec;

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

/// The password in a client's URL, to scrub from any text the client library produces.
fn password(client: &redis::Client) -> Option<String> {
    client
        .get_connection_info()
        .redis_settings()
        .password()
        .map(str::to_string)
}

/// How errors and logs name this backend.
const BACKEND: &str = "Redis";

/// Every call's deadline: past it the call counts as failed (and no job runs on it).
const DEADLINE: Duration = Duration::from_secs(3);

/// The production coordinator: a Redis server (or a Redis Cluster slot per job) holds the
/// fleet's claims, leases, fences, members and history under a namespace.
///
/// Keys of job `j` in namespace `ns` all carry the hash tag `{j}`: `ns:{j}` (hash),
/// `ns:{j}:lease` (string with TTL), `ns:{j}:runs` (capped stream); members are in
/// `ns:nodes` (sorted set). Decided ticks are announced on the channel `ns:claims`.
pub struct RedisCoordinator {
    link: Link,
    namespace: String,
    /// `ns:claims`: the claim script publishes `<tick ms> <job>` there for each decided tick.
    channel: String,
    /// The notices heard on `channel`, for the schedulers using this coordinator.
    notices: NoticeSender,
    /// Stops the listener on `channel` when the coordinator is dropped.
    _listener: DropGuard,
    /// The URL with its password redacted, for messages.
    url: String,
    /// The password, to scrub from any text the client library produces.
    secret: Option<String>,
    scripts: Scripts,
}

impl fmt::Debug for RedisCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCoordinator")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl RedisCoordinator {
    /// Connects, authenticates and loads the scripts.
    ///
    /// Fails with [`Error::InvalidUrl`] for a URL it cannot use, an [`Error::Coordinator`] of
    /// kind [`Authentication`](crate::ErrorKind::Authentication) if Redis rejects the
    /// credentials or [`Permission`](crate::ErrorKind::Permission) if the user may not run a
    /// command fourit needs, and with an error for which [`Error::is_unavailable`] is true if Redis
    /// cannot be reached (worth retrying).
    pub async fn connect(url: &str, namespace: &str) -> Result<RedisCoordinator, Error> {
        RedisCoordinator::connect_with(url, namespace, None).await
    }

    /// [`connect`](Self::connect), trusting the root certificates and presenting the client
    /// certificate of `tls` for `rediss://` URLs (with the `tls` feature).
    pub async fn connect_with(
        url: &str,
        namespace: &str,
        tls: Option<&TlsConfig>,
    ) -> Result<RedisCoordinator, Error> {
        let redacted = redact_url(url);
        spec::check_identifier("namespace", namespace).map_err(|reason| Error::InvalidOption {
            option: "namespace",
            reason,
        })?;
        #[cfg(feature = "tls")]
        connection::install_crypto_provider();
        let invalid = |reason: String| Error::InvalidUrl {
            url: redacted.clone(),
            reason,
        };
        let (link, subscribers, secret) = match connection::cluster_nodes(url) {
            Some(nodes) => {
                let nodes = nodes.map_err(invalid)?;
                let clients = nodes
                    .iter()
                    .map(|node| open_client(node, tls))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|err| invalid(invalid_url_reason(url, &err)))?;
                let secret = clients.first().and_then(password);
                let cluster_client = connection::open_cluster(&nodes, tls)
                    .map_err(|err| invalid(invalid_url_reason(url, &err)))?;
                let cluster = cluster_client.get_async_connection().await.map_err(|err| {
                    // A standalone server answers the cluster client's first question so.
                    if err.to_string().contains("cluster support disabled") {
                        invalid(
                            "the server is not a Redis Cluster node (cluster support \
                                 disabled); use redis://host:port for a single server"
                                .to_string(),
                        )
                    } else {
                        classify("connect", &redacted, secret.as_deref(), err)
                    }
                })?;
                let cluster = link::Cluster::new(cluster_client, cluster);
                (Link::Cluster(Arc::new(cluster)), clients, secret)
            }
            None => {
                let client =
                    open_client(url, tls).map_err(|err| invalid(invalid_url_reason(url, &err)))?;
                let secret = password(&client);
                let manager = ConnectionManager::new_with_config(client.clone(), manager_config())
                    .await
                    .map_err(|err| classify("connect", &redacted, secret.as_deref(), err))?;
                let link = Link::Single(Arc::new(Connection {
                    manager: RwLock::new(manager),
                    client: client.clone(),
                    replacing: AtomicBool::new(false),
                }));
                (link, vec![client], secret)
            }
        };
        let channel = format!("{namespace}:claims");
        let stop = CancellationToken::new();
        let mut coordinator = RedisCoordinator {
            link,
            namespace: namespace.to_string(),
            channel: channel.clone(),
            notices: NoticeSender::new(),
            _listener: stop.clone().drop_guard(),
            url: redacted,
            secret,
            scripts: Scripts::new(),
        };
        coordinator
            .refuse_cluster_node_without_cluster_url()
            .await?;
        coordinator.warn_about_eviction().await;
        coordinator.load_scripts().await?;
        coordinator.check_permissions().await?;
        // Subscribing at start also proves the user may: a refusal is an error now, not a
        // silent loss of every notice.
        let subscription = notices::subscribe_any(&subscribers, &channel)
            .await
            .map_err(|err| coordinator.error("subscribe", err))?;
        tokio::spawn(notices::listen(
            subscribers,
            channel,
            subscription,
            coordinator.notices.clone(),
            stop,
        ));
        Ok(coordinator)
    }

    fn error(&self, operation: &'static str, err: RedisError) -> Error {
        classify(operation, &self.url, self.secret.as_deref(), err)
    }

    /// An error of this coordinator's, at its (redacted) URL.
    fn fail(&self, operation: &'static str, kind: Kind, detail: impl Into<String>) -> Error {
        Error::Coordinator(CoordinatorError::new(BACKEND, operation, kind, detail).at(&self.url))
    }

    /// The namespace every key starts with.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn job_keys(&self, job: &str) -> JobKeys {
        JobKeys::new(&self.namespace, job)
    }

    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.namespace)
    }

    /// Loads every script (the server forgets them on restart or `SCRIPT FLUSH`), which
    /// also proves at start that the user may run them. To a cluster, each `SCRIPT LOAD`
    /// goes to every node.
    async fn load_scripts(&mut self) -> Result<(), Error> {
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

    /// Says at start when the server may evict fourit's keys: `allkeys-*` can evict a
    /// job's high-water mark (then a tick can run twice), `volatile-*` its leases (then a
    /// run can overlap the next). A server that will not tell is not an error.
    async fn warn_about_eviction(&self) {
        let mut conn = self.link.get();
        let mut info = redis::cmd("INFO");
        info.arg("memory");
        let Ok(reply) = self
            .call("connect", info.query_async::<Value>(&mut conn))
            .await
        else {
            return;
        };
        let mut texts = Vec::new();
        collect_text(&reply, &mut texts);
        let policies: std::collections::BTreeSet<String> = texts
            .iter()
            .flat_map(|text| text.lines())
            .filter_map(|line| line.trim().strip_prefix("maxmemory_policy:"))
            .map(str::to_string)
            .collect();
        for policy in policies {
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
    }

    /// A plain `redis://` URL naming a node of a Redis Cluster would see every other node's
    /// slots answered `MOVED`, so every tick skipped: an error at start instead.
    async fn refuse_cluster_node_without_cluster_url(&self) -> Result<(), Error> {
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

    /// Awaits a Redis call under the deadline, mapping its error.
    async fn call<T>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(DEADLINE, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                let err = classify(operation, &self.url, self.secret.as_deref(), err);
                if let Some(kind) = err.coordinator_kind() {
                    self.link.replace_after(kind);
                }
                Err(err)
            }
            Err(_) => {
                self.link.replace_after(Kind::Timeout);
                Err(self.fail(
                    operation,
                    Kind::Timeout,
                    format!("did not answer within {DEADLINE:?}"),
                ))
            }
        }
    }

    async fn claim_all(&self, requests: &[ClaimRequest]) -> Result<Vec<ClaimOutcome>, Error> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let replies = self
            .pipeline("claim", scripts::CLAIM, requests, |request| {
                // Only a claim that others may be waiting out the handoff for is announced.
                let notice = request
                    .preferred
                    .as_ref()
                    .map(|_| (self.channel.as_str(), &*request.job));
                let keys = self.job_keys(&request.job);
                (
                    link::slot(&keys.state),
                    self.scripts.claim(&keys, request, notice),
                )
            })
            .await?;
        requests
            .iter()
            .zip(replies)
            .map(|(request, reply)| match reply {
                Ok(reply) => scripts::decode_claim(request, reply),
                Err(err) => {
                    let err = self.error("claim", err);
                    if err.is_unavailable() {
                        // Part of a batch a cluster node did not answer: this claim alone.
                        Ok(ClaimOutcome::Unanswered {
                            detail: err.to_string(),
                        })
                    } else {
                        Err(err)
                    }
                }
            })
            .collect()
    }

    async fn release_runs(&self, runs: &[(Lease, RunRecord)]) -> Vec<Result<bool, Error>> {
        if runs.is_empty() {
            return Vec::new();
        }
        let replies = match self
            .pipeline("release", scripts::RELEASE, runs, |(lease, record)| {
                let keys = self.job_keys(&lease.job);
                (
                    link::slot(&keys.state),
                    self.scripts
                        .release(&keys, &keys.lease_of(lease), lease, record),
                )
            })
            .await
        {
            Ok(replies) => replies,
            Err(err) => {
                // One error for the batch: the first run gets it, the others its text.
                let detail = err.to_string();
                let mut answers: Vec<Result<bool, Error>> = vec![Err(err)];
                answers.extend(
                    runs[1..]
                        .iter()
                        .map(|_| Err(self.fail("release", Kind::Unavailable, detail.clone()))),
                );
                return answers;
            }
        };
        replies
            .into_iter()
            .map(|reply| scripts::decode_release(reply.map_err(|err| self.error("release", err))?))
            .collect()
    }

    /// Sends one script call per item (each with its hash slot) and answers each in order,
    /// under the deadline; see [`Link::pipeline`].
    async fn pipeline<T>(
        &self,
        operation: &'static str,
        code: &'static str,
        items: &[T],
        command: impl Fn(&T) -> (u16, redis::Cmd),
    ) -> Result<Vec<Result<Value, RedisError>>, Error> {
        let commands = items.iter().map(command).collect();
        self.call(operation, self.link.pipeline(code, commands))
            .await
    }

    /// Runs one script call, loading the script first if the server has forgotten it.
    async fn script(
        &self,
        operation: &'static str,
        code: &'static str,
        command: redis::Cmd,
    ) -> Result<Value, Error> {
        let mut replies = self
            .pipeline(operation, code, &[()], |()| (0, command.clone()))
            .await?;
        match replies.pop() {
            Some(reply) => reply.map_err(|err| self.error(operation, err)),
            None => Err(self.fail(operation, Kind::Protocol, "no answer")),
        }
    }
}

impl Coordinator for RedisCoordinator {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn claim_notices(&self) -> Option<ClaimNotices> {
        Some(self.notices.subscribe())
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
            scripts::decode_keep_alive(reply)
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
    ) -> BoxFuture<'a, Result<Heartbeat, Error>> {
        Box::pin(async move {
            let command = self.scripts.heartbeat(&self.nodes_key(), node, stale_after);
            let reply = self
                .script("heartbeat", scripts::HEARTBEAT, command)
                .await?;
            let (server_us, members) = scripts::decode_heartbeat(reply)?;
            Ok(Heartbeat { server_us, members })
        })
    }

    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>> {
        Box::pin(async move {
            let slot = link::slot(&self.nodes_key());
            let (seconds, micros) = self.call("time", self.link.time(slot)).await?;
            Ok(Some(seconds * 1_000_000 + micros))
        })
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut conn = self.link.get();
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(self.nodes_key()).arg(node);
            let _: i64 = self.call("leave", cmd.query_async(&mut conn)).await?;
            Ok(())
        })
    }
}
