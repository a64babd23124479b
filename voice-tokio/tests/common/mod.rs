//! A voice-mock server plus a simulated main gateway for a `Manager`.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use voice_mock::{RunnerConfig, Server};
use voice_proto::wire::Snowflake;
use voice_proto::{GatewayEvent, UpdateVoiceState, VoiceStateUpdate};
use voice_tokio::{Call, DriverConfig, Manager, ReceivedAudio};

pub const GUILD: Snowflake = Snowflake(1);
pub const CHANNEL: Snowflake = Snowflake(2);

/// One bot: its manager and every op 4 it sent.
pub struct Bot {
    pub user: Snowflake,
    pub manager: Arc<Manager>,
    pub op4: Arc<Mutex<Vec<UpdateVoiceState>>>,
}

pub async fn server() -> Server {
    let mut config = RunnerConfig::default();
    config.server.heartbeat_interval_ms = 1000.0;
    Server::start(config).await.expect("mock server")
}

pub fn driver_config(server: &Server) -> DriverConfig {
    let mut c = DriverConfig::default();
    c.trust_pem(server.cert_pem().as_bytes()).expect("cert");
    c.join_timeout = Duration::from_secs(10);
    c
}

/// A bot whose main gateway is simulated: op 4 with a channel gets a voice
/// state and a voice server update from the mock (wss endpoint); op 4 with
/// no channel gets a null-channel state.
pub fn bot(server: &Arc<Server>, user: u64) -> Bot {
    let user = Snowflake(user);
    let (tx, mut rx) = mpsc::unbounded_channel::<UpdateVoiceState>();
    let manager = Arc::new(Manager::new(user, tx, driver_config(server)).expect("manager"));
    let op4 = Arc::new(Mutex::new(Vec::new()));
    let (m, s, log) = (Arc::downgrade(&manager), server.clone(), op4.clone());
    tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            log.lock().unwrap().push(p.clone());
            let Some(manager) = m.upgrade() else { break };
            match p.channel_id {
                Some(channel) => {
                    for event in s.join_wss(p.guild_id, channel, user).gateway_events() {
                        manager.handle_gateway_event(event).await;
                    }
                }
                None => {
                    // The voice server hears of the leave from the main
                    // gateway, a moment after the last datagram.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    s.leave(p.guild_id, user);
                    let state = VoiceStateUpdate {
                        guild_id: Some(p.guild_id),
                        channel_id: None,
                        user_id: user,
                        session_id: "x".into(),
                    };
                    manager.handle_gateway_event(GatewayEvent::VoiceStateUpdate(state)).await;
                }
            }
        }
    });
    Bot { user, manager, op4 }
}

/// Distinct test frames that look like Opus (CELT FB 20 ms TOC).
pub fn frames(tag: u8, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut f = vec![0xFC, tag, (i >> 8) as u8, i as u8];
            f.extend((0..(i % 50 + 10)).map(|j| (i * 13 + j * 7) as u8));
            f
        })
        .collect()
}

/// Collects received audio until `n` non-silence packets or `timeout`.
pub async fn collect(rx: &mut mpsc::Receiver<ReceivedAudio>, n: usize, timeout: Duration) -> Vec<ReceivedAudio> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(timeout, async {
        while let Some(p) = rx.recv().await {
            let silence = p.opus.as_ref() == voice_rtp::OPUS_SILENCE;
            got.push(p);
            if !silence && got.iter().filter(|p| p.opus.as_ref() != voice_rtp::OPUS_SILENCE).count() >= n {
                break;
            }
        }
    })
    .await;
    got
}

pub fn voice_only(got: &[ReceivedAudio]) -> Vec<Vec<u8>> {
    got.iter().filter(|p| p.opus.as_ref() != voice_rtp::OPUS_SILENCE).map(|p| p.opus.to_vec()).collect()
}

pub async fn joined(bot: &Bot, channel: Snowflake) -> Call {
    bot.manager.join(GUILD, channel).await.expect("join")
}
