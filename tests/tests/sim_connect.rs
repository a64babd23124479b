//! Simulated connects: the happy path to audio both ways, main-gateway
//! update ordering, join timeout, and RTP sequence/timestamp wrap.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use voice_proto::wire::{Message, Snowflake};
use voice_proto::{DisconnectReason, Event, Mode, SpeakingFlags, State};
use voice_tests::sim::{CHANNEL, ENDPOINT, GatewayBehavior, Sim};

#[test]
fn happy_path_to_first_audio_both_ways() {
    let mut sim = Sim::call(1);
    let now = sim.now;
    sim.clients[0].queue_frames(50, now);
    sim.clients[1].queue_frames(30, now);
    let sent_a: Vec<Vec<u8>> = sim.clients[0].audio.iter().cloned().collect();
    let sent_b: Vec<Vec<u8>> = sim.clients[1].audio.iter().cloned().collect();
    sim.run_for(Duration::from_secs(3));

    let a = &sim.clients[0];
    let b = &sim.clients[1];
    // Handshake shape: Identify (v8, DAVE field), Select Protocol, Speaking.
    let msgs = a.sent_messages();
    assert!(
        matches!(&msgs[0], Message::Identify(i) if i.max_dave_protocol_version == Some(1) && i.user_id == Snowflake(111))
    );
    assert!(msgs.iter().any(|m| matches!(m, Message::SelectProtocol(sp) if sp.data.address == a.addr.ip().to_string() && sp.data.port == a.addr.port() && sp.data.mode == "aead_aes256_gcm_rtpsize")));
    assert_eq!(a.urls, vec![format!("wss://{ENDPOINT}/?v=8")]);
    assert!(a.saw(|e| matches!(e, Event::Connected { mode: Mode::Aes256GcmRtpSize, .. })));

    // Speaking precedes the first voice datagram on the wire.
    let speaking_idx =
        msgs.iter().position(|m| matches!(m, Message::Speaking(s) if s.speaking == 1)).expect("speaking");
    assert!(msgs[..speaking_idx].iter().any(|m| matches!(m, Message::SelectProtocol(_))));

    // Everything arrives intact and in order, attributed to the right user.
    let silence = [0xF8, 0xFF, 0xFE];
    let got_b: Vec<Vec<u8>> = b.received.iter().map(|r| r.opus.clone()).filter(|o| o != &silence).collect();
    assert_eq!(got_b, sent_a);
    assert!(b.received.iter().all(|r| r.user == Snowflake(111)));
    let got_a: Vec<Vec<u8>> = a.received.iter().map(|r| r.opus.clone()).filter(|o| o != &silence).collect();
    assert_eq!(got_a, sent_b);
    for w in b.received.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
        assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(960));
    }

    // When the audio ran out: five silence frames, then speaking 0.
    assert_eq!(a.conn.stats().silence_frames_sent, 5);
    assert!(matches!(a.sent_messages().last(), Some(Message::Speaking(s)) if s.speaking == 0));
    let silence = b.received.iter().filter(|r| r.opus == [0xF8, 0xFF, 0xFE]).count();
    assert_eq!(silence, 5, "the other side hears the trailer");
    assert_eq!(a.conn.stats().decrypt_failures + b.conn.stats().decrypt_failures, 0);
}

#[test]
fn voice_updates_in_either_order_connect() {
    for behavior in [GatewayBehavior::StateFirst, GatewayBehavior::ServerFirst] {
        let mut sim = Sim::default_server(2);
        let a = sim.add_client(111, |_| {});
        sim.clients[a].gateway = behavior;
        sim.connect(a, CHANNEL);
        assert_eq!(sim.clients[a].conn.state(), State::Connected, "{behavior:?}");
        assert_eq!(sim.clients[a].urls.len(), 1, "{behavior:?}: one websocket");
    }
}

#[test]
fn join_times_out_when_the_main_gateway_stays_silent() {
    let mut sim = Sim::default_server(3);
    let a = sim.add_client(111, |c| c.voice_info_timeout = Duration::from_secs(5));
    sim.clients[a].gateway = GatewayBehavior::Silent;
    sim.join(a, CHANNEL);
    sim.run_for(Duration::from_secs(4));
    assert_eq!(sim.clients[a].conn.state(), State::AwaitingVoiceInfo);
    sim.run_for(Duration::from_secs(2));
    let c = &sim.clients[a];
    assert!(c.saw(|e| *e == Event::Disconnected { reason: DisconnectReason::VoiceInfoTimeout }));
    assert_eq!(c.conn.state(), State::Disconnected);
    assert!(c.urls.is_empty());
}

