//! Fuzz target bodies, compiled into the crate so that stable CI replays the
//! committed corpus through the same code the fuzzer runs.

#[cfg(feature = "fuzzing")]
mod ops;
#[cfg(feature = "fuzzing")]
pub use ops::connection_ops;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::wire::{DaveBinary, Message, Snowflake, WsMessage};
use crate::{Config, GatewayEvent, Output, VoiceConnection, VoiceServerUpdate, VoiceStateUpdate};

/// Parses `data` as a text and as a binary voice gateway frame; anything
/// parsed serialises again without panicking.
pub fn ws_payload(data: &[u8]) {
    if let Ok(text) = core::str::from_utf8(data)
        && let Ok(frame) = Message::parse(text)
    {
        let _ = frame.message.to_json(crate::wire::GatewayVersion::V8, frame.seq);
        let _ = frame.message.to_json(crate::wire::GatewayVersion::V4, None);
    }
    if let Ok((_, b)) = DaveBinary::parse_server(data) {
        let mut out = Vec::new();
        b.encode(Some(1), &mut out);
    }
    let _ = DaveBinary::parse_client(data);
}

/// Drives a connection with operations decoded from `data`, starting at
/// `t0`, checking the invariants after every drain: bounded queue, deadline
/// not in the past.
pub fn connection(data: &[u8], t0: Instant) {
    let mut now = t0;
    let server: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9));
    let mut conn = VoiceConnection::new(Config::new(Snowflake(1), Snowflake(2)), now);
    let mut out = Vec::new();
    let mut chunks = data.chunks(16);
    for _ in 0..1000 {
        let Some(chunk) = chunks.next() else { break };
        let (op, rest) = chunk.split_first().unwrap_or((&0, &[]));
        match op % 13 {
            0 => conn.join(Snowflake(3), now),
            1 => conn.handle_gateway_event(
                GatewayEvent::VoiceStateUpdate(VoiceStateUpdate {
                    guild_id: Some(Snowflake(1)),
                    channel_id: rest.first().map(|&c| Snowflake(u64::from(c % 2) + 3)),
                    user_id: Snowflake(2),
                    session_id: "s".into(),
                }),
                now,
            ),
            2 => conn.handle_gateway_event(
                GatewayEvent::VoiceServerUpdate(VoiceServerUpdate {
                    guild_id: Snowflake(1),
                    token: "t".into(),
                    endpoint: (rest.first() != Some(&0)).then(|| "127.0.0.1:9".into()),
                }),
                now,
            ),
            3 => conn.handle_ws_open(now),
            4 => {
                let _ = conn.handle_ws_message(WsMessage::Text(&String::from_utf8_lossy(rest)), now);
            }
            5 => {
                let _ = conn.handle_ws_message(WsMessage::Binary(rest), now);
            }
            6 => conn.handle_ws_close(rest.first().map(|&c| 4000 + u16::from(c % 23)), now),
            7 => {
                let mut buf = rest.to_vec();
                let _ = conn.handle_datagram(server, &mut buf, now);
            }
            8 => {
                let _ = conn.send_opus(rest, now, &mut out);
            }
            9 => now += Duration::from_millis(u64::from(rest.first().copied().unwrap_or(0)) * 50),
            10 => conn.leave(now),
            12 => {
                // A well-formed IP discovery answer for the current SSRC, so
                // that fuzzing reaches Select Protocol and the session.
                let ssrc = conn.ssrc().unwrap_or(1);
                if let Ok(mut reply) = voice_rtp::discovery::response(ssrc, "127.0.0.1", 4000) {
                    let _ = conn.handle_datagram(server, &mut reply, now);
                }
            }
            _ => {
                // Well-formed messages, so that fuzzing reaches the session
                // and its DAVE states (transitions to and from version 0,
                // new groups) as well as the handshake.
                let text = match rest.first().copied().unwrap_or(0) % 9 {
                    0 => r#"{"op":8,"d":{"heartbeat_interval":1000}}"#,
                    1 => r#"{"op":2,"d":{"ssrc":1,"ip":"127.0.0.1","port":9,"modes":["aead_aes256_gcm_rtpsize"]}}"#,
                    2 => {
                        r#"{"op":4,"d":{"mode":"aead_aes256_gcm_rtpsize","secret_key":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32],"dave_protocol_version":0}}"#
                    }
                    3 => r#"{"op":5,"d":{"user_id":"7","ssrc":5,"speaking":1}}"#,
                    4 => {
                        r#"{"op":4,"d":{"mode":"aead_aes256_gcm_rtpsize","secret_key":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32],"dave_protocol_version":1}}"#
                    }
                    5 => r#"{"op":21,"d":{"transition_id":3,"protocol_version":0}}"#,
                    6 => r#"{"op":22,"d":{"transition_id":3}}"#,
                    7 => r#"{"op":24,"d":{"epoch":1,"protocol_version":1}}"#,
                    _ => r#"{"op":11,"d":{"user_ids":["7"]}}"#,
                };
                let _ = conn.handle_ws_message(WsMessage::Text(text), now);
            }
        }
        conn.handle_timeout(now);
        assert!(conn.queued_outputs() <= conn.config().max_queued_outputs);
        loop {
            if let Output::Timeout { at, .. } = conn.poll_output() {
                assert!(at.is_none_or(|at| at >= now), "deadline in the past");
                break;
            }
        }
    }
}

