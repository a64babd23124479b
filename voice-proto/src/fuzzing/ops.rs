//! The connection driven by structured operations (`arbitrary`): main
//! gateway events, websocket opens, frames and closes, well-formed and
//! arbitrary server messages, datagrams (arbitrary, IP discovery answers,
//! and voice sealed with the session's real key so that the receive path
//! past authentication is reached), commands and time steps. After every
//! step the invariants of the property tests are checked: no output queue
//! overflows, no deadline lies in the past, no nonce repeats under one
//! session key, and no voice leaves before a session description.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use voice_rtp::fuzzing::sealed_packet;
use voice_rtp::{Cipher, DatagramKind, Mode, SecretKey};

use crate::wire::{Snowflake, Token, WsMessage};
use crate::{Config, GatewayEvent, Output, SpeakingFlags, VoiceConnection, VoiceServerUpdate, VoiceStateUpdate};

/// The session key every Session Description here hands out.
const KEY: [u8; 32] = [7; 32];
/// The voice server's address in every Ready.
const SERVER: ([u8; 4], u16) = ([127, 0, 0, 1], 9);

/// A server message that parses, with fuzzed fields.
#[derive(Arbitrary, Debug)]
enum Known {
    Hello { interval_ms: u16 },
    Ready { ssrc: u8, modes: Vec<u8> },
    SessionDescription { mode: u8, dave: u8 },
    Speaking { user: u8, ssrc: u8, flags: u8 },
    HeartbeatAck { nonce: u64 },
    Resumed,
    ClientsConnect { users: Vec<u8> },
    ClientDisconnect { user: u8 },
    PrepareTransition { id: u16, version: u8 },
    ExecuteTransition { id: u16 },
    PrepareEpoch { epoch: u8, version: u8 },
}

/// One step.
#[derive(Arbitrary, Debug)]
enum Op {
    Join {
        channel: u8,
    },
    Leave,
    Close,
    StateUpdate {
        channel: Option<u8>,
        other_user: bool,
        session: u8,
    },
    ServerUpdate {
        endpoint: Option<u8>,
    },
    WsOpen,
    WsClose {
        code: Option<u16>,
    },
    WsText(String),
    WsBinary(Vec<u8>),
    Known(Known),
    Datagram(Vec<u8>),
    Discovery {
        port: u16,
    },
    /// Voice from another user, sealed under the session's key and mode.
    Voice {
        ssrc: u8,
        sequence: u16,
        timestamp: u32,
        payload: Vec<u8>,
    },
    SendOpus(Vec<u8>),
    Speaking(u8),
    MuteDeaf {
        mute: bool,
        deaf: bool,
    },
    Advance {
        ms: u16,
    },
}

