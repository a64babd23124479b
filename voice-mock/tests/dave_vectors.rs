//! The server's DAVE messages as fixed bytes: `testdata/vectors/dave-server.jsonl`
//! holds op 25 and op 27 (Adds of two fixed key packages at epoch 0, and a
//! Remove at epoch 2) from the key of seed 7, room (100, 200), and the
//! proposal references. These tests rebuild them byte for byte.
//!
//! To write the file again (new key packages, so new op 27 bytes):
//! `cargo test -p voice-mock --test dave_vectors -- --ignored write_vectors`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dave_util;

use std::collections::BTreeMap;

use dave_util::{CH, G, Net};
use openmls::prelude::hash_ref::make_proposal_ref;
use openmls::prelude::{Ciphersuite, MlsMessageIn, tls_codec::DeserializeBytes};
use openmls_rust_crypto::RustCrypto;
use serde_json::{Value, json};
use voice_mock::{ConnId, MockServer, ServerConfig, ServerOutput};
use voice_proto::wire::{DaveBinary, GatewayVersion, Snowflake, WsFrame, WsMessage};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/dave-server.jsonl");
const SEED: u64 = 7;

fn config() -> ServerConfig {
    ServerConfig { seed: SEED, ..ServerConfig::default() }
}

/// Binary frames the server sent, by user, as `op ‖ body` (no seq).
type Sent = BTreeMap<u64, Vec<Vec<u8>>>;

fn drain(s: &mut MockServer, conns: &BTreeMap<ConnId, u64>, sent: &mut Sent) {
    loop {
        match s.poll_output() {
            ServerOutput::WsSend { conn, frame: WsFrame::Binary(b) } => {
                let (_, msg) = DaveBinary::parse_server(&b).unwrap();
                let mut body = Vec::new();
                msg.encode(None, &mut body);
                sent.entry(conns[&conn]).or_default().push(body);
            }
            ServerOutput::Timeout(_) => return,
            _ => {}
        }
    }
}

/// Users 1 and 2 join room (100, 200) and send `key_packages` (op 26
/// frames); what the server sends back.
fn run_adds(key_packages: &[(u64, Vec<u8>)]) -> Sent {
    let now = std::time::Instant::now();
    let mut s = MockServer::new(config(), now);
    let mut conns = BTreeMap::new();
    let mut sent = Sent::new();
    for &(user, _) in key_packages {
        let join = s.join(G, CH, Snowflake(user));
        let conn = s.accept(GatewayVersion::V8, now);
        conns.insert(conn, user);
        let identify = json!({"op":0,"d":{"server_id":"100","user_id":user.to_string(),
            "session_id":join.session_id,"token":join.token.expose(),"max_dave_protocol_version":1}});
        let select = json!({"op":1,"d":{"protocol":"udp","data":{"address":"127.0.0.1","port":40000 + user,
            "mode":"aead_aes256_gcm_rtpsize"}}});
        s.handle_ws_message(conn, WsMessage::Text(&identify.to_string()), now);
        s.handle_ws_message(conn, WsMessage::Text(&select.to_string()), now);
        drain(&mut s, &conns, &mut sent);
    }
    for (conn, user) in conns.clone() {
        let kp = &key_packages.iter().find(|(u, _)| *u == user).unwrap().1;
        s.handle_ws_message(conn, WsMessage::Binary(kp), now);
        drain(&mut s, &conns, &mut sent);
    }
    sent
}

/// Three davey clients form a group; the third leaves: the op 27 with the
/// Remove of its leaf at epoch 2 (it depends on no key package).
fn run_remove() -> Vec<u8> {
    let mut n = Net::new(config());
    n.join(1);
    n.join(2);
    n.join(3);
    n.leave(3);
    let a = n.client(1);
    let s = a.seen.iter().rev().find(|s| s.op == 27 && s.bytes[3] == 0).unwrap();
    s.bytes[2..].to_vec()
}

