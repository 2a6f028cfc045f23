//! The Redis coordinator: the protocol as Lua scripts, one round trip per call.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_core::Stream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::{ErrorKind, RedisError, Script, ServerErrorKind, Value};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::debug;

use super::TlsConfig;
use super::{
    ClaimNotice, ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator, FUTURE_TICK_TOLERANCE,
    HISTORY_LEN, Heartbeat, HistoryEntry, Lease, NoticeSender, RunRecord, redact_url,
};
use crate::error::{CoordinatorError, Error, ErrorKind as Kind};
use crate::job::{BoxFuture, FenceToken, Overlap};
use crate::spec;

const CLAIM: &str = include_str!("claim.lua");
const KEEP_ALIVE: &str = include_str!("keep_alive.lua");
const RELEASE: &str = include_str!("release.lua");
const HEARTBEAT: &str = include_str!("heartbeat.lua");

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
    conn: Arc<Connection>,
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
    claim: Script,
    keep_alive: Script,
    release: Script,
    heartbeat: Script,
}

impl fmt::Debug for RedisCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCoordinator")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// The connection every call goes through, and a way to start it afresh.
///
/// The client library's `ConnectionManager` reconnects after I/O errors, but a reconnection
/// that fails authentication (a restarted Redis whose users are not loaded yet, a password
/// being rotated) leaves it failed for good: every later call gets the same error. So a call
/// failing authentication replaces the manager, at most once a second, in the background.
struct Connection {
    manager: RwLock<ConnectionManager>,
    client: redis::Client,
    /// A replacement is being made.
    replacing: AtomicBool,
}

impl Connection {
    /// A handle to the current connection (cheap: handles share it).
    fn get(&self) -> ConnectionManager {
        match self.manager.read() {
            Ok(manager) => manager.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Starts connecting afresh, unless that is already under way.
    fn replace(self: &Arc<Self>) {
        if self.replacing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let fresh = tokio::time::timeout(
                DEADLINE,
                ConnectionManager::new_with_config(this.client.clone(), manager_config()),
            )
            .await;
            match fresh {
                Ok(Ok(manager)) => {
                    match this.manager.write() {
                        Ok(mut current) => *current = manager,
                        Err(poisoned) => *poisoned.into_inner() = manager,
                    }
                    debug!("reconnected to Redis after an authentication failure");
                }
                // Still refused or unreachable: the next failing call tries again.
                Ok(Err(err)) => debug!(error = err.category(), "reconnecting failed"),
                Err(_) => debug!("reconnecting timed out"),
            }
            // At most one attempt a second, however many calls fail meanwhile.
            tokio::time::sleep(Duration::from_secs(1)).await;
            this.replacing.store(false, Ordering::Release);
        });
    }
}

