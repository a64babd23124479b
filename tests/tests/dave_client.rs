//! The DAVE client on its own, driven by hand: what it sends and refuses
//! before a group exists, transitions to and from version 0, the hold
//! buffer, recovery and its bound, v4 framing. Group flows with a real
//! external sender are in `sim_dave.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use voice_proto::fuzzing::{Established, drain, established_with};
use voice_proto::wire::{DaveBinary, GatewayVersion, Message, Snowflake, WsFrame, WsMessage};
use voice_proto::{
    Config, Datagram, DatagramError, DisconnectReason, E2eeError, Event, Output, SendError, TimeoutReason,
};
use voice_rtp::{Cipher, Mode, RtpHeader, Sealer, SecretKey};

/// PROTOCOL.md §9.5: a well-formed DAVE frame (`FC 01 02` under some key).
const DAVE_FRAME: [u8; 15] = [0x2D, 0x24, 0xA9, 0x32, 0xE2, 0xDB, 0x86, 0x0E, 0x3F, 0x20, 0x52, 0x01, 0x0C, 0xFA, 0xFA];

fn config() -> Config {
    Config::new(Snowflake(1), Snowflake(2))
}

fn texts(outputs: &[Output]) -> Vec<Message> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::WsSend(WsFrame::Text(t)) => Message::parse(t).ok().map(|f| f.message),
            _ => None,
        })
        .collect()
}

fn binaries(outputs: &[Output]) -> Vec<Vec<u8>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::WsSend(WsFrame::Binary(b)) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

/// A packet from user 3 (SSRC 5) carrying `payload`, sealed under the
/// session key.
fn from_user_3(key: [u8; 32], seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut sealer = Sealer::new(Cipher::new(Mode::Aes256GcmRtpSize, &SecretKey::new(key)), u32::from(seq));
    let mut header = [0u8; 12];
    RtpHeader::write_basic(&mut header, seq, u32::from(seq) * 960, 5);
    let mut packet = header.to_vec();
    packet.extend_from_slice(payload);
    sealer.seal(&mut packet).unwrap();
    packet
}

fn dave_call(now: Instant) -> Established {
    established_with(config(), 1, now)
}

#[test]
fn a_dave_call_sends_a_key_package_and_refuses_audio_until_a_key_is_installed() {
    let now = Instant::now();
    let Established { mut conn, outputs, .. } = dave_call(now);
    assert!(outputs.iter().any(|o| matches!(o, Output::Event(Event::Connected { dave_protocol_version: 1, .. }))));
    let kps = binaries(&outputs);
    assert_eq!(kps.len(), 1, "exactly one key package after Session Description");
    assert!(matches!(DaveBinary::parse_client(&kps[0]), Ok(DaveBinary::KeyPackage(kp)) if kp.len() > 100));
    assert_eq!(conn.stats().dave.key_packages_sent, 1);
    assert_eq!(conn.dave_protocol_version(), 1);
    assert_eq!(conn.stats().dave.protocol_version, 1);
    assert!(conn.is_ready() && !conn.can_send_audio());
    assert_eq!(conn.voice_privacy_code(), None);

    let mut out = Vec::new();
    assert_eq!(conn.send_opus(&[0xFC; 40], now, &mut out), Err(SendError::E2eePending));
    assert_eq!(conn.stats().packets_sent, 0, "nothing went out: never plaintext on a DAVE call");
    assert_eq!(conn.stats().dave.send_refused_pending, 1);
    assert!(drain(&mut conn).is_empty(), "no Speaking for a refused frame");
}

#[test]
fn plaintext_is_refused_and_silence_accepted_on_a_dave_call() {
    let now = Instant::now();
    let Established { mut conn, server, key, .. } = dave_call(now);
    let mut plain = from_user_3(key, 1, &[0xFC; 50]);
    assert_eq!(conn.handle_datagram(server, &mut plain, now), Err(DatagramError::E2ee(E2eeError::Unencrypted)));
    assert_eq!(conn.stats().dave.unencrypted_refused, 1);
    let mut silence = from_user_3(key, 2, &[0xF8, 0xFF, 0xFE]);
    match conn.handle_datagram(server, &mut silence, now) {
        Ok(Datagram::Voice(p)) => assert_eq!(p.opus, [0xF8, 0xFF, 0xFE]),
        other => panic!("silence refused: {other:?}"),
    }
}

