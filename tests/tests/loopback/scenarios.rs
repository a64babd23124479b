//! The scenarios, each written once over [`Rt`]: join, play, record,
//! resume, move, leave, typed join errors, ghosts, manager moves and
//! replaced calls, pacing, and fifty calls at once.

use std::time::Duration;

use voice_driver::ogg::{OggOpusWriter, read_ogg_opus};
use voice_driver::{
    ConnectFailure, DriverConfig, Event, GatewayEvent, JoinError, Manager, Mode, ReconnectOutcome, ReconnectReason,
    Reconnection, SpeakingFlags, State,
};
use voice_mock::Fault;
use voice_proto::wire::Snowflake;
use voice_proto::{DisconnectReason, VoiceServerUpdate, VoiceStateUpdate};

pub use crate::fault_matrix::the_fault_matrix_holds_over_real_sockets;
use crate::harness::*;

/// The speech sample of the `play` example.
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../voice-tokio/assets/sample.ogg");

pub async fn join_play_record_round_trip(rt: Rt) {
    let server = Mock::start().await;
    let (a, b) = (bot(&rt, &server, 10), bot(&rt, &server, 20));
    let _call_b = joined(&b, CHANNEL).await;
    let call_a = joined(&a, CHANNEL).await;
    let call_b = b.manager.get(GUILD).unwrap();
    assert_eq!(a.op4.lock().unwrap()[0].channel_id, Some(CHANNEL), "join went through the main gateway");

    // The session's mode and SSRC are in the state; the SSRC is the one
    // the listener hears the audio from.
    let state_a = call_a.state();
    assert_eq!(state_a.mode, Some(Mode::Aes256GcmRtpSize));
    let ssrc_a = state_a.ssrc.expect("an SSRC once connected");
    let mut events_b = call_b.take_events().unwrap();
    call_a.set_speaking_flags(SpeakingFlags::SOUNDSHARE).await.unwrap();

    let sample = std::fs::read(SAMPLE).unwrap();
    let packets = read_ogg_opus(&sample).unwrap();
    let mut audio = call_b.take_audio().unwrap();
    let player = call_a.clone();
    let n = packets.len();
    let play = rt.spawn(async move { player.play_ogg(SAMPLE).await });
    let got = collect(&rt, &mut audio, n, Duration::from_secs(20)).await;
    assert_eq!(play.await.unwrap(), n as u64);
    let voice = voice_only(&got);
    // Compared whole (as `assert_eq!` would), reported briefly.
    assert!(
        voice == packets,
        "every Opus packet arrives intact and in order: {} of {n} arrived, missing {:?}; player: {}; listener: {}; \
         server: {}",
        voice.len(),
        missing(&voice, &packets),
        sender_counters(&call_a.stats().await.unwrap()),
        receiver_counters(&call_b.stats().await.unwrap()),
        server_counters(&server)
    );
    assert!(got.iter().all(|p| p.user_id == Snowflake(10) && p.ssrc == ssrc_a));
    // (The server may introduce a speaker it has not heard from as a
    // microphone first.)
    let mut flags = Vec::new();
    while let Ok(e) = events_b.try_recv() {
        if let Event::Speaking { user_id: Snowflake(10), flags: f, .. } = e {
            flags.push(f);
        }
    }
    assert!(flags.contains(&SpeakingFlags::SOUNDSHARE.bits()), "the listener saw the player's flags: {flags:?}");

    // Record as the example does and read it back.
    let mut w = OggOpusWriter::new(Vec::new(), 1).unwrap();
    for p in &got {
        w.write_packet(&p.opus).unwrap();
    }
    let recorded = read_ogg_opus(&w.finish().unwrap()).unwrap();
    assert_eq!(recorded.len(), got.len());

    let stats = call_a.stats().await.unwrap();
    assert_eq!(stats.frames_sent, n as u64);
    assert_eq!(stats.frames_dropped_not_ready, 0);
    assert_eq!(call_b.stats().await.unwrap().proto.decrypt_failures, 0);

    // The listener's dashboard: the player as a user heard without loss,
    // the session's endpoint and mode, a heartbeat round trip.
    let snap = call_b.snapshot().await.unwrap();
    assert_eq!(snap.guild_id, GUILD);
    assert_eq!(snap.endpoint.as_deref(), Some(server.wss_endpoint().as_str()));
    assert_eq!(snap.state.mode, Some(Mode::Aes256GcmRtpSize));
    assert!(snap.heartbeat_rtt.is_some(), "heartbeats every second were acknowledged");
    let player = snap.users.iter().find(|u| u.user_id == Snowflake(10)).expect("the player heard");
    assert_eq!((player.ssrc, player.received, player.lost), (ssrc_a, got.len() as u64, 0));
    assert!(snap.reconnections.is_empty());
    assert_eq!(snap.stats.proto.packets_received, snap.users.iter().map(|u| u.received).sum::<u64>());
    call_a.close().await.unwrap();
    call_b.close().await.unwrap();
}

