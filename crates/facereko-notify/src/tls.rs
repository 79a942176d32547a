//! rustls client configurations built with an explicit `ring` provider.
//!
//! Every TLS client of this crate gets its provider passed in, so none depends on a process-wide default
//! `CryptoProvider` (whose absence, or the presence of two, panics at run time).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::{Error, Result};

/// The crypto provider every client of this crate uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::ConfigFile {
        key: key.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

fn bad(key: &str, reason: impl Into<String>) -> Error {
    Error::Config {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Certificates from a PEM file (the config key names it in errors).
pub fn load_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(bad(
            key,
            format!("{}: no PEM certificate in it", path.display()),
        ));
    }
    Ok(certs)
}

/// The private key from a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC, as AWS IoT and openssl write them).
pub fn load_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        bad(
            key,
            format!("{}: no usable PEM private key: {e}", path.display()),
        )
    })
}

/// Trust anchors: the CA file if given, else the system's roots.
pub fn roots(ca_key: &str, ca_file: Option<&Path>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in load_certs(ca_key, path)? {
                store
                    .add(cert)
                    .map_err(|e| bad(ca_key, format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A few odd system certificates are normal; skip them like browsers do.
                let _ = store.add(cert);
            }
            if store.is_empty() {
                return Err(Error::Tls(format!(
                    "no system CA certificates found ({} errors); install ca-certificates or set {ca_key}",
                    found.errors.len()
                )));
            }
        }
    }
    Ok(store)
}

/// A client configuration trusting `roots`, optionally presenting a client certificate.
pub fn client_config(
    roots: RootCertStore,
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots);
    match client_auth {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| Error::Tls(format!("client certificate and key do not fit: {e}"))),
        None => Ok(builder.with_no_client_auth()),
    }
}