/// How every connection to Redis behaves: one quick retry, then the call fails (and the
/// scheduler fails closed); 2 s to connect and to answer.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
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
        install_crypto_provider();
        let client = open_client(url, tls).map_err(|err| Error::InvalidUrl {
            url: redacted.clone(),
            reason: invalid_url_reason(url, &err),
        })?;
        let secret = client
            .get_connection_info()
            .redis_settings()
            .password()
            .map(str::to_string);
        let conn = ConnectionManager::new_with_config(client.clone(), manager_config())
            .await
            .map_err(|err| classify("connect", &redacted, secret.as_deref(), err))?;
        let conn = Arc::new(Connection {
            manager: RwLock::new(conn),
            client: client.clone(),
            replacing: AtomicBool::new(false),
        });
        let channel = format!("{namespace}:claims");
        let stop = CancellationToken::new();
        let mut coordinator = RedisCoordinator {
            conn,
            namespace: namespace.to_string(),
            channel: channel.clone(),
            notices: NoticeSender::new(),
            _listener: stop.clone().drop_guard(),
            url: redacted,
            secret,
            claim: Script::new(CLAIM),
            keep_alive: Script::new(KEEP_ALIVE),
            release: Script::new(RELEASE),
            heartbeat: Script::new(HEARTBEAT),
        };
        coordinator.load_scripts().await?;
        coordinator.check_permissions().await?;
        // Subscribing at start also proves the user may: a refusal is an error now, not a
        // silent loss of every notice.
        let subscription = subscribe(&client, &channel)
            .await
            .map_err(|err| coordinator.error("subscribe", err))?;
        tokio::spawn(listen(
            client,
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

    /// `ns:{job}`, `ns:{job}:lease`, `ns:{job}:runs`.
    fn job_keys(&self, job: &str) -> [String; 3] {
        let state = format!("{}:{{{job}}}", self.namespace);
        [
            state.clone(),
            format!("{state}:lease"),
            format!("{state}:runs"),
        ]
    }

    fn lease_key(&self, lease: &Lease) -> String {
        let [_, key, _] = self.job_keys(&lease.job);
        match lease.overlap {
            Overlap::Skip => key,
            Overlap::Allow => format!("{key}:{}", lease.fence),
        }
    }

    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.namespace)
    }

    /// Loads every script (the server forgets them on restart or `SCRIPT FLUSH`), which
    /// also proves at start that the user may run them.
    async fn load_scripts(&mut self) -> Result<(), Error> {
        let mut pipe = redis::pipe();
        for code in [CLAIM, KEEP_ALIVE, RELEASE, HEARTBEAT] {
            pipe.cmd("SCRIPT").arg("LOAD").arg(code);
        }
        let mut conn = self.conn.get();
        let _: Vec<String> = self
            .call("script load", pipe.query_async(&mut conn))
            .await?;
        Ok(())
    }

    /// Runs every command fourit will ever send, once, on keys of its own inside the
    /// namespace, so a user lacking a permission learns at start which one, instead of every
    /// tick being skipped later.
    async fn check_permissions(&self) -> Result<(), Error> {
        let base = format!("{}:{{probe}}:check", self.namespace);
        let [state, lease, runs, nodes] = [
            base.clone(),
            format!("{base}:lease"),
            format!("{base}:runs"),
            format!("{base}:nodes"),
        ];
        let node = "fourit-permission-check";
        let run_id = format!("{node}:1:1");
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        pipe.cmd("PING")
            .cmd("TIME")
            .cmd("DEL")
            .arg(&state)
            .arg(&lease)
            .arg(&runs)
            .arg(&nodes);
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
        pipe.cmd("EVALSHA")
            .arg(self.claim.get_hash())
            .arg(3)
            .arg(&state)
            .arg(&lease)
            .arg(&runs)
            .arg(1)
            .arg(node)
            .arg(60_000)
            .arg("0")
            .arg(HISTORY_LEN)
            .arg("")
            .arg(0)
            .arg(millis(FUTURE_TICK_TOLERANCE))
            .arg(&base)
            .arg(node);
        pipe.cmd("EVALSHA")
            .arg(self.keep_alive.get_hash())
            .arg(1)
            .arg(&lease)
            .arg(&run_id)
            .arg(60_000);
        pipe.cmd("EVALSHA")
            .arg(self.release.get_hash())
            .arg(3)
            .arg(&state)
            .arg(&lease)
            .arg(&runs)
            .arg(&run_id)
            .arg(1)
            .arg(node)
            .arg(1)
            .arg("succeeded")
            .arg("")
            .arg(0)
            .arg(HISTORY_LEN)
            .arg("0");
        pipe.cmd("EVALSHA")
            .arg(self.heartbeat.get_hash())
            .arg(1)
            .arg(&nodes)
            .arg(node)
            .arg(60_000);
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
            .arg(&nodes);
        let mut conn = self.conn.get();
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
                if err.coordinator_kind() == Some(Kind::Authentication) {
                    self.conn.replace();
                }
                Err(err)
            }
            Err(_) => Err(self.fail(
                operation,
                Kind::Timeout,
                format!("did not answer within {DEADLINE:?}"),
            )),
        }
    }

    fn claim_command(&self, request: &ClaimRequest) -> redis::Cmd {
        let keys = self.job_keys(&request.job);
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.claim.get_hash())
            .arg(keys.len())
            .arg(&keys)
            .arg(request.tick_ms)
            .arg(&*request.node)
            .arg(millis(request.lease_ttl).max(1))
            .arg(if request.overlap == Overlap::Allow {
                "1"
            } else {
                "0"
            })
            .arg(HISTORY_LEN)
            .arg(request.preferred.as_deref().unwrap_or(""))
            .arg(millis(request.handoff))
            .arg(millis(FUTURE_TICK_TOLERANCE));
        // Only a claim that others may be waiting out the handoff for is announced.
        if request.preferred.is_some() {
            cmd.arg(&self.channel).arg(&*request.job);
        }
        cmd
    }

    async fn claim_all(&self, requests: &[ClaimRequest]) -> Result<Vec<ClaimOutcome>, Error> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let replies = self
            .pipeline("claim", CLAIM, requests, |request| {
                self.claim_command(request)
            })
            .await?;
        requests
            .iter()
            .zip(replies)
            .map(|(request, reply)| {
                decode_claim(request, reply.map_err(|err| self.error("claim", err))?)
            })
            .collect()
    }

    fn release_command(&self, (lease, record): &(Lease, RunRecord)) -> redis::Cmd {
        let [state, _, runs] = self.job_keys(&lease.job);
        let mut cmd = redis::cmd("EVALSHA");
        let error = record.outcome.error();
        cmd.arg(self.release.get_hash())
            .arg(3)
            .arg(state)
            .arg(self.lease_key(lease))
            .arg(runs)
            .arg(lease.run_id())
            .arg(lease.tick_ms)
            .arg(&*lease.node)
            .arg(lease.fence.get())
            .arg(record.outcome.as_str())
            .arg(error.unwrap_or_default())
            .arg(millis(record.duration))
            .arg(HISTORY_LEN)
            .arg(if error.is_some() { "1" } else { "0" });
        cmd
    }

    async fn release_runs(&self, runs: &[(Lease, RunRecord)]) -> Vec<Result<bool, Error>> {
        if runs.is_empty() {
            return Vec::new();
        }
        let replies = match self
            .pipeline("release", RELEASE, runs, |run| self.release_command(run))
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
            .map(|reply| {
                let reply = reply.map_err(|err| self.error("release", err))?;
                let released: i64 = redis::from_redis_value(reply).map_err(|_| {
                    self.fail(
                        "release",
                        Kind::Protocol,
                        "the release script answered in an unexpected shape",
                    )
                })?;
                Ok(released == 1)
            })
            .collect()
    }

    /// Sends one script call per item in one pipeline and answers each in order. After a
    /// restart the server has forgotten the scripts: a NOSCRIPT reply means that call did not
    /// run, so loading the script and sending those calls again is safe.
    async fn pipeline<T>(
        &self,
        operation: &'static str,
        code: &str,
        items: &[T],
        command: impl Fn(&T) -> redis::Cmd,
    ) -> Result<Vec<Result<Value, RedisError>>, Error> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for item in items {
            pipe.add_command(command(item));
        }
        let mut conn = self.conn.get();
        let mut replies: Vec<Result<Value, RedisError>> =
            self.call(operation, pipe.query_async(&mut conn)).await?;
        let missing: Vec<usize> = replies
            .iter()
            .enumerate()
            .filter(|(_, reply)| matches!(reply, Err(err) if is_noscript(err)))
            .map(|(index, _)| index)
            .collect();
        if !missing.is_empty() {
            let mut retry = redis::pipe();
            retry.ignore_errors();
            retry.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
            for index in &missing {
                retry.add_command(command(&items[*index]));
            }
            let again: Vec<Result<Value, RedisError>> =
                self.call(operation, retry.query_async(&mut conn)).await?;
            for (index, reply) in missing.into_iter().zip(again) {
                replies[index] = reply;
            }
        }
        Ok(replies)
    }

    /// Runs one script by hash, loading it first if the server has forgotten it.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, Error> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = self.conn.get();
        self.call(operation, invocation.invoke_async(&mut conn))
            .await
    }
}

