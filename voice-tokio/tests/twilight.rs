//! The twilight integration on a real twilight shard: the shard connects
//! (plain ws on loopback, twilight's `proxy_url`) to a stand-in for
//! Discord's main gateway that answers op 4 with the voice dispatches
//! Discord sends (their recorded shape; the session, token and endpoint
//! are those of a voice-mock server), and the bot's `Manager::process`
//! takes them from the shard's event stream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use twilight_gateway::{ConfigBuilder, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _};
use voice_tokio::twilight::TwilightGateway;
use voice_tokio::{DriverConfig, Manager, Snowflake, State};

const GUILD: u64 = 41771983423143937;
const CHANNEL: u64 = 127121515262115840;
const BOT: u64 = 80351110224678912;

fn dispatch(seq: u64, t: &str, d: Value) -> Message {
    Message::Text(json!({ "op": 0, "s": seq, "t": t, "d": d }).to_string().into())
}

fn voice_state(channel: Option<String>, session: &str) -> Value {
    json!({
        "guild_id": GUILD.to_string(), "channel_id": channel, "user_id": BOT.to_string(),
        "session_id": session, "deaf": false, "mute": false, "self_deaf": false,
        "self_mute": false, "self_video": false, "suppress": false, "request_to_speak_timestamp": null
    })
}

/// A one-connection main gateway: Hello, READY after Identify, heartbeat
/// ACKs, and the voice dispatches for every op 4 (which it also reports).
async fn main_gateway(listener: TcpListener, voice: Arc<voice_mock::Server>, op4s: mpsc::UnboundedSender<Value>) {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    ws.send(Message::Text(json!({ "op": 10, "d": { "heartbeat_interval": 41250 } }).to_string().into())).await.unwrap();
    let mut seq = 0;
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text).unwrap();
        let mut replies = Vec::new();
        match v["op"].as_u64() {
            Some(1) => replies.push(Message::Text(json!({ "op": 11 }).to_string().into())),
            Some(2) => {
                seq += 1;
                let ready = json!({ "session_id": "main", "resume_gateway_url": "ws://127.0.0.1:9", "v": 10 });
                replies.push(dispatch(seq, "READY", ready));
            }
            Some(4) => {
                let d = &v["d"];
                match d["channel_id"].as_str() {
                    Some(channel) => {
                        let creds =
                            voice.join_wss(Snowflake(GUILD), Snowflake(channel.parse().unwrap()), Snowflake(BOT));
                        seq += 1;
                        let state = voice_state(Some(channel.to_owned()), &creds.session_id);
                        replies.push(dispatch(seq, "VOICE_STATE_UPDATE", state));
                        seq += 1;
                        let server = json!({
                            "token": creds.token.expose(), "guild_id": GUILD.to_string(), "endpoint": creds.endpoint
                        });
                        replies.push(dispatch(seq, "VOICE_SERVER_UPDATE", server));
                    }
                    None => {
                        voice.leave(Snowflake(GUILD), Snowflake(BOT));
                        seq += 1;
                        replies.push(dispatch(seq, "VOICE_STATE_UPDATE", voice_state(None, "gone")));
                    }
                }
                op4s.send(v).unwrap();
            }
            _ => {}
        }
        for r in replies {
            ws.send(r).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilight_shard_carries_op4_and_the_voice_dispatches() {
    let mut rc = voice_mock::RunnerConfig::default();
    rc.server.heartbeat_interval_ms = 1000.0;
    let voice = Arc::new(voice_mock::Server::start(rc).await.unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (op4_tx, mut op4s) = mpsc::unbounded_channel();
    tokio::spawn(main_gateway(listener, voice.clone(), op4_tx));

    let config = ConfigBuilder::new("a-bot-token".into(), Intents::GUILD_VOICE_STATES)
        .proxy_url(format!("ws://127.0.0.1:{port}"))
        .build();
    let mut shard = Shard::with_config(ShardId::ONE, config);
    let mut driver = DriverConfig::default();
    driver.trust_pem(voice.cert_pem().as_bytes()).unwrap();
    driver.join_timeout = Duration::from_secs(10);
    let manager =
        Arc::new(Manager::new(Snowflake(BOT), TwilightGateway::new([shard.sender()]), driver.clone()).unwrap());
    let m = manager.clone();
    tokio::spawn(async move {
        while let Some(item) = shard.next_event(EventTypeFlags::all()).await {
            if let Ok(event) = item {
                m.process(&event).await;
            }
        }
    });

    let call = manager.join(Snowflake(GUILD), Snowflake(CHANNEL)).await.expect("joined through the shard");
    assert_eq!(call.state().state, State::Connected);
    let sent = op4s.recv().await.unwrap();
    assert_eq!(sent["d"]["guild_id"], GUILD.to_string());
    assert_eq!(sent["d"]["channel_id"], CHANNEL.to_string());

    // Audio through it reaches another member.
    let room = (Snowflake(GUILD), Snowflake(CHANNEL));
    let other = common::audio_reaches_another_member(&call, &voice, room, driver, 0xB0).await;

    tokio::time::timeout(Duration::from_secs(5), call.leave()).await.expect("left").unwrap();
    let sent = tokio::time::timeout(Duration::from_secs(5), op4s.recv()).await.unwrap().unwrap();
    assert!(sent["d"]["channel_id"].is_null(), "a leave: {sent}");
    other.close().await.unwrap();
}
