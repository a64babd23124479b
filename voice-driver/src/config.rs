//! Driver settings and the credentials for driver-only use.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use voice_proto::wire::Snowflake;

use crate::error::TrustError;

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
    /// Websockets (TCP, TLS, upgrade) opening at once, across every call
    /// made with this configuration or its clones: a thousand joins do not
    /// become a thousand simultaneous handshakes.
    pub max_concurrent_connects: usize,
    /// A TLS client configuration to use instead of the one built from the
    /// webpki roots and `extra_roots`.
    pub tls_config: Option<Arc<ClientConfig>>,
    /// Send flowing audio from the shared send wheel (one task per core for
    /// the calls of this configuration and its clones, one timer tick per
    /// 2 ms, or every few ticks while it holds few calls) rather than from
    /// each call's task with a timer per frame. On by default: it is what makes thousands of calls cheap.
    pub send_wheel: bool,
    /// On Linux, hand each wheel tick's datagrams to the kernel in one
    /// io_uring submission instead of a system call each (about half the
    /// CPU of the sends; the kernel's UDP path itself is the same). Where
    /// io_uring is unavailable (before Linux 5.6, a seccomp profile that
    /// forbids it, `kernel.io_uring_disabled`) the wheel sends one datagram
    /// at a time, as with this off. On by default; read when a wheel
    /// starts (the first call of a configuration and its clones).
    pub batched_send: bool,
    /// Run each send wheel on a thread of its own, sleeping on the system
    /// clock, instead of as a task of the runtime. A thread wakes on time
    /// however busy the runtime's workers are (with thousands of calls on
    /// few cores, a task's tick waits behind whatever its worker runs; an
    /// application that blocks its only worker for 300 ms stops a task's
    /// audio for as long, and not a thread's);
    /// at most one thread per core, started with the wheel's first call.
    /// Off by default: calls then follow the runtime's clock, paused time
    /// included. Read when a wheel starts, as `batched_send` is.
    pub wheel_threads: bool,
    /// On Linux, receive the calls' datagrams in the send wheel too: each
    /// call's UDP socket is the driver's own, on no reactor, and the wheel
    /// reads every socket that holds datagrams once a wake-up (an epoll set
    /// asked without waiting, then one `recvmmsg` per socket). A datagram
    /// then wakes no thread and no task: receiving costs the kernel's
    /// receive path and the decryption, and a datagram is handed on at
    /// most one wake-up (2 to 10 ms) after it arrived. The wheel wakes
    /// every few ticks while it has calls, playing or not. Needs
    /// `send_wheel`; elsewhere, or off, each call's task receives on the
    /// runtime's socket. On by default; read when a wheel starts.
    pub wheel_receive: bool,
    /// What clones share: the TLS configuration once built, and the
    /// connect limit.
    shared: Arc<Shared>,
}

/// State shared by a configuration and its clones.
#[derive(Debug, Default)]
struct Shared {
    /// The TLS configuration built for these extra roots.
    tls: Mutex<Option<(Vec<CertificateDer<'static>>, Arc<ClientConfig>)>>,
    connects: OnceLock<Arc<tokio::sync::Semaphore>>,
    wheels: crate::wheel::Wheels,
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
            max_concurrent_connects: 64,
            tls_config: None,
            send_wheel: true,
            batched_send: true,
            wheel_threads: false,
            wheel_receive: true,
            shared: Arc::default(),
        }
    }
}

impl DriverConfig {
    /// The rustls client configuration: `tls_config` if set, else webpki
    /// roots plus `extra_roots` with ring as the crypto provider, built once
    /// and shared by this configuration's clones (every call of a manager,
    /// and driver-only `connect` calls given clones of one configuration).
    pub fn tls(&self) -> Result<Arc<ClientConfig>, rustls::Error> {
        if let Some(c) = &self.tls_config {
            return Ok(c.clone());
        }
        let mut cached = self.shared.tls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((roots, config)) = cached.as_ref()
            && *roots == self.extra_roots
        {
            return Ok(config.clone());
        }
        let config = build_tls(&self.extra_roots)?;
        *cached = Some((self.extra_roots.clone(), config.clone()));
        Ok(config)
    }

    /// A send wheel for a new call, shared by clones.
    pub(crate) fn wheel(&self, runtime: &Arc<dyn crate::Runtime>) -> Arc<crate::wheel::Wheel> {
        self.shared.wheels.pick(
            runtime,
            crate::wheel::WheelMode {
                batched: self.batched_send,
                thread: self.wheel_threads,
                receive: self.wheel_receive,
            },
        )
    }

    /// The limit on websockets opening at once, shared by clones.
    pub(crate) fn connect_limit(&self) -> Arc<tokio::sync::Semaphore> {
        let n = self.max_concurrent_connects.max(1);
        self.shared.connects.get_or_init(|| Arc::new(tokio::sync::Semaphore::new(n))).clone()
    }

    /// Adds the certificates of a PEM file's text to the trusted roots,
    /// returning how many were added. Text without a certificate is an
    /// error (`NoCertificate`), not a silent no-op.
    ///
    /// ```
    /// use voice_driver::{DriverConfig, TrustError};
    /// let mut config = DriverConfig::default();
    /// assert!(matches!(config.trust_pem(b"not a certificate"), Err(TrustError::NoCertificate)));
    /// ```
    pub fn trust_pem(&mut self, pem: &[u8]) -> Result<usize, TrustError> {
        use rustls::pki_types::pem::PemObject;
        let mut added = Vec::new();
        for cert in CertificateDer::pem_slice_iter(pem) {
            added.push(cert?);
        }
        if added.is_empty() {
            return Err(TrustError::NoCertificate);
        }
        let n = added.len();
        self.extra_roots.extend(added);
        Ok(n)
    }
}

/// Webpki roots plus `extra`, ring as the crypto provider.
fn build_tls(extra: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for cert in extra {
        roots.add(cert.clone())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn clones_share_one_tls_config_until_the_roots_change() {
        let mut a = DriverConfig::default();
        let b = a.clone();
        let (ta, tb) = (a.tls().unwrap(), b.tls().unwrap());
        assert!(Arc::ptr_eq(&ta, &tb), "built once for both");
        a.extra_roots.push(CertificateDer::from(vec![1, 2, 3]));
        assert!(a.tls().is_err(), "a bad extra root is refused, not cached");
        a.extra_roots.clear();
        assert!(Arc::ptr_eq(&a.tls().unwrap(), &ta));
        let c = DriverConfig { tls_config: Some(ta.clone()), ..DriverConfig::default() };
        assert!(Arc::ptr_eq(&c.tls().unwrap(), &ta));
        assert!(Arc::ptr_eq(&a.connect_limit(), &b.connect_limit()));
    }

    #[test]
    fn trust_pem_counts_certificates_and_refuses_text_without_one() {
        let mut c = DriverConfig::default();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let pem = cert.cert.pem();
        assert_eq!(c.trust_pem(format!("{pem}{pem}").as_bytes()).unwrap(), 2);
        assert_eq!(c.extra_roots.len(), 2);
        let key_only = cert.signing_key.serialize_pem();
        assert!(matches!(c.trust_pem(key_only.as_bytes()), Err(TrustError::NoCertificate)));
        assert!(matches!(c.trust_pem(b""), Err(TrustError::NoCertificate)));
        assert_eq!(c.extra_roots.len(), 2, "a refused text adds nothing");
    }
}
