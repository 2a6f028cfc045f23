//! The URL's parameters tokio-postgres does not read: `fourit_pool` (how many connections a
//! process may open for its calls) and TLS with libpq's `sslmode` meanings, through rustls.
//!
//! tokio-postgres knows `sslmode=disable|prefer|require` and nothing of certificates: the
//! URL's `sslmode` and `sslrootcert` are read here, the URL handed on without them, and the
//! certificate check is chosen as libpq chooses it:
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `allow`, `prefer` (the default) | when the server offers it | no |
//! | `require` | yes | no; with `sslrootcert`, its chain (as `verify-ca`) |
//! | `verify-ca` | yes | its chain, against `sslrootcert` or the Mozilla roots |
//! | `verify-full` | yes | its chain and that it names the host |

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the URL asks of TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// How many connections a process opens for its calls at most, unless the URL says
/// (`fourit_pool`): one while calls do not overlap, more only when they do.
pub(super) const DEFAULT_POOL: usize = 4;

/// The most `fourit_pool` may ask for.
const MAX_POOL: usize = 32;

/// A URL's settings, read off it.
#[derive(Debug)]
pub(super) struct Settings {
    /// The URL without the parameters tokio-postgres does not know.
    pub(super) url: String,
    /// How many connections the calls may use at most.
    pub(super) pool: usize,
    mode: Mode,
    root: Option<String>,
}

/// For a URL naming several hosts (`postgres://u@h1:5432,h2:5433/db?...`), each host with
/// the URL that names it alone (the rest unchanged); one entry for a URL with one host.
/// The user-info is read as [`redact_url`](crate::redact_url) reads it.
pub(super) fn each_host(url: &str) -> Vec<(String, String)> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let (userinfo, after) = crate::redact::split_userinfo(rest);
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (hosts, tail) = after.split_at(end);
    hosts
        .split(',')
        .filter(|host| !host.is_empty())
        .map(|host| {
            let userinfo = userinfo
                .map(|userinfo| format!("{userinfo}@"))
                .unwrap_or_default();
            let url = format!("{scheme}://{userinfo}{host}{tail}");
            (host.to_string(), url)
        })
        .collect()
}

/// Splits `sslmode`, `sslrootcert` and `fourit_pool` off `url` (the others stay); an
/// unknown `sslmode` or a pool size out of range is an error saying what is allowed.
pub(super) fn settings(url: &str) -> Result<Settings, String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok(Settings {
            url: url.to_string(),
            pool: DEFAULT_POOL,
            mode: Mode::Prefer,
            root: None,
        });
    };
    let mut mode = Mode::Prefer;
    let mut root = None;
    let mut pool = DEFAULT_POOL;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| "a parameter is not UTF-8 once decoded".to_string())?;
        match key {
            "sslmode" => {
                mode = match &*value {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    // The value is not repeated: in a mangled URL it may hold a password.
                    _ => {
                        return Err("sslmode: expected disable, allow, prefer, require, \
                                    verify-ca or verify-full"
                            .to_string());
                    }
                }
            }
            "sslrootcert" => root = Some(value.into_owned()),
            "fourit_pool" => {
                pool = value
                    .parse()
                    .ok()
                    .filter(|size| (1..=MAX_POOL).contains(size))
                    .ok_or_else(|| {
                        format!("fourit_pool: a number of connections, 1 to {MAX_POOL}")
                    })?;
            }
            _ => kept.push(pair),
        }
    }
    kept.push(match mode {
        Mode::Disable => "sslmode=disable",
        Mode::Prefer => "sslmode=prefer",
        Mode::Require | Mode::VerifyCa | Mode::VerifyFull => "sslmode=require",
    });
    Ok(Settings {
        url: format!("{base}?{}", kept.join("&")),
        pool,
        mode,
        root,
    })
}

impl Settings {
    /// The connector for these settings: its certificate check, the root certificates read.
    pub(super) fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &self.root {
            Some(path) => Some(read_roots(path)?),
            None if matches!(self.mode, Mode::VerifyCa | Mode::VerifyFull) => {
                let mut roots = RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                Some(roots)
            }
            None => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (self.mode, roots) {
            (Mode::VerifyFull, Some(roots)) => webpki(roots, &provider)?,
            (Mode::Require | Mode::VerifyCa, Some(roots)) => Arc::new(ChainOnly {
                inner: webpki(roots, &provider)?,
            }),
            _ => Arc::new(Unchecked {
                algorithms: provider.signature_verification_algorithms,
            }),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("TLS: {err}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

fn read_roots(path: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certificates =
        CertificateDer::pem_file_iter(path).map_err(|err| format!("sslrootcert={path}: {err}"))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|err| format!("sslrootcert={path}: {err}"))?;
        roots
            .add(certificate)
            .map_err(|err| format!("sslrootcert={path}: {err}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert={path}: no certificate in the file"));
    }
    Ok(roots)
}

fn webpki(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|err| format!("TLS: {err}"))
}

/// `verify-ca`: the chain is checked, the name it was issued for is not.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root certificate: encrypted, the server not
/// authenticated (libpq's meaning); the handshake's signatures are still checked.
#[derive(Debug)]
struct Unchecked {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_parameters_come_off_and_the_mode_is_handed_on() {
        let settings = settings(
            "postgres://u:p@h/db?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .expect("settings");
        assert_eq!(settings.mode, Mode::VerifyFull);
        assert_eq!(settings.root.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(
            settings.url,
            "postgres://u:p@h/db?application_name=x&sslmode=require"
        );
        let plain = super::settings("postgres://h/db").expect("settings");
        assert_eq!(plain.mode, Mode::Prefer);
        assert_eq!(plain.url, "postgres://h/db");
        assert_eq!(plain.pool, DEFAULT_POOL);
        let pooled = super::settings("postgres://h/db?fourit_pool=1").expect("settings");
        assert_eq!(
            (pooled.pool, pooled.url.as_str()),
            (1, "postgres://h/db?sslmode=prefer")
        );
        for bad in ["0", "33", "many"] {
            let err = super::settings(&format!("postgres://h/db?fourit_pool={bad}"))
                .expect_err("refused");
            assert!(err.contains("1 to 32"), "{err}");
        }
    }

    #[test]
    fn several_hosts_are_tried_one_by_one_with_the_rest_of_the_url() {
        assert_eq!(
            super::each_host("postgres://u:p/w@h1:5432,h2:5433/db?target_session_attrs=read-write"),
            vec![
                (
                    "h1:5432".to_string(),
                    "postgres://u:p/w@h1:5432/db?target_session_attrs=read-write".to_string()
                ),
                (
                    "h2:5433".to_string(),
                    "postgres://u:p/w@h2:5433/db?target_session_attrs=read-write".to_string()
                ),
            ]
        );
        assert_eq!(super::each_host("postgres://db/app").len(), 1);
    }

    #[test]
    fn an_unknown_mode_is_refused_with_the_known_ones() {
        let err = settings("postgres://h/db?sslmode=always").expect_err("refused");
        assert!(err.contains("verify-full"), "{err}");
    }

    #[test]
    fn a_missing_root_file_is_named() {
        let settings =
            settings("postgres://h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem")
                .expect("settings");
        let err = settings.connector().map(|_| ()).expect_err("no file");
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
