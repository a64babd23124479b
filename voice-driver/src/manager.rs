//! [`Manager`]: one [`Call`] per guild, and the link to the application's
//! main gateway; [`connect`] for driver-only use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use voice_proto::wire::Snowflake;
use voice_proto::{ConnectionInfo, GatewayEvent, VoiceConnection};

use crate::call::{Call, CallState, FrameSink};
use crate::call_shared::{CallShared, UDP_BIND, Udp};
use crate::config::DriverConfig;
use crate::core::{AudioOut, CallCore, Channels};
use crate::error::{CallError, JoinError};
use crate::gateway::{MainGateway, NoGateway};
use crate::queue;
use crate::runtime::Runtime;
use crate::task::{CallTask, TaskIo};

fn spawn_call(
    runtime: &Arc<dyn Runtime>,
    guild: Snowflake,
    user: Snowflake,
    config: &DriverConfig,
    gateway: Arc<dyn MainGateway>,
    tls: Arc<rustls::ClientConfig>,
) -> std::io::Result<Call> {
    let mut proto = config.proto.clone();
    proto.guild_id = guild;
    proto.user_id = user;
    // RTP sequence, timestamp and nonce start values must be unpredictable
    // across restarts: mix in per-process randomness from the OS.
    proto.seed ^= os_random() ^ guild.get().rotate_left(17) ^ user.get();
    if proto.unix_ms_at_start == 0 {
        // The wall clock, for heartbeat nonces and RTCP's NTP timestamps.
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        proto.unix_ms_at_start = u64::try_from(unix.as_millis()).unwrap_or(0);
    }
    let conn = VoiceConnection::new(proto, runtime.now());
    let (cmd_tx, cmd_rx) = queue::bounded(16);
    let (frame_tx, frame_rx) = queue::bounded(config.frame_capacity);
    let (event_tx, event_rx) = queue::bounded(config.event_capacity);
    let audio = Arc::new(AudioOut::new(config.receive_capacity));
    let (state_tx, state_rx) = watch::channel(CallState::new());
    let ch = Channels { frames: frame_rx, events: event_tx, audio: audio.clone(), state: state_tx };
    let io = TaskIo {
        runtime: runtime.clone(),
        gateway,
        tls,
        connects: config.connect_limit(),
        ws_timeout: config.ws_connect_timeout,
        wheel: config.send_wheel.then(|| config.wheel(runtime)),
    };
    // The wheel receives the call's datagrams where it can (its own socket,
    // off the runtime's reactor); otherwise the call's task does.
    let shared = match io.wheel.as_ref().and_then(|w| w.receive_socket()) {
        Some((socket, key)) => {
            let shared = Arc::new(CallShared::new(CallCore::new(conn, ch), Udp::Wheel(socket)));
            if let Some(w) = &io.wheel {
                w.fill_receiver(key, &shared);
            }
            shared
        }
        None => Arc::new(CallShared::new(CallCore::new(conn, ch), Udp::Runtime(runtime.bind_udp(UDP_BIND)?))),
    };
    // Everything the call's task logs is in this span; channel and session
    // are filled in at each connection attempt. No token or key goes in.
    let span = tracing::info_span!(
        "voice_call",
        guild = %guild,
        user = %user,
        channel = tracing::field::Empty,
        session = tracing::field::Empty,
    );
    let task = CallTask::new(shared, io, cmd_rx, span.clone());
    runtime.spawn(Box::pin(tracing::Instrument::instrument(task.run(), span)));
    Ok(Call {
        runtime: runtime.clone(),
        guild_id: guild,
        commands: cmd_tx,
        state: state_rx,
        frames: FrameSink::new(frame_tx),
        events: Arc::new(Mutex::new(Some(event_rx))),
        audio,
    })
}

/// 64 random bits seeded by the OS (through std's hasher keys), without a
/// dependency for it.
fn os_random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

/// Voice calls of one bot, by guild.
pub struct Manager {
    runtime: Arc<dyn Runtime>,
    user_id: Snowflake,
    gateway: Arc<dyn MainGateway>,
    config: DriverConfig,
    tls: Arc<rustls::ClientConfig>,
    calls: Mutex<HashMap<Snowflake, Call>>,
}

impl core::fmt::Debug for Manager {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Manager").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

impl Manager {
    /// A manager for the bot `user_id` whose calls run on `runtime`,
    /// sending op 4 through `gateway`.
    pub fn new(
        runtime: Arc<dyn Runtime>,
        user_id: Snowflake,
        gateway: impl MainGateway,
        config: DriverConfig,
    ) -> Result<Self, JoinError> {
        let tls = config.tls().map_err(|e| JoinError::Tls(e.to_string()))?;
        let gateway = Arc::new(gateway);
        Ok(Manager { runtime, user_id, gateway, config, tls, calls: Mutex::new(HashMap::new()) })
    }

