//! serenity integration (feature `serenity`): this library as a serenity
//! client's voice manager, registered in one line.
//!
//! ```no_run
//! use serenity::all::{Context, EventHandler, GatewayIntents, Message};
//! use voice_tokio::serenity::SerenityInit as _;
//!
//! struct Bot;
//!
//! #[serenity::async_trait]
//! impl EventHandler for Bot {
//!     async fn message(&self, ctx: Context, msg: Message) {
//!         let (Some(guild), true) = (msg.guild_id, msg.content == "!play") else { return };
//!         let Some(voice) = voice_tokio::serenity::get(&ctx).await else { return };
//!         # let channel = serenity::all::ChannelId::new(2);
//!         if let Ok(call) = voice.join(guild, channel).await {
//!             let _ = call.play_ogg("song.ogg").await;
//!         }
//!     }
//! }
//!
//! # async fn run(token: String) -> Result<(), serenity::Error> {
//! let intents = GatewayIntents::GUILDS | GatewayIntents::GUILD_VOICE_STATES;
//! let mut client = serenity::Client::builder(token, intents).event_handler(Bot).register_voice().await?;
//! client.start().await
//! # }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serenity::all::{ChannelId, ClientBuilder, Context, GuildId, ShardRunnerMessage, UserId, VoiceGatewayManager};
use serenity::futures::channel::mpsc::UnboundedSender;
use serenity::model::voice::VoiceState;
use serenity::prelude::TypeMapKey;
use voice_driver::{
    Call, CallError, DriverConfig, GatewayEvent, JoinError, MainGateway, Snowflake, Token, UpdateVoiceState,
    VoiceServerUpdate, VoiceStateUpdate,
};

use crate::Manager;

/// The voice manager of a serenity client: a [`Manager`] created when the
/// client starts (serenity tells the bot's user id then), sending op 4 on
/// the shard that serves each guild.
pub struct SerenityVoice {
    config: DriverConfig,
    shards: Arc<Shards>,
    manager: OnceLock<Manager>,
}

impl core::fmt::Debug for SerenityVoice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SerenityVoice").field("manager", &self.manager.get()).finish_non_exhaustive()
    }
}

impl SerenityVoice {
    /// A voice manager with these settings; fails only when the TLS
    /// configuration cannot be built.
    pub fn new(config: DriverConfig) -> Result<Arc<Self>, JoinError> {
        // Built (and cached in the configuration) now, so that serenity's
        // start-up cannot fail on it later.
        config.tls().map_err(|e| JoinError::Tls(e.to_string()))?;
        Ok(Arc::new(SerenityVoice { config, shards: Arc::default(), manager: OnceLock::new() }))
    }

    /// The manager, once the client has started.
    pub fn manager(&self) -> Option<&Manager> {
        self.manager.get()
    }

    /// Joins `channel` of `guild` and waits until connected (see
    /// [`voice_driver::Manager::join`]). Before the client has started:
    /// [`JoinError::GatewayNotReady`].
    pub async fn join(&self, guild: GuildId, channel: ChannelId) -> Result<Call, JoinError> {
        let manager = self.manager().ok_or(JoinError::GatewayNotReady)?;
        manager.join(Snowflake(guild.get()), Snowflake(channel.get())).await
    }

    /// The call of `guild`, if there is one.
    pub fn get(&self, guild: GuildId) -> Option<Call> {
        self.manager()?.get(Snowflake(guild.get()))
    }

    /// Leaves `guild`'s channel; the call stays, ready to join again.
    pub async fn leave(&self, guild: GuildId) -> Result<(), CallError> {
        match self.manager() {
            Some(m) => m.leave(Snowflake(guild.get())).await,
            None => Ok(()),
        }
    }

    /// Leaves and stops `guild`'s call, and forgets it.
    pub async fn remove(&self, guild: GuildId) -> Result<(), CallError> {
        match self.manager() {
            Some(m) => m.remove(Snowflake(guild.get())).await,
            None => Ok(()),
        }
    }

    async fn dispatch(&self, event: GatewayEvent) {
        match self.manager() {
            Some(m) => m.handle_gateway_event(event).await,
            None => tracing::debug!("voice dispatch before the client started; dropped"),
        }
    }
}

#[serenity::async_trait]
impl VoiceGatewayManager for SerenityVoice {
    async fn initialise(&self, shard_count: u32, user_id: UserId) {
        self.shards.count.store(shard_count.max(1), Ordering::Relaxed);
        let gateway = ShardGateway(self.shards.clone());
        match Manager::new(Snowflake(user_id.get()), gateway, self.config.clone()) {
            Ok(m) => {
                // A second start of the client keeps the first manager.
                let _ = self.manager.set(m);
            }
            Err(e) => tracing::error!(error = %e, "voice manager not started"),
        }
    }

