//! The fault matrix over real sockets, under each runtime: the rows of the
//! simulated matrix (`tests/sim_fault_matrix.rs`) that real sockets can
//! show, each on a fresh server while A plays its frames (150, 3 s, unless
//! the row says) to B, with what the user sees and the frames lost. (4015
//! and an endpoint move also have scenarios of their own, which look
//! closer at them.)

use std::net::SocketAddr;
use std::time::Duration;

use voice_driver::{Call, DriverConfig, Event, GatewayEvent, ReconnectOutcome, State};
use voice_mock::Fault;
use voice_proto::wire::Snowflake;
use voice_proto::{DisconnectReason, VoiceServerUpdate, VoiceStateUpdate};
use voice_tests::matrix::Outcome;

use crate::harness::*;
use crate::nat::Nat;

const A: Snowflake = Snowflake(10);
/// Where the move row sends both bots.
const OTHER_CHANNEL: Snowflake = Snowflake(3);
/// The member that joins and leaves in the DAVE row.
const C: u64 = 30;

struct Row {
    name: &'static str,
    /// Faults now, and (after the delay) faults that end the outage.
    start: Vec<Fault>,
    end: Option<(Duration, Vec<Fault>)>,
    /// What else happens at the fault, beyond the server's faults.
    script: Script,
    /// Frames A plays (20 ms each); the fault strikes after 1 s.
    frames: usize,
    /// A's driver configuration, beyond the matrix's own.
    config: fn(&mut DriverConfig),
    /// How long to listen after the fault, at least (final rows: for the
    /// final event).
    settle: Duration,
    outcome: Outcome,
    lost: std::ops::RangeInclusive<usize>,
}

/// Faults that are not the server's: the main gateway's, and other members.
#[derive(Clone, Copy, PartialEq)]
enum Script {
    None,
    /// The main gateway drops A's voice state with its session (a null
    /// channel): the call ends as Kicked; a second later the application
    /// joins again and plays the last third of its frames on the new call.
    GatewaySessionLost,
    /// A voice server update with a null endpoint (the voice server is
    /// going away), and a second later one with a new endpoint.
    NullEndpointThenNew,
    /// A third bot joins the channel (a DAVE transition) and leaves two
    /// seconds later (another).
    MemberJoinsAndLeaves,
    /// A voice server update with a new endpoint (the same server under
    /// another name): the old socket is closed with 4022.
    EndpointChange,
    /// Both bots reach the server through a NAT, which gives A's flow a
    /// new public port (a NAT rebind).
    NatRebind,
    /// Both bots are moved to another channel of the same voice server:
    /// their sockets are closed with 4014 and the main gateway tells them
    /// where to go.
    MovedToAnotherChannel,
}

fn udp_loss(drop: f64, reorder: f64) -> Fault {
    Fault::UdpLoss { drop, reorder, delay: Duration::ZERO }
}

fn row(name: &'static str, start: Vec<Fault>, outcome: Outcome, lost: std::ops::RangeInclusive<usize>) -> Row {
    let settle = Duration::from_millis(if matches!(outcome, Outcome::Final(_)) { 2500 } else { 4000 });
    Row { name, start, end: None, script: Script::None, frames: 150, config: |_| {}, settle, outcome, lost }
}

/// A row whose fault is a script, not the server's.
fn scripted(name: &'static str, script: Script, outcome: Outcome, lost: std::ops::RangeInclusive<usize>) -> Row {
    Row { script, ..row(name, vec![], outcome, lost) }
}