/// A connection subscribed to `channel`, within the call deadline.
async fn subscribe(client: &redis::Client, channel: &str) -> Result<PubSub, RedisError> {
    let subscribing = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    };
    match tokio::time::timeout(DEADLINE, subscribing).await {
        Ok(result) => result,
        Err(_) => Err(RedisError::from((
            ErrorKind::Io,
            "subscribing timed out",
            format!("no answer within {DEADLINE:?}"),
        ))),
    }
}

/// Forwards the notices heard on `channel` until `stop`; resubscribes, with backoff, when
/// the connection drops (notices sent meanwhile are lost, which only costs refused claims).
async fn listen(
    client: redis::Client,
    channel: String,
    subscription: PubSub,
    notices: NoticeSender,
    stop: CancellationToken,
) {
    let mut subscription = Some(subscription);
    let mut backoff = Duration::from_millis(200);
    loop {
        let pubsub = match subscription.take() {
            Some(pubsub) => pubsub,
            None => {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return,
                }
                match subscribe(&client, &channel).await {
                    Ok(pubsub) => {
                        backoff = Duration::from_millis(200);
                        pubsub
                    }
                    Err(err) => {
                        // The category only: the error's text could quote the URL.
                        debug!(
                            error = err.category(),
                            "claim notices: could not resubscribe yet"
                        );
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
        };
        let mut stream = pubsub.into_on_message();
        loop {
            let next = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx));
            let message = tokio::select! {
                message = next => message,
                () = stop.cancelled() => return,
            };
            let Some(message) = message else {
                debug!("claim notices: the subscription closed; resubscribing");
                break;
            };
            if let Some(notice) = parse_notice(message.get_payload_bytes()) {
                notices.send(notice);
            }
        }
    }
}

