//! Who may read and who may act, as one layer for the whole router: the token (a bearer
//! header, or a session the login page opens), sessions with an expiry that logout ends,
//! failed logins slowed per client, and actions only from this dashboard's own pages.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::{Dashboard, forms, refuse, view};

/// Shortest token accepted: 16 characters (about 96 bits from a random generator's
/// base64); shorter ones can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// The cookie the login page sets: a session id, never the token.
const COOKIE: &str = "fourit_session";
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most (the oldest go first).
const MAX_SESSIONS: usize = 1024;
/// Failed logins a client may make per [`FAILURE_WINDOW`] before it is answered 429.
const MAX_FAILURES: u32 = 5;
/// How many clients' failures are counted at once (the map's bound).
const MAX_FAILING_CLIENTS: usize = 4096;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Whether `token` may protect a dashboard: not empty, at least [`MIN_TOKEN_LEN`]
/// characters. The reason, if not.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.trim().is_empty() {
        return Err(
            "the dashboard token is empty (an unset variable?): every page would be \
                    open; set a random token of 16 characters or more"
                .to_string(),
        );
    }
    let length = token.trim().chars().count();
    if length < MIN_TOKEN_LEN {
        return Err(format!(
            "the dashboard token is {length} characters long; it must be at least \
             {MIN_TOKEN_LEN} (e.g. `openssl rand -base64 24`)"
        ));
    }
    Ok(())
}

/// The open sessions and the recent failed logins, per client.
#[derive(Default)]
pub(super) struct Sessions {
    open: Mutex<HashMap<String, Instant>>,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Session ids are credentials: never shown.
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

impl Sessions {
    /// A new session's id (32 random bytes from the OS, hex), or `None` if the OS gave none.
    fn open(&self) -> Option<String> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut open = self.open.lock().ok()?;
        let now = Instant::now();
        open.retain(|_, expires| *expires > now);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open
                .iter()
                .min_by_key(|(_, expires)| **expires)
                .map(|(id, _)| id.clone())
        {
            open.remove(&oldest);
        }
        open.insert(id.clone(), now + SESSION_TTL);
        Some(id)
    }

    /// Whether `id` is an open, unexpired session.
    fn valid(&self, id: &str) -> bool {
        let Ok(open) = self.open.lock() else {
            return false;
        };
        // A map lookup by a secret: its timing tells nothing useful about other ids, each
        // 256 random bits.
        open.get(id)
            .is_some_and(|expires| *expires > Instant::now())
    }

    fn close(&self, id: &str) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(id);
        }
    }

    /// Whether `client` failed too often lately.
    fn throttled(&self, client: &str) -> bool {
        let Ok(failures) = self.failures.lock() else {
            return true;
        };
        match failures.get(client) {
            Some((since, count)) => since.elapsed() < FAILURE_WINDOW && *count >= MAX_FAILURES,
            // So many clients failing at once is an attack from many addresses: nobody new
            // may guess until the window passes.
            None => failures.len() >= MAX_FAILING_CLIENTS,
        }
    }

    fn failed(&self, client: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            if failures.len() >= MAX_FAILING_CLIENTS {
                failures.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
            }
            // Still full of clients failing now: the newcomer is not counted, and
            // `throttled` refuses it (see there), so guessing from many addresses gains
            // nothing and the map stays bounded.
            if failures.len() >= MAX_FAILING_CLIENTS && !failures.contains_key(client) {
                return;
            }
            let entry = failures
                .entry(client.to_string())
                .or_insert((Instant::now(), 0));
            if entry.0.elapsed() >= FAILURE_WINDOW {
                *entry = (Instant::now(), 0);
            }
            entry.1 += 1;
        }
    }
}

/// How a request proved it may read or act.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Credential {
    /// `Authorization: Bearer ...`: a script, never sent by a browser on its own.
    Bearer,
    /// The session cookie: a browser, which another site could make send it.
    Session,
}

/// Compares two secrets in time independent of where they differ; an empty token matches
/// nothing.
fn same_secret(given: &str, token: &str) -> bool {
    let (given, token) = (given.as_bytes(), token.as_bytes());
    !token.is_empty()
        && given.len() == token.len()
        && given
            .iter()
            .zip(token)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The request came from a page of this origin: its `Origin` names the host it was sent to,
/// or, without `Origin`, the browser says `Sec-Fetch-Site: same-origin`.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = header_text(headers, header::HOST);
    match header_text(headers, header::ORIGIN) {
        Some(origin) => {
            let origin_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            // Host names are case-blind. (Behind a reverse proxy, the proxy must pass the
            // browser's `Host` on: README, "Exposing the dashboard".)
            matches!((origin_host, host), (Some(origin), Some(host)) if origin.eq_ignore_ascii_case(host))
        }
        None => {
            header_text(headers, header::HeaderName::from_static("sec-fetch-site"))
                == Some("same-origin")
        }
    }
}

