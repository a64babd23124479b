//! The client against an abusive voice server, as a table: each row is a
//! way of misbehaving (a Hello interval of 0 or absurd, a Ready with an
//! address nothing can reach, a Session Description with a short key, a
//! server that never describes the session) and what the bot author must
//! see: the call connects anyway, or it reconnects for a typed reason and
//! then gives up with a final event, never hanging, never sending voice
//! without a session; the other member's call is untouched. Then floods on
//! an established call (20 000 op 5 for new SSRCs, a 2 MB frame, 50 000
//! frames of unknown opcodes): typed errors, bounded tables, audio goes on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;
use voice_proto::wire::{Message, WsFrame};
use voice_proto::{DisconnectReason, Event, ReconnectReason, State};
use voice_rtp::{DatagramKind, classify};
use voice_tests::sim::{CHANNEL, Sim};

/// Rewrites the JSON of client 0's frames of opcode `op` with `edit`.
fn edit(client: usize, frame: &mut WsFrame, op: u64, edit: impl Fn(&mut Value)) {
    let WsFrame::Text(text) = frame else { return };
    let Ok(mut v) = serde_json::from_str::<Value>(text) else { return };
    if client != 0 || v["op"] != op {
        return;
    }
    edit(&mut v);
    *text = v.to_string();
}

/// What the bot author sees.
#[derive(Debug)]
enum Expect {
    /// It connects, and over two minutes sends between `min` and `max`
    /// heartbeats per 10 s; reconnects (if any) recover, never final.
    Connects { min: usize, max: usize },
    /// It never connects: reconnects for `reason`, then gives up.
    GivesUp(ReconnectReason),
}

struct Row {
    name: &'static str,
    rewrite: fn(usize, &mut WsFrame),
    expect: Expect,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "Hello with interval 0",
            rewrite: |c, f| edit(c, f, 8, |v| v["d"]["heartbeat_interval"] = 0.into()),
            // Clamped to 100 ms.
            expect: Expect::Connects { min: 50, max: 101 },
        },
        Row {
            name: "Hello with an absurd interval",
            rewrite: |c, f| edit(c, f, 8, |v| v["d"]["heartbeat_interval"] = 1e15.into()),
            // Clamped to 10 minutes: the server times the silent client
            // out, and it reconnects each time.
            expect: Expect::Connects { min: 0, max: 1 },
        },
        Row {
            name: "Ready with an unparsable address",
            rewrite: |c, f| edit(c, f, 2, |v| v["d"]["ip"] = "voice.invalid".into()),
            expect: Expect::GivesUp(ReconnectReason::BadReady),
        },
        Row {
            name: "Ready with port 0",
            rewrite: |c, f| edit(c, f, 2, |v| v["d"]["port"] = 0.into()),
            expect: Expect::GivesUp(ReconnectReason::BadReady),
        },
        Row {
            name: "Ready with the unspecified address",
            rewrite: |c, f| edit(c, f, 2, |v| v["d"]["ip"] = "0.0.0.0".into()),
            expect: Expect::GivesUp(ReconnectReason::BadReady),
        },
        Row {
            name: "Session Description with a 31-byte key",
            rewrite: |c, f| {
                edit(c, f, 4, |v| {
                    if let Some(k) = v["d"]["secret_key"].as_array_mut() {
                        k.pop();
                    }
                })
            },
            expect: Expect::GivesUp(ReconnectReason::HandshakeTimeout),
        },
        Row {
            name: "Select Protocol never answered",
            // The Session Description becomes an opcode nobody knows.
            rewrite: |c, f| edit(c, f, 4, |v| v["op"] = 99.into()),
            expect: Expect::GivesUp(ReconnectReason::HandshakeTimeout),
        },
    ]
}

fn heartbeats(sim: &Sim) -> usize {
    sim.clients[0].sent_messages().iter().filter(|m| matches!(m, Message::Heartbeat(_))).count()
}

