//! Property test: arbitrary sequences of commands, faults, garbage and time
//! steps against client and server cores. Invariants: no panic, no voice
//! datagram before a session, no nonce twice under one key, no output
//! dropped (queues stay under their caps), deadlines never in the past (the
//! simulator asserts that on every drain).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use proptest::prelude::*;
use voice_mock::Fault;
use voice_proto::wire::Snowflake;
use voice_proto::{GatewayEvent, VoiceServerUpdate};
use voice_tests::sim::{CHANNEL, GUILD, Sim};

#[derive(Debug, Clone)]
enum Op {
    Advance(u16),
    Join(u8),
    Leave,
    Frames(u8),
    Close(u16),
    Break,
    StopAcks,
    ResumeAcks,
    RefuseResumes(bool),
    Move(bool),
    NullEndpoint,
    GarbageText(String),
    GarbageDatagram(Vec<u8>),
    Loss(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u16..8000).prop_map(Op::Advance),
        2 => (0u8..2).prop_map(Op::Join),
        1 => Just(Op::Leave),
        3 => (1u8..60).prop_map(Op::Frames),
        2 => prop_oneof![Just(4015u16), Just(4006), Just(4014), Just(4009), Just(4017), Just(1006), Just(4000), 4000u16..4025].prop_map(Op::Close),
        1 => Just(Op::Break),
        1 => Just(Op::StopAcks),
        1 => Just(Op::ResumeAcks),
        1 => any::<bool>().prop_map(Op::RefuseResumes),
        1 => any::<bool>().prop_map(Op::Move),
        1 => Just(Op::NullEndpoint),
        1 => prop_oneof![
            "\\PC{0,40}",
            Just(r#"{"op":2,"d":{"ssrc":1,"ip":"1.2.3.4","port":1,"modes":[]}}"#.to_string()),
            Just(r#"{"op":4,"d":{"mode":"aead_aes256_gcm_rtpsize","secret_key":[]}}"#.to_string()),
            Just(r#"{"op":9,"d":null}"#.to_string()),
            Just(r#"{"op":8,"d":{"heartbeat_interval":0}}"#.to_string()),
            Just(r#"{"op":6,"d":{"t":123}}"#.to_string()),
        ].prop_map(Op::GarbageText),
        1 => proptest::collection::vec(any::<u8>(), 0..120).prop_map(Op::GarbageDatagram),
        1 => (0u8..30).prop_map(Op::Loss),
    ]
}

fn apply(sim: &mut Sim, op: &Op) {
    let user = sim.clients[0].user;
    match op {
        Op::Advance(ms) => sim.run_for(Duration::from_millis(u64::from(*ms))),
        Op::Join(c) => sim.join(0, if *c == 0 { CHANNEL } else { Snowflake(777) }),
        Op::Leave => {
            let now = sim.now;
            sim.clients[0].conn.leave(now);
        }
        Op::Frames(n) => {
            let now = sim.now;
            sim.clients[0].queue_frames(usize::from(*n), now);
        }
        Op::Close(code) => sim.inject(Fault::CloseUser { user, code: *code, after: None }),
        Op::Break => sim.break_ws(0),
        Op::StopAcks => sim.inject(Fault::StopHeartbeatAcks { user: Some(user) }),
        Op::ResumeAcks => sim.inject(Fault::ResumeHeartbeatAcks { user: Some(user) }),
        Op::RefuseResumes(b) => sim.inject(Fault::RefuseResumes(*b)),
        Op::Move(new_endpoint) => {
            let now = sim.now;
            let endpoint = new_endpoint.then(|| "voice-sim-9.example:443".to_string());
            if let Some(info) = sim.server.move_client(user, GUILD, None, endpoint, now) {
                sim.drain_all();
                sim.deliver_join_info(0, &info, false);
            }
        }
        Op::NullEndpoint => sim.gateway_event(
            0,
            GatewayEvent::VoiceServerUpdate(VoiceServerUpdate { guild_id: GUILD, token: "x".into(), endpoint: None }),
        ),
        Op::GarbageText(t) => {
            sim.client_ws_text(0, t);
        }
        Op::GarbageDatagram(d) => sim.client_datagram(0, d.clone()),
        Op::Loss(p) => sim.up.link.loss = f64::from(*p) / 100.0,
    }
}

fn check_invariants(sim: &Sim) {
    voice_tests::sim::check_client_invariants(sim, 0);
    // The server saw no RTP from this client before its session.
    assert_eq!(sim.server.stats().rtp_before_session, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_inputs_keep_the_invariants(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..40)) {
        let mut sim = Sim::default_server(seed);
        sim.add_client(111, |c| c.seed = seed);
        sim.add_client(222, |_| {});
        sim.connect(1, CHANNEL);
        sim.join(0, CHANNEL);
        for op in &ops {
            apply(&mut sim, op);
            check_invariants(&sim);
        }
        sim.run_for(Duration::from_secs(5));
        check_invariants(&sim);
    }
}
