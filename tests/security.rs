//! Security: the README's minimal ACL (a user restricted to `~fourit:*`, password and user in
//! the URL) runs a fleet end to end; fleets in different namespaces on one Redis never see
//! each other's ticks; no password appears in any log line or error; and, with the `tls`
//! feature (`cargo test -p fourit-tests --features tls --test security`), `rediss://` against
//! a `redis-server` serving TLS on certificates this test generates.

use std::collections::BTreeSet;
use std::time::Duration;

use fourit::Scheduler;
use fourit_tests::faults::{Event, Fleet, LogBuffer, Records, tick_report};
use fourit_tests::{RedisServer, readme_acl};
use tokio::sync::mpsc;

const WORKER: &str = env!("CARGO_BIN_EXE_worker");

fn distinct(events: &[Event], node_prefix: &str, job: &str) -> usize {
    events
        .iter()
        .filter(|e| e.node.starts_with(node_prefix))
        .filter_map(|e| e.ran(job))
        .collect::<BTreeSet<_>>()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_minimal_acl_runs_a_fleet_with_user_and_password_in_the_url() {
    let server = RedisServer::start();
    let mut admin = server.connection().await;
    let words = readme_acl();
    // Exactly the README's command: `ACL SETUSER fourit on >a-long-password ~fourit:* +...`.
    assert_eq!(words[..3], ["ACL", "SETUSER", "fourit"]);
    assert!(words.contains(&"~fourit:*".to_string()), "{words:?}");
    let mut setuser = redis::cmd("ACL");
    for word in &words[1..] {
        setuser.arg(word);
    }
    setuser
        .query_async::<()>(&mut admin)
        .await
        .unwrap_or_else(|err| panic!("the README's ACL command: {err}"));
    let password = words
        .iter()
        .find_map(|w| w.strip_prefix('>'))
        .unwrap_or_else(|| panic!("no password in {words:?}"));
    let url = server.url_with("fourit", password);
    let record_url = server.url();
    let mut fleet = Fleet::new(WORKER);
    // The default namespace, `fourit`: the only keys the user may touch are `fourit:*`.
    for node in ["a", "b"] {
        fleet.start(
            node,
            &["--url", &url, "--record-url", &record_url, "--jobs", "2"],
        );
    }
    fleet
        .wait_until(Duration::from_secs(30), "5 ticks of each job", |events| {
            distinct(events, "", "job-0") >= 5 && distinct(events, "", "job-1") >= 5
        })
        .await;
    fleet.stop_all(Duration::from_secs(20)).await;

    let denied: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut admin)
        .await
        .unwrap_or_else(|err| panic!("ACL LOG: {err}"));
    let members: i64 = redis::cmd("ZCARD")
        .arg("fourit:nodes")
        .query_async(&mut admin)
        .await
        .unwrap_or_else(|err| panic!("ZCARD: {err}"));
    let records = Records::read(&mut admin, "fourit").await;
    let stderr = fleet.stderr();
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains(" WARN ") || line.contains(" ERROR "))
        .collect();
    eprintln!(
        "ACL LOG entries: {}; members left after shutdown: {members}; warnings: {complaints:?}",
        denied.len()
    );
    assert!(
        denied.is_empty(),
        "Redis denied the README's user something: {denied:?}"
    );
    assert!(complaints.is_empty(), "{stderr}");
    assert_eq!(members, 0, "the workers did not leave the members set");
    for job in ["job-0", "job-1"] {
        let report = tick_report(&records.ticks(job), 1000);
        assert!(report.ran >= 5, "{job}: {report:?}");
        assert_eq!(report.doubles, vec![], "{job}");
        assert_eq!(report.missing, Vec::<i64>::new(), "{job}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleets_in_different_namespaces_never_see_each_others_ticks() {
    let server = RedisServer::start();
    let url = server.url();
    let mut fleet = Fleet::new(WORKER);
    for (node, namespace) in [
        ("alpha-1", "alpha"),
        ("alpha-2", "alpha"),
        ("beta-1", "beta"),
        ("beta-2", "beta"),
    ] {
        fleet.start_on(node, &url, namespace, &["--jobs", "2"]);
    }
    fleet
        .wait_until(
            Duration::from_secs(30),
            "6 ticks of job-0 in each fleet",
            |events| {
                distinct(events, "alpha", "job-0") >= 6 && distinct(events, "beta", "job-0") >= 6
            },
        )
        .await;
    fleet.stop_all(Duration::from_secs(20)).await;

    let mut conn = server.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|err| panic!("KEYS: {err}"));
    let strays: Vec<&String> = keys
        .iter()
        .filter(|k| !k.starts_with("alpha:") && !k.starts_with("beta:"))
        .filter(|k| !k.starts_with("alpha-record:") && !k.starts_with("beta-record:"))
        .collect();
    assert!(
        strays.is_empty(),
        "keys outside both namespaces: {strays:?}"
    );
    let mut ticks_by_fleet = Vec::new();
    for namespace in ["alpha", "beta"] {
        let records = Records::read(&mut conn, namespace).await;
        assert!(
            records.runs.iter().all(|r| r.node.starts_with(namespace)),
            "a {namespace} run recorded by another fleet: {:?}",
            records.runs
        );
        for job in ["job-0", "job-1"] {
            let ticks = records.ticks(job);
            let report = tick_report(&ticks, 1000);
            eprintln!("{namespace} {job}: {report:?}");
            assert_eq!(report.doubles, vec![], "{namespace} {job}");
            assert_eq!(report.missing, Vec::<i64>::new(), "{namespace} {job}");
            if job == "job-0" {
                ticks_by_fleet.push(ticks.keys().copied().collect::<BTreeSet<i64>>());
            }
        }
    }
    // Each fleet ran the ticks they shared in time: one fleet's claim never took another's.
    let both: BTreeSet<_> = ticks_by_fleet[0].intersection(&ticks_by_fleet[1]).collect();
    eprintln!(
        "ticks of job-0 run by both fleets, once each: {}",
        both.len()
    );
    assert!(both.len() >= 4, "{ticks_by_fleet:?}");
}

