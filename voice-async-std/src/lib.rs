//! The async-std and smol adapter of the voice driver layer: its runtime
//! seam ([`AsyncIoRuntime`]) on `async-io` (reactor and timers),
//! `async-net` (TCP with name resolution) and `async-executor`, the
//! primitives both async-std and smol run on. The calls, pacing, queues
//! and files are [`voice_driver`]'s, re-exported here with the same API as
//! `voice-tokio`.
//!
//! ```no_run
//! use voice_async_std::{DriverConfig, Manager};
//! use voice_proto::wire::Snowflake;
//!
//! # fn run(shard: impl Fn(voice_proto::UpdateVoiceState) + Send + Sync + 'static) -> Result<(), Box<dyn std::error::Error>> {
//! smol::block_on(async {
//!     let manager = Manager::new(Snowflake(1234), shard, DriverConfig::default())?;
//!     let call = manager.join(Snowflake(1), Snowflake(2)).await?;
//!     call.play_ogg("song.ogg").await?;
//!     Ok(())
//! })
//! # }
//! ```
//!
//! Call drivers run on a small executor of this crate's (one thread per
//! core, started on first use), so that they keep their 20 ms pace whatever
//! the application's executor does; [`AsyncIoRuntime::with_spawner`] runs
//! them on the application's (`smol::spawn`, `async_std::task::spawn`).

mod seam;

use std::sync::Arc;

pub use seam::AsyncIoRuntime;
// The driver layer's whole API; `Manager` and `connect` below, with this
// runtime filled in, take the place of the layer's own.
pub use voice_driver::*;

/// Voice calls of one bot, by guild: [`voice_driver::Manager`] (whose
/// methods this derefs to) on [`AsyncIoRuntime`].
#[derive(Debug)]
pub struct Manager(voice_driver::Manager);

impl Manager {
    /// A manager for the bot `user_id`, sending op 4 through `gateway`, its
    /// calls on the default [`AsyncIoRuntime`].
    pub fn new(
        user_id: voice_proto::wire::Snowflake,
        gateway: impl MainGateway,
        config: DriverConfig,
    ) -> Result<Self, JoinError> {
        Self::with_runtime(AsyncIoRuntime::new(), user_id, gateway, config)
    }

    /// A manager whose calls run on `runtime` (say, one that spawns on the
    /// application's executor).
    pub fn with_runtime(
        runtime: AsyncIoRuntime,
        user_id: voice_proto::wire::Snowflake,
        gateway: impl MainGateway,
        config: DriverConfig,
    ) -> Result<Self, JoinError> {
        voice_driver::Manager::new(Arc::new(runtime), user_id, gateway, config).map(Manager)
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
/// use voice_async_std::{Bytes, ConnectionInfo, DriverConfig, Snowflake, SpeakingFlags, Token};
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
/// let call = voice_async_std::connect(info, DriverConfig::default()).await?;
/// let state = call.state();
/// println!("connected: {:?} as SSRC {:?}", state.mode, state.ssrc);
/// call.set_speaking_flags(SpeakingFlags::PRIORITY).await?;
/// call.frame_sink().send(Bytes::from_static(&[0xF8, 0xFF, 0xFE])).await?;
/// # Ok(()) }
/// ```
pub async fn connect(info: ConnectionInfo, config: DriverConfig) -> Result<Call, JoinError> {
    voice_driver::connect(Arc::new(AsyncIoRuntime::new()), info, config).await
}
