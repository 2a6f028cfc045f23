//! The Redis coordinator: the protocol as Lua scripts, one round trip per call.

mod admin;
mod connection;
mod handle;
mod link;
mod notices;
mod probe;
mod reconnect;
mod scripts;
mod sentinel;
mod url;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisError, Value};
use tokio_util::sync::{CancellationToken, DropGuard};

use self::connection::{Connection, classify, invalid_url_reason, manager_config, open_client};
use self::link::Link;
use self::notices::Subscribers;
use self::scripts::{JobKeys, Scripts};
use super::{
    ClaimNotices, ClaimOutcome, ClaimRequest, ConnectOptions, Coordinator, EvictionCheck,
    HISTORY_LEN, Heartbeat, Lease, MissedTicks, NoticeSender, ReplicaAcks, RunRecord, TlsConfig,
    redact_url,
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

/// The primary the sentinels name, or an error that says why there is none: an unknown
/// master name is a mistake in the URL; sentinels that do not answer are an outage.
async fn discover_primary(
    sentinel: &sentinel::Sentinel,
    url: &str,
) -> Result<redis::Client, Error> {
    match tokio::time::timeout(DEADLINE, sentinel.discover()).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(sentinel::Discovery::UnknownMaster)) => Err(Error::InvalidUrl {
            url: url.to_string(),
            reason: format!(
                "no sentinel knows a master named `{}`; check the name in the URL's path \
                 (`SENTINEL MASTERS` on a sentinel lists them)",
                sentinel.master()
            ),
        }),
        // The sentinels' errors carry no data-node password; theirs is not in the text.
        Ok(Err(sentinel::Discovery::Failed(err))) => Err(classify("connect", url, None, err)),
        Err(_) => Err(Error::Coordinator(
            CoordinatorError::new(
                BACKEND,
                "connect",
                Kind::Timeout,
                format!("the sentinels did not name a reachable primary within {DEADLINE:?}"),
            )
            .at(url),
        )),
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
    /// The ticks this coordinator's claims recorded as missed.
    missed: tokio::sync::broadcast::Sender<crate::coordinator::MissedNotice>,
    /// Stops the listener on `channel` when the coordinator is dropped.
    _listener: DropGuard,
    /// The URL with its password redacted, for messages.
    url: String,
    /// The password, to scrub from any text the client library produces.
    secret: Option<String>,
    scripts: Scripts,
    /// The membership as last fetched, with its version: a heartbeat fetches the list again
    /// only when the version changed.
    members: std::sync::Mutex<Option<(String, Vec<String>)>>,
    /// Replicas that must acknowledge a claim before it runs.
    replica_acks: Option<ReplicaAcks>,
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
        let mut options = ConnectOptions::new();
        options.tls = tls.cloned();
        RedisCoordinator::connect_with_options(url, namespace, &options).await
    }

    /// [`connect`](Self::connect) with [`ConnectOptions`]; settings in the URL's query
    /// (`?wait_replicas=1&wait_timeout=200ms`, `?eviction=strict`, ...) apply where
    /// `options` leaves them unset.
    pub async fn connect_with_options(
        url: &str,
        namespace: &str,
        options: &ConnectOptions,
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
        // A password may hold `/ ? # @` unencoded (Postgres takes it so): encoded here, so
        // redis-rs and fourit's own parsers read the password the user meant.
        let url = super::redact::encode_userinfo(url);
        let (url, from_url) = url::split_url_options(&url).map_err(invalid)?;
        let url = url.as_str();
        let options = options.clone().or(from_url);
        if let Some(acks) = options.replica_acks {
            acks.check().map_err(|reason| Error::InvalidOption {
                option: "wait_for_replicas",
                reason,
            })?;
        }
        let tls = options.tls.as_ref();
        let sentinel = match sentinel::parse(url) {
            Some(parsed) => {
                let parsed = parsed.map_err(invalid)?;
                let sentinel =
                    sentinel::Sentinel::new(parsed, options.sentinel_credentials.as_ref(), tls)
                        .map_err(|err| invalid(invalid_url_reason(url, &err)))?;
                Some(Arc::new(sentinel))
            }
            None => None,
        };
        let (link, subscribers, secret) = match url::cluster_nodes(url) {
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
                (
                    Link::Cluster(Arc::new(cluster)),
                    Subscribers::Nodes(clients),
                    secret,
                )
            }
            None => {
                let client = match &sentinel {
                    Some(sentinel) => discover_primary(sentinel, &redacted).await?,
                    None => open_client(url, tls)
                        .map_err(|err| invalid(invalid_url_reason(url, &err)))?,
                };
                let secret = password(&client);
                let manager = ConnectionManager::new_with_config(client.clone(), manager_config())
                    .await
                    .map_err(|err| classify("connect", &redacted, secret.as_deref(), err))?;
                let link = Link::Single(Arc::new(Connection::new(
                    manager,
                    client.clone(),
                    sentinel.clone(),
                )));
                let subscribers = match sentinel {
                    Some(sentinel) => Subscribers::Sentinel(sentinel),
                    None => Subscribers::Nodes(vec![client]),
                };
                (link, subscribers, secret)
            }
        };
        let channel = format!("{namespace}:claims");
        let stop = CancellationToken::new();
        let mut coordinator = RedisCoordinator {
            link,
            namespace: namespace.to_string(),
            channel: channel.clone(),
            notices: NoticeSender::new(),
            missed: tokio::sync::broadcast::channel(crate::coordinator::NOTICE_BUFFER).0,
            _listener: stop.clone().drop_guard(),
            url: redacted,
            secret,
            scripts: Scripts::new(),
            members: std::sync::Mutex::new(None),
            replica_acks: options.replica_acks,
        };
        coordinator
            .refuse_cluster_node_without_cluster_url()
            .await?;
        coordinator
            .check_eviction(options.eviction.unwrap_or_default())
            .await?;
        coordinator.check_replicas().await;
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
        self.after_readonly(&err);
        classify(operation, &self.url, self.secret.as_deref(), err)
    }

    /// A `READONLY` answer means the server was demoted to a replica (a failover): connect
    /// afresh, to the primary the sentinels name now, or to the URL's host again (a DNS name
    /// that follows the primary, as managed Redis gives). Never runs a job either way.
    fn after_readonly(&self, err: &RedisError) {
        if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
            || err.to_string().contains("READONLY")
        {
            self.link.replace_after_readonly();
        }
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

    /// `ns:jobs`: the names of every job ever registered (the catalog's index).
    fn jobs_key(&self) -> String {
        format!("{}:jobs", self.namespace)
    }

    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.namespace)
    }

    /// The membership as last fetched, and its version.
    fn known_members(&self) -> Option<(String, Vec<String>)> {
        match self.members.lock() {
            Ok(known) => known.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn remember_members(&self, version: String, members: Vec<String>) {
        let fresh = Some((version, members));
        match self.members.lock() {
            Ok(mut known) => *known = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
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

    /// The values of `field` in the server's `INFO section` (one per node of a cluster);
    /// none if the server will not tell.
    async fn info_field(&self, section: &str, field: &str) -> Vec<String> {
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
    async fn check_eviction(&self, check: EvictionCheck) -> Result<(), Error> {
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
    async fn check_replicas(&self) {
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
                self.after_readonly(&err);
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
        let commands = requests
            .iter()
            .map(|request| {
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
            .collect();
        let replies = self
            .call(
                "claim",
                self.link
                    .pipeline(scripts::CLAIM, commands, self.replica_acks),
            )
            .await?;
        let mut missed = Vec::new();
        let outcomes = requests
            .iter()
            .zip(replies)
            .map(|(request, reply)| match reply {
                Ok(answer) => {
                    let (outcome, mark) = scripts::decode_claim(request, answer.value)?;
                    if let (Some(mark), Some(schedule)) = (mark, &request.schedule)
                        && let Some(ticks) = MissedTicks::between(schedule, mark, request.tick_ms)
                    {
                        missed.push((request, ticks));
                    }
                    Ok(match (outcome, self.replica_acks, answer.acknowledged) {
                        (
                            ClaimOutcome::Run(lease) | ClaimOutcome::Resumed(lease),
                            Some(acks),
                            Some(acknowledged),
                        ) if acknowledged < acks.replicas => ClaimOutcome::Unreplicated {
                            lease,
                            acknowledged,
                            wanted: acks.replicas,
                        },
                        (outcome, _, _) => outcome,
                    })
                }
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
            .collect::<Result<Vec<_>, Error>>()?;
        if !missed.is_empty() {
            self.record_missed(&missed).await;
        }
        Ok(outcomes)
    }

    /// Drops a decided manual request from the index of waiting ones (best effort: a
    /// leftover entry only costs the next reader one lookup).
    async fn forget_manual(&self, job: &str, id: &str) {
        let mut conn = self.link.get();
        let mut forget = redis::cmd("ZREM");
        forget
            .arg(scripts::manual_index_key(&self.nodes_key()))
            .arg(format!("{job}\t{id}"));
        let _ = self
            .call("manual requests", forget.query_async::<i64>(&mut conn))
            .await;
    }

    /// Records in history the ticks that claims just skipped over (the old mark was older
    /// than the schedule's previous tick): one `missed` entry per job, by the one claimer
    /// that moved the mark. Best effort: a failure costs the record, never a run.
    async fn record_missed(&self, missed: &[(&ClaimRequest, MissedTicks)]) {
        let commands = missed
            .iter()
            .map(|(request, ticks)| {
                let keys = self.job_keys(&request.job);
                let mut cmd = redis::cmd("XADD");
                cmd.arg(&keys.runs)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(HISTORY_LEN)
                    .arg("*")
                    .arg("tick")
                    .arg(ticks.last_ms)
                    .arg("node")
                    .arg(&*request.node)
                    .arg("outcome")
                    .arg("missed")
                    .arg("detail")
                    .arg(ticks.detail())
                    .arg("missed_count")
                    .arg(ticks.count)
                    .arg("missed_first")
                    .arg(ticks.first_ms);
                (link::slot(&keys.state), cmd)
            })
            .collect();
        for (request, ticks) in missed {
            let _ = self
                .missed
                .send(crate::coordinator::MissedNotice::new(request, ticks));
            tracing::warn!(
                job = &*request.job,
                missed = ticks.count,
                first = ticks.first_ms,
                last = ticks.last_ms,
                "ticks nobody ran (the fleet was down or stalled): recorded as missed"
            );
        }
        if let Err(err) = self
            .call(
                "record missed",
                self.link.pipeline(scripts::CLAIM, commands, None),
            )
            .await
        {
            tracing::debug!(error = %err, "could not record missed ticks");
        }
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
        let answers = self
            .call(operation, self.link.pipeline(code, commands, None))
            .await?;
        Ok(answers
            .into_iter()
            .map(|answer| answer.map(|answer| answer.value))
            .collect())
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
            let mut reply = scripts::decode_heartbeat(reply)?;
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
                        let again = scripts::decode_heartbeat(raw)?;
                        // Members forgotten by either heartbeat are named.
                        reply.evicted.extend(again.evicted);
                        let members = again.members.unwrap_or_default();
                        self.remember_members(again.version, members.clone());
                        members
                    }
                },
            };
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
        Box::pin(async move {
            let index = scripts::manual_index_key(&self.nodes_key());
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

    fn claim_manual<'a>(
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

    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [crate::coordinator::JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<super::Registrations>, Error>> {
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
                let mut registrations: super::Registrations = all
                    .into_iter()
                    .filter_map(|(node, line)| {
                        crate::coordinator::JobDefinition::from_line(&job.name, &line)
                            .map(|def| (node, def))
                    })
                    .collect();
                // By node, as the catalog and every other backend answer them (the hash's
                // order is Redis's own, and the map's random).
                registrations.sort_by(|a, b| a.0.cmp(&b.0));
                answers.push(registrations);
            }
            Ok(answers)
        })
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            // The version goes with the member: a token of this leave's own replaces it, so
            // every member fetches the list again, and the heartbeat script hands out versions
            // that differ from every one before, even at the same instant. (Both keys share a
            // slot.)
            let nodes = self.nodes_key();
            let token = format!("left-{:016x}", super::new_claim_id());
            let mut pipe = redis::pipe();
            pipe.cmd("ZREM")
                .arg(&nodes)
                .arg(node)
                .ignore()
                .cmd("SET")
                .arg(scripts::version_key(&nodes))
                .arg(token)
                .ignore();
            let mut conn = self.link.get();
            let () = self.call("leave", pipe.query_async(&mut conn)).await?;
            Ok(())
        })
    }
}