/// Adds the ACL user `app` (all commands, keys and channels) with the password `SECRETS[3]`.
async fn add_app_user(server: &RedisServer) {
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(format!(">{}", SECRETS[3]))
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .query_async::<()>(&mut server.connection().await)
        .await
        .unwrap_or_else(|err| panic!("ACL SETUSER: {err}"));
}

/// The next tick the job reports running, within 15 s.
async fn next_run<T>(runs: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), runs.recv())
        .await
        .unwrap_or_else(|_| panic!("no run within 15 s"))
        .unwrap_or_else(|| panic!("the job's channel closed"))
}

/// The passwords this test puts in URLs; none may appear in any captured text.
const SECRETS: [&str; 4] = [
    "server-pw-9f3e1c",
    "wrong-pw-5b7a2d",
    "unreachable-pw-c41d8e",
    "acl-user-pw-7e2f90",
];

/// In-process schedulers (on this test's one thread, so the capture sees all they log, at
/// every level) across a wrong password, an unreachable Redis and a normal run through an
/// outage: the logs and errors never hold a password.
#[tokio::test]
async fn no_password_appears_in_any_log_line_or_error() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let mut server = RedisServer::builder()
        .arg("--requirepass")
        .arg(SECRETS[0])
        .start();
    add_app_user(&server).await;
    let mut errors = Vec::new();

    // 1. A wrong password: an error at once.
    let wrong = server.url_with("", SECRETS[1]);
    let err = Scheduler::builder()
        .url(&wrong)
        .registered_jobs(false)
        .build()
        .unwrap_or_else(|err| panic!("build: {err}"))
        .run_until(std::future::pending())
        .await
        .err()
        .unwrap_or_else(|| panic!("a wrong password was accepted"));
    errors.push(format!("{err} / {err:?}"));

    // 2. An unreachable Redis with a password in the URL: warnings while it retries.
    let unreachable = {
        let mut gone = RedisServer::start();
        gone.stop();
        gone.url_with("app", SECRETS[2])
    };
    let result = Scheduler::builder()
        .url(&unreachable)
        .registered_jobs(false)
        .add_job("never", "* * * * * *", |_| async {})
        .build()
        .unwrap_or_else(|err| panic!("build: {err}"))
        .run_until(tokio::time::sleep(Duration::from_millis(1500)))
        .await;
    errors.push(format!("{result:?}"));

    // 3. A normal run with an ACL user's password, through a Redis outage mid-run.
    let (ran, mut runs) = mpsc::unbounded_channel();
    let scheduler = Scheduler::builder()
        .url(&server.url_with("app", SECRETS[3]))
        .registered_jobs(false)
        .lease_ttl(Duration::from_millis(600))
        .add_job("secret-keeper", "* * * * * *", move |ctx| {
            let ran = ran.clone();
            async move {
                let _ = ran.send(ctx.tick());
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(1500)) => {}
                    () = ctx.cancelled() => {}
                }
            }
        })
        .build()
        .unwrap_or_else(|err| panic!("build: {err}"));
    let handle = scheduler.handle();
    let running = tokio::spawn(scheduler.run_until(std::future::pending()));
    next_run(&mut runs).await;
    // Redis goes away during the run (lease lost, claims fail), then comes back without the
    // user `app` (ACL users given by command are not persisted): the scheduler's next calls
    // are refused authentication. Only then is `app` made again, and runs must resume (the
    // client library alone would stay failed after such a reconnection).
    server.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.restart();
    let refused = |text: &str| text.matches("rejected the credentials").count();
    let before = refused(&logs.text());
    logs.wait_until(
        Duration::from_secs(15),
        "a call refused authentication after the restart",
        |text| refused(text) > before,
    )
    .await;
    add_app_user(&server).await;
    let back = chrono::Utc::now();
    loop {
        if next_run(&mut runs).await >= back - Duration::from_secs(1) {
            break;
        }
    }
    handle.stop();
    let result = tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .unwrap_or_else(|_| panic!("run did not stop"))
        .unwrap_or_else(|err| panic!("run panicked: {err}"));
    errors.push(format!("{result:?}"));

    let text = logs.text();
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("{text}");
    }
    let lines = text.lines().count();
    let redacted = text.matches(":***@").count();
    eprintln!(
        "captured {lines} log lines ({redacted} with a redacted URL) and {} errors",
        errors.len()
    );
    assert!(lines > 10, "the capture saw too little:\n{text}");
    assert!(
        text.contains("lease lost") || text.contains("unavailable"),
        "the outage was not logged:\n{text}"
    );
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "`{secret}` leaked into the logs:\n{text}"
        );
        for err in &errors {
            assert!(
                !err.contains(secret),
                "`{secret}` leaked into an error: {err}"
            );
        }
    }
}

