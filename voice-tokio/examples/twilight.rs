//! Joins a voice channel of a real guild through twilight-gateway and plays
//! an Ogg Opus file.
//!
//! ```text
//! DISCORD_TOKEN=... GUILD_ID=... CHANNEL_ID=... [FILE=song.ogg] \
//!     cargo run -p voice-tokio --features twilight --example twilight
//! ```
//!
//! The bot needs the `GUILD_VOICE_STATES` intent and permission to connect
//! and speak in the channel. Calls are end-to-end encrypted (DAVE) as
//! Discord requires; audio flows once someone else is in the channel.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use twilight_gateway::{Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _};
use voice_tokio::twilight::TwilightGateway;
use voice_tokio::{DriverConfig, Manager, Snowflake};

type BoxError = Box<dyn Error + Send + Sync>;

fn env_id(name: &str) -> Result<u64, BoxError> {
    Ok(std::env::var(name).map_err(|_| format!("{name} is not set"))?.parse()?)
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
    let gateway = TwilightGateway::new([shard.sender()]);
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
        while let Some(item) = shard.next_event(EventTypeFlags::all()).await {
            match item {
                Ok(event) => voice.process(&event).await,
                Err(e) => tracing::warn!(error = %e, "gateway"),
            }
        }
    });

    let call = manager.join(guild, channel).await?;
    tracing::info!("connected; waiting for someone to listen");
    call.wait_can_send(Duration::from_secs(300)).await?;
    // Resolves once the last packet went out; leaving sends the silence trailer.
    let packets = call.play_ogg(&file).await?;
    call.leave().await?;
    tracing::info!(packets, "done");
    Ok(())
}
