//! The Redis coordinator: the protocol as Lua scripts, one round trip per call. This file
//! holds the coordinator's state and its key names; connecting, the calls, claims and
//! releases, the seam's methods and the read side each have a file of their own.

mod admin;
mod calls;
mod catalog;
mod claims;
mod client;
mod connect;
mod connection;
mod handle;
mod keys;
mod link;
mod manual;
mod notices;
mod probe;
mod reconnect;
mod replies;
mod scripts;
mod seam;
mod sentinel;
mod startup;
mod url;

use std::fmt;
use std::time::Duration;

use tokio_util::sync::DropGuard;

use self::keys::JobKeys;
use self::link::Link;
use self::scripts::Scripts;
use super::{NoticeSender, ReplicaAcks};

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
}
