//! A real `redis-server` of one's own, for fourit's tests, benchmarks and micro-benchmarks:
//! one launcher, so all three start, probe and stop Redis the same way.
//!
//! Nothing here mocks Redis. Each [`RedisServer`] is its own `redis-server` process on a free
//! loopback port, in its own temporary directory, so tests that start one are hermetic and
//! may run in parallel:
//!
//! ```no_run
//! # async fn demo() {
//! let mut server = fourit_testkit::RedisServer::start();
//! let mut con = server.connection().await;
//! let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
//! assert_eq!(pong, "PONG");
//! server.restart(); // same port, same directory
//! # }
//! ```
//!
//! The server's lifecycle calls ([`RedisServer::start`], [`RedisServer::stop`],
//! [`RedisServer::restart`]) block the calling thread until the server is ready or gone
//! (bounded by a deadline of about ten seconds), which is fine in a
//! `#[tokio::test(flavor = "multi_thread")]`. [`RedisServerBuilder::try_start`] answers an
//! error instead of panicking, for tools.

#![warn(missing_docs)]

mod fake_clock;
mod pgbouncer;
mod postgres;
mod proxy;
pub use fake_clock::FakeClock;
pub use pgbouncer::PgBouncer;
pub use postgres::PostgresServer;
pub use proxy::{LinkMode, Proxy};

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a server may take to answer PING after it was started, or to exit after SHUTDOWN.
const DEADLINE: Duration = Duration::from_secs(10);
/// How often readiness and exit are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How many free ports [`RedisServerBuilder::start`] tries before giving up.
const START_ATTEMPTS: usize = 10;

const NOT_INSTALLED: &str = "redis-server is not installed: the fourit tests start their own \
     Redis. Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)";

/// A `redis-server` process of its own, on a free loopback port, in a fresh temporary
/// directory.
///
/// By default it neither snapshots nor appends (`--save "" --appendonly no`), binds
/// `127.0.0.1` only and logs to `redis.log` in its directory. Dropping it kills the process
/// and removes the directory.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
    appendonly: bool,
    password: Option<String>,
    tls: Option<TlsFiles>,
    tls_port: u16,
    /// More environment variables for the process (e.g. a [`FakeClock`]'s).
    env: Vec<(String, String)>,
    child: Option<Child>,
}

/// The PEM files of a TLS listener: the server's certificate chain and key, and the CA that
/// client certificates would be checked against (clients need none: `--tls-auth-clients no`).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The server's certificate (chain), PEM.
    pub cert: PathBuf,
    /// The server's private key, PEM.
    pub key: PathBuf,
    /// A CA certificate, PEM.
    pub ca: PathBuf,
}

/// Options for a [`RedisServer`], from [`RedisServer::builder`].
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `.start()`"]
pub struct RedisServerBuilder {
    extra_args: Vec<String>,
    appendonly: bool,
    tls: Option<TlsFiles>,
    env: Vec<(String, String)>,
}

impl RedisServerBuilder {
    /// Adds one command-line argument for `redis-server`, after the defaults (so it overrides
    /// them), e.g. `.arg("--requirepass").arg("s3cret")`.
    ///
    /// A `--requirepass` given this way is remembered: [`RedisServer::client`],
    /// [`RedisServer::connection`] and the harness's own readiness and shutdown commands
    /// authenticate with it.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Starts it as a replica of the server on `port` (`--replicaof 127.0.0.1 <port>`).
    pub fn replica_of(self, port: u16) -> Self {
        self.arg("--replicaof")
            .arg("127.0.0.1")
            .arg(port.to_string())
    }

    /// Sets an environment variable for the server process (kept for restarts), e.g. a
    /// [`FakeClock::redis_env`] pair.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Turns the append-only file on (`--appendonly yes`, `appendfsync everysec`), so data
    /// survives [`RedisServer::stop`] + [`RedisServer::restart`]. Off by default.
    pub fn appendonly(mut self, on: bool) -> Self {
        self.appendonly = on;
        self
    }

