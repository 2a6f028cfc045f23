//! Opening a coordinator from a URL, TLS material for it, and URLs fit for logs.

use std::fmt;
use std::sync::Arc;

use super::{MemoryCoordinator, RedisCoordinator, Store};
use crate::error::Error;

/// TLS material for `rediss://` beyond the public root certificates that fourit trusts by
/// default: a private certificate authority, and a client certificate for mutual TLS.
/// Needs the `tls` cargo feature to have any effect.
///
/// ```
/// let tls = fourit::coordinator::TlsConfig::new()
///     .root_certificates(b"-----BEGIN CERTIFICATE-----\n...".to_vec());
/// assert!(!tls.is_empty());
/// ```
#[derive(Clone, Default)]
pub struct TlsConfig {
    pub(crate) root_certificates: Option<Vec<u8>>,
    pub(crate) client_identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsConfig {
    /// No extra material.
    pub fn new() -> TlsConfig {
        TlsConfig::default()
    }

    /// Trusts the certificate authorities in `pem` (PEM-encoded) instead of the public roots.
    pub fn root_certificates(mut self, pem: Vec<u8>) -> TlsConfig {
        self.root_certificates = Some(pem);
        self
    }

    /// Presents this client certificate and key (both PEM) for mutual TLS.
    pub fn client_identity(mut self, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> TlsConfig {
        self.client_identity = Some((cert_pem, key_pem));
        self
    }

    /// Whether nothing was configured.
    pub fn is_empty(&self) -> bool {
        self.root_certificates.is_none() && self.client_identity.is_none()
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("TlsConfig")
            .field("root_certificates", &self.root_certificates.is_some())
            .field("client_identity", &self.client_identity.is_some())
            .finish()
    }
}

/// The schemes fourit opens, each with its backend: one table, so the error for an unknown
/// scheme lists exactly what works.
const SCHEMES: &[(&str, Backend)] = &[
    ("redis", Backend::Redis),
    ("rediss", Backend::Redis),
    ("redis+unix", Backend::Redis),
    ("redis+cluster", Backend::Redis),
    ("rediss+cluster", Backend::Redis),
    ("unix", Backend::Redis),
    ("memory", Backend::Memory),
];

#[derive(Clone, Copy, Debug)]
enum Backend {
    Redis,
    Memory,
}

/// Opens the coordinator a URL names: `redis://`, `rediss://`, `redis+cluster://host:port,...`,
/// `rediss+cluster://...` or `memory://`.
pub async fn connect(url: &str, namespace: &str) -> Result<Arc<dyn Store>, Error> {
    connect_with(url, namespace, None).await
}

/// [`connect`], with TLS material for `rediss://`.
pub async fn connect_with(
    url: &str,
    namespace: &str,
    tls: Option<&TlsConfig>,
) -> Result<Arc<dyn Store>, Error> {
    let Some(scheme) = scheme(url) else {
        return Err(Error::InvalidUrl {
            url: redact_url(url),
            reason: "it has no scheme; write e.g. redis://127.0.0.1:6379 or memory://".to_string(),
        });
    };
    match SCHEMES.iter().find(|(name, _)| *name == scheme) {
        Some((_, Backend::Redis)) => Ok(Arc::new(
            RedisCoordinator::connect_with(url, namespace, tls).await?,
        )),
        Some((_, Backend::Memory)) => Ok(Arc::new(MemoryCoordinator::new())),
        None => Err(Error::InvalidUrl {
            url: redact_url(url),
            reason: format!(
                "unknown scheme `{scheme}`; use redis://, rediss:// (TLS), redis+cluster:// \
                 (Redis Cluster) or memory:// (one process)"
            ),
        }),
    }
}

fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once("://")?;
    (!scheme.is_empty()).then_some(scheme)
}

/// The URL with any password replaced by `***`, fit for logs and errors. Public as
/// `fourit::redact_url`.
///
/// ```
/// assert_eq!(
///     fourit::redact_url("redis://app:s3cret@cache:6379/2"),
///     "redis://app:***@cache:6379/2"
/// );
/// assert_eq!(fourit::redact_url("redis://:s3cret@cache"), "redis://:***@cache");
/// assert_eq!(fourit::redact_url("redis://cache:6379"), "redis://cache:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL we can read: show nothing that might be a secret.
        return "<unparsable URL>".to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = format!("{scheme}://");
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => out.push_str(&format!("{user}:***")),
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    // Passwords may also travel in the query (`?password=`): hide every query value.
    match tail.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let hidden: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) => format!("{key}=***"),
                    None => pair.to_string(),
                })
                .collect();
            out.push_str(&hidden.join("&"));
        }
        None => out.push_str(tail),
    }
    out
}
