//! The fault matrix under fake time: one table, each row a fault striking
//! a call while A streams 500 frames (10 s) to B, and what the bot author
//! sees (the events, the final state) and what is lost, counted frame by
//! frame: every distinct frame A queued is either received by B or lost.
//! Rows whose fault is an outage of the media path lose at most the
//! outage; rows that are websocket faults lose nothing (UDP carries on
//! through a resume); rows that are final end the call. A's sender is paced
//! by the driver layer's pacer, so its own stalls are rows too.
//! `cargo test -p voice-tests --test sim_fault_matrix -- --nocapture`
//! prints the matrix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use voice_driver::pacing::FRAME;
use voice_mock::Fault;
use voice_proto::wire::Snowflake;
use voice_proto::{DisconnectReason, Event, GatewayEvent, ReconnectReason, State, VoiceServerUpdate};
use voice_tests::matrix::Outcome;
use voice_tests::netem::{GilbertElliott, Reorder};
use voice_tests::sim::{CHANNEL, GUILD, Sim};

const A: Snowflake = Snowflake(111);
const B: Snowflake = Snowflake(222);
const OTHER_CHANNEL: Snowflake = Snowflake(3);
/// The media address of the server a row moves A to.
const MOVED_UDP: &str = "203.0.113.20:50001";
const FRAMES: usize = 500;
/// Run after most faults: the stream (10 s) and then some.
const AFTER: Duration = Duration::from_secs(12);

struct Row {
    name: &'static str,
    fault: fn(&mut Sim),
    outcome: Outcome,
    /// Most frames the row may lose (the outage it causes).
    max_lost: usize,
    /// Fewest frames it must lose (an outage that really happened).
    min_lost: usize,
    /// How long to run after the fault (long enough for its timers).
    after: Duration,
    /// What else must hold afterwards, given the frames lost.
    check: Option<Check>,
}

/// A row's own check, given the simulation and the frames lost.
type Check = fn(&Sim, usize) -> Result<(), String>;

fn close(code: u16) -> impl Fn(&mut Sim) {
    move |sim: &mut Sim| sim.inject(Fault::CloseUser { user: A, code, after: None })
}

