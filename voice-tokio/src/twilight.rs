//! twilight integration (feature `twilight`): hand every event of your
//! shards to [`Manager::process`], and give the manager a
//! [`TwilightGateway`] over the shards' senders for op 4.
//!
//! ```no_run
//! use twilight_gateway::{EventTypeFlags, Intents, Shard, ShardId, StreamExt as _};
//! use voice_tokio::twilight::TwilightGateway;
//! use voice_tokio::{DriverConfig, Manager, Snowflake};
//!
//! # async fn run(token: String, bot_user: u64) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let mut shard = Shard::new(ShardId::ONE, token, Intents::GUILDS | Intents::GUILD_VOICE_STATES);
//! let gateway = TwilightGateway::new([shard.sender()]);
//! let manager = std::sync::Arc::new(Manager::new(Snowflake(bot_user), gateway, DriverConfig::default())?);
//! let voice = manager.clone();
//! tokio::spawn(async move {
//!     while let Some(Ok(event)) = shard.next_event(EventTypeFlags::all()).await {
//!         voice.process(&event).await;
//!     }
//! });
//! let call = manager.join(Snowflake(1), Snowflake(2)).await?;
//! call.play_ogg("song.ogg").await?;
//! # Ok(()) }
//! ```

use twilight_gateway::{Event, MessageSender};
use twilight_model::gateway::payload::outgoing::UpdateVoiceState as TwilightUpdateVoiceState;
use twilight_model::id::Id;
use voice_driver::{
    GatewayEvent, MainGateway, Snowflake, Token, UpdateVoiceState, VoiceServerUpdate, VoiceStateUpdate,
};

use crate::Manager;

impl Manager {
    /// Feeds a twilight event: the voice dispatches go to their calls,
    /// every other event is ignored, so every event of every shard may be
    /// passed here.
    pub async fn process(&self, event: &Event) {
        if let Some(e) = gateway_event(event) {
            self.handle_gateway_event(e).await;
        }
    }
}

/// A twilight voice dispatch in this library's terms; `None` for any other
/// event.
pub fn gateway_event(event: &Event) -> Option<GatewayEvent> {
    match event {
        Event::VoiceStateUpdate(u) => Some(GatewayEvent::VoiceStateUpdate(VoiceStateUpdate {
            guild_id: u.guild_id.map(|g| Snowflake(g.get())),
            channel_id: u.channel_id.map(|c| Snowflake(c.get())),
            user_id: Snowflake(u.user_id.get()),
            session_id: u.session_id.clone(),
        })),
        Event::VoiceServerUpdate(u) => Some(GatewayEvent::VoiceServerUpdate(VoiceServerUpdate {
            guild_id: Snowflake(u.guild_id.get()),
            token: Token::new(u.token.clone()),
            endpoint: u.endpoint.clone(),
        })),
        _ => None,
    }
}

/// An op 4 payload as twilight's command; `None` for a zero guild id,
/// which no guild has.
pub fn update_voice_state(p: &UpdateVoiceState) -> Option<TwilightUpdateVoiceState> {
    let guild = Id::new_checked(p.guild_id.0)?;
    let channel = p.channel_id.and_then(|c| Id::new_checked(c.0));
    Some(TwilightUpdateVoiceState::new(guild, channel, p.self_deaf, p.self_mute))
}

/// The main gateway of a twilight bot: op 4 goes out on the shard that
/// serves the guild (`(guild_id >> 22) % shards`, Discord's rule), through
/// that shard's [`MessageSender`].
#[derive(Debug, Clone)]
pub struct TwilightGateway {
    senders: Vec<MessageSender>,
}

impl TwilightGateway {
    /// The senders of every shard, in shard-number order (one for an
    /// unsharded bot).
    pub fn new(senders: impl IntoIterator<Item = MessageSender>) -> Self {
        TwilightGateway { senders: senders.into_iter().collect() }
    }

    /// The sender of the shard that serves `guild`.
    fn shard_for(&self, guild: Snowflake) -> Option<&MessageSender> {
        let n = self.senders.len() as u64;
        if n == 0 {
            return None;
        }
        self.senders.get(((guild.0 >> 22) % n) as usize)
    }
}

impl MainGateway for TwilightGateway {
    fn update_voice_state(&self, payload: UpdateVoiceState) {
        let (Some(sender), Some(command)) = (self.shard_for(payload.guild_id), update_voice_state(&payload)) else {
            tracing::warn!(guild = %payload.guild_id, "no shard for the guild; op 4 not sent");
            return;
        };
        if let Err(e) = sender.command(&command) {
            tracing::warn!(error = %e, "the shard is gone; op 4 not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn op4_becomes_twilights_command_with_the_same_json() {
        let ours = UpdateVoiceState {
            guild_id: Snowflake(41771983423143937),
            channel_id: Some(Snowflake(127121515262115840)),
            self_mute: true,
            self_deaf: false,
        };
        let theirs = update_voice_state(&ours).unwrap();
        let a: serde_json::Value = serde_json::from_str(&ours.to_json()).unwrap();
        let b = serde_json::to_value(&theirs).unwrap();
        assert_eq!(a["op"], b["op"]);
        for field in ["guild_id", "channel_id", "self_mute", "self_deaf"] {
            assert_eq!(a["d"][field], b["d"][field], "{field}");
        }
        let leave = UpdateVoiceState { channel_id: None, ..ours };
        assert!(serde_json::to_value(update_voice_state(&leave).unwrap()).unwrap()["d"]["channel_id"].is_null());
        assert!(update_voice_state(&UpdateVoiceState { guild_id: Snowflake(0), ..ours }).is_none());
    }
}
