//! What the connection asks of its driver: [`Output`], [`Event`] and the
//! reasons attached to them.

use std::net::SocketAddr;
use std::time::Instant;

use voice_rtp::Mode;

use crate::close_code::FinalReason;
use crate::connection::OwnedVoicePacket;
use crate::gateway::{UpdateVoiceState, WsTarget};
use crate::wire::{Snowflake, WsFrame};

/// One thing for the driver to do, from [`poll_output`](crate::VoiceConnection::poll_output).
///
/// Drain until [`Output::Timeout`], which is always last and always comes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Send this op 4 payload on the bot's main gateway.
    GatewaySend(UpdateVoiceState),
    /// Open a websocket to this target (TCP to `host:port`, TLS when
    /// `tls`, then the upgrade to [`WsTarget::url`]), then call
    /// `handle_ws_open`. Any socket from before is already closed (a
    /// [`Output::CloseWs`] came first).
    ConnectWs(WsTarget),
    /// Send this frame on the open websocket.
    WsSend(WsFrame),
    /// Close the websocket with `code` and drop it; report nothing more from it.
    CloseWs {
        /// The close code (1000 for a deliberate leave, 4000 to abandon a
        /// socket before resuming).
        code: u16,
    },
    /// Send `bytes` over UDP to `to` (IP discovery, keepalive, silence).
    Transmit {
        /// Destination.
        to: SocketAddr,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// Something the application may act on.
    Event(Event),
    /// A voice packet that was held until its end-to-end key arrived (a
    /// DAVE transition): deliver it as a received packet, like
    /// [`Datagram::Voice`](crate::Datagram::Voice).
    Voice(OwnedVoicePacket),
    /// Call `handle_timeout` at `at` (or never, when `None`); nothing more
    /// to drain.
    Timeout {
        /// The next deadline.
        at: Option<Instant>,
        /// What the deadline is for.
        reason: TimeoutReason,
    },
}

/// What a deadline is for (debugging aid); also the key of the
/// connection's timer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutReason {
    /// No deadline.
    Idle,
    /// Waiting for the main gateway's voice updates.
    VoiceInfo,
    /// Waiting for the websocket to open.
    WsOpen,
    /// Waiting for Ready/Session Description or Resumed.
    Handshake,
    /// Next heartbeat (and the zombie check).
    Heartbeat,
    /// Next IP discovery attempt.
    Discovery,
    /// Next UDP keepalive.
    Keepalive,
    /// Next silence frame of the trailer.
    Silence,
    /// Speaking stops when nothing is sent by then.
    SpeakingIdle,
    /// Reconnect backoff.
    Reconnect,
    /// Waiting for a move after 4014/4022.
    MoveWait,
    /// The oldest frame held for its end-to-end key expires.
    DaveHold,
    /// The next RTCP report.
    RtcpReport,
}

/// Why the connection is reconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReconnectReason {
    /// The websocket closed with this code (`None`: abnormal close).
    Closed(Option<u16>),
    /// Heartbeats went unacknowledged.
    ZombieConnection,
    /// IP discovery got no answer.
    DiscoveryTimeout,
    /// The handshake took too long.
    HandshakeTimeout,
    /// The websocket did not open in time.
    WsOpenTimeout,
    /// The voice server changed (new server update).
    EndpointChanged,
    /// The voice server went away (null endpoint); waiting for a new one.
    EndpointRemoved,
    /// The server's Ready was unusable (bad address).
    BadReady,
}

/// Why the connection is no longer connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The application asked to leave.
    Requested,
    /// The main gateway says the bot is in no channel: left, kicked, channel
    /// deleted, or main session lost. Also 4014/4022 with no move following.
    Kicked,
    /// 4014 or 4022 and no server update within the wait.
    CallTerminated(u16),
    /// 4017: the call needs DAVE end-to-end encryption.
    E2eeRequired,
    /// 4021: rate limited.
    RateLimited,
    /// The server reported a client error (close code).
    ProtocolError(u16),
    /// No common encryption mode.
    NoCommonMode,
    /// Reconnecting failed too many times in a row.
    ReconnectFailed,
    /// The main gateway never sent the voice updates in time.
    VoiceInfoTimeout,
    /// End-to-end encryption (DAVE) could not be set up: an unsupported
    /// version, or commits and welcomes that kept failing.
    E2eeFailed,
}

impl From<FinalReason> for DisconnectReason {
    fn from(r: FinalReason) -> Self {
        match r {
            FinalReason::E2eeRequired => DisconnectReason::E2eeRequired,
            FinalReason::RateLimited => DisconnectReason::RateLimited,
            FinalReason::ClientError(c) => DisconnectReason::ProtocolError(c),
        }
    }
}

/// Something the application may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The session is established: audio may flow (on a DAVE call, once
    /// `can_send_audio` is true).
    #[non_exhaustive]
    Connected {
        /// The transport mode in use.
        mode: Mode,
        /// Our SSRC.
        ssrc: u32,
        /// The DAVE (end-to-end encryption) version negotiated: 0 means
        /// transport encryption only; above 0, audio can be sent once the
        /// first transition executes
        /// ([`can_send_audio`](crate::VoiceConnection::can_send_audio)).
        dave_protocol_version: u16,
    },
    /// The connection dropped and is being re-established.
    Reconnecting {
        /// Why.
        reason: ReconnectReason,
    },
    /// A resume succeeded: same session, same keys.
    Resumed,
    /// The bot was moved to another channel in the guild.
    Moved {
        /// The new channel.
        channel_id: Snowflake,
    },
    /// At start-up the main gateway reports the bot in a channel the
    /// application did not ask for. Call `adopt_ghost` or `drop_ghost`.
    GhostVoiceState {
        /// The channel the bot is in.
        channel_id: Snowflake,
    },
    /// A user's speaking state and SSRC.
    Speaking {
        /// The user.
        user_id: Snowflake,
        /// Their SSRC.
        ssrc: u32,
        /// Their flags.
        flags: u32,
    },
    /// Users present or joining.
    ClientsConnected {
        /// The users.
        user_ids: Vec<Snowflake>,
    },
    /// A user left the call.
    ClientDisconnected {
        /// The user.
        user_id: Snowflake,
    },
    /// The call's voice privacy code changed: a DAVE transition was
    /// prepared for a new epoch (members joined or left; the send key
    /// follows when the transition executes), or there is no group for now
    /// (`None`: after a recovery or a new-group epoch, until the group is
    /// formed again, and after a downgrade to version 0). Equal at every
    /// member of the same epoch; users compare it to verify the call.
    #[non_exhaustive]
    PrivacyCodeChanged {
        /// The 30-digit code, or `None`.
        privacy_code: Option<String>,
        /// The DAVE version now in force.
        dave_protocol_version: u16,
    },
    /// The connection is down and will not come back by itself.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// `close()` finished: nothing more will happen.
    Closed,
}
