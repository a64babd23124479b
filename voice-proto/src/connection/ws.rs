//! The voice websocket as the connection routes it: the socket's
//! lifecycle and messages go to the session, the handshake (Identify or
//! Resume, Ready, IP discovery, Select Protocol, Session Description) is
//! carried out here, and the other messages of PROTOCOL.md §2 go to the
//! sub-machine they concern.

use std::time::Instant;

use super::reconnect::Pending;
use super::send::MediaSend;
use super::session::HeartbeatDue;
use super::udp_path::UdpPath;
use super::{State, VoiceConnection};
use crate::error::{Misuse, WsError};
use crate::output::{DisconnectReason, Event, ReconnectReason};
use crate::timer::Timer;
use crate::wire::{
    DaveBinary, Heartbeat as HeartbeatMsg, Identify, Message, Ready, Resume, SelectProtocol, SelectProtocolData,
    SessionDescription, Speaking, WireError, WsMessage,
};

impl VoiceConnection {
    /// The websocket asked for by `ConnectWs` is open: Identify or Resume
    /// goes out at once.
    pub fn handle_ws_open(&mut self, now: Instant) {
        let now = self.advance(now);
        let Some(resume) = self.session.opened() else {
            return;
        };
        self.timers.stop(Timer::WsOpen);
        self.timers.set(Timer::Handshake, now + self.config.handshake_timeout);
        let (Some(session_id), Some(token)) = (self.info.session_id.clone(), self.info.token.clone()) else {
            // Credentials were withdrawn meanwhile; wait for new ones.
            self.drop_ws(1000);
            self.await_voice_info(now);
            return;
        };
        let server_id = self.config.guild_id;
        if resume {
            self.send_message(&Message::Resume(Resume {
                server_id,
                session_id,
                token,
                seq_ack: self.session.seq_ack(),
            }));
        } else {
            let max = self.config.max_dave_protocol_version;
            // Sent on every gateway version: DAVE clients on v4 (songbird)
            // offer it too.
            let identify = Identify {
                server_id,
                user_id: self.config.user_id,
                session_id,
                token,
                max_dave_protocol_version: Some(max),
            };
            self.send_message(&Message::Identify(identify));
            self.state = State::Identifying;
        }
    }

    /// The websocket closed (`code` is `None` when no close frame came).
    /// Not to be called for a socket the connection itself closed.
    pub fn handle_ws_close(&mut self, code: Option<u16>, now: Instant) {
        let now = self.advance(now);
        if self.session.is_closed() || self.state == State::Closed {
            return;
        }
        tracing::info!(?code, "voice websocket closed");
        self.on_ws_closed(code, now);
    }

    /// A websocket message arrived. A malformed one is an error for that
    /// message only.
    pub fn handle_ws_message(&mut self, msg: WsMessage<'_>, now: Instant) -> Result<(), WsError> {
        let now = self.advance(now);
        if self.state == State::Closed {
            return Err(Misuse::Closed.into());
        }
        if !self.session.is_open() {
            return Err(Misuse::WsNotOpen.into());
        }
        self.stats.ws_frames_received += 1;
        let len = msg.len();
        if len > self.config.max_frame_len {
            self.stats.malformed_frames += 1;
            return Err(WireError::TooLarge(len).into());
        }
        match msg {
            WsMessage::Text(text) => {
                let frame = Message::parse(text).inspect_err(|_| self.stats.malformed_frames += 1)?;
                if let Some(seq) = frame.seq {
                    self.session.on_seq(seq);
                }
                self.on_message(frame.message, now)
            }
            WsMessage::Binary(bytes) => {
                let (seq, dave) = DaveBinary::parse_server_for(self.config.gateway_version, bytes)
                    .inspect_err(|_| self.stats.malformed_frames += 1)?;
                if let Some(seq) = seq {
                    self.session.on_binary_seq(seq);
                }
                if self.config.max_dave_protocol_version == 0 {
                    self.stats.ignored_frames += 1;
                    return Ok(());
                }
                self.transform.dave_mut().handle_binary(dave, now, &mut self.stats.dave);
                self.drain_dave(now);
                Ok(())
            }
        }
    }