    /// The call of `guild`, if one exists.
    pub fn get(&self, guild: Snowflake) -> Option<Call> {
        self.calls.lock().ok()?.get(&guild).cloned()
    }

    /// The call of `guild`, created (its driver task spawned) if needed; a
    /// call that was closed is replaced by a new one.
    pub async fn call(&self, guild: Snowflake) -> std::io::Result<Call> {
        if let Some(c) = self.get(guild).filter(|c| c.is_alive()) {
            return Ok(c);
        }
        let mut calls = self.calls.lock().map_err(|_| std::io::Error::other("call table poisoned"))?;
        if let Some(c) = calls.get(&guild).filter(|c| c.is_alive()) {
            return Ok(c.clone());
        }
        let (gateway, tls) = (self.gateway.clone(), self.tls.clone());
        let call = spawn_call(&self.runtime, guild, self.user_id, &self.config, gateway, tls)?;
        calls.insert(guild, call.clone());
        Ok(call)
    }

    /// Joins `channel` of `guild` (op 4 through the main gateway) and waits
    /// until the call is connected, or fails with a typed error after the
    /// configured join timeout. Never hangs.
    pub async fn join(&self, guild: Snowflake, channel: Snowflake) -> Result<Call, JoinError> {
        let call = self.call(guild).await.map_err(|e| JoinError::Io(e.to_string()))?;
        call.join(channel).await.map_err(|_| JoinError::DriverGone)?;
        match call.wait_connected(channel, self.config.join_timeout).await {
            Err(JoinError::Unreachable(f)) if f.is_permanent() => {
                // Retrying cannot help: stop, and leave the channel Discord
                // shows the bot in.
                let _ = call.leave().await;
                Err(JoinError::Unreachable(f))
            }
            other => other.map(|()| call),
        }
    }

    /// Leaves `guild`'s channel (the call stays, ready to join again).
    pub async fn leave(&self, guild: Snowflake) -> Result<(), CallError> {
        match self.get(guild) {
            Some(c) => c.leave().await,
            None => Ok(()),
        }
    }

    /// Leaves and stops `guild`'s call, and forgets it.
    pub async fn remove(&self, guild: Snowflake) -> Result<(), CallError> {
        let call = self.calls.lock().ok().and_then(|mut c| c.remove(&guild));
        match call {
            Some(c) => c.close().await,
            None => Ok(()),
        }
    }

    /// Routes a main-gateway voice dispatch to its guild's call. Feed every
    /// `VOICE_STATE_UPDATE` and `VOICE_SERVER_UPDATE` here: other users'
    /// states are dropped at once. The bot's own voice state in a guild with
    /// no call yet (found at start-up) creates the call, whose events then
    /// report it as `Event::GhostVoiceState` for the application to adopt or
    /// drop.
    pub async fn handle_gateway_event(&self, event: GatewayEvent) {
        let call = match &event {
            GatewayEvent::VoiceStateUpdate(u) if u.user_id != self.user_id => return,
            GatewayEvent::VoiceStateUpdate(u) => match u.guild_id {
                Some(g) if u.channel_id.is_some() => self.call(g).await.ok(),
                Some(g) => self.get(g),
                None => None,
            },
            GatewayEvent::VoiceServerUpdate(u) => self.get(u.guild_id),
            _ => None,
        };
        let Some(call) = call else { return };
        if call.handle_gateway_event(event).await.is_err() {
            tracing::debug!("voice dispatch for a stopped call");
        }
    }
}

/// Connects with credentials in hand, without a main gateway (for bot
/// frameworks and audio nodes that run their own). Resolves when connected.
///
/// A reconnect that needs fresh credentials (after 4006, say) cannot get
/// them by itself here: feed the next voice state and server updates with
/// [`Call::handle_gateway_event`].
///
/// Calls made from clones of one [`DriverConfig`] share its TLS
/// configuration (built once) and its limit on handshakes in flight.
pub async fn connect(runtime: Arc<dyn Runtime>, info: ConnectionInfo, config: DriverConfig) -> Result<Call, JoinError> {
    let tls = config.tls().map_err(|e| JoinError::Tls(e.to_string()))?;
    let call = spawn_call(&runtime, info.guild_id, info.user_id, &config, Arc::new(NoGateway), tls)
        .map_err(|e| JoinError::Io(e.to_string()))?;
    call.join(info.channel_id).await.map_err(|_| JoinError::DriverGone)?;
    for event in info.gateway_events() {
        call.handle_gateway_event(event).await.map_err(|_| JoinError::DriverGone)?;
    }
    call.wait_connected(info.channel_id, config.join_timeout).await?;
    Ok(call)
}
