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
    /// Members of one room's DAVE group; clients beyond this stay pending
    /// (their key packages are kept, not proposed) until a seat frees up.
    /// Keeps the MLS tree, and the Welcome of a join, within
    /// `max_frame_bytes`.
    pub dave_group_members: usize,
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
            dave_group_members: 128,
        }
    }
}

/// Whether the server runs DAVE (end-to-end encryption, DAVE.md §5), and for
/// whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DavePolicy {
    /// As Discord since March 2026: every room runs DAVE protocol version 1,
    /// and a client whose Identify offers no DAVE (`max_dave_protocol_version`
    /// absent or 0) is closed with 4017 right after Hello, without a session.
    #[default]
    Required,
    /// As Discord before March 2026: a room runs version 1 while all its
    /// members support DAVE and version 0 while any does not, with a
    /// downgrade when a client without DAVE joins and an upgrade when the
    /// last one leaves.
    Optional,
    /// No DAVE: Session Description says version 0 to everyone and the DAVE
    /// frames clients send are ignored.
    Off,
}

impl DavePolicy {
    /// The name used on the command line: `required`, `optional` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            DavePolicy::Required => "required",
            DavePolicy::Optional => "optional",
            DavePolicy::Off => "off",
        }
    }

    /// The policy for a command-line name.
    pub fn from_name(name: &str) -> Option<DavePolicy> {
        [DavePolicy::Required, DavePolicy::Optional, DavePolicy::Off].into_iter().find(|p| p.as_str() == name)
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
    /// Seed of every random choice (SSRCs, keys, ids, UDP faults, and each
    /// room's DAVE signing key).
    pub seed: u64,
    /// Whether rooms run DAVE. Default [`DavePolicy::Required`].
    pub dave: DavePolicy,
    /// How long a DAVE transition waits for every member's op 23 before
    /// op 22 executes it anyway (default 2 s).
    pub dave_execute_timeout: Duration,
    /// How long a batch of DAVE proposals (op 27) waits for a valid commit
    /// (op 28) before it is revoked and proposed again (default 5 s).
    pub dave_commit_timeout: Duration,
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
            dave: DavePolicy::Required,
            dave_execute_timeout: Duration::from_secs(2),
            dave_commit_timeout: Duration::from_secs(5),
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
