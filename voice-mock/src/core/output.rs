//! What the core hands out: outputs to perform and events to observe.

use std::net::SocketAddr;
use std::time::Instant;

use voice_proto::wire::{Snowflake, WsFrame};
use voice_rtp::Mode;

/// One accepted websocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What the main gateway would hand a bot for a voice join: the
/// `VOICE_STATE_UPDATE` session id and the `VOICE_SERVER_UPDATE` token
/// (`CHANNEL_ID.random`) and endpoint; exactly what a driver-only client
/// (`voice_tokio::connect`) takes.
pub type JoinInfo = voice_proto::ConnectionInfo;

/// Something the caller of [`crate::MockServer::poll_output`] must do or may
/// observe. Drain until [`ServerOutput::Timeout`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerOutput {
    /// Send a frame on a websocket.
    WsSend {
        /// The websocket.
        conn: ConnId,
        /// The frame.
        frame: WsFrame,
    },
    /// Close a websocket with a close code; the core has forgotten it.
    WsClose {
        /// The websocket.
        conn: ConnId,
        /// The close code.
        code: u16,
    },
    /// Drop a websocket's connection without a close frame (a failing
    /// network: [`crate::Fault::CutUser`]); the core has forgotten it.
    WsCut {
        /// The websocket.
        conn: ConnId,
    },
    /// Send a datagram from the server's UDP socket.
    Transmit {
        /// Destination.
        to: SocketAddr,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// Something happened.
    Event(ServerEvent),
    /// Nothing more to do: call `handle_timeout` at this instant (if any).
    Timeout(Option<Instant>),
}

/// Notable changes, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A client identified and has a new session.
    Identified {
        /// The websocket.
        conn: ConnId,
        /// The user.
        user: Snowflake,
        /// The guild.
        guild: Snowflake,
        /// The channel (room).
        channel: Snowflake,
        /// The SSRC assigned.
        ssrc: u32,
    },
    /// A client resumed its session on a new websocket.
    Resumed {
        /// The new websocket.
        conn: ConnId,
        /// The user.
        user: Snowflake,
    },
    /// A client selected its protocol and got its key.
    ProtocolSelected {
        /// The user.
        user: Snowflake,
        /// The mode chosen.
        mode: Mode,
    },
    /// A websocket was closed (by the client when `by_server` is false).
    Closed {
        /// The websocket.
        conn: ConnId,
        /// The user, if it had identified.
        user: Option<Snowflake>,
        /// The close code, if any.
        code: Option<u16>,
        /// Whether the server closed it.
        by_server: bool,
    },
    /// A session ended (final close, expiry, move or replacement).
    SessionEnded {
        /// The user.
        user: Snowflake,
        /// The guild.
        guild: Snowflake,
    },
    /// A DAVE transition was executed: op 22 went to the room.
    DaveTransitionExecuted {
        /// The guild.
        guild: Snowflake,
        /// The channel.
        channel: Snowflake,
        /// The transition id.
        transition_id: u16,
        /// The room's MLS epoch after it (0 after a downgrade).
        epoch: u64,
        /// The room's protocol version after it.
        protocol_version: u16,
        /// Whether the execute timeout sent op 22 before every member was
        /// ready.
        timed_out: bool,
    },
    /// A member's commit won its epoch and was announced (op 29 / op 30).
    DaveCommitAccepted {
        /// The guild.
        guild: Snowflake,
        /// The channel.
        channel: Snowflake,
        /// The committer.
        user: Snowflake,
        /// The transition that announces it.
        transition_id: u16,
        /// The epoch it moves the group to.
        epoch: u64,
    },
    /// A member's commit failed a check and was dropped.
    DaveCommitRejected {
        /// The guild.
        guild: Snowflake,
        /// The channel.
        channel: Snowflake,
        /// The committer.
        user: Snowflake,
        /// Which check failed.
        reason: &'static str,
    },
    /// A member's key package (op 26) was refused.
    DaveKeyPackageRejected {
        /// The guild.
        guild: Snowflake,
        /// The channel.
        channel: Snowflake,
        /// The member.
        user: Snowflake,
        /// Which check failed.
        reason: &'static str,
    },
}
