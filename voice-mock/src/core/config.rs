//! Configuration of the server core: what it offers and its limits.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use voice_rtp::Mode;

/// Caps that keep the server bounded whatever the clients do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open websockets at once; more are closed at once with 1013.
    pub max_conns: usize,
    /// Voice sessions at once; an Identify beyond this is closed with 1013.
    pub max_sessions: usize,
    /// Outstanding credentials from `join`; the oldest are forgotten.
    pub max_grants: usize,
    /// Largest websocket frame accepted (bytes); a larger one closes with 4020.
    pub max_frame_bytes: usize,
    /// Largest datagram looked at (bytes); larger ones are dropped.
    pub max_datagram_bytes: usize,
    /// Messages kept per session for a buffered (v8) resume.
    pub resume_buffer: usize,
    /// Client frames kept per user for [`crate::MockServer::received_frames`].
    pub received_frames: usize,
    /// Outputs queued in the core before datagrams are dropped.
    pub max_pending_outputs: usize,
    /// Datagrams held back by the delay / reorder faults.
    pub max_delayed: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_conns: 2048,
            max_sessions: 1024,
            max_grants: 4096,
            max_frame_bytes: 64 * 1024,
            max_datagram_bytes: 2048,
            resume_buffer: 256,
            received_frames: 4096,
            max_pending_outputs: 65_536,
            max_delayed: 4096,
        }
    }
}

/// Configuration of [`crate::MockServer`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Modes offered in Ready, in this order. Default: the two live modes.
    pub modes: Vec<Mode>,
    /// Whether Identify must carry a token issued by `join` (else 4004).
    /// When false any token is accepted.
    pub require_token: bool,
    /// Heartbeat interval sent in Hello, in milliseconds (default 13750).
    pub heartbeat_interval_ms: f64,
    /// The UDP media address that Ready advertises.
    pub udp_addr: SocketAddr,
    /// The endpoint (`host:port`) handed out by `join`.
    pub ws_endpoint: String,
    /// Seed of every random choice (SSRCs, keys, ids, UDP faults).
    pub seed: u64,
    /// DAVE protocol version offered; the mock implements no DAVE, so keep 0.
    /// Session Description reports the lower of this and the client's maximum.
    pub dave_protocol_version: u16,
    /// A connection that sends no heartbeat for this many heartbeat intervals
    /// (counted from Hello, or from accept before Identify) is closed with
    /// 4009. Default 1.5.
    pub heartbeat_timeout_factor: f64,
    /// How long a session whose websocket dropped stays resumable.
    pub resume_window: Duration,
    /// Bounds on memory and work.
    pub limits: Limits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            modes: Mode::LIVE.to_vec(),
            require_token: false,
            heartbeat_interval_ms: 13_750.0,
            udp_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 50_000)),
            ws_endpoint: "127.0.0.1:443".to_owned(),
            seed: 0x5eed,
            dave_protocol_version: 0,
            heartbeat_timeout_factor: 1.5,
            resume_window: Duration::from_secs(30),
            limits: Limits::default(),
        }
    }
}

impl ServerConfig {
    /// Offers all seven modes, the five discontinued ones after the live ones.
    pub fn with_legacy_modes(mut self) -> Self {
        self.modes = Mode::PREFERENCE.to_vec();
        self
    }

    /// The heartbeat timeout: `heartbeat_interval_ms * heartbeat_timeout_factor`.
    pub fn heartbeat_timeout(&self) -> Duration {
        let ms = (self.heartbeat_interval_ms * self.heartbeat_timeout_factor).clamp(1.0, 86_400_000.0);
        Duration::from_micros((ms * 1000.0) as u64)
    }
}