    async fn register_shard(&self, shard_id: u32, sender: UnboundedSender<ShardRunnerMessage>) {
        self.shards.register(shard_id, sender);
    }

    async fn deregister_shard(&self, shard_id: u32) {
        // serenity may register the restarted shard's sender before it
        // deregisters the old one: only a closed sender goes (a live one
        // that fails later is dropped by `send`).
        let mut t = self.shards.lock();
        if t.senders.get(&shard_id).is_some_and(UnboundedSender::is_closed) {
            t.senders.remove(&shard_id);
        }
    }

    async fn server_update(&self, guild_id: GuildId, endpoint: &Option<String>, token: &str) {
        let update = VoiceServerUpdate {
            guild_id: Snowflake(guild_id.get()),
            token: Token::new(token),
            endpoint: endpoint.clone(),
        };
        self.dispatch(GatewayEvent::VoiceServerUpdate(update)).await;
    }

    async fn state_update(&self, guild_id: GuildId, voice_state: &VoiceState) {
        let update = VoiceStateUpdate {
            guild_id: Some(Snowflake(guild_id.get())),
            channel_id: voice_state.channel_id.map(|c| Snowflake(c.get())),
            user_id: Snowflake(voice_state.user_id.get()),
            session_id: voice_state.session_id.clone(),
        };
        self.dispatch(GatewayEvent::VoiceStateUpdate(update)).await;
    }
}

/// The shards' senders, and op 4 payloads waiting for their shard (one per
/// guild: only the latest matters).
#[derive(Default)]
struct Shards {
    count: AtomicU32,
    inner: Mutex<ShardTable>,
}

#[derive(Default)]
struct ShardTable {
    senders: HashMap<u32, UnboundedSender<ShardRunnerMessage>>,
    waiting: HashMap<u32, HashMap<Snowflake, UpdateVoiceState>>,
}

impl Shards {
    fn lock(&self) -> std::sync::MutexGuard<'_, ShardTable> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, shard: u32, sender: UnboundedSender<ShardRunnerMessage>) {
        let mut t = self.lock();
        for (_, p) in t.waiting.remove(&shard).unwrap_or_default() {
            if sender.unbounded_send(ShardRunnerMessage::Message(p.to_json().into())).is_err() {
                tracing::warn!("the shard closed as it registered; op 4 not sent");
            }
        }
        t.senders.insert(shard, sender);
    }

    fn send(&self, p: UpdateVoiceState) {
        // Discord's rule for the shard of a guild.
        let shard = ((p.guild_id.0 >> 22) % u64::from(self.count.load(Ordering::Relaxed).max(1))) as u32;
        let mut t = self.lock();
        if let Some(sender) = t.senders.get(&shard) {
            match sender.unbounded_send(ShardRunnerMessage::Message(p.to_json().into())) {
                Ok(()) => return,
                Err(_) => {
                    t.senders.remove(&shard);
                }
            }
        }
        // No live sender (the shard is reconnecting): sent when it is back.
        tracing::debug!(shard, "op 4 waits for its shard");
        t.waiting.entry(shard).or_default().insert(p.guild_id, p);
    }
}

/// [`MainGateway`] over serenity's shard senders.
struct ShardGateway(Arc<Shards>);

impl MainGateway for ShardGateway {
    fn update_voice_state(&self, payload: UpdateVoiceState) {
        self.0.send(payload);
    }
}

/// The key of the voice manager in serenity's `TypeMap`.
#[derive(Debug)]
pub struct VoiceKey;

impl TypeMapKey for VoiceKey {
    type Value = Arc<SerenityVoice>;
}

/// The voice manager registered with [`SerenityInit`], from an event
/// handler's context.
pub async fn get(ctx: &Context) -> Option<Arc<SerenityVoice>> {
    ctx.data.read().await.get::<VoiceKey>().cloned()
}

/// Registers this library as a serenity client's voice manager.
pub trait SerenityInit {
    /// With the default [`DriverConfig`].
    #[must_use]
    fn register_voice(self) -> Self;
    /// With a voice manager of your own (your settings; keep a clone of
    /// the `Arc` to reach it outside event handlers).
    #[must_use]
    fn register_voice_with(self, voice: Arc<SerenityVoice>) -> Self;
}

impl SerenityInit for ClientBuilder {
    fn register_voice(self) -> Self {
        match SerenityVoice::new(DriverConfig::default()) {
            Ok(voice) => self.register_voice_with(voice),
            Err(e) => {
                tracing::error!(error = %e, "voice manager not registered");
                self
            }
        }
    }

    fn register_voice_with(self, voice: Arc<SerenityVoice>) -> Self {
        self.voice_manager_arc(voice.clone()).type_map_insert::<VoiceKey>(voice)
    }
}