    fn on_message(&mut self, m: Message, now: Instant) -> Result<(), WsError> {
        match m {
            Message::Hello(h) => {
                let at = self.session.on_hello(h.heartbeat_interval, now);
                self.timers.set(Timer::Heartbeat, at);
                self.finish_handshake_if_done();
            }
            Message::HeartbeatAck(a) => {
                if let Some(rtt) = self.session.on_ack(a.nonce, now) {
                    self.stats.heartbeat_acks += 1;
                    self.stats.heartbeat_rtt = rtt;
                    if self.state == State::Connected {
                        // The session has proved healthy: reconnects start
                        // from the short end of the backoff again. (Resetting
                        // on every connect would let a server that accepts
                        // and drops the call at once keep us in a tight loop.)
                        self.reconnect.reset_backoff();
                    }
                } else {
                    self.stats.stray_acks += 1;
                }
            }
            Message::Ready(r) => return self.on_ready(r, now),
            Message::SessionDescription(sd) => return self.on_session_description(sd, now),
            Message::Resumed => {
                if self.state != State::Resuming {
                    return Err(WsError::Unexpected("Resumed while not resuming"));
                }
                self.state = State::Connected;
                self.finish_handshake_if_done();
                if let Some(sender) = self.sender.as_mut() {
                    // The next frame announces Speaking again.
                    sender.on_resumed();
                }
                self.event(Event::Resumed);
            }
            Message::Speaking(s) => self.on_speaking(s),
            Message::ClientsConnect(c) => {
                self.transform.dave_mut().recognise(&c.user_ids);
                self.event(Event::ClientsConnected { user_ids: c.user_ids });
            }
            Message::ClientDisconnect(c) => {
                self.users.remove_user(c.user_id);
                self.reception.prune(&self.users);
                self.transform.dave_mut().forget(c.user_id);
                self.event(Event::ClientDisconnected { user_id: c.user_id });
            }
            m @ (Message::DavePrepareTransition(_)
            | Message::DaveExecuteTransition(_)
            | Message::DavePrepareEpoch(_)) => {
                if self.config.max_dave_protocol_version == 0 {
                    // DAVE is not offered: its messages are not ours.
                    self.stats.ignored_frames += 1;
                    return Ok(());
                }
                self.transform.dave_mut().handle_message(&m, now, &mut self.stats.dave);
                self.drain_dave(now);
            }
            _ => {
                // Unknown and client-only opcodes.
                self.stats.ignored_frames += 1;
            }
        }
        Ok(())
    }

    fn on_speaking(&mut self, s: Speaking) {
        let Some(user_id) = s.user_id else { return };
        if self.users.insert(s.ssrc, user_id) {
            self.stats.users_dropped += 1;
        }
        self.reception.expect_source(s.ssrc, user_id, self.config.max_users);
        self.event(Event::Speaking { user_id, ssrc: s.ssrc, flags: s.speaking });
        self.release_unnamed(s.ssrc, self.now);
    }

    fn on_ready(&mut self, r: Ready, now: Instant) -> Result<(), WsError> {
        if self.state != State::Identifying {
            return Err(WsError::Unexpected("Ready outside the handshake"));
        }
        let Some(mode) = voice_rtp::Mode::select(r.modes.iter().map(String::as_str), &self.config.modes) else {
            tracing::warn!(modes = ?r.modes, "no common encryption mode");
            self.disconnect(DisconnectReason::NoCommonMode);
            return Ok(());
        };
        // An address nothing can be sent to (unparsable, unspecified, or
        // port 0) is a bad Ready, not a socket error later.
        let ip = r.ip.parse::<std::net::IpAddr>().ok().filter(|ip| !ip.is_unspecified() && !ip.is_multicast());
        let Some(ip) = ip.filter(|_| r.port != 0) else {
            self.fail(now, ReconnectReason::BadReady, Pending::Reidentify);
            return Ok(());
        };
        self.path = Some(UdpPath::new(r.ssrc, std::net::SocketAddr::new(ip, r.port), mode));
        self.sender = None;
        self.state = State::Discovering;
        self.send_discovery(now);
        self.send_keepalive(now);
        Ok(())
    }