#[test]
fn sequence_and_timestamp_wrap() {
    let mut sim = Sim::default_server(4);
    let a = sim.add_client(111, |c| {
        c.initial_sequence = Some(65_530);
        c.initial_timestamp = Some(u32::MAX - 960 * 3 + 1);
    });
    let b = sim.add_client(222, |_| {});
    sim.connect(a, CHANNEL);
    sim.connect(b, CHANNEL);
    let now = sim.now;
    sim.clients[a].queue_frames(20, now);
    sim.run_for(Duration::from_secs(2));
    let r = &sim.clients[b].received;
    assert_eq!(r.len(), 25, "20 frames and 5 silence");
    assert_eq!(r[0].sequence, 65_530);
    assert!(r.iter().any(|p| p.sequence == 0), "sequence wrapped");
    assert!(r.iter().any(|p| p.timestamp < 960 * 10), "timestamp wrapped");
    for w in r.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
        assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(960));
    }
}

#[test]
fn leave_sends_silence_then_op4_null_and_closes() {
    let mut sim = Sim::call(5);
    let now = sim.now;
    sim.clients[0].queue_frames(10, now);
    sim.run_for(Duration::from_millis(100));
    let now = sim.now;
    sim.clients[0].audio.clear();
    sim.clients[0].conn.leave(now);
    sim.run_for(Duration::from_secs(1));
    let a = &sim.clients[0];
    assert_eq!(a.conn.stats().silence_frames_sent, 5);
    assert_eq!(a.gateway_sent.last().map(|p| p.channel_id), Some(None));
    assert!(a.saw(|e| *e == Event::Disconnected { reason: DisconnectReason::Requested }));
    assert_eq!(a.conn.state(), State::Idle);
    assert!(a.ws.is_none());
    // The trailer reached the other client before the close.
    let silence = sim.clients[1].received.iter().filter(|r| r.opus == [0xF8, 0xFF, 0xFE]).count();
    assert_eq!(silence, 5);
}

#[test]
fn no_voice_datagram_before_session_description() {
    let mut sim = Sim::default_server(6);
    let a = sim.add_client(111, |_| {});
    let now = sim.now;
    sim.clients[a].queue_frames(30, now);
    sim.join(a, CHANNEL);
    sim.run_for(Duration::from_secs(2));
    let c = &sim.clients[a];
    let connected_at =
        c.events.iter().find(|(_, e)| matches!(e, Event::Connected { .. })).map(|(t, _)| *t).expect("connected");
    for (t, d) in &c.datagrams {
        if voice_rtp::classify(d) == voice_rtp::DatagramKind::Rtp {
            assert!(*t >= connected_at, "voice before the session");
        }
    }
    assert!(c.audio_refused > 0, "frames offered before the session were refused");
}

#[test]
fn the_configured_mode_order_decides() {
    let mut sim = Sim::default_server(7);
    let a = sim.add_client(111, |c| c.modes = vec![Mode::XChaCha20Poly1305RtpSize, Mode::Aes256GcmRtpSize]);
    sim.connect(a, CHANNEL);
    assert!(sim.clients[a].saw(|e| matches!(e, Event::Connected { mode: Mode::XChaCha20Poly1305RtpSize, .. })));
    let mut sim =
        Sim::new(voice_mock::ServerConfig { modes: vec![Mode::XChaCha20Poly1305RtpSize], ..Default::default() }, 8);
    let a = sim.add_client(111, |_| {});
    sim.connect(a, CHANNEL);
    assert!(sim.clients[a].saw(|e| matches!(e, Event::Connected { mode: Mode::XChaCha20Poly1305RtpSize, .. })));
    let mut sim = Sim::new(voice_mock::ServerConfig { modes: vec![Mode::XSalsa20Poly1305], ..Default::default() }, 9);
    let a = sim.add_client(111, |_| {});
    sim.join(a, CHANNEL);
    sim.run_for(Duration::from_secs(2));
    assert!(sim.clients[a].saw(|e| *e == Event::Disconnected { reason: DisconnectReason::NoCommonMode }));
}

#[test]
fn audio_offered_while_leaving_is_refused_so_the_trailer_is_last() {
    let mut sim = Sim::call(10);
    let now = sim.now;
    sim.clients[0].queue_frames(40, now);
    sim.run_for(Duration::from_millis(200));
    let now = sim.now;
    sim.clients[0].conn.leave(now);
    sim.run_for(Duration::from_secs(2));
    let b = &sim.clients[1];
    let silence = b.received.iter().filter(|r| r.opus == [0xF8, 0xFF, 0xFE]).count();
    assert_eq!(silence, 5);
    assert_eq!(b.received.last().map(|r| r.opus.as_slice()), Some(&[0xF8, 0xFF, 0xFE][..]));
    assert!(sim.clients[0].audio_refused > 0, "queued frames were refused after leave");
}

