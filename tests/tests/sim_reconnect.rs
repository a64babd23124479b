//! Simulated failures of the voice websocket and the main gateway's
//! reactions: resume, fresh connection, final closes, moves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use voice_mock::Fault;
use voice_proto::wire::{Message, Snowflake};
use voice_proto::{DisconnectReason, Event, GatewayEvent, ReconnectReason, State, VoiceServerUpdate};
use voice_tests::sim::{CHANNEL, GUILD, Sim};

const A: u64 = 111;

fn resumes(sim: &Sim, i: usize) -> Vec<Option<i64>> {
    sim.clients[i]
        .sent_messages()
        .into_iter()
        .filter_map(|m| match m {
            Message::Resume(r) => Some(r.seq_ack),
            _ => None,
        })
        .collect()
}

fn identifies(sim: &Sim, i: usize) -> usize {
    sim.clients[i].sent_messages().iter().filter(|m| matches!(m, Message::Identify(_))).count()
}

/// Streams from A to B while `fault` strikes, and checks the audio goes on.
fn stream_through(sim: &mut Sim, fault: impl FnOnce(&mut Sim)) -> (usize, usize) {
    let now = sim.now;
    sim.clients[0].queue_frames(150, now);
    sim.run_for(Duration::from_secs(1));
    fault(sim);
    sim.run_for(Duration::from_secs(4));
    let sent = sim.clients[0].conn.stats().packets_sent as usize;
    let got = sim.clients[1].received.len();
    (sent, got)
}

#[test]
fn resume_after_4015_replays_seq_ack_and_keeps_the_session() {
    let mut sim = Sim::call(10);
    let ssrc = sim.clients[0].conn.ssrc();
    let mut seen_before_close = None;
    let (sent, got) = stream_through(&mut sim, |sim| {
        seen_before_close = sim.clients[0].last_seq_delivered;
        sim.inject(Fault::CloseUser { user: Snowflake(A), code: 4015, after: None })
    });
    let a = &sim.clients[0];
    assert!(a.saw(|e| *e == Event::Reconnecting { reason: ReconnectReason::Closed(Some(4015)) }));
    assert!(a.saw(|e| *e == Event::Resumed));
    let r = resumes(&sim, 0);
    assert_eq!(r.len(), 1);
    assert!(seen_before_close.is_some());
    assert_eq!(r[0], seen_before_close, "seq_ack is the last seq delivered on the old socket");
    assert_eq!(identifies(&sim, 0), 1, "no second Identify");
    assert_eq!(a.conn.ssrc(), ssrc, "same session");
    assert_eq!(a.urls.len(), 2);
    assert_eq!(a.urls[0], a.urls[1], "resume goes to the same endpoint");
    // Speaking is announced again after the resume.
    let speaking_on = a.sent_messages().iter().filter(|m| matches!(m, Message::Speaking(s) if s.speaking == 1)).count();
    assert_eq!(speaking_on, 2);
    // UDP carried on: nothing lost beyond what was in flight.
    assert_eq!(sent, 155);
    assert_eq!(got, sent, "the UDP path never broke");
}

#[test]
fn abnormal_close_resumes() {
    let mut sim = Sim::call(11);
    let (sent, got) = stream_through(&mut sim, |sim| sim.break_ws(0));
    let a = &sim.clients[0];
    assert!(a.saw(|e| *e == Event::Reconnecting { reason: ReconnectReason::Closed(None) }));
    assert!(a.saw(|e| *e == Event::Resumed));
    assert_eq!(resumes(&sim, 0).len(), 1);
    assert_eq!(got, sent);
    assert_eq!(a.conn.state(), State::Connected);
}

#[test]
fn refused_resume_4006_falls_back_to_a_fresh_connection() {
    let mut sim = Sim::call(12);
    sim.inject(Fault::RefuseResumes(true));
    sim.inject(Fault::CloseUser { user: Snowflake(A), code: 4015, after: None });
    let ok = sim
        .run_until(Duration::from_secs(10), |s| s.clients[0].conn.state() == State::Connected && identifies(s, 0) == 2);
    assert!(ok, "{:?}", sim.clients[0].events);
    let a = &sim.clients[0];
    assert!(a.saw(|e| *e == Event::Reconnecting { reason: ReconnectReason::Closed(Some(4006)) }));
    assert_eq!(resumes(&sim, 0).len(), 1);
    assert_eq!(a.gateway_sent.len(), 2, "a fresh op 4 for new credentials");
    assert_eq!(a.gateway_sent[1].channel_id, Some(CHANNEL));
    let connected = a.events_matching(|e| matches!(e, Event::Connected { .. }));
    assert_eq!(connected.len(), 2);
}

#[test]
fn missed_heartbeat_acks_mean_a_zombie_and_a_resume() {
    let mut sim = Sim::default_server(13);
    sim.add_client(A, |_| {});
    sim.connect(0, CHANNEL);
    sim.inject(Fault::StopHeartbeatAcks { user: Some(Snowflake(A)) });
    let ok = sim.run_until(Duration::from_secs(60), |s| {
        s.clients[0].saw(|e| *e == Event::Reconnecting { reason: ReconnectReason::ZombieConnection })
    });
    assert!(ok);
    // One beat went unanswered by the time the next was due (13.75 s each).
    let zombie_at = sim.now - sim.t0;
    assert!(zombie_at >= Duration::from_millis(27_500) && zombie_at < Duration::from_secs(29), "{zombie_at:?}");
    sim.inject(Fault::ResumeHeartbeatAcks { user: Some(Snowflake(A)) });
    sim.run_for(Duration::from_secs(30));
    let a = &sim.clients[0];
    assert!(a.saw(|e| *e == Event::Resumed));
    assert_eq!(a.conn.stats().zombie_closes, 1);
    assert_eq!(a.conn.state(), State::Connected);
    assert!(a.conn.stats().heartbeat_acks >= 1);
}

