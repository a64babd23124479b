//! Voice state and voice server updates from the bot's main gateway
//! (PROTOCOL.md §1.3-1.8, §7.3).

use std::time::Instant;

use super::{State, VoiceConnection};
use crate::gateway::{GatewayEvent, VoiceServerUpdate, VoiceStateUpdate};
use crate::output::{DisconnectReason, Event, ReconnectReason};
use crate::timer::Timer;

impl VoiceConnection {
    /// Feeds a main-gateway dispatch. Updates for other users or guilds are
    /// ignored, so every `VOICE_STATE_UPDATE` can be passed in as it comes.
    pub fn handle_gateway_event(&mut self, event: GatewayEvent, now: Instant) {
        let now = self.advance(now);
        if self.state == State::Closed {
            return;
        }
        match event {
            GatewayEvent::VoiceStateUpdate(u) => self.on_voice_state(u, now),
            GatewayEvent::VoiceServerUpdate(u) => self.on_voice_server(u, now),
        }
    }

    fn on_voice_state(&mut self, u: VoiceStateUpdate, now: Instant) {
        if u.user_id != self.config.user_id || u.guild_id.is_some_and(|g| g != self.config.guild_id) {
            return;
        }
        self.info.session_id = Some(u.session_id);
        match u.channel_id {
            None => {
                self.ghost = None;
                if self.leaving || matches!(self.state, State::Idle | State::Disconnected) {
                    return;
                }
                if self.state == State::AwaitingVoiceInfo {
                    // We asked for a channel and await the answer: a null
                    // channel now is the stale answer to an earlier leave
                    // (a quick rejoin). The voice-info deadline still bounds
                    // the wait if the bot really is in no channel.
                    tracing::debug!("ignoring a null-channel voice state while joining");
                    return;
                }
                // Left, kicked, channel deleted or main session lost.
                self.channel = None;
                self.info = Default::default();
                self.disconnect(DisconnectReason::Kicked);
            }
            Some(c) if self.channel.is_none() && self.state == State::Idle => {
                // In a channel nobody asked for: let the application decide.
                self.ghost = Some(c);
                self.event(Event::GhostVoiceState { channel_id: c });
            }
            Some(c) => {
                if self.channel != Some(c) {
                    self.channel = Some(c);
                    self.event(Event::Moved { channel_id: c });
                }
                self.connect_if_ready(now);
            }
        }
    }

    fn on_voice_server(&mut self, u: VoiceServerUpdate, now: Instant) {
        if u.guild_id != self.config.guild_id || self.channel.is_none() || self.leaving {
            return;
        }
        let Some(endpoint) = u.endpoint else {
            // The voice server is gone; Discord is allocating a new one.
            self.drop_session(1000);
            self.cancel_reconnect();
            self.info.endpoint = None;
            self.info.token = Some(u.token);
            self.timers.stop(Timer::MoveWait);
            self.await_voice_info(now);
            self.event(Event::Reconnecting { reason: ReconnectReason::EndpointRemoved });
            return;
        };
        let same = self.connected_to.as_ref().is_some_and(|(e, t)| *e == endpoint && t.expose() == u.token.expose());
        let live =
            !matches!(self.state, State::Idle | State::AwaitingVoiceInfo | State::AwaitingMove | State::Disconnected);
        if same && live {
            // An exact duplicate mid-handshake or while connected.
            return;
        }
        self.info.endpoint = Some(endpoint);
        self.info.token = Some(u.token);
        match self.state {
            State::AwaitingVoiceInfo => self.connect_if_ready(now),
            State::AwaitingMove | State::Disconnected => {
                // Moved after 4014/4022 (or rejoined by the main gateway).
                self.timers.stop(Timer::MoveWait);
                self.reconnect.reset_backoff();
                self.await_voice_info(now);
                self.connect_if_ready(now);
            }
            _ => {
                // New server or token while connected or connecting: a fresh
                // connection with the new credentials, never a resume.
                self.event(Event::Reconnecting { reason: ReconnectReason::EndpointChanged });
                self.drop_session(1000);
                self.cancel_reconnect();
                self.reconnect.reset_backoff();
                self.await_voice_info(now);
                self.connect_if_ready(now);
            }
        }
    }
}
