//! Per-input errors. None of them changes the connection's state: the input
//! is dropped (and counted) and the connection carries on.
//!
//! Errors about what came from the network (a malformed frame, a datagram
//! that fails authentication) are kept apart from [`Misuse`]: the caller's
//! own code broke the driving contract, and no input from a peer can cause
//! it.

use crate::wire::WireError;

/// The API was used against its contract: a bug in the driver, never
/// something a peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    /// A websocket message was reported while no websocket is open: after
    /// [`Output::CloseWs`](crate::Output::CloseWs), report nothing more
    /// from that socket.
    #[error("no websocket is open (report nothing from a socket after CloseWs)")]
    WsNotOpen,
    /// An input after `close()` completed ([`Event::Closed`](crate::Event::Closed)):
    /// the connection is inert.
    #[error("the connection is closed")]
    Closed,
}

/// A websocket message could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// The frame is malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The driver broke the contract (a message from a socket it was told
    /// to close, or after `close()`).
    #[error(transparent)]
    Misuse(#[from] Misuse),
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
    /// The packet is malformed or failed authentication.
    #[error(transparent)]
    Packet(#[from] voice_rtp::Error),
    /// Not RTP, RTCP or IP discovery.
    #[error("unrecognised datagram")]
    Unrecognised,
    /// The voice frame inside failed end-to-end decryption.
    #[error(transparent)]
    E2ee(#[from] E2eeError),
    /// The driver broke the contract (a datagram fed after `close()`).
    #[error(transparent)]
    Misuse(#[from] Misuse),
}

/// A received frame that end-to-end encryption (DAVE) refused. Frames whose
/// key is merely not installed yet are not errors: they are held
/// ([`Datagram::Held`](crate::Datagram::Held)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum E2eeError {
    /// Plaintext Opus on a call that needs DAVE (and no transition to or
    /// from version 0 is under way).
    #[error("unencrypted frame on an end-to-end encrypted call")]
    Unencrypted,
    /// A nonce this sender already used, or one too old to track: a replay.
    #[error("replayed or stale end-to-end nonce")]
    Replayed,
    /// The frame did not decrypt and could not be held for later (the hold
    /// buffer is full).
    #[error("undecryptable frame and the hold buffer is full")]
    Undecryptable,
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
    /// The call is end-to-end encrypted (DAVE) and no key is installed yet:
    /// before the first transition executes, or while this client is alone
    /// after a sole-member reset. Nothing was sent (plaintext Opus never
    /// goes out on a DAVE call); offer the frame again once
    /// [`can_send_audio`](crate::VoiceConnection::can_send_audio) is true.
    #[error("end-to-end encryption is not ready")]
    E2eePending,
    /// End-to-end encryption of the frame failed (logged); nothing was sent.
    #[error("end-to-end encryption failed")]
    E2eeFailed,
    /// The driver broke the contract (audio after `close()`).
    #[error(transparent)]
    Misuse(#[from] Misuse),
}
