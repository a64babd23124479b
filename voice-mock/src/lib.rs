//! An offline stand-in for Discord's voice servers.
//!
//! Two layers:
//!
//! * [`MockServer`], a sans-IO server core: websocket frames, datagrams and
//!   time in (`handle_*`, each with `now`), frames, closes, datagrams and one
//!   deadline out ([`MockServer::poll_output`]). Simulations pair it with the
//!   client core under fake time.
//! * [`Server`], a tokio runner with real sockets on 127.0.0.1: voice gateway
//!   v4 and v8 over ws and wss (a self-signed leaf certificate made at start),
//!   and one UDP port for every client.
//!
//! The binary (`cargo run -p voice-mock -- --help`) runs the same server.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use voice_mock::{RunnerConfig, Server};
//! use voice_proto::wire::Snowflake;
//!
//! let server = Server::start(RunnerConfig::default()).await?;
//! let join = server.join(Snowflake(1), Snowflake(2), Snowflake(3));
//! // Connect a client to ws://{join.endpoint}/?v=8 and Identify with
//! // join.session_id and join.token; its UDP goes to the port in Ready.
//! println!("{} {}", join.endpoint, server.udp_port());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! What the server does is described in PROTOCOL.md §2-§4 and §10: Hello and
//! Ready after Identify, Session Description (with `dave_protocol_version`,
//! 0 here) after Select Protocol, heartbeat ACKs, `seq` on every v8 message
//! (from 1) and none on v4, buffered resume on v8, op 5/11/13 about the other
//! clients of the room, and RTP forwarded between the clients of a room,
//! re-encrypted under each receiver's key and mode.
//!
//! Choices where Discord documents nothing (PROTOCOL.md §8):
//!
//! * Hello is sent in reply to Identify or Resume (every known client sends
//!   Identify first), followed by Ready or Resumed.
//! * On v8 every server message takes the next `seq` (from 1). Hello,
//!   Heartbeat ACK and Resumed are not replayed; everything else is kept
//!   (up to [`Limits::resume_buffer`]) and replayed after Resumed with fresh
//!   `seq` values, so `seq` keeps rising. A Resume whose `seq_ack` is older
//!   than the oldest kept message is refused with 4006.
//! * A connection without a heartbeat for 1.5 heartbeat intervals (counted
//!   from Hello, or from accept before Identify) is closed with 4009
//!   ([`ServerConfig::heartbeat_timeout_factor`]).
//! * Sessions survive a dropped websocket, a 4009 and a 4015 for
//!   [`ServerConfig::resume_window`] (30 s); other server close codes end
//!   them, and the room hears op 13.
//! * Close codes: 4001 a server-only or unknown opcode; 4002 a frame that is
//!   not JSON; 4020 a known opcode whose payload does not decode, or a frame
//!   over [`Limits::max_frame_bytes`]; 4003 anything but Identify/Resume
//!   first; 4004 a bad token when tokens are required; 4011 a token for
//!   another guild; 4005 a second Identify/Resume; 4006 an unknown or
//!   refused Resume; 4012 a protocol other than `udp`; 4016 a mode not
//!   offered; 1013 when the connection or session cap is reached.
//! * A receiver is told a sender's SSRC (op 5 with `user_id`) before the
//!   first packet forwarded to it; op 5 from a client is relayed at once.
//! * Only forwarded media is subject to the UDP faults; IP discovery replies
//!   are never dropped. Keepalives are counted and never answered.

mod core;
mod runner;

pub use crate::core::{
    ConnId, Fault, FaultParseError, JoinInfo, Limits, MockServer, ReceivedFrame, ServerConfig, ServerEvent,
    ServerOutput, ServerStats, UserStats,
};
pub use runner::{Error, RunnerConfig, RunnerStats, Server};
