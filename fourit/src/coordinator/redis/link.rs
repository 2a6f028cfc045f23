//! What the coordinator talks through: one Redis (a connection manager), or a Redis Cluster
//! (the client library's cluster connection, which follows `MOVED`/`ASK` and failovers).
//! Pipelines to a cluster are split by hash slot, sent concurrently, answered in order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisError, Value};
use tracing::debug;

use super::connection::{Connection, is_noscript};
use super::handle::{Handle, check_in_step, in_step};
use super::reconnect::until_connected;
use crate::coordinator::ReplicaAcks;

/// How long one slot's pipeline may take in a cluster before its commands count as
/// unanswered; shorter than a call's deadline, so the other slots' answers are kept.
const GROUP_DEADLINE: Duration = Duration::from_secs(2);

/// The connection of a coordinator.
pub(super) enum Link {
    /// One Redis server.
    Single(Arc<Connection>),
    /// A Redis Cluster.
    Cluster(Arc<Cluster>),
}

/// A cluster connection, and a way to start it afresh.
///
/// The client library's cluster connection refreshes its slot map when a node answers
/// `MOVED`; a dead primary answers nothing, and the client keeps repairing its connection to
/// the dead address. So a call that finds the cluster unavailable (or gets no answer: a
/// silently dropped link) also starts a fresh connection from the seeds in the background,
/// tried until it is made, which learns the slot map anew once a replica has taken over.
pub(super) struct Cluster {
    client: redis::cluster::ClusterClient,
    connection: RwLock<ClusterConnection>,
    replacing: AtomicBool,
}

impl Cluster {
    pub(super) fn new(
        client: redis::cluster::ClusterClient,
        connection: ClusterConnection,
    ) -> Cluster {
        Cluster {
            client,
            connection: RwLock::new(connection),
            replacing: AtomicBool::new(false),
        }
    }

    fn get(&self) -> ClusterConnection {
        match self.connection.read() {
            Ok(connection) => connection.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(self: &Arc<Self>) {
        if self.replacing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let attempt = || {
                let client = this.client.clone();
                async move { client.get_async_connection().await }
            };
            // Until a fresh connection is made, or the coordinator is gone.
            let wanted = || Arc::strong_count(&this) > 1;
            if let Some(fresh) = until_connected(attempt, wanted, |_| {}).await {
                match this.connection.write() {
                    Ok(mut current) => *current = fresh,
                    Err(poisoned) => *poisoned.into_inner() = fresh,
                }
                debug!("reconnected to the cluster from its seeds");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            this.replacing.store(false, Ordering::Release);
        });
    }
}

impl Link {
    /// A handle to the current connection.
    pub(super) fn get(&self) -> Handle {
        match self {
            Link::Single(connection) => Handle::single(connection),
            Link::Cluster(cluster) => Handle::Cluster(cluster.get()),
        }
    }

    /// After a call failed with `kind`: a cluster's connection is replaced (and kept
    /// meanwhile: one silent node must not stop the others' slots; its answers are still
    /// checked to be in step). A single server's connection was already retired by the call's
    /// own [`Handle`] if the failure left it in doubt.
    pub(super) fn replace_after(&self, kind: crate::error::ErrorKind) {
        use crate::error::ErrorKind as Kind;
        if let Link::Cluster(cluster) = self
            && matches!(
                kind,
                Kind::Authentication | Kind::Unavailable | Kind::Timeout
            )
        {
            cluster.replace();
        }
    }

    /// After a `READONLY` answer: a single server's (or Sentinel's) connection is made afresh;
    /// a cluster's client refreshes its slot map by itself.
    pub(super) fn replace_after_readonly(&self) {
        if let Link::Single(connection) = self {
            connection.replace();
        }
    }