fn rows() -> Vec<Row> {
    let close = |code| Fault::CloseUser { user: A, code, after: None };
    let terminated = |code| Outcome::Final(DisconnectReason::CallTerminated(code));
    vec![
        row("4015 close", vec![close(4015)], Outcome::Resumed, 0..=0),
        row("4006 (resume refused)", vec![Fault::RefuseResumes(true), close(4015)], Outcome::Fresh, 0..=75),
        row("4009 (session timeout)", vec![close(4009)], Outcome::Fresh, 0..=50),
        // The bots wait 2 s (not 10) for a move before giving up.
        row("4014 without a move", vec![close(4014)], terminated(4014), 60..=150),
        row("4017 (DAVE required)", vec![close(4017)], Outcome::Final(DisconnectReason::E2eeRequired), 60..=150),
        row("4021 (rate limited)", vec![close(4021)], Outcome::Final(DisconnectReason::RateLimited), 60..=150),
        row("4022 (call terminated)", vec![close(4022)], terminated(4022), 60..=150),
        Row {
            // Two discovery requests of the fresh session go unanswered:
            // retried a second apart, then connected.
            frames: 250,
            ..row(
                "IP discovery lost twice (4009)",
                vec![Fault::IgnoreDiscovery { count: 2 }, close(4009)],
                Outcome::Fresh,
                95..=140,
            )
        },
        row("websocket cut, no close frame", vec![Fault::CutUser { user: A }], Outcome::Resumed, 0..=0),
        // Silent both ways: the missed ACKs tell the client first, and a
        // new connection resumes; UDP carries on meanwhile.
        row(
            "websocket stalls 4 s",
            vec![Fault::StallUser { user: A, duration: Duration::from_secs(4) }],
            Outcome::Resumed,
            0..=0,
        ),
        Row {
            // Every discovery request goes unanswered: the fresh attempt
            // and the one retry allowed each give up after five requests a
            // second apart, and the call ends with a typed reason.
            config: |c| c.proto.max_reconnect_attempts = 1,
            settle: Duration::from_secs(14),
            ..row(
                "IP discovery never answered (4009)",
                vec![Fault::IgnoreDiscovery { count: u32::MAX }, close(4009)],
                Outcome::Final(DisconnectReason::ReconnectFailed),
                60..=150,
            )
        },
        scripted("4014 with a move (both bots)", Script::MovedToAnotherChannel, Outcome::Fresh, 0..=50),
        Row {
            // Two missed ACKs at the server's 1 s interval: noticed in
            // about 2 s, resumed; UDP carries on meanwhile.
            end: Some((Duration::from_millis(3500), vec![Fault::ResumeHeartbeatAcks { user: Some(A) }])),
            ..row(
                "heartbeat ACKs stop (zombie)",
                vec![Fault::StopHeartbeatAcks { user: Some(A) }],
                Outcome::Resumed,
                0..=0,
            )
        },
        Row {
            end: Some((Duration::from_secs(2), vec![udp_loss(0.0, 0.0)])),
            frames: 250,
            ..row("UDP blackout 2 s", vec![udp_loss(1.0, 0.0)], Outcome::Untouched, 90..=110)
        },
        scripted("endpoint change", Script::EndpointChange, Outcome::Fresh, 0..=50),
        row("5 % loss, 10 % reordered", vec![udp_loss(0.05, 0.1)], Outcome::Untouched, 1..=25),
        scripted("main gateway session lost; rejoin", Script::GatewaySessionLost, Outcome::Fresh, 40..=70),
        scripted("null endpoint, then a new one", Script::NullEndpointThenNew, Outcome::Fresh, 40..=80),
        scripted("NAT rebind (the sender's port changes)", Script::NatRebind, Outcome::Untouched, 0..=0),
        scripted("a member joins, then leaves (DAVE)", Script::MemberJoinsAndLeaves, Outcome::Untouched, 0..=0),
    ]
}

/// Rows run this many at a time, each on its own server: the matrix stays
/// well within a scenario's time limit, and the calls' load stays small.
const AT_ONCE: usize = 4;

