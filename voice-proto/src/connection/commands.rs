//! What the application asks: join, move, leave, mute, close, ghosts.

use std::time::Instant;

use super::{State, VoiceConnection};
use crate::gateway::UpdateVoiceState;
use crate::output::{DisconnectReason, Event, Output};
use crate::timer::Timer;
use crate::wire::Snowflake;

impl VoiceConnection {
    fn op4(&mut self, channel_id: Option<Snowflake>) {
        let p = UpdateVoiceState {
            guild_id: self.config.guild_id,
            channel_id,
            self_mute: self.config.self_mute,
            self_deaf: self.config.self_deaf,
        };
        self.push(Output::GatewaySend(p));
    }

    /// Sends op 4 for `channel` and waits for the main gateway's answer.
    ///
    /// From idle this joins; while connected elsewhere in the guild it moves
    /// (the main gateway's updates then drive a fresh connection).
    pub fn join(&mut self, channel: Snowflake, now: Instant) {
        let now = self.advance(now);
        if self.state == State::Closed {
            return;
        }
        self.ghost = None;
        // After a 4014/4022 a join asks the main gateway again (§1.8).
        let idle = matches!(self.state, State::Idle | State::Disconnected | State::AwaitingMove);
        if self.channel == Some(channel) && !idle && !self.leaving {
            // Already joining or in this channel.
            return;
        }
        self.leaving = false;
        self.channel = Some(channel);
        self.op4(Some(channel));
        if idle || self.state == State::AwaitingVoiceInfo {
            self.reconnect.reset_backoff();
            self.timers.stop(Timer::MoveWait);
            self.await_voice_info(now);
        }
        // Otherwise a session exists: this is a move, and the main gateway's
        // updates drive a fresh connection to the new channel.
    }

    /// Sends op 4 again for the current channel, for fresh credentials.
    pub(crate) fn request_fresh_credentials(&mut self, now: Instant) {
        self.op4(self.channel);
        self.await_voice_info(now);
    }

    pub(crate) fn await_voice_info(&mut self, now: Instant) {
        self.state = State::AwaitingVoiceInfo;
        self.timers.set(Timer::VoiceInfo, now + self.config.voice_info_timeout);
    }

    /// Leaves the channel: five silence frames if audio was flowing, then op
    /// 4 with a null channel and a 1000 close. Ends with
    /// `Event::Disconnected { reason: Requested }`.
    pub fn leave(&mut self, now: Instant) {
        let now = self.advance(now);
        if matches!(self.state, State::Closed) || self.leaving {
            return;
        }
        self.leaving = true;
        if !self.start_silence_trailer(now) {
            self.finish_leave();
        }
    }

    pub(crate) fn finish_leave(&mut self) {
        if self.channel.is_some() || self.state != State::Idle {
            self.op4(None);
        }
        self.drop_session(1000);
        self.channel = None;
        self.info = Default::default();
        self.timers.stop_all();
        self.reconnect.cancel();
        self.leaving = false;
        self.state = State::Idle;
        self.event(Event::Disconnected { reason: DisconnectReason::Requested });
        if self.closing {
            self.state = State::Closed;
            self.event(Event::Closed);
        }
    }

    /// Orderly shutdown: leaves if in a channel, then emits `Event::Closed`
    /// (the event an application awaits); the connection is inert after.
    pub fn close(&mut self, now: Instant) {
        let now = self.advance(now);
        if self.state == State::Closed || self.closing {
            return;
        }
        self.closing = true;
        if self.channel.is_some() || !matches!(self.state, State::Idle | State::Disconnected) {
            self.leave(now);
        } else {
            self.timers.stop_all();
            self.drop_session(1000);
            self.state = State::Closed;
            self.event(Event::Closed);
        }
    }

    /// Changes self-mute and self-deafen (sent as op 4 when in a channel).
    pub fn set_mute_deaf(&mut self, self_mute: bool, self_deaf: bool, now: Instant) {
        self.advance(now);
        self.config.self_mute = self_mute;
        self.config.self_deaf = self_deaf;
        // Only in a live call: after a final close an op 4 with the channel
        // would rejoin, which the application did not ask for.
        let live = !matches!(self.state, State::Idle | State::Disconnected | State::Closed);
        if let Some(c) = self.channel.filter(|_| live && !self.leaving) {
            self.op4(Some(c));
        }
    }

    /// Adopts the voice state reported by `Event::GhostVoiceState`: joins its
    /// channel for fresh credentials.
    pub fn adopt_ghost(&mut self, now: Instant) {
        if let Some(c) = self.ghost.take() {
            self.join(c, now);
        }
    }

    /// Drops the voice state reported by `Event::GhostVoiceState`: op 4 with
    /// a null channel.
    pub fn drop_ghost(&mut self, now: Instant) {
        self.advance(now);
        if self.ghost.take().is_some() {
            self.op4(None);
        }
    }

    pub(crate) fn disconnect(&mut self, reason: DisconnectReason) {
        if self.leaving {
            return self.finish_leave();
        }
        self.drop_session(1000);
        self.timers.stop_all();
        self.reconnect.cancel();
        self.state = State::Disconnected;
        self.event(Event::Disconnected { reason });
    }
}
