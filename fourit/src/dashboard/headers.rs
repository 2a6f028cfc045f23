//! What every answer carries and what every request must name, as one layer for the whole
//! router: the security headers (no framing, no sniffing, nothing from elsewhere, nothing
//! cached), and the `Host` allow-list that keeps a DNS-rebinding page from reading the
//! dashboard through a name that resolves to it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Dashboard;

/// The content security policy of every answer: this origin's own assets only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";

/// Refuses a request whose `Host` is not allowed (421), then adds the security headers to
/// whatever answers it.
pub(super) async fn layer(
    State(dashboard): State<Arc<Dashboard>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    let mut response = if host.is_some_and(|host| dashboard.host_allowed(host)) {
        next.run(request).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "this dashboard does not answer to that host name; start it with --allow-host \
             NAME (Dashboard::allow_host) to serve under another name",
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The host part of a `Host` header (`name`, `name:port`, `[v6]:port`), lower case.
pub(super) fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
        _ => host,
    }
}

/// Allowed without being named: loopback names, and IP literals (a rebinding page always
/// sends its own domain name, never an address).
pub(super) fn allowed_by_default(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::{allowed_by_default, host_name};

    #[test]
    fn only_loopback_names_and_addresses_pass_by_default() {
        for (host, allowed) in [
            ("127.0.0.1:8080", true),
            ("[::1]:8080", true),
            ("localhost:8080", true),
            ("LOCALHOST", true),
            ("10.0.0.7:8080", true),
            ("evil.example:8080", false),
            ("127.0.0.1.evil.example", false),
            ("", false),
        ] {
            assert_eq!(allowed_by_default(&host_name(host)), allowed, "{host}");
        }
    }
}
