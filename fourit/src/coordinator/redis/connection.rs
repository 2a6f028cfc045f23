//! The connection to Redis: the client, a connection manager that is replaced after an
//! authentication failure, TLS, and how the client's errors map to fourit's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind};
use tracing::debug;

use super::{BACKEND, DEADLINE};
use crate::coordinator::TlsConfig;
use crate::error::{CoordinatorError, Error, ErrorKind as Kind};

/// The connection every call goes through, and a way to start it afresh.
///
/// The client library's `ConnectionManager` reconnects after I/O errors, but a reconnection
/// that fails authentication (a restarted Redis whose users are not loaded yet, a password
/// being rotated) leaves it failed for good: every later call gets the same error. So a call
/// failing authentication replaces the manager, at most once a second, in the background.
///
/// Under Sentinel, the primary moves: a call that finds the server unavailable (or answering
/// `READONLY`, a demoted primary) replaces the manager too, with one to the primary the
/// sentinels name now.
pub(super) struct Connection {
    pub(super) manager: RwLock<ConnectionManager>,
    pub(super) client: RwLock<redis::Client>,
    /// The sentinels to ask where the primary is, for a `redis+sentinel://` URL.
    pub(super) sentinel: Option<Arc<super::sentinel::Sentinel>>,
    /// A replacement is being made.
    pub(super) replacing: AtomicBool,
}

impl Connection {
    /// A handle to the current connection (cheap: handles share it).
    pub(super) fn get(&self) -> ConnectionManager {
        match self.manager.read() {
            Ok(manager) => manager.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The client of the server connected to now.
    pub(super) fn current_client(&self) -> redis::Client {
        match self.client.read() {
            Ok(client) => client.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Starts connecting afresh (under Sentinel: to the primary the sentinels name now),
    /// unless that is already under way.
    pub(super) fn replace(self: &Arc<Self>) {
        if self.replacing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let fresh = tokio::time::timeout(DEADLINE, async {
                let client = match &this.sentinel {
                    Some(sentinel) => match sentinel.discover().await {
                        Ok(client) => {
                            match this.client.write() {
                                Ok(mut current) => *current = client.clone(),
                                Err(poisoned) => *poisoned.into_inner() = client.clone(),
                            }
                            client
                        }
                        Err(super::sentinel::Discovery::Failed(err)) => return Err(err),
                        Err(super::sentinel::Discovery::UnknownMaster) => {
                            return Err(RedisError::from((
                                ErrorKind::Io,
                                "the sentinels no longer know the master",
                            )));
                        }
                    },
                    None => this.current_client(),
                };
                ConnectionManager::new_with_config(client, manager_config()).await
            })
            .await;
            match fresh {
                Ok(Ok(manager)) => {
                    match this.manager.write() {
                        Ok(mut current) => *current = manager,
                        Err(poisoned) => *poisoned.into_inner() = manager,
                    }
                    debug!("connected afresh to Redis");
                }
                // Still refused or unreachable: the next failing call tries again.
                Ok(Err(err)) => debug!(error = err.category(), "reconnecting failed"),
                Err(_) => debug!("reconnecting timed out"),
            }
            // At most one attempt a second, however many calls fail meanwhile.
            tokio::time::sleep(Duration::from_secs(1)).await;
            this.replacing.store(false, Ordering::Release);
        });
    }
}

/// How every connection to Redis behaves: one quick retry, then the call fails (and the
/// scheduler fails closed); 2 s to connect and to answer.
pub(super) fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
}

/// Maps a client error to fourit's, with any password scrubbed from its text.
pub(super) fn classify(
    operation: &'static str,
    url: &str,
    secret: Option<&str>,
    err: RedisError,
) -> Error {
    let mut detail = err.to_string();
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        detail = detail.replace(secret, "***");
    }
    let kind = match err.kind() {
        ErrorKind::AuthenticationFailed => Kind::Authentication,
        ErrorKind::Server(ServerErrorKind::NoPerm) => Kind::Permission,
        // A script's refused command comes back as a script error quoting NOPERM.
        _ if detail.contains("NOPERM")
            || detail.contains("no permissions to")
            || detail.contains("can't run this command") =>
        {
            Kind::Permission
        }
        _ if detail.contains("certificate") || detail.contains("TLS") || detail.contains("tls") => {
            Kind::Tls
        }
        ErrorKind::InvalidClientConfig => {
            return Error::InvalidUrl {
                url: url.to_string(),
                reason: detail,
            };
        }
        // The cluster client wraps a refused AUTH in its own "initial connections" error.
        _ if detail.contains("WRONGPASS")
            || detail.contains("NOAUTH")
            || detail.contains("AuthenticationFailed") =>
        {
            Kind::Authentication
        }
        _ => Kind::Unavailable,
    };
    Error::Coordinator(
        CoordinatorError::new(BACKEND, operation, kind, detail)
            .at(url)
            .caused_by(&err, secret),
    )
}

