//! The sans-IO core against hand-written client frames, under fake time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use voice_mock::{ConnId, DavePolicy, Fault, JoinInfo, MockServer, ServerConfig, ServerOutput};
use voice_proto::wire::{GatewayVersion, Snowflake, WsFrame, WsMessage};
use voice_rtp::discovery::{self, Discovery};
use voice_rtp::{Cipher, Mode, RtpHeader, Sealer, SecretKey};

const G: Snowflake = Snowflake(100);
const CH: Snowflake = Snowflake(200);

/// These tests are about the gateway and the SFU, not DAVE (dave.rs).
fn off() -> ServerConfig {
    ServerConfig { dave: DavePolicy::Off, ..ServerConfig::default() }
}

struct Harness {
    s: MockServer,
    now: Instant,
}

#[derive(Debug, Default)]
struct Drained {
    texts: Vec<(ConnId, Value)>,
    closes: Vec<(ConnId, u16)>,
    transmits: Vec<(SocketAddr, Vec<u8>)>,
    /// Everything in order: ("ws", conn, op) or ("udp", 0, 0).
    order: Vec<(&'static str, u64, i64)>,
}

impl Drained {
    fn ops(&self, conn: ConnId) -> Vec<i64> {
        self.texts.iter().filter(|(c, _)| *c == conn).map(|(_, v)| v["op"].as_i64().unwrap()).collect()
    }
    fn find(&self, conn: ConnId, op: i64) -> Option<&Value> {
        self.texts.iter().find(|(c, v)| *c == conn && v["op"] == op).map(|(_, v)| v)
    }
}

impl Harness {
    fn new(config: ServerConfig) -> Self {
        let now = Instant::now();
        Harness { s: MockServer::new(config, now), now }
    }
    fn drain(&mut self) -> Drained {
        let mut d = Drained::default();
        for _ in 0..100_000 {
            match self.s.poll_output() {
                ServerOutput::WsSend { conn, frame: WsFrame::Text(t) } => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    d.order.push(("ws", conn.0, v["op"].as_i64().unwrap()));
                    d.texts.push((conn, v));
                }
                ServerOutput::WsClose { conn, code } => d.closes.push((conn, code)),
                ServerOutput::Transmit { to, bytes } => {
                    d.order.push(("udp", 0, 0));
                    d.transmits.push((to, bytes));
                }
                ServerOutput::Timeout(_) => return d,
                _ => {}
            }
        }
        panic!("output never ended");
    }
    fn text(&mut self, conn: ConnId, v: Value) -> Drained {
        self.s.handle_ws_message(conn, WsMessage::Text(&v.to_string()), self.now);
        self.drain()
    }
    fn raw(&mut self, conn: ConnId, t: &str) -> Drained {
        self.s.handle_ws_message(conn, WsMessage::Text(t), self.now);
        self.drain()
    }
    fn advance(&mut self, d: Duration) -> Drained {
        self.now += d;
        self.s.handle_timeout(self.now);
        self.drain()
    }
    fn identify(&mut self, join: &JoinInfo, v: GatewayVersion) -> (ConnId, Drained) {
        let conn = self.s.accept(v, self.now);
        let d = self.text(conn, identify_json(join));
        (conn, d)
    }
}

fn identify_json(j: &JoinInfo) -> Value {
    json!({"op":0,"d":{"server_id":j.guild_id.to_string(),"user_id":j.user_id.to_string(),
        "session_id":j.session_id,"token":j.token.expose(),"max_dave_protocol_version":1}})
}

fn select(mode: &str) -> Value {
    json!({"op":1,"d":{"protocol":"udp","data":{"address":"127.0.0.1","port":40000,"mode":mode}}})
}

fn hb(nonce: u64, seq_ack: i64) -> Value {
    json!({"op":3,"d":{"t":nonce,"seq_ack":seq_ack}})
}

