//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! over WebDriver with fantoccini) on a live fleet of real worker processes and a real
//! `redis-server`: the token is asked for, the jobs and their outcomes appear, a failed run's
//! error text shows as text, the pause button pauses the job fleet-wide (in the coordinator
//! and in the workers' own records) and resume resumes it, trigger runs it once. A screenshot
//! of the jobs page is written to `target/dashboard.png` (the one in docs/ was taken so).
//! A hostile member's texts (job name, error, node id, app version) and a pasted pause note
//! and requester show as text on every page, escaped, with nothing injected and no script
//! run; names that could impersonate are refused by the worker before they reach a page.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use fourit_tests::RedisServer;
use fourit_tests::cli::Cli;
use fourit_tests::dashboard::DashboardProcess;
use fourit_tests::faults::{Fleet, Line, distinct_ticks, now_ms};
use fourit_tests::hostile::{self, escaped};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const FOURIT: &str = env!("CARGO_BIN_EXE_fourit-for-tests");
const TOKEN: &str = "browser-token-of-the-tests";

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("a free port: {e}"));
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("chromedriver (Debian's chromium-driver; ./test installs it): {e}")
        });
    Driver { child, port }
}

async fn connect(driver: &Driver, profile: &std::path::Path) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_string(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1400,800",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{}", driver.port);
    // chromedriver takes a moment to listen: the connection attempt is the event.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match ClientBuilder::rustls()
            .map(|mut builder| {
                builder.capabilities(caps.clone());
                builder
            })
            .unwrap_or_else(|e| panic!("webdriver client: {e}"))
            .connect(&url)
            .await
        {
            Ok(client) => return client,
            Err(err) if tokio::time::Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("connecting to chromedriver: {err}"),
        }
    }
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("{css} text: {e}"))
}

/// Clicks the button `id`, finding it again if the page refreshed itself between the find and
/// the click (a stale element); any other error fails the test.
async fn click_button(client: &Client, id: &str) {
    for _ in 0..5 {
        let button = client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        match button.click().await {
            Ok(()) => return,
            Err(e) if e.to_string().contains("stale element") => continue,
            Err(e) => panic!("{id} click: {e}"),
        }
    }
    panic!("{id}: the page kept replacing the button");
}

