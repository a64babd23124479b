//! The voice websocket: handshake, heartbeats, sequence tracking and the
//! messages of PROTOCOL.md §2.

use std::time::Instant;

use super::{Link, State, VoiceConnection, Ws};
use crate::error::WsError;
use crate::heartbeat::{Beat, Heartbeat};
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
        let Ws::Opening { resume } = self.ws else {
            return;
        };
        self.ws = Ws::Open { resume };
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
            self.send_message(&Message::Resume(Resume { server_id, session_id, token, seq_ack: self.last_seq }));
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
        if self.ws == Ws::Closed || self.state == State::Closed {
            return;
        }
        tracing::info!(?code, "voice websocket closed");
        self.on_ws_closed(code, now);
    }

    /// A websocket message arrived. A malformed one is an error for that
    /// message only.
    pub fn handle_ws_message(&mut self, msg: WsMessage<'_>, now: Instant) -> Result<(), WsError> {
        let now = self.advance(now);
        if !matches!(self.ws, Ws::Open { .. }) {
            return Err(WsError::NotOpen);
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
                    self.last_seq = Some(seq);
                }
                self.on_message(frame.message, now)
            }
            WsMessage::Binary(bytes) => {
                let (seq, dave) = DaveBinary::parse_server_for(self.config.gateway_version, bytes)
                    .inspect_err(|_| self.stats.malformed_frames += 1)?;
                if let Some(seq) = seq {
                    self.last_seq = Some(extend_seq(self.last_seq, seq));
                }
                if self.config.max_dave_protocol_version == 0 {
                    self.stats.ignored_frames += 1;
                    return Ok(());
                }
                self.transform.dave.handle_binary(dave, now, &mut self.stats.dave);
                self.drain_dave(now);
                Ok(())
            }
        }
    }

    fn on_message(&mut self, m: Message, now: Instant) -> Result<(), WsError> {
        match m {
            Message::Hello(h) => {
                let hb = Heartbeat::new(h.heartbeat_interval, now);
                self.timers.set(Timer::Heartbeat, hb.deadline());
                self.heartbeat = Some(hb);
                self.finish_handshake_if_done();
            }
            Message::HeartbeatAck(a) => {
                let acked = self.heartbeat.as_mut().is_some_and(|hb| hb.on_ack(a.nonce, now));
                if acked {
                    self.stats.heartbeat_acks += 1;
                    self.stats.heartbeat_rtt = self.heartbeat.as_ref().and_then(|hb| hb.rtt);
                    if self.state == State::Connected {
                        // The session has proved healthy: reconnects start
                        // from the short end of the backoff again. (Resetting
                        // on every connect would let a server that accepts
                        // and drops the call at once keep us in a tight loop.)
                        self.backoff.reset();
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
                if let Some(sender) = self.link.as_mut().and_then(|l| l.sender.as_mut()) {
                    // The next frame announces Speaking again.
                    sender.speaking = false;
                }
                self.event(Event::Resumed);
            }
            Message::Speaking(s) => self.on_speaking(s),
            Message::ClientsConnect(c) => {
                self.transform.dave.recognise(&c.user_ids);
                self.event(Event::ClientsConnected { user_ids: c.user_ids });
            }
            Message::ClientDisconnect(c) => {
                self.users.remove_user(c.user_id);
                self.prune_sources();
                self.transform.dave.forget(c.user_id);
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
                self.transform.dave.handle_message(&m, now, &mut self.stats.dave);
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
        self.expect_source(s.ssrc, user_id);
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
            self.fail(now, ReconnectReason::BadReady, super::Pending::Reidentify);
            return Ok(());
        };
        self.link = Some(Link {
            ssrc: r.ssrc,
            server: std::net::SocketAddr::new(ip, r.port),
            mode,
            discovery_attempts: 0,
            keepalive_counter: 0,
            sender: None,
        });
        self.state = State::Discovering;
        self.send_discovery(now);
        self.send_keepalive(now);
        Ok(())
    }

    /// IP discovery answered: select the protocol.
    pub(crate) fn select_protocol(&mut self, address: String, port: u16) {
        let Some(link) = self.link.as_ref() else {
            return;
        };
        let data = SelectProtocolData { address, port, mode: link.mode.as_str().to_owned() };
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
        if self.link.as_ref().is_some_and(|l| l.mode != mode) {
            tracing::warn!(selected = ?self.link.as_ref().map(|l| l.mode), given = %mode, "server chose another mode; using it");
        }
        let (seq, ts, nonce) = (self.rng.u16(..), self.rng.u32(..), self.rng.u32(..));
        let seq = self.config.initial_sequence.unwrap_or(seq);
        let ts = self.config.initial_timestamp.unwrap_or(ts);
        let Some(link) = self.link.as_mut() else {
            return Err(WsError::Unexpected("no Ready before Session Description"));
        };
        link.mode = mode;
        link.sender = Some(super::media::Sender::new(mode, &sd.secret_key, seq, ts, nonce));
        let ssrc = link.ssrc;
        self.start_reports(now);
        self.state = State::Connected;
        self.auth_failures = 0;
        self.finish_handshake_if_done();
        let dave_protocol_version = sd.dave_protocol_version;
        self.event(Event::Connected { mode, ssrc, dave_protocol_version });
        let channel = self.channel.unwrap_or_else(|| {
            tracing::warn!("session established without a known channel; DAVE group ids will not match");
            crate::wire::Snowflake(0)
        });
        self.transform.dave.start(dave_protocol_version, channel, &mut self.stats.dave);
        self.drain_dave(now);
        Ok(())
    }

    /// The handshake deadline ends only once the session is up *and* Hello
    /// started the heartbeat; without Hello a dead socket would go unnoticed.
    fn finish_handshake_if_done(&mut self) {
        if self.state == State::Connected && self.heartbeat.is_some() {
            self.timers.stop(Timer::Handshake);
        }
    }

    pub(crate) fn on_heartbeat_timer(&mut self, now: Instant) {
        let base = self.unix_ms(now);
        let Some(hb) = self.heartbeat.as_mut() else {
            return;
        };
        match hb.on_timeout(now, base) {
            Some(Beat::Send(nonce)) => {
                let at = hb.deadline();
                self.timers.set(Timer::Heartbeat, at);
                self.stats.heartbeats_sent += 1;
                let seq_ack = self.last_seq;
                self.send_message(&Message::Heartbeat(HeartbeatMsg { nonce, seq_ack }));
            }
            Some(Beat::Zombie) => {
                self.stats.zombie_closes += 1;
                tracing::warn!("heartbeat not acknowledged; resuming");
                self.fail(now, ReconnectReason::ZombieConnection, super::Pending::Resume);
            }
            None => {
                let at = hb.deadline();
                self.timers.set(Timer::Heartbeat, at);
            }
        }
    }
}

/// The full sequence number of a binary frame from its 16-bit prefix: the
/// value nearest the last one seen with those low bits. The server numbers
/// JSON and binary frames from one counter (PROTOCOL.md §2.6; the binary
/// prefix being its low 16 bits is UNCERTAIN, and below 65536 the two
/// readings agree), and messages arrive in order, so the nearest is right.
fn extend_seq(last: Option<i64>, low: u16) -> i64 {
    // A JSON `seq` near the top of i64 leaves no room to extend: keep the
    // nearest value that fits.
    let Some(last) = last.filter(|&l| (0..i64::MAX - 0x2_0000).contains(&l)) else { return i64::from(low) };
    let candidate = (last & !0xFFFF) | i64::from(low);
    if candidate + 0x8000 < last {
        candidate + 0x1_0000
    } else if candidate > last + 0x8000 && candidate >= 0x1_0000 {
        candidate - 0x1_0000
    } else {
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::extend_seq;

    #[test]
    fn binary_sequence_numbers_extend_from_the_last_one() {
        assert_eq!(extend_seq(None, 7), 7);
        assert_eq!(extend_seq(Some(6), 7), 7);
        assert_eq!(extend_seq(Some(65_535), 0), 65_536);
        assert_eq!(extend_seq(Some(65_536 + 10), 11), 65_547);
        assert_eq!(extend_seq(Some(65_536 + 2), 65_535), 65_535, "one message late stays below");
        assert_eq!(extend_seq(Some(-1), 3), 3);
        assert_eq!(extend_seq(Some(i64::MAX), 3), 3, "no overflow near the top");
    }
}
