//! The tokio adapter for `voice-proto`: a Discord voice connection per
//! guild, each driven by one task that owns its websocket (rustls TLS), its
//! UDP socket and one timer.
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
//! Audio goes through a bounded [`FrameSink`] and leaves at one frame per
//! 20 ms on an absolute schedule ([`pacing`]); received audio comes out per
//! user ([`ReceivedAudio`]); events ([`voice_proto::Event`]) come through a
//! bounded channel, and every drop is counted in [`CallStats`].
//!
//! Calls are end-to-end encrypted (DAVE) whenever the server negotiates it,
//! as Discord does for every non-stage channel: queued frames wait until
//! the call's first transition executes ([`Call::wait_can_send`]), and
//! [`CallState`] carries the DAVE version and the voice privacy code.

mod call;
mod config;
mod driver;
mod error;
mod manager;
pub mod ogg;
pub mod pacing;
mod ws;

pub use call::{Call, CallState, CallStats, FrameSink, PlayError, ReceivedAudio};
pub use config::DriverConfig;
pub use error::{CallError, ConnectError, JoinError, OggError};
pub use manager::{MainGateway, Manager, connect};
pub use voice_proto::{ConnectionInfo, DisconnectReason, Event, GatewayEvent, State, UpdateVoiceState};
