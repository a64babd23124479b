//! Per-input errors. None of them changes the connection's state: the input
//! is dropped (and counted) and the connection carries on.

use crate::wire::WireError;

/// A websocket message could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// The frame is malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A message arrived while no websocket is open (API misuse: after
    /// `CloseWs`, report nothing more from that socket).
    #[error("no websocket is open")]
    NotOpen,
    /// A well-formed message that is not valid now (e.g. a Session
    /// Description for a mode that was not selected); it was ignored.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
}

/// A datagram could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    /// It did not come from the voice server's address.
    #[error("datagram from an address other than the voice server")]
    ForeignSource,
    /// There is no session key yet.
    #[error("no session established yet")]
    NotReady,
    /// RTP with a payload type other than Opus (120).
    #[error("payload type {0} is not Opus")]
    NotOpus(u8),
    /// Voice from an SSRC no Speaking message has named.
    #[error("voice from unknown ssrc {0}")]
    UnknownSsrc(u32),
    /// The packet is malformed or failed authentication.
    #[error(transparent)]
    Packet(#[from] voice_rtp::Error),
    /// Not RTP, RTCP or IP discovery.
    #[error("unrecognised datagram")]
    Unrecognised,
}

/// Audio could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No session is established (audio is refused, not queued).
    #[error("voice session not established")]
    NotReady,
    /// The frame is larger than one UDP datagram can carry.
    #[error("frame of {0} bytes is too large")]
    FrameTooLarge(usize),
    /// Sealing failed; `NonceExhausted` means a new key is needed.
    #[error(transparent)]
    Crypto(#[from] voice_rtp::Error),
}
