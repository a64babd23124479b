//! The tokio adapter of the voice driver layer: a Discord voice connection
//! per guild, each driven by one task that owns its websocket (rustls TLS),
//! its UDP socket and one timer. This crate is only the tokio seam
//! ([`TokioRuntime`]); the calls, pacing, queues and files are
//! [`voice_driver`]'s, re-exported here.
//!
//! ```no_run
//! use voice_tokio::{DriverConfig, Manager};
//! use voice_proto::wire::Snowflake;
//!
//! # async fn run(shard: tokio::sync::mpsc::UnboundedSender<voice_proto::UpdateVoiceState>) -> Result<(), Box<dyn std::error::Error>> {
//! // `shard` forwards op 4 payloads to your main gateway connection, and
//! // every VOICE_STATE_UPDATE / VOICE_SERVER_UPDATE goes to
//! // `manager.handle_gateway_event`.
//! let manager = Manager::new(Snowflake(1234), shard, DriverConfig::default())?;
//! let call = manager.join(Snowflake(1), Snowflake(2)).await?;
//! call.play_ogg("song.ogg").await?;
//! let mut heard = call.take_audio().expect("first take");
//! while let Some(packet) = heard.recv().await {
//!     println!("{} said {} bytes", packet.user_id, packet.opus.len());
//! }
//! # Ok(()) }
//! ```
//!
//! Audio goes through a bounded [`FrameSink`] (or a [`FrameSource`] the
//! driver pulls) and leaves at one frame per 20 ms on an absolute schedule
//! ([`pacing`]); received audio comes out per user ([`ReceivedAudio`]);
//! events ([`voice_proto::Event`]) come through a bounded channel, and every
//! drop is counted in [`CallStats`].
//!
//! Features: `serenity` (module `serenity`: this library as a serenity
//! client's voice manager, `ClientBuilder::register_voice()`) and
//! `twilight` (module `twilight`: `Manager::process(&event)` and op 4
//! through twilight's shard senders).
//!
//! Calls are end-to-end encrypted (DAVE) whenever the server negotiates it,
//! as Discord does for every non-stage channel: queued frames wait until
//! the call's first transition executes ([`Call::wait_can_send`]), and
//! [`CallState`] carries the DAVE version and the voice privacy code.

mod seam;
#[cfg(feature = "serenity")]
pub mod serenity;
#[cfg(feature = "twilight")]
pub mod twilight;

use std::sync::Arc;

pub use seam::TokioRuntime;
// The driver layer's whole API; `Manager` and `connect` below, with this
// runtime filled in, take the place of the layer's own.
pub use voice_driver::*;

/// Voice calls of one bot, by guild, on tokio: [`voice_driver::Manager`]
/// (whose methods this derefs to) with the tokio runtime filled in.
#[derive(Debug)]
pub struct Manager(voice_driver::Manager);

impl Manager {
    /// A manager for the bot `user_id`, sending op 4 through `gateway`.
    /// Its calls are spawned on the current tokio runtime.
    pub fn new(
        user_id: voice_proto::wire::Snowflake,
        gateway: impl MainGateway,
        config: DriverConfig,
    ) -> Result<Self, JoinError> {
        voice_driver::Manager::new(Arc::new(TokioRuntime), user_id, gateway, config).map(Manager)
    }
}

impl std::ops::Deref for Manager {
    type Target = voice_driver::Manager;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Connects with credentials in hand, without a main gateway (for bot
/// frameworks and audio nodes that run their own); see
/// [`voice_driver::connect`]. Resolves when connected.
///
/// Everything it takes is re-exported here; no other crate is needed:
///
/// ```no_run
/// use voice_tokio::{Bytes, ConnectionInfo, DriverConfig, Snowflake, SpeakingFlags, Token};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let info = ConnectionInfo {
///     guild_id: Snowflake(1),
///     channel_id: Snowflake(2),
///     user_id: Snowflake(3),
///     session_id: "from VOICE_STATE_UPDATE".into(),
///     token: Token::new("from VOICE_SERVER_UPDATE"),
///     endpoint: "c-ams1-1234.discord.media:443".into(),
/// };
/// let call = voice_tokio::connect(info, DriverConfig::default()).await?;
/// let state = call.state();
/// println!("connected: {:?} as SSRC {:?}", state.mode, state.ssrc);
/// call.set_speaking_flags(SpeakingFlags::PRIORITY).await?;
/// call.frame_sink().send(Bytes::from_static(&[0xF8, 0xFF, 0xFE])).await?;
/// # Ok(()) }
/// ```
pub async fn connect(info: ConnectionInfo, config: DriverConfig) -> Result<Call, JoinError> {
    voice_driver::connect(Arc::new(TokioRuntime), info, config).await
}
