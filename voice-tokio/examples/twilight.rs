//! Joins a voice channel of a real guild through twilight-gateway and plays
//! an Ogg Opus file.
//!
//! ```text
//! DISCORD_TOKEN=... GUILD_ID=... CHANNEL_ID=... [FILE=song.ogg] \
//!     cargo run -p voice-tokio --example twilight
//! ```
//!
//! The bot needs the `GUILD_VOICE_STATES` intent and permission to connect
//! and speak in the channel. Since March 2026 Discord closes non-stage voice
//! connections that do not offer DAVE end-to-end encryption (close code
//! 4017, reported here as `JoinError::Disconnected(E2eeRequired)`); until
//! this workspace ships DAVE, use a stage channel.

use std::error::Error;
use std::sync::Arc;

use twilight_gateway::{Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _};
use voice_proto::wire::{Snowflake, Token};
use voice_proto::{GatewayEvent, UpdateVoiceState, VoiceServerUpdate, VoiceStateUpdate};
use voice_tokio::{DriverConfig, Manager};

type BoxError = Box<dyn Error + Send + Sync>;

fn env_id(name: &str) -> Result<u64, BoxError> {
    Ok(std::env::var(name).map_err(|_| format!("{name} is not set"))?.parse()?)
}

/// twilight's dispatch, in voice-proto's terms.
fn voice_event(event: Event) -> Option<GatewayEvent> {
    match event {
        Event::VoiceStateUpdate(u) => Some(GatewayEvent::VoiceStateUpdate(VoiceStateUpdate {
            guild_id: u.guild_id.map(|g| Snowflake(g.get())),
            channel_id: u.channel_id.map(|c| Snowflake(c.get())),
            user_id: Snowflake(u.user_id.get()),
            session_id: u.session_id.clone(),
        })),
        Event::VoiceServerUpdate(u) => Some(GatewayEvent::VoiceServerUpdate(VoiceServerUpdate {
            guild_id: Snowflake(u.guild_id.get()),
            token: Token::new(u.token),
            endpoint: u.endpoint,
        })),
        _ => None,
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    // twilight's TLS uses rustls' process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let token = std::env::var("DISCORD_TOKEN").map_err(|_| "DISCORD_TOKEN is not set")?;
    let (guild, channel) = (Snowflake(env_id("GUILD_ID")?), Snowflake(env_id("CHANNEL_ID")?));
    let file =
        std::env::var("FILE").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/assets/sample.ogg").into());

    let mut shard = Shard::new(ShardId::ONE, token, Intents::GUILDS | Intents::GUILD_VOICE_STATES);
    let sender = shard.sender();
    // Op 4 payloads from the voice manager go out on this shard.
    let gateway = move |p: UpdateVoiceState| {
        if let Err(e) = sender.send(p.to_json()) {
            tracing::warn!(error = %e, "could not send op 4");
        }
    };
    let user_id = loop {
        match shard.next_event(EventTypeFlags::READY).await {
            Some(Ok(Event::Ready(ready))) => break ready.user.id.get(),
            Some(Ok(_)) => {}
            Some(Err(e)) => tracing::warn!(error = %e, "gateway"),
            None => return Err("gateway closed before READY".into()),
        }
    };
    let manager = Arc::new(Manager::new(Snowflake(user_id), gateway, DriverConfig::default())?);
    let voice = manager.clone();
    tokio::spawn(async move {
        let wanted = EventTypeFlags::VOICE_STATE_UPDATE | EventTypeFlags::VOICE_SERVER_UPDATE;
        while let Some(item) = shard.next_event(wanted).await {
            match item {
                Ok(event) => {
                    if let Some(e) = voice_event(event) {
                        voice.handle_gateway_event(e).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "gateway"),
            }
        }
    });

    let call = manager.join(guild, channel).await?;
    tracing::info!("connected; playing {file}");
    // Resolves once the last packet went out; leaving sends the silence trailer.
    let packets = call.play_ogg(&file).await?;
    call.leave().await?;
    tracing::info!(packets, "done");
    Ok(())
}
