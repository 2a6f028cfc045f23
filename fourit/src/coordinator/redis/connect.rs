//! Connecting: the URL read (one server, a cluster's seeds, the sentinels), the link and
//! the subscribers opened, then the checks at start, and the notice listener started.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use super::client::{self, invalid_url_reason, open_client};
use super::connection::{Connection, classify, manager_config};
use super::link::{self, Link};
use super::notices::{self, Subscribers};
use super::scripts::Scripts;
use super::{BACKEND, DEADLINE, RedisCoordinator, sentinel, url};
use crate::coordinator::{ConnectOptions, NoticeSender, TlsConfig, redact_url};
use crate::error::{CoordinatorError, Error, ErrorKind as Kind};
use crate::spec;

/// The primary the sentinels name, or an error that says why there is none: an unknown
/// master name is a mistake in the URL; sentinels that do not answer are an outage.
async fn discover_primary(
    sentinel: &sentinel::Sentinel,
    url: &str,
) -> Result<redis::Client, Error> {
    match tokio::time::timeout(DEADLINE, sentinel.discover()).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(sentinel::Discovery::UnknownMaster)) => Err(Error::InvalidUrl {
            url: url.to_string(),
            reason: format!(
                "no sentinel knows a master named `{}`; check the name in the URL's path \
                 (`SENTINEL MASTERS` on a sentinel lists them)",
                sentinel.master()
            ),
        }),
        // The sentinels' errors carry no data-node password; theirs is not in the text.
        Ok(Err(sentinel::Discovery::Failed(err))) => Err(classify("connect", url, None, err)),
        Err(_) => Err(Error::Coordinator(
            CoordinatorError::new(
                BACKEND,
                "connect",
                Kind::Timeout,
                format!("the sentinels did not name a reachable primary within {DEADLINE:?}"),
            )
            .at(url),
        )),
    }
}

/// The password in a client's URL, to scrub from any text the client library produces.
fn password(client: &redis::Client) -> Option<String> {
    client
        .get_connection_info()
        .redis_settings()
        .password()
        .map(str::to_string)
}

impl RedisCoordinator {
    /// Connects, authenticates and loads the scripts.
    ///
    /// Fails with [`Error::InvalidUrl`] for a URL it cannot use, an [`Error::Coordinator`] of
    /// kind [`Authentication`](crate::ErrorKind::Authentication) if Redis rejects the
    /// credentials or [`Permission`](crate::ErrorKind::Permission) if the user may not run a
    /// command fourit needs, and with an error for which [`Error::is_unavailable`] is true if Redis
    /// cannot be reached (worth retrying).
    pub async fn connect(url: &str, namespace: &str) -> Result<RedisCoordinator, Error> {
        RedisCoordinator::connect_with(url, namespace, None).await
    }

    /// [`connect`](Self::connect), trusting the root certificates and presenting the client
    /// certificate of `tls` for `rediss://` URLs (with the `tls` feature).
    pub async fn connect_with(
        url: &str,
        namespace: &str,
        tls: Option<&TlsConfig>,
    ) -> Result<RedisCoordinator, Error> {
        let mut options = ConnectOptions::new();
        options.tls = tls.cloned();
        RedisCoordinator::connect_with_options(url, namespace, &options).await
    }