#[test]
fn a_frame_without_its_key_is_held_then_dropped_at_the_age_limit() {
    let now = Instant::now();
    let Established { mut conn, server, key, .. } = dave_call(now);
    let mut packet = from_user_3(key, 1, &DAVE_FRAME);
    assert_eq!(conn.handle_datagram(server, &mut packet, now), Ok(Datagram::Held));
    assert_eq!(conn.stats().dave.frames_held, 1);
    let age = conn.config().dave_hold_age;
    assert!(drain(&mut conn).is_empty(), "a held frame asks for nothing");
    conn.handle_timeout(now + age - Duration::from_millis(1));
    assert_eq!(conn.stats().dave.held_expired, 0);
    conn.handle_timeout(now + age);
    assert_eq!(conn.stats().dave.held_expired, 1);
    assert!(!drain(&mut conn).iter().any(|o| matches!(o, Output::Voice(_))), "an expired frame is never delivered");
    // With nothing held, no hold deadline remains.
    conn.handle_timeout(now + age * 3);
    loop {
        if let Output::Timeout { reason, .. } = conn.poll_output() {
            assert_ne!(reason, TimeoutReason::DaveHold);
            break;
        }
    }
}

#[test]
fn the_hold_buffer_is_bounded_per_sender() {
    let now = Instant::now();
    let mut config = config();
    config.dave_hold_frames = 4;
    let Established { mut conn, server, key, .. } = established_with(config, 1, now);
    for seq in 0..10 {
        let mut packet = from_user_3(key, seq, &DAVE_FRAME);
        assert_eq!(conn.handle_datagram(server, &mut packet, now), Ok(Datagram::Held));
    }
    assert_eq!((conn.stats().dave.frames_held, conn.stats().dave.held_overflow), (10, 6));
    conn.handle_timeout(now + conn.config().dave_hold_age);
    assert_eq!(conn.stats().dave.held_expired, 4, "only the newest four were still held");
}