    /// The server's `TIME`: to a cluster, from the primary of `slot` (the members key's), the
    /// node whose clock the heartbeat reads too, so the fleet clock samples one clock.
    pub(super) async fn time(&self, slot: u16) -> Result<(i64, i64), RedisError> {
        let time = redis::cmd("TIME");
        match self {
            Link::Single(_) => time.query_async(&mut self.get()).await,
            Link::Cluster(cluster) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot, SlotAddr::Master),
                ));
                let value = cluster.get().route_command(time, route).await?;
                Ok(redis::from_redis_value(value)?)
            }
        }
    }

    /// Whether this is a cluster.
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Link::Cluster(_))
    }

    /// Sends `commands` (each with the hash slot of its keys) and answers each in order.
    /// A script a server has forgotten (`NOSCRIPT`) is loaded from `code` and the calls
    /// that needed it sent again. To a cluster, the commands go in one pipeline per slot,
    /// all at once.
    ///
    /// With `acks`, each pipeline ends with `WAIT replicas timeout` on its connection, and
    /// each answer comes with the number of replicas that acknowledged its pipeline.
    pub(super) async fn pipeline(
        &self,
        code: &'static str,
        commands: Vec<(u16, Cmd)>,
        acks: Option<ReplicaAcks>,
    ) -> Result<Vec<Result<Answer, RedisError>>, RedisError> {
        if !self.is_cluster() || commands.len() < 2 {
            let commands = commands.into_iter().map(|(_, cmd)| cmd).collect();
            return send(self.get(), code, commands, acks).await;
        }
        // Indices of the commands per slot, in request order.
        let mut by_slot: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (index, (slot, _)) in commands.iter().enumerate() {
            by_slot.entry(*slot).or_default().push(index);
        }
        let mut commands: Vec<Option<Cmd>> = commands.into_iter().map(|(_, c)| Some(c)).collect();
        let groups = by_slot.len();
        let mut sends = tokio::task::JoinSet::new();
        for (group, indices) in by_slot.into_values().enumerate() {
            let group_commands: Vec<Cmd> = indices
                .iter()
                .filter_map(|index| commands[*index].take())
                .collect();
            let handle = self.get();
            sends.spawn(async move {
                // A node that does not answer must not hold back the others' answers, which
                // the caller's own deadline would otherwise throw away with its.
                let answer =
                    tokio::time::timeout(GROUP_DEADLINE, send(handle, code, group_commands, acks))
                        .await
                        .unwrap_or_else(|_| {
                            Err(RedisError::from((
                                redis::ErrorKind::Io,
                                "the node owning these slots did not answer in time",
                            )))
                        });
                (group, indices, answer)
            });
        }
        let mut replies: Vec<Option<Result<Answer, RedisError>>> =
            (0..commands.len()).map(|_| None).collect();
        let mut failures = 0;
        let mut last_failure = None;
        while let Some(joined) = sends.join_next().await {
            let Ok((_, indices, answer)) = joined else {
                // A task that ended without answering leaves its commands unanswered below.
                continue;
            };
            match answer {
                Ok(answer) => {
                    for (index, reply) in indices.into_iter().zip(answer) {
                        replies[index] = Some(reply);
                    }
                }
                // One primary not answering leaves the others' answers standing: its own
                // commands are answered with its error, each on its own.
                Err(err) => {
                    if let Link::Cluster(cluster) = self {
                        cluster.replace();
                    }
                    failures += 1;
                    for index in indices {
                        replies[index] = Some(Err(RedisError::from((
                            err.kind(),
                            "the node owning this slot did not answer",
                            err.to_string(),
                        ))));
                    }
                    last_failure = Some(err);
                }
            }
        }
        // Every node failed: the call failed as a whole, as with one server.
        if failures == groups
            && let Some(err) = last_failure
        {
            return Err(err);
        }
        Ok(replies
            .into_iter()
            .map(|reply| {
                reply.unwrap_or_else(|| {
                    Err(RedisError::from((
                        redis::ErrorKind::Io,
                        "no answer in the pipeline",
                    )))
                })
            })
            .collect())
    }
}

/// One command's answer, and how many replicas acknowledged the writes of its pipeline
/// (`None` when no acknowledgement was asked for).
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) value: Value,
    pub(super) acknowledged: Option<usize>,
}

