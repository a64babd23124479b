//! Configuration of a voice connection.

use core::time::Duration;

use voice_rtp::Mode;

use crate::SpeakingFlags;
use crate::wire::{GatewayVersion, Snowflake};

/// Everything a [`VoiceConnection`](crate::VoiceConnection) needs up front.
///
/// Build it with [`Config::new`] and adjust fields; every limit has a
/// default that suits Discord.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The guild.
    pub guild_id: Snowflake,
    /// The bot's own user id (from the main gateway's READY).
    pub user_id: Snowflake,
    /// Acceptable transport modes, best first: the first one the server
    /// offers is selected. Defaults to [`Mode::LIVE`] (AES-256-GCM, then
    /// XChaCha20-Poly1305, as PROTOCOL.md §4.1 prescribes).
    pub modes: Vec<Mode>,
    /// Voice gateway version to speak (8 unless testing).
    pub gateway_version: GatewayVersion,
    /// Open `ws://` instead of `wss://` (local test servers only).
    pub plain_ws: bool,
    /// `max_dave_protocol_version` sent in Identify: the highest DAVE
    /// (end-to-end encryption) version offered. Defaults to 1, the current
    /// version; 0 offers none, and a server that then negotiates DAVE gets
    /// `Disconnected { reason: E2eeRequired }`. Discord closes non-stage
    /// calls that do not offer DAVE with 4017.
    pub max_dave_protocol_version: u16,
    /// DAVE receive hold: frames kept per sender while their key is not
    /// installed yet (50 frames = 1 s of audio).
    pub dave_hold_frames: usize,
    /// DAVE receive hold: frames kept in all, over every sender.
    pub dave_hold_total: usize,
    /// DAVE receive hold: how long a frame may wait for its key.
    pub dave_hold_age: Duration,
    /// Commits or welcomes in a row that may fail (each answered with op 31
    /// and a new key package) before the call gives up with
    /// `Disconnected { reason: E2eeFailed }`.
    pub dave_max_recoveries: u32,
    /// Self-mute flag sent in op 4.
    pub self_mute: bool,
    /// Self-deafen flag sent in op 4.
    pub self_deaf: bool,
    /// Seed of the connection's RNG (SSRC-independent choices: initial RTP
    /// sequence, timestamp and nonce counter, backoff jitter).
    pub seed: u64,
    /// First RTP sequence number of each new session; `None` picks one from
    /// the RNG (what Discord clients do).
    pub initial_sequence: Option<u16>,
    /// First RTP timestamp of each new session; `None` picks one from the RNG.
    pub initial_timestamp: Option<u32>,
    /// Unix time in milliseconds at the `now` given to `new`: heartbeat
    /// nonces and RTCP's NTP timestamps are derived from it (any value
    /// works for the connection; drivers set the wall clock's).
    pub unix_ms_at_start: u64,
    /// How long to wait for the main gateway's voice state and server
    /// updates after op 4 (Discord sends nothing for a full channel).
    pub voice_info_timeout: Duration,
    /// How long a websocket may take to open.
    pub ws_open_timeout: Duration,
    /// How long from Identify (or Resume) to Session Description (or Resumed).
    pub handshake_timeout: Duration,
    /// IP discovery: interval between attempts.
    pub discovery_interval: Duration,
    /// IP discovery: attempts before giving up on this connection attempt.
    pub discovery_attempts: u32,
    /// UDP keepalive interval.
    pub keepalive_interval: Duration,
    /// After a 4014/4022 close, how long to wait for a move before giving up.
    pub move_wait: Duration,
    /// First reconnect backoff step (the first retry is immediate).
    pub backoff_base: Duration,
    /// Largest reconnect backoff.
    pub backoff_max: Duration,
    /// Failed reconnect attempts in a row before giving up.
    pub max_reconnect_attempts: u32,
    /// How often to send an RTCP report while a session is up (`None`:
    /// never; the server's reports are read either way).
    pub rtcp_interval: Option<Duration>,
    /// The flags announced in op 5 when audio starts (microphone unless
    /// set; see [`VoiceConnection::set_speaking_flags`](crate::VoiceConnection::set_speaking_flags)).
    pub speaking_flags: SpeakingFlags,
    /// Speaking stops (five silence frames follow) when no frame was sent
    /// for this long.
    pub speaking_idle: Duration,
    /// Largest number of queued outputs; beyond it outputs are dropped and
    /// counted (the caller is not draining).
    pub max_queued_outputs: usize,
    /// Largest accepted websocket frame.
    pub max_frame_len: usize,
    /// Largest number of tracked remote users (SSRC map entries); past it,
    /// the SSRC named longest ago is forgotten first.
    pub max_users: usize,
}

impl Config {
    /// A configuration for `user_id` in `guild_id`, with default limits.
    pub fn new(guild_id: Snowflake, user_id: Snowflake) -> Self {
        Config {
            guild_id,
            user_id,
            modes: Mode::LIVE.to_vec(),
            gateway_version: GatewayVersion::V8,
            plain_ws: false,
            max_dave_protocol_version: davey::DAVE_PROTOCOL_VERSION,
            dave_hold_frames: 100,
            dave_hold_total: 512,
            dave_hold_age: Duration::from_secs(2),
            dave_max_recoveries: 5,
            self_mute: false,
            self_deaf: false,
            seed: 0x05EE_D0FF_01CE,
            initial_sequence: None,
            initial_timestamp: None,
            unix_ms_at_start: 0,
            voice_info_timeout: Duration::from_secs(15),
            ws_open_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(15),
            discovery_interval: Duration::from_secs(1),
            discovery_attempts: 5,
            keepalive_interval: Duration::from_secs(5),
            move_wait: Duration::from_secs(10),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_reconnect_attempts: 6,
            rtcp_interval: Some(Duration::from_secs(5)),
            speaking_flags: SpeakingFlags::MICROPHONE,
            speaking_idle: Duration::from_millis(100),
            max_queued_outputs: 1024,
            max_frame_len: 1 << 20,
            max_users: 4096,
        }
    }
}
