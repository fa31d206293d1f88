//! Self-signed certificate generation and rustls configuration.

use std::io;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// ALPN protocols offered by the TLS target (and by [`client_config`]).
pub(crate) const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The certificate of a TLS target.
#[derive(Debug, Clone)]
pub(crate) struct TlsMaterial {
    pub(crate) cert_pem: String,
    pub(crate) cert_der: CertificateDer<'static>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Generates a fresh self-signed certificate for `localhost` and `127.0.0.1`
/// and a matching server configuration (ALPN `h2`, `http/1.1`).
pub(crate) fn generate() -> io::Result<(TlsMaterial, Arc<rustls::ServerConfig>)> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(io::Error::other)?;
    let cert_der = certified.cert.der().clone();
    let cert_pem = certified.cert.pem();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));

    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();

    Ok((TlsMaterial { cert_pem, cert_der }, Arc::new(config)))
}

/// Builds a client configuration (ring provider) that trusts only `cert`.
pub(crate) fn client_config(cert: &CertificateDer<'static>) -> io::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
