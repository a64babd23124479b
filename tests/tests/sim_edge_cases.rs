//! Simulated edge cases of the connection's lifecycle: closes that race a
//! leave, main-gateway updates that race a pending reconnect, resumes that
//! time out, joins after 4014, and a server that keeps dropping the call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use voice_mock::Fault;
use voice_proto::wire::{Message, Snowflake};
use voice_proto::{DisconnectReason, Event, GatewayEvent, ReconnectReason, State, VoiceServerUpdate};
use voice_tests::sim::{CHANNEL, GUILD, Sim};

const A: u64 = 111;

fn count(sim: &Sim, f: impl Fn(&Message) -> bool) -> usize {
    sim.clients[0].sent_messages().iter().filter(|m| f(m)).count()
}

#[test]
fn a_close_during_the_silence_trailer_still_completes_the_leave() {
    for code in [4006, 4014, 4015, 4017] {
        let mut sim = Sim::call(30 + u64::from(code));
        let now = sim.now;
        sim.clients[0].queue_frames(20, now);
        sim.run_for(Duration::from_millis(100));
        let now = sim.now;
        sim.clients[0].conn.leave(now);
        sim.run_for(Duration::from_millis(30));
        sim.inject(Fault::CloseUser { user: Snowflake(A), code, after: None });
        sim.run_for(Duration::from_secs(20));
        let a = &sim.clients[0];
        assert!(a.saw(|e| *e == Event::Disconnected { reason: DisconnectReason::Requested }), "{code}: {:?}", a.events);
        assert_eq!(a.gateway_sent.last().map(|p| p.channel_id), Some(None), "{code}: op 4 null was sent");
        assert_eq!(a.urls.len(), 1, "{code}: no reconnect while leaving");
        assert_eq!(a.conn.state(), State::Idle, "{code}");
        let now = sim.now;
        sim.clients[0].conn.close(now);
        sim.run_for(Duration::from_millis(10));
        assert!(sim.clients[0].saw(|e| *e == Event::Closed), "{code}: close completes");
    }
}

#[test]
fn a_null_endpoint_cancels_a_pending_reconnect() {
    let mut sim = Sim::call(40);
    // A first drop resumes at once; breaking that resume too leaves a
    // backed-off resume pending.
    sim.break_ws(0);
    sim.run_until(Duration::from_secs(1), |s| s.clients[0].ws.is_some());
    sim.break_ws(0);
    assert_eq!(sim.clients[0].conn.state(), State::Reconnecting);
    sim.gateway_event(
        0,
        GatewayEvent::VoiceServerUpdate(VoiceServerUpdate { guild_id: GUILD, token: "t".into(), endpoint: None }),
    );
    sim.run_for(Duration::from_millis(20));
    let resumes_before = count(&sim, |m| matches!(m, Message::Resume(_)));
    let now = sim.now;
    let info = sim.server.move_client(Snowflake(A), GUILD, None, Some("voice-sim-5.example:443".into()), now).unwrap();
    sim.drain_all();
    sim.deliver_join_info(0, &info, false);
    sim.run_for(Duration::from_secs(30));
    let a = &sim.clients[0];
    assert_eq!(count(&sim, |m| matches!(m, Message::Resume(_))), resumes_before, "the stale resume never went out");
    assert_eq!(a.conn.state(), State::Connected);
    assert!(a.conn.is_ready(), "a session with keys, not a half-resumed one");
    assert_eq!(a.urls.last().map(String::as_str), Some("wss://voice-sim-5.example:443/?v=8"));
}

#[test]
fn a_resume_that_times_out_falls_back_to_a_fresh_connection() {
    let mut sim = Sim::call(41);
    sim.blackhole_ws_to_server = true;
    sim.inject(Fault::CloseUser { user: Snowflake(A), code: 4015, after: None });
    // The Resume goes unanswered; after the handshake timeout the client
    // asks the main gateway for fresh credentials instead of resuming again.
    let ok = sim.run_until(Duration::from_secs(40), |s| s.clients[0].gateway_sent.len() == 2);
    assert!(ok, "{:?}", sim.clients[0].events);
    assert!(sim.clients[0].saw(|e| *e == Event::Reconnecting { reason: ReconnectReason::HandshakeTimeout }));
    assert_eq!(count(&sim, |m| matches!(m, Message::Resume(_))), 1);
    sim.blackhole_ws_to_server = false;
    let ok = sim.run_until(Duration::from_secs(40), |s| s.clients[0].conn.state() == State::Connected);
    assert!(ok, "{:?}", sim.clients[0].events);
}

#[test]
fn join_after_a_4014_asks_the_main_gateway_again() {
    let mut sim = Sim::call(42);
    sim.inject(Fault::CloseUser { user: Snowflake(A), code: 4014, after: None });
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.clients[0].conn.state(), State::AwaitingMove);
    // The main session came back (READY): rejoin the same channel.
    sim.join(0, CHANNEL);
    let ok = sim.run_until(Duration::from_secs(5), |s| s.clients[0].conn.state() == State::Connected);
    assert!(ok, "{:?}", sim.clients[0].events);
    assert_eq!(sim.clients[0].gateway_sent.len(), 2);
}

