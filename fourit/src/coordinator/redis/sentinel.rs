//! Redis Sentinel: the URL, and finding the current primary by asking the sentinels.
//!
//! `redis+sentinel://[user:password@]host:port[,host:port...]/<master-name>[/db]` names the
//! sentinels; the credentials are the data nodes'. The sentinels' own, when they differ, come
//! from [`ConnectOptions::sentinel_credentials`](crate::coordinator::ConnectOptions) or the
//! URL query `?sentinel_username=&sentinel_password=`. A connection error or a `READONLY`
//! answer (the old primary back as a replica) makes the coordinator ask the sentinels again.

use std::time::Duration;

use redis::{ErrorKind, RedisError};

use super::client::open_client;
use crate::coordinator::TlsConfig;

/// How long one sentinel or one candidate primary may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// A parsed `redis+sentinel://` URL.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SentinelUrl {
    /// `redis` or `rediss`, for the sentinels and the data nodes alike.
    scheme: &'static str,
    /// `host:port` of each sentinel.
    sentinels: Vec<String>,
    /// The name the sentinels monitor the primary under.
    pub(super) master: String,
    /// The data nodes' `user:password`, as written (percent-encoded).
    userinfo: Option<String>,
    /// The database number, if given.
    db: Option<u32>,
}

/// For a `redis+sentinel://` or `rediss+sentinel://` URL, its parts; `None` for other URLs.
pub(super) fn parse(url: &str) -> Option<Result<SentinelUrl, String>> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme {
        "redis+sentinel" => "redis",
        "rediss+sentinel" => "rediss",
        _ => return None,
    };
    Some(parse_rest(scheme, rest))
}

fn parse_rest(scheme: &'static str, rest: &str) -> Result<SentinelUrl, String> {
    const SHAPE: &str = "write redis+sentinel://host:port[,host:port...]/<master-name>[/db]";
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(authority[..at].to_string()), &authority[at + 1..]),
        None => (None, authority),
    };
    let sentinels: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| {
            if host.contains(':') {
                host.to_string()
            } else {
                // The sentinels' customary port.
                format!("{host}:26379")
            }
        })
        .collect();
    if sentinels.is_empty() {
        return Err(format!("it names no sentinel; {SHAPE}"));
    }
    let mut segments = path.split('/').filter(|segment| !segment.is_empty());
    let master = segments
        .next()
        .ok_or_else(|| format!("it names no master; {SHAPE}"))?
        .to_string();
    let db = match segments.next() {
        Some(db) => Some(
            db.parse()
                .map_err(|_| format!("`{db}` is not a database number; {SHAPE}"))?,
        ),
        None => None,
    };
    if segments.next().is_some() {
        return Err(format!("too many path segments; {SHAPE}"));
    }
    Ok(SentinelUrl {
        scheme,
        sentinels,
        master,
        userinfo,
        db,
    })
}

/// The sentinels of one master, and how to reach the data nodes they point at.
pub(super) struct Sentinel {
    sentinels: Vec<redis::Client>,
    url: SentinelUrl,
    tls: Option<TlsConfig>,
}

/// Why no primary was found.
#[derive(Debug)]
pub(super) enum Discovery {
    /// Every sentinel that answered said it knows no master of this name.
    UnknownMaster,
    /// No sentinel answered, or no primary it named answered as a primary.
    Failed(RedisError),
}