pub async fn the_fault_matrix_holds_over_real_sockets(rt: Rt) {
    let mut table = Vec::new();
    let mut failures = Vec::new();
    let mut rows = rows().into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<_> = rows.by_ref().take(AT_ONCE).map(|row| rt.spawn(run_row(rt.clone(), row))).collect();
        for task in batch {
            let (line, failed) = task.await;
            table.push(line);
            failures.extend(failed);
        }
    }
    println!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Moves A to a new endpoint (the same mock as `localhost`, which its
/// certificate covers): the old socket is closed with 4022, and the main
/// gateway hands A the new credentials.
async fn move_to_new_endpoint(server: &Mock, a: &Bot) {
    let endpoint = format!("localhost:{}", server.wss_port());
    let info = server.move_client(A, GUILD, None, Some(endpoint)).expect("move");
    let update = VoiceServerUpdate { guild_id: GUILD, token: info.token, endpoint: Some(info.endpoint) };
    a.manager.handle_gateway_event(GatewayEvent::VoiceServerUpdate(update)).await;
}

/// One row on a server of its own: its line of the table, and what failed.
async fn run_row(rt: Rt, row: Row) -> (String, Vec<String>) {
    let mut failures = Vec::new();
    // The server waits three heartbeat intervals (not 1.5) before it
    // ends a silent connection with 4009, so that the client, which
    // notices a missed ACK within two, is first to act on a stall.
    let server = Mock::start_with(|c| c.server.heartbeat_timeout_factor = 3.0).await;
    let nat = (row.script == Script::NatRebind).then(|| {
        let nat = Nat::start(SocketAddr::from(([127, 0, 0, 1], server.udp_port())));
        server.with_core(|c| c.set_udp_addr(nat.addr()));
        nat
    });
    let a = bot_with(&rt, &server, A.0, |c| {
        c.proto.move_wait = Duration::from_secs(2);
        (row.config)(c);
    });
    let b = bot(&rt, &server, 20);
    let call_b = joined(&b, CHANNEL).await;
    let call_a = joined(&a, CHANNEL).await;
    let mut events = call_a.take_events().unwrap();
    let mut audio = call_b.take_audio().unwrap();
    let sent = frames(3, row.frames);
    let (player, to_play) = (call_a.clone(), sent.clone());
    let play = rt.spawn(async move { player.play(to_play).await });
    rt.sleep(Duration::from_millis(1000)).await;
    for f in row.start {
        server.inject(f);
    }
    // Listening all along: through the outage, then the rest of the
    // stream and some (a call that ended gets none).
    let mut got = Vec::new();
    let mut rejoined: Option<Call> = None;
    let mut member = None;
    match row.script {
        Script::None => {}
        Script::GatewaySessionLost => {
            let lost =
                VoiceStateUpdate { guild_id: Some(GUILD), channel_id: None, user_id: A, session_id: "lost".into() };
            a.manager.handle_gateway_event(GatewayEvent::VoiceStateUpdate(lost)).await;
            got = collect(&rt, &mut audio, row.frames, Duration::from_secs(1)).await;
            let call = joined(&a, CHANNEL).await;
            let rest = sent[row.frames * 2 / 3..].to_vec();
            let player = call.clone();
            drop(rt.spawn(async move { player.play(rest).await }));
            rejoined = Some(call);
        }
        Script::NullEndpointThenNew => {
            let gone = VoiceServerUpdate { guild_id: GUILD, token: "old".into(), endpoint: None };
            a.manager.handle_gateway_event(GatewayEvent::VoiceServerUpdate(gone)).await;
            got = collect(&rt, &mut audio, row.frames, Duration::from_secs(1)).await;
            move_to_new_endpoint(&server, &a).await;
        }
        Script::EndpointChange => move_to_new_endpoint(&server, &a).await,
        Script::NatRebind => {
            let rebound = nat.as_ref().map_or(0, Nat::rebind_senders);
            if rebound != 1 {
                failures.push(format!("{}: {rebound} flows rebound, not A's alone", row.name));
            }
        }
        Script::MovedToAnotherChannel => {
            for (bot, user) in [(&a, A), (&b, Snowflake(20))] {
                let mut info = server.move_client(user, GUILD, Some(OTHER_CHANNEL), None).expect("move");
                // The same voice server (4014), reached over TLS.
                info.endpoint = server.wss_endpoint();
                for event in info.gateway_events() {
                    bot.manager.handle_gateway_event(event).await;
                }
            }
        }
        Script::MemberJoinsAndLeaves => {
            let before = call_b.stats().await.map(|s| s.proto.dave.transitions_executed).unwrap_or_default();
            let c = bot(&rt, &server, C);
            let call_c = joined(&c, CHANNEL).await;
            got = collect(&rt, &mut audio, row.frames, Duration::from_secs(2)).await;
            call_c.leave().await.expect("leave");
            member = Some((c, call_c, before));
        }
    }
    if let Some((after, faults)) = row.end {
        got = collect(&rt, &mut audio, row.frames, after).await;
        for f in faults {
            server.inject(f);
        }
    }
    let have = voice_only(&got).len();
    let stream_left = Duration::from_millis(20 * row.frames as u64).saturating_sub(Duration::from_secs(1));
    let wait = row.settle.max(stream_left + Duration::from_secs(1));
    got.extend(collect(&rt, &mut audio, row.frames - have, wait).await);
    let _ = play.await;
    rt.sleep(Duration::from_millis(300)).await;
    let voice = voice_only(&got);
    let lost = sent.iter().filter(|s| !voice.contains(s)).count();
    let mut saw = Vec::new();
    while let Ok(e) = events.try_recv() {
        saw.push(e);
    }
    let history = call_a.snapshot().await.map(|s| s.reconnections).unwrap_or_default();
    let state = call_a.state().state;
    let ok = match (row.outcome, &rejoined) {
        (Outcome::Fresh, Some(call)) => {
            saw.contains(&Event::Disconnected { reason: DisconnectReason::Kicked })
                && call.state().state == State::Connected
        }
        (Outcome::Resumed, _) => {
            state == State::Connected && history.iter().any(|r| r.outcome == ReconnectOutcome::Resumed)
        }
        (Outcome::Fresh, None) => {
            state == State::Connected && history.iter().any(|r| r.outcome == ReconnectOutcome::Fresh)
        }
        (Outcome::Untouched, _) => state == State::Connected && history.is_empty(),
        (Outcome::Final(reason), _) => saw.contains(&Event::Disconnected { reason }),
    };
    if !ok {
        failures.push(format!(
            "{}: expected {:?}; state {state:?}, events {saw:?}, history {history:?}",
            row.name, row.outcome
        ));
    }
    if let Some((_, call_c, before)) = &member {
        let dave = call_b.stats().await.map(|s| s.proto.dave).unwrap_or_default();
        let stats_c = call_c.stats().await.map(|s| s.proto.dave).unwrap_or_default();
        // B went through the join's and the leave's transitions; C
        // decrypted A's frames while it was there.
        if dave.transitions_executed < before + 2 || stats_c.frames_decrypted == 0 {
            failures.push(format!("{}: B's DAVE {dave:?}; C's {stats_c:?}", row.name));
        }
    }
    if server.stats().decrypt_failures != 0 {
        failures.push(format!("{}: the server failed to decrypt", row.name));
    }
    if !row.lost.contains(&lost) {
        failures.push(format!("{}: lost {lost}, not {:?}", row.name, row.lost));
    }
    let line = format!("{:<40} {:<40} {lost:>4} lost ({} ms)", row.name, format!("{:?}", row.outcome), lost * 20);
    (line, failures)
}