    /// [`connect`](Self::connect) with [`ConnectOptions`]; settings in the URL's query
    /// (`?wait_replicas=1&wait_timeout=200ms`, `?eviction=strict`, ...) apply where
    /// `options` leaves them unset.
    pub async fn connect_with_options(
        url: &str,
        namespace: &str,
        options: &ConnectOptions,
    ) -> Result<RedisCoordinator, Error> {
        let redacted = redact_url(url);
        spec::check_identifier("namespace", namespace).map_err(|reason| Error::InvalidOption {
            option: "namespace",
            reason,
        })?;
        #[cfg(feature = "tls")]
        client::install_crypto_provider();
        let invalid = |reason: String| Error::InvalidUrl {
            url: redacted.clone(),
            reason,
        };
        // A password may hold `/ ? # @` unencoded (Postgres takes it so): encoded here, so
        // redis-rs and fourit's own parsers read the password the user meant.
        let url = crate::redact::encode_userinfo(url);
        let (url, from_url) = url::split_url_options(&url).map_err(invalid)?;
        let url = url.as_str();
        let options = options.clone().or(from_url);
        if let Some(acks) = options.replica_acks {
            acks.check().map_err(|reason| Error::InvalidOption {
                option: "wait_for_replicas",
                reason,
            })?;
        }
        let tls = options.tls.as_ref();
        let sentinel = match sentinel::parse(url) {
            Some(parsed) => {
                let parsed = parsed.map_err(invalid)?;
                let sentinel =
                    sentinel::Sentinel::new(parsed, options.sentinel_credentials.as_ref(), tls)
                        .map_err(|err| invalid(invalid_url_reason(url, &err)))?;
                Some(Arc::new(sentinel))
            }
            None => None,
        };
        let (link, subscribers, secret) = match url::cluster_nodes(url) {
            Some(nodes) => {
                let nodes = nodes.map_err(invalid)?;
                let clients = nodes
                    .iter()
                    .map(|node| open_client(node, tls))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|err| invalid(invalid_url_reason(url, &err)))?;
                let secret = clients.first().and_then(password);
                let cluster_client = client::open_cluster(&nodes, tls)
                    .map_err(|err| invalid(invalid_url_reason(url, &err)))?;
                let cluster = cluster_client.get_async_connection().await.map_err(|err| {
                    // A standalone server answers the cluster client's first question so.
                    if err.to_string().contains("cluster support disabled") {
                        invalid(
                            "the server is not a Redis Cluster node (cluster support \
                                 disabled); use redis://host:port for a single server"
                                .to_string(),
                        )
                    } else {
                        classify("connect", &redacted, secret.as_deref(), err)
                    }
                })?;
                let cluster = link::Cluster::new(cluster_client, cluster);
                (
                    Link::Cluster(Arc::new(cluster)),
                    Subscribers::Nodes(clients),
                    secret,
                )
            }
            None => {
                let client = match &sentinel {
                    Some(sentinel) => discover_primary(sentinel, &redacted).await?,
                    None => open_client(url, tls)
                        .map_err(|err| invalid(invalid_url_reason(url, &err)))?,
                };
                let secret = password(&client);
                let manager = ConnectionManager::new_with_config(client.clone(), manager_config())
                    .await
                    .map_err(|err| classify("connect", &redacted, secret.as_deref(), err))?;
                let link = Link::Single(Arc::new(Connection::new(
                    manager,
                    client.clone(),
                    sentinel.clone(),
                )));
                let subscribers = match sentinel {
                    Some(sentinel) => Subscribers::Sentinel(sentinel),
                    None => Subscribers::Nodes(vec![client]),
                };
                (link, subscribers, secret)
            }
        };
        let channel = format!("{namespace}:claims");
        let stop = CancellationToken::new();
        let mut coordinator = RedisCoordinator {
            link,
            namespace: namespace.to_string(),
            channel: channel.clone(),
            notices: NoticeSender::new(),
            missed: tokio::sync::broadcast::channel(crate::coordinator::NOTICE_BUFFER).0,
            _listener: stop.clone().drop_guard(),
            url: redacted,
            secret,
            scripts: Scripts::new(),
            members: std::sync::Mutex::new(None),
            replica_acks: options.replica_acks,
        };
        coordinator
            .refuse_cluster_node_without_cluster_url()
            .await?;
        coordinator
            .check_eviction(options.eviction.unwrap_or_default())
            .await?;
        coordinator.check_replicas().await;
        coordinator.load_scripts().await?;
        coordinator.check_permissions().await?;
        // Subscribing at start also proves the user may: a refusal is an error now, not a
        // silent loss of every notice.
        let subscription = notices::subscribe_any(&subscribers, &channel)
            .await
            .map_err(|err| coordinator.error("subscribe", err))?;
        tokio::spawn(notices::listen(
            subscribers,
            channel,
            subscription,
            coordinator.notices.clone(),
            stop,
        ));
        Ok(coordinator)
    }
}