#[test]
fn identify_gives_hello_then_ready_with_seq_from_1() {
    let mut h = Harness::new(off());
    let join = h.s.join(G, CH, Snowflake(1));
    assert_eq!(join.token.expose().split_once('.').unwrap().0, "200");
    let (conn, d) = h.identify(&join, GatewayVersion::V8);
    assert_eq!(d.ops(conn), vec![8, 2]);
    let hello = d.find(conn, 8).unwrap();
    assert_eq!(hello["seq"], 1);
    assert_eq!(hello["d"]["heartbeat_interval"], 13750);
    assert_eq!(hello["d"]["v"], 8);
    let ready = d.find(conn, 2).unwrap();
    assert_eq!(ready["seq"], 2);
    assert_eq!(ready["d"]["ip"], "127.0.0.1");
    assert_eq!(ready["d"]["port"], 50000);
    assert_eq!(ready["d"]["modes"], json!(["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"]));
    assert!(ready["d"]["ssrc"].as_u64().unwrap() > 0);
    assert_eq!(h.s.received_frames(Snowflake(1)).len(), 1);
    assert_eq!(h.s.received_frames(Snowflake(1))[0].op, Some(0));
}

#[test]
fn select_protocol_gives_session_description_and_heartbeat_ack() {
    let mut h = Harness::new(off());
    let join = h.s.join(G, CH, Snowflake(1));
    let (conn, _) = h.identify(&join, GatewayVersion::V8);
    let d = h.text(conn, select("aead_xchacha20_poly1305_rtpsize"));
    let sd = d.find(conn, 4).unwrap();
    assert_eq!(sd["seq"], 3);
    assert_eq!(sd["d"]["mode"], "aead_xchacha20_poly1305_rtpsize");
    assert_eq!(sd["d"]["secret_key"].as_array().unwrap().len(), 32);
    assert_eq!(sd["d"]["dave_protocol_version"], 0);
    let d = h.text(conn, hb(77, 3));
    let ack = d.find(conn, 6).unwrap();
    assert_eq!(ack["d"]["t"], 77);
    assert_eq!(ack["seq"], 4);
}

#[test]
fn v4_frames_carry_no_seq_and_bare_heartbeats() {
    let mut h = Harness::new(off());
    let join = h.s.join(G, CH, Snowflake(1));
    let (conn, d) = h.identify(&join, GatewayVersion::V4);
    let mut all = d.texts;
    all.extend(h.text(conn, select("aead_aes256_gcm_rtpsize")).texts);
    let d = h.text(conn, json!({"op":3,"d":1234}));
    assert_eq!(d.find(conn, 6).unwrap()["d"], 1234);
    all.extend(d.texts);
    assert!(all.len() >= 4);
    for (_, v) in all {
        assert!(v.get("seq").is_none(), "{v}");
    }
}