    /// IP discovery answered: select the protocol.
    pub(crate) fn select_protocol(&mut self, address: String, port: u16) {
        let Some(path) = self.path.as_ref() else {
            return;
        };
        let data = SelectProtocolData { address, port, mode: path.mode().as_str().to_owned() };
        self.timers.stop(Timer::Discovery);
        self.send_message(&Message::SelectProtocol(SelectProtocol { protocol: "udp".into(), data }));
        self.state = State::SelectingProtocol;
    }

    fn on_session_description(&mut self, sd: SessionDescription, now: Instant) -> Result<(), WsError> {
        if self.state != State::SelectingProtocol {
            return Err(WsError::Unexpected("Session Description outside the handshake"));
        }
        let Some(mode) = voice_rtp::Mode::from_name(&sd.mode).filter(|m| self.config.modes.contains(m)) else {
            // Retrying would get the same answer.
            tracing::warn!(mode = %sd.mode, "Session Description with a mode we cannot use");
            self.disconnect(crate::DisconnectReason::NoCommonMode);
            return Err(WsError::Unexpected("Session Description with a mode not offered"));
        };
        if self.path.as_ref().is_some_and(|p| p.mode() != mode) {
            tracing::warn!(selected = ?self.path.as_ref().map(UdpPath::mode), given = %mode, "server chose another mode; using it");
        }
        let (seq, ts, nonce) = (self.rng.u16(..), self.rng.u32(..), self.rng.u32(..));
        let seq = self.config.initial_sequence.unwrap_or(seq);
        let ts = self.config.initial_timestamp.unwrap_or(ts);
        let Some(path) = self.path.as_mut() else {
            return Err(WsError::Unexpected("no Ready before Session Description"));
        };
        path.set_mode(mode);
        let ssrc = path.ssrc();
        self.sender = Some(MediaSend::new(mode, &sd.secret_key, seq, ts, nonce));
        self.start_reports(now);
        self.state = State::Connected;
        self.policy.on_established();
        self.finish_handshake_if_done();
        let dave_protocol_version = sd.dave_protocol_version;
        self.event(Event::Connected { mode, ssrc, dave_protocol_version });
        let channel = self.channel.unwrap_or_else(|| {
            tracing::warn!("session established without a known channel; DAVE group ids will not match");
            crate::wire::Snowflake(0)
        });
        self.transform.dave_mut().start(dave_protocol_version, channel, &mut self.stats.dave);
        self.drain_dave(now);
        Ok(())
    }

    /// The handshake deadline ends only once the session is up *and* Hello
    /// started the heartbeat; without Hello a dead socket would go unnoticed.
    fn finish_handshake_if_done(&mut self) {
        if self.state == State::Connected && self.session.has_heartbeat() {
            self.timers.stop(Timer::Handshake);
        }
    }

    pub(crate) fn on_heartbeat_timer(&mut self, now: Instant) {
        let base = self.unix_ms(now);
        match self.session.on_heartbeat_timer(now, base) {
            Some(HeartbeatDue::Send { nonce, seq_ack, next }) => {
                self.timers.set(Timer::Heartbeat, next);
                self.stats.heartbeats_sent += 1;
                self.send_message(&Message::Heartbeat(HeartbeatMsg { nonce, seq_ack }));
            }
            Some(HeartbeatDue::Zombie) => {
                self.stats.zombie_closes += 1;
                tracing::warn!("heartbeat not acknowledged; resuming");
                self.fail(now, ReconnectReason::ZombieConnection, Pending::Resume);
            }
            Some(HeartbeatDue::Wait { next }) => self.timers.set(Timer::Heartbeat, next),
            None => {}
        }
    }
}