#[cfg(feature = "tls")]
mod tls {
    //! `rediss://` against a `redis-server` serving TLS on a CA and server certificate
    //! generated here with `rcgen`.

    use std::time::Duration;

    use fourit::Scheduler;
    use fourit_tests::RedisServer;
    use fourit_tests::TempDir;
    use fourit_tests::certs::certificates;
    use fourit_tests::faults::LogBuffer;
    use tokio::sync::mpsc;

    /// A TLS server, with its certificates' directory (kept as long as the server).
    fn tls_server() -> (RedisServer, String, TempDir) {
        let dir = TempDir::new("fourit-tls");
        let (files, ca_pem) = certificates(dir.path());
        let server = RedisServer::builder().tls(files).start();
        (server, ca_pem, dir)
    }

    /// The test's own set-up works: redis-server serves TLS here, and a client that trusts
    /// the generated CA (redis-rs's `Client::build_with_tls`) talks to it over `rediss://`.
    #[tokio::test]
    async fn a_client_trusting_the_generated_ca_talks_to_the_tls_redis() {
        let (server, ca_pem, _dir) = tls_server();
        let url = format!("rediss://127.0.0.1:{}", server.tls_port());
        let client = redis::Client::build_with_tls(
            url.as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca_pem.into_bytes()),
            },
        )
        .unwrap_or_else(|err| panic!("build_with_tls: {err}"));
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|err| panic!("connecting over TLS: {err}"));
        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("PING over TLS: {err}"));
        assert_eq!(pong, "PONG");
    }

    /// fourit over `rediss://` trusting the generated CA (`SchedulerBuilder::tls`), with a
    /// password: jobs run, and the password appears nowhere in the logs.
    #[tokio::test]
    async fn rediss_with_a_private_ca_runs_jobs() {
        let logs = LogBuffer::default();
        let _guard = logs.install();
        let (server, ca_pem, _dir) = tls_server();
        let url = format!("rediss://127.0.0.1:{}", server.tls_port());
        let (ran, mut runs) = mpsc::unbounded_channel();
        let scheduler = Scheduler::builder()
            .url(&url)
            .tls(fourit::coordinator::TlsConfig::new().root_certificates(ca_pem.into_bytes()))
            .registered_jobs(false)
            .add_job("over-tls", "* * * * * *", move |ctx| {
                let ran = ran.clone();
                async move {
                    let _ = ran.send(ctx.tick());
                }
            })
            .build()
            .unwrap_or_else(|err| panic!("build: {err}"));
        let handle = scheduler.handle();
        let running = tokio::spawn(scheduler.run_until(std::future::pending()));
        let first = tokio::time::timeout(Duration::from_secs(10), runs.recv())
            .await
            .unwrap_or_else(|_| panic!("no run over TLS within 10 s; logs:\n{}", logs.text()));
        assert!(first.is_some());
        handle.stop();
        let result = tokio::time::timeout(Duration::from_secs(15), running)
            .await
            .unwrap_or_else(|_| panic!("run did not return after stop"))
            .unwrap_or_else(|err| panic!("run panicked: {err}"));
        assert!(result.is_ok(), "{result:?}");
    }

    /// fourit over `rediss://` to a server whose certificate it cannot verify (its CA is not
    /// a public root and was not given): `run` returns a TLS error at once, naming the
    /// certificate problem and no password; no job runs (fail closed).
    #[tokio::test]
    async fn rediss_to_a_server_fourit_cannot_verify_is_an_error_at_start() {
        let logs = LogBuffer::default();
        let _guard = logs.install();
        let (server, _ca_pem, _dir) = tls_server();
        let url = format!("rediss://:tls-secret-3c9d@127.0.0.1:{}", server.tls_port());
        let (ran, mut runs) = mpsc::unbounded_channel();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            Scheduler::builder()
                .url(&url)
                .registered_jobs(false)
                .add_job("over-tls", "* * * * * *", move |ctx| {
                    let ran = ran.clone();
                    async move {
                        let _ = ran.send(ctx.tick());
                    }
                })
                .build()
                .unwrap_or_else(|err| panic!("build: {err}"))
                .run_until(std::future::pending()),
        )
        .await
        .unwrap_or_else(|_| panic!("run kept retrying an unverifiable server"));
        let text = logs.text();
        assert!(
            matches!(&result, Err(err) if err.coordinator_kind() == Some(fourit::ErrorKind::Tls)),
            "{result:?}\nlogs:\n{text}"
        );
        assert!(
            runs.try_recv().is_err(),
            "a job ran over an unverified TLS connection"
        );
        let said = format!("{result:?}\n{text}");
        assert!(!said.contains("tls-secret-3c9d"), "{said}");
        assert!(
            said.to_lowercase().contains("certificate") || said.contains("UnknownIssuer"),
            "nothing says the certificate could not be verified: {said}"
        );
    }
}