#[test]
fn a_downgrade_accepts_plaintext_then_sends_it_once_executed() {
    let now = Instant::now();
    let Established { mut conn, server, key, .. } = dave_call(now);
    let prepare = r#"{"op":21,"d":{"transition_id":7,"protocol_version":0},"seq":9}"#;
    conn.handle_ws_message(WsMessage::Text(prepare), now).unwrap();
    let out = drain(&mut conn);
    assert_eq!(texts(&out), [Message::DaveTransitionReady(voice_proto::wire::TransitionId { transition_id: 7 })]);
    // Plaintext from peers that already switched is accepted meanwhile...
    let mut plain = from_user_3(key, 1, &[0xFC; 50]);
    assert!(matches!(conn.handle_datagram(server, &mut plain, now), Ok(Datagram::Voice(p)) if p.opus == [0xFC; 50]));
    // ...while our own audio still waits for the execute.
    let mut buf = Vec::new();
    assert_eq!(conn.send_opus(&[0xFC; 40], now, &mut buf), Err(SendError::E2eePending));

    conn.handle_ws_message(WsMessage::Text(r#"{"op":22,"d":{"transition_id":7},"seq":10}"#), now).unwrap();
    assert_eq!(conn.dave_protocol_version(), 0);
    assert!(conn.can_send_audio());
    let t = conn.send_opus(&[0xFC; 40], now, &mut buf).unwrap();
    // The server opens it with the session key and finds the plain frame.
    let cipher = Cipher::new(Mode::Aes256GcmRtpSize, &SecretKey::new(key));
    let opened = cipher.open(&mut buf[..t.len]).unwrap();
    assert_eq!(opened.payload, [0xFC; 40]);
    assert_eq!(conn.stats().dave.transitions_executed, 1);
}

#[test]
fn an_unprocessable_welcome_is_answered_with_op_31_and_a_new_key_package_a_bounded_number_of_times() {
    let now = Instant::now();
    let Established { mut conn, .. } = dave_call(now);
    let max = conn.config().dave_max_recoveries;
    for attempt in 1..=max {
        let mut frame = vec![0, attempt as u8, 30, 0x00, 0x2A];
        frame.extend_from_slice(b"not a welcome");
        conn.handle_ws_message(WsMessage::Binary(&frame), now).unwrap();
        let out = drain(&mut conn);
        assert_eq!(
            texts(&out),
            [Message::DaveMlsInvalidCommitWelcome(voice_proto::wire::TransitionId { transition_id: 42 })]
        );
        let kps = binaries(&out);
        assert_eq!(kps.len(), 1);
        assert!(matches!(DaveBinary::parse_client(&kps[0]), Ok(DaveBinary::KeyPackage(_))));
        assert_eq!(conn.stats().dave.recoveries, u64::from(attempt));
    }
    // One more, and the call gives up instead of looping.
    conn.handle_ws_message(WsMessage::Binary(&[0, 99, 30, 0x00, 0x2A, 1, 2, 3]), now).unwrap();
    let out = drain(&mut conn);
    assert!(
        out.iter().any(|o| matches!(o, Output::Event(Event::Disconnected { reason: DisconnectReason::E2eeFailed })))
    );
    assert!(!conn.is_ready());
}

#[test]
fn an_unprocessable_commit_without_a_group_is_ignored_not_recovered() {
    let now = Instant::now();
    let Established { mut conn, .. } = dave_call(now);
    // Op 29 before any group: davey ignores it (a welcome will come).
    conn.handle_ws_message(WsMessage::Binary(&[0, 3, 29, 0x00, 0x05, 9, 9, 9]), now).unwrap();
    let out = drain(&mut conn);
    assert!(texts(&out).is_empty() && binaries(&out).is_empty(), "{out:?}");
    assert_eq!(conn.stats().dave.recoveries, 0);
}

#[test]
fn op_24_for_a_new_group_sends_a_new_key_package() {
    let now = Instant::now();
    let Established { mut conn, .. } = dave_call(now);
    for text in [
        r#"{"op":24,"d":{"epoch":1,"protocol_version":1},"seq":4}"#,
        r#"{"op":24,"d":{"epoch":1,"protocol_version":1,"transition_id":3},"seq":5}"#,
    ] {
        conn.handle_ws_message(WsMessage::Text(text), now).unwrap();
        let kps = binaries(&drain(&mut conn));
        assert_eq!(kps.len(), 1, "{text}");
    }
    // Another epoch of the same group: nothing to send.
    conn.handle_ws_message(WsMessage::Text(r#"{"op":24,"d":{"epoch":5,"protocol_version":1}}"#), now).unwrap();
    assert!(binaries(&drain(&mut conn)).is_empty());
    assert_eq!(conn.stats().dave.key_packages_sent, 3);
}

#[test]
fn a_server_that_negotiates_dave_when_none_was_offered_is_a_final_disconnect() {
    let now = Instant::now();
    let mut config = config();
    config.max_dave_protocol_version = 0;
    let Established { conn, outputs, .. } = established_with(config, 1, now);
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Output::Event(Event::Disconnected { reason: DisconnectReason::E2eeRequired })))
    );
    assert!(!conn.is_ready());
}

#[test]
fn binary_frames_on_gateway_v4_have_no_sequence_prefix() {
    let now = Instant::now();
    let mut config = config();
    config.gateway_version = GatewayVersion::V4;
    let Established { mut conn, .. } = established_with(config, 1, now);
    // `[op 30][tid 00 2A][welcome]`: read as op 30 with tid 42.
    conn.handle_ws_message(WsMessage::Binary(&[30, 0x00, 0x2A, 7, 7, 7]), now).unwrap();
    let out = drain(&mut conn);
    assert_eq!(
        texts(&out),
        [Message::DaveMlsInvalidCommitWelcome(voice_proto::wire::TransitionId { transition_id: 42 })]
    );
}

#[test]
fn binary_sequence_numbers_are_acknowledged() {
    let now = Instant::now();
    let Established { mut conn, .. } = dave_call(now);
    conn.handle_ws_message(WsMessage::Binary(&[0x01, 0x02, 27, 9]), now).unwrap_or_default();
    drain(&mut conn);
    // The next heartbeat acknowledges 0x0102.
    conn.handle_timeout(now + Duration::from_secs(14));
    let beats: Vec<Message> =
        texts(&drain(&mut conn)).into_iter().filter(|m| matches!(m, Message::Heartbeat(_))).collect();
    assert!(matches!(beats.as_slice(), [Message::Heartbeat(h)] if h.seq_ack == Some(0x0102)), "{beats:?}");
}

#[test]
fn dave_transitions_without_a_dave_session_are_refused() {
    let now = Instant::now();
    // A call at version 0 (DAVE offered, not negotiated), then one that
    // offers none: a transition to version 1 cannot be made ready here.
    for max in [1, 0] {
        let mut config = config();
        config.max_dave_protocol_version = max;
        let Established { mut conn, .. } = established_with(config, 0, now);
        for text in [
            r#"{"op":21,"d":{"transition_id":5,"protocol_version":1},"seq":7}"#,
            r#"{"op":22,"d":{"transition_id":5},"seq":8}"#,
        ] {
            conn.handle_ws_message(WsMessage::Text(text), now).unwrap();
        }
        let out = drain(&mut conn);
        assert!(texts(&out).is_empty(), "no op 23 for a transition it cannot make (max {max}): {out:?}");
        assert_eq!(conn.dave_protocol_version(), 0);
        assert!(conn.can_send_audio(), "still a working transport-only call");
        let mut buf = Vec::new();
        assert!(conn.send_opus(&[0xFC; 30], now, &mut buf).is_ok());
    }
}

#[test]
fn a_frame_too_large_for_opus_is_not_held() {
    let now = Instant::now();
    let Established { mut conn, server, key, .. } = dave_call(now);
    // DAVE-shaped: 3000 bytes of "ciphertext", tag, nonce 1, size, marker.
    let mut frame = vec![0u8; 3000 + 8];
    frame.extend_from_slice(&[0x01, 0x0C, 0xFA, 0xFA]);
    let mut packet = from_user_3(key, 1, &frame);
    assert_eq!(conn.handle_datagram(server, &mut packet, now), Err(DatagramError::E2ee(E2eeError::Undecryptable)));
    assert_eq!((conn.stats().dave.frames_held, conn.stats().dave.held_overflow), (0, 1));
}
