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
//! For load tests the runner has a sink mode ([`RunnerConfig::sink`]): RTP
//! from a client alone in its room is decrypted, counted per SSRC (packets,
//! bytes, decrypt failures, a histogram of the gaps between packets:
//! [`SinkStats`]) and dropped by the UDP receiver itself, so that thousands
//! of senders cost the server little; RTP that has a listener is counted
//! the same way and still forwarded.
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
//! Ready after Identify, Session Description (with `dave_protocol_version`)
//! after Select Protocol, heartbeat ACKs, `seq` on every v8 message (from 1)
//! and none on v4, buffered resume on v8, op 5/11/13 about the other clients
//! of the room, and RTP forwarded between the clients of a room,
//! re-encrypted under each receiver's key and mode. Each room also runs DAVE
//! (DAVE.md §5): the server is the MLS external sender and delivery service
//! (ops 21-31), under a [`DavePolicy`].
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
//!
//! DAVE, where DAVE.md and Discord leave the choice open:
//!
//! * [`DavePolicy::Required`] (the default) closes an Identify without
//!   `max_dave_protocol_version >= 1` with 4017 right after Hello and makes
//!   no session (a Resume of it is 4006). [`DavePolicy::Off`] says version 0
//!   to everyone and ignores DAVE frames from clients (counted in
//!   [`ServerStats::dave_frames_ignored`]); a binary frame with an unknown or
//!   server-only opcode still closes with 4001, a truncated one with 4002.
//!   [`DavePolicy::Optional`] runs a room at version 1 while every member
//!   offers DAVE: a client without it joining starts a downgrade (op 21
//!   `{tid, 0}` to the members in the DAVE flow, op 22 once they are ready
//!   or after the execute timeout; a batch of proposals still out is
//!   dropped), and when the last such client leaves an upgrade follows
//!   (op 24 `{epoch: 1, protocol_version: 1}` to every member that has had
//!   its Session Description, then op 25 to those that never had it, then
//!   group creation). A Session Description says the room's version at that
//!   moment (0 during a downgrade).
//! * Per room: a P-256 key derived from the seed and the room (so runs
//!   repeat byte for byte: openmls signs with RFC 6979); the external
//!   sender's identity is user id 0 as 8 bytes; group id = channel id, 8
//!   bytes big-endian; transition ids count from 1, skipping 0 on wrap.
//! * A DAVE session gets Session Description, op 25, then op 11 (and op 5
//!   for those speaking); before its Session Description it hears no op
//!   11/13/5. Others get op 11 at Identify, as before.
//! * One thing at a time: a batch of proposals waits for the first valid
//!   commit, then the transition for every op 23 (or
//!   [`ServerConfig::dave_execute_timeout`], 2 s), then the next batch,
//!   which holds everything that changed meanwhile. A version change comes
//!   before the next batch.
//! * A batch without a valid commit within
//!   [`ServerConfig::dave_commit_timeout`] (5 s) is revoked (op 27 revoke to
//!   each recipient) and proposed again at once, signed with a hedged nonce
//!   so that the new proposals have new references and a late commit to the
//!   old ones cannot pass.
//! * A new key package, an op 31, or leaving, while a batch is out: the Adds
//!   of that member are revoked from everyone who got them, and it no
//!   longer counts as a committer; a batch left empty ends. A member that
//!   sent op 31 or a new key package keeps its leaf until the next batch
//!   removes it, and re-adds it if its new key package is in by then (when
//!   its op 31 was the last readiness owed, op 22 and the next batch go out
//!   before the key package arrives: the Remove and the Add then take two
//!   epochs). A client that arrives while a batch is out (at any epoch)
//!   waits for the next batch; it is not sent the proposals in flight.
//! * Op 22 goes to every member in the DAVE flow. If every member lost the
//!   group (all sent op 31), the room starts again at epoch 0.
//! * Binary frames take the next `seq` like JSON ones; on v8 they carry its
//!   low 16 bits. A `seq_ack` up to 65535 after more messages than that is
//!   read as the latest `seq` with those low bits.
//! * Op 30 carries the committer's Welcome as it came (secrets of every
//!   joiner).
//! * openmls's decoders, and the lifetime check of key-package validation,
//!   are the two places the core leans on: tls_codec 0.4.2 `debug_assert!`s
//!   on one kind of junk length, so decoding runs under `catch_unwind` (junk
//!   is a counted rejection in every build), and the lifetime check reads
//!   the system clock (with the only lifetime accepted, it cannot fail).
//! * The SFU forwards DAVE frames as they came and counts per room the
//!   payloads with a DAVE trailer, silence `F8 FF FE` and plaintext
//!   ([`DaveRoomInfo`], [`MockServer::dave_room`]).

mod core;
mod runner;

pub use crate::core::{
    ConnId, DavePolicy, DaveRoomInfo, Fault, FaultParseError, JoinInfo, Limits, MockServer, ReceivedFrame,
    ServerConfig, ServerEvent, ServerOutput, ServerStats, UserStats,
};
pub use runner::{Error, GapHistogram, RunnerConfig, RunnerStats, Server, SinkCounters, SinkStats};
