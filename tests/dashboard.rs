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

/// Logs in as the login page does (same origin) and answers the session cookie.
fn login(address: &str) -> String {
    let origin = format!("http://{address}");
    let body = format!("token={TOKEN}");
    let answer = request(
        address,
        "POST",
        "/login",
        &[
            ("origin", origin.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &body,
    )
    .unwrap_or_else(|e| panic!("login: {e}"));
    assert_eq!(answer.status, 303, "{answer:?}");
    let set = answer.header("set-cookie").unwrap_or_default().to_string();
    assert!(
        !set.contains(TOKEN),
        "the cookie holds a session id, not the token: {set}"
    );
    set.split(';').next().unwrap_or_default().to_string()
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
    let cookie = login(address);
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

/// The dashboard is exactly as protected as its first line says, for every way of starting
/// it and every kind of request: no token, an empty or short token, a wrong one, the right
/// one; read-only with a token; a foreign `Origin` and a foreign `Host`; sessions that
/// logout ends; failed logins slowed; notices from fixed texts; unknown jobs 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_exactly_as_protected_as_it_says() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "auth";
    let mut fleet = Fleet::new(WORKER);
    fleet.start_on("m-a", &url, namespace, &["--jobs", "1", "--body-ms", "5"]);
    fleet
        .wait_until(Duration::from_secs(30), "2 ticks of job-0", |events| {
            distinct_ticks(events, "job-0", 0, None) >= 2
        })
        .await;
    let cli = Cli::new(FOURIT, &url, namespace);

    // An empty token (an unset variable) and a short one: refused at start, no server.
    for (token, why) in [("", "empty"), ("short-token", "at least 16")] {
        let refused = cli.run(&["dashboard", "--listen", "127.0.0.1:0", "--token", token]);
        assert_eq!(refused.status.code(), Some(2), "{token:?}");
        let said = fourit_tests::cli::stderr(&refused);
        assert!(said.contains(why), "{said}");
    }

    // No token: the first line says OPEN, and it is open; no action.
    let open = DashboardProcess::start(FOURIT, &url, namespace, &[]);
    assert!(open.first_line.contains("OPEN"), "{}", open.first_line);
    assert_eq!(
        get(&open.address, "/api/jobs").map(|r| r.status).ok(),
        Some(200)
    );
    let act = request(&open.address, "POST", "/jobs/job-0/pause", &[], "")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(act.status, 403);

    // Read-only with a token: every page and the API still need it; no action with it.
    let locked =
        DashboardProcess::start(FOURIT, &url, namespace, &["--token", TOKEN, "--read-only"]);
    assert!(
        locked
            .first_line
            .contains("every page and the API need the token; no actions"),
        "{}",
        locked.first_line
    );
    let address = locked.address.as_str();
    assert_eq!(get(address, "/").map(|r| r.status).ok(), Some(303));
    assert_eq!(get(address, "/api/jobs").map(|r| r.status).ok(), Some(401));
    assert_eq!(
        get(address, "/api/members").map(|r| r.status).ok(),
        Some(401)
    );
    let wrong = request(
        address,
        "GET",
        "/api/jobs",
        &[("authorization", "Bearer wrong-token-wrong-token")],
        "",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wrong.status, 401);
    assert_eq!(with_token(address, "GET", "/api/jobs", &[]).status, 200);
    assert_eq!(
        with_token(address, "POST", "/jobs/job-0/pause", &[]).status,
        403
    );
    drop(locked);

    // The token from a file (the README's way), and the full matrix on it.
    let dir = fourit_tests::TempDir::new("fourit-dash-token");
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap_or_else(|e| panic!("{e}"));
    let file = file.display().to_string();
    let dashboard = DashboardProcess::start(FOURIT, &url, namespace, &["--token-file", &file]);
    assert!(
        dashboard
            .first_line
            .contains("every page, the API and every action need the token"),
        "{}",
        dashboard.first_line
    );
    let address = dashboard.address.as_str();
    // A foreign Host (DNS rebinding): refused before anything else, token or not.
    let rebound = request(address, "GET", "/api/jobs", &[("host", "evil.example")], "");
    let rebound = rebound.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rebound.status, 421, "{rebound:?}");
    // Every answer says nosniff: pages, JSON, assets, refusals.
    for path in ["/login", "/api/jobs", "/assets/app.js", "/assets/style.css"] {
        let answer = with_token(address, "GET", path, &[]);
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    // A session: a random id with an expiry, that logout ends.
    let cookie = login(address);
    let session = [("cookie", cookie.as_str())];
    assert_eq!(
        request(address, "GET", "/api/jobs", &session, "")
            .map(|r| r.status)
            .ok(),
        Some(200)
    );
    let foreign = [
        ("cookie", cookie.as_str()),
        ("origin", "http://evil.example"),
    ];
    assert_eq!(
        request(address, "POST", "/jobs/job-0/pause", &foreign, "")
            .map(|r| r.status)
            .ok(),
        Some(403)
    );
    request(address, "POST", "/logout", &session, "").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        request(address, "GET", "/api/jobs", &session, "")
            .map(|r| r.status)
            .ok(),
        Some(401),
        "the session outlived logout"
    );
    // Behind a TLS proxy the cookie is Secure; it always has an expiry.
    let origin = format!("http://{address}");
    let body = format!("token={TOKEN}");
    let proxied = request(
        address,
        "POST",
        "/login",
        &[("origin", origin.as_str()), ("x-forwarded-proto", "https")],
        &body,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let set = proxied.header("set-cookie").unwrap_or_default();
    assert!(
        set.contains("; Secure") && set.contains("Max-Age="),
        "{set}"
    );
    // The notice is chosen from fixed texts: the query's text is never shown.
    let page = with_token(
        address,
        "GET",
        "/jobs/job-0?done=FAKE-all-jobs-succeeded",
        &[],
    );
    assert!(
        !page.body.contains("FAKE-all-jobs-succeeded"),
        "echoed notice"
    );
    // An unknown job: 404, nothing paused.
    assert_eq!(
        with_token(address, "POST", "/jobs/job-O/pause", &[]).status,
        404
    );
    assert_eq!(cli.json(&["paused", "job-O", "--json"])["paused"], false);
    assert_eq!(
        with_token(address, "GET", "/api/jobs/job-O/history", &[]).status,
        404,
        "the API's history of an unknown job"
    );
    assert_eq!(
        with_token(address, "GET", "/api/jobs/job-0/history", &[]).status,
        200
    );
    // A note over 4 kB: refused.
    let long = format!("note={}", "n".repeat(5000));
    let note = request(
        address,
        "POST",
        "/jobs/job-0/pause",
        &[
            ("authorization", bearer().as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &long,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(note.status, 400, "{note:?}");
    // Failed logins: 401 a few times, then 429 for that client.
    let guesses: Vec<u16> = (0..7)
        .map(|_| {
            request(
                address,
                "POST",
                "/login",
                &[("origin", origin.as_str())],
                "token=guess",
            )
            .map(|r| r.status)
            .unwrap_or(0)
        })
        .collect();
    assert_eq!(guesses[0], 401, "{guesses:?}");
    assert_eq!(guesses[6], 429, "{guesses:?}");
    // The API is no faster a way to guess: a throttled client's bearer is not even compared.
    assert_eq!(
        with_token(address, "GET", "/api/jobs", &[]).status,
        429,
        "bearer requests of a client that failed too often"
    );
    // And wrong bearer tokens count as failed logins (a dashboard of its own: a fresh count).
    let guarded = DashboardProcess::start(FOURIT, &url, namespace, &["--token", TOKEN]);
    let wrong = "Bearer a-wrong-token-of-24-chars";
    let bearers: Vec<u16> = (0..7)
        .map(|_| {
            request(
                &guarded.address,
                "GET",
                "/api/jobs",
                &[("authorization", wrong)],
                "",
            )
            .map(|r| r.status)
            .unwrap_or(0)
        })
        .collect();
    assert_eq!(bearers[0], 401, "{bearers:?}");
    assert_eq!(bearers[6], 429, "{bearers:?}");
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;
}
