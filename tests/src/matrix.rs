//! The vocabulary of the fault matrices (the simulated one and the one over
//! real sockets): what a row expects the bot author to see at the end.

use voice_proto::DisconnectReason;

/// A row's expected end state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Still connected, having resumed (same session).
    Resumed,
    /// Still connected, on a fresh session.
    Fresh,
    /// Still connected, nothing reconnected.
    Untouched,
    /// The call ended with this reason.
    Final(DisconnectReason),
}
