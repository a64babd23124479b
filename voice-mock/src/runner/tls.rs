//! The self-signed TLS certificate made at start, and the acceptor.

use std::sync::Arc;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use super::Error;

/// A TLS acceptor and the PEM of its certificate.
pub(crate) struct Tls {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) cert_pem: String,
}

/// Makes a leaf certificate (`CA:FALSE`, server auth) for `localhost` and
/// `127.0.0.1`, signed by its own key: rustls clients refuse a CA
/// certificate as a server's own, even when they trust it as a root.
pub(crate) fn self_signed() -> Result<Tls, Error> {
    let cert_err = |e: rcgen::Error| Error::Certificate(e.to_string());
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(cert_err)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.distinguished_name.push(DnType::CommonName, "voice-mock");
    let cert = params.self_signed(&key).map_err(cert_err)?;
    let cert_pem = cert.pem();
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let tls_err = |e: rustls::Error| Error::Tls(e.to_string());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(tls_err)?;
    Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(config)), cert_pem })
}