pub async fn a_4015_close_mid_stream_resumes_without_loss_beyond_the_outage(rt: Rt) {
    let server = Mock::start().await;
    let (a, b) = (bot(&rt, &server, 10), bot(&rt, &server, 20));
    let call_b = joined(&b, CHANNEL).await;
    let call_a = joined(&a, CHANNEL).await;
    let mut events = call_a.take_events().unwrap();
    let mut audio = call_b.take_audio().unwrap();
    let sent = frames(1, 150);
    let player = call_a.clone();
    let to_play = sent.clone();
    let play = rt.spawn(async move { player.play(to_play).await });
    rt.sleep(Duration::from_millis(1000)).await;
    server.inject(Fault::CloseUser { user: Snowflake(10), code: 4015, after: None });
    let got = collect(&rt, &mut audio, 150, Duration::from_secs(15)).await;
    play.await.unwrap();

    let mut saw = Vec::new();
    while let Ok(e) = events.try_recv() {
        saw.push(e);
    }
    assert!(saw.iter().any(|e| matches!(e, Event::Resumed)), "{saw:?}");
    let stats = call_a.stats().await.unwrap();
    assert_eq!(stats.proto.resumes, 1);
    let history = call_a.snapshot().await.unwrap().reconnections;
    let resumed =
        |r: &Reconnection| r.reason == ReconnectReason::Closed(Some(4015)) && r.outcome == ReconnectOutcome::Resumed;
    assert!(matches!(history.as_slice(), [r] if resumed(r)), "{history:?}");
    // The UDP path and keys carry over a resume, so audio keeps flowing:
    // nothing is lost at all on loopback.
    let voice = voice_only(&got);
    // Compared whole (as `assert_eq!` would), reported briefly.
    assert!(
        voice == sent,
        "{} of 150 arrived, missing {:?}; player: {}; listener: {}; server: {}",
        voice.len(),
        missing(&voice, &sent),
        sender_counters(&stats),
        receiver_counters(&call_b.stats().await.unwrap()),
        server_counters(&server)
    );
    let resumes = server.received_frames(Snowflake(10)).iter().filter(|f| f.op == Some(7)).count();
    assert_eq!(resumes, 1);
}

