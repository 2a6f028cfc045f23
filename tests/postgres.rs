//! The Postgres coordinator with real worker processes and a real PostgreSQL (the test
//! binary's shared server, see `fourit_tests::postgres_url`): a steady fleet runs each tick once and the
//! `fourit` command reads it; a worker SIGKILLed costs no double run; every fourit connection
//! terminated by the server (`pg_terminate_backend`) while jobs run costs no double run and
//! the fleet goes on; the server killed and restarted costs none; behind a PgBouncer in
//! transaction mode the fleet still runs each tick once; TLS (`sslmode`) against a server of
//! the test's own; a database of schema version 7 migrated with a live lease. Runs are counted from the workers' own records (on a real
//! `redis-server`, which is not the coordinator here).

use std::time::Duration;

use fourit_tests::cli::Cli;
use fourit_tests::faults::{Fleet, Records, assert_no_double_runs, distinct_ticks, now_ms};
use fourit_tests::{PgBouncer, PostgresServer, RedisServer, postgres_url};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const FOURIT: &str = env!("CARGO_BIN_EXE_fourit-for-tests");

/// A namespace of this test run's own (the database is shared).
fn namespace(name: &str) -> String {
    format!("pg-{name}-{}-{}", std::process::id(), now_ms())
}

/// Three workers (`nodes`) with two jobs every second on `url` until `ticks` ticks of each
/// ran: every tick ran once, none missed, every member ran some, and `fourit members` and
/// `status` read the fleet.
async fn steady_fleet(url: &str, ns: &str, nodes: [&str; 3], ticks: usize) {
    let records = RedisServer::start();
    let mut fleet = Fleet::new(WORKER);
    fleet.start_recording(&nodes, url, ns, 2, &records.url(), "warn");
    let started = now_ms();
    fleet
        .wait_until(
            Duration::from_secs(40),
            &format!("{ticks} ticks of each job"),
            |events| {
                ["job-0", "job-1"]
                    .iter()
                    .all(|job| distinct_ticks(events, job, started, None) >= ticks)
            },
        )
        .await;
    fleet.assert_all_running();
    let cli = Cli::new(FOURIT, url, ns);
    let status = cli.json(&["status", "--json"]);
    assert_eq!(status.as_array().map(Vec::len), Some(2), "{status}");
    assert_eq!(status[0]["last_outcome"], "succeeded", "{status}");
    let members = cli.json(&["members", "--json"]);
    assert_eq!(members.as_array().map(Vec::len), Some(3), "{members}");
    fleet.stop_all(Duration::from_secs(20)).await;
    let recorded = Records::read(&mut records.connection().await, ns).await;
    let missed = assert_no_double_runs(&recorded, &["job-0", "job-1"], started + 2_000);
    assert!(missed.iter().all(Vec::is_empty), "{missed:?}");
    let ran: std::collections::BTreeSet<String> =
        recorded.runs.iter().map(|run| run.node.clone()).collect();
    assert_eq!(ran.len(), 3, "every member ran ticks: {ran:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_fleet_on_postgres_runs_each_tick_once_and_the_command_reads_it() {
    steady_fleet(
        &postgres_url(),
        &namespace("steady"),
        ["p-a", "p-b", "p-c"],
        8,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_and_connections_terminated_cost_no_double_run() {
    let records = RedisServer::start();
    let ns = namespace("faults");
    // This fleet's sessions carry a name of their own: only they are ended below (other
    // tests share the server).
    let base = postgres_url();
    let url = fourit_tests::postgres_url_as(&ns);
    let mut fleet = Fleet::new(WORKER);
    fleet.start_recording(&["f-a", "f-b", "f-c"], &url, &ns, 2, &records.url(), "warn");
    let started = now_ms();
    fleet
        .wait_until(Duration::from_secs(30), "3 ticks of each job", |events| {
            ["job-0", "job-1"]
                .iter()
                .all(|job| distinct_ticks(events, job, started, None) >= 3)
        })
        .await;
    // A crash: f-a is gone without a word.
    fleet.worker("f-a").kill().await;
    let killed = now_ms();
    fleet
        .wait_until(
            Duration::from_secs(30),
            "3 ticks after the kill",
            |events| distinct_ticks(events, "job-0", killed + 1_000, None) >= 3,
        )
        .await;
    // The server ends every fourit session (claims, heartbeats, LISTEN) while jobs run.
    let (admin, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {base}: {e}"));
    tokio::spawn(connection);
    let terminated = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&ns],
        )
        .await
        .unwrap_or_else(|e| panic!("pg_terminate_backend: {e}"))
        .len();
    let cut = now_ms();
    fleet
        .wait_until(Duration::from_secs(30), "4 ticks after the cut", |events| {
            ["job-0", "job-1"]
                .iter()
                .all(|job| distinct_ticks(events, job, cut + 1_000, None) >= 4)
        })
        .await;
    fleet.stop_all(Duration::from_secs(20)).await;
    let recorded = Records::read(&mut records.connection().await, &ns).await;
    let missed = assert_no_double_runs(&recorded, &["job-0", "job-1"], started);
    eprintln!(
        "terminated {terminated} fourit sessions; ticks missed around the kill and the cut: \
         {missed:?}"
    );
    assert!(
        terminated >= 4,
        "two workers' sessions at least: {terminated}"
    );
}

/// A claim through `coordinator`, of a tick a second ago.
async fn claim_once(coordinator: &dyn fourit::coordinator::Coordinator, job: &str) -> bool {
    let request = fourit::coordinator::ClaimRequest {
        job: job.into(),
        tick_ms: now_ms() - 1_000,
        node: "node-a".into(),
        lease_ttl: Duration::from_secs(30),
        overlap: fourit::Overlap::Skip,
        preferred: None,
        handoff: Duration::ZERO,
        claim_id: fourit::coordinator::new_claim_id(),
        schedule: None,
    };
    matches!(
        coordinator
            .claim(&[request])
            .await
            .unwrap_or_else(|e| panic!("claim: {e}"))[..],
        [fourit::coordinator::ClaimOutcome::Run(_)]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_owns_only_its_schema_is_enough() {
    let url = postgres_url();
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(connection);
    let role = format!("fourit_least_{}", std::process::id());
    // README's statements (PostgreSQL 15 and later grant no CREATE on `public` to others).
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {role} CASCADE; DROP ROLE IF EXISTS {role};
             CREATE ROLE {role} LOGIN PASSWORD 'least-privileged-pw';
             CREATE SCHEMA {role} AUTHORIZATION {role};
             ALTER ROLE {role} SET search_path = {role};"
        ))
        .await
        .unwrap_or_else(|e| panic!("setting up {role}: {e}"));
    let (host, rest) = url
        .strip_prefix("postgres://postgres@")
        .and_then(|rest| rest.split_once('/'))
        .unwrap_or_else(|| panic!("a postgres://postgres@host/db URL: {url}"));
    let limited = format!("postgres://{role}:least-privileged-pw@{host}/{rest}");
    let coordinator =
        fourit::coordinator::PostgresCoordinator::connect(&limited, &namespace("least"))
            .await
            .unwrap_or_else(|e| panic!("connecting as {role}: {e}"));
    assert!(claim_once(&coordinator, "limited").await);
    let tables = admin
        .query(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tableowner = $1",
            &[&role],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let count: i64 = tables[0].get(0);
    assert!(
        count >= 7,
        "fourit's tables are in the role's schema: {count}"
    );
    drop(coordinator);
    admin
        .batch_execute(&format!("DROP SCHEMA {role} CASCADE; DROP ROLE {role};"))
        .await
        .unwrap_or_else(|e| panic!("cleaning up {role}: {e}"));
}

/// A database of schema version 7 (a skip job's lease a row of `fourit_leases`, the history
/// with a primary key) migrated at connect: the live lease moves into the job's row and is
/// still the run's (kept alive, held against the next tick, released as held).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_7_database_is_migrated_and_a_live_lease_kept() {
    use fourit::coordinator::{ClaimOutcome, ClaimRequest, Coordinator, RunRecord};
    let url = postgres_url();
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(connection);
    let schema = format!("fourit_mig_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
        ))
        .await
        .unwrap_or_else(|e| panic!("creating {schema}: {e}"));
    let separator = if url.contains('?') { '&' } else { '?' };
    let own = format!("{url}{separator}options=-csearch_path%3D{schema}");
    let ns = namespace("migrate");
    let request = |tick_ms: i64| ClaimRequest {
        job: "m".into(),
        tick_ms,
        node: "node-a".into(),
        lease_ttl: Duration::from_secs(30),
        overlap: fourit::Overlap::Skip,
        preferred: None,
        handoff: Duration::ZERO,
        claim_id: fourit::coordinator::new_claim_id(),
        schedule: None,
    };
    let first = fourit::coordinator::PostgresCoordinator::connect(&own, &ns)
        .await
        .unwrap_or_else(|e| panic!("connecting: {e}"));
    let tick = now_ms() - 2_000;
    let lease = match &first
        .claim(&[request(tick)])
        .await
        .unwrap_or_else(|e| panic!("claim: {e}"))[..]
    {
        [ClaimOutcome::Run(lease)] => lease.clone(),
        other => panic!("the first tick runs: {other:?}"),
    };
    drop(first);
    // Back to version 7's layout, the run's lease with it.
    admin
        .batch_execute(&format!(
            "SET search_path = {schema};
             INSERT INTO fourit_leases SELECT ns, job, '', lease_run, lease_expires
               FROM fourit_jobs WHERE lease_run IS NOT NULL;
             ALTER TABLE fourit_jobs DROP COLUMN lease_run, DROP COLUMN lease_expires,
               RESET (fillfactor);
             ALTER TABLE fourit_history ADD PRIMARY KEY (id);
             UPDATE fourit_meta SET version = 7;"
        ))
        .await
        .unwrap_or_else(|e| panic!("rewriting {schema} as version 7: {e}"));
    let second = fourit::coordinator::PostgresCoordinator::connect(&own, &ns)
        .await
        .unwrap_or_else(|e| panic!("connecting to the version 7 tables: {e}"));
    let moved = admin
        .query_one(
            &format!(
                "SELECT (SELECT max(version) FROM {schema}.fourit_meta),
                   (SELECT count(*) FROM {schema}.fourit_leases),
                   (SELECT lease_run FROM {schema}.fourit_jobs WHERE ns = $1 AND job = 'm'),
                   (SELECT count(*) FROM pg_constraint
                     WHERE conrelid = '{schema}.fourit_history'::regclass AND contype = 'p')"
            ),
            &[&ns],
        )
        .await
        .unwrap_or_else(|e| panic!("reading the migrated tables: {e}"));
    assert_eq!(
        moved.get::<_, Option<i32>>(0),
        Some(8),
        "the schema's version"
    );
    assert_eq!(moved.get::<_, i64>(1), 0, "no lease left in fourit_leases");
    assert_eq!(
        moved.get::<_, Option<String>>(2),
        Some(lease.run_id()),
        "the lease in the job's row"
    );
    assert_eq!(
        moved.get::<_, i64>(3),
        0,
        "the history's primary key dropped"
    );
    assert!(
        second
            .keep_alive(&lease, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("keep_alive: {e}")),
        "the run's lease is kept alive after the migration"
    );
    match &second
        .claim(&[request(tick + 1_000)])
        .await
        .unwrap_or_else(|e| panic!("claim: {e}"))[..]
    {
        [ClaimOutcome::Overlap { holder }] => assert_eq!(*holder, lease.run_id()),
        other => panic!("the next tick overlaps the run: {other:?}"),
    }
    let record = RunRecord {
        outcome: fourit::coordinator::Outcome::Succeeded,
        started: chrono::Utc::now(),
        duration: Duration::from_millis(5),
    };
    assert!(
        second
            .release(&lease, &record)
            .await
            .unwrap_or_else(|e| panic!("release: {e}")),
        "the run's lease was still its own"
    );
    drop(second);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE;"))
        .await
        .unwrap_or_else(|e| panic!("cleaning up {schema}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_hosts_with_target_session_attrs_find_the_writable_one() {
    let url = postgres_url();
    // A host with nothing listening first: the client goes on to the next.
    let several = url.replacen('@', "@127.0.0.1:9,", 1);
    assert_ne!(several, url, "the test URL names a user: {url}");
    let several = format!("{several}?target_session_attrs=read-write");
    let coordinator =
        fourit::coordinator::PostgresCoordinator::connect(&several, &namespace("hosts"))
            .await
            .unwrap_or_else(|e| panic!("connecting to {several}: {e}"));
    assert!(claim_once(&coordinator, "several").await);
    // When no host will do, the error says why for each of them, not for the last only.
    let none = "postgres://postgres@127.0.0.1:9,127.0.0.1:10/postgres?connect_timeout=2";
    let err = fourit::coordinator::PostgresCoordinator::connect(none, &namespace("none"))
        .await
        .err()
        .unwrap_or_else(|| panic!("connected to {none}"));
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:9: ") && text.contains("127.0.0.1:10: "),
        "{text}"
    );
    assert!(err.is_unavailable(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_killed_and_restarted_costs_no_double_run() {
    let records = RedisServer::start();
    let database = PostgresServer::start();
    let url = database.url();
    let ns = namespace("restart");
    let mut fleet = Fleet::new(WORKER);
    fleet.start_recording(&["k-a", "k-b"], &url, &ns, 2, &records.url(), "warn");
    let started = now_ms();
    fleet
        .wait_until(Duration::from_secs(30), "3 ticks of each job", |events| {
            ["job-0", "job-1"]
                .iter()
                .all(|job| distinct_ticks(events, job, started, None) >= 3)
        })
        .await;
    // A crash of the server while jobs run: SIGKILL of the postmaster; started again 2 s
    // later (the outage is the scenario).
    database.kill();
    let killed = now_ms();
    tokio::time::sleep(Duration::from_secs(2)).await;
    database
        .start_again()
        .unwrap_or_else(|e| panic!("restarting PostgreSQL: {e}"));
    let back = now_ms();
    fleet
        .wait_until(
            Duration::from_secs(40),
            "4 ticks after the restart",
            |events| {
                ["job-0", "job-1"]
                    .iter()
                    .all(|job| distinct_ticks(events, job, back + 1_000, None) >= 4)
            },
        )
        .await;
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;
    let recorded = Records::read(&mut records.connection().await, &ns).await;
    let missed = assert_no_double_runs(&recorded, &["job-0", "job-1"], started);
    eprintln!("down {} ms; ticks missed: {missed:?}", back - killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_pgbouncer_in_transaction_mode_the_fleet_runs_each_tick_once() {
    let database = PostgresServer::shared().unwrap_or_else(|why| panic!("{why}"));
    // Two server connections for three workers' claims, heartbeats and listeners: a worker's
    // consecutive statements land on different sessions (a named prepared statement or a
    // session lock would break here).
    let pooled = PostgresServer::SHARED_DATABASE;
    let bouncer = PgBouncer::try_start(database.port(), pooled, 2)
        .unwrap_or_else(|e| panic!("starting pgbouncer: {e}"));
    let url = bouncer.url(pooled);
    let ns = namespace("bouncer");
    steady_fleet(&url, &ns, ["b-a", "b-b", "b-c"], 6).await;
    // TLS asked of a pooler that offers none: refused, in words, no password shown.
    let refused = fourit::coordinator::PostgresCoordinator::connect(
        &format!(
            "{}?sslmode=require",
            bouncer
                .url(pooled)
                .replace("postgres@", "postgres:pw-not-shown@")
        ),
        &ns,
    )
    .await
    .map(|_| ())
    .expect_err("sslmode=require without TLS on the other end");
    let text = refused.to_string();
    assert!(text.contains("TLS"), "{text}");
    assert!(!text.contains("pw-not-shown"), "{text}");
}

#[cfg(feature = "tls")]
mod tls {
    //! `sslmode` against a PostgreSQL of the test's own serving TLS on certificates made
    //! here.

    use fourit_tests::PostgresServer;
    use fourit_tests::TempDir;
    use fourit_tests::certs::certificates;

    use super::{claim_once, namespace};

    /// The server, its CA's file and the directory holding them.
    fn tls_server() -> (PostgresServer, std::path::PathBuf, TempDir) {
        let dir = TempDir::new("fourit-pg-tls");
        let (files, _) = certificates(dir.path());
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let server = PostgresServer::try_start_tls(&read(&files.cert), &read(&files.key))
            .unwrap_or_else(|e| panic!("starting PostgreSQL with TLS: {e}"));
        (server, files.ca, dir)
    }

    /// Whether the sessions named `name` are encrypted, as the server sees them.
    async fn encrypted(server: &PostgresServer, name: &str) -> Vec<bool> {
        let (admin, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting: {e}"));
        tokio::spawn(connection);
        admin
            .query(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE a.application_name = $1",
                &[&name],
            )
            .await
            .unwrap_or_else(|e| panic!("pg_stat_ssl: {e}"))
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sslmode_require_and_verify_full_encrypt_and_a_foreign_ca_is_refused() {
        let (server, ca, _dir) = tls_server();
        let base = server.url().replace("postgres@", "postgres:pw-not-shown@");

        // require: encrypted, the certificate not checked (libpq's meaning).
        let url = format!("{base}?sslmode=require&application_name=tls-require");
        let coordinator =
            fourit::coordinator::PostgresCoordinator::connect(&url, &namespace("tls"))
                .await
                .unwrap_or_else(|e| panic!("sslmode=require: {e}"));
        assert!(claim_once(&coordinator, "require").await);
        let sessions = encrypted(&server, "tls-require").await;
        assert!(
            sessions.len() >= 2 && sessions.iter().all(|ssl| *ssl),
            "the calls' and the listener's sessions are encrypted: {sessions:?}"
        );
        drop(coordinator);

        // verify-full against the CA that signed the server's certificate (for 127.0.0.1).
        let url = format!(
            "{base}?sslmode=verify-full&sslrootcert={}&application_name=tls-full",
            ca.display()
        );
        let coordinator =
            fourit::coordinator::PostgresCoordinator::connect(&url, &namespace("tls"))
                .await
                .unwrap_or_else(|e| panic!("sslmode=verify-full: {e}"));
        assert!(claim_once(&coordinator, "full").await);
        assert!(encrypted(&server, "tls-full").await.iter().all(|ssl| *ssl));
        drop(coordinator);

        // disable: plain, though the server offers TLS.
        let url = format!("{base}?sslmode=disable&application_name=tls-off");
        let coordinator =
            fourit::coordinator::PostgresCoordinator::connect(&url, &namespace("tls"))
                .await
                .unwrap_or_else(|e| panic!("sslmode=disable: {e}"));
        assert!(claim_once(&coordinator, "off").await);
        let sessions = encrypted(&server, "tls-off").await;
        assert!(
            !sessions.is_empty() && sessions.iter().all(|ssl| !*ssl),
            "{sessions:?}"
        );
        drop(coordinator);

        // verify-ca and verify-full against another CA: refused, no password in the words.
        let other = TempDir::new("fourit-pg-tls-other");
        let (foreign, _) = certificates(other.path());
        for mode in ["verify-ca", "verify-full"] {
            let url = format!("{base}?sslmode={mode}&sslrootcert={}", foreign.ca.display());
            let err = fourit::coordinator::PostgresCoordinator::connect(&url, &namespace("tls"))
                .await
                .map(|_| ())
                .expect_err("a certificate of another CA");
            let text = err.to_string();
            assert!(text.contains("certificate"), "{mode}: {text}");
            assert!(!text.contains("pw-not-shown"), "{mode}: {text}");
        }
    }
}