#[test]
fn resume_replays_messages_after_seq_ack() {
    let mut h = Harness::new(off());
    let a = h.s.join(G, CH, Snowflake(1));
    let (ca, _) = h.identify(&a, GatewayVersion::V8); // seq 1 Hello, 2 Ready
    h.s.handle_ws_close(ca, Some(1006), h.now);
    h.drain();
    // While A is away, B joins: A's op 11 waits in its buffer (seq 3).
    let b = h.s.join(G, CH, Snowflake(2));
    let (_cb, _) = h.identify(&b, GatewayVersion::V8);
    let c2 = h.s.accept(GatewayVersion::V8, h.now);
    let resume = json!({"op":7,"d":{"server_id":"100","session_id":a.session_id,"token":a.token.expose(),"seq_ack":2}});
    let d = h.text(c2, resume);
    assert_eq!(d.ops(c2), vec![8, 9, 11]);
    let seqs: Vec<i64> = d.texts.iter().map(|(_, v)| v["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(d.find(c2, 11).unwrap()["d"]["user_ids"], json!(["2"]));
    // Resuming with seq_ack 1 would have replayed Ready too.
}

#[test]
fn resume_with_old_seq_ack_replays_ready_and_unknown_resume_is_4006() {
    let mut h = Harness::new(off());
    let a = h.s.join(G, CH, Snowflake(1));
    let (ca, _) = h.identify(&a, GatewayVersion::V8);
    h.s.handle_ws_close(ca, None, h.now);
    let c2 = h.s.accept(GatewayVersion::V8, h.now);
    let d = h.text(
        c2,
        json!({"op":7,"d":{"server_id":"100","session_id":a.session_id,"token":a.token.expose(),"seq_ack":1}}),
    );
    assert_eq!(d.ops(c2), vec![8, 9, 2]);
    let c3 = h.s.accept(GatewayVersion::V8, h.now);
    let d = h.text(c3, json!({"op":7,"d":{"server_id":"100","session_id":"nope","token":"x","seq_ack":1}}));
    assert_eq!(d.closes, vec![(c3, 4006)]);
}

#[test]
fn close_codes_for_bad_clients() {
    let mut h = Harness::new(ServerConfig::default());
    let join = h.s.join(G, CH, Snowflake(1));
    let cases: Vec<(&str, Vec<Value>, u16)> = vec![
        ("not identified", vec![select("aead_aes256_gcm_rtpsize")], 4003),
        ("bad opcode", vec![json!({"op":2,"d":{}})], 4001),
        ("unknown opcode", vec![json!({"op":99,"d":{}})], 4001),
        ("already authenticated", vec![identify_json(&join), identify_json(&join)], 4005),
        ("unknown mode", vec![identify_json(&join), select("aead_nope")], 4016),
        (
            "unknown protocol",
            vec![
                identify_json(&join),
                json!({"op":1,"d":{"protocol":"webrtc","data":{"address":"1.2.3.4","port":1,"mode":"aead_aes256_gcm_rtpsize"}}}),
            ],
            4012,
        ),
        ("bad request", vec![json!({"op":0,"d":{"server_id":"1"}})], 4020),
    ];
    for (name, frames, code) in cases {
        let conn = h.s.accept(GatewayVersion::V8, h.now);
        let mut closes = Vec::new();
        for f in frames {
            closes.extend(h.text(conn, f).closes);
        }
        assert_eq!(closes, vec![(conn, code)], "{name}");
    }
    let conn = h.s.accept(GatewayVersion::V8, h.now);
    assert_eq!(h.raw(conn, "{not json").closes, vec![(conn, 4002)]);
    let conn = h.s.accept(GatewayVersion::V8, h.now);
    h.s.handle_ws_message(conn, WsMessage::Binary(&[99, 1, 2]), h.now);
    assert_eq!(h.drain().closes, vec![(conn, 4001)]);
    // After a close, further frames are ignored.
    assert!(h.raw(conn, "{}").closes.is_empty());
}

#[test]
fn required_token_gives_4004_and_4011() {
    let config = ServerConfig { require_token: true, ..off() };
    let mut h = Harness::new(config);
    let mut join = h.s.join(G, CH, Snowflake(1));
    let good = join.clone();
    join.token = "200.forged".into();
    let (conn, d) = h.identify(&join, GatewayVersion::V8);
    assert_eq!(d.closes, vec![(conn, 4004)]);
    let mut other_guild = good.clone();
    other_guild.guild_id = Snowflake(5);
    let (conn, d) = h.identify(&other_guild, GatewayVersion::V8);
    assert_eq!(d.closes, vec![(conn, 4011)]);
    let (conn, d) = h.identify(&good, GatewayVersion::V8);
    assert!(d.closes.is_empty());
    assert_eq!(d.ops(conn), vec![8, 2]);
}

#[test]
fn heartbeat_timeout_closes_with_4009() {
    let mut h = Harness::new(ServerConfig { heartbeat_interval_ms: 1000.0, ..off() });
    let join = h.s.join(G, CH, Snowflake(1));
    let (conn, _) = h.identify(&join, GatewayVersion::V8);
    assert!(h.advance(Duration::from_millis(1400)).closes.is_empty());
    h.text(conn, hb(1, 2));
    assert!(h.advance(Duration::from_millis(1400)).closes.is_empty());
    assert_eq!(h.advance(Duration::from_millis(200)).closes, vec![(conn, 4009)]);
    // The session stays resumable after a 4009.
    assert_eq!(h.s.stats().sessions, 1);
}

#[test]
fn faults_close_after_stop_acks_and_refuse_resume() {
    let mut h = Harness::new(off());
    let join = h.s.join(G, CH, Snowflake(1));
    let (conn, _) = h.identify(&join, GatewayVersion::V8);
    h.s.inject(Fault::StopHeartbeatAcks { user: None }, h.now);
    assert!(h.text(conn, hb(5, 2)).find(conn, 6).is_none());
    h.s.inject(Fault::ResumeHeartbeatAcks { user: None }, h.now);
    assert!(h.text(conn, hb(6, 2)).find(conn, 6).is_some());
    h.s.inject(Fault::CloseUser { user: Snowflake(1), code: 4015, after: Some(Duration::from_secs(3)) }, h.now);
    assert!(h.advance(Duration::from_secs(2)).closes.is_empty());
    assert_eq!(h.advance(Duration::from_secs(1)).closes, vec![(conn, 4015)]);
    h.s.inject(Fault::RefuseResumes(true), h.now);
    let c2 = h.s.accept(GatewayVersion::V8, h.now);
    let d = h.text(
        c2,
        json!({"op":7,"d":{"server_id":"100","session_id":join.session_id,"token":join.token.expose(),"seq_ack":4}}),
    );
    assert_eq!(d.closes, vec![(c2, 4006)]);
    assert_eq!(h.s.stats().sessions, 0);
}

#[test]
fn move_client_closes_with_4014_or_4022_and_issues_new_token() {
    let mut h = Harness::new(off());
    let join = h.s.join(G, CH, Snowflake(1));
    let (conn, _) = h.identify(&join, GatewayVersion::V8);
    let moved = h.s.move_client(Snowflake(1), G, Some(Snowflake(201)), None, h.now).unwrap();
    assert_ne!(moved.token, join.token);
    assert_eq!(moved.channel_id, Snowflake(201));
    assert_eq!(moved.session_id, join.session_id);
    assert_eq!(h.drain().closes, vec![(conn, 4014)]);
    let (conn, _) = h.identify(&moved, GatewayVersion::V8);
    let far = h.s.move_client(Snowflake(1), G, None, Some("127.0.0.1:1".into()), h.now).unwrap();
    assert_eq!(far.endpoint, "127.0.0.1:1");
    assert_eq!(h.drain().closes, vec![(conn, 4022)]);
    assert!(h.s.move_client(Snowflake(9), G, None, None, h.now).is_none());
}

/// A client in the harness: identified, discovered, selected.
struct Peer {
    conn: ConnId,
    addr: SocketAddr,
    ssrc: u32,
    key: SecretKey,
}

fn connect(h: &mut Harness, user: u64, port: u16, mode: Mode) -> Peer {
    let join = h.s.join(G, CH, Snowflake(user));
    let (conn, d) = h.identify(&join, GatewayVersion::V8);
    let ssrc = d.find(conn, 2).unwrap()["d"]["ssrc"].as_u64().unwrap() as u32;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    h.s.handle_datagram(addr, &discovery::request(ssrc), h.now);
    let d = h.drain();
    let reply = Discovery::parse_response(&d.transmits[0].1).unwrap();
    assert_eq!((reply.address, reply.port, reply.ssrc), ("127.0.0.1", port, ssrc));
    let d = h.text(conn, select(mode.as_str()));
    let key: Vec<u8> = d.find(conn, 4).unwrap()["d"]["secret_key"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    Peer { conn, addr, ssrc, key: SecretKey::from_slice(&key).unwrap() }
}

fn rtp(sealer: &mut Sealer, seq: u16, ts: u32, ssrc: u32, opus: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    let csrcs = [7u32];
    let header = RtpHeader {
        payload_type: 120,
        sequence: seq,
        timestamp: ts,
        ssrc,
        csrcs: &csrcs,
        extension: Some((0xBEDE, &[0x10, 0x55, 0, 0])),
        ..RtpHeader::default()
    };
    header.write(opus, &mut p).unwrap();
    sealer.seal(&mut p).unwrap();
    p
}

#[test]
fn sfu_reencrypts_announces_first_and_strips_extensions() {
    let mut h = Harness::new(off());
    let a = connect(&mut h, 1, 40001, Mode::Aes256GcmRtpSize);
    let b = connect(&mut h, 2, 40002, Mode::XChaCha20Poly1305RtpSize);
    let mut sealer = Sealer::new(Cipher::new(Mode::Aes256GcmRtpSize, &a.key), 9);
    let pkt = rtp(&mut sealer, 5, 960, a.ssrc, &[1, 2, 3]);
    h.s.handle_datagram(a.addr, &pkt, h.now);
    let d = h.drain();
    // Op 5 naming A's SSRC to B comes before the packet.
    assert_eq!(d.order, vec![("ws", b.conn.0, 5), ("udp", 0, 0)]);
    let sp = d.find(b.conn, 5).unwrap();
    assert_eq!((sp["d"]["user_id"].as_str(), sp["d"]["ssrc"].as_u64()), (Some("1"), Some(u64::from(a.ssrc))));
    let (to, mut bytes) = d.transmits[0].clone();
    assert_eq!(to, b.addr);
    assert_eq!(bytes[0] & 0x1F, 0, "no CSRCs and no extension forwarded");
    let opened = Cipher::new(Mode::XChaCha20Poly1305RtpSize, &b.key).open(&mut bytes).unwrap();
    assert_eq!((opened.header.sequence, opened.header.timestamp, opened.header.ssrc), (5, 960, a.ssrc));
    assert_eq!(opened.payload, &[1, 2, 3]);
    // A second packet: no second op 5.
    let pkt = rtp(&mut sealer, 6, 1920, a.ssrc, &[4]);
    h.s.handle_datagram(a.addr, &pkt, h.now);
    assert_eq!(h.drain().order, vec![("udp", 0, 0)]);
    // A packet under a wrong key is dropped and counted.
    let mut bad = Sealer::new(Cipher::new(Mode::Aes256GcmRtpSize, &b.key), 1);
    let pkt = rtp(&mut bad, 7, 2880, a.ssrc, &[4]);
    h.s.handle_datagram(a.addr, &pkt, h.now);
    assert!(h.drain().transmits.is_empty());
    let st = h.s.stats();
    assert_eq!(st.decrypt_failures, 1);
    assert_eq!(st.users[&Snowflake(1)].rtp_in, 2);
    assert_eq!(st.users[&Snowflake(2)].rtp_out, 2);
}

#[test]
fn udp_faults_are_seeded_and_counted() {
    let run = |seed: u64| {
        let mut h = Harness::new(ServerConfig { seed, ..off() });
        let a = connect(&mut h, 1, 40001, Mode::Aes256GcmRtpSize);
        let _b = connect(&mut h, 2, 40002, Mode::Aes256GcmRtpSize);
        h.s.inject(Fault::UdpLoss { drop: 0.2, reorder: 0.1, delay: Duration::from_millis(30) }, h.now);
        let mut sealer = Sealer::new(Cipher::new(Mode::Aes256GcmRtpSize, &a.key), 1);
        let mut got = Vec::new();
        for i in 0..500u16 {
            let pkt = rtp(&mut sealer, i, u32::from(i) * 960, a.ssrc, &[0xF8, 0xFF, 0xFE]);
            h.s.handle_datagram(a.addr, &pkt, h.now);
            got.extend(h.drain().transmits);
            got.extend(h.advance(Duration::from_millis(20)).transmits);
        }
        got.extend(h.advance(Duration::from_secs(1)).transmits);
        let st = h.s.stats();
        (got.len(), st.udp_fault_dropped, st.udp_fault_reordered, st.users[&Snowflake(2)].rtp_out)
    };
    let (sent, dropped, reordered, out) = run(42);
    assert_eq!(run(42), (sent, dropped, reordered, out));
    assert_eq!(sent as u64 + dropped, 500);
    assert_eq!(out, sent as u64);
    assert!((60..140).contains(&dropped), "{dropped}");
    assert!(reordered > 10, "{reordered}");
}

#[test]
fn clients_connect_and_disconnect_reach_the_room() {
    let mut h = Harness::new(off());
    let a = connect(&mut h, 1, 40001, Mode::Aes256GcmRtpSize);
    let jb = h.s.join(G, CH, Snowflake(2));
    let (cb, d) = h.identify(&jb, GatewayVersion::V8);
    assert_eq!(d.find(a.conn, 11).unwrap()["d"]["user_ids"], json!(["2"]));
    assert_eq!(d.find(cb, 11).unwrap()["d"]["user_ids"], json!(["1"]));
    // B speaks: A learns B's SSRC.
    let d = h.text(cb, json!({"op":5,"d":{"speaking":1,"delay":0,"ssrc":1}}));
    let sp = d.find(a.conn, 5).unwrap();
    assert_eq!(sp["d"]["user_id"], "2");
    assert_eq!(sp["d"]["ssrc"].as_u64(), h.s.ssrc_of(G, Snowflake(2)).map(u64::from));
    h.s.inject(Fault::CloseUser { user: Snowflake(2), code: 4014, after: None }, h.now);
    let d = h.drain();
    assert_eq!(d.closes, vec![(cb, 4014)]);
    assert_eq!(d.find(a.conn, 13).unwrap()["d"]["user_id"], "2");
    // A client that drops without a close keeps its session until the
    // resume window ends; then the room hears op 13.
    let jc = h.s.join(G, CH, Snowflake(3));
    let (cc, _) = h.identify(&jc, GatewayVersion::V8);
    h.s.handle_ws_close(cc, None, h.now);
    assert!(h.drain().find(a.conn, 13).is_none());
    h.advance(Duration::from_secs(15));
    h.text(a.conn, hb(1, 1));
    let d = h.advance(Duration::from_secs(16));
    assert!(d.closes.is_empty());
    assert_eq!(d.find(a.conn, 13).unwrap()["d"]["user_id"], "3");
}

#[test]
fn same_seed_same_outputs() {
    let run = || {
        let mut h = Harness::new(ServerConfig { seed: 5, ..off() });
        let j = h.s.join(G, CH, Snowflake(1));
        let (conn, mut d) = h.identify(&j, GatewayVersion::V8);
        d.texts.extend(h.text(conn, select("aead_aes256_gcm_rtpsize")).texts);
        (j.session_id, j.token, d.texts.iter().map(|(_, v)| v.to_string()).collect::<Vec<_>>())
    };
    assert_eq!(run(), run());
}

#[test]
fn limits_hold_under_many_connections() {
    let mut config = off();
    config.limits.max_conns = 10;
    config.limits.max_sessions = 3;
    let mut h = Harness::new(config);
    let mut refused = 0;
    for u in 0..20u64 {
        let j = h.s.join(G, CH, Snowflake(1000 + u));
        let (_, d) = h.identify(&j, GatewayVersion::V8);
        refused += d.closes.iter().filter(|(_, c)| *c == 1013).count();
    }
    let st = h.s.stats();
    assert_eq!(st.sessions, 3);
    assert!(st.conns <= 10);
    assert_eq!(refused, 17);
}

#[test]
fn switching_mode_changes_the_key_so_no_nonce_repeats() {
    let mut h = Harness::new(off());
    let join = h.s.join(G, CH, Snowflake(1));
    let (conn, _) = h.identify(&join, GatewayVersion::V8);
    let keys: Vec<Value> = ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize", "aead_aes256_gcm_rtpsize"]
        .iter()
        .map(|m| h.text(conn, select(m)).find(conn, 4).unwrap()["d"]["secret_key"].clone())
        .collect();
    assert_ne!(keys[0], keys[1]);
    assert_ne!(keys[1], keys[2]);
    assert_ne!(keys[0], keys[2], "back to the first mode: a new sealer needs a new key");
    // The same mode again keeps the key (and the sealer's counter).
    let again = h.text(conn, select("aead_aes256_gcm_rtpsize")).find(conn, 4).unwrap()["d"]["secret_key"].clone();
    assert_eq!(again, keys[2]);
}

#[test]
fn per_user_statistics_stay_bounded_under_a_stream_of_new_users() {
    let mut config = off();
    config.limits.max_sessions = 8;
    let cap = 32;
    let mut h = Harness::new(config);
    for u in 0..500u64 {
        let join = h.s.join(G, CH, Snowflake(10_000 + u));
        let (conn, _) = h.identify(&join, GatewayVersion::V8);
        // Identify, then vanish with a non-resumable close.
        h.s.handle_ws_close(conn, Some(4014), h.now);
        h.drain();
        h.advance(Duration::from_secs(60));
        assert!(h.s.stats().users.len() <= cap, "at {u}: {}", h.s.stats().users.len());
    }
}
