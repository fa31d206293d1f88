//! TLS client configurations shared by every protocol and every user of a run.
//!
//! Building a rustls configuration (parsing the root store) costs time and memory, so one is
//! built per distinct setting and shared through an `Arc`: every user of every protocol with the
//! same [`TlsSettings`] gets the same configuration. Certificate checks are on by default against
//! the bundled Mozilla roots; `verify: false` turns them off, and `ca_file` adds a PEM CA (for
//! self-signed test servers).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What a TLS client configuration depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TlsSettings {
    /// Skip certificate verification.
    pub insecure: bool,
    /// Extra trusted CA certificates, PEM text.
    pub extra_ca_pem: Option<String>,
    /// ALPN protocols to offer (e.g. `h2`, `http/1.1`).
    pub alpn: Vec<Vec<u8>>,
}

/// Errors building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA PEM had no usable certificate.
    #[error("no valid certificate in the CA PEM: {0}")]
    BadCa(String),
    /// rustls refused the configuration.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            // Libraries that look for the process default (reqwest built without a provider of
            // its own) find ours. Another crate may have installed one already: that is fine.
            let _ = CryptoProvider::install_default((*provider).clone());
            provider
        })
        .clone()
}

/// The process-wide ring crypto provider all LoadDensity TLS uses. The first call also installs
/// it as the rustls process default, if none is installed yet.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    provider()
}

/// The shared client configuration for `settings`, built on first use.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    static CACHE: OnceLock<Mutex<HashMap<TlsSettings, Arc<ClientConfig>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(config) = cache.lock().get(settings) {
        return Ok(config.clone());
    }
    let config = Arc::new(build(settings)?);
    cache.lock().insert(settings.clone(), config.clone());
    Ok(config)
}

fn build(settings: &TlsSettings) -> Result<ClientConfig, TlsError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let mut config = if settings.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = &settings.extra_ca_pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| TlsError::BadCa(e.to_string()))?;
                roots.add(cert)?;
                added += 1;
            }
            if added == 0 {
                return Err(TlsError::BadCa("no CERTIFICATE block".to_owned()));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = settings.alpn.clone();
    Ok(config)
}

use rustls::pki_types::pem::PemObject as _;

/// Accepts any server certificate (`verify: false`). Signatures are still checked, so the
/// handshake itself stays sound.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_are_shared_per_setting() {
        let a = client_config(&TlsSettings::default()).expect("default");
        let b = client_config(&TlsSettings::default()).expect("default");
        assert!(Arc::ptr_eq(&a, &b));
        let insecure = client_config(&TlsSettings {
            insecure: true,
            ..TlsSettings::default()
        })
        .expect("insecure");
        assert!(!Arc::ptr_eq(&a, &insecure));
        let bad = client_config(&TlsSettings {
            extra_ca_pem: Some("not a pem".to_owned()),
            ..TlsSettings::default()
        });
        assert!(bad.is_err());
    }
}