/// Waits for the page the last click led to: its notice says `needle`.
async fn wait_notice(client: &Client, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(element) = client.find(Locator::Css(".notice")).await
            && let Ok(text) = element.text().await
            && text.contains(needle)
        {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no notice saying {needle:?}"
        );
        // The browser loads the answer to the form; the page is polled for it.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_sees_and_steers_a_live_fleet() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "browser";
    let mut fleet = Fleet::new(WORKER);
    for node in ["b-a", "b-b"] {
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
    let driver = start_driver();
    let profile = std::env::temp_dir().join(format!("fourit-chromium-{}", std::process::id()));
    let client = connect(&driver, &profile).await;

    // The token is asked for first.
    client
        .goto(&dashboard.url("/"))
        .await
        .unwrap_or_else(|e| panic!("goto: {e}"));
    let at = client.current_url().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(at.path().ends_with("/login"), "{at}");
    client
        .find(Locator::Id("token"))
        .await
        .unwrap_or_else(|e| panic!("token field: {e}"))
        .send_keys(TOKEN)
        .await
        .unwrap_or_else(|e| panic!("typing: {e}"));
    client
        .find(Locator::Id("login"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The jobs, their last outcomes, the error text as text (no script ran: no alert).
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("table.jobs"))
        .await
        .unwrap_or_else(|e| panic!("the jobs page after login: {e}"));
    let table = text_of(&client, "table.jobs").await;
    assert!(
        table.contains("job-0") && table.contains("fails-html"),
        "{table}"
    );
    assert!(
        table.contains("succeeded") && table.contains("failed"),
        "{table}"
    );
    let error = text_of(&client, "tr[data-job='fails-html'] .error").await;
    assert_eq!(error, "<script>alert(1)</script>");
    assert!(
        client.get_alert_text().await.is_err(),
        "an alert opened: the error text ran"
    );
    let png = client
        .screenshot()
        .await
        .unwrap_or_else(|e| panic!("screenshot: {e}"));
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, png).unwrap_or_else(|e| panic!("writing {}: {e}", shot.display()));

    // Pause from the job's page: fleet-wide, in the coordinator and in the workers' runs.
    client
        .goto(&dashboard.url("/jobs/job-0"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .find(Locator::Id("note"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .send_keys("from the browser")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .find(Locator::Id("pause"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wait_notice(&client, "paused fleet-wide").await;
    let paused_at = now_ms();
    let cli = Cli::new(FOURIT, &url, namespace);
    let state = cli.json(&["paused", "job-0", "--json"]);
    assert_eq!(state["paused"], true, "{state}");
    assert_eq!(state["note"], "from the browser");
    fleet
        .wait_until(
            Duration::from_secs(30),
            "3 ticks of fails-html while job-0 is paused",
            |events| distinct_ticks(events, "fails-html", paused_at + 1_000, None) >= 3,
        )
        .await;
    assert_eq!(
        distinct_ticks(fleet.events(), "job-0", paused_at + 1_000, None),
        0,
        "job-0 ran while paused"
    );
    assert!(text_of(&client, "h1").await.contains("paused"));

    // Resume: it runs again.
    click_button(&client, "resume").await;
    wait_notice(&client, "resumed").await;
    let resumed_at = now_ms();
    fleet
        .wait_until(Duration::from_secs(30), "job-0 after resume", |events| {
            distinct_ticks(events, "job-0", resumed_at, None) >= 2
        })
        .await;

    // Trigger: one manual run.
    click_button(&client, "trigger").await;
    let manual = |events: &[fourit_tests::faults::Event]| {
        events
            .iter()
            .filter(|e| matches!(&e.line, Line::Other(t) if t.starts_with("manual job-0 ")))
            .count()
    };
    fleet
        .wait_until(Duration::from_secs(30), "the manual run", |events| {
            manual(events) >= 1
        })
        .await;
    // Two more ticks, for a second manual run to show if there were one.
    let settle = now_ms();
    fleet
        .wait_until(Duration::from_secs(30), "2 more ticks", |events| {
            distinct_ticks(events, "job-0", settle, None) >= 2
        })
        .await;
    assert_eq!(manual(fleet.events()), 1, "trigger runs it once");
    wait_notice(&client, "triggered").await;

    let _ = client.close().await;
    let _ = std::fs::remove_dir_all(&profile);
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;
    eprintln!("screenshot: {}", shot.display());
}

/// The `textContent` of every element `css` selects, in document order.
async fn texts(client: &Client, css: &str) -> Vec<String> {
    let found = client
        .execute(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent);",
            vec![serde_json::json!(css)],
        )
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    serde_json::from_value(found).unwrap_or_else(|e| panic!("{css}: {e}"))
}

/// The page at `path` once `ready` is on it, checked as a whole: no element the hostile
/// texts would make if read as markup (their `<svg>`, `<img>`, `<script>`, `<b>`, `<i>`;
/// the chart's own SVG has its label), no alert, no raw control or invisible character.
async fn hostile_page(client: &Client, url: &str, ready: &str) {
    client
        .goto(url)
        .await
        .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(ready))
        .await
        .unwrap_or_else(|e| panic!("{ready} on {url}: {e}"));
    let injected = texts(
        client,
        "img, b, i, script:not([src]), svg:not([aria-label]), [onerror]",
    )
    .await;
    assert!(
        injected.is_empty(),
        "{url}: elements injected: {injected:?}"
    );
    assert!(
        client.get_alert_text().await.is_err(),
        "{url}: an alert opened: a hostile text ran"
    );
    let body = texts(client, "body").await.concat();
    assert!(
        !body.contains(['\u{1b}', '\u{7}', '\r', '\u{202e}', '\u{200b}']),
        "{url}: a control or invisible character shown raw: {body:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_shows_a_hostile_members_text_as_text() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "hostile-browser";
    // Names that could pass for others never reach a page: the worker refuses them at start.
    for (args, code) in [
        (["--node", hostile::BIDI_NODE], "U+200B"),
        (["--extra", "hostile-name"], "U+202E"),
    ] {
        let worker = tokio::process::Command::new(WORKER)
            .args(["--url", url.as_str(), "--namespace", namespace])
            .args(args)
            .kill_on_drop(true)
            .output();
        let refused = tokio::time::timeout(Duration::from_secs(20), worker)
            .await
            .unwrap_or_else(|_| panic!("{args:?}: the worker started instead of refusing"))
            .unwrap_or_else(|e| panic!("starting the worker: {e}"));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && stderr.contains(code),
            "{args:?}: {stderr}"
        );
    }
    let mut fleet = Fleet::new(WORKER);
    hostile::start_member(&mut fleet, &url, namespace, 0).await;
    let cli = Cli::new(FOURIT, &url, namespace);
    let paused = cli.run(&hostile::PAUSE);
    assert!(paused.status.success(), "{paused:?}");
    let dashboard = DashboardProcess::start(FOURIT, &url, namespace, &[]);
    let driver = start_driver();
    let profile = std::env::temp_dir().join(format!("fourit-hostile-{}", std::process::id()));
    let client = connect(&driver, &profile).await;
    let note = format!("{} (by {})", escaped(hostile::NOTE), escaped(hostile::BY));
    let error = escaped(hostile::ERROR);
    let version = escaped(hostile::VERSION);
    let session = async {
        hostile_page(&client, &dashboard.url("/"), "table.jobs tr.job .error").await;
        assert_eq!(
            texts(&client, "tr.job td:first-child").await,
            [hostile::JOB]
        );
        assert_eq!(texts(&client, "tr.job .error").await, [error.as_str()]);
        assert_eq!(texts(&client, "tr.job .note").await, [note.as_str()]);
        let last = texts(&client, "tr.job td.last").await.concat();
        assert!(last.contains(&format!(" on {}", hostile::NODE)), "{last}");

        let page = dashboard.url("/jobs/hostile%3Csvg%3E");
        hostile_page(&client, &page, "table.history tr.entry").await;
        let title = texts(&client, "h1").await.concat();
        assert!(title.starts_with(hostile::JOB), "{title}");
        assert_eq!(texts(&client, "p .note").await, [note.as_str()]);
        let nodes = texts(&client, "tr.entry.failed td:nth-child(3)").await;
        assert!(
            !nodes.is_empty() && nodes.iter().all(|node| node == hostile::NODE),
            "{nodes:?}"
        );
        let details = texts(&client, "tr.entry.failed td.detail").await;
        assert!(details.iter().all(|detail| *detail == error), "{details:?}");

        hostile_page(&client, &dashboard.url("/members"), "tr.member").await;
        assert_eq!(
            texts(&client, "tr.member td:nth-child(1)").await,
            [hostile::NODE]
        );
        assert_eq!(
            texts(&client, "tr.member td:nth-child(4)").await,
            [version.as_str()]
        );
    };
    tokio::time::timeout(Duration::from_secs(30), session)
        .await
        .unwrap_or_else(|_| panic!("the browser session took over 30 s"));
    let _ = client.close().await;
    let _ = std::fs::remove_dir_all(&profile);
    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;
}