#[test]
fn mute_after_a_final_close_does_not_rejoin() {
    let mut sim = Sim::call(43);
    sim.inject(Fault::CloseUser { user: Snowflake(A), code: 4021, after: None });
    sim.run_for(Duration::from_secs(1));
    assert!(sim.clients[0].saw(|e| *e == Event::Disconnected { reason: DisconnectReason::RateLimited }));
    let now = sim.now;
    sim.clients[0].conn.set_mute_deaf(true, false, now);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.clients[0].gateway_sent.len(), 1, "no op 4 after 4021");
    assert_eq!(sim.clients[0].urls.len(), 1);
}

#[test]
fn a_server_that_keeps_dropping_the_call_is_backed_off_and_given_up_on() {
    let mut sim = Sim::call(44);
    // Every time the client gets back in, the server drops it again.
    for _ in 0..20 {
        sim.inject(Fault::CloseUser { user: Snowflake(A), code: 4015, after: None });
        let back = sim.run_until(Duration::from_secs(120), |s| {
            s.clients[0].conn.state() == State::Connected || s.clients[0].conn.state() == State::Disconnected
        });
        assert!(back);
        if sim.clients[0].conn.state() == State::Disconnected {
            break;
        }
        sim.run_for(Duration::from_millis(10));
    }
    let a = &sim.clients[0];
    assert!(a.saw(|e| *e == Event::Disconnected { reason: DisconnectReason::ReconnectFailed }), "{:?}", a.events);
    // Retries were spaced out, not immediate.
    let reconnecting: Vec<_> =
        a.events.iter().filter(|(_, e)| matches!(e, Event::Reconnecting { .. })).map(|(t, _)| *t).collect();
    assert!(reconnecting.len() <= 8, "{}", reconnecting.len());
    let span = *reconnecting.last().unwrap() - reconnecting[0];
    assert!(span >= Duration::from_secs(3), "backoff spaced the retries: {span:?}");
}

#[test]
#[allow(clippy::disallowed_methods)]
fn a_session_without_hello_is_not_trusted_forever() {
    use std::net::SocketAddr;
    use std::time::Instant;
    use voice_proto::wire::WsMessage;
    use voice_proto::{Config, Output, VoiceConnection, VoiceStateUpdate};

    // Driven by hand: the server never sends Hello, so no heartbeat runs.
    let mut now = Instant::now();
    let server: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let mut conn = VoiceConnection::new(Config::new(GUILD, Snowflake(A)), now);
    conn.join(CHANNEL, now);
    let state = VoiceStateUpdate {
        guild_id: Some(GUILD),
        channel_id: Some(CHANNEL),
        user_id: Snowflake(A),
        session_id: "s".into(),
    };
    conn.handle_gateway_event(GatewayEvent::VoiceStateUpdate(state), now);
    let update = VoiceServerUpdate { guild_id: GUILD, token: "t".into(), endpoint: Some("v.example:443".into()) };
    conn.handle_gateway_event(GatewayEvent::VoiceServerUpdate(update), now);
    conn.handle_ws_open(now);
    let ready = r#"{"op":2,"d":{"ssrc":1,"ip":"127.0.0.1","port":50000,"modes":["aead_aes256_gcm_rtpsize"]}}"#;
    conn.handle_ws_message(WsMessage::Text(ready), now).unwrap();
    let mut reply = voice_rtp::discovery::response(1, "203.0.113.9", 4000).unwrap();
    conn.handle_datagram(server, &mut reply, now).unwrap();
    let key: Vec<String> = (0..32).map(|i| i.to_string()).collect();
    let sd = format!(r#"{{"op":4,"d":{{"mode":"aead_aes256_gcm_rtpsize","secret_key":[{}]}}}}"#, key.join(","));
    conn.handle_ws_message(WsMessage::Text(&sd), now).unwrap();
    assert_eq!(conn.state(), State::Connected);
    let mut reconnecting = false;
    for _ in 0..40 {
        now += Duration::from_secs(1);
        conn.handle_timeout(now);
        loop {
            match conn.poll_output() {
                Output::Timeout { .. } => break,
                Output::Event(Event::Reconnecting { reason: ReconnectReason::HandshakeTimeout }) => reconnecting = true,
                _ => {}
            }
        }
    }
    assert!(reconnecting, "no Hello: the handshake deadline still applies");
}

#[test]
fn a_stale_null_channel_state_after_a_quick_rejoin_is_ignored() {
    use voice_proto::VoiceStateUpdate;
    let mut sim = Sim::call(46);
    let now = sim.now;
    sim.clients[0].conn.leave(now);
    sim.drain_all();
    // Rejoin at once; the main gateway's answer to the leave (channel null)
    // arrives after the rejoin's op 4 went out.
    sim.clients[0].gateway = voice_tests::sim::GatewayBehavior::Silent;
    sim.join(0, CHANNEL);
    sim.clients[0].gateway = voice_tests::sim::GatewayBehavior::StateFirst;
    let stale =
        VoiceStateUpdate { guild_id: Some(GUILD), channel_id: None, user_id: Snowflake(A), session_id: "s".into() };
    sim.gateway_event(0, GatewayEvent::VoiceStateUpdate(stale));
    let info = sim.server.join(GUILD, CHANNEL, Snowflake(A));
    sim.deliver_join_info(0, &info, true);
    let ok = sim.run_until(Duration::from_secs(5), |s| s.clients[0].conn.state() == State::Connected);
    assert!(ok, "{:?}", sim.clients[0].events);
    assert!(!sim.clients[0].saw(|e| *e == Event::Disconnected { reason: DisconnectReason::Kicked }));
}
