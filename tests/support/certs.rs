//! Certificates for the TLS tests, made here with `rcgen`: a CA, and a server certificate
//! for 127.0.0.1 and localhost signed by it.

use std::path::Path;

use fourit_testkit::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

fn ok<T>(result: Result<T, rcgen::Error>) -> T {
    result.unwrap_or_else(|err| panic!("generating certificates: {err}"))
}

/// A CA, and a server certificate for 127.0.0.1 and localhost signed by it, as PEM files in
/// `dir`. Returns the files and the CA's PEM.
pub fn certificates(dir: &Path) -> (TlsFiles, String) {
    let ca_key = ok(KeyPair::generate());
    let mut ca_params = ok(CertificateParams::new(Vec::<String>::new()));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fourit test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ok(ca_params.self_signed(&ca_key));
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let server_key = ok(KeyPair::generate());
    let mut server_params = ok(CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
    ]));
    server_params
        .distinguished_name
        .push(DnType::CommonName, "fourit test server");
    let server_cert = ok(server_params.signed_by(&server_key, &issuer));
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|err| panic!("writing {name}: {err}"));
        path
    };
    let files = TlsFiles {
        cert: write("server.crt", server_cert.pem()),
        key: write("server.key", server_key.serialize_pem()),
        ca: write("ca.crt", ca_cert.pem()),
    };
    (files, ca_cert.pem())
}
