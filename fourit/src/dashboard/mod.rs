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
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Pages are rendered on the server (askama templates, every value HTML-escaped), with a
//! little hand-written CSS and JS embedded in the binary; nothing is fetched from elsewhere.
//! The page refreshes itself every 2 s. A JSON API answers what the `fourit` command's
//! `--json` prints: `GET /api/jobs`, `GET /api/jobs/<name>/history`, `GET /api/members`.
//!
//! Security: with a [`token`](Dashboard::token), every page and the API need it (a bearer
//! header, or the cookie the login page sets), and the actions (always `POST`) need it too
//! and, with the cookie, a same-origin request (`Origin`, or `Sec-Fetch-Site`), so another
//! site cannot act through a logged-in browser. [`read_only`](Dashboard::read_only) opens
//! every page and the API without a token and offers no action. Without a token the
//! dashboard is read-only: actions need one.

pub mod json;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::admin::FleetAdmin;
use crate::error::Error;

/// How many history entries the job page and the API show.
pub const HISTORY_SHOWN: usize = 100;

/// The cookie the login page sets.
const COOKIE: &str = "fourit_token";

/// A dashboard of one fleet; [`router`](Self::router) makes the axum app.
#[derive(Clone, Debug)]
pub struct Dashboard {
    admin: FleetAdmin,
    token: Option<String>,
    read_only: bool,
    fleet: String,
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
        }
    }

    /// The token every page, the API and every action need (bearer header or login cookie).
    pub fn token(mut self, token: &str) -> Dashboard {
        self.token = Some(token.to_string()).filter(|token| !token.is_empty());
        self
    }

    /// Every page and the API readable without a token; no action offered or accepted.
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

    /// Whether actions are offered: a token is set and the dashboard is not read-only.
    pub fn actions(&self) -> bool {
        self.token.is_some() && !self.read_only
    }

    /// The axum app: pages, API, actions and assets.
    pub fn router(self) -> Router {
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
            .route("/login", get(login_page).post(login))
            .route("/logout", post(logout))
            .route("/assets/style.css", get(style))
            .route("/assets/app.js", get(script))
            .with_state(Arc::new(self))
    }

    /// Whether the request may read: read-only or no token, or the token given.
    fn may_read(&self, headers: &HeaderMap) -> bool {
        self.read_only || self.token.is_none() || self.credential(headers).is_some()
    }

    /// How the request carries the token, if it does.
    fn credential(&self, headers: &HeaderMap) -> Option<Credential> {
        let token = self.token.as_deref()?;
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if bearer.is_some_and(|given| same_secret(given, token)) {
            return Some(Credential::Bearer);
        }
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value);
        cookie
            .filter(|given| same_secret(given, token))
            .map(|_| Credential::Cookie)
    }

    /// Whether the request may act: actions offered, the token given, and, with the cookie,
    /// the request comes from a page of this dashboard. Answers the refusal, if refused.
    fn may_act(&self, headers: &HeaderMap) -> Option<Response> {
        if !self.actions() {
            return Some(refuse(
                StatusCode::FORBIDDEN,
                "this dashboard is read-only: start it with a token to act",
            ));
        }
        match self.credential(headers) {
            Some(Credential::Bearer) => None,
            Some(Credential::Cookie) if same_origin(headers) => None,
            Some(Credential::Cookie) => Some(refuse(
                StatusCode::FORBIDDEN,
                "cross-site request refused: actions come from this dashboard's own pages",
            )),
            None => Some(refuse(
                StatusCode::UNAUTHORIZED,
                "the dashboard token is needed",
            )),
        }
    }
}

