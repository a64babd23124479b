//! Counters of everything the connection did, dropped or refused.

use std::time::Duration;

/// Connection statistics. Every drop is counted somewhere here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Websocket messages received.
    pub ws_frames_received: u64,
    /// Websocket messages queued for sending.
    pub ws_frames_sent: u64,
    /// Websocket messages that failed to parse.
    pub malformed_frames: u64,
    /// Messages with opcodes this crate ignores.
    pub ignored_frames: u64,
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// Heartbeat ACKs that matched.
    pub heartbeat_acks: u64,
    /// Heartbeat ACKs that matched nothing.
    pub stray_acks: u64,
    /// Sockets declared dead for missing ACKs.
    pub zombie_closes: u64,
    /// Round-trip time of the last acknowledged heartbeat.
    pub heartbeat_rtt: Option<Duration>,
    /// Resume attempts.
    pub resumes: u64,
    /// Fresh connection attempts after the first.
    pub reconnects: u64,
    /// IP discovery requests sent.
    pub discovery_attempts: u64,
    /// UDP keepalives sent.
    pub keepalives_sent: u64,
    /// Voice packets sent (silence included).
    pub packets_sent: u64,
    /// Voice bytes sent (datagram sizes).
    pub bytes_sent: u64,
    /// Silence frames sent.
    pub silence_frames_sent: u64,
    /// Voice packets received and delivered.
    pub packets_received: u64,
    /// Voice bytes received (datagram sizes).
    pub bytes_received: u64,
    /// RTCP packets received.
    pub rtcp_received: u64,
    /// Packets dropped: authentication failed or malformed.
    pub decrypt_failures: u64,
    /// Packets dropped: not Opus (payload type other than 120).
    pub non_opus_drops: u64,
    /// Packets dropped: unknown SSRC.
    pub unknown_ssrc_drops: u64,
    /// Packets dropped: not from the voice server.
    pub foreign_source_drops: u64,
    /// Datagrams dropped: arrived before a session key.
    pub not_ready_drops: u64,
    /// Datagrams dropped: unrecognised.
    pub unrecognised_datagrams: u64,
    /// Outputs dropped because the driver did not drain.
    pub outputs_dropped: u64,
    /// Remote users not tracked because the map was full.
    pub users_dropped: u64,
}