/// Moves A to another voice server at `endpoint` (its old socket closed
/// with 4022) and hands A the new credentials from the main gateway.
fn move_a_to(s: &mut Sim, endpoint: &str) {
    let now = s.now;
    let info = s.server.move_client(A, GUILD, None, Some(endpoint.into()), now).unwrap();
    s.drain_all();
    s.deliver_join_info(0, &info, false);
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "4015 close",
            fault: |s| close(4015)(s),
            outcome: Outcome::Resumed,
            max_lost: 0,
            min_lost: 0,
            after: AFTER,
            check: None,
        },
        Row {
            name: "abnormal close",
            fault: |s| s.break_ws(0),
            outcome: Outcome::Resumed,
            max_lost: 0,
            min_lost: 0,
            after: AFTER,
            check: None,
        },
        Row {
            name: "4006 (resume refused)",
            fault: |s| {
                s.inject(Fault::RefuseResumes(true));
                close(4015)(s);
            },
            // A resume tried and refused, then a fresh session and a new
            // DAVE group: about a second.
            outcome: Outcome::Fresh,
            max_lost: 60,
            min_lost: 0,
            after: AFTER,
            check: None,
        },
        Row {
            name: "4009 (session timeout)",
            fault: |s| close(4009)(s),
            outcome: Outcome::Fresh,
            max_lost: 25,
            min_lost: 0,
            after: AFTER,
            check: None,
        },
        Row {
            name: "4014 without a move",
            fault: |s| close(4014)(s),
            outcome: Outcome::Final(DisconnectReason::CallTerminated(4014)),
            max_lost: FRAMES,
            min_lost: 1,
            after: AFTER,
            check: None,
        },
        Row {
            name: "4017 (DAVE required)",
            fault: |s| close(4017)(s),
            outcome: Outcome::Final(DisconnectReason::E2eeRequired),
            max_lost: FRAMES,
            min_lost: 1,
            after: AFTER,
            check: None,
        },
        Row {
            name: "4021 (rate limited)",
            fault: |s| close(4021)(s),
            outcome: Outcome::Final(DisconnectReason::RateLimited),
            max_lost: FRAMES,
            min_lost: 1,
            after: AFTER,
            check: None,
        },
        Row {
            name: "4022 (call terminated)",
            fault: |s| close(4022)(s),
            outcome: Outcome::Final(DisconnectReason::CallTerminated(4022)),
            max_lost: FRAMES,
            min_lost: 1,
            after: AFTER,
            check: None,
        },
        Row {
            name: "endpoint change",
            fault: |s| {
                move_a_to(s, "voice-sim-2.example:443");
            },
            outcome: Outcome::Fresh,
            max_lost: 25,
            min_lost: 0,
            after: AFTER,
            check: None,
        },
        Row {
            name: "null endpoint, then a new one",
            fault: |s| {
                let update = VoiceServerUpdate { guild_id: GUILD, token: "old".into(), endpoint: None };
                s.gateway_event(0, GatewayEvent::VoiceServerUpdate(update));
                s.run_for(Duration::from_secs(1));
                move_a_to(s, "voice-sim-3.example:443");
            },
            outcome: Outcome::Fresh,
            max_lost: 50 + 25,
            min_lost: 40,
            after: AFTER,
            check: None,
        },
        Row {
            name: "main gateway session lost; rejoin",
            // Discord drops the bot's voice state with its main session (a
            // null channel): the call ends as Kicked, and the application,
            // reconnected to the main gateway a second later, joins again.
            fault: |s| {
                let state = voice_proto::VoiceStateUpdate {
                    guild_id: Some(GUILD),
                    channel_id: None,
                    user_id: A,
                    session_id: "lost".into(),
                };
                s.gateway_event(0, GatewayEvent::VoiceStateUpdate(state));
                s.run_for(Duration::from_secs(1));
                s.join(0, CHANNEL);
            },
            outcome: Outcome::Fresh,
            max_lost: 100,
            min_lost: 40,
            after: AFTER,
            check: None,
        },
        Row {
            name: "4014 with a move (both bots)",
            // Both bots are moved to another channel: each old socket is
            // closed with 4014 and the main gateway tells of the new channel.
            fault: |s| {
                let now = s.now;
                for (i, user) in [(0, A), (1, B)] {
                    let info = s.server.move_client(user, GUILD, Some(OTHER_CHANNEL), None, now).unwrap();
                    s.drain_all();
                    s.deliver_join_info(i, &info, true);
                }
            },
            outcome: Outcome::Fresh,
            max_lost: 50,
            min_lost: 0,
            after: AFTER,
            check: Some(|s, _| {
                let moved = s.clients.iter().all(|c| c.conn.channel() == Some(OTHER_CHANNEL));
                if moved { Ok(()) } else { Err("not both in the new channel".into()) }
            }),
        },
        Row {
            name: "move to a server with another UDP address",
            // A new endpoint whose Ready names another media address: A
            // talks to it from then on; B, not moved, keeps the old one.
            fault: |s| {
                s.move_server_udp(MOVED_UDP.parse().unwrap());
                move_a_to(s, "voice-sim-4.example:443");
            },
            outcome: Outcome::Fresh,
            max_lost: 25,
            min_lost: 0,
            after: AFTER,
            check: Some(|s, _| {
                let (a, b) = (s.clients[0].server_peer, s.clients[1].server_peer);
                if a == MOVED_UDP.parse().ok() && b == s.old_server_addrs.first().copied() {
                    Ok(())
                } else {
                    Err(format!("A sends to {a:?}, B to {b:?}"))
                }
            }),
        },
        Row {
            name: "IP discovery lost twice (4009)",
            // The fresh session's first two discovery requests are lost:
            // retried each second, then connected.
            fault: |s| {
                s.inject(Fault::IgnoreDiscovery { count: 2 });
                close(4009)(s);
            },
            outcome: Outcome::Fresh,
            max_lost: 100 + 25,
            min_lost: 95,
            after: AFTER,
            check: Some(|s, _| {
                let ignored = s.server.stats().discoveries_ignored;
                if ignored == 2 { Ok(()) } else { Err(format!("{ignored} ignored")) }
            }),
        },
        Row {
            name: "IP discovery never answered (4009)",
            // Every fresh attempt times out after five requests; after the
            // last attempt the call ends with a typed reason.
            fault: |s| {
                s.inject(Fault::IgnoreDiscovery { count: u32::MAX });
                close(4009)(s);
            },
            outcome: Outcome::Final(DisconnectReason::ReconnectFailed),
            max_lost: FRAMES,
            min_lost: 1,
            after: Duration::from_secs(300),
            check: Some(|s, _| {
                let timeouts = count(s, |e| *e == Event::Reconnecting { reason: ReconnectReason::DiscoveryTimeout });
                if timeouts >= 1 { Ok(()) } else { Err("no DiscoveryTimeout".into()) }
            }),
        },
        Row {
            name: "NAT rebind (the sender's port changes)",
            // The server learns the new address from the first packet that
            // authenticates from it.
            fault: |s| s.rebind(0, "198.51.100.1:41234".parse().unwrap()),
            outcome: Outcome::Untouched,
            max_lost: 0,
            min_lost: 0,
            after: AFTER,
            check: None,
        },
        Row {
            name: "datagrams over a 90-byte path MTU",
            // The larger frames of the stream do not fit: exactly those
            // are lost, and the call goes on.
            fault: |s| s.up.mtu = Some(90),
            outcome: Outcome::Untouched,
            max_lost: FRAMES / 2,
            min_lost: 50,
            after: AFTER,
            check: Some(|s, lost| {
                if lost as u64 == s.up.over_mtu { Ok(()) } else { Err(format!("{} over the MTU", s.up.over_mtu)) }
            }),
        },
        Row {
            name: "20 % held back behind 3 packets",
            // Reordering as its own knob, on the listener's link.
            fault: |s| {
                s.down.reorder = Some(Reorder { share: 0.2, window: 3, max_hold: Duration::from_millis(200) });
            },
            outcome: Outcome::Untouched,
            max_lost: 0,
            min_lost: 0,
            after: AFTER,
            check: Some(|s, _| {
                let b = &s.clients[1].received;
                let late = b.windows(2).filter(|w| voice_rtp::rtp::seq_newer(w[0].sequence, w[1].sequence)).count();
                if late >= 50 { Ok(()) } else { Err(format!("{late} arrived out of order")) }
            }),
        },
        Row {
            name: "heartbeat ACKs stop (zombie)",
            fault: |s| s.inject(Fault::StopHeartbeatAcks { user: Some(A) }),
            // Two missed ACKs at the server's 13.75 s interval; UDP carries
            // on meanwhile.
            outcome: Outcome::Resumed,
            max_lost: 0,
            min_lost: 0,
            after: Duration::from_secs(45),
            check: None,
        },
        Row {
            name: "websocket stalls 20 s",
            fault: |s| {
                s.blackhole_ws_to_server = true;
                s.run_for(Duration::from_secs(20));
                s.blackhole_ws_to_server = false;
            },
            // The server hears no heartbeat and ends the session (4009); the
            // Identify sent into the stall is lost, and the handshake
            // deadline tries again. UDP carried the stream throughout.
            outcome: Outcome::Fresh,
            max_lost: 0,
            min_lost: 0,
            after: Duration::from_secs(40),
            check: None,
        },
        Row {
            name: "websocket cut by the server",
            // No close frame: the client sees the connection break.
            fault: |s| s.inject(Fault::CutUser { user: A }),
            outcome: Outcome::Resumed,
            max_lost: 0,
            min_lost: 0,
            after: AFTER,
            check: None,
        },
        Row {
            name: "the open websocket stalls 40 s",
            // Silent both ways: the server hears no heartbeat and ends the
            // session (4009, whose close frame gets through) before the
            // client has missed two ACKs at 13.75 s; a fresh session
            // follows. UDP carried the stream throughout.
            fault: |s| s.inject(Fault::StallUser { user: A, duration: Duration::from_secs(40) }),
            outcome: Outcome::Fresh,
            max_lost: 0,
            min_lost: 0,
            after: Duration::from_secs(45),
            check: Some(|s, _| {
                let stalled = s.server.stats().ws_frames_stalled;
                if stalled > 0 { Ok(()) } else { Err("nothing was stalled".into()) }
            }),
        },
        Row {
            name: "the sender's task stalls 50 ms",
            // The driver's pacer sends the late frames half a slot apart
            // until it is back on its schedule: nothing dropped.
            fault: |s| s.clients[0].stalled_until = Some(s.now + Duration::from_millis(50)),
            outcome: Outcome::Untouched,
            max_lost: 0,
            min_lost: 0,
            after: AFTER,
            check: Some(|s, _| {
                let a = &s.clients[0];
                let gaps: Vec<Duration> = a.sent.windows(2).map(|w| w[1].0 - w[0].0).collect();
                let burst = gaps.iter().any(|g| *g < Duration::from_millis(10));
                let caught_up = gaps.iter().filter(|g| **g < FRAME).count();
                if a.frames_dropped_late == 0 && !burst && caught_up >= 2 {
                    Ok(())
                } else {
                    Err(format!("{} dropped late, gaps {gaps:?}", a.frames_dropped_late))
                }
            }),
        },
        Row {
            name: "the sender's task stalls 300 ms",
            // Past three slots behind: the missed slots' frames are
            // dropped (latency does not grow), exactly those.
            fault: |s| s.clients[0].stalled_until = Some(s.now + Duration::from_millis(300)),
            outcome: Outcome::Untouched,
            max_lost: 15,
            min_lost: 13,
            after: AFTER,
            check: Some(|s, lost| {
                let late = s.clients[0].frames_dropped_late;
                if late == lost as u64 { Ok(()) } else { Err(format!("{late} dropped late")) }
            }),
        },
        Row {
            name: "UDP blackout 2 s",
            fault: |s| {
                s.inject(Fault::UdpLoss { drop: 1.0, reorder: 0.0, delay: Duration::ZERO });
                s.run_for(Duration::from_secs(2));
                s.inject(Fault::UdpLoss { drop: 0.0, reorder: 0.0, delay: Duration::ZERO });
            },
            outcome: Outcome::Untouched,
            max_lost: 101,
            min_lost: 99,
            after: AFTER,
            check: None,
        },
        Row {
            name: "5 % loss, 10 % reordered",
            fault: |s| s.inject(Fault::UdpLoss { drop: 0.05, reorder: 0.1, delay: Duration::ZERO }),
            outcome: Outcome::Untouched,
            max_lost: 45,
            min_lost: 5,
            after: AFTER,
            check: None,
        },
        Row {
            name: "burst loss (Gilbert-Elliott)",
            // Bursts of 4 on average, about 5 % lost, on the listener's link.
            fault: |s| {
                s.down.burst = Some(GilbertElliott { p_enter: 0.0125, p_leave: 0.25, loss_bad: 1.0, bad: false });
            },
            outcome: Outcome::Untouched,
            max_lost: 50,
            min_lost: 5,
            after: AFTER,
            check: None,
        },
        Row {
            name: "10 % duplicated, 40 ms jitter",
            fault: |s| {
                s.down.duplicate = 0.1;
                s.down.link.jitter = Duration::from_millis(40);
            },
            outcome: Outcome::Untouched,
            max_lost: 0,
            min_lost: 0,
            after: AFTER,
            check: None,
        },
        Row {
            name: "a member joins, then leaves",
            fault: |s| {
                let c = s.add_client(333, |_| {});
                s.connect(c, CHANNEL);
                s.run_for(Duration::from_secs(2));
                s.leave(c);
            },
            outcome: Outcome::Untouched,
            max_lost: 0,
            min_lost: 0,
            after: AFTER,
            check: None,
        },
    ]
}

