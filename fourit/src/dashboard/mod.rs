//! The web dashboard (the `dashboard` feature): the fleet's jobs, one job's history with a
//! chart, the members, and pause / resume / trigger, as an axum [`Router`] a service can
//! mount, or serve on its own (`fourit dashboard`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let admin = fourit::admin::connect("redis://127.0.0.1:6379", "fourit").await?;
//! let app = fourit::dashboard::Dashboard::new(admin)
//!     .token("a-long-random-token")
//!     .router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let limits = fourit::dashboard::Limits::default();
//! fourit::dashboard::serve(listener, app, limits, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await;
//! # Ok(())
//! # }
//! ```
//!
//! Pages are rendered on the server (askama templates, every value HTML-escaped), with a
//! little hand-written CSS and JS embedded in the binary; nothing is fetched from elsewhere.
//! The page refreshes itself every 2 s. A JSON API answers what the `fourit` command's
//! `--json` prints: `GET /api/jobs`, `GET /api/jobs/<name>/history`, `GET /api/members`.
//!
//! Security, as two layers over the whole router: with a [`token`](Dashboard::token), every
//! page and the API need it (a bearer header, or the session the login page opens: a random
//! id with an 8 h expiry that logout ends, `Secure` behind TLS), and the actions (always
//! `POST`) need it too and, with a session, a same-origin request (`Origin`, or
//! `Sec-Fetch-Site`), so another site cannot act through a logged-in browser. Failed logins
//! are answered 429 after 5 a minute per client. [`read_only`](Dashboard::read_only) offers
//! no action; with a token its pages still need it. Without a token every page and the API
//! are open and no action is offered. A request must name an allowed host (loopback names
//! and IP addresses, and [`allow_host`](Dashboard::allow_host)'s), so a DNS-rebinding page
//! cannot read the dashboard; every answer carries `nosniff`, a strict CSP and `no-store`.
//! Served by [`serve`], a request's head must arrive within 10 s and at most 256
//! connections (32 per client) are open at once ([`Limits`]).

mod auth;
mod forms;
mod headers;
pub mod json;
mod server;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

pub use self::auth::{MIN_TOKEN_LEN, check_token};
pub use self::server::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    Limits, serve,
};
use crate::admin::FleetAdmin;
use crate::error::Error;

/// How many history entries the job page and the API show.
pub const HISTORY_SHOWN: usize = 100;

/// A dashboard of one fleet; [`router`](Self::router) makes the axum app.
#[derive(Clone)]
pub struct Dashboard {
    admin: FleetAdmin,
    token: Option<String>,
    read_only: bool,
    fleet: String,
    allowed_hosts: Vec<String>,
    secure_cookie: bool,
    sessions: Arc<auth::Sessions>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: whether there is one, never what it is.
        f.debug_struct("Dashboard")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("read_only", &self.read_only)
            .field("fleet", &self.fleet)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("secure_cookie", &self.secure_cookie)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// The dashboard of the fleet `admin` steers. Actions are recorded as done by the
    /// admin's operator ([`FleetAdmin::operator`]).
    pub fn new(admin: FleetAdmin) -> Dashboard {
        Dashboard {
            admin,
            token: None,
            read_only: false,
            fleet: String::new(),
            allowed_hosts: Vec::new(),
            secure_cookie: false,
            sessions: Arc::default(),
        }
    }

    /// The token every page, the API and every action need (bearer header or login
    /// session), without the spaces or newline at its ends (a token file's, a variable's),
    /// as the login form reads what is typed. Check it with [`check_token`] first: an empty
    /// token is kept as given and then matches nothing, so such a dashboard opens to nobody
    /// rather than to everybody.
    pub fn token(mut self, token: &str) -> Dashboard {
        self.token = Some(token.trim().to_string());
        self
    }

    /// No action offered or accepted; with a token, every page still needs it.
    pub fn read_only(mut self, read_only: bool) -> Dashboard {
        self.read_only = read_only;
        self
    }

    /// How the pages name the fleet (e.g. the coordinator URL, redacted, and namespace).
    /// Pass it through [`crate::redact_url`] first: it is shown as given.
    pub fn fleet_name(mut self, name: &str) -> Dashboard {
        self.fleet = name.to_string();
        self
    }

    /// Answers requests for `host` too (a name, without port), besides loopback names and
    /// IP addresses: the name a proxy or the operators reach it under.
    pub fn allow_host(mut self, host: &str) -> Dashboard {
        self.allowed_hosts.push(headers::host_name(host));
        self
    }

    /// Marks the session cookie `Secure` (served over TLS); it is also marked so when a
    /// proxy in front says `X-Forwarded-Proto: https`.
    pub fn secure_cookie(mut self, secure: bool) -> Dashboard {
        self.secure_cookie = secure;
        self
    }

    /// Whether actions are offered: a token is set and the dashboard is not read-only.
    pub fn actions(&self) -> bool {
        self.token.is_some() && !self.read_only
    }

    /// Whether every page and the API need the token.
    pub fn locked(&self) -> bool {
        self.token.is_some()
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = headers::host_name(host);
        headers::allowed_by_default(&name) || self.allowed_hosts.contains(&name)
    }