pub async fn an_endpoint_move_mid_stream_reconnects_fresh(rt: Rt) {
    let server = Mock::start().await;
    let (a, b) = (bot(&rt, &server, 10), bot(&rt, &server, 20));
    let call_b = joined(&b, CHANNEL).await;
    let call_a = joined(&a, CHANNEL).await;
    let mut audio = call_b.take_audio().unwrap();
    let sent = frames(2, 150);
    let player = call_a.clone();
    let to_play = sent.clone();
    let play = rt.spawn(async move { player.play(to_play).await });
    rt.sleep(Duration::from_millis(1000)).await;
    // Discord moves the bot to another voice server: new token and a new
    // endpoint (here `localhost:PORT`, the same mock under another name;
    // its certificate covers both). The old socket is closed.
    let endpoint = format!("localhost:{}", server.wss_port());
    let info = server.move_client(Snowflake(10), GUILD, None, Some(endpoint.clone())).expect("move");
    assert_eq!(info.endpoint, endpoint);
    let update = VoiceServerUpdate { guild_id: GUILD, token: info.token, endpoint: Some(info.endpoint) };
    a.manager.handle_gateway_event(GatewayEvent::VoiceServerUpdate(update)).await;
    let got = collect(&rt, &mut audio, 150, Duration::from_secs(6)).await;
    play.await.unwrap();
    let identifies = server.received_frames(Snowflake(10)).iter().filter(|f| f.op == Some(0)).count();
    assert_eq!(identifies, 2, "a fresh Identify after the move");
    let stats = call_a.stats().await.unwrap();
    assert_eq!(stats.proto.resumes, 0, "a move is never resumed");
    assert_eq!(call_a.state().state, State::Connected);
    let voice = voice_only(&got);
    // Every frame is accounted for: delivered, refused by the client while
    // it reconnected, or sent on the old session after the server ended it
    // (the server discards those as RTP of an unknown SSRC).
    let discarded = server.stats().junk_datagrams;
    let counters = format!(
        "missing {:?}; player: {}; listener: {}; server: {}",
        missing(&voice, &sent),
        sender_counters(&stats),
        receiver_counters(&call_b.stats().await.unwrap()),
        server_counters(&server)
    );
    assert_eq!(
        voice.len() as u64 + stats.frames_dropped_not_ready + discarded,
        150,
        "every frame accounted for: {counters}"
    );
    assert_eq!(stats.frames_sent, 150 - stats.frames_dropped_not_ready, "{counters}");
    assert!(voice.len() >= 100, "the outage is short: {} delivered; {counters}", voice.len());
    let mut it = sent.iter();
    assert!(voice.iter().all(|v| it.any(|s| s == v)), "arrivals keep the sending order");
}

