//! Test support for fourit: a real `redis-server` per test (from `fourit-testkit`, shared
//! with the benchmarks), the fleet-of-processes harness ([`faults`]) and tracing for tests.

#![warn(missing_docs)]

#[cfg(feature = "tls")]
pub mod certs;
pub mod cli;
pub mod dashboard;
pub mod faults;
pub mod hostile;
pub mod http;

use std::sync::Once;

pub use fourit_testkit::{
    FakeClock, LinkMode, PgBouncer, PostgresServer, Proxy, RedisCluster, RedisServer,
    RedisServerBuilder, SentinelGroup, TlsFiles,
};

/// The PostgreSQL the tests use: `FOURIT_TEST_POSTGRES_URL` if set, else the `test`
/// database of this test binary's own throwaway server ([`PostgresServer::shared`], started
/// on first use on a free loopback port, gone when the binary ends). Each test works under
/// a namespace of its own.
///
/// # Panics
///
/// If there is no such variable and the server cannot start (the message says why, e.g. that
/// PostgreSQL's server binaries are not installed).
pub fn postgres_url() -> String {
    std::env::var("FOURIT_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        PostgresServer::shared()
            .map(|server| server.database_url(PostgresServer::SHARED_DATABASE))
            .unwrap_or_else(|why| panic!("{why}"))
    })
}

/// [`postgres_url`] with the sessions named `application` (`application_name`), so a test
/// can find them in `pg_stat_activity` (the server is shared).
pub fn postgres_url_as(application: &str) -> String {
    let base = postgres_url();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}application_name={application}")
}

/// The words of the README's "Minimal ACL" command (`ACL SETUSER fourit on ...`), which the
/// tests use verbatim so the README cannot drift from what fourit needs.
pub fn readme_acl() -> Vec<String> {
    include_str!("../../README.md")
        .lines()
        .find(|line| line.trim_start().starts_with("ACL SETUSER fourit "))
        .unwrap_or_else(|| panic!("README.md has no `ACL SETUSER fourit ...` line"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Installs a tracing subscriber that writes through the test harness (so output is shown
/// only for failing tests), once per test binary.
///
/// The filter comes from `RUST_LOG` (e.g. `RUST_LOG=fourit=debug`); the default is `warn`.
/// Calling it again, from any test, does nothing.
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        // Another subscriber may already be installed (by the test itself): keep it.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A directory of the test's own, removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A new directory in the system's temporary directory, its name starting `prefix`.
    pub fn new(prefix: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("creating {}: {err}", path.display()));
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
