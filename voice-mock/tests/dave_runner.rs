//! DAVE through the runner's real sockets: 4017 for a client without DAVE,
//! and op 25 as a binary frame with the v8 seq prefix after Session
//! Description.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{T, TestClient};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use voice_mock::{RunnerConfig, Server};
use voice_proto::wire::{DaveBinary, GatewayVersion, Snowflake};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_dave_gets_4017_and_a_dave_client_gets_op_25() {
    let server = Server::start(RunnerConfig { tls: false, ..RunnerConfig::default() }).await.unwrap();
    let (g, ch) = (Snowflake(1), Snowflake(2));

    let join = server.join(g, ch, Snowflake(10));
    let mut plain = TestClient::connect(&join.endpoint, 8, None).await;
    plain
        .send(
            json!({"op":0,"d":{"server_id":"1","user_id":"10","session_id":join.session_id,"token":join.token.expose(),
            "max_dave_protocol_version":0}}),
        )
        .await;
    assert_eq!(plain.wait_close(T).await, Some(4017));
    assert_eq!(plain.frames.iter().map(|f| f["op"].as_i64().unwrap()).collect::<Vec<_>>(), vec![8]);
    assert_eq!(server.stats().sessions, 0);

    for v in [8u8, 4] {
        let user = 20 + u64::from(v);
        let join = server.join(g, ch, Snowflake(user));
        let mut c = TestClient::connect(&join.endpoint, v, None).await;
        c.send(json!({"op":0,"d":{"server_id":"1","user_id":user.to_string(),"session_id":join.session_id,
            "token":join.token.expose(),"max_dave_protocol_version":1}}))
            .await;
        c.wait_op(2).await;
        c.send(json!({"op":1,"d":{"protocol":"udp","data":{"address":"127.0.0.1","port":1234,
            "mode":"aead_aes256_gcm_rtpsize"}}}))
            .await;
        let sd = c.wait_op(4).await;
        assert_eq!(sd["d"]["dave_protocol_version"], 1);
        let frame = loop {
            match timeout(T, c.ws.next()).await.unwrap().unwrap().unwrap() {
                Message::Binary(b) => break b.to_vec(),
                Message::Text(t) => c.frames.push(serde_json::from_str::<Value>(t.as_str()).unwrap()),
                _ => {}
            }
        };
        let version = if v == 8 { GatewayVersion::V8 } else { GatewayVersion::V4 };
        let (seq, msg) = DaveBinary::parse_server_for(version, &frame).unwrap();
        assert!(matches!(msg, DaveBinary::ExternalSender(body) if !body.is_empty()));
        if v == 8 {
            assert_eq!(seq.map(i64::from), sd["seq"].as_i64().map(|s| s + 1), "the seq after op 4's");
        } else {
            assert_eq!((seq, frame[0]), (None, 25));
        }
    }
    server.shutdown().await;
}
