//! DAVE policies (Required, Optional, Off), binary framing on v4 and v8,
//! resume of binary frames, and what the SFU does with DAVE media: against
//! the server core, with davey clients and plain JSON clients.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dave_util;

use dave_util::{CH, G, Net, users};
use serde_json::json;
use voice_mock::{DavePolicy, MockServer, ServerConfig, ServerOutput};
use voice_proto::wire::{GatewayVersion, Snowflake, WsFrame, WsMessage};
use voice_rtp::{Cipher, Mode, RtpHeader, Sealer, SecretKey};

fn policy(dave: DavePolicy) -> ServerConfig {
    ServerConfig { dave, ..ServerConfig::default() }
}

#[test]
fn required_closes_a_client_without_dave_with_4017_after_hello_and_keeps_no_session() {
    let mut n = Net::new(ServerConfig::default());
    let i = n.connect(1, false, GatewayVersion::V8);
    let c = &n.clients[i];
    assert_eq!(c.close, Some(4017));
    assert_eq!(c.seen.iter().map(|s| (s.op, s.seq)).collect::<Vec<_>>(), vec![(8, Some(1))], "Hello only");
    let st = n.s.stats();
    assert_eq!((st.sessions, st.conns, st.closes_sent[&4017]), (0, 0, 1));
    assert_eq!(st.users[&Snowflake(1)].closes_sent, vec![4017]);
    // Nothing to resume: the client cannot loop on a session.
    let join = n.clients[i].join.clone();
    let conn = n.s.accept(GatewayVersion::V8, n.now);
    let resume = json!({"op":7,"d":{"server_id":G.to_string(),"session_id":join.session_id,
        "token":join.token.expose(),"seq_ack":1}});
    n.s.handle_ws_message(conn, WsMessage::Text(&resume.to_string()), n.now);
    let closes: Vec<u16> = std::iter::from_fn(|| match n.s.poll_output() {
        ServerOutput::Timeout(_) => None,
        o => Some(o),
    })
    .filter_map(|o| match o {
        ServerOutput::WsClose { code, .. } => Some(code),
        _ => None,
    })
    .collect();
    assert_eq!(closes, vec![4006]);
    // An Identify that omits the field is refused the same way; so is one on v4.
    let mut s = MockServer::new(ServerConfig::default(), n.now);
    for v in [GatewayVersion::V8, GatewayVersion::V4] {
        let join = s.join(G, CH, Snowflake(2));
        let conn = s.accept(v, n.now);
        let identify = json!({"op":0,"d":{"server_id":G.to_string(),"user_id":"2",
            "session_id":join.session_id,"token":join.token.expose()}});
        s.handle_ws_message(conn, WsMessage::Text(&identify.to_string()), n.now);
        let mut out = Vec::new();
        loop {
            match s.poll_output() {
                ServerOutput::WsSend { frame: WsFrame::Text(t), .. } => out.push(t),
                ServerOutput::WsClose { code, .. } => out.push(code.to_string()),
                ServerOutput::Timeout(_) => break,
                _ => {}
            }
        }
        let hello = if v == GatewayVersion::V8 {
            r#"{"op":8,"d":{"v":8,"heartbeat_interval":13750},"seq":1}"#
        } else {
            r#"{"op":8,"d":{"heartbeat_interval":13750}}"#
        };
        assert_eq!(out, vec![hello.to_owned(), "4017".to_owned()]);
        assert_eq!(s.stats().sessions, 0);
    }
    // The room was never touched.
    assert!(n.s.dave_room(G, CH).is_none());
}

#[test]
fn off_says_version_0_and_ignores_dave_frames() {
    let mut n = Net::new(policy(DavePolicy::Off));
    n.join(1);
    n.join(2);
    for c in &n.clients {
        assert_eq!(c.last(4).unwrap()["dave_protocol_version"], 0);
        assert!(c.session.is_none() && !c.seen.iter().any(|s| s.binary));
    }
    // A client that sends DAVE anyway is ignored, not closed.
    let mut other = davey::DaveSession::new(std::num::NonZeroU16::new(1).unwrap(), 1, CH.0, None).unwrap();
    let mut kp = vec![26];
    kp.extend(other.create_key_package().unwrap());
    let ready = WsFrame::Text(json!({"op":23,"d":{"transition_id":1}}).to_string());
    let invalid = WsFrame::Text(json!({"op":31,"d":{"transition_id":1}}).to_string());
    n.send(1, vec![WsFrame::Binary(kp), WsFrame::Binary(vec![28, 1, 2]), ready, invalid]);
    let st = n.s.stats();
    assert_eq!(st.dave_frames_ignored, 4, "op 26, op 28, op 23 and op 31");
    assert_eq!(st.closes_sent.values().sum::<u64>(), 0);
    let info = n.info();
    assert_eq!((info.protocol_version, info.epoch, info.key_packages_accepted), (0, 0, 0));
    assert!(info.roster.is_empty() && info.pending.is_empty());
    // Op 11 came at Identify, before Session Description, as without DAVE.
    let ops: Vec<u8> = n.clients[1].seen.iter().map(|s| s.op).collect();
    assert_eq!(ops, vec![8, 2, 11, 4]);
}