pub async fn leave_sends_five_silence_frames_then_op4_null(rt: Rt) {
    let server = Mock::start().await;
    let (a, b) = (bot(&rt, &server, 10), bot(&rt, &server, 20));
    let call_b = joined(&b, CHANNEL).await;
    let call_a = joined(&a, CHANNEL).await;
    let mut audio = call_b.take_audio().unwrap();
    // Keep audio flowing while leaving.
    let sink = call_a.frame_sink();
    for f in frames(3, 20) {
        sink.send(f).await.unwrap();
    }
    rt.sleep(Duration::from_millis(200)).await;
    call_a.leave().await.unwrap();
    let got = collect(&rt, &mut audio, 1000, Duration::from_millis(800)).await;
    assert_eq!(silence_count(&got), 5);
    assert_eq!(got.last().map(|p| p.opus.as_ref() == voice_rtp::OPUS_SILENCE), Some(true), "silence is last");
    let op4 = a.op4.lock().unwrap().clone();
    assert_eq!(op4.last().map(|p| p.channel_id), Some(None), "op 4 with channel null");
    assert_eq!(call_a.state().state, State::Idle);
    // The voice server saw the speaking-off and then the socket close.
    let sent = server.received_frames(Snowflake(10));
    let last_speaking = sent.iter().rev().find(|f| f.op == Some(5)).and_then(|f| f.text().map(str::to_owned));
    assert!(last_speaking.is_some_and(|t| t.contains(r#""speaking":0"#)));
}

pub async fn join_fails_with_a_typed_error_instead_of_hanging(rt: Rt) {
    let server = Mock::start().await;
    // A main gateway that never answers (a full channel).
    let silent = |_p: voice_proto::UpdateVoiceState| {};
    let mut config = driver_config(&server);
    config.join_timeout = Duration::from_millis(800);
    let manager = Manager::new(rt.runtime(), Snowflake(10), silent, config).unwrap();
    let err = manager.join(GUILD, CHANNEL).await.unwrap_err();
    assert_eq!(err, JoinError::Timeout);
    // And a call that the server rejects for good: 4017 before Ready.
    server.inject(Fault::CloseEach { code: 4017, after: Duration::ZERO });
    let b = bot(&rt, &server, 30);
    let err = b.manager.join(GUILD, CHANNEL).await.unwrap_err();
    assert_eq!(err, JoinError::Disconnected(DisconnectReason::E2eeRequired));
}

pub async fn an_unreachable_voice_server_is_reported_with_its_reason(rt: Rt) {
    let server = Mock::start().await;
    // A certificate nobody trusts: reported at once, not at the timeout.
    let mut untrusting = DriverConfig::default();
    untrusting.join_timeout = Duration::from_secs(8);
    let info = server.join_wss(GUILD, CHANNEL, Snowflake(40));
    let started = rt.now();
    let err = voice_driver::connect(rt.runtime(), info, untrusting).await.unwrap_err();
    assert!(matches!(&err, JoinError::Unreachable(ConnectFailure::Tls(m)) if m.contains("certificate")), "{err:?}");
    assert!(rt.now() - started < Duration::from_secs(4), "a permanent failure does not wait out the join timeout");

    // Nothing listens: the attempts are retried, then the timeout says why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut config = driver_config(&server);
    config.join_timeout = Duration::from_millis(1500);
    let mut info = server.join_wss(GUILD, CHANNEL, Snowflake(41));
    info.endpoint = format!("127.0.0.1:{port}");
    let err = voice_driver::connect(rt.runtime(), info, config).await.unwrap_err();
    assert_eq!(err, JoinError::Unreachable(ConnectFailure::Refused));

    // A server that accepts and never answers the TLS handshake.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = driver_config(&server);
    config.proto.ws_open_timeout = Duration::from_millis(300);
    config.join_timeout = Duration::from_millis(1500);
    let mut info = server.join_wss(GUILD, CHANNEL, Snowflake(42));
    info.endpoint = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    let err = voice_driver::connect(rt.runtime(), info, config).await.unwrap_err();
    assert_eq!(err, JoinError::Unreachable(ConnectFailure::Timeout));
    drop(silent);
}

pub async fn play_resolves_once_the_last_frame_went_out_at_the_paced_rate(rt: Rt) {
    let server = Mock::start().await;
    let (a, b) = (bot(&rt, &server, 10), bot(&rt, &server, 20));
    // Someone to play to: an end-to-end encrypted call needs a group.
    let _listener = joined(&b, CHANNEL).await;
    let call = joined(&a, CHANNEL).await;
    call.wait_can_send(Duration::from_secs(10)).await.unwrap();
    let started = rt.now();
    let n = call.play(frames(4, 30)).await.unwrap();
    let elapsed = rt.now() - started;
    assert_eq!(n, 30);
    let stats = call.stats().await.unwrap();
    assert_eq!(stats.frames_sent, 30, "all sent when play resolves: {}", sender_counters(&stats));
    // 30 frames at 20 ms: the first goes at once, the last 580 ms later.
    assert!(elapsed >= Duration::from_millis(570), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

pub async fn manager_join_waits_for_a_move_and_replaces_a_closed_call(rt: Rt) {
    let server = Mock::start().await;
    let a = bot(&rt, &server, 10);
    let first = joined(&a, CHANNEL).await;
    // A move: join resolves only once connected in the new channel.
    let other = Snowflake(3);
    let moved = a.manager.join(GUILD, other).await.unwrap();
    let s = moved.state();
    assert_eq!((s.state, s.channel, s.connects), (State::Connected, Some(other), 2));
    let identifies = server.received_frames(Snowflake(10)).iter().filter(|f| f.op == Some(0)).count();
    assert_eq!(identifies, 2);
    // A closed call does not poison the manager: the next join makes a new one.
    first.close().await.unwrap();
    let again = a.manager.join(GUILD, CHANNEL).await.unwrap();
    assert_eq!(again.state().state, State::Connected);
    assert_eq!(again.state().connects, 1, "a new call");
}

pub async fn a_ghost_voice_state_reaches_the_application_through_the_manager(rt: Rt) {
    let server = Mock::start().await;
    let b = bot(&rt, &server, 20);
    let (guild, channel) = (Snowflake(7), Snowflake(8));
    // Someone else's state creates nothing.
    let other = VoiceStateUpdate {
        guild_id: Some(guild),
        channel_id: Some(channel),
        user_id: Snowflake(99),
        session_id: "x".into(),
    };
    b.manager.handle_gateway_event(GatewayEvent::VoiceStateUpdate(other)).await;
    assert!(b.manager.get(guild).is_none());
    // The bot's own state at start-up, in a guild with no call.
    let own = VoiceStateUpdate {
        guild_id: Some(guild),
        channel_id: Some(channel),
        user_id: Snowflake(20),
        session_id: "x".into(),
    };
    b.manager.handle_gateway_event(GatewayEvent::VoiceStateUpdate(own)).await;
    let call = b.manager.get(guild).expect("a call for the ghost");
    let mut events = call.take_events().unwrap();
    let e = rt.timeout(Duration::from_secs(2), events.recv()).await.unwrap().unwrap();
    assert_eq!(e, Event::GhostVoiceState { channel_id: channel });
}

/// Fifty calls in one process against one voice-mock server: two bots,
/// each in 25 guilds through one manager; every packet accounted for.
pub async fn fifty_simultaneous_calls_account_for_every_packet(rt: Rt) {
    const GUILDS: u64 = 25;
    const FRAMES: usize = 100;
    let server = Mock::start().await;
    let (a, b) = (bot(&rt, &server, 10), bot(&rt, &server, 20));
    let mut listeners = Vec::new();
    for g in 0..GUILDS {
        let guild = Snowflake(100 + g);
        let call_b = b.manager.join(guild, CHANNEL).await.expect("listener joins");
        listeners.push((guild, call_b.take_audio().unwrap(), call_b));
    }
    let mut players = Vec::new();
    for g in 0..GUILDS {
        let guild = Snowflake(100 + g);
        let call_a = a.manager.join(guild, CHANNEL).await.expect("player joins");
        let sent = frames(g as u8, FRAMES);
        let to_play = sent.clone();
        let c = call_a.clone();
        players.push((sent, call_a, rt.spawn(async move { c.play(to_play).await })));
    }
    let mut collectors = Vec::new();
    for (guild, mut audio, call) in listeners {
        let on = rt.clone();
        collectors.push(rt.spawn(async move {
            let got = collect(&on, &mut audio, FRAMES, Duration::from_secs(30)).await;
            (guild, got, call)
        }));
    }
    for (c, (sent, call_a, play)) in collectors.into_iter().zip(players) {
        let (guild, got, call_b) = c.await;
        play.await.unwrap();
        let sa = call_a.stats().await.unwrap();
        let sb = call_b.stats().await.unwrap();
        let voice = voice_only(&got);
        // Compared whole (as `assert_eq!` would), reported briefly.
        assert!(
            voice == sent,
            "guild {guild}: every packet, in order, from its own player only: {} of {FRAMES} arrived, missing {:?}; \
             player: {}; listener: {}; server: {}",
            voice.len(),
            missing(&voice, &sent),
            sender_counters(&sa),
            receiver_counters(&sb),
            server_counters(&server)
        );
        assert!(got.iter().all(|p| p.user_id == Snowflake(10)));
        assert_eq!(sa.frames_sent, FRAMES as u64);
        assert_eq!(sa.frames_dropped_not_ready + sa.udp_send_errors, 0);
        assert_eq!(sb.audio_dropped + sb.proto.decrypt_failures + sb.proto.unknown_ssrc_drops, 0);
    }
    let s = server.stats();
    assert_eq!(s.sessions, 50);
    assert_eq!(s.junk_datagrams + s.decrypt_failures, 0);
    let forwarded: u64 = s.users.values().map(|u| u.rtp_out).sum();
    let received: u64 = s.users.values().map(|u| u.rtp_in).sum();
    assert_eq!(received, forwarded, "each packet forwarded to exactly one listener");
    assert!(received >= GUILDS * FRAMES as u64);
}

/// What [`Boom`] panics with.
const BOOM: &str = "a source that breaks";

/// Keeps the panic hook from printing [`Boom`]'s panic with a backtrace:
/// symbolising one (with `RUST_BACKTRACE` set, as CI has it) takes the
/// wheel's thread for half a second, a stall of the test's making. Every
/// other panic is printed as before.
fn quiet_boom() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() == Some(&BOOM) {
                eprintln!("(a source panicked, as the test asks: {BOOM})");
            } else {
                default(info);
            }
        }));
    });
}