fn known_text(k: &Known) -> String {
    const MODES: [&str; 4] =
        ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize", "xsalsa20_poly1305_lite", "bogus"];
    let key: Vec<String> = KEY.iter().map(u8::to_string).collect();
    match k {
        Known::Hello { interval_ms } => format!(r#"{{"op":8,"d":{{"heartbeat_interval":{interval_ms}}}}}"#),
        Known::Ready { ssrc, modes } => {
            let modes: Vec<String> =
                modes.iter().take(6).map(|m| format!("\"{}\"", MODES[usize::from(m % 4)])).collect();
            format!(
                r#"{{"op":2,"d":{{"ssrc":{ssrc},"ip":"127.0.0.1","port":{},"modes":[{}]}}}}"#,
                SERVER.1,
                modes.join(",")
            )
        }
        Known::SessionDescription { mode, dave } => format!(
            r#"{{"op":4,"d":{{"mode":"{}","secret_key":[{}],"dave_protocol_version":{}}}}}"#,
            MODES[usize::from(mode % 4)],
            key.join(","),
            dave % 2
        ),
        Known::Speaking { user, ssrc, flags } => {
            format!(r#"{{"op":5,"d":{{"user_id":"{}","ssrc":{ssrc},"speaking":{flags}}}}}"#, u64::from(*user) + 10)
        }
        Known::HeartbeatAck { nonce } => format!(r#"{{"op":6,"d":{{"t":{nonce}}}}}"#),
        Known::Resumed => r#"{"op":9,"d":null}"#.into(),
        Known::ClientsConnect { users } => {
            let users: Vec<String> = users.iter().take(8).map(|u| format!("\"{}\"", u64::from(*u) + 10)).collect();
            format!(r#"{{"op":11,"d":{{"user_ids":[{}]}}}}"#, users.join(","))
        }
        Known::ClientDisconnect { user } => format!(r#"{{"op":13,"d":{{"user_id":"{}"}}}}"#, u64::from(*user) + 10),
        Known::PrepareTransition { id, version } => {
            format!(r#"{{"op":21,"d":{{"transition_id":{id},"protocol_version":{}}}}}"#, version % 2)
        }
        Known::ExecuteTransition { id } => format!(r#"{{"op":22,"d":{{"transition_id":{id}}}}}"#),
        Known::PrepareEpoch { epoch, version } => {
            format!(r#"{{"op":24,"d":{{"epoch":{epoch},"protocol_version":{}}}}}"#, version % 2)
        }
    }
}

/// What the checks remember between steps.
#[derive(Default)]
struct Seen {
    /// Nonce suffixes of our voice under the current session key.
    nonces: HashSet<Vec<u8>>,
    /// A Session Description was handed over since the last reset.
    described: bool,
}

impl Seen {
    /// One datagram the connection sent: voice only after a description,
    /// and never a nonce twice under one key.
    fn check_sent(&mut self, conn: &VoiceConnection, bytes: &[u8]) {
        if voice_rtp::classify(bytes) != DatagramKind::Rtp {
            return;
        }
        assert!(self.described, "voice sent before any session description");
        // The nonce suffix: what the mode adds beyond its 16-byte tag.
        let suffix = conn.mode().map_or(4, |m| m.overhead() - 16);
        if suffix > 0 && bytes.len() >= suffix {
            assert!(self.nonces.insert(bytes[bytes.len() - suffix..].to_vec()), "a nonce repeated under one key");
        }
    }
}

/// Runs the operations decoded from `data`, from `t0`.
pub fn connection_ops(data: &[u8], t0: Instant) {
    let mut u = Unstructured::new(data);
    let mut now = t0;
    let server = SocketAddr::from(SERVER);
    let (guild, me) = (Snowflake(1), Snowflake(2));
    let mut conn = VoiceConnection::new(Config::new(guild, me), now);
    let mut seen = Seen::default();
    let mut out = Vec::new();
    for _ in 0..500 {
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        match op {
            Op::Join { channel } => conn.join(Snowflake(u64::from(channel % 3) + 3), now),
            Op::Leave => conn.leave(now),
            Op::Close => conn.close(now),
            Op::StateUpdate { channel, other_user, session } => conn.handle_gateway_event(
                GatewayEvent::VoiceStateUpdate(VoiceStateUpdate {
                    guild_id: Some(guild),
                    channel_id: channel.map(|c| Snowflake(u64::from(c % 3) + 3)),
                    user_id: if other_user { Snowflake(99) } else { me },
                    session_id: format!("s{}", session % 3),
                }),
                now,
            ),
            Op::ServerUpdate { endpoint } => conn.handle_gateway_event(
                GatewayEvent::VoiceServerUpdate(VoiceServerUpdate {
                    guild_id: guild,
                    token: Token::new("t"),
                    endpoint: endpoint.map(|e| format!("v{}.example:443", e % 3)),
                }),
                now,
            ),
            Op::WsOpen => conn.handle_ws_open(now),
            Op::WsClose { code } => conn.handle_ws_close(code, now),
            Op::WsText(text) => {
                let _ = conn.handle_ws_message(WsMessage::Text(&text), now);
            }
            Op::WsBinary(bytes) => {
                let _ = conn.handle_ws_message(WsMessage::Binary(&bytes), now);
            }
            Op::Known(k) => {
                if matches!(k, Known::SessionDescription { .. }) {
                    // A new key: nonces start over.
                    seen.nonces.clear();
                    seen.described = true;
                }
                let _ = conn.handle_ws_message(WsMessage::Text(&known_text(&k)), now);
            }
            Op::Datagram(mut bytes) => {
                let _ = conn.handle_datagram(server, &mut bytes, now);
            }
            Op::Discovery { port } => {
                let ssrc = conn.ssrc().unwrap_or(1);
                if let Ok(mut reply) = voice_rtp::discovery::response(ssrc, "127.0.0.1", port) {
                    let _ = conn.handle_datagram(server, &mut reply, now);
                }
            }
            Op::Voice { ssrc, sequence, timestamp, payload } => {
                let mode = conn.mode().unwrap_or(Mode::Aes256GcmRtpSize);
                let cipher = Cipher::new(mode, &SecretKey::new(KEY));
                let header = (sequence, timestamp, u32::from(ssrc));
                if let Some(mut packet) = sealed_packet(cipher, u32::from(sequence), header, &payload) {
                    let _ = conn.handle_datagram(server, &mut packet, now);
                }
            }
            Op::SendOpus(frame) => {
                if conn.send_opus(&frame, now, &mut out).is_ok() {
                    seen.check_sent(&conn, &out);
                }
            }
            Op::Speaking(bits) => conn.set_speaking_flags(SpeakingFlags::from_bits(u32::from(bits)), now),
            Op::MuteDeaf { mute, deaf } => conn.set_mute_deaf(mute, deaf, now),
            Op::Advance { ms } => now += Duration::from_millis(u64::from(ms)),
        }
        conn.handle_timeout(now);
        assert!(conn.queued_outputs() <= conn.config().max_queued_outputs, "the output queue overflowed");
        loop {
            match conn.poll_output() {
                Output::Timeout { at, .. } => {
                    assert!(at.is_none_or(|at| at >= now), "deadline in the past");
                    break;
                }
                Output::Transmit { bytes, .. } => seen.check_sent(&conn, &bytes),
                _ => {}
            }
        }
        assert_eq!(conn.stats().outputs_dropped, 0, "an output was dropped");
    }
}