/// `<tick ms> <job>`, as the claim script publishes it.
fn parse_notice(payload: &[u8]) -> Option<ClaimNotice> {
    let text = std::str::from_utf8(payload).ok()?;
    let (tick, job) = text.split_once(' ')?;
    Some(ClaimNotice {
        job: Arc::from(job),
        tick_ms: tick.parse().ok()?,
    })
}

fn decode_claim(request: &ClaimRequest, reply: Value) -> Result<ClaimOutcome, Error> {
    let malformed = || {
        Error::Coordinator(CoordinatorError::new(
            BACKEND,
            "claim",
            Kind::Protocol,
            "the claim script answered in an unexpected shape",
        ))
    };
    let items: Vec<Value> = redis::from_redis_value(reply).map_err(|_| malformed())?;
    let mut items = items.into_iter();
    let code: i64 = items
        .next()
        .and_then(|v| redis::from_redis_value(v).ok())
        .ok_or_else(malformed)?;
    match code {
        0 => Ok(ClaimOutcome::Taken),
        1 => {
            let fence: u64 = items
                .next()
                .and_then(|v| redis::from_redis_value(v).ok())
                .ok_or_else(malformed)?;
            Ok(ClaimOutcome::Run(Lease {
                job: request.job.clone(),
                tick_ms: request.tick_ms,
                fence: FenceToken(fence),
                node: request.node.clone(),
                overlap: request.overlap,
            }))
        }
        2 => {
            let holder: String = items
                .next()
                .and_then(|v| redis::from_redis_value(v).ok())
                .ok_or_else(malformed)?;
            Ok(ClaimOutcome::Overlap { holder })
        }
        3 => {
            let mut number = || -> Result<i64, Error> {
                let text: String = items
                    .next()
                    .and_then(|v| redis::from_redis_value(v).ok())
                    .ok_or_else(malformed)?;
                text.parse().map_err(|_| malformed())
            };
            let at_ms = number()?;
            let now_ms = number()?;
            Ok(ClaimOutcome::Retry { at_ms, now_ms })
        }
        4 => {
            let now: String = items
                .next()
                .and_then(|v| redis::from_redis_value(v).ok())
                .ok_or_else(malformed)?;
            let now_ms = now.parse().map_err(|_| malformed())?;
            Ok(ClaimOutcome::Early { now_ms })
        }
        _ => Err(malformed()),
    }
}