/// A source that panics after `left` frames.
#[derive(Debug)]
struct Boom {
    left: u32,
}

impl voice_driver::FrameSource for Boom {
    fn next_frame(&mut self) -> Option<bytes::Bytes> {
        if self.left == 0 {
            std::panic::panic_any(BOOM);
        }
        self.left -= 1;
        Some(bytes::Bytes::from_static(&[0xFC, 0xBB, 0xBB, 0xBB]))
    }
}

/// Calls made from clones of one configuration share a send wheel; a
/// source that panics in it takes down its own call only: the other call
/// in the wheel plays on, every frame.
pub async fn a_panicking_source_stops_only_its_own_call(rt: Rt) {
    let server = Mock::start().await;
    let config = driver_config(server.server());
    let (guild, channel) = (Snowflake(61), Snowflake(62));
    let info = |user: u64| server.server().join_wss(guild, channel, Snowflake(user));
    let listener = voice_driver::connect(rt.runtime(), info(20), config.clone()).await.unwrap();
    let bad = voice_driver::connect(rt.runtime(), info(10), config.clone()).await.unwrap();
    let good = voice_driver::connect(rt.runtime(), info(30), config.clone()).await.unwrap();
    for c in [&listener, &bad, &good] {
        c.wait_can_send(Duration::from_secs(10)).await.unwrap();
    }
    let mut audio = listener.take_audio().unwrap();
    let sent: Vec<Vec<u8>> = frames(7, 100);
    let source = voice_driver::Looped::times(sent.iter().cloned().map(bytes::Bytes::from).collect(), 1);
    quiet_boom();
    bad.start_source(Boom { left: 20 }).await.unwrap();
    let play = {
        let good = good.clone();
        rt.spawn(async move { good.play_source(source).await })
    };
    rt.timeout(Duration::from_secs(20), play).await.expect("the good call's source plays out").unwrap();
    // Everything sent has arrived a moment after the last frame went out.
    rt.sleep(Duration::from_millis(500)).await;
    let got: Vec<_> = std::iter::from_fn(|| audio.try_recv().ok()).collect();
    let from_good: Vec<Vec<u8>> = got
        .iter()
        .filter(|p| p.user_id == Snowflake(30) && p.opus.as_ref() != voice_rtp::OPUS_SILENCE)
        .map(|p| p.opus.to_vec())
        .collect();
    // Unwinding may stall the wheel past a slot: the frames skipped for
    // that are counted, and everything else arrives, in order, to the last
    // one.
    let late = good.stats().await.unwrap().frames_dropped_late;
    assert_eq!(from_good.len() as u64 + late, 100, "every frame arrived or was skipped as late");
    assert!(late <= 25, "{late} skipped");
    assert_eq!(from_good.last(), sent.last(), "the good call played on to its end");
    assert!(from_good.iter().all(|f| sent.contains(f)));
    let from_bad = got.iter().filter(|p| p.user_id == Snowflake(10) && p.opus.len() == 4).count();
    assert!((1..=20).contains(&from_bad), "the bad call played until its source broke: {from_bad}");
}