#[test]
fn optional_downgrades_for_a_client_without_dave_and_upgrades_when_it_leaves() {
    let mut n = Net::new(policy(DavePolicy::Optional));
    n.join(1);
    n.join(2);
    assert_eq!((n.info().protocol_version, n.info().epoch), (1, 1));
    // A plain client joins: the room goes to version 0.
    n.join_with(9, false, GatewayVersion::V8);
    let info = n.info();
    assert_eq!((info.protocol_version, info.epoch), (0, 0));
    assert!(info.roster.is_empty() && info.pending.is_empty());
    assert_eq!(n.executed().last(), Some(&(2, 0, 0, false)), "op 22 of the downgrade");
    for user in [1, 2] {
        let c = n.client(user);
        assert_eq!(c.last(21).unwrap(), &json!({"transition_id":2,"protocol_version":0}));
        assert_eq!(c.dave_version, 0);
        assert!(!c.session.as_ref().unwrap().can_encrypt());
    }
    assert_eq!(n.client(9).last(4).unwrap()["dave_protocol_version"], 0);
    assert!(!n.client(9).seen.iter().any(|s| s.binary || s.op >= 21), "the plain client hears no DAVE");
    // A DAVE client joining now is told version 0 and gets no op 25 yet.
    n.join(3);
    assert_eq!(n.client(3).last(4).unwrap()["dave_protocol_version"], 0);
    assert!(n.client(3).session.is_none() && !n.client(3).seen.iter().any(|s| s.binary));
    let checks = n.checks;

    // The plain client leaves: op 24 to every member, op 25 to the one
    // that never had it, then the group is created again.
    n.leave(9);
    for user in [1, 2, 3] {
        let c = n.client(user);
        let at24 = c.seen.iter().rposition(|s| s.op == 24).unwrap();
        assert_eq!(c.seen[at24].d, json!({"epoch":1,"protocol_version":1}));
        let op25s: Vec<usize> = c.seen.iter().enumerate().filter(|(_, s)| s.op == 25).map(|(i, _)| i).collect();
        assert_eq!(op25s.len(), 1, "user {user}: op 25 once");
        if user == 3 {
            assert!(op25s[0] > at24, "op 25 after op 24");
        }
    }
    let info = n.info();
    assert_eq!(info.protocol_version, 1);
    let mut roster = info.roster.clone();
    roster.sort();
    assert_eq!(roster, users(&[1, 2, 3]));
    assert!(info.pending.is_empty() && !info.busy);
    assert!(n.checks > checks, "checked after the new group's op 22");
    assert!(n.errors().is_empty(), "{:?}", n.errors());
}

#[test]
fn required_and_optional_tell_a_dave_client_version_1_first_then_op_25_then_op_11() {
    for p in [DavePolicy::Required, DavePolicy::Optional] {
        let mut n = Net::new(policy(p));
        n.join(1);
        n.join(2);
        let c = n.client(2);
        assert_eq!(c.last(4).unwrap()["dave_protocol_version"], 1);
        let ops: Vec<u8> = c.seen.iter().map(|s| s.op).collect();
        assert_eq!(ops[..5], [8, 2, 4, 25, 11], "{p:?}: {ops:?}");
        // A's op 11 about B came at B's Identify.
        let a: Vec<u8> = n.client(1).seen.iter().map(|s| s.op).collect();
        assert_eq!(a[..5], [8, 2, 4, 25, 11]);
    }
}

