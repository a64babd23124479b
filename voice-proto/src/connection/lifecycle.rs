//! Connecting, resuming, reconnecting and giving up.

use std::time::Instant;

use super::reconnect::Pending;
use super::{State, VoiceConnection};
use crate::close_code::CloseAction;
use crate::gateway::WsTarget;
use crate::output::{DisconnectReason, Event, Output, ReconnectReason};
use crate::timer::Timer;

impl VoiceConnection {
    /// Closes the websocket (if any) and forgets its heartbeat.
    pub(crate) fn drop_ws(&mut self, code: u16) {
        if self.session.close() {
            self.push(Output::CloseWs { code });
        }
        for t in [Timer::Heartbeat, Timer::WsOpen, Timer::Handshake] {
            self.timers.stop(t);
        }
    }

    /// Drops the websocket and the voice server session (UDP state, keys).
    pub(crate) fn drop_session(&mut self, code: u16) {
        self.drop_ws(code);
        self.forget_server_session();
        self.connected_to = None;
        self.users.clear();
        self.unnamed.clear(&mut self.stats);
        for t in [
            Timer::Discovery,
            Timer::Keepalive,
            Timer::Silence,
            Timer::SpeakingIdle,
            Timer::DaveHold,
            Timer::RtcpReport,
        ] {
            self.timers.stop(t);
        }
    }

    /// Forgets what one voice server session set up: the UDP path, the
    /// keys, the sequence numbering and DAVE (a fresh connection starts
    /// over).
    fn forget_server_session(&mut self) {
        self.path = None;
        self.sender = None;
        self.session.forget_seq();
        self.reset_dave();
    }

    /// Opens a websocket to the current endpoint, to identify or resume.
    pub(crate) fn start_ws(&mut self, now: Instant, resume: bool) {
        let Some(endpoint) = self.info.endpoint.clone() else {
            // Credentials vanished (null endpoint): wait for new ones.
            self.await_voice_info(now);
            return;
        };
        // The contract: any socket from before is closed before ConnectWs.
        self.drop_ws(if resume { 4000 } else { 1000 });
        if !resume {
            self.forget_server_session();
            self.connected_to = self.info.token.clone().map(|t| (endpoint.clone(), t));
        }
        let target = WsTarget::from_endpoint(&endpoint, self.config.gateway_version, self.config.plain_ws);
        self.push(Output::ConnectWs(target));
        self.session.open(resume);
        self.state = if resume { State::Resuming } else { State::Connecting };
        self.timers.set(Timer::WsOpen, now + self.config.ws_open_timeout);
        if resume {
            self.stats.resumes += 1;
        }
    }

    /// Connects when the session id, token and endpoint are all known.
    pub(crate) fn connect_if_ready(&mut self, now: Instant) {
        if self.state != State::AwaitingVoiceInfo || !self.info.complete() {
            return;
        }
        self.timers.stop(Timer::VoiceInfo);
        self.start_ws(now, false);
    }

    /// The connection broke: schedule `pending` after a backoff, or give up.
    ///
    /// `Pending::Resume` falls back to identifying again when no session was
    /// established yet.
    pub(crate) fn fail(&mut self, now: Instant, reason: ReconnectReason, mut pending: Pending) {
        if self.leaving {
            // The leave was under way: finish it instead of reconnecting.
            return self.finish_leave();
        }
        tracing::info!(?reason, ?pending, "voice connection lost");
        let established = self.sender.is_some();
        if pending == Pending::Resume && !established {
            pending = Pending::Reidentify;
        }
        // Abandon the socket with a non-1000 code so the session stays resumable.
        self.drop_ws(4000);
        if pending != Pending::Resume {
            self.drop_session(4000);
        }
        let Some(delay) = self.reconnect.schedule(pending, self.config.max_reconnect_attempts, &mut self.rng) else {
            self.disconnect(DisconnectReason::ReconnectFailed);
            return;
        };
        self.event(Event::Reconnecting { reason });
        if pending != Pending::Resume {
            self.stats.reconnects += 1;
        }
        self.state = State::Reconnecting;
        if delay.is_zero() {
            self.on_reconnect_timer(now);
        } else {
            self.timers.set(Timer::Reconnect, now + delay);
        }
    }

    /// Forgets a scheduled reconnect (new credentials superseded it).
    pub(crate) fn cancel_reconnect(&mut self) {
        self.reconnect.cancel();
        self.timers.stop(Timer::Reconnect);
    }

    pub(crate) fn on_reconnect_timer(&mut self, now: Instant) {
        self.timers.stop(Timer::Reconnect);
        match self.reconnect.take(self.sender.is_some()) {
            Some(Pending::Resume) => self.start_ws(now, true),
            Some(Pending::Reidentify) => self.start_ws(now, false),
            Some(Pending::Fresh) => {
                self.info.token = None;
                self.info.endpoint = None;
                self.request_fresh_credentials(now);
            }
            None => {}
        }
    }

    /// The websocket closed with `code` (`None`: no close frame).
    pub(crate) fn on_ws_closed(&mut self, code: Option<u16>, now: Instant) {
        self.session.close();
        if self.leaving {
            return self.finish_leave();
        }
        let reason = ReconnectReason::Closed(code);
        let resuming = self.state == State::Resuming;
        match self.policy.on_close(code) {
            // A resume that fails by another abnormal close may be retried
            // (the attempt limit bounds it); 4006 lands in Fresh below.
            CloseAction::Resume => self.fail(now, reason, Pending::Resume),
            CloseAction::Fresh => {
                if resuming {
                    tracing::info!("resume refused; starting a fresh connection");
                }
                self.fail(now, reason, Pending::Fresh)
            }
            CloseAction::AwaitMainGateway => {
                self.drop_session(1000);
                self.info.token = None;
                self.info.endpoint = None;
                self.reconnect.await_move(code.unwrap_or(4014));
                self.state = State::AwaitingMove;
                self.timers.set(Timer::MoveWait, now + self.config.move_wait);
                self.event(Event::Reconnecting { reason });
            }
            CloseAction::Final(r) => self.disconnect(r.into()),
        }
    }

    pub(crate) fn on_move_wait_timeout(&mut self, _now: Instant) {
        if self.state == State::AwaitingMove {
            self.disconnect(DisconnectReason::CallTerminated(self.reconnect.move_code()));
        }
    }

    /// The websocket did not open, or the handshake did not finish, in
    /// time: the close policy says what follows.
    pub(crate) fn on_handshake_timeout(&mut self, now: Instant, reason: ReconnectReason) {
        let pending = match self.policy.on_handshake_timeout(self.state == State::Resuming) {
            CloseAction::Fresh => Pending::Fresh,
            _ => Pending::Resume,
        };
        self.fail(now, reason, pending);
    }

    pub(crate) fn on_voice_info_timeout(&mut self, _now: Instant) {
        if self.state == State::AwaitingVoiceInfo {
            self.disconnect(DisconnectReason::VoiceInfoTimeout);
        }
    }
}
