//! Building a client: fourit's TCP settings (keepalive probes, `TCP_USER_TIMEOUT`), TLS
//! certificates, one server's client or a cluster's, and what an unusable URL is told.

use std::time::Duration;

use redis::RedisError;

use crate::coordinator::TlsConfig;

/// How long an idle connection waits before TCP keepalive probes start, and between them.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Probes unanswered before the kernel gives the connection up.
const KEEPALIVE_PROBES: u32 = 3;
/// How long sent data may go unacknowledged before the kernel ends the connection (without
/// it, about 15 minutes of retransmissions).
const USER_TIMEOUT: Duration = Duration::from_secs(15);

/// Every connection's TCP settings: keepalive probes find a half-open link even while the
/// connection is idle, and `TCP_USER_TIMEOUT` ends one whose data goes unacknowledged. The
/// call deadlines find a silent link first when calls are made; these find it in between.
pub(super) fn tcp_settings(base: &redis::io::tcp::TcpSettings) -> redis::io::tcp::TcpSettings {
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
    let keepalive = keepalive
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
    let _ = (KEEPALIVE_INTERVAL, KEEPALIVE_PROBES);
    let settings = base.clone().set_keepalive(keepalive);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let settings = settings.set_user_timeout(USER_TIMEOUT);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = USER_TIMEOUT;
    settings
}

/// A client for `url`, with the certificates of `tls` when the `tls` feature is on, and
/// fourit's [`tcp_settings`].
pub(super) fn open_client(url: &str, tls: Option<&TlsConfig>) -> Result<redis::Client, RedisError> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let settings = tcp_settings(info.tcp_settings());
    let info = info.set_tcp_settings(settings);
    #[cfg(feature = "tls")]
    if let Some(tls) = tls.filter(|tls| !tls.is_empty()) {
        return redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: tls.client_identity.as_ref().map(|(cert, key)| {
                    redis::ClientTlsConfig {
                        client_cert: cert.clone(),
                        client_key: key.clone(),
                    }
                }),
                root_cert: tls.root_certificates.clone(),
            },
        );
    }
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    redis::Client::open(info)
}

pub(super) fn invalid_url_reason(url: &str, err: &RedisError) -> String {
    if url.starts_with("rediss") && !cfg!(feature = "tls") {
        return "rediss:// (TLS) needs fourit's `tls` cargo feature: \
                fourit = { version = \"...\", features = [\"tls\"] }"
            .to_string();
    }
    // The client library's text may quote the URL or a piece of it: say what is wrong
    // without any secret the URL holds.
    match err.detail() {
        Some(detail) if !detail.contains(url) => {
            format!("{} ({})", err.category(), crate::redact::scrub(detail, url))
        }
        _ => err.category().to_string(),
    }
}

#[cfg(feature = "tls")]
pub(super) fn install_crypto_provider() {
    // Installing twice is refused, harmlessly: the first provider stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A cluster client for the seed `nodes`, with the same time limits as a single server's
/// connection (the client follows `MOVED`/`ASK` and failovers by itself).
pub(super) fn open_cluster(
    nodes: &[String],
    tls: Option<&TlsConfig>,
) -> Result<redis::cluster::ClusterClient, RedisError> {
    let builder = redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2))
        .tcp_settings(tcp_settings(&redis::io::tcp::TcpSettings::default()));
    #[cfg(feature = "tls")]
    let builder = match tls.filter(|tls| !tls.is_empty()) {
        Some(tls) => builder.certs(redis::TlsCertificates {
            client_tls: tls
                .client_identity
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: tls.root_certificates.clone(),
        }),
        None => builder,
    };
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    builder.build()
}
