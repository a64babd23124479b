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
    /// The websocket upgrade failed.
    #[error(transparent)]
    Ws(#[from] async_tungstenite::tungstenite::Error),
    /// Opening took too long.
    #[error("websocket connect timed out")]
    Timeout,
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