fn count(sim: &Sim, f: impl Fn(&Event) -> bool) -> usize {
    sim.clients[0].events_matching(f).len()
}

#[test]
fn every_fault_of_the_matrix_gives_what_the_user_should_see_and_loses_only_the_outage() {
    let mut table = Vec::new();
    let mut failures = Vec::new();
    for row in rows() {
        let name = row.name;
        let mut sim = Sim::call(31);
        let now = sim.now;
        sim.clients[0].queue_frames(FRAMES, now);
        let queued: HashSet<Vec<u8>> = sim.clients[0].audio.iter().cloned().collect();
        assert_eq!(queued.len(), FRAMES);
        sim.run_for(Duration::from_secs(1));
        (row.fault)(&mut sim);
        sim.run_for(row.after);
        let got: HashSet<&Vec<u8>> =
            sim.clients[1].received.iter().map(|r| &r.opus).filter(|o| queued.contains(*o)).collect();
        let lost = FRAMES - got.len();
        // No packet reaches the application twice.
        let delivered = sim.clients[1].received.iter().filter(|r| queued.contains(&r.opus)).count();
        if delivered != got.len() {
            failures.push(format!("{name}: {} duplicates delivered", delivered - got.len()));
        }
        let a = &sim.clients[0];
        let resumed = count(&sim, |e| *e == Event::Resumed);
        let connected = count(&sim, |e| matches!(e, Event::Connected { .. }));
        let reconnects: Vec<ReconnectReason> = a
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Reconnecting { reason } => Some(*reason),
                _ => None,
            })
            .collect();
        let seen = match row.outcome {
            Outcome::Resumed => a.conn.state() == State::Connected && resumed >= 1 && connected == 1,
            Outcome::Fresh => a.conn.state() == State::Connected && connected >= 2,
            Outcome::Untouched => a.conn.state() == State::Connected && reconnects.is_empty() && connected == 1,
            Outcome::Final(reason) => {
                a.conn.state() == State::Disconnected && a.saw(|e| *e == Event::Disconnected { reason })
            }
        };
        if !seen {
            failures.push(format!(
                "{name}: expected {:?}, state {:?}, events {:?}",
                row.outcome,
                a.conn.state(),
                a.events
            ));
        }
        if !(row.min_lost..=row.max_lost).contains(&lost) {
            failures.push(format!("{name}: lost {lost} frames, not {}..={}", row.min_lost, row.max_lost));
        }
        if let Some(Err(e)) = row.check.map(|check| check(&sim, lost)) {
            failures.push(format!("{name}: {e}"));
        }
        if sim.clients[1].conn.stats().decrypt_failures != 0 {
            failures.push(format!("{name}: B failed to decrypt"));
        }
        table.push((name, row.outcome, reconnects, lost));
    }
    println!("{:<42} {:<44} {:>6} {:>8}", "fault", "what the user sees", "lost", "lost ms");
    for (name, outcome, reconnects, lost) in table {
        let seen = match outcome {
            Outcome::Final(r) => format!("final: {r:?}"),
            o => format!("{o:?} after {reconnects:?}"),
        };
        println!("{name:<42} {seen:<44} {lost:>6} {:>8}", lost * 20);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