/// How a request proved it has the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Credential {
    /// `Authorization: Bearer ...`: a script, never sent by a browser on its own.
    Bearer,
    /// The login cookie: a browser, which another site could make send it.
    Cookie,
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(given: &str, token: &str) -> bool {
    let (given, token) = (given.as_bytes(), token.as_bytes());
    given.len() == token.len()
        && given
            .iter()
            .zip(token)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// The request came from a page of this origin: its `Origin` names the host it was sent to,
/// or, without `Origin`, the browser says `Sec-Fetch-Site: same-origin`.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    let host = text(header::HOST);
    match text(header::ORIGIN) {
        Some(origin) => {
            let origin_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            origin_host.is_some() && origin_host == host.as_deref()
        }
        None => {
            text(header::HeaderName::from_static("sec-fetch-site")).as_deref()
                == Some("same-origin")
        }
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

/// The headers every page carries: nothing from elsewhere, no framing, no sniffing.
fn page(html: String) -> Response {
    let mut response = (StatusCode::OK, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Reads need the token (unless read-only): pages send to the login page.
fn login_first(dashboard: &Dashboard, headers: &HeaderMap) -> Option<Response> {
    (!dashboard.may_read(headers)).then(|| Redirect::to("/login").into_response())
}

fn json_response(value: serde_json::Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        value.to_string(),
    )
        .into_response()
}

async fn jobs_page(State(dashboard): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    if let Some(login) = login_first(&dashboard, &headers) {
        return login;
    }
    match view::jobs(&dashboard).await {
        Ok(html) => page(html),
        Err(err) => failed(err),
    }
}

#[derive(Debug, Deserialize)]
struct Notice {
    /// What the last action did, shown once on the job page.
    done: Option<String>,
}

async fn job_page(
    State(dashboard): State<Arc<Dashboard>>,
    Path(name): Path<String>,
    Query(notice): Query<Notice>,
    headers: HeaderMap,
) -> Response {
    if let Some(login) = login_first(&dashboard, &headers) {
        return login;
    }
    match view::job(&dashboard, &name, notice.done.as_deref()).await {
        Ok(html) => page(html),
        Err(err) => failed(err),
    }
}

async fn members_page(State(dashboard): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    if let Some(login) = login_first(&dashboard, &headers) {
        return login;
    }
    match view::members(&dashboard).await {
        Ok(html) => page(html),
        Err(err) => failed(err),
    }
}

/// The value of `name` in a form body (`application/x-www-form-urlencoded`), decoded. The
/// body is read as bytes, so a request is checked for the token before its form is looked at.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_form(key) == name).then(|| decode_form(value))
    })
}

/// `+` as space and `%XX` as its byte; a malformed escape is kept as it is.
fn decode_form(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(index + 1..index + 3)
                    .and_then(|pair| std::str::from_utf8(pair).ok())
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// After an action, back to the job's page, saying what was done.
fn done(name: &str, what: &str) -> Response {
    Redirect::to(&format!(
        "/jobs/{}?done={}",
        view::encode(name),
        view::encode(what)
    ))
    .into_response()
}

async fn pause(
    State(dashboard): State<Arc<Dashboard>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = dashboard.may_act(&headers) {
        return refused;
    }
    let note = form_field(&body, "note");
    let note = note.as_deref().map(str::trim).filter(|n| !n.is_empty());
    match dashboard.admin.pause(&name, note).await {
        Ok(()) => done(&name, "paused fleet-wide from the next tick"),
        Err(err) => failed(err),
    }
}

async fn resume(
    State(dashboard): State<Arc<Dashboard>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = dashboard.may_act(&headers) {
        return refused;
    }
    match dashboard.admin.resume(&name).await {
        Ok(Some(pause)) => done(
            &name,
            &format!(
                "resumed from the next tick ({} ticks were paused)",
                pause.ticks
            ),
        ),
        Ok(None) => done(&name, "it was not paused"),
        Err(err) => failed(err),
    }
}

async fn trigger(
    State(dashboard): State<Arc<Dashboard>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = dashboard.may_act(&headers) {
        return refused;
    }
    let force = form_field(&body, "force").is_some();
    match dashboard.admin.trigger(&name, force).await {
        Ok(request) => done(
            &name,
            &format!(
                "triggered (request {}): a live member runs it now",
                request.id
            ),
        ),
        Err(err) => failed(err),
    }
}

async fn api_jobs(State(dashboard): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    if !dashboard.may_read(&headers) {
        return refuse(StatusCode::UNAUTHORIZED, "the dashboard token is needed");
    }
    match dashboard.admin.status().await {
        Ok(jobs) => json_response(json::jobs(&jobs)),
        Err(err) => failed(err),
    }
}

async fn api_history(
    State(dashboard): State<Arc<Dashboard>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !dashboard.may_read(&headers) {
        return refuse(StatusCode::UNAUTHORIZED, "the dashboard token is needed");
    }
    match dashboard.admin.history(&name, HISTORY_SHOWN).await {
        Ok(entries) => json_response(json::history(&entries)),
        Err(err) => failed(err),
    }
}

async fn api_members(State(dashboard): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    if !dashboard.may_read(&headers) {
        return refuse(StatusCode::UNAUTHORIZED, "the dashboard token is needed");
    }
    match dashboard.admin.member_status().await {
        Ok(members) => json_response(json::members(&members)),
        Err(err) => failed(err),
    }
}

async fn login_page(State(dashboard): State<Arc<Dashboard>>) -> Response {
    page(view::login(&dashboard, false))
}

async fn login(
    State(dashboard): State<Arc<Dashboard>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = dashboard.token.as_deref() else {
        return Redirect::to("/").into_response();
    };
    if !same_origin(&headers) {
        return refuse(StatusCode::FORBIDDEN, "cross-site login refused");
    }
    let given = form_field(&body, "token").unwrap_or_default();
    if !same_secret(given.trim(), token) {
        let mut response = page(view::login(&dashboard, true));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("fourit_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
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