    /// Adds a TLS listener on a second free port ([`RedisServer::tls_port`]) with these
    /// files, beside the plain one the harness (and assertions) use.
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// Starts the server and waits until it answers PING.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not installed, or it does not start within about ten seconds
    /// (the panic message includes its log). [`try_start`](Self::try_start) answers an error
    /// instead.
    pub fn start(self) -> RedisServer {
        self.try_start().unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`start`](Self::start), answering why it could not start instead of panicking.
    pub fn try_start(self) -> Result<RedisServer, String> {
        let password = requirepass(&self.extra_args);
        let mut server = RedisServer {
            port: 0,
            dir: fresh_dir(),
            extra_args: self.extra_args,
            appendonly: self.appendonly,
            password,
            tls: self.tls,
            tls_port: 0,
            env: self.env,
            child: None,
        };
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            if server.tls.is_some() {
                server.tls_port = free_port();
            }
            match server.launch() {
                Ok(()) => return Ok(server),
                // Someone took the port between our probe and redis-server's bind: try another.
                Err(LaunchError::PortTaken) => continue,
                Err(LaunchError::Failed(why)) => return Err(why),
            }
        }
        Err(format!(
            "redis-server could not find a free port in {START_ATTEMPTS} attempts"
        ))
    }
}

impl RedisServer {
    /// Starts a server with the default options. See [`RedisServerBuilder::start`].
    pub fn start() -> RedisServer {
        RedisServer::builder().start()
    }