/// The proposal references of an op 27 append (`op ‖ 0 ‖ <V>messages`).
fn references(op27: &[u8]) -> Vec<String> {
    let crypto = RustCrypto::default();
    let (content, rest) = openmls::prelude::tls_codec::VLBytes::tls_deserialize_bytes(&op27[2..]).unwrap();
    assert!(rest.is_empty());
    let mut left = content.as_slice();
    let mut refs = Vec::new();
    while !left.is_empty() {
        let (_, after) = MlsMessageIn::tls_deserialize_bytes(left).unwrap();
        let message = &left[..left.len() - after.len()];
        let r = make_proposal_ref(&message[2..], Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256, &crypto);
        refs.push(to_hex(r.unwrap().as_slice()));
        left = after;
    }
    refs
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn records() -> Vec<Value> {
    let text = std::fs::read_to_string(FILE).expect("testdata/vectors/dave-server.jsonl");
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn field(r: &Value, k: &str) -> Vec<u8> {
    from_hex(r[k].as_str().unwrap())
}

#[test]
fn op25_and_op27_are_rebuilt_byte_for_byte() {
    let recs = records();
    let find = |name: &'static str| recs.iter().filter(move |r| r["vector"] == name);
    let kps: Vec<(u64, Vec<u8>)> =
        find("key_package").map(|r| (r["user"].as_str().unwrap().parse().unwrap(), field(r, "op26"))).collect();
    assert_eq!(kps.len(), 2);
    let sent = run_adds(&kps);
    let sender = find("external_sender").next().unwrap();
    assert_eq!(
        (sender["seed"].as_u64(), sender["guild"].as_str(), sender["channel"].as_str()),
        (Some(7), Some("100"), Some("200"))
    );
    for user in [1, 2] {
        assert_eq!(sent[&user][0], field(sender, "op25"), "op 25 to user {user}");
    }
    let adds: Vec<&Value> = find("proposals").filter(|r| r["epoch"] == 0).collect();
    assert_eq!(adds.len(), 2);
    for r in adds {
        let to: u64 = r["to"][0].as_str().unwrap().parse().unwrap();
        let op27 = field(r, "op27");
        assert_eq!(sent[&to][1], op27, "op 27 to user {to}");
        assert_eq!(references(&op27), serde_json::from_value::<Vec<String>>(r["refs"].clone()).unwrap());
    }
    let remove = find("proposals").find(|r| r["epoch"] == 2).unwrap();
    let op27 = field(remove, "op27");
    assert_eq!(run_remove(), op27);
    assert_eq!(references(&op27), serde_json::from_value::<Vec<String>>(remove["refs"].clone()).unwrap());
}

#[test]
#[ignore = "writes testdata/vectors/dave-server.jsonl"]
fn write_vectors() {
    let kps: Vec<(u64, Vec<u8>)> = [1u64, 2]
        .into_iter()
        .map(|user| {
            let mut s = davey::DaveSession::new(std::num::NonZeroU16::new(1).unwrap(), user, CH.0, None).unwrap();
            let mut f = vec![26];
            f.extend(s.create_key_package().unwrap());
            (user, f)
        })
        .collect();
    let sent = run_adds(&kps);
    let mut lines = vec![json!({"vector":"external_sender","seed":SEED,"guild":"100","channel":"200",
        "note":"op 25 (opcode and ExternalSender, no seq prefix) of the room key from the seed",
        "op25":to_hex(&sent[&1][0])})];
    for (user, kp) in &kps {
        lines.push(json!({"vector":"key_package","user":user.to_string(),
            "note":"op 26 from a davey 0.2 client (credential: the user id, 8 bytes big-endian)","op26":to_hex(kp)}));
    }
    for (to, other) in [(1u64, 2u64), (2, 1)] {
        let op27 = &sent[&to][1];
        lines.push(json!({"vector":"proposals","to":[to.to_string()],"epoch":0,
            "note":format!("op 27 append at epoch 0: the external Add of user {other}'s key package"),
            "op27":to_hex(op27),"refs":references(op27)}));
    }
    let op27 = run_remove();
    lines.push(json!({"vector":"proposals","to":["1","2"],"epoch":2,
        "note":"op 27 append at epoch 2: the external Remove of leaf 2 (user 3 left a group of users 1, 2, 3)",
        "op27":to_hex(&op27),"refs":references(&op27)}));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(FILE, text).unwrap();
}
