//! The benchmark's own `redis-server`, on a free loopback port in a temporary folder, and what
//! it reports through `INFO`.

use std::collections::BTreeMap;

use redis::aio::MultiplexedConnection;

/// A `redis-server` started for the benchmark (no persistence), through the launcher the
/// tests use; stopped when dropped.
pub struct RedisServer(fourit_testkit::RedisServer);

impl RedisServer {
    /// Starts `redis-server --save "" --appendonly no` on a free loopback port and waits until
    /// it answers.
    pub async fn start() -> Result<RedisServer, String> {
        fourit_testkit::RedisServer::builder()
            .try_start()
            .map(RedisServer)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// The server's process id (0 if it is not running).
    pub fn pid(&self) -> u32 {
        self.0.pid().unwrap_or_default()
    }

    /// A new connection of the benchmark's own.
    pub async fn connect(&self) -> Result<MultiplexedConnection, String> {
        self.0.try_connection().await
    }

    /// The server's version, e.g. `7.0.15`.
    pub async fn version(&self) -> String {
        let Ok(mut conn) = self.connect().await else {
            return "?".to_string();
        };
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        info.lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim()
            .to_string()
    }
}

/// Deletes every key.
pub async fn flush(conn: &mut MultiplexedConnection) -> Result<(), String> {
    redis::cmd("FLUSHALL")
        .query_async::<()>(conn)
        .await
        .map_err(|err| format!("FLUSHALL: {err}"))
}

/// Counters from `INFO stats commandstats`.
#[derive(Clone, Debug, Default)]
pub struct Info {
    /// Calls per command (`cmdstat_NAME:calls=`), lower case; commands a Lua script runs are
    /// counted too, under their own names.
    pub calls: BTreeMap<String, u64>,
    /// Microseconds Redis spent per command (`usec=`), commands run by scripts included in
    /// the script's time as well as in their own.
    pub usec: BTreeMap<String, u64>,
    /// `total_reads_processed`: socket reads that brought request bytes. One request (or one
    /// pipelined batch up to 16 KiB) is one read: the server's view of round trips.
    pub reads: u64,
    /// `total_net_input_bytes`.
    pub net_in: u64,
    /// `total_net_output_bytes`: replies and pub/sub messages sent.
    pub net_out: u64,
    /// The size of this `INFO`'s own reply, sent after the counters were read: taken out
    /// of the next snapshot's difference.
    own_reply: u64,
}

impl Info {
    /// Reads the counters (one round trip, counted in them).
    pub async fn fetch(conn: &mut MultiplexedConnection) -> Result<Info, String> {
        let text: String = redis::cmd("INFO")
            .arg("stats")
            .arg("commandstats")
            .query_async(conn)
            .await
            .map_err(|err| format!("INFO: {err}"))?;
        let mut info = Info {
            // The bulk string: `$<len>\r\n<text>\r\n`.
            own_reply: text.len() as u64 + text.len().to_string().len() as u64 + 5,
            ..Info::default()
        };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("cmdstat_") {
                let Some((name, fields)) = rest.split_once(':') else {
                    continue;
                };
                let field = |key: &str| -> u64 {
                    fields
                        .split(',')
                        .find_map(|field| field.strip_prefix(key))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                let name = name.to_ascii_lowercase();
                info.usec.insert(name.clone(), field("usec="));
                info.calls.insert(name, field("calls="));
            } else if let Some(v) = line.strip_prefix("total_reads_processed:") {
                info.reads = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("total_net_input_bytes:") {
                info.net_in = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("total_net_output_bytes:") {
                info.net_out = v.trim().parse().unwrap_or(0);
            }
        }
        Ok(info)
    }

    /// The counters since `before`.
    pub fn since(&self, before: &Info) -> Info {
        Info {
            calls: self
                .calls
                .iter()
                .map(|(name, calls)| {
                    let then = before.calls.get(name).copied().unwrap_or(0);
                    (name.clone(), calls.saturating_sub(then))
                })
                .filter(|(_, calls)| *calls > 0)
                .collect(),
            usec: self
                .usec
                .iter()
                .map(|(name, usec)| {
                    let then = before.usec.get(name).copied().unwrap_or(0);
                    (name.clone(), usec.saturating_sub(then))
                })
                .filter(|(_, usec)| *usec > 0)
                .collect(),
            reads: self.reads.saturating_sub(before.reads),
            net_in: self.net_in.saturating_sub(before.net_in),
            net_out: self
                .net_out
                .saturating_sub(before.net_out)
                .saturating_sub(before.own_reply),
            own_reply: 0,
        }
    }

    /// Calls of one command.
    pub fn get(&self, command: &str) -> u64 {
        self.calls.get(command).copied().unwrap_or(0)
    }

    /// Microseconds Redis spent per call of one command, on average.
    pub fn usec_per_call(&self, command: &str) -> Option<f64> {
        let calls = self.get(command);
        (calls > 0).then(|| self.usec.get(command).copied().unwrap_or(0) as f64 / calls as f64)
    }
}