    /// A builder, for extra `redis-server` arguments or persistence.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The process id of the running server, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A fresh async connection, or why there is none.
    pub async fn try_connection(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("connecting to the Redis at {}: {e}", self.url()))
    }

    /// Sends the process a signal by name (`STOP`, `CONT`, `KILL`), as `kill -<name>` does.
    ///
    /// # Panics
    ///
    /// If the server does not run, or `kill` fails.
    pub fn signal(&self, name: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("redis-server on port {} does not run", self.port));
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|err| panic!("running kill -{name} {pid}: {err}"));
        assert!(status.success(), "kill -{name} {pid} failed: {status}");
    }

    /// Waits until at least `replicas` replicas acknowledge a write to this server (`WAIT`),
    /// which is when they stream its writes: a replica that has just finished its first sync
    /// may show as online a second before it acknowledges anything.
    ///
    /// # Panics
    ///
    /// If that does not happen within about ten seconds.
    pub fn wait_for_replicas(&self, replicas: usize) {
        let deadline = Instant::now() + DEADLINE;
        let mut last = String::new();
        while Instant::now() < deadline {
            let acked = RespConnection::open(self.port, PROBE_TIMEOUT).and_then(|mut con| {
                if let Some(password) = &self.password {
                    con.command(&["AUTH", password])?;
                }
                // A write (and its removal) for the replicas to acknowledge.
                con.command(&["SET", "fourit-testkit:sync", "1"])?;
                con.command(&["DEL", "fourit-testkit:sync"])?;
                con.command(&["WAIT", &replicas.to_string(), "200"])
            });
            match acked {
                Ok(reply)
                    if reply
                        .strip_prefix(':')
                        .and_then(|n| n.parse::<usize>().ok())
                        >= Some(replicas) =>
                {
                    return;
                }
                Ok(reply) => last = reply,
                Err(err) => last = err.to_string(),
            }
            thread::sleep(POLL_INTERVAL * 5);
        }
        panic!(
            "redis-server on port {} did not get {replicas} replicas acknowledging writes \
             (last answer {last}): {}",
            self.port,
            self.info("replication").unwrap_or_default()
        );
    }

    /// The text of `INFO <section>`, over a plain connection.
    pub fn info(&self, section: &str) -> std::io::Result<String> {
        let mut con = RespConnection::open(self.port, PROBE_TIMEOUT)?;
        if let Some(password) = &self.password {
            con.command(&["AUTH", password])?;
        }
        con.command(&["INFO", section])
    }

    /// The TCP port it listens on (on 127.0.0.1); stable across [`RedisServer::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port, with [`RedisServerBuilder::tls`] (else 0); stable across restarts.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// Its URL without credentials: `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its URL with credentials: `redis://USER:PASSWORD@127.0.0.1:PORT` (an empty `user`
    /// gives `redis://:PASSWORD@...`, the default user). Both are percent-encoded.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!(
            "redis://{}:{}@127.0.0.1:{}",
            percent_encode(user),
            percent_encode(password),
            self.port
        )
    }

    /// Its temporary directory, holding `redis.log` and any persistence files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log so far (empty if there is none yet), for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// True while the process started by this harness has not exited.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// A client for assertions, authenticated with the `--requirepass` given to the builder,
    /// if any.
    pub fn client(&self) -> redis::Client {
        let url = match &self.password {
            Some(password) => self.url_with("", password),
            None => self.url(),
        };
        redis::Client::open(url).expect("a loopback redis:// URL is valid")
    }

    /// A fresh async connection for assertions (see [`RedisServer::client`]).
    ///
    /// # Panics
    ///
    /// If the server does not accept the connection.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connecting to the test Redis at {}: {e}", self.url()))
    }

    /// Stops the server gracefully and waits for the process to exit: `SHUTDOWN NOSAVE`
    /// without persistence, plain `SHUTDOWN` (which flushes the append-only file) with it.
    /// If the server does not take the command, or does not exit within about ten seconds,
    /// the process is killed. Does nothing if it is not running. The directory is kept, for
    /// [`RedisServer::restart`].
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let shutdown: &[&str] = if self.appendonly {
            &["SHUTDOWN"]
        } else {
            &["SHUTDOWN", "NOSAVE"]
        };
        let asked = self.send_shutdown(shutdown).is_ok();
        if !asked || wait_exit(&mut child, DEADLINE).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would, and waits for it to exit.
    /// Unflushed writes are lost. Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (stopping it first if it
    /// runs), and waits until it answers PING. With [`RedisServerBuilder::appendonly`] its
    /// data survives; without, it starts empty.
    ///
    /// # Panics
    ///
    /// If it does not start within about ten seconds, e.g. because another process took the
    /// port meanwhile.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.launch() {
                Ok(()) => return,
                // The port may be held for a moment (e.g. by a client's socket): retry.
                Err(LaunchError::PortTaken) if Instant::now() < deadline => {
                    thread::sleep(POLL_INTERVAL * 10);
                }
                Err(LaunchError::PortTaken) => panic!(
                    "restarting redis-server: port {} stayed taken by another process for {DEADLINE:?}",
                    self.port
                ),
                Err(LaunchError::Failed(why)) => panic!("restarting redis-server: {why}"),
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// Spawns `redis-server` on `self.port` and waits until it is ready.
    fn launch(&mut self) -> Result<(), LaunchError> {
        let log_path = self.log_path();
        let log_start = fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let output_path = self.dir.join("redis.out");
        let output = File::create(&output_path).expect("creating redis.out in the server's dir");
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no", "--save", ""])
            .args(["--appendonly", if self.appendonly { "yes" } else { "no" }])
            // Replicas sync at once (the default waits 5 s to batch them).
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log_path)
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(tls) = &self.tls {
            command
                .arg("--tls-port")
                .arg(self.tls_port.to_string())
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .args(["--tls-auth-clients", "no"]);
        }
        command
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("duplicating a file handle"))
            .stderr(output);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{NOT_INSTALLED}"),
            Err(e) => panic!("starting redis-server: {e}"),
        };

        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = read_from(&log_path, log_start) + &read_from(&output_path, 0);
                if log.contains("Address already in use") {
                    return Err(LaunchError::PortTaken);
                }
                return Err(LaunchError::Failed(self.failure(
                    &format!("redis-server exited during startup ({status})"),
                    &log,
                )));
            }
            if self.probe(child.id()) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = read_from(&log_path, log_start) + &read_from(&output_path, 0);
                return Err(LaunchError::Failed(self.failure(
                    &format!("redis-server did not answer PING within {DEADLINE:?}"),
                    &log,
                )));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn failure(&self, what: &str, log: &str) -> String {
        format!(
            "{what} on port {} in {}; its output:\n{log}",
            self.port,
            self.dir.display()
        )
    }

    /// True if the server on our port answers PING with PONG and is our process (not another
    /// test's server that took the port first).
    fn probe(&self, pid: u32) -> bool {
        let Ok(mut con) = RespConnection::open(self.port, PROBE_TIMEOUT) else {
            return false;
        };
        if let Some(password) = &self.password {
            match con.command(&["AUTH", password]) {
                Ok(reply) if reply == "+OK" => {}
                _ => return false,
            }
        }
        match con.command(&["PING"]) {
            Ok(reply) if reply == "+PONG" => {}
            // Authentication needed but unknown (e.g. ACL users from extra arguments): it
            // serves commands, and a process that is still alive owns the port.
            Ok(reply) if reply.starts_with("-NOAUTH") => return true,
            _ => return false, // e.g. -LOADING while it reads its append-only file
        }
        match con.command(&["INFO", "server"]) {
            Ok(info) => info
                .lines()
                .any(|line| line.trim() == format!("process_id:{pid}")),
            Err(_) => false,
        }
    }

    fn send_shutdown(&self, command: &[&str]) -> std::io::Result<()> {
        let mut con = RespConnection::open(self.port, Duration::from_secs(1))?;
        if let Some(password) = &self.password {
            con.command(&["AUTH", password])?;
        }
        con.send(command)?;
        // A successful SHUTDOWN closes the connection without a reply.
        match con.read_line() {
            Ok(line) if line.is_empty() => Ok(()),
            Ok(line) => Err(std::io::Error::other(format!("SHUTDOWN answered {line}"))),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

enum LaunchError {
    /// The port was taken before redis-server could bind it.
    PortTaken,
    /// Anything else, with a message that includes the server's output.
    Failed(String),
}

/// A minimal blocking RESP connection, for the harness's own readiness and shutdown commands
/// (independent of the `redis` crate under test).
struct RespConnection {
    reader: BufReader<TcpStream>,
}

impl RespConnection {
    fn open(port: u16, timeout: Duration) -> std::io::Result<RespConnection> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(RespConnection {
            reader: BufReader::new(stream),
        })
    }

    fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let mut out = format!("*{}\r\n", args.len());
        for arg in args {
            let _ = write!(out, "${}\r\n{arg}\r\n", arg.len());
        }
        self.reader.get_mut().write_all(out.as_bytes())
    }

    /// One reply line without its CRLF; empty at end of stream.
    fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Sends a command and reads its reply: a simple string or error line as is (`+OK`,
    /// `-ERR ...`), a bulk string as its contents.
    fn command(&mut self, args: &[&str]) -> std::io::Result<String> {
        self.send(args)?;
        let line = self.read_line()?;
        let Some(len) = line.strip_prefix('$') else {
            return Ok(line);
        };
        let len: i64 = len
            .parse()
            .map_err(|_| std::io::Error::other(format!("bad bulk length {line:?}")))?;
        if len < 0 {
            return Ok(String::new());
        }
        let mut body = vec![0; len as usize + 2];
        self.reader.read_exact(&mut body)?;
        body.truncate(len as usize);
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// Whether a `CLUSTER NODES` line's slot ranges (`0-5460`, `42`) hold `slot`.
fn owns(line: &str, slot: u16) -> bool {
    line.split_whitespace().skip(8).any(|range| {
        let (low, high) = range.split_once('-').unwrap_or((range, range));
        matches!(
            (low.parse::<u16>(), high.parse::<u16>()),
            (Ok(low), Ok(high)) if (low..=high).contains(&slot)
        )
    })
}

/// A port that was free a moment ago (the OS picks it; we release it for redis-server).
fn free_port() -> u16 {
    try_free_port().unwrap_or_else(|e| panic!("{e}"))
}

/// [`free_port`], answering why not instead of panicking.
pub(crate) fn try_free_port() -> Result<u16, String> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| format!("binding 127.0.0.1:0: {e}"))
}

/// A new, empty directory under the system's temp dir, unique to this server.
fn fresh_dir() -> PathBuf {
    try_fresh_dir("fourit-redis").unwrap_or_else(|e| panic!("{e}"))
}

/// A new, empty directory under the system's temp dir, its name starting `prefix`.
pub(crate) fn try_fresh_dir(prefix: &str) -> Result<PathBuf, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("creating {}: {e}", dir.display())),
        }
    }
}

