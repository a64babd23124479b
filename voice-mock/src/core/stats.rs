//! Counters and records, for tests and the log.

use std::collections::BTreeMap;
use std::time::Instant;

use voice_proto::wire::{Snowflake, WsFrame};
use voice_rtp::Mode;

use super::ConnId;

/// A frame a client sent, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFrame {
    /// When it arrived.
    pub at: Instant,
    /// The websocket it came on.
    pub conn: ConnId,
    /// The opcode, if the frame could be read far enough.
    pub op: Option<u8>,
    /// The frame: text as a string, binary as bytes. Identify and Resume
    /// carry the token: do not log these.
    pub frame: WsFrame,
}

impl ReceivedFrame {
    /// The text of a text frame.
    pub fn text(&self) -> Option<&str> {
        self.frame.as_text()
    }
}

/// Counters for one user, over all its sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserStats {
    /// Text frames received, by opcode.
    pub frames_by_op: BTreeMap<u8, u64>,
    /// Binary frames received.
    pub binary_frames: u64,
    /// Frames received but not kept for `received_frames` (cap reached).
    pub frames_not_kept: u64,
    /// Heartbeats answered with an ACK.
    pub heartbeat_acks_sent: u64,
    /// Heartbeats not answered because of a fault.
    pub heartbeat_acks_withheld: u64,
    /// RTP packets received from this user and decrypted.
    pub rtp_in: u64,
    /// RTP packets sent to this user (after the loss fault).
    pub rtp_out: u64,
    /// RTP packets to this user dropped (fault or queue caps).
    pub rtp_out_dropped: u64,
    /// RTCP packets received from this user.
    pub rtcp_in: u64,
    /// Of those, reports that opened with the session key and parsed.
    pub rtcp_reports: u64,
    /// Keepalives received from this user.
    pub keepalives: u64,
    /// IP discovery requests answered.
    pub discoveries: u64,
    /// Packets from this user's SSRC that failed to decrypt.
    pub decrypt_failures: u64,
    /// Close codes the server sent to this user, in order.
    pub closes_sent: Vec<u16>,
    /// Messages dropped from the resume buffer (cap reached).
    pub resume_buffer_evictions: u64,
    /// The current session's SSRC.
    pub ssrc: Option<u32>,
    /// The current session's mode.
    pub mode: Option<Mode>,
}

/// Server-wide counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Per user.
    pub users: BTreeMap<Snowflake, UserStats>,
    /// Websockets open.
    pub conns: usize,
    /// Sessions alive (attached or resumable).
    pub sessions: usize,
    /// Websockets accepted in total.
    pub conns_accepted: u64,
    /// Websockets refused for the connection cap.
    pub conns_refused: u64,
    /// Frames received in total.
    pub frames_in: u64,
    /// Frames that failed to decode.
    pub malformed_frames: u64,
    /// Frames over the size cap.
    pub oversize_frames: u64,
    /// Frames for unknown (closed) connections, ignored.
    pub frames_after_close: u64,
    /// Close codes sent, by code.
    pub closes_sent: BTreeMap<u16, u64>,
    /// Datagrams received in total.
    pub datagrams_in: u64,
    /// Datagrams that were not for any session, too large, or unparseable.
    pub junk_datagrams: u64,
    /// Datagrams that failed to decrypt.
    pub decrypt_failures: u64,
    /// RTP received before the sender selected a protocol.
    pub rtp_before_session: u64,
    /// IP discovery requests left unanswered by [`crate::Fault::IgnoreDiscovery`].
    pub discoveries_ignored: u64,
    /// Websocket frames lost either way on a path stalled by
    /// [`crate::Fault::StallUser`].
    pub ws_frames_stalled: u64,
    /// Keepalives received.
    pub keepalives: u64,
    /// RTCP packets received.
    pub rtcp_in: u64,
    /// RTCP packets that failed to open with the sender's session key.
    pub rtcp_decrypt_failures: u64,
    /// RTCP packets that opened but were not reports from their sender.
    pub rtcp_malformed: u64,
    /// RTCP answers sent.
    pub rtcp_out: u64,
    /// RTP packets forwarded (sent).
    pub rtp_forwarded: u64,
    /// Datagrams dropped by the loss fault.
    pub udp_fault_dropped: u64,
    /// Datagrams delayed by the delay fault.
    pub udp_fault_delayed: u64,
    /// Datagrams reordered by the reorder fault.
    pub udp_fault_reordered: u64,
    /// Datagrams dropped because the core's queues were full.
    pub queue_drops: u64,
    /// Outputs waiting in the core now.
    pub pending_outputs: usize,
    /// Most outputs ever waiting in the core.
    pub pending_outputs_peak: usize,
    /// Datagrams held by the delay / reorder faults now.
    pub delayed_datagrams: usize,
    /// Largest resume buffer among current sessions.
    pub resume_buffer_max: usize,
    /// Credentials outstanding from `join`.
    pub grants: usize,
    /// DAVE messages from clients that were not in the DAVE flow (policy
    /// Off, a room at version 0, before their Session Description), ignored.
    pub dave_frames_ignored: u64,
    /// Op 23 ignored by the `DaveDropTransitionReady` fault.
    pub dave_ready_dropped: u64,
}