#[test]
fn a_ghost_voice_state_is_reported_and_can_be_adopted_or_dropped() {
    use voice_proto::{GatewayEvent, VoiceStateUpdate};
    for adopt in [true, false] {
        let mut sim = Sim::default_server(11);
        let a = sim.add_client(111, |_| {});
        // At start-up the main gateway says the bot is already in a channel.
        let ghost = Snowflake(999);
        sim.gateway_event(
            a,
            GatewayEvent::VoiceStateUpdate(VoiceStateUpdate {
                guild_id: Some(voice_tests::sim::GUILD),
                channel_id: Some(ghost),
                user_id: Snowflake(111),
                session_id: "old".into(),
            }),
        );
        sim.run_for(Duration::from_millis(50));
        assert!(sim.clients[a].saw(|e| *e == Event::GhostVoiceState { channel_id: ghost }));
        assert_eq!(sim.clients[a].conn.state(), State::Idle, "nothing happens until the application decides");
        let now = sim.now;
        if adopt {
            sim.clients[a].conn.adopt_ghost(now);
            let ok = sim.run_until(Duration::from_secs(5), |s| s.clients[a].conn.state() == State::Connected);
            assert!(ok);
            assert_eq!(sim.clients[a].conn.channel(), Some(ghost));
        } else {
            sim.clients[a].conn.drop_ghost(now);
            sim.run_for(Duration::from_secs(1));
            assert_eq!(sim.clients[a].gateway_sent.last().map(|p| p.channel_id), Some(None));
            assert_eq!(sim.clients[a].conn.state(), State::Idle);
        }
    }
}

#[test]
fn close_is_an_orderly_shutdown_ending_in_closed() {
    let mut sim = Sim::call(12);
    let now = sim.now;
    sim.clients[0].queue_frames(10, now);
    sim.run_for(Duration::from_millis(100));
    let now = sim.now;
    sim.clients[0].conn.close(now);
    sim.run_for(Duration::from_secs(1));
    let a = &sim.clients[0];
    let n = a.events.len();
    assert_eq!(a.events[n - 1].1, Event::Closed, "Closed is the last event");
    assert_eq!(a.events[n - 2].1, Event::Disconnected { reason: DisconnectReason::Requested });
    assert!(a.conn.is_closed());
    assert_eq!(a.conn.stats().silence_frames_sent, 5);
    // Inert afterwards: nothing more happens.
    let outputs_before = a.ws_sent.len() + a.datagrams.len();
    let now = sim.now;
    sim.clients[0].conn.join(CHANNEL, now);
    sim.run_for(Duration::from_secs(20));
    let a = &sim.clients[0];
    assert_eq!(a.ws_sent.len() + a.datagrams.len(), outputs_before);
    assert_eq!(a.conn.state(), State::Closed);
}

#[test]
fn speaking_flags_are_the_callers_and_change_mid_stream() {
    let mut sim = Sim::default_server(21);
    let a = sim.add_client(111, |c| c.speaking_flags = SpeakingFlags::SOUNDSHARE);
    let b = sim.add_client(222, |_| {});
    sim.connect(a, CHANNEL);
    sim.connect(b, CHANNEL);
    assert!(sim.run_until_sendable(&[a, b], Duration::from_secs(10)));
    let now = sim.now;
    sim.clients[a].queue_frames(100, now);
    sim.run_for(Duration::from_millis(500));
    let now = sim.now;
    sim.clients[a].conn.set_speaking_flags(SpeakingFlags::SOUNDSHARE | SpeakingFlags::PRIORITY, now);
    sim.drain_all();
    sim.run_for(Duration::from_secs(3));

    let flags: Vec<u32> = sim.clients[a]
        .sent_messages()
        .iter()
        .filter_map(|m| if let Message::Speaking(s) = m { Some(s.speaking) } else { None })
        .collect();
    // Announced as soundshare, changed while flowing, then off after the trailer.
    assert_eq!(flags, vec![2, 6, 0]);
    let heard: Vec<u32> = sim.clients[b]
        .events_matching(|e| matches!(e, Event::Speaking { user_id: Snowflake(111), .. }))
        .iter()
        .filter_map(|e| if let Event::Speaking { flags, .. } = e { Some(*flags) } else { None })
        .collect();
    assert!(heard.starts_with(&[2, 6]), "the other member sees the flags: {heard:?}");
}