/// Waits up to `limit` for the child to exit.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            _ => return None,
        }
    }
}

/// The file's text from byte `offset` on (empty if it cannot be read).
fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = (offset as usize).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The value after the last `--requirepass` argument, if any.
fn requirepass(args: &[String]) -> Option<String> {
    args.windows(2)
        .rfind(|pair| pair[0] == "--requirepass")
        .map(|pair| pair[1].clone())
        .filter(|password| !password.is_empty())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A Redis Cluster of its own: `primaries` primaries with `replicas` replicas each, every node
/// a [`RedisServer`] with `--cluster-enabled yes` on a free loopback port, joined by
/// `redis-cli --cluster create` and ready (`cluster_state:ok` on every node) when
/// [`start`](RedisCluster::start) returns. Dropping it kills every node.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts and joins the cluster, waiting until every node says it is ready.
    ///
    /// # Panics
    ///
    /// If `redis-server` or `redis-cli` is missing, or the cluster does not form within
    /// about ten seconds (the message says what was seen).
    pub fn start(primaries: usize, replicas: usize) -> RedisCluster {
        RedisCluster::try_start(primaries, replicas).unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`start`](Self::start), answering why the cluster did not form instead of panicking.
    pub fn try_start(primaries: usize, replicas: usize) -> Result<RedisCluster, String> {
        RedisCluster::try_start_with(primaries, replicas, |node| node)
    }

    /// [`try_start`](Self::try_start), each node's options passed through `configure` after
    /// the cluster's own (so its arguments override them, e.g. a longer
    /// `--cluster-node-timeout`, and it may add environment, e.g. a [`FakeClock`]'s).
    pub fn try_start_with(
        primaries: usize,
        replicas: usize,
        configure: impl Fn(RedisServerBuilder) -> RedisServerBuilder,
    ) -> Result<RedisCluster, String> {
        let count = primaries * (1 + replicas);
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(
                configure(
                    RedisServer::builder()
                        .arg("--cluster-enabled")
                        .arg("yes")
                        .arg("--cluster-config-file")
                        .arg("nodes.conf")
                        .arg("--cluster-node-timeout")
                        .arg("1000")
                        // Replicas sync at once (the default waits 5 s to batch them): a replica
                        // that has not synced cannot be promoted.
                        .arg("--repl-diskless-sync-delay")
                        .arg("0"),
                )
                .try_start()?,
            );
        }
        let mut cluster = RedisCluster { nodes };
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("running redis-cli --cluster create: {err}"))?;
        if !output.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        cluster.wait_ready(DEADLINE)?;
        if replicas > 0 {
            cluster.wait_acknowledged(replicas, DEADLINE)?;
        }
        Ok(cluster)
    }

    /// Waits until every primary's `replicas` replicas acknowledge a write to it (`WAIT`): a
    /// replica that has just synced shows as up about a second before it acknowledges.
    pub fn wait_acknowledged(&mut self, replicas: usize, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let ports: Vec<u16> = self
            .nodes
            .iter_mut()
            .filter_map(|node| node.is_running().then_some(node.port()))
            .collect();
        for port in ports {
            loop {
                match primary_acknowledged(port, replicas) {
                    Ok(true) => break,
                    Ok(false) if Instant::now() < deadline => {}
                    Ok(false) => {
                        return Err(format!(
                            "the replicas of the node on {port} did not acknowledge within {within:?}"
                        ));
                    }
                    Err(err) if Instant::now() < deadline => {
                        let _ = err;
                    }
                    Err(err) => return Err(format!("node on {port}: {err}")),
                }
                thread::sleep(POLL_INTERVAL * 5);
            }
        }
        Ok(())
    }

    /// Waits until every running node reports `cluster_state:ok` and knows every slot (after
    /// a node was killed: until a replica has taken over its slots).
    pub fn wait_ready(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let states: Vec<String> = self
                .nodes
                .iter_mut()
                .filter_map(|node| node.is_running().then_some(node.port()))
                .map(|port| node_state(port).unwrap_or_else(|err| err.to_string()))
                .collect();
            // ... and every replica has its primary's data, so a failover can promote it.
            let states: Vec<String> = states
                .into_iter()
                .zip(
                    self.nodes
                        .iter_mut()
                        .filter_map(|node| node.is_running().then_some(node.port())),
                )
                .map(
                    |(state, port)| match (state.as_str(), replica_synced(port)) {
                        ("ok", Ok(true)) => "ok".to_string(),
                        ("ok", Ok(false)) => "replica not synced yet".to_string(),
                        ("ok", Err(err)) => err.to_string(),
                        _ => state,
                    },
                )
                .collect();
            if states.iter().all(|state| state == "ok") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the cluster was not ready within {within:?}: node states {states:?}"
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`, every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Every node, primaries and replicas (which is which changes with failovers).
    pub fn nodes(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// Puts the primary owning hash `slot` behind a [`Proxy`] of its own: it announces the
    /// proxy's port to clients (`cluster-announce-port`; the cluster bus stays direct, so the
    /// cluster itself sees nothing), and once every node's view says so, the proxy is
    /// answered with `redis+cluster://` seeds that are the *other* nodes. Dropping the proxy's
    /// traffic then partitions that primary from every client.
    ///
    /// # Panics
    ///
    /// If no primary owns the slot or the announcement does not spread within ten seconds.
    pub fn put_behind_proxy(&self, slot: u16) -> (Proxy, String) {
        let command = |port: u16, args: &[&str]| {
            RespConnection::open(port, PROBE_TIMEOUT)
                .and_then(|mut con| con.command(args))
                .unwrap_or_else(|err| panic!("{args:?} on {port}: {err}"))
        };
        let owner = self
            .nodes
            .iter()
            .map(RedisServer::port)
            .find(|port| {
                let nodes = command(*port, &["CLUSTER", "NODES"]);
                nodes.lines().any(|line| {
                    line.contains("myself") && line.contains("master") && owns(line, slot)
                })
            })
            .unwrap_or_else(|| panic!("no primary owns slot {slot}"));
        let proxy = Proxy::to_port(owner);
        let bus = (u32::from(owner) + 10_000).to_string();
        command(owner, &["CONFIG", "SET", "cluster-announce-bus-port", &bus]);
        let announced = proxy.port().to_string();
        command(
            owner,
            &["CONFIG", "SET", "cluster-announce-port", &announced],
        );
        let want = format!("127.0.0.1:{}@", proxy.port());
        let deadline = Instant::now() + DEADLINE;
        while !self
            .nodes
            .iter()
            .all(|node| command(node.port(), &["CLUSTER", "NODES"]).contains(&want))
        {
            assert!(
                Instant::now() < deadline,
                "the cluster did not learn that the node on {owner} is at {want}"
            );
            thread::sleep(POLL_INTERVAL);
        }
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .filter(|node| node.port() != owner)
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        (proxy, format!("redis+cluster://{}", seeds.join(",")))
    }

    /// A cluster client for assertions.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::new(
            self.nodes
                .iter()
                .map(|node| format!("redis://127.0.0.1:{}", node.port()))
                .collect::<Vec<_>>(),
        )
        .expect("loopback redis:// URLs are valid")
    }

    /// A cluster connection for assertions.
    ///
    /// # Panics
    ///
    /// If the cluster does not accept it.
    pub async fn connection(&self) -> redis::cluster_async::ClusterConnection {
        self.client()
            .get_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connecting to the test cluster {}: {e}", self.url()))
    }
}

