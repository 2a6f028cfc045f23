//! A PostgreSQL server of a test's own, for the tests that kill or restart it: `initdb` into a
//! fresh directory, `pg_ctl start` on a free loopback port with trust authentication, and the
//! postmaster SIGKILLed or started again on demand. Stopped (immediate mode) when dropped.
//! As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
//!
//! [`PostgresServer::shared`] is the one server of a whole test binary, for the many tests
//! that only need a database to work in (each under a namespace of its own).

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;

/// A PostgreSQL server started by the test.
#[derive(Debug)]
pub struct PostgresServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// More `-c name=value` options for the server.
    options: String,
    /// More environment variables for the server (e.g. a [`crate::FakeClock`]'s).
    env: Vec<(String, String)>,
}

/// The directory of `initdb`, `pg_ctl` and `postgres`: Debian's `/usr/lib/postgresql/N/bin`
/// (the newest), else the `PATH`'s.
fn bin_dir() -> Result<PathBuf, String> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|entry| entry.path().join("bin"))
                .filter(|bin| bin.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    if let Some(bin) = versions.pop() {
        return Ok(bin);
    }
    let which = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .map_err(|e| e.to_string())?;
    let path = String::from_utf8_lossy(&which.stdout).trim().to_string();
    Path::new(&path)
        .parent()
        .map(Path::to_path_buf)
        .filter(|_| !path.is_empty())
        .ok_or_else(|| "no initdb: install PostgreSQL's server (Debian: postgresql)".to_string())
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Gives `path` (and what is in it) to the server's user.
pub(crate) fn chown(path: &Path) -> Result<(), String> {
    let chown = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    if !chown.status.success() {
        return Err(String::from_utf8_lossy(&chown.stderr).into_owned());
    }
    Ok(())
}

/// `program`, to be run as the server's user.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs `program args` as the server's user.
fn run_as_server_user(program: &Path, args: &[&str]) -> std::io::Result<Output> {
    as_server_user(program).args(args).output()
}

/// The server of [`PostgresServer::shared`], and what stops it when the process ends.
struct Shared {
    server: PostgresServer,
    /// A process waiting for its stdin to close, which happens when this process ends,
    /// however it ends (statics are never dropped, and a killed test binary drops nothing):
    /// it then stops the server and removes its directory.
    _guardian: Child,
    /// The write end of the guardian's stdin, held open until this process ends.
    _pipe: ChildStdin,
}

/// Starts the shared server: its guardian first, so nothing outlives a failed start.
fn start_shared() -> Result<Shared, String> {
    let server = PostgresServer::init()?;
    let mut stop = as_server_user(&server.bin.join("pg_ctl"));
    stop.args(["-D", &server.data(), "-m", "immediate", "stop"]);
    let mut guardian = Command::new("sh");
    guardian
        .arg("-c")
        // Deaf to the terminal's and the test runner's signals (in a process group of its
        // own, too): it ends only when its stdin does.
        .arg(
            "trap '' INT HUP TERM; cat >/dev/null; dir=$1; shift; \
             \"$@\" >/dev/null 2>&1; rm -rf -- \"$dir\"",
        )
        .arg("fourit-pg-guardian")
        .arg(&server.dir)
        .arg(stop.get_program())
        .args(stop.get_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut guardian, 0);
    let mut guardian = guardian
        .spawn()
        .map_err(|e| format!("starting the server's guardian (sh): {e}"))?;
    let pipe = guardian
        .stdin
        .take()
        .ok_or("the guardian's stdin is not a pipe")?;
    server.start_again()?;
    let created = Command::new(server.bin.join("createdb"))
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-U", "postgres", PostgresServer::SHARED_DATABASE])
        .output()
        .map_err(|e| format!("createdb: {e}"))?;
    if !created.status.success() {
        return Err(format!(
            "createdb: {}",
            String::from_utf8_lossy(&created.stderr)
        ));
    }
    Ok(Shared {
        server,
        _guardian: guardian,
        _pipe: pipe,
    })
}

impl PostgresServer {
    /// The database [`shared`](Self::shared) creates for the tests.
    pub const SHARED_DATABASE: &'static str = "test";

    /// The one server of this process, started on the first call (the callers on other
    /// threads wait for it), with a [`SHARED_DATABASE`](Self::SHARED_DATABASE) database.
    /// It is stopped, and its directory removed, when the process ends, even by a kill.
    /// Every call answers the same server, or the same reason it could not start.
    ///
    /// ```no_run
    /// let server = fourit_testkit::PostgresServer::shared().unwrap();
    /// let url = server.database_url(fourit_testkit::PostgresServer::SHARED_DATABASE);
    /// assert!(url.ends_with("/test"));
    /// ```
    pub fn shared() -> Result<&'static PostgresServer, String> {
        static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
        SHARED
            .get_or_init(start_shared)
            .as_ref()
            .map(|shared| &shared.server)
            .map_err(|why| format!("starting the tests' PostgreSQL: {why}"))
    }

    /// initdb and start a server on a free loopback port; panics with the reason if it
    /// cannot.
    pub fn start() -> PostgresServer {
        PostgresServer::try_start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"))
    }

    /// [`start`](Self::start), answering why not instead of panicking.
    pub fn try_start() -> Result<PostgresServer, String> {
        let server = PostgresServer::init()?;
        server.start_again()?;
        Ok(server)
    }

    /// [`try_start`](Self::try_start), the server run with these environment variables
    /// added (e.g. [`crate::FakeClock::libfaketime_env`]), also when started again.
    pub fn try_start_with_env(env: Vec<(String, String)>) -> Result<PostgresServer, String> {
        let mut server = PostgresServer::init()?;
        server.env = env;
        server.start_again()?;
        Ok(server)
    }

    /// A server that offers TLS (and still takes plain connections) with the certificate
    /// chain `cert_pem` and its key `key_pem`.
    pub fn try_start_tls(cert_pem: &str, key_pem: &str) -> Result<PostgresServer, String> {
        let mut server = PostgresServer::init()?;
        let cert = server.dir.join("server.crt");
        let key = server.dir.join("server.key");
        std::fs::write(&cert, cert_pem).map_err(|e| format!("{}: {e}", cert.display()))?;
        std::fs::write(&key, key_pem).map_err(|e| format!("{}: {e}", key.display()))?;
        // The server refuses a key others may read.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("{}: {e}", key.display()))?;
        }
        if is_root() {
            chown(&cert)?;
            chown(&key)?;
        }
        server.options = format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        );
        server.start_again()?;
        Ok(server)
    }

    /// A fresh data directory, initdb'd, and a free port.
    fn init() -> Result<PostgresServer, String> {
        let bin = bin_dir()?;
        let dir = crate::try_fresh_dir("fourit-pg")?;
        if is_root() {
            chown(&dir)?;
        }
        let data = dir.join("data");
        let data_text = data.display().to_string();
        let init = run_as_server_user(
            &bin.join("initdb"),
            &[
                "-D",
                &data_text,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )
        .map_err(|e| format!("initdb: {e}"))?;
        if !init.status.success() {
            return Err(format!("initdb: {}", String::from_utf8_lossy(&init.stderr)));
        }
        let port = crate::try_free_port()?;
        Ok(PostgresServer {
            bin,
            dir,
            port,
            options: String::new(),
            env: Vec::new(),
        })
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Starts the server (again, after [`kill`](Self::kill)) and waits until it accepts
    /// connections.
    pub fn start_again(&self) -> Result<(), String> {
        // After a kill, the old backends notice the postmaster's death and exit within
        // moments; until then a start is refused (shared memory in use): try a few times.
        let mut last = String::new();
        for _ in 0..20 {
            match self.start_once() {
                Ok(()) => return Ok(()),
                Err(err) => last = err,
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        Err(last)
    }

    fn start_once(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{}",
            self.port,
            self.dir.display(),
            self.options
        );
        let log = self.dir.join("server.log").display().to_string();
        let started = as_server_user(&self.bin.join("pg_ctl"))
            .args([
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if !started.status.success() {
            return Err(format!(
                "pg_ctl start: {}{}",
                String::from_utf8_lossy(&started.stdout),
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// SIGKILLs the postmaster, as a crash (its backends end with it).
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_string));
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-9", &pid]).output();
            // The postmaster is gone when its port refuses connections.
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of its `postgres` database, as the `postgres` user.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The URL of its database `database`, as the `postgres` user.
    pub fn database_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = run_as_server_user(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-m", "immediate", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
