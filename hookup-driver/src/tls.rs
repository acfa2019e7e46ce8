//! TLS configuration helpers (feature `tls`, rustls with the ring backend).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;

pub use rustls;
pub use rustls::{ClientConfig, ServerConfig};
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting the Mozilla root certificates
/// (`webpki-roots`).
pub fn default_client_config() -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    client_config_with_roots(roots)
}

/// A client configuration trusting exactly the given certificates (for
/// private CAs and tests).
pub fn client_config_trusting(
    certs: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c.clone())?;
    }
    Ok(client_config_with_roots(roots))
}

fn client_config_with_roots(roots: rustls::RootCertStore) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A server configuration from a certificate chain and a private key.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// Reads the certificates of a PEM file.
pub fn certs_from_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

/// A server configuration from PEM files (certificate chain and key).
pub fn server_config_from_pem(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs = certs_from_pem(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    server_config(certs, key).map_err(|e| e.to_string())
}