    /// The axum app: pages, API, actions and assets, behind the auth and header layers.
    /// Serve it with [`serve`] (a header read timeout and connection caps), or mounted in
    /// an app of yours served with `into_make_service_with_connect_info::<SocketAddr>()`:
    /// failed logins are counted per client only when requests carry the client's address.
    pub fn router(self) -> Router {
        let state = Arc::new(self);
        Router::new()
            .route("/", get(jobs_page))
            .route("/jobs/{name}", get(job_page))
            .route("/jobs/{name}/pause", post(pause))
            .route("/jobs/{name}/resume", post(resume))
            .route("/jobs/{name}/trigger", post(trigger))
            .route("/members", get(members_page))
            .route("/api/jobs", get(api_jobs))
            .route("/api/jobs/{name}/history", get(api_history))
            .route("/api/members", get(api_members))
            .route("/login", get(auth::login_page).post(auth::login))
            .route("/logout", post(auth::logout))
            .route("/assets/style.css", get(style))
            .route("/assets/app.js", get(script))
            .layer(middleware::from_fn_with_state(state.clone(), auth::guard))
            .layer(middleware::from_fn_with_state(
                state.clone(),
                headers::layer,
            ))
            .with_state(state)
    }
}

/// A plain-text refusal.
fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_string(),
    )
        .into_response()
}

/// An error of the coordinator as a page: 404 for an unknown job, 503 otherwise (the text
/// carries redacted URLs only).
fn failed(err: Error) -> Response {
    let status = match err {
        Error::NoSuchJob { .. } => StatusCode::NOT_FOUND,
        Error::Refused { .. } | Error::InvalidOption { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    refuse(status, &err.to_string())
}

/// A page (the header layer adds the security headers).
fn page(html: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn json_response(value: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn jobs_page(State(dashboard): State<Arc<Dashboard>>) -> Response {
    match view::jobs(&dashboard).await {
        Ok(html) => page(html),
        Err(err) => failed(err),
    }
}

/// What the last action did, shown once on the job page: one of fixed texts, chosen by a
/// word (`?done=paused`), never the query's own text.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Done {
    Paused,
    Resumed,
    NotPaused,
    Triggered,
}

impl Done {
    fn text(self) -> &'static str {
        match self {
            Done::Paused => "paused fleet-wide from the next tick",
            Done::Resumed => "resumed from the next tick",
            Done::NotPaused => "it was not paused",
            Done::Triggered => "triggered: a live member runs it now",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Done::Paused => "paused",
            Done::Resumed => "resumed",
            Done::NotPaused => "not-paused",
            Done::Triggered => "triggered",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Notice {
    /// A word naming a fixed text; anything else shows nothing.
    done: Option<String>,
}

async fn job_page(
    State(dashboard): State<Arc<Dashboard>>,
    Path(name): Path<String>,
    Query(notice): Query<Notice>,
) -> Response {
    let done = notice.done.as_deref().and_then(|word| {
        [
            Done::Paused,
            Done::Resumed,
            Done::NotPaused,
            Done::Triggered,
        ]
        .into_iter()
        .find(|done| done.word() == word)
    });
    match view::job(&dashboard, &name, done.map(Done::text)).await {
        Ok(html) => page(html),
        Err(err) => failed(err),
    }
}

async fn members_page(State(dashboard): State<Arc<Dashboard>>) -> Response {
    match view::members(&dashboard).await {
        Ok(html) => page(html),
        Err(err) => failed(err),
    }
}

/// After an action, back to the job's page, saying what was done.
fn done(name: &str, what: Done) -> Response {
    Redirect::to(&format!(
        "/jobs/{}?done={}",
        view::encode(name),
        what.word()
    ))
    .into_response()
}

async fn pause(
    State(dashboard): State<Arc<Dashboard>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let note = forms::form_field(&body, "note");
    let note = note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    match dashboard.admin.pause(&name, note).await {
        Ok(()) => done(&name, Done::Paused),
        Err(err) => failed(err),
    }
}

async fn resume(State(dashboard): State<Arc<Dashboard>>, Path(name): Path<String>) -> Response {
    match dashboard.admin.resume(&name).await {
        Ok(Some(_)) => done(&name, Done::Resumed),
        Ok(None) => done(&name, Done::NotPaused),
        Err(err) => failed(err),
    }
}

async fn trigger(
    State(dashboard): State<Arc<Dashboard>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let force = forms::form_field(&body, "force").is_some();
    match dashboard.admin.trigger(&name, force).await {
        Ok(_) => done(&name, Done::Triggered),
        Err(err) => failed(err),
    }
}

async fn api_jobs(State(dashboard): State<Arc<Dashboard>>) -> Response {
    match dashboard.admin.status().await {
        Ok(jobs) => json_response(json::jobs(&jobs)),
        Err(err) => failed(err),
    }
}

async fn api_history(
    State(dashboard): State<Arc<Dashboard>>,
    Path(name): Path<String>,
) -> Response {
    // A job the fleet does not know is a 404, as its page is, not an empty history.
    match dashboard.admin.knows(&name).await {
        Ok(true) => {}
        Ok(false) => return failed(Error::NoSuchJob { job: name }),
        Err(err) => return failed(err),
    }
    match dashboard.admin.history(&name, HISTORY_SHOWN).await {
        Ok(entries) => json_response(json::history(&entries)),
        Err(err) => failed(err),
    }
}

async fn api_members(State(dashboard): State<Arc<Dashboard>>) -> Response {
    match dashboard.admin.member_status().await {
        Ok(members) => json_response(json::members(&members)),
        Err(err) => failed(err),
    }
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/style.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
        .into_response()
}