/// `WAIT replicas timeout`: Redis answers once that many replicas have every write made on
/// this connection so far, or at the timeout, with the number that have.
fn wait_command(acks: ReplicaAcks) -> Cmd {
    let mut wait = redis::cmd("WAIT");
    wait.arg(acks.replicas)
        .arg(super::scripts::millis(acks.timeout).max(1));
    wait
}

/// How many replicas a `WAIT` answer counts; none for an error (fail closed).
fn acknowledged(reply: Option<Result<Value, RedisError>>) -> usize {
    match reply {
        Some(Ok(value)) => redis::from_redis_value::<i64>(value)
            .ok()
            .and_then(|count| usize::try_from(count).ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// One pipeline on one connection, reloading forgotten scripts, then waiting for replicas
/// if asked; its answers checked to be its own ([`in_step`]).
async fn send(
    mut conn: Handle,
    code: &'static str,
    commands: Vec<Cmd>,
    acks: Option<ReplicaAcks>,
) -> Result<Vec<Result<Answer, RedisError>>, RedisError> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for command in &commands {
        pipe.add_command(command.clone());
    }
    if let Some(acks) = acks {
        pipe.add_command(wait_command(acks));
    }
    let nonce = in_step(&mut pipe);
    let mut replies: Vec<Result<Value, RedisError>> = pipe.query_async(&mut conn).await?;
    check_in_step(&conn, &mut replies, &nonce)?;
    let mut acknowledged_count = acks.map(|_| acknowledged(replies.pop()));
    let missing: Vec<usize> = replies
        .iter()
        .enumerate()
        .filter(|(_, reply)| matches!(reply, Err(err) if is_noscript(err)))
        .map(|(index, _)| index)
        .collect();
    if !missing.is_empty() {
        // A NOSCRIPT reply means that call did not run: loading the script and sending those
        // calls again is safe. (To a cluster this pipeline goes to the slot's node: the
        // keyless SCRIPT LOAD does not decide the route.)
        let mut retry = redis::pipe();
        retry.ignore_errors();
        retry.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
        for index in &missing {
            retry.add_command(commands[*index].clone());
        }
        if let Some(acks) = acks {
            retry.add_command(wait_command(acks));
        }
        let nonce = in_step(&mut retry);
        let mut again: Vec<Result<Value, RedisError>> = retry.query_async(&mut conn).await?;
        check_in_step(&conn, &mut again, &nonce)?;
        if acks.is_some() {
            // The second WAIT covers both pipelines' writes; the fewer acks count.
            let second = acknowledged(again.pop());
            acknowledged_count = acknowledged_count.map(|first| first.min(second));
        }
        for (index, reply) in missing.into_iter().zip(again) {
            replies[index] = reply;
        }
    }
    Ok(replies
        .into_iter()
        .map(|reply| {
            reply.map(|value| Answer {
                value,
                acknowledged: acknowledged_count,
            })
        })
        .collect())
}

/// The Redis Cluster hash slot of `key`: CRC16 (XMODEM) of its hash tag (the part between
/// the first `{` and the next `}`, when not empty), or of the whole key, modulo 16384.
pub(super) fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &bytes[open + 1..];
        rest.iter()
            .position(|b| *b == b'}')
            .filter(|close| *close > 0)
            .map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(bytes)) % 16384
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::{crc16, slot};

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // The check value of CRC16/XMODEM, and slots `CLUSTER KEYSLOT` answers.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("bar"), 5061);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        // An empty tag does not count: the whole key is hashed.
        assert_eq!(slot("{}foo"), crc16(b"{}foo") % 16384);
        // Every key of a job shares its slot.
        // As `redis-cli CLUSTER KEYSLOT` answers for a fourit key.
        assert_eq!(slot("ns:{report}"), 4432);
        assert_eq!(slot("ns:{report}"), slot("ns:{report}:lease"));
        assert_eq!(slot("ns:{report}"), slot("ns:{report}:runs"));
    }
}
