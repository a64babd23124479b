//! Wire format against the frames real discord.js clients sent
//! (testdata/vectors/gateway-client-frames.jsonl) and the JSON of PROTOCOL.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use voice_proto::wire::{GatewayVersion, Message, Snowflake, WireError};

const FRAMES: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/gateway-client-frames.jsonl"));

#[derive(serde::Deserialize)]
struct Record {
    call: u32,
    gateway_version: u8,
    op: u8,
    text: String,
}

fn records() -> Vec<Record> {
    FRAMES.lines().map(|l| serde_json::from_str(l).expect("vector line")).collect()
}

#[test]
fn every_recorded_frame_round_trips_byte_for_byte() {
    let records = records();
    assert_eq!(records.len(), 69);
    for r in &records {
        let frame = Message::parse(&r.text).unwrap_or_else(|e| panic!("call {} op {}: {e}", r.call, r.op));
        assert_eq!(frame.message.op(), r.op);
        assert_eq!(frame.seq, None, "clients send no seq");
        let version = GatewayVersion::from_u8(r.gateway_version).expect("version");
        assert_eq!(frame.message.to_json(version, None), r.text, "call {} op {}", r.call, r.op);
    }
}

#[test]
fn recorded_frames_have_the_expected_shapes() {
    for r in records() {
        let m = Message::parse(&r.text).expect("parse").message;
        match (m, r.gateway_version) {
            (Message::Identify(i), 8) => {
                assert_eq!(i.max_dave_protocol_version, Some(1));
                assert_eq!(i.server_id, Snowflake(333333333333333333));
                assert!(r.text.contains(r#""server_id":"333333333333333333""#), "snowflakes are strings");
                assert!(!format!("{i:?}").contains(i.token.expose()), "token redacted in Debug");
            }
            (Message::Identify(i), 4) => assert_eq!(i.max_dave_protocol_version, None),
            (Message::Heartbeat(h), 8) => {
                assert!(h.seq_ack.is_some() && r.text.contains("seq_ack"))
            }
            (Message::Heartbeat(h), 4) => {
                assert_eq!(h.seq_ack, None);
                assert_eq!(r.text, format!(r#"{{"op":3,"d":{}}}"#, h.nonce));
            }
            (Message::Resume(res), _) => {
                let ack = res.seq_ack.expect("seq_ack in resume");
                assert!(ack == 2 || ack == 3, "README: 3 for the receiver, 2 for the sender");
            }
            (Message::SelectProtocol(sp), _) => {
                assert_eq!(sp.protocol, "udp");
                assert_eq!(sp.data.address, "127.0.0.1");
            }
            (Message::Speaking(s), _) => {
                assert_eq!(s.delay, Some(0));
                assert!(s.speaking <= 1);
            }
            (m, v) => panic!("unexpected op {} on v{v}", m.op()),
        }
    }
}

#[test]
fn server_messages_from_protocol_md_parse() {
    let ready = r#"{"op":2,"d":{"ssrc":1,"ip":"127.0.0.1","port":1234,"modes":["aead_aes256_gcm_rtpsize","aead_xchacha20_poly1305_rtpsize"],"heartbeat_interval":1,"experiments":[]},"seq":1}"#;
    let f = Message::parse(ready).expect("ready");
    assert_eq!(f.seq, Some(1));
    let Message::Ready(r) = f.message else { panic!("not ready") };
    assert_eq!((r.ssrc, r.port, r.modes.len()), (1, 1234, 2));

    let key: Vec<String> = (0..32).map(|i| i.to_string()).collect();
    let sd = format!(
        r#"{{"op":4,"d":{{"mode":"aead_aes256_gcm_rtpsize","secret_key":[{}],"dave_protocol_version":0,"audio_codec":"opus"}},"seq":2}}"#,
        key.join(",")
    );
    let Message::SessionDescription(s) = Message::parse(&sd).expect("sd").message else { panic!() };
    assert_eq!(s.secret_key.as_bytes()[31], 31);
    assert!(!format!("{s:?}").contains("31"), "key redacted in Debug");
    assert_eq!(
        Message::SessionDescription(s).to_json(GatewayVersion::V8, Some(2)),
        sd.replace(r#","audio_codec":"opus""#, "")
    );

    let short = r#"{"op":4,"d":{"mode":"x","secret_key":[1,2,3]}}"#;
    assert!(matches!(Message::parse(short), Err(WireError::Malformed { op: Some(4), .. })));

    let hello = r#"{"op":8,"d":{"v":8,"heartbeat_interval":13750}}"#;
    let Message::Hello(h) = Message::parse(hello).expect("hello").message else { panic!() };
    assert_eq!(h.heartbeat_interval, 13750.0);
    assert_eq!(Message::Hello(h).to_json(GatewayVersion::V8, None), hello);
    let float = r#"{"op":8,"d":{"heartbeat_interval":41250.5}}"#;
    assert!(
        matches!(Message::parse(float).expect("float").message, Message::Hello(h) if h.heartbeat_interval == 41250.5)
    );

    let ack = Message::parse(r#"{"op":6,"d":{"t":1501184119561},"seq":5}"#).expect("ack");
    assert!(matches!(ack.message, Message::HeartbeatAck(a) if a.nonce == 1501184119561));
    let ack4 = Message::parse(r#"{"op":6,"d":1501184119561}"#).expect("ack v4");
    assert!(matches!(ack4.message, Message::HeartbeatAck(a) if a.nonce == 1501184119561));

    let speaking = r#"{"op":5,"d":{"user_id":"104694319306248192","ssrc":7,"speaking":1}}"#;
    let Message::Speaking(s) = Message::parse(speaking).expect("speaking").message else { panic!() };
    assert_eq!(s.user_id, Some(Snowflake(104694319306248192)));

    let cc = r#"{"op":11,"d":{"user_ids":["1","2"]},"seq":3}"#;
    assert!(matches!(Message::parse(cc).expect("cc").message, Message::ClientsConnect(c) if c.user_ids.len() == 2));
    assert!(matches!(Message::parse(r#"{"op":9,"d":null}"#).expect("resumed").message, Message::Resumed));
    assert!(
        matches!(Message::parse(r#"{"op":21,"d":{"transition_id":3,"protocol_version":0}}"#).expect("21").message, Message::DavePrepareTransition(t) if t.transition_id == 3)
    );
}

#[test]
fn unknown_opcodes_are_kept_with_their_seq_and_malformed_frames_are_errors() {
    let f = Message::parse(r#"{"op":18,"d":{"flags":2},"seq":9,"extra":true}"#).expect("unknown op");
    assert_eq!((f.message, f.seq), (Message::Unknown { op: 18 }, Some(9)));
    let f = Message::parse(r#"{"op":900,"d":{},"seq":10}"#).expect("huge op");
    assert_eq!(f.seq, Some(10));
    for bad in ["", "{", "[]", r#"{"d":{}}"#, r#"{"op":"2"}"#, r#"{"op":2,"d":{"ssrc":"x"}}"#, r#"{"op":2}"#] {
        assert!(Message::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn heartbeat_shapes_by_version() {
    let h = Message::Heartbeat(voice_proto::wire::Heartbeat { nonce: 1501184119561, seq_ack: Some(10) });
    assert_eq!(h.to_json(GatewayVersion::V8, None), r#"{"op":3,"d":{"t":1501184119561,"seq_ack":10}}"#);
    assert_eq!(h.to_json(GatewayVersion::V4, None), r#"{"op":3,"d":1501184119561}"#);
    let none = Message::Heartbeat(voice_proto::wire::Heartbeat { nonce: 1, seq_ack: None });
    assert_eq!(none.to_json(GatewayVersion::V8, None), r#"{"op":3,"d":{"t":1}}"#);
}

#[test]
fn dave_binary_frames_parse_with_and_without_the_sequence_prefix() {
    use voice_proto::wire::DaveBinary;
    let (seq, m) = DaveBinary::parse_server(&[0x01, 0x02, 29, 0x00, 0x0A, 0xAA, 0xBB]).expect("op 29");
    assert_eq!(seq, 0x0102);
    assert_eq!(m, DaveBinary::AnnounceCommitTransition { transition_id: 10, commit: &[0xAA, 0xBB] });
    let mut out = Vec::new();
    m.encode(Some(0x0102), &mut out);
    assert_eq!(out, [0x01, 0x02, 29, 0x00, 0x0A, 0xAA, 0xBB]);
    assert_eq!(DaveBinary::parse_client(&[26, 1, 2]).expect("op 26"), DaveBinary::KeyPackage(&[1, 2]));
    assert_eq!(
        DaveBinary::parse_server(&[0, 1, 27, 1, 5]).expect("op 27"),
        (1, DaveBinary::Proposals { operation: 1, body: &[5] })
    );
    assert!(DaveBinary::parse_server(&[0, 1]).is_err());
    assert!(DaveBinary::parse_server(&[0, 1, 30, 0]).is_err());
    assert_eq!(DaveBinary::parse_server(&[0, 1, 99]), Err(WireError::UnknownBinaryOpcode(99)));
}
