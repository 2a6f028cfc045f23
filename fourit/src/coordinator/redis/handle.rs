//! What one call goes through: a handle to the current connection that retires it when the
//! call gets no answer (or finds Redis unreachable, or has its credentials refused), and the
//! check that a pipeline's answers are its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use super::connection::Connection;

/// A handle for one call: cheap to make, either kind.
#[derive(Clone)]
pub(super) enum Handle {
    /// One server's connection, of this epoch.
    Single(Arc<Connection>, u64, ConnectionManager),
    Cluster(ClusterConnection),
    /// The single server's connection was retired and its replacement is not made yet: a
    /// call waits for it (within the call's deadline), and is never sent on the old one.
    Retired(Arc<Connection>),
}

impl Handle {
    /// A single server's handle: its current connection, or the wait for a fresh one.
    pub(super) fn single(connection: &Arc<Connection>) -> Handle {
        match connection.get() {
            Some((epoch, manager)) => Handle::Single(connection.clone(), epoch, manager),
            None => Handle::Retired(connection.clone()),
        }
    }

    /// Takes this handle's connection out of service (a single server's), so that no later
    /// call is sent on it: its answers were out of step.
    pub(super) fn retire(&self) {
        if let Handle::Single(connection, epoch, _) = self {
            connection.retire(*epoch);
        }
    }
}

/// Retires `connection`'s `epoch` when dropped armed: a call that ended without an answer
/// (its deadline passed and dropped it) or with an error that leaves the connection in doubt.
struct Watch {
    connection: Arc<Connection>,
    epoch: u64,
    armed: bool,
}

impl Watch {
    fn new(connection: Arc<Connection>, epoch: u64) -> Watch {
        Watch {
            connection,
            epoch,
            armed: true,
        }
    }

    /// The call answered: the connection stays unless the answer says it must not.
    fn answered<T>(mut self, answer: &Result<T, RedisError>) {
        self.armed = answer.as_ref().is_err_and(leaves_in_doubt);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.armed {
            self.connection.retire(self.epoch);
        }
    }
}

/// Whether an error leaves the connection unusable or in doubt: no answer in time, the link
/// broken or refused, the credentials refused (a reconnection that failed them stays
/// failed). A server's answer of an error (a script's, `NOSCRIPT`, `READONLY`) does not.
fn leaves_in_doubt(err: &RedisError) -> bool {
    err.is_timeout()
        || err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.kind() == redis::ErrorKind::AuthenticationFailed
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Handle::Single(connection, epoch, manager) => {
                let watch = Watch::new(connection.clone(), *epoch);
                let mut manager = manager.clone();
                Box::pin(async move {
                    let answer = manager.req_packed_command(cmd).await;
                    watch.answered(&answer);
                    answer
                })
            }
            Handle::Cluster(conn) => conn.req_packed_command(cmd),
            Handle::Retired(connection) => {
                let connection = connection.clone();
                Box::pin(async move {
                    let (epoch, mut manager) = connection.fresh().await?;
                    let watch = Watch::new(connection.clone(), epoch);
                    let answer = manager.req_packed_command(cmd).await;
                    watch.answered(&answer);
                    answer
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Handle::Single(connection, epoch, manager) => {
                let watch = Watch::new(connection.clone(), *epoch);
                let mut manager = manager.clone();
                Box::pin(async move {
                    let answer = manager.req_packed_commands(cmd, offset, count).await;
                    watch.answered(&answer);
                    answer
                })
            }
            Handle::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
            Handle::Retired(connection) => {
                let connection = connection.clone();
                Box::pin(async move {
                    let (epoch, mut manager) = connection.fresh().await?;
                    let watch = Watch::new(connection.clone(), epoch);
                    let answer = manager.req_packed_commands(cmd, offset, count).await;
                    watch.answered(&answer);
                    answer
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Handle::Single(_, _, manager) => manager.get_db(),
            Handle::Cluster(conn) => conn.get_db(),
            Handle::Retired(connection) => connection.db(),
        }
    }
}

/// Ends `pipe` with `PING <nonce>`, a text no other pipeline sends, and answers the nonce.
///
/// Redis answers a connection's commands in order, and the client library hands the answers
/// out in order: on a link that lost bytes (a middlebox that dropped them, then let traffic
/// pass again), a call could be handed another call's answers — another job's claim decided
/// *run*, say. A pipeline whose last answer is its own nonce got its own answers.
pub(super) fn in_step(pipe: &mut Pipeline) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nonce = format!(
        "fourit-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    pipe.cmd("PING").arg(&nonce);
    nonce
}

/// Takes the nonce's answer off `replies`: an error if it is not the nonce (the answers are
/// someone else's, and none of them may be acted on), and `conn` is retired.
pub(super) fn check_in_step(
    conn: &Handle,
    replies: &mut Vec<Result<Value, RedisError>>,
    nonce: &str,
) -> Result<(), RedisError> {
    let echoed = match replies.pop() {
        Some(Ok(Value::BulkString(bytes))) => bytes == nonce.as_bytes(),
        Some(Ok(Value::SimpleString(text))) => text == nonce,
        _ => false,
    };
    if echoed {
        return Ok(());
    }
    conn.retire();
    Err(RedisError::from((
        redis::ErrorKind::Io,
        "the connection's answers were out of step with its calls (a link that lost data); \
         none was used",
    )))
}