impl Sentinel {
    /// Clients for the sentinels of `url`, with `credentials` (user, password) if given.
    pub(super) fn new(
        url: SentinelUrl,
        credentials: Option<&(Option<String>, String)>,
        tls: Option<&TlsConfig>,
    ) -> Result<Sentinel, RedisError> {
        let userinfo = credentials.map(|(user, password)| {
            format!(
                "{}:{}@",
                percent_encode(user.as_deref().unwrap_or("")),
                percent_encode(password)
            )
        });
        let sentinels = url
            .sentinels
            .iter()
            .map(|host| {
                let address = format!(
                    "{}://{}{host}",
                    url.scheme,
                    userinfo.as_deref().unwrap_or("")
                );
                open_client(&address, tls)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sentinel {
            sentinels,
            url,
            tls: tls.cloned(),
        })
    }

    /// The master's name.
    pub(super) fn master(&self) -> &str {
        &self.url.master
    }

    /// A client for the data node on `host:port`, with the URL's credentials and database.
    fn node_client(&self, host: &str, port: u16) -> Result<redis::Client, RedisError> {
        let userinfo = self
            .url
            .userinfo
            .as_ref()
            .map(|userinfo| format!("{userinfo}@"))
            .unwrap_or_default();
        let db = self.url.db.map(|db| format!("/{db}")).unwrap_or_default();
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        open_client(
            &format!("{}://{userinfo}{host}:{port}{db}", self.url.scheme),
            self.tls.as_ref(),
        )
    }

    /// Asks the sentinels, in turn, for the primary's address, and answers a client for the
    /// first address that answers as a primary (a sentinel may not have seen a failover yet).
    pub(super) async fn discover(&self) -> Result<redis::Client, Discovery> {
        let mut unknown = 0;
        let mut last = RedisError::from((ErrorKind::Io, "no sentinel answered"));
        for sentinel in &self.sentinels {
            let address = match tokio::time::timeout(ASK_TIMEOUT, self.ask(sentinel)).await {
                Ok(Ok(Some(address))) => address,
                Ok(Ok(None)) => {
                    unknown += 1;
                    continue;
                }
                Ok(Err(err)) => {
                    last = err;
                    continue;
                }
                Err(_) => {
                    last = RedisError::from((ErrorKind::Io, "a sentinel did not answer in time"));
                    continue;
                }
            };
            let client = match self.node_client(&address.0, address.1) {
                Ok(client) => client,
                Err(err) => {
                    last = err;
                    continue;
                }
            };
            match tokio::time::timeout(ASK_TIMEOUT, is_primary(&client)).await {
                Ok(Ok(true)) => return Ok(client),
                Ok(Ok(false)) => {
                    last = RedisError::from((
                        ErrorKind::Io,
                        "the node a sentinel named is not a primary (a failover is under way)",
                    ));
                }
                Ok(Err(err)) => last = err,
                Err(_) => {
                    last = RedisError::from((
                        ErrorKind::Io,
                        "the primary a sentinel named did not answer in time",
                    ));
                }
            }
        }
        if unknown == self.sentinels.len() {
            return Err(Discovery::UnknownMaster);
        }
        Err(Discovery::Failed(last))
    }

    /// `SENTINEL get-master-addr-by-name`: the address, or `None` for an unknown name.
    async fn ask(&self, sentinel: &redis::Client) -> Result<Option<(String, u16)>, RedisError> {
        let mut conn = sentinel.get_multiplexed_async_connection().await?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.url.master)
            .query_async(&mut conn)
            .await
    }
}

/// Whether the node answers `INFO replication` as a primary (`INFO` is in fourit's minimal
/// ACL; `ROLE` is not).
async fn is_primary(client: &redis::Client) -> Result<bool, RedisError> {
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await?;
    Ok(info.lines().any(|line| line.trim() == "role:master"))
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{SentinelUrl, parse};

    #[test]
    fn sentinel_urls_name_the_sentinels_the_master_and_the_database() {
        assert_eq!(
            parse("redis+sentinel://app:s3cret@10.0.0.1:26379,10.0.0.2/main/2"),
            Some(Ok(SentinelUrl {
                scheme: "redis",
                sentinels: vec!["10.0.0.1:26379".to_string(), "10.0.0.2:26379".to_string()],
                master: "main".to_string(),
                userinfo: Some("app:s3cret".to_string()),
                db: Some(2),
            }))
        );
        let tls = parse("rediss+sentinel://s:1/cache?wait_replicas=1")
            .unwrap()
            .unwrap();
        assert_eq!(
            (tls.scheme, tls.master.as_str(), tls.db),
            ("rediss", "cache", None)
        );
        for (url, says) in [
            ("redis+sentinel://s:1", "names no master"),
            ("redis+sentinel://s:1/", "names no master"),
            ("redis+sentinel:///main", "names no sentinel"),
            ("redis+sentinel://s:1/main/x", "not a database number"),
            ("redis+sentinel://s:1/main/1/2", "too many path segments"),
        ] {
            let err = parse(url).unwrap().unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
        assert_eq!(parse("redis://cache"), None);
    }
}