impl Dashboard {
    /// How the request carries the token, if it does.
    fn credential(&self, headers: &HeaderMap) -> Option<Credential> {
        let token = self.token.as_deref()?;
        let bearer = header_text(headers, header::AUTHORIZATION)
            .and_then(|value| value.strip_prefix("Bearer "));
        if bearer.is_some_and(|given| same_secret(given, token)) {
            return Some(Credential::Bearer);
        }
        session_cookie(headers)
            .filter(|id| self.sessions.valid(id))
            .map(|_| Credential::Session)
    }
}

/// Which door a request knocks at.
enum Door {
    /// The login page, logout and the assets: open to all.
    Open,
    /// A page or the API: reading.
    Read { api: bool },
    /// A `POST` that changes the fleet.
    Act,
}

fn door(request: &Request) -> Door {
    let path = request.uri().path();
    if path == "/login" || path == "/logout" || path.starts_with("/assets/") {
        Door::Open
    } else if request.method() == Method::POST {
        Door::Act
    } else {
        Door::Read {
            api: path.starts_with("/api/"),
        }
    }
}

/// The layer: reads need the token when one is set (pages send to the login page, the API
/// answers 401); actions need actions offered, the token, and with a session, a request
/// from this dashboard's own pages.
pub(super) async fn guard(
    State(dashboard): State<Arc<Dashboard>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    // A wrong bearer token counts as a failed login, so the API is no faster a way to guess.
    let bearer = header_text(headers, header::AUTHORIZATION)
        .is_some_and(|value| value.starts_with("Bearer "));
    if bearer && dashboard.token.is_some() {
        let client = client_of(request.extensions().get::<ConnectInfo<SocketAddr>>());
        if dashboard.sessions.throttled(&client) {
            return too_many();
        }
        if dashboard.credential(headers) != Some(Credential::Bearer) {
            dashboard.sessions.failed(&client);
        }
    }
    match door(&request) {
        Door::Open => {}
        Door::Read { api } => {
            if dashboard.token.is_some() && dashboard.credential(headers).is_none() {
                return if api {
                    refuse(StatusCode::UNAUTHORIZED, "the dashboard token is needed")
                } else {
                    Redirect::to("/login").into_response()
                };
            }
        }
        Door::Act => {
            if !dashboard.actions() {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "this dashboard is read-only: start it with a token and without \
                     --read-only to act",
                );
            }
            match dashboard.credential(headers) {
                Some(Credential::Bearer) => {}
                Some(Credential::Session) if same_origin(headers) => {}
                Some(Credential::Session) => {
                    return refuse(
                        StatusCode::FORBIDDEN,
                        "cross-site request refused: actions come from this dashboard's own \
                         pages",
                    );
                }
                None => return refuse(StatusCode::UNAUTHORIZED, "the dashboard token is needed"),
            }
        }
    }
    next.run(request).await
}

/// Who a client is, for counting its failed logins: its address when the server says it
/// (an IPv6 address by its /64, which one host can rotate within).
fn client_of(connect: Option<&ConnectInfo<SocketAddr>>) -> String {
    match connect.map(|info| info.0.ip()) {
        Some(std::net::IpAddr::V6(v6)) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
        Some(ip) => ip.to_string(),
        None => "unknown".to_string(),
    }
}

/// `429`, with when to try again.
fn too_many() -> Response {
    let mut response = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed logins: wait a minute",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    response
}

pub(super) async fn login_page(State(dashboard): State<Arc<Dashboard>>) -> Response {
    super::page(view::login(&dashboard, false))
}

pub(super) async fn login(
    State(dashboard): State<Arc<Dashboard>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let connect = extensions.get::<ConnectInfo<SocketAddr>>();
    let Some(token) = dashboard.token.as_deref() else {
        return Redirect::to("/").into_response();
    };
    if !same_origin(&headers) {
        return refuse(StatusCode::FORBIDDEN, "cross-site login refused");
    }
    let client = client_of(connect);
    if dashboard.sessions.throttled(&client) {
        return too_many();
    }
    let given = forms::form_field(&body, "token").unwrap_or_default();
    if !same_secret(given.trim(), token) {
        dashboard.sessions.failed(&client);
        let mut response = super::page(view::login(&dashboard, true));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    }
    let Some(id) = dashboard.sessions.open() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no session could be opened (the system gave no random bytes)",
        );
    };
    let secure = dashboard.secure_cookie
        || header_text(
            &headers,
            header::HeaderName::from_static("x-forwarded-proto"),
        ) == Some("https");
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub(super) async fn logout(
    State(dashboard): State<Arc<Dashboard>>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = session_cookie(&headers) {
        dashboard.sessions.close(id);
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("fourit_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::{check_token, same_secret};

    #[test]
    fn an_empty_or_short_token_is_refused_and_an_empty_one_matches_nothing() {
        assert!(check_token("").is_err());
        assert!(check_token("   ").is_err());
        assert!(check_token("short-token").is_err());
        assert!(check_token("a-long-random-token").is_ok());
        assert!(!same_secret("", ""));
        assert!(same_secret("a-long-random-token", "a-long-random-token"));
        assert!(!same_secret("a-long-random-tokeN", "a-long-random-token"));
    }
}