#[test]
fn v8_binary_frames_share_the_seq_counter_and_v4_frames_carry_none() {
    let mut n = Net::new(ServerConfig::default());
    n.join_with(1, true, GatewayVersion::V4);
    n.join_with(2, true, GatewayVersion::V8);
    let info = n.info();
    assert_eq!((info.epoch, info.roster.clone()), (1, users(&[1, 2])));
    assert!(n.errors().is_empty(), "{:?}", n.errors());
    let v4 = n.client(1);
    assert!(v4.seen.iter().all(|s| s.seq.is_none()), "no seq, no prefix on v4");
    let first_binary = v4.seen.iter().find(|s| s.binary).unwrap();
    assert_eq!(first_binary.bytes[0], 25, "op 25 starts with its opcode on v4");
    let v8 = n.client(2);
    let seqs: Vec<i64> = v8.seen.iter().map(|s| s.seq.unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "JSON and binary take one counter");
    let op25 = v8.seen.iter().find(|s| s.op == 25).unwrap();
    assert_eq!(op25.bytes[..3], [0, op25.seq.unwrap() as u8, 25]);
    assert!(v8.seen.iter().any(|s| s.binary && s.op == 30));
}

#[test]
fn resume_replays_binary_frames_with_fresh_seq() {
    let mut n = Net::new(ServerConfig::default());
    n.join(1);
    n.join(2);
    n.drop_ws(1);
    // C joins while A is away: A's op 11, op 27 and op 29 wait in its buffer.
    n.join(3);
    assert!(n.info().busy, "A owes op 23");
    let before = n.client(1).seen.len();
    let last = n.client(1).last_seq.unwrap();
    n.resume(1);
    let a = n.client(1);
    let replay = &a.seen[before..];
    let ops: Vec<(u8, bool)> = replay.iter().map(|s| (s.op, s.binary)).collect();
    assert_eq!(ops[..5], [(8, false), (9, false), (11, false), (27, true), (29, true)], "{ops:?}");
    let seqs: Vec<i64> = replay.iter().map(|s| s.seq.unwrap()).collect();
    assert!(seqs[0] > last && seqs.windows(2).all(|w| w[1] == w[0] + 1), "{last} {seqs:?}");
    let info = n.info();
    assert_eq!((info.epoch, info.roster.clone(), info.busy), (2, users(&[1, 2, 3]), false));
    assert_eq!(info.transitions_timed_out, 0, "A's op 23 came after the replay");
    assert!(n.errors().is_empty(), "{:?}", n.errors());
}

fn key_of(c: &dave_util::Client) -> SecretKey {
    let key: Vec<u8> =
        c.last(4).unwrap()["secret_key"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8).collect();
    SecretKey::from_slice(&key).unwrap()
}

#[test]
fn the_sfu_forwards_dave_frames_unchanged_and_counts_payload_kinds() {
    let mut n = Net::new(ServerConfig::default());
    n.join(1);
    n.join(2);
    let ssrc = n.client(1).last(2).unwrap()["ssrc"].as_u64().unwrap() as u32;
    let (key_a, key_b) = (key_of(n.client(1)), key_of(n.client(2)));
    let mut sealer = Sealer::new(Cipher::new(Mode::Aes256GcmRtpSize, &key_a), 1);
    let opus = [0xFC, 0x10, 0x20, 0x30];
    let frame = n.client(1).session.as_mut().unwrap().encrypt_opus(&opus).unwrap().into_owned();
    let payloads = [frame.clone(), vec![0xF8, 0xFF, 0xFE], opus.to_vec()];
    for (i, p) in payloads.iter().enumerate() {
        let mut pkt = Vec::new();
        let header = RtpHeader {
            payload_type: 120,
            sequence: i as u16,
            timestamp: 960 * i as u32,
            ssrc,
            ..RtpHeader::default()
        };
        header.write(p, &mut pkt).unwrap();
        sealer.seal(&mut pkt).unwrap();
        n.s.handle_datagram(Net::udp_addr(1), &pkt, n.now);
        n.pump();
    }
    let info = n.info();
    assert_eq!((info.payloads_with_trailer, info.payloads_silence, info.payloads_plaintext), (1, 1, 1));
    let to_b: Vec<Vec<u8>> =
        n.transmits.iter().filter(|(to, _)| *to == Net::udp_addr(2)).map(|(_, b)| b.clone()).collect();
    assert_eq!(to_b.len(), 3);
    let cipher = Cipher::new(Mode::Aes256GcmRtpSize, &key_b);
    let mut first = to_b[0].clone();
    let opened = cipher.open(&mut first).unwrap();
    assert_eq!(opened.payload, frame.as_slice(), "the DAVE frame as A sent it");
    let plain = n.client(2).session.as_mut().unwrap().decrypt(1, davey::MediaType::AUDIO, opened.payload).unwrap();
    assert_eq!(plain, opus);
}
