//! The sans-IO Discord voice connection state machine.
//!
//! [`VoiceConnection`] speaks the voice gateway (v8, resume, the close-code
//! policy), IP discovery, UDP keepalives, and RTP audio in every transport
//! mode, and never touches a socket, a clock or a thread: inputs come in
//! with the current [`Instant`](std::time::Instant), and everything it wants
//! done comes out of [`VoiceConnection::poll_output`].
//!
//! # The driving loop
//!
//! ```text
//! let mut conn = VoiceConnection::new(config, now);
//! conn.join(channel, now);
//! loop {
//!     // 1. drain
//!     let deadline = loop {
//!         match conn.poll_output() {
//!             Output::GatewaySend(op4)      => main_gateway.send(op4.to_json()),
//!             Output::ConnectWs(target)    => open websocket, later conn.handle_ws_open(now),
//!             Output::WsSend(frame)         => websocket.send(frame),
//!             Output::CloseWs { code }      => websocket.close(code) and forget it,
//!             Output::Transmit { to, bytes }=> udp.send_to(bytes, to),
//!             Output::Event(e)              => application.handle(e),
//!             Output::Voice(p)              => application.hear(p.as_packet()),  // held for its E2EE key
//!             Output::Timeout { at, .. }    => break at,
//!         }
//!     };
//!     // 2. wait for one input or the deadline, feed it with `now`
//!     select! {
//!         dispatch = main_gateway => conn.handle_gateway_event(dispatch, now),
//!         msg = websocket        => conn.handle_ws_message(msg, now)?,   // error: that frame only
//!         closed = websocket     => conn.handle_ws_close(code, now),
//!         (from, buf) = udp      => if let Ok(Datagram::Voice(p)) = conn.handle_datagram(from, buf, now) { .. },
//!         frame = audio_queue    => { let t = conn.send_opus(frame, now, &mut out)?; drain; udp.send_to(&out[..t.len], t.to) }
//!         _ = sleep_until(deadline) => conn.handle_timeout(now),
//!     }
//! }
//! ```
//!
//! On an end-to-end encrypted (DAVE) call, `send_opus` refuses audio with
//! `SendError::E2eePending` until the first transition executes (check
//! `can_send_audio()`; keep the frame and offer it again), and a received
//! frame whose key is not installed yet comes back as `Datagram::Held`,
//! then later as `Output::Voice`.
//!
//! Rules: drain after every input; `Timeout` is always last and its deadline
//! is never earlier than the latest `now` given; time never runs backwards
//! (an older `now` counts as the latest); after `CloseWs`, report nothing
//! more from that socket. Per-input errors never change the connection's
//! state.

mod backoff;
pub mod close_code;
mod config;
mod connection;
mod dave;
mod error;
pub mod gateway;
mod heartbeat;
mod output;
mod speaking;
mod stats;
mod timer;
mod transform;
pub mod wire;

pub use close_code::{CloseAction, FinalReason, close_action};
pub use config::Config;
pub use connection::{Datagram, OwnedVoicePacket, State, Transmit, VoiceConnection, VoicePacket};
pub use dave::is_dave_frame;
pub use error::{DatagramError, E2eeError, Misuse, SendError, WsError};
pub use gateway::{ConnectionInfo, GatewayEvent, UpdateVoiceState, VoiceServerUpdate, VoiceStateUpdate, WsTarget};
pub use output::{DisconnectReason, Event, Output, ReconnectReason, TimeoutReason};
pub use speaking::SpeakingFlags;
pub use stats::{DaveStats, RemoteReport, RtcpStats, SourceStats, Stats};
pub use voice_rtp::Mode;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
