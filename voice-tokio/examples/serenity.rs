//! A serenity bot: `!play` in a guild's text channel joins the caller's
//! voice channel and plays an Ogg Opus file; `!leave` leaves.
//!
//! ```text
//! DISCORD_TOKEN=... [FILE=song.ogg] cargo run -p voice-tokio --features serenity --example serenity
//! ```
//!
//! The bot needs the `GUILD_VOICE_STATES`, `GUILD_MESSAGES` and (privileged)
//! `MESSAGE_CONTENT` intents, and permission to connect and speak.

use std::time::Duration;

use serenity::all::{Context, EventHandler, GatewayIntents, Message, Ready};
use voice_tokio::serenity::SerenityInit as _;

struct Bot {
    file: String,
}

#[serenity::async_trait]
impl EventHandler for Bot {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        tracing::info!(user = %ready.user.name, "connected to Discord");
    }

    async fn message(&self, ctx: Context, msg: Message) {
        let Some(guild) = msg.guild_id else { return };
        let Some(voice) = voice_tokio::serenity::get(&ctx).await else { return };
        match msg.content.as_str() {
            "!play" => {
                // The cache's guild is not `Send`: take the channel out first.
                let channel =
                    msg.guild(&ctx.cache).and_then(|g| g.voice_states.get(&msg.author.id).and_then(|s| s.channel_id));
                let Some(channel) = channel else {
                    let _ = msg.reply(&ctx, "join a voice channel first").await;
                    return;
                };
                let call = match voice.join(guild, channel).await {
                    Ok(call) => call,
                    Err(e) => {
                        let _ = msg.reply(&ctx, format!("could not join: {e}")).await;
                        return;
                    }
                };
                // An end-to-end encrypted call sends once its group is set up.
                if call.wait_can_send(Duration::from_secs(10)).await.is_ok() {
                    match call.play_ogg(&self.file).await {
                        Ok(n) => tracing::info!(packets = n, "played"),
                        Err(e) => tracing::warn!(error = %e, "could not play"),
                    }
                }
            }
            "!leave" => {
                let _ = voice.leave(guild).await;
            }
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let token = std::env::var("DISCORD_TOKEN").map_err(|_| "DISCORD_TOKEN is not set")?;
    let file =
        std::env::var("FILE").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/assets/sample.ogg").into());
    let intents = GatewayIntents::GUILDS
        | GatewayIntents::GUILD_VOICE_STATES
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT;
    let mut client = serenity::Client::builder(token, intents).event_handler(Bot { file }).register_voice().await?;
    client.start().await?;
    Ok(())
}