/// A client for `url`, with the certificates of `tls` when the `tls` feature is on.
pub(super) fn open_client(url: &str, tls: Option<&TlsConfig>) -> Result<redis::Client, RedisError> {
    #[cfg(feature = "tls")]
    if let Some(tls) = tls.filter(|tls| !tls.is_empty()) {
        return redis::Client::build_with_tls(
            url,
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
    redis::Client::open(url)
}

pub(super) fn invalid_url_reason(url: &str, err: &RedisError) -> String {
    if url.starts_with("rediss") && !cfg!(feature = "tls") {
        return "rediss:// (TLS) needs fourit's `tls` cargo feature: \
                fourit = { version = \"...\", features = [\"tls\"] }"
            .to_string();
    }
    // The client library's text may quote the URL: say what is wrong without it.
    match err.detail() {
        Some(detail) if !detail.contains(url) => format!("{} ({detail})", err.category()),
        _ => err.category().to_string(),
    }
}

#[cfg(feature = "tls")]
pub(super) fn install_crypto_provider() {
    // Installing twice is refused, harmlessly: the first provider stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(super) fn is_noscript(err: &RedisError) -> bool {
    err.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

/// For `redis+cluster://` and `rediss+cluster://` URLs, the URL of each seed node
/// (`redis://[user:password@]host:port`, `rediss://` with TLS); `None` for other URLs.
pub(super) fn cluster_nodes(url: &str) -> Option<Result<Vec<String>, String>> {
    let (scheme, rest) = url.split_once("://")?;
    let node_scheme = match scheme {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return None,
    };
    Some(parse_cluster_nodes(node_scheme, rest))
}

fn parse_cluster_nodes(node_scheme: &str, rest: &str) -> Result<Vec<String>, String> {
    // The seeds end where a path or query would start.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if !tail.trim_start_matches('/').is_empty() {
        return Err(
            "a cluster URL takes no database or options (Redis Cluster has database 0 only)"
                .to_string(),
        );
    }
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| match userinfo {
            Some(userinfo) => format!("{node_scheme}://{userinfo}@{host}"),
            None => format!("{node_scheme}://{host}"),
        })
        .collect();
    if nodes.is_empty() {
        return Err(
            "it names no node; write e.g. redis+cluster://10.0.0.1:6379,10.0.0.2:6379".to_string(),
        );
    }
    Ok(nodes)
}

/// A cluster client for the seed `nodes`, with the same time limits as a single server's
/// connection (the client follows `MOVED`/`ASK` and failovers by itself).
pub(super) fn open_cluster(
    nodes: &[String],
    tls: Option<&TlsConfig>,
) -> Result<redis::cluster::ClusterClient, RedisError> {
    let builder = redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2));
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

#[cfg(test)]
mod tests {
    use super::cluster_nodes;

    #[test]
    fn cluster_urls_name_each_seed_with_the_credentials() {
        assert_eq!(
            cluster_nodes("redis+cluster://app:s3cret@10.0.0.1:6379,10.0.0.2:6380"),
            Some(Ok(vec![
                "redis://app:s3cret@10.0.0.1:6379".to_string(),
                "redis://app:s3cret@10.0.0.2:6380".to_string(),
            ]))
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://cache:6379/"),
            Some(Ok(vec!["rediss://cache:6379".to_string()]))
        );
        assert!(matches!(
            cluster_nodes("redis+cluster://cache:6379/2"),
            Some(Err(_))
        ));
        assert!(matches!(cluster_nodes("redis+cluster://"), Some(Err(_))));
        assert_eq!(cluster_nodes("redis://cache:6379"), None);
    }
}

