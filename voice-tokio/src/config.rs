//! Driver settings and the credentials for driver-only use.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use voice_proto::wire::Snowflake;

/// Settings shared by the calls of a [`Manager`](crate::Manager).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DriverConfig {
    /// The voice-proto configuration template (guild and user are filled in
    /// per call).
    pub proto: voice_proto::Config,
    /// Extra trusted roots (a local server's certificate); webpki roots are
    /// always trusted.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Events buffered per call before new ones are dropped (and counted).
    pub event_capacity: usize,
    /// Opus frames buffered per call for sending (about 20 ms each).
    pub frame_capacity: usize,
    /// Received packets buffered per call before new ones are dropped.
    pub receive_capacity: usize,
    /// How long `join` waits for the connection before failing.
    pub join_timeout: Duration,
    /// Time allowed for a websocket (TCP, TLS and upgrade) to open.
    pub ws_connect_timeout: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            proto: voice_proto::Config::new(Snowflake(0), Snowflake(0)),
            extra_roots: Vec::new(),
            event_capacity: 256,
            frame_capacity: 50,
            receive_capacity: 512,
            join_timeout: Duration::from_secs(20),
            ws_connect_timeout: Duration::from_secs(10),
        }
    }
}

impl DriverConfig {
    /// The rustls client configuration: webpki roots plus `extra_roots`,
    /// ring as the crypto provider.
    pub fn tls(&self) -> Result<Arc<ClientConfig>, rustls::Error> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for cert in &self.extra_roots {
            roots.add(cert.clone())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// Adds the certificates of a PEM file's text to the trusted roots.
    pub fn trust_pem(&mut self, pem: &[u8]) -> Result<usize, rustls::pki_types::pem::Error> {
        use rustls::pki_types::pem::PemObject;
        let before = self.extra_roots.len();
        for cert in CertificateDer::pem_slice_iter(pem) {
            self.extra_roots.push(cert?);
        }
        Ok(self.extra_roots.len() - before)
    }
}