#[test]
fn close_4014_without_a_move_ends_after_the_wait() {
    let mut sim = Sim::call(14);
    sim.inject(Fault::CloseUser { user: Snowflake(A), code: 4014, after: None });
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.clients[0].conn.state(), State::AwaitingMove);
    sim.run_for(Duration::from_secs(6));
    let a = &sim.clients[0];
    assert!(a.saw(|e| *e == Event::Disconnected { reason: DisconnectReason::CallTerminated(4014) }));
    assert_eq!(a.urls.len(), 1, "never reconnected by itself");
    assert_eq!(resumes(&sim, 0).len(), 0);
}

#[test]
fn close_4014_with_a_following_move_connects_to_the_new_channel() {
    let mut sim = Sim::call(15);
    let now = sim.now;
    let other = Snowflake(555);
    let info = sim.server.move_client(Snowflake(A), GUILD, Some(other), None, now).expect("move");
    sim.drain_all();
    sim.deliver_join_info(0, &info, true);
    let ok = sim.run_until(Duration::from_secs(10), |s| {
        s.clients[0].events_matching(|e| matches!(e, Event::Connected { .. })).len() == 2
    });
    assert!(ok, "{:?}", sim.clients[0].events);
    let a = &sim.clients[0];
    assert!(a.saw(|e| *e == Event::Moved { channel_id: other }));
    assert_eq!(a.conn.channel(), Some(other));
    assert_eq!(identifies(&sim, 0), 2);
    assert_eq!(resumes(&sim, 0).len(), 0, "a move is never resumed");
}

#[test]
fn close_4017_is_final() {
    let mut sim = Sim::call(16);
    sim.inject(Fault::CloseUser { user: Snowflake(A), code: 4017, after: None });
    sim.run_for(Duration::from_secs(30));
    let a = &sim.clients[0];
    assert!(a.saw(|e| *e == Event::Disconnected { reason: DisconnectReason::E2eeRequired }));
    assert_eq!(a.urls.len(), 1);
    assert_eq!(a.gateway_sent.len(), 1);
    assert_eq!(a.conn.state(), State::Disconnected);
}

#[test]
fn endpoint_change_mid_call_is_a_fresh_connection() {
    let mut sim = Sim::call(17);
    let (sent, got) = stream_through(&mut sim, |sim| {
        let now = sim.now;
        let info = sim
            .server
            .move_client(Snowflake(A), GUILD, None, Some("voice-sim-2.example:443".into()), now)
            .expect("move");
        sim.drain_all();
        sim.deliver_join_info(0, &info, false);
    });
    let a = &sim.clients[0];
    assert_eq!(a.urls.last().map(String::as_str), Some("wss://voice-sim-2.example:443/?v=8"));
    assert_eq!(identifies(&sim, 0), 2);
    assert_eq!(resumes(&sim, 0).len(), 0);
    assert_eq!(a.conn.state(), State::Connected);
    // A few frames are refused while reconnecting; the rest arrive.
    assert!(got + 10 >= sent, "sent {sent} got {got}");
    assert!(got > 100);
}

#[test]
fn null_endpoint_waits_then_a_new_endpoint_connects() {
    let mut sim = Sim::call(18);
    sim.gateway_event(
        0,
        GatewayEvent::VoiceServerUpdate(VoiceServerUpdate { guild_id: GUILD, token: "old".into(), endpoint: None }),
    );
    sim.run_for(Duration::from_secs(3));
    let a = &sim.clients[0];
    assert!(a.saw(|e| *e == Event::Reconnecting { reason: ReconnectReason::EndpointRemoved }));
    assert_eq!(a.conn.state(), State::AwaitingVoiceInfo);
    assert!(a.ws.is_none());
    assert_eq!(a.urls.len(), 1, "no reconnect until an endpoint arrives");
    let now = sim.now;
    let info =
        sim.server.move_client(Snowflake(A), GUILD, None, Some("voice-sim-3.example:443".into()), now).expect("grant");
    sim.drain_all();
    sim.deliver_join_info(0, &info, false);
    let ok = sim.run_until(Duration::from_secs(5), |s| s.clients[0].conn.state() == State::Connected);
    assert!(ok);
    assert_eq!(sim.clients[0].urls.last().map(String::as_str), Some("wss://voice-sim-3.example:443/?v=8"));
}

#[test]
fn kicked_by_the_main_gateway_is_final() {
    let mut sim = Sim::call(19);
    sim.gateway_event(
        0,
        GatewayEvent::VoiceStateUpdate(voice_proto::VoiceStateUpdate {
            guild_id: Some(GUILD),
            channel_id: None,
            user_id: Snowflake(A),
            session_id: "s".into(),
        }),
    );
    sim.run_for(Duration::from_secs(30));
    let a = &sim.clients[0];
    assert!(a.saw(|e| *e == Event::Disconnected { reason: DisconnectReason::Kicked }));
    assert_eq!(a.urls.len(), 1);
    assert!(a.ws.is_none());
}