/// For a primary on `port`: whether `replicas` replicas acknowledge a write of a key in one of
/// its own slots. A replica answers `true` (nothing to acknowledge).
fn primary_acknowledged(port: u16, replicas: usize) -> std::io::Result<bool> {
    let mut con = RespConnection::open(port, PROBE_TIMEOUT)?;
    let info = con.command(&["INFO", "replication"])?;
    if !info.lines().any(|line| line.trim() == "role:master") {
        return Ok(true);
    }
    // Its slot ranges, from its own line of CLUSTER NODES ("... myself,master ... 0-5460").
    let nodes = con.command(&["CLUSTER", "NODES"])?;
    let ranges: Vec<(u16, u16)> = nodes
        .lines()
        .find(|line| line.contains("myself"))
        .map(|line| {
            line.split_whitespace()
                .skip(8)
                .filter_map(|range| {
                    let (low, high) = range.split_once('-').unwrap_or((range, range));
                    Some((low.parse().ok()?, high.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    if ranges.is_empty() {
        return Ok(true);
    }
    // A key in one of them.
    let mut key = None;
    for n in 0..10_000 {
        let candidate = format!("fourit-testkit:sync:{n}");
        let slot: u16 = con
            .command(&["CLUSTER", "KEYSLOT", &candidate])?
            .trim_start_matches(':')
            .parse()
            .unwrap_or(u16::MAX);
        if ranges
            .iter()
            .any(|(low, high)| (*low..=*high).contains(&slot))
        {
            key = Some(candidate);
            break;
        }
    }
    let Some(key) = key else {
        return Ok(true);
    };
    con.command(&["SET", &key, "1"])?;
    con.command(&["DEL", &key])?;
    let acked = con.command(&["WAIT", &replicas.to_string(), "200"])?;
    Ok(acked.trim_start_matches(':').parse::<usize>().unwrap_or(0) >= replicas)
}

/// Whether the node on `port` is a primary, or a replica whose link to its primary is up.
fn replica_synced(port: u16) -> std::io::Result<bool> {
    let mut con = RespConnection::open(port, PROBE_TIMEOUT)?;
    let info = con.command(&["INFO", "replication"])?;
    let role = info.lines().any(|line| line.trim() == "role:slave");
    Ok(!role
        || info
            .lines()
            .any(|line| line.trim() == "master_link_status:up"))
}

/// `ok` when the node on `port` serves every slot, else what it says.
fn node_state(port: u16) -> std::io::Result<String> {
    let mut con = RespConnection::open(port, PROBE_TIMEOUT)?;
    let info = con.command(&["CLUSTER", "INFO"])?;
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_string())
            .unwrap_or_default()
    };
    let state = field("cluster_state:");
    let assigned = field("cluster_slots_ok:");
    Ok(if state == "ok" && assigned == "16384" {
        "ok".to_string()
    } else {
        format!("state {state}, slots ok {assigned}")
    })
}

/// A Redis Sentinel deployment of its own: one primary, `replicas` replicas and `sentinels`
/// sentinels (quorum: a majority), every process on a free loopback port, monitoring the
/// primary under the name [`SentinelGroup::MASTER`] with `down-after-milliseconds 1000`. Ready
/// when [`start`](SentinelGroup::start) returns: the replicas are in sync and every sentinel
/// knows every replica and every other sentinel, so a failover can be decided at once.
#[derive(Debug)]
pub struct SentinelGroup {
    nodes: Vec<RedisServer>,
    sentinels: Vec<SentinelProcess>,
}

/// One `redis-server sentinel.conf --sentinel` process.
#[derive(Debug)]
struct SentinelProcess {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl SentinelProcess {
    fn start(primary: u16, quorum: usize) -> Result<SentinelProcess, String> {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let dir = fresh_dir();
            let conf = dir.join("sentinel.conf");
            let log = dir.join("sentinel.log");
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {log}\n\
                 sentinel monitor {name} 127.0.0.1 {primary} {quorum}\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 3000\n\
                 sentinel parallel-syncs {name} 4\n",
                dir = dir.display(),
                log = log.display(),
                name = SentinelGroup::MASTER,
            );
            fs::write(&conf, text).map_err(|err| format!("writing {}: {err}", conf.display()))?;
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|err| format!("starting redis-server --sentinel: {err}"))?;
            let mut sentinel = SentinelProcess { port, dir, child };
            let deadline = Instant::now() + DEADLINE;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = sentinel.child.try_wait() {
                    last = format!(
                        "the sentinel on port {port} exited ({status}): {}",
                        fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                if RespConnection::open(port, PROBE_TIMEOUT)
                    .and_then(|mut con| con.command(&["PING"]))
                    .is_ok_and(|pong| pong == "+PONG")
                {
                    return Ok(sentinel);
                }
                thread::sleep(POLL_INTERVAL);
            }
            if last.is_empty() {
                last = format!("the sentinel on port {port} did not answer within {DEADLINE:?}");
            }
            let _ = sentinel.child.kill();
        }
        Err(last)
    }

    /// This sentinel's `INFO sentinel` line about the master.
    fn master_line(&self) -> std::io::Result<String> {
        let mut con = RespConnection::open(self.port, PROBE_TIMEOUT)?;
        let info = con.command(&["INFO", "sentinel"])?;
        Ok(info
            .lines()
            .find(|line| line.starts_with("master0:"))
            .unwrap_or_default()
            .to_string())
    }
}

impl SentinelGroup {
    /// The name the sentinels know the primary by.
    pub const MASTER: &'static str = "main";

    /// Starts the primary, its replicas and the sentinels, and waits until all are ready.
    ///
    /// # Panics
    ///
    /// If `redis-server` is missing or the deployment is not ready within about 20 seconds.
    pub fn start(replicas: usize, sentinels: usize) -> SentinelGroup {
        SentinelGroup::try_start(replicas, sentinels).unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`start`](Self::start), answering why instead of panicking.
    pub fn try_start(replicas: usize, sentinels: usize) -> Result<SentinelGroup, String> {
        let primary = RedisServer::builder().try_start()?;
        let port = primary.port();
        let mut nodes = vec![primary];
        for _ in 0..replicas {
            nodes.push(RedisServer::builder().replica_of(port).try_start()?);
        }
        nodes[0].wait_for_replicas(replicas);
        let quorum = sentinels / 2 + 1;
        let sentinels = (0..sentinels)
            .map(|_| SentinelProcess::start(port, quorum))
            .collect::<Result<Vec<_>, _>>()?;
        let group = SentinelGroup { nodes, sentinels };
        group.wait_ready(Duration::from_secs(20))?;
        Ok(group)
    }

    /// A primary without replicas (so no failover can happen) whose sentinels, and every
    /// client they name it to, reach it through a [`Proxy`] of its own: dropping the proxy's
    /// traffic partitions the data node from everyone while the sentinels still answer.
    ///
    /// # Panics
    ///
    /// If `redis-server` is missing or the deployment is not ready within about 20 seconds.
    pub fn start_behind_proxy(sentinels: usize) -> (SentinelGroup, Proxy) {
        let started = (|| {
            let primary = RedisServer::builder().try_start()?;
            let proxy = Proxy::to_port(primary.port());
            let quorum = sentinels / 2 + 1;
            let sentinels = (0..sentinels)
                .map(|_| SentinelProcess::start(proxy.port(), quorum))
                .collect::<Result<Vec<_>, _>>()?;
            let group = SentinelGroup {
                nodes: vec![primary],
                sentinels,
            };
            group.wait_ready(Duration::from_secs(20))?;
            Ok::<_, String>((group, proxy))
        })();
        started.unwrap_or_else(|why| panic!("{why}"))
    }

    /// Waits until every sentinel sees the master as `ok` with every running replica and
    /// every other sentinel (after a failover: the new master, with the old one as a replica
    /// once it runs again).
    pub fn wait_ready(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let replicas = self.nodes.len() - 1;
        let want = format!(
            "status=ok,address=127.0.0.1:{},slaves={replicas},sentinels={}",
            self.primary_port()?,
            self.sentinels.len()
        );
        loop {
            let lines: Vec<String> = self
                .sentinels
                .iter()
                .map(|sentinel| sentinel.master_line().unwrap_or_else(|err| err.to_string()))
                .collect();
            if lines.iter().all(|line| line.ends_with(&want)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the sentinels were not ready within {within:?} (want {want}): {lines:?}"
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The port of the primary, as the first sentinel that answers reports it.
    pub fn primary_port(&self) -> Result<u16, String> {
        for sentinel in &self.sentinels {
            if let Ok(line) = sentinel.master_line()
                && let Some(address) = line
                    .split(',')
                    .find_map(|field| field.strip_prefix("address="))
                && let Some((_, port)) = address.rsplit_once(':')
                && let Ok(port) = port.parse()
            {
                return Ok(port);
            }
        }
        Err("no sentinel reports a primary".to_string())
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,.../main`, every sentinel as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect();
        format!(
            "redis+sentinel://{}/{}",
            seeds.join(","),
            SentinelGroup::MASTER
        )
    }

    /// The data nodes, primary first at the start (which is which changes with failovers).
    pub fn nodes(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// The data node on `port`.
    ///
    /// # Panics
    ///
    /// If none listens there.
    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|node| node.port() == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
    }

    /// Asks a sentinel for a graceful failover (`SENTINEL FAILOVER main`).
    pub fn failover(&self) -> Result<(), String> {
        let mut con = RespConnection::open(self.sentinels[0].port, PROBE_TIMEOUT)
            .map_err(|err| err.to_string())?;
        let reply = con
            .command(&["SENTINEL", "FAILOVER", SentinelGroup::MASTER])
            .map_err(|err| err.to_string())?;
        if reply == "+OK" {
            Ok(())
        } else {
            Err(format!("SENTINEL FAILOVER answered {reply}"))
        }
    }
}