/// fourit's own settings in a URL's query (`wait_replicas`, `wait_timeout`, `eviction`,
/// `sentinel_username`, `sentinel_password`), taken out: the URL without them, for the client
/// library, and the settings. Other query parameters stay for the client library.
pub(super) fn split_url_options(
    url: &str,
) -> Result<(String, crate::coordinator::ConnectOptions), String> {
    use crate::coordinator::{ConnectOptions, EvictionCheck};
    let mut options = ConnectOptions::new();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), options));
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let mut kept = Vec::new();
    let mut replicas = None;
    let mut timeout = None;
    let mut sentinel_user = None;
    let mut sentinel_password = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match key {
            "wait_replicas" => {
                replicas =
                    Some(value.parse::<usize>().map_err(|_| {
                        format!("wait_replicas={value} is not a number of replicas")
                    })?);
            }
            "wait_timeout" => {
                timeout = Some(parse_duration(&value).ok_or_else(|| {
                    format!("wait_timeout={value} is not a duration; write e.g. 200ms or 1s")
                })?);
            }
            "eviction" => {
                options.eviction = Some(match value.as_str() {
                    "warn" => EvictionCheck::Warn,
                    "strict" => EvictionCheck::Strict,
                    _ => return Err(format!("eviction={value}: use warn or strict")),
                });
            }
            "sentinel_username" => sentinel_user = Some(value),
            "sentinel_password" => sentinel_password = Some(value),
            _ => kept.push(pair),
        }
    }
    match (replicas, timeout) {
        (Some(replicas), timeout) => {
            let timeout = timeout.unwrap_or(Duration::from_millis(200));
            options = options.wait_for_replicas(replicas, timeout);
        }
        (None, Some(_)) => {
            return Err("wait_timeout needs wait_replicas (how many replicas)".to_string());
        }
        (None, None) => {}
    }
    match (sentinel_user, sentinel_password) {
        (user, Some(password)) => {
            options = options.sentinel_credentials(user.as_deref(), &password);
        }
        (Some(_), None) => {
            return Err("sentinel_username needs sentinel_password".to_string());
        }
        (None, None) => {}
    }
    let mut rest = base.to_string();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    if let Some(fragment) = fragment {
        rest.push('#');
        rest.push_str(fragment);
    }
    Ok((rest, options))
}

/// `200ms`, `1s`, `1.5s`, or a bare number of milliseconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.trim().parse::<u64>().ok().map(Duration::from_millis);
    }
    if let Some(seconds) = text.strip_suffix('s') {
        let seconds: f64 = seconds.trim().parse().ok()?;
        return (0.0..1e6)
            .contains(&seconds)
            .then(|| Duration::from_secs_f64(seconds));
    }
    text.parse::<u64>().ok().map(Duration::from_millis)
}

/// `%XX` escapes decoded (a password may hold `&` or `=`); invalid escapes stay as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex) = text.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod option_tests {
    use std::time::Duration;

    use super::split_url_options;
    use crate::coordinator::EvictionCheck;

    #[test]
    fn fourits_own_query_settings_are_taken_out_of_the_url() {
        let (url, options) = split_url_options(
            "redis://cache:6379/2?wait_replicas=2&wait_timeout=150ms&protocol=resp3&eviction=strict",
        )
        .unwrap();
        assert_eq!(url, "redis://cache:6379/2?protocol=resp3");
        let acks = options.replica_acks().unwrap();
        assert_eq!(
            (acks.replicas, acks.timeout),
            (2, Duration::from_millis(150))
        );
        assert_eq!(options.eviction, Some(EvictionCheck::Strict));

        let (url, options) = split_url_options("redis+cluster://a:1,b:2?wait_replicas=1").unwrap();
        assert_eq!(url, "redis+cluster://a:1,b:2");
        assert_eq!(
            options.replica_acks().unwrap().timeout,
            Duration::from_millis(200),
            "the default wait"
        );
        let (_, options) = split_url_options(
            "redis+sentinel://s:26379/main?sentinel_username=watch&sentinel_password=a%26b",
        )
        .unwrap();
        assert_eq!(
            options.sentinel_credentials,
            Some((Some("watch".to_string()), "a&b".to_string()))
        );
        let (url, options) = split_url_options("redis://cache").unwrap();
        assert_eq!(url, "redis://cache");
        assert!(options.replica_acks().is_none());
    }

    #[test]
    fn bad_query_settings_say_what_is_wrong() {
        for (url, says) in [
            ("redis://c?wait_replicas=two", "wait_replicas=two"),
            (
                "redis://c?wait_replicas=1&wait_timeout=soon",
                "wait_timeout=soon",
            ),
            ("redis://c?wait_timeout=1s", "needs wait_replicas"),
            ("redis://c?eviction=never", "use warn or strict"),
            ("redis://c?sentinel_username=u", "needs sentinel_password"),
        ] {
            let err = split_url_options(url).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
    }
}