fn number<T: std::str::FromStr>(text: Option<String>) -> Option<T> {
    text.and_then(|t| t.parse().ok())
}

fn is_noscript(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Maps a client error to fourit's, with any password scrubbed from its text.
fn classify(operation: &'static str, url: &str, secret: Option<&str>, err: RedisError) -> Error {
    let mut detail = err.to_string();
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        detail = detail.replace(secret, "***");
    }
    let kind = match err.kind() {
        ErrorKind::AuthenticationFailed => Kind::Authentication,
        ErrorKind::Server(ServerErrorKind::NoPerm) => Kind::Permission,
        // A script's refused command comes back as a script error quoting NOPERM.
        _ if detail.contains("NOPERM")
            || detail.contains("no permissions to")
            || detail.contains("can't run this command") =>
        {
            Kind::Permission
        }
        _ if detail.contains("certificate") || detail.contains("TLS") || detail.contains("tls") => {
            Kind::Tls
        }
        ErrorKind::InvalidClientConfig => {
            return Error::InvalidUrl {
                url: url.to_string(),
                reason: detail,
            };
        }
        _ if detail.contains("WRONGPASS") || detail.contains("NOAUTH") => Kind::Authentication,
        _ => Kind::Unavailable,
    };
    Error::Coordinator(
        CoordinatorError::new(BACKEND, operation, kind, detail)
            .at(url)
            .caused_by(&err, secret),
    )
}

/// A client for `url`, with the certificates of `tls` when the `tls` feature is on.
fn open_client(url: &str, tls: Option<&TlsConfig>) -> Result<redis::Client, RedisError> {
    #[cfg(feature = "tls")]
    if let Some(tls) = tls.filter(|tls| !tls.is_empty()) {
        return redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: tls.client_identity.as_ref().map(|(cert, key)| {
                    redis::ClientTlsConfig {
                        client_cert: cert.clone(),
                        client_key: key.clone(),
                    }
                }),
                root_cert: tls.root_certificates.clone(),
            },
        );
    }
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    redis::Client::open(url)
}

fn invalid_url_reason(url: &str, err: &RedisError) -> String {
    if url.starts_with("rediss://") && !cfg!(feature = "tls") {
        return "rediss:// (TLS) needs fourit's `tls` cargo feature: \
                fourit = { version = \"...\", features = [\"tls\"] }"
            .to_string();
    }
    // The client library's text may quote the URL: say what is wrong without it.
    match err.detail() {
        Some(detail) if !detail.contains(url) => format!("{} ({detail})", err.category()),
        _ => err.category().to_string(),
    }
}

#[cfg(feature = "tls")]
fn install_crypto_provider() {
    // Installing twice is refused, harmlessly: the first provider stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
            let extended: i64 = self
                .invoke(
                    "keep-alive",
                    &self.keep_alive,
                    &[self.lease_key(lease)],
                    &[lease.run_id(), millis(ttl).max(1).to_string()],
                )
                .await?;
            Ok(extended == 1)
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
            let reply: Vec<String> = self
                .invoke(
                    "heartbeat",
                    &self.heartbeat,
                    &[self.nodes_key()],
                    &[node.to_string(), millis(stale_after).max(1).to_string()],
                )
                .await?;
            let mut reply = reply.into_iter();
            let server_us = reply.next().and_then(|us| us.parse().ok());
            let mut members: Vec<String> = reply.collect();
            members.sort();
            Ok(Heartbeat { server_us, members })
        })
    }

    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>> {
        Box::pin(async move {
            let mut conn = self.conn.get();
            let (seconds, micros): (i64, i64) = self
                .call("time", redis::cmd("TIME").query_async(&mut conn))
                .await?;
            Ok(Some(seconds * 1_000_000 + micros))
        })
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut conn = self.conn.get();
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(self.nodes_key()).arg(node);
            let _: i64 = self.call("leave", cmd.query_async(&mut conn)).await?;
            Ok(())
        })
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<(String, i64)>, Error>> {
        Box::pin(async move {
            let mut conn = self.conn.get();
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
            let [_, _, runs] = self.job_keys(job);
            let mut conn = self.conn.get();
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
}
