//! The serenity integration driven as serenity drives it: the client's
//! calls into `VoiceGatewayManager` with gateway payloads recorded from
//! Discord (their shape; the session, token and endpoint are the mock's),
//! against a voice-mock server on loopback. Op 4 comes out of the shard
//! sender as the JSON serenity writes to its websocket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use serenity::all::{ChannelId, GuildId, ShardRunnerMessage, UserId, VoiceGatewayManager};
use serenity::futures::StreamExt as _;
use serenity::futures::channel::mpsc::{UnboundedReceiver, unbounded};
use serenity::model::event::VoiceServerUpdateEvent;
use serenity::model::voice::VoiceState;
use voice_tokio::serenity::SerenityVoice;
use voice_tokio::{DriverConfig, JoinError, Snowflake, State};

const GUILD: u64 = 41771983423143937;
const CHANNEL: u64 = 127121515262115840;
const BOT: u64 = 80351110224678912;

/// The next op 4 the shard was asked to send, as JSON.
async fn op4(rx: &mut UnboundedReceiver<ShardRunnerMessage>) -> serde_json::Value {
    let msg = tokio::time::timeout(Duration::from_secs(5), rx.next()).await.expect("op 4 in time").expect("sender");
    let ShardRunnerMessage::Message(m) = msg else { panic!("not a websocket message: {msg:?}") };
    serde_json::from_str(m.to_text().unwrap()).unwrap()
}

/// A VOICE_STATE_UPDATE's `d` as Discord sends it.
fn voice_state(user: u64, channel: Option<u64>, session: &str) -> VoiceState {
    serde_json::from_value(serde_json::json!({
        "guild_id": GUILD.to_string(),
        "channel_id": channel.map(|c| c.to_string()),
        "user_id": user.to_string(),
        "session_id": session,
        "deaf": false, "mute": false, "self_deaf": false, "self_mute": false,
        "self_video": false, "suppress": false, "request_to_speak_timestamp": null
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serenity_client_joins_plays_and_leaves_through_the_voice_manager() {
    let mut rc = voice_mock::RunnerConfig::default();
    rc.server.heartbeat_interval_ms = 1000.0;
    let server = voice_mock::Server::start(rc).await.unwrap();
    let mut config = DriverConfig::default();
    config.trust_pem(server.cert_pem().as_bytes()).unwrap();
    config.join_timeout = Duration::from_secs(10);
    let voice = SerenityVoice::new(config.clone()).unwrap();
    let (guild, channel) = (GuildId::new(GUILD), ChannelId::new(CHANNEL));

    // Before the client starts there is no bot user to join as.
    assert_eq!(voice.join(guild, channel).await.unwrap_err(), JoinError::GatewayNotReady);

    // Client start: the bot's id, then READY on shard 0.
    voice.initialise(1, UserId::new(BOT)).await;
    let (tx, mut shard) = unbounded();
    voice.register_shard(0, tx).await;

    let joining = tokio::spawn({
        let voice = voice.clone();
        async move { voice.join(guild, channel).await }
    });
    let sent = op4(&mut shard).await;
    assert_eq!(sent["op"], 4);
    assert_eq!(sent["d"]["guild_id"], GUILD.to_string());
    assert_eq!(sent["d"]["channel_id"], CHANNEL.to_string());

    // Discord answers with the two dispatches; another member's state
    // arrives too and is no business of the bot's call.
    let creds = server.join_wss(Snowflake(GUILD), Snowflake(CHANNEL), Snowflake(BOT));
    voice.state_update(guild, &voice_state(99, Some(CHANNEL), "someone else's")).await;
    voice.state_update(guild, &voice_state(BOT, Some(CHANNEL), &creds.session_id)).await;
    let update: VoiceServerUpdateEvent = serde_json::from_value(serde_json::json!({
        "token": creds.token.expose(), "guild_id": GUILD.to_string(), "endpoint": creds.endpoint
    }))
    .unwrap();
    voice.server_update(guild, &update.endpoint, &update.token).await;
    let call = joining.await.unwrap().expect("joined");
    assert_eq!(call.state().state, State::Connected);
    assert!(voice.get(guild).is_some());

    // Audio through it reaches another member.
    let room = (Snowflake(GUILD), Snowflake(CHANNEL));
    let listener = common::audio_reaches_another_member(&call, &server, room, config, 0xA0).await;

    // A shard reconnecting: its runner (and channel) ends, and op 4 waits
    // for the new runner's sender.
    drop(shard);
    voice.deregister_shard(0).await;
    let leaving = tokio::spawn({
        let voice = voice.clone();
        async move { voice.leave(guild).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (tx, mut shard) = unbounded();
    voice.register_shard(0, tx).await;
    let sent = op4(&mut shard).await;
    assert_eq!(sent["d"]["guild_id"], GUILD.to_string());
    assert!(sent["d"]["channel_id"].is_null(), "a leave: {sent}");
    voice.state_update(guild, &voice_state(BOT, None, &creds.session_id)).await;
    tokio::time::timeout(Duration::from_secs(5), leaving).await.expect("left").unwrap().unwrap();
    listener.close().await.unwrap();
}