/// A connection driven by hand to an established session (AES-256-GCM,
/// key bytes 1..=32, our SSRC 1), with user 3 speaking on SSRC 5; for tests
/// and benchmarks of the audio hot path.
pub struct Established {
    /// The connection, ready to send and receive.
    pub conn: VoiceConnection,
    /// The voice server's UDP address.
    pub server: SocketAddr,
    /// The session key the server handed out.
    pub key: [u8; 32],
    /// What the connection asked for on the way (already drained).
    pub outputs: Vec<Output>,
}

/// Builds an [`Established`] connection at `now`, without DAVE.
pub fn established(now: Instant) -> Established {
    established_with(Config::new(Snowflake(1), Snowflake(2)), 0, now)
}

/// Builds an [`Established`] connection at `now` from `config` (guild 1,
/// user 2, in channel 9), whose Session Description negotiates DAVE
/// version `dave_protocol_version`.
pub fn established_with(config: Config, dave_protocol_version: u16, now: Instant) -> Established {
    use crate::wire::Token;
    let server: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 50000));
    let (guild, me, channel) = (config.guild_id, config.user_id, Snowflake(9));
    let mut conn = VoiceConnection::new(config, now);
    conn.join(channel, now);
    let state =
        VoiceStateUpdate { guild_id: Some(guild), channel_id: Some(channel), user_id: me, session_id: "s".into() };
    conn.handle_gateway_event(GatewayEvent::VoiceStateUpdate(state), now);
    let update = VoiceServerUpdate { guild_id: guild, token: Token::new("t"), endpoint: Some("v.example:443".into()) };
    conn.handle_gateway_event(GatewayEvent::VoiceServerUpdate(update), now);
    conn.handle_ws_open(now);
    let key: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
    let key_json: Vec<String> = key.iter().map(u8::to_string).collect();
    let ready = r#"{"op":2,"d":{"ssrc":1,"ip":"127.0.0.1","port":50000,"modes":["aead_aes256_gcm_rtpsize"]}}"#;
    let hello = r#"{"op":8,"d":{"heartbeat_interval":13750}}"#;
    for text in [hello, ready] {
        let _ = conn.handle_ws_message(WsMessage::Text(text), now);
    }
    if let Ok(mut reply) = voice_rtp::discovery::response(1, "203.0.113.9", 4000) {
        let _ = conn.handle_datagram(server, &mut reply, now);
    }
    let sd = format!(
        r#"{{"op":4,"d":{{"mode":"aead_aes256_gcm_rtpsize","secret_key":[{}],"dave_protocol_version":{dave_protocol_version}}}}}"#,
        key_json.join(",")
    );
    let _ = conn.handle_ws_message(WsMessage::Text(&sd), now);
    let _ = conn.handle_ws_message(WsMessage::Text(r#"{"op":5,"d":{"user_id":"3","ssrc":5,"speaking":1}}"#), now);
    let outputs = drain(&mut conn);
    Established { conn, server, key, outputs }
}

/// Drains `conn`'s outputs up to (not including) the closing
/// [`Output::Timeout`].
pub fn drain(conn: &mut VoiceConnection) -> Vec<Output> {
    let mut outputs = Vec::new();
    loop {
        match conn.poll_output() {
            Output::Timeout { .. } => return outputs,
            o => outputs.push(o),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Arbitrary inputs never panic, never overflow a queue and never
        /// leave a deadline in the past.
        #[test]
        #[allow(clippy::disallowed_methods)] // any start instant will do; the machine never reads it
        fn arbitrary_inputs_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            super::connection(&data, std::time::Instant::now());
            super::ws_payload(&data);
        }
    }
}
