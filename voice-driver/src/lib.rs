//! The driver layer of the voice workspace: everything above
//! [`voice_proto`] that does not depend on an async runtime, written once.
//!
//! - [`CallCore`]: one call's driver as a state machine over
//!   [`voice_proto::VoiceConnection`] with time as input: the frame and
//!   flush policy, the [`pacing`] schedule, the hand-off of received audio
//!   and events, the counters.
//! - A task per call that carries out the core's IO on a [`Runtime`], the
//!   small seam each adapter implements (clock and timer, spawn, UDP, TCP);
//!   TLS (rustls) and the websocket (tungstenite) run above it, here.
//! - The handles: [`Call`], [`FrameSink`], [`Manager`], [`connect`], pulled
//!   audio ([`FrameSource`]), [`ogg`] files, [`DriverConfig`] and errors.
//!
//! Applications use an adapter: `voice-tokio` or `voice-async-std` (smol,
//! async-std), which re-export this crate's API with their runtime filled
//! in. The queues between a call and its handles are the driver's own
//! ([`queue`]); the state watch and replies are `tokio::sync`'s. Both run
//! on any executor.

mod call;
mod call_shared;
mod config;
mod core;
mod error;
mod gateway;
mod manager;
pub mod ogg;
pub mod pacing;
pub mod queue;
mod recv_poll;
pub mod runtime;
mod send_batch;
mod snapshot;
mod source;
mod task;
mod tls;
mod wheel;
mod ws;
mod ws_upgrade;

pub use bytes::Bytes;
pub use call::{Call, CallState, CallStats, FrameSink, PlayError, ReceivedAudio};
pub use config::DriverConfig;
pub use core::{AudioOut, CallCore, Channels, Io};
pub use error::{CallError, ConnectError, ConnectFailure, JoinError, OggError, TrustError, TrySendError};
pub use gateway::MainGateway;
pub use manager::{Manager, connect};
pub use runtime::Runtime;
pub use snapshot::{CallSnapshot, ReconnectOutcome, Reconnection};
pub use source::{FrameSource, IterSource, Looped};
pub use voice_proto::wire::{Snowflake, Token};
pub use voice_proto::{
    ConnectionInfo, DisconnectReason, Event, GatewayEvent, Mode, ReconnectReason, RemoteReport, RtcpStats, SourceStats,
    SpeakingFlags, State, Stats, UpdateVoiceState, VoiceServerUpdate, VoiceStateUpdate,
};
/// The Opus frame of silence the driver sends after audio stops.
pub use voice_rtp::OPUS_SILENCE;