#[test]
fn an_abusive_server_gets_a_typed_reason_and_a_final_event_never_a_hang() {
    for row in rows() {
        let mut sim = Sim::default_server(7);
        sim.add_client(111, |_| {});
        sim.add_client(222, |_| {});
        sim.connect(1, CHANNEL);
        sim.rewrite_to_client = Some(row.rewrite);
        sim.join(0, CHANNEL);
        let name = row.name;
        match row.expect {
            Expect::Connects { min, max } => {
                let ok = sim
                    .run_until(Duration::from_secs(10), |s| s.clients[0].saw(|e| matches!(e, Event::Connected { .. })));
                assert!(ok, "{name}: did not connect: {:?}", sim.clients[0].events);
                for _ in 0..12 {
                    let before = heartbeats(&sim);
                    sim.run_for(Duration::from_secs(10));
                    let n = heartbeats(&sim) - before;
                    assert!((min..=max).contains(&n), "{name}: {n} heartbeats in 10 s");
                }
                let c = &sim.clients[0];
                assert!(!c.saw(|e| matches!(e, Event::Disconnected { .. })), "{name}: gave up: {:?}", c.events);
                let reconnects = c.events_matching(|e| matches!(e, Event::Reconnecting { .. })).len();
                let connected = c.events_matching(|e| matches!(e, Event::Connected { .. } | Event::Resumed)).len();
                assert!(connected > reconnects, "{name}: every reconnect recovered: {:?}", c.events);
            }
            Expect::GivesUp(reason) => {
                let max = sim.clients[0].conn.config().max_reconnect_attempts as usize;
                let ok = sim.run_until(Duration::from_secs(600), |s| {
                    s.clients[0].saw(|e| matches!(e, Event::Disconnected { .. }))
                });
                let c = &sim.clients[0];
                assert!(ok, "{name}: no final event in 10 minutes: {:?}", c.events);
                assert!(c.saw(|e| *e == Event::Reconnecting { reason }), "{name}: {:?}", c.events);
                assert!(
                    c.saw(|e| matches!(e, Event::Disconnected { reason: DisconnectReason::ReconnectFailed })),
                    "{name}: {:?}",
                    c.events
                );
                assert_eq!(c.conn.state(), State::Disconnected, "{name}");
                let reconnects = c.events_matching(|e| matches!(e, Event::Reconnecting { .. })).len();
                assert!(reconnects <= max, "{name}: {reconnects} reconnects");
                assert!(!c.saw(|e| matches!(e, Event::Connected { .. })), "{name}");
                assert!(
                    c.datagrams.iter().all(|(_, d)| classify(d) != DatagramKind::Rtp),
                    "{name}: voice sent without a session"
                );
            }
        }
        // The other member never noticed.
        let other = &sim.clients[1];
        assert_eq!(other.conn.state(), State::Connected, "{name}: the other call");
        assert!(!other.saw(|e| matches!(e, Event::Reconnecting { .. })), "{name}: the other call reconnected");
    }
}

#[test]
fn floods_on_an_established_call_are_bounded_and_audio_goes_on() {
    let mut sim = Sim::call(8);
    let max_users = sim.clients[0].conn.config().max_users;
    // 20 000 op 5 naming new SSRCs (none of them the other member's): the
    // table keeps its size, forgetting the oldest names first, so the
    // member named after the flood is still heard.
    const FAKE: u32 = 0x7000_0000;
    assert!(sim.clients[0].conn.user_for_ssrc(FAKE).is_none());
    for i in 0..20_000u32 {
        let text = format!(r#"{{"op":5,"d":{{"user_id":"{}","ssrc":{},"speaking":1}}}}"#, 10_000 + i, FAKE + i);
        sim.client_ws_text(0, &text);
    }
    let stats = sim.clients[0].conn.stats().clone();
    assert!(stats.users_dropped >= 20_000 - max_users as u64, "{stats:?}");
    assert!(sim.clients[0].conn.user_for_ssrc(FAKE).is_none(), "the oldest names went");
    assert!(sim.clients[0].conn.user_for_ssrc(FAKE + 19_999).is_some(), "the newest stay");
    // A 2 MB frame: a typed error, nothing kept.
    let huge = format!(r#"{{"op":5,"d":{{"user_id":"1","ssrc":1,"speaking":1,"pad":"{}"}}}}"#, "x".repeat(2 << 20));
    assert!(!sim.client_ws_text(0, &huge), "a 2 MB frame is refused");
    // 50 000 frames of an unknown opcode: counted and ignored.
    let before = sim.clients[0].conn.stats().ignored_frames;
    for _ in 0..50_000 {
        assert!(sim.client_ws_text(0, r#"{"op":99,"d":{}}"#));
    }
    assert_eq!(sim.clients[0].conn.stats().ignored_frames - before, 50_000);
    assert_eq!(sim.clients[0].conn.stats().outputs_dropped, 0);
    // And the call carries audio both ways as before.
    let now = sim.now;
    sim.clients[1].queue_frames(50, now);
    let received_before = sim.clients[0].received.len();
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        sim.clients[0].received.len() - received_before,
        55,
        "every frame after the floods arrived (and the trailer)"
    );
    assert_eq!(sim.clients[0].conn.state(), State::Connected);
    assert!(!sim.clients[0].saw(|e| matches!(e, Event::Reconnecting { .. })));
}
