//! The tokio adapter over loopback against voice-mock: join, play, record,
//! resume, move, leave.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use voice_mock::Fault;
use voice_proto::wire::Snowflake;
use voice_proto::{Event, State};
use voice_tokio::ogg::{OggOpusWriter, read_ogg_opus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_play_record_round_trip() {
    let server = Arc::new(server().await);
    let (a, b) = (bot(&server, 10), bot(&server, 20));
    let _call_b = joined(&b, CHANNEL).await;
    let call_a = joined(&a, CHANNEL).await;
    let call_b = b.manager.get(GUILD).unwrap();
    assert_eq!(a.op4.lock().unwrap()[0].channel_id, Some(CHANNEL), "join went through the main gateway");

    let sample = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/sample.ogg")).unwrap();
    let packets = read_ogg_opus(&sample).unwrap();
    let mut audio = call_b.take_audio().unwrap();
    let player = call_a.clone();
    let n = packets.len();
    let play =
        tokio::spawn(async move { player.play_ogg(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/sample.ogg")).await });
    let got = collect(&mut audio, n, Duration::from_secs(20)).await;
    assert_eq!(play.await.unwrap().unwrap(), n as u64);
    assert_eq!(voice_only(&got), packets, "every Opus packet arrives intact and in order");
    assert!(got.iter().all(|p| p.user_id == Snowflake(10)));

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
    call_a.close().await.unwrap();
    call_b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4015_close_mid_stream_resumes_without_loss_beyond_the_outage() {
    let server = Arc::new(server().await);
    let (a, b) = (bot(&server, 10), bot(&server, 20));
    let call_b = joined(&b, CHANNEL).await;
    let call_a = joined(&a, CHANNEL).await;
    let mut events = call_a.take_events().unwrap();
    let mut audio = call_b.take_audio().unwrap();
    let sent = frames(1, 150);
    let player = call_a.clone();
    let to_play = sent.clone();
    let play = tokio::spawn(async move { player.play(to_play).await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.inject(Fault::CloseUser { user: Snowflake(10), code: 4015, after: None });
    let got = collect(&mut audio, 150, Duration::from_secs(15)).await;
    play.await.unwrap().unwrap();

    let mut saw = Vec::new();
    while let Ok(e) = events.try_recv() {
        saw.push(e);
    }
    assert!(saw.iter().any(|e| matches!(e, Event::Resumed)), "{saw:?}");
    let stats = call_a.stats().await.unwrap();
    assert_eq!(stats.proto.resumes, 1);
    // The UDP path and keys carry over a resume, so audio keeps flowing:
    // nothing is lost at all on loopback.
    assert_eq!(voice_only(&got), sent);
    let resumes = server.received_frames(Snowflake(10)).iter().filter(|f| f.op == Some(7)).count();
    assert_eq!(resumes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_move_mid_stream_reconnects_fresh() {
    let server = Arc::new(server().await);
    let (a, b) = (bot(&server, 10), bot(&server, 20));
    let call_b = joined(&b, CHANNEL).await;
    let call_a = joined(&a, CHANNEL).await;
    let mut audio = call_b.take_audio().unwrap();
    let sent = frames(2, 150);
    let player = call_a.clone();
    let to_play = sent.clone();
    let play = tokio::spawn(async move { player.play(to_play).await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Discord moves the bot to another voice server: new token and a new
    // endpoint (here `localhost:PORT`, the same mock under another name;
    // its certificate covers both). The old socket is closed.
    let endpoint = format!("localhost:{}", server.wss_port());
    let info = server.move_client(Snowflake(10), GUILD, None, Some(endpoint.clone())).expect("move");
    assert_eq!(info.endpoint, endpoint);
    let update = voice_proto::VoiceServerUpdate { guild_id: GUILD, token: info.token, endpoint: Some(info.endpoint) };
    a.manager.handle_gateway_event(voice_proto::GatewayEvent::VoiceServerUpdate(update)).await;
    let got = collect(&mut audio, 150, Duration::from_secs(6)).await;
    play.await.unwrap().unwrap();
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
    assert_eq!(voice.len() as u64 + stats.frames_dropped_not_ready + discarded, 150, "every frame accounted for");
    assert_eq!(stats.frames_sent, 150 - stats.frames_dropped_not_ready);
    assert!(voice.len() >= 100, "the outage is short: {} delivered", voice.len());
    let mut it = sent.iter();
    assert!(voice.iter().all(|v| it.any(|s| s == v)), "arrivals keep the sending order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_sends_five_silence_frames_then_op4_null() {
    let server = Arc::new(server().await);
    let (a, b) = (bot(&server, 10), bot(&server, 20));
    let call_b = joined(&b, CHANNEL).await;
    let call_a = joined(&a, CHANNEL).await;
    let mut audio = call_b.take_audio().unwrap();
    // Keep audio flowing while leaving.
    let sink = call_a.frame_sink();
    for f in frames(3, 20) {
        sink.send(f).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    call_a.leave().await.unwrap();
    let got = collect(&mut audio, 1000, Duration::from_millis(800)).await;
    let silence = got.iter().filter(|p| p.opus.as_ref() == voice_rtp::OPUS_SILENCE).count();
    assert_eq!(silence, 5);
    assert_eq!(got.last().map(|p| p.opus.as_ref() == voice_rtp::OPUS_SILENCE), Some(true), "silence is last");
    let op4 = a.op4.lock().unwrap().clone();
    assert_eq!(op4.last().map(|p| p.channel_id), Some(None), "op 4 with channel null");
    assert_eq!(call_a.state().state, State::Idle);
    // The voice server saw the speaking-off and then the socket close.
    let sent = server.received_frames(Snowflake(10));
    let last_speaking = sent.iter().rev().find(|f| f.op == Some(5)).and_then(|f| f.text().map(str::to_owned));
    assert!(last_speaking.is_some_and(|t| t.contains(r#""speaking":0"#)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_fails_with_a_typed_error_instead_of_hanging() {
    let server = Arc::new(server().await);
    // A main gateway that never answers (a full channel).
    let silent = |_p: voice_proto::UpdateVoiceState| {};
    let mut config = driver_config(&server);
    config.join_timeout = Duration::from_millis(800);
    let manager = voice_tokio::Manager::new(Snowflake(10), silent, config).unwrap();
    let err = manager.join(GUILD, CHANNEL).await.unwrap_err();
    assert_eq!(err, voice_tokio::JoinError::Timeout);
    // And a call that the server rejects for good: 4017 before Ready.
    server.inject(Fault::CloseEach { code: 4017, after: Duration::ZERO });
    let b = bot(&server, 30);
    let err = b.manager.join(GUILD, CHANNEL).await.unwrap_err();
    assert_eq!(err, voice_tokio::JoinError::Disconnected(voice_proto::DisconnectReason::E2eeRequired));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_resolves_once_the_last_frame_went_out_at_the_paced_rate() {
    let server = Arc::new(server().await);
    let (a, b) = (bot(&server, 10), bot(&server, 20));
    // Someone to play to: an end-to-end encrypted call needs a group.
    let _listener = joined(&b, CHANNEL).await;
    let call = joined(&a, CHANNEL).await;
    call.wait_can_send(Duration::from_secs(10)).await.unwrap();
    let started = tokio::time::Instant::now();
    let n = call.play(frames(4, 30)).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(n, 30);
    assert_eq!(call.stats().await.unwrap().frames_sent, 30, "all sent when play resolves");
    // 30 frames at 20 ms: the first goes at once, the last 580 ms later.
    assert!(elapsed >= Duration::from_millis(570), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_join_waits_for_a_move_and_replaces_a_closed_call() {
    let server = Arc::new(server().await);
    let a = bot(&server, 10);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ghost_voice_state_reaches_the_application_through_the_manager() {
    let server = Arc::new(server().await);
    let b = bot(&server, 20);
    let (guild, channel) = (Snowflake(7), Snowflake(8));
    // Someone else's state creates nothing.
    let other = voice_proto::VoiceStateUpdate {
        guild_id: Some(guild),
        channel_id: Some(channel),
        user_id: Snowflake(99),
        session_id: "x".into(),
    };
    b.manager.handle_gateway_event(voice_proto::GatewayEvent::VoiceStateUpdate(other)).await;
    assert!(b.manager.get(guild).is_none());
    // The bot's own state at start-up, in a guild with no call.
    let own = voice_proto::VoiceStateUpdate {
        guild_id: Some(guild),
        channel_id: Some(channel),
        user_id: Snowflake(20),
        session_id: "x".into(),
    };
    b.manager.handle_gateway_event(voice_proto::GatewayEvent::VoiceStateUpdate(own)).await;
    let call = b.manager.get(guild).expect("a call for the ghost");
    let mut events = call.take_events().unwrap();
    let e = tokio::time::timeout(Duration::from_secs(2), events.recv()).await.unwrap().unwrap();
    assert_eq!(e, Event::GhostVoiceState { channel_id: channel });
}
