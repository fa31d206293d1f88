//! The TLS acceptor: rustls, TLS 1.2 and 1.3, a PEM certificate chain and its key.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{SocketServerError, SocketServerOptions};

/// `None` without TLS; an error when only one of the two files is given, or they are unusable.
pub(super) fn acceptor(
    options: &SocketServerOptions,
) -> Result<Option<tokio_rustls::TlsAcceptor>, SocketServerError> {
    let (cert, key) = match (&options.certfile, &options.keyfile) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(SocketServerError::TlsIncomplete { given: "certfile" }),
        (None, Some(_)) => return Err(SocketServerError::TlsIncomplete { given: "keyfile" }),
        (Some(cert), Some(key)) => (cert, key),
    };
    let tls_error = |what: String| SocketServerError::Tls(what);
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_error(format!("cannot read certfile {}: {e}", cert.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(format!("certfile {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(tls_error(format!(
            "certfile {} holds no CERTIFICATE block",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_error(format!("keyfile {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| tls_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_error(format!("the certificate and key do not fit: {e}")))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}
