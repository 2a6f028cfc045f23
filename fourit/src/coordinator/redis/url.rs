//! What a Redis URL says beyond the client library's part: the seed nodes of a cluster URL,
//! and fourit's own query settings.

use std::time::Duration;

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
        let value = crate::redact::percent_decoded(value);
        match key {
            "wait_replicas" => {
                replicas =
                    Some(value.parse::<usize>().map_err(|_| {
                        format!("wait_replicas={value} is not a number of replicas")
                    })?);
            }
            "wait_timeout" => {
                timeout = Some(
                    crate::spec::parse_duration(&value)
                        .map_err(|why| format!("wait_timeout={value}: {why}"))?,
                );
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

#[cfg(test)]
mod cluster_tests {
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
