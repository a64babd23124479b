//! Errors of the driver layer.

use voice_proto::DisconnectReason;

/// Why `join` or `connect` did not produce a connected call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// No connection within the configured join timeout.
    #[error("voice connection timed out")]
    Timeout,
    /// The connection ended before it was established.
    #[error("voice connection failed: {0:?}")]
    Disconnected(DisconnectReason),
    /// The call's driver task is gone.
    #[error("the call's driver has stopped")]
    DriverGone,
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// A socket could not be opened.
    #[error("socket: {0}")]
    Io(String),
    /// The bot's main gateway has not started yet (its user id is not
    /// known), so no call can join.
    #[error("the main gateway has not started")]
    GatewayNotReady,
    /// The voice server could not be reached: the websocket did not open
    /// or closed during the handshake. Returned at once for a failure that
    /// retrying cannot fix (a TLS or certificate error, a bad host, an
    /// HTTP 4xx refusal of the upgrade; `Manager::join` then leaves the
    /// channel), else when the join timeout passes after failed attempts
    /// (the last failure given).
    #[error("voice server unreachable: {0}")]
    Unreachable(ConnectFailure),
}

/// Why an attempt to reach the voice server failed, as
/// [`CallState::last_connect_failure`](crate::CallState::last_connect_failure)
/// and [`JoinError::Unreachable`] report it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The server refused the TCP connection (nothing listens there).
    #[error("connection refused")]
    Refused,
    /// TLS failed: an untrusted or invalid certificate, or a handshake
    /// error (rustls' message).
    #[error("TLS: {0}")]
    Tls(String),
    /// The endpoint's host is not a valid server name.
    #[error("bad host {0:?}")]
    BadHost(String),
    /// The server answered the websocket upgrade with this HTTP status.
    #[error("websocket upgrade refused with HTTP {0}")]
    Rejected(u16),
    /// Opening (TCP, TLS, upgrade) took longer than the configured limit.
    #[error("timed out")]
    Timeout,
    /// The websocket opened and then closed before the session was
    /// established, with the server's close code if it sent one.
    #[error("closed during the handshake (code {0:?})")]
    Closed(Option<u16>),
    /// Another socket or websocket error (its message).
    #[error("{0}")]
    Other(String),
}

impl ConnectFailure {
    /// Whether retrying cannot help: TLS, a bad host, or an upgrade
    /// refused with a client error (4xx but 408 and 429; a 5xx is the
    /// server's trouble and may pass).
    pub fn is_permanent(&self) -> bool {
        match self {
            ConnectFailure::Tls(_) | ConnectFailure::BadHost(_) => true,
            ConnectFailure::Rejected(status) => (400..500).contains(status) && !matches!(status, 408 | 429),
            _ => false,
        }
    }
}

/// A call command could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The call's driver task is gone.
    #[error("the call's driver has stopped")]
    DriverGone,
}

/// Why a websocket could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The endpoint's host is not a valid TLS server name.
    #[error("bad websocket host {0:?}")]
    BadHost(String),
    /// TCP or TLS failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The server answered the websocket upgrade with this HTTP status
    /// instead of 101.
    #[error("websocket upgrade refused with HTTP status {0}")]
    Rejected(u16),
    /// The upgrade's answer broke the websocket handshake's rules.
    #[error("websocket handshake: {0}")]
    Handshake(&'static str),
    /// Opening took too long.
    #[error("websocket connect timed out")]
    Timeout,
}

impl ConnectError {
    /// What the application is told about this failure.
    pub fn failure(&self) -> ConnectFailure {
        match self {
            ConnectError::BadHost(h) => ConnectFailure::BadHost(h.clone()),
            ConnectError::Timeout => ConnectFailure::Timeout,
            ConnectError::Io(e) => io_failure(e),
            ConnectError::Rejected(status) => ConnectFailure::Rejected(*status),
            ConnectError::Handshake(why) => ConnectFailure::Other(format!("websocket handshake: {why}")),
        }
    }
}

fn io_failure(e: &std::io::Error) -> ConnectFailure {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        return ConnectFailure::Refused;
    }
    // TLS failures come as an io::Error around the rustls error
    // (`tls::connect`).
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(tls) => ConnectFailure::Tls(tls.to_string()),
        None => ConnectFailure::Other(e.to_string()),
    }
}

/// A frame could not be queued without waiting; the frame comes back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError {
    /// The queue is full: try again after a frame has gone out.
    #[error("the frame queue is full")]
    Full(bytes::Bytes),
    /// The call's driver has stopped: no frame will go out.
    #[error("the call's driver has stopped")]
    DriverGone(bytes::Bytes),
}

impl TrySendError {
    /// The frame that was not queued.
    pub fn into_frame(self) -> bytes::Bytes {
        match self {
            TrySendError::Full(f) | TrySendError::DriverGone(f) => f,
        }
    }
}

/// Certificates could not be added to the trusted roots.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The PEM text is malformed.
    #[error("PEM: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    /// The PEM text holds no certificate (a key or an empty file, say).
    #[error("no certificate in the PEM text")]
    NoCertificate,
}

/// An Ogg Opus file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OggError {
    /// The file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The Ogg framing is broken.
    #[error("ogg: {0}")]
    Ogg(#[from] ogg::OggReadError),
    /// The stream is not Opus (no `OpusHead`/`OpusTags`).
    #[error("not an Ogg Opus stream: {0}")]
    NotOpus(&'static str),
}