/// Everything one `fourit` command printed.
fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Connects with `password` in a Redis URL (refused: the server wants another) and in a
/// Postgres URL (the tests' server trusts local sessions, so it connects), and serves the
/// dashboard on the Postgres one: nothing the command prints, no page (the login page, which
/// needs no token, included) and no JSON answer holds the password.
fn no_output_shows(password: &str, redis: &RedisServer) {
    const FOURIT: &str = env!("CARGO_BIN_EXE_fourit-for-tests");
    const TOKEN: &str = "a-dashboard-token-of-24ch";
    let port = redis.port();
    let redis_url = format!("redis://app:{password}@127.0.0.1:{port}/0");
    let refused = fourit_tests::cli::Cli::new(FOURIT, &redis_url, "redact").run(&["members"]);
    assert_eq!(refused.status.code(), Some(3), "{}", printed(&refused));
    assert!(
        !printed(&refused).contains(password),
        "{}",
        printed(&refused)
    );
    let base = fourit_tests::postgres_url();
    let pg_url = base.replacen("postgres@", &format!("postgres:{password}@"), 1);
    let members = fourit_tests::cli::Cli::new(FOURIT, &pg_url, "redact").run(&["members"]);
    assert!(
        !printed(&members).contains(password),
        "{}",
        printed(&members)
    );
    if !members.status.success() {
        // A password the Postgres URL parser cannot read: refused, and said without it.
        return;
    }
    let dashboard = fourit_tests::dashboard::DashboardProcess::start(
        FOURIT,
        &pg_url,
        "redact",
        &["--token", TOKEN],
    );
    assert!(
        !dashboard.first_line.contains(password),
        "{}",
        dashboard.first_line
    );
    let bearer = format!("Bearer {TOKEN}");
    for (path, headers) in [
        ("/login", vec![]),
        ("/", vec![("authorization", bearer.as_str())]),
        ("/members", vec![("authorization", bearer.as_str())]),
        ("/api/jobs", vec![("authorization", bearer.as_str())]),
        ("/no-such-page", vec![]),
    ] {
        let page = fourit_tests::http::request(&dashboard.address, "GET", path, &headers, "")
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(!page.body.contains(password), "{path}: {}", page.body);
        if path == "/login" {
            assert!(
                page.body.contains("postgres://postgres:***@"),
                "{}",
                page.body
            );
        }
    }
}

#[test]
fn no_password_reaches_any_output_whatever_its_characters() {
    let redis = RedisServer::builder()
        .arg("--requirepass")
        .arg("the-right-one")
        .start();
    // The cases the probe found, then random ones over every printable byte.
    for password in ["pa/ss-SECRET", "p#ss?w/rd@x-SECRET", "se:cr@et/x?y#z"] {
        no_output_shows(password, &redis);
    }
    let config = proptest::test_runner::Config {
        cases: 8,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let url_words = "postgres://postgres@127.0.0.1:5432/test redis://app@/0 Postgres Redis";
    runner
        .run(&"[ -~]{8,20}", |password| {
            // A password that is a word of the URL's own text would "show" trivially.
            if url_words.contains(password.as_str()) || password.trim() != password {
                return Ok(());
            }
            no_output_shows(&password, &redis);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
