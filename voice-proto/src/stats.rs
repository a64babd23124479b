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
    /// Voice packets received and delivered (silence included).
    pub packets_received: u64,
    /// Silence frames received and delivered.
    pub silence_frames_received: u64,
    /// Voice bytes received (datagram sizes).
    pub bytes_received: u64,
    /// RTCP packets received.
    pub rtcp_received: u64,
    /// Packets dropped: authentication failed or malformed.
    pub decrypt_failures: u64,
    /// Packets dropped: not Opus (payload type other than 120).
    pub non_opus_drops: u64,
    /// Packets dropped: their SSRC was not named (by op 5) within a second,
    /// or too many waited.
    pub unknown_ssrc_drops: u64,
    /// Packets that arrived before op 5 named their SSRC, kept for it.
    pub unknown_ssrc_held: u64,
    /// Packets dropped: not from the voice server.
    pub foreign_source_drops: u64,
    /// Datagrams dropped: arrived before a session key.
    pub not_ready_drops: u64,
    /// Datagrams dropped: unrecognised.
    pub unrecognised_datagrams: u64,
    /// Outputs dropped because the driver did not drain.
    pub outputs_dropped: u64,
    /// SSRC-to-user namings evicted (the oldest first) because the server
    /// named more SSRCs than `Config::max_users`.
    pub users_dropped: u64,
    /// End-to-end encryption (DAVE).
    pub dave: DaveStats,
    /// RTCP reports sent and read.
    pub rtcp: RtcpStats,
}

/// RTCP reports sent and read (RFC 3550 §6.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RtcpStats {
    /// Reports sent (a sender report while sending, else a receiver report).
    pub reports_sent: u64,
    /// Sender reports read from the server.
    pub sender_reports_read: u64,
    /// Receiver reports read from the server.
    pub receiver_reports_read: u64,
    /// Reports that opened but did not parse.
    pub malformed: u64,
    /// The server's last report block about our stream.
    pub remote: Option<RemoteReport>,
}

/// What the server's last report block said about the stream we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteReport {
    /// Fraction of our packets lost in its last interval, in 1/256.
    pub fraction_lost: u8,
    /// Our packets it counts as lost in all.
    pub cumulative_lost: i32,
    /// Interarrival jitter of our packets as it measured them.
    pub jitter: Duration,
    /// Round trip from our last sender report (RFC 3550 §6.4.1: arrival
    /// minus its LSR and DLSR); `None` before it echoed one.
    pub rtt: Option<Duration>,
}

/// Reception statistics of one remote source (RFC 3550 appendix A.3, A.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceStats {
    /// The source.
    pub ssrc: u32,
    /// Its user.
    pub user_id: crate::wire::Snowflake,
    /// Packets received (duplicates included, as RFC 3550 counts them).
    pub received: u64,
    /// Packets expected but not received, in all (negative with duplicates).
    pub lost: i64,
    /// Fraction lost in the last RTCP report interval, in 1/256 (updated
    /// when a report is built; 0 while `Config::rtcp_interval` is `None`).
    pub fraction_lost: u8,
    /// Interarrival jitter.
    pub jitter: Duration,
    /// Extended highest sequence number received.
    pub highest_sequence: u32,
}

/// What end-to-end encryption (DAVE) did, refused and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DaveStats {
    /// The protocol version in force for sending (0: transport encryption only).
    pub protocol_version: u16,
    /// The MLS epoch of the group, once there is one.
    pub epoch: Option<u64>,
    /// Opus frames encrypted for sending.
    pub frames_encrypted: u64,
    /// Frames decrypted on receive (held ones included, once released).
    pub frames_decrypted: u64,
    /// Silence frames passed through unencrypted (both ways, DAVE calls only).
    pub silence_passed: u64,
    /// Plaintext frames accepted during a transition to or from version 0.
    pub plaintext_accepted: u64,
    /// Frames refused by `send_opus` because no key is installed yet.
    pub send_refused_pending: u64,
    /// Frames that failed to encrypt.
    pub encrypt_failures: u64,
    /// Received frames refused: plaintext Opus on a call that needs DAVE.
    pub unencrypted_refused: u64,
    /// Received frames refused: a nonce already seen or too old (replay).
    pub replays_refused: u64,
    /// Received frames held because their key was not installed yet.
    pub frames_held: u64,
    /// Held frames that decrypted later and were delivered.
    pub held_released: u64,
    /// Held frames dropped at the age limit: their key never arrived (sent
    /// under an epoch this client is not in, or corrupt).
    pub held_expired: u64,
    /// Frames dropped because the hold buffer was full.
    pub held_overflow: u64,
    /// Key packages sent (op 26).
    pub key_packages_sent: u64,
    /// Commits (with welcomes) sent (op 28).
    pub commits_sent: u64,
    /// Transitions prepared (op 23 sent, or executed at once for id 0).
    pub transitions_prepared: u64,
    /// Transitions executed: the send key changed.
    pub transitions_executed: u64,
    /// Commits or welcomes that could not be processed: op 31 sent and a
    /// new key package.
    pub recoveries: u64,
    /// MLS messages refused (bad external sender, proposals, unknown ids).
    pub mls_errors: u64,
}
