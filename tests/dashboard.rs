//! The dashboard (`fourit dashboard`, the real binary) on a live fleet of real worker
//! processes and a real `redis-server` with a password, over plain HTTP: the jobs and their
//! outcomes, escaping, the token, same-origin actions, read-only, the JSON API, no password
//! anywhere; and the same pages and actions on PostgreSQL and on a SQLite file.
//! (`tests/browser.rs` drives it from a real Chromium.)

use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::cli::Cli;
use fourit_tests::dashboard::DashboardProcess;
use fourit_tests::faults::{Fleet, distinct_ticks};
use fourit_tests::http::{Response, get, request};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const FOURIT: &str = env!("CARGO_BIN_EXE_fourit-for-tests");
const PASSWORD: &str = "dashboard-pw-never-shown";
const TOKEN: &str = "t0ken-for-the-tests";

/// `text` appears in `body` HTML-escaped (as `&lt;` or `&#60;`, either is fine).
fn escaped(body: &str, text: &str) -> bool {
    let named = text.replace('<', "&lt;").replace('>', "&gt;");
    let numeric = text.replace('<', "&#60;").replace('>', "&#62;");
    body.contains(&named) || body.contains(&numeric)
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn with_token(address: &str, method: &str, path: &str, extra: &[(&str, &str)]) -> Response {
    let auth = bearer();
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    request(address, method, path, &headers, "").unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_and_steers_a_live_fleet_safely() {
    let server = RedisServer::builder()
        .arg("--requirepass")
        .arg(PASSWORD)
        .start();
    let url = server.url_with("default", PASSWORD);
    let namespace = "dash";
    let mut fleet = Fleet::new(WORKER);
    for node in ["d-a", "d-b"] {
        fleet.start_on(
            node,
            &url,
            namespace,
            &["--jobs", "1", "--body-ms", "5", "--extra", "fails-html"],
        );
    }
    fleet
        .wait_until(Duration::from_secs(30), "2 ticks of each job", |events| {
            ["job-0", "fails-html"]
                .iter()
                .all(|job| distinct_ticks(events, job, 0, None) >= 2)
        })
        .await;
    let dashboard = DashboardProcess::start(FOURIT, &url, namespace, &["--token", TOKEN]);
    let address = dashboard.address.as_str();

    // Without the token: the login page, and 401 from the API.
    let page = get(address, "/").unwrap_or_else(|e| panic!("GET /: {e}"));
    assert_eq!(page.status, 303, "{page:?}");
    assert_eq!(page.header("location"), Some("/login"));
    let api = get(address, "/api/jobs").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(api.status, 401);

    // With it: the jobs, their last outcomes, the error text as text, no password.
    let jobs = with_token(address, "GET", "/", &[]);
    assert_eq!(jobs.status, 200);
    assert!(jobs.body.contains(">job-0</a>") && jobs.body.contains(">fails-html</a>"));
    assert!(jobs.body.contains("succeeded") && jobs.body.contains("failed"));
    assert!(
        escaped(&jobs.body, "<script>alert(1)</script>") && !jobs.body.contains("<script>alert"),
        "the error text is escaped: {}",
        jobs.body
    );
    assert!(
        jobs.header("content-security-policy")
            .is_some_and(|csp| csp.contains("script-src 'self'"))
    );
    let job = with_token(address, "GET", "/jobs/fails-html", &[]);
    assert_eq!(job.status, 200);
    assert!(job.body.contains("<svg") && escaped(&job.body, "<script>alert(1)</script>"));
    let members = with_token(address, "GET", "/members", &[]);
    assert!(members.body.contains("d-a") && members.body.contains("d-b"));
    for body in [&jobs.body, &job.body, &members.body] {
        assert!(!body.contains(PASSWORD), "a password on a page");
        assert!(body.contains("redis://default:***@"), "the fleet, redacted");
    }

    // The API answers what the command's --json prints, field for field.
    let cli = Cli::new(FOURIT, &url, namespace);
    let api: serde_json::Value =
        serde_json::from_str(&with_token(address, "GET", "/api/jobs", &[]).body)
            .unwrap_or_else(|e| panic!("/api/jobs: {e}"));
    let status = cli.json(&["status", "--json"]);
    let keys = |value: &serde_json::Value| -> Vec<String> {
        value[0]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&api), keys(&status));
    assert!(!keys(&api).is_empty());
    let history: serde_json::Value =
        serde_json::from_str(&with_token(address, "GET", "/api/jobs/job-0/history", &[]).body)
            .unwrap_or_else(|e| panic!("history: {e}"));
    assert_eq!(
        keys(&history),
        keys(&cli.json(&["history", "job-0", "--json"]))
    );
    let members: serde_json::Value =
        serde_json::from_str(&with_token(address, "GET", "/api/members", &[]).body)
            .unwrap_or_else(|e| panic!("members: {e}"));
    assert_eq!(members.as_array().map(Vec::len), Some(2), "{members}");
    assert!(!members.to_string().contains(PASSWORD));

    // Actions: never on GET; not without the token; with the login cookie, only from the
    // dashboard's own origin.
    let on_get = with_token(address, "GET", "/jobs/job-0/pause", &[]);
    assert_eq!(on_get.status, 405, "no action on GET");
    let anonymous =
        request(address, "POST", "/jobs/job-0/pause", &[], "").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(anonymous.status, 401);
    let cookie = format!("fourit_token={TOKEN}");
    let form = [
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let mut cross = form.to_vec();
    cross.push(("origin", "http://evil.example"));
    let forged = request(address, "POST", "/jobs/job-0/pause", &cross, "note=x")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(forged.status, 403, "cross-site: {forged:?}");
    let unlabeled = request(address, "POST", "/jobs/job-0/pause", &form, "note=x")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(unlabeled.status, 403, "no origin at all");
    assert_eq!(
        cli.json(&["paused", "job-0", "--json"])["paused"],
        false,
        "nothing was paused by the refused requests"
    );
    let origin = format!("http://{address}");
    let mut same = form.to_vec();
    same.push(("origin", origin.as_str()));
    let paused = request(address, "POST", "/jobs/job-0/pause", &same, "note=INC-<b>")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(paused.status, 303, "{paused:?}");
    let state = cli.json(&["paused", "job-0", "--json"]);
    assert_eq!(state["paused"], true);
    assert_eq!(state["note"], "INC-<b>");
    let page = with_token(address, "GET", "/jobs/job-0", &[]);
    assert!(escaped(&page.body, "INC-<b>") && page.body.contains("id=\"resume\""));
    let resumed = with_token(address, "POST", "/jobs/job-0/resume", &[]);
    assert_eq!(resumed.status, 303);
    assert_eq!(cli.json(&["paused", "job-0", "--json"])["paused"], false);

    // Read-only: every page and the API without a token, no action offered or taken.
    let open = DashboardProcess::start(FOURIT, &url, namespace, &["--read-only"]);
    let page = get(&open.address, "/jobs/job-0").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<form"), "no action offered");
    assert_eq!(
        get(&open.address, "/api/jobs").map(|r| r.status).ok(),
        Some(200)
    );
    let refused = request(
        &open.address,
        "POST",
        "/jobs/job-0/trigger",
        &[("origin", &format!("http://{}", open.address))],
        "",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused.status, 403);
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;
}

/// One worker on `url`, and the dashboard on the same store: the job's page, its history,
/// the member, and a pause and resume taken through it.
async fn dashboard_on(url: &str, namespace: &str, shown: &str) {
    // The worker records its runs on a Redis of its own (the store here is not Redis).
    let records = RedisServer::start();
    let mut fleet = Fleet::new(WORKER);
    fleet.start_on(
        "s-a",
        url,
        namespace,
        &[
            "--jobs",
            "1",
            "--body-ms",
            "5",
            "--record-url",
            &records.url(),
        ],
    );
    fleet
        .wait_until(Duration::from_secs(30), "2 ticks of job-0", |events| {
            distinct_ticks(events, "job-0", 0, None) >= 2
        })
        .await;
    let dashboard = DashboardProcess::start(FOURIT, url, namespace, &["--token", TOKEN]);
    let address = dashboard.address.as_str();
    let jobs = with_token(address, "GET", "/", &[]);
    assert_eq!(jobs.status, 200, "{jobs:?}");
    assert!(jobs.body.contains(">job-0</a>") && jobs.body.contains("succeeded"));
    assert!(
        jobs.body.contains(shown),
        "the store, as shown: {}",
        jobs.body
    );
    let history: serde_json::Value =
        serde_json::from_str(&with_token(address, "GET", "/api/jobs/job-0/history", &[]).body)
            .unwrap_or_else(|e| panic!("history: {e}"));
    assert!(
        history
            .as_array()
            .is_some_and(|entries| entries.iter().any(|e| e["outcome"] == "succeeded")),
        "{history}"
    );
    let members: serde_json::Value =
        serde_json::from_str(&with_token(address, "GET", "/api/members", &[]).body)
            .unwrap_or_else(|e| panic!("members: {e}"));
    assert_eq!(members.as_array().map(Vec::len), Some(1), "{members}");
    let cli = Cli::new(FOURIT, url, namespace);
    let paused = with_token(address, "POST", "/jobs/job-0/pause", &[]);
    assert_eq!(paused.status, 303, "{paused:?}");
    assert_eq!(cli.json(&["paused", "job-0", "--json"])["paused"], true);
    let resumed = with_token(address, "POST", "/jobs/job-0/resume", &[]);
    assert_eq!(resumed.status, 303, "{resumed:?}");
    assert_eq!(cli.json(&["paused", "job-0", "--json"])["paused"], false);
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_reads_and_steers_a_fleet_on_postgres_and_on_sqlite() {
    let namespace = format!(
        "dash-pg-{}-{}",
        std::process::id(),
        fourit_tests::faults::now_ms()
    );
    dashboard_on(&fourit_tests::postgres_url(), &namespace, "postgres://").await;
    let dir = fourit_tests::TempDir::new("fourit-dash-sqlite");
    let url = format!("sqlite://{}/fleet.db", dir.path().display());
    dashboard_on(&url, "dash", "sqlite://").await;
}
