//! A PgBouncer of a test's own (Debian's `pgbouncer`), in front of a PostgreSQL server, in
//! transaction pooling mode with a small pool: consecutive statements of one client run on
//! whichever server connection is free, so anything that leans on a session (named prepared
//! statements, advisory locks, `SET`) breaks behind it. Killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running PgBouncer.
#[derive(Debug)]
pub struct PgBouncer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl PgBouncer {
    /// Starts PgBouncer on a free loopback port, pooling (`pool_mode = transaction`,
    /// `pool_size` server connections) the database `database` of the server at
    /// 127.0.0.1:`upstream_port` for the user `postgres` (trust). PgBouncer refuses to run as
    /// root: as root, it runs as the `postgres` user.
    pub fn try_start(
        upstream_port: u16,
        database: &str,
        pool_size: u32,
    ) -> Result<PgBouncer, String> {
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .ok_or("no pgbouncer: install it (Debian: pgbouncer)")?;
        let dir = crate::try_fresh_dir("fourit-pgbouncer")?;
        let port = crate::try_free_port()?;
        let users = dir.join("users.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n").map_err(|e| e.to_string())?;
        let config = dir.join("pgbouncer.ini");
        std::fs::write(
            &config,
            format!(
                "[databases]\n\
                 {database} = host=127.0.0.1 port={upstream_port} dbname={database}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 pool_mode = transaction\n\
                 default_pool_size = {pool_size}\n\
                 max_client_conn = 200\n\
                 ignore_startup_parameters = extra_float_digits\n",
                users = users.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut command = Command::new(binary);
        if crate::postgres::is_root() {
            // The process itself becomes `postgres` (no wrapper: a kill reaches pgbouncer).
            use std::os::unix::process::CommandExt;
            let id = |flag: &str| -> Result<u32, String> {
                let out = Command::new("id")
                    .args([flag, "postgres"])
                    .output()
                    .map_err(|e| e.to_string())?;
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .map_err(|_| "no `postgres` user to run pgbouncer as".to_string())
            };
            let (uid, gid) = (id("-u")?, id("-g")?);
            crate::postgres::chown(&dir)?;
            command.uid(uid).gid(gid);
        }
        let log = std::fs::File::create(dir.join("pgbouncer.log")).map_err(|e| e.to_string())?;
        let child = command
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{binary}: {e}"))?;
        let mut bouncer = PgBouncer { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = bouncer.child.try_wait() {
                return Err(format!("pgbouncer exited ({status}): {}", bouncer.log()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "pgbouncer did not listen within 10 s: {}",
                    bouncer.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(bouncer)
    }

    /// What PgBouncer logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// The URL of the pooled database, as `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
