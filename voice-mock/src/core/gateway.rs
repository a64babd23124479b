//! The voice gateway: what the server does with each client frame, and the
//! close codes of PROTOCOL.md §2.7 that a client earns.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use voice_proto::wire::{
    DaveBinary, GatewayVersion, HeartbeatAck, Hello, Identify, Message, Ready, Resume, SelectProtocol,
    SessionDescription, Snowflake, Speaking, WireError, WsFrame, WsMessage,
};
use voice_rtp::{Cipher, Mode, Sealer};

use super::config::DavePolicy;
use super::room::speaking_of;
use super::session::{Outgoing, Session, SessionKey, unwrap_ack};
use super::{ConnId, MockServer, ServerEvent, ServerOutput};

/// Close codes (PROTOCOL.md §2.7).
pub(crate) mod code {
    pub(crate) const UNKNOWN_OPCODE: u16 = 4001;
    pub(crate) const DECODE_ERROR: u16 = 4002;
    pub(crate) const NOT_AUTHENTICATED: u16 = 4003;
    pub(crate) const AUTH_FAILED: u16 = 4004;
    pub(crate) const ALREADY_AUTHENTICATED: u16 = 4005;
    pub(crate) const SESSION_INVALID: u16 = 4006;
    pub(crate) const SERVER_NOT_FOUND: u16 = 4011;
    pub(crate) const UNKNOWN_PROTOCOL: u16 = 4012;
    pub(crate) const DISCONNECTED: u16 = 4014;
    pub(crate) const UNKNOWN_MODE: u16 = 4016;
    pub(crate) const E2EE_REQUIRED: u16 = 4017;
    pub(crate) const BAD_REQUEST: u16 = 4020;
    pub(crate) const TRY_AGAIN_LATER: u16 = 1013;
}

/// Opcodes a client may send.
fn client_op(op: u8) -> bool {
    matches!(op, 0 | 1 | 3 | 5 | 7) || ignored_client_op(op)
}

/// Opcodes a client may send that the mock ignores (the undocumented ones
/// of PROTOCOL.md §2.3) or reads only in the DAVE flow (23, 31).
fn ignored_client_op(op: u8) -> bool {
    matches!(op, 10 | 12 | 14..=20 | 23 | 31)
}

impl MockServer {
    /// A websocket frame arrived from a client.
    pub fn handle_ws_message(&mut self, conn: ConnId, msg: WsMessage<'_>, now: Instant) {
        self.advance(now);
        self.stats.frames_in += 1;
        let Some(c) = self.conns.get(&conn) else {
            self.stats.frames_after_close += 1;
            return;
        };
        if self.faults.stalled(conn, self.now) {
            self.stats.ws_frames_stalled += 1;
            return;
        }
        let user_before = c.user;
        let len = msg.len();
        if len > self.config.limits.max_frame_bytes {
            self.stats.oversize_frames += 1;
            self.close_conn(conn, code::BAD_REQUEST);
            return;
        }
        let op = match msg {
            WsMessage::Text(text) => self.text_frame(conn, text),
            WsMessage::Binary(bytes) => self.binary_frame(conn, bytes),
            _ => None,
        };
        let user = self.conns.get(&conn).and_then(|c| c.user).or(user_before);
        if let Some(user) = user {
            let st = self.stats.users.entry(user).or_default();
            match (msg, op) {
                (WsMessage::Text(_), Some(op)) => *st.frames_by_op.entry(op).or_default() += 1,
                (WsMessage::Binary(_), _) => st.binary_frames += 1,
                _ => {}
            }
            let frame = msg.to_frame();
            self.record(user, conn, op, frame);
        }
    }

    fn binary_frame(&mut self, conn: ConnId, bytes: &[u8]) -> Option<u8> {
        let op = bytes.first().copied();
        match DaveBinary::parse_client(bytes) {
            Ok(msg @ (DaveBinary::KeyPackage(_) | DaveBinary::CommitWelcome(_))) => match self.conn_session(conn) {
                Some(key) => self.dave_client_binary(key, msg),
                None => self.close_conn(conn, code::NOT_AUTHENTICATED),
            },
            Ok(_) | Err(WireError::UnknownBinaryOpcode(_)) => self.close_conn(conn, code::UNKNOWN_OPCODE),
            Err(_) => {
                self.stats.malformed_frames += 1;
                self.close_conn(conn, code::DECODE_ERROR);
            }
        }
        op
    }

    fn text_frame(&mut self, conn: ConnId, text: &str) -> Option<u8> {
        let frame = match Message::parse(text) {
            Ok(f) => f,
            Err(e) => {
                self.stats.malformed_frames += 1;
                tracing::debug!(?conn, error = %e, "undecodable frame");
                let code = match e {
                    WireError::Malformed { op: Some(op), .. } | WireError::MissingData { op } if !client_op(op) => {
                        code::UNKNOWN_OPCODE
                    }
                    WireError::Malformed { op: Some(_), .. } | WireError::MissingData { .. } => code::BAD_REQUEST,
                    _ => code::DECODE_ERROR,
                };
                self.close_conn(conn, code);
                return None;
            }
        };
        let op = frame.message.op();
        let session = self.conn_session(conn);
        match (frame.message, session) {
            (Message::Identify(id), None) => self.identify(conn, id),
            (Message::Resume(r), None) => self.resume(conn, r),
            (Message::Identify(_) | Message::Resume(_), Some(_)) => self.close_conn(conn, code::ALREADY_AUTHENTICATED),
            (Message::Unknown { op }, _) if !ignored_client_op(op) => self.close_conn(conn, code::UNKNOWN_OPCODE),
            (
                Message::Ready(_)
                | Message::SessionDescription(_)
                | Message::HeartbeatAck(_)
                | Message::Hello(_)
                | Message::Resumed
                | Message::ClientsConnect(_)
                | Message::ClientDisconnect(_)
                | Message::DavePrepareTransition(_)
                | Message::DaveExecuteTransition(_)
                | Message::DavePrepareEpoch(_),
                _,
            ) => self.close_conn(conn, code::UNKNOWN_OPCODE),
            (_, None) => self.close_conn(conn, code::NOT_AUTHENTICATED),
            (Message::Heartbeat(h), Some(key)) => self.heartbeat(conn, key, h.nonce, h.seq_ack),
            (Message::SelectProtocol(sp), Some(key)) => self.select_protocol(conn, key, sp),
            (Message::Speaking(sp), Some(key)) => self.speaking(key, sp),
            (Message::DaveTransitionReady(t), Some(key)) => self.dave_transition_ready(key, t.transition_id),
            (Message::DaveMlsInvalidCommitWelcome(t), Some(key)) => {
                self.dave_invalid_commit_welcome(key, t.transition_id)
            }
            (_, Some(_)) => {} // Undocumented opcodes: ignored.
        }
        Some(op)
    }

    fn conn_session(&self, conn: ConnId) -> Option<SessionKey> {
        self.conns.get(&conn).and_then(|c| c.session)
    }

    fn hello(&self, version: GatewayVersion) -> Message {
        Message::Hello(Hello {
            v: (version == GatewayVersion::V8).then_some(8),
            heartbeat_interval: self.config.heartbeat_interval_ms,
        })
    }

    fn identify(&mut self, conn: ConnId, id: Identify) {
        let grant = self.grants.get(id.token.expose()).cloned();
        if self.config.require_token {
            let Some(g) = &grant else { return self.close_conn(conn, code::AUTH_FAILED) };
            if g.guild != id.server_id {
                return self.close_conn(conn, code::SERVER_NOT_FOUND);
            }
            if g.user != id.user_id || g.session_id != id.session_id {
                return self.close_conn(conn, code::AUTH_FAILED);
            }
        }
        let channel = match &grant {
            Some(g) if g.guild == id.server_id && g.user == id.user_id => g.channel,
            _ => id.token.expose().split_once('.').and_then(|(c, _)| c.parse().ok()).unwrap_or(Snowflake(0)),
        };
        let offers_dave = id.max_dave_protocol_version.unwrap_or(0) >= 1;
        if self.config.dave == DavePolicy::Required && !offers_dave {
            // As Discord: Hello, then 4017. No session is made, so there is
            // nothing to resume and the client cannot loop on one.
            return self.refuse_without_dave(conn, id.user_id);
        }
        if let Some(&old) = self.by_user.get(&(id.server_id, id.user_id)) {
            // A fresh Identify replaces the user's old session in this guild.
            self.end_session_with_close(old, code::DISCONNECTED);
        }
        if self.sessions.len() >= self.config.limits.max_sessions {
            return self.close_conn(conn, code::TRY_AGAIN_LATER);
        }
        let Some(version) = self.conns.get(&conn).map(|c| c.version) else { return };
        let key = SessionKey(self.next_session);
        self.next_session += 1;
        let ssrc = self.alloc_ssrc();
        let secret = self.random_key();
        let session = Session {
            guild: id.server_id,
            channel,
            user: id.user_id,
            session_id: id.session_id.clone(),
            token: id.token.clone(),
            ssrc,
            secret,
            dave_capable: offers_dave && self.config.dave != DavePolicy::Off,
            introduced: false,
            mode: None,
            sealer: None,
            udp: None,
            conn: Some(conn),
            detached_since: None,
            last_seq: 0,
            buffer: VecDeque::new(),
            floor: 0,
            speaking: 0,
            known_speakers: BTreeSet::new(),
        };
        self.sessions.insert(key, session);
        self.by_ssrc.insert(ssrc, key);
        self.by_session_id.insert(id.session_id.clone(), key);
        self.by_user.insert((id.server_id, id.user_id), key);
        let deadline = self.now + self.config.heartbeat_timeout();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(key);
            c.user = Some(id.user_id);
            c.deadline = deadline;
        }
        self.make_room_for_user_stats(id.user_id);
        let st = self.stats.users.entry(id.user_id).or_default();
        st.ssrc = Some(ssrc);
        st.mode = None;
        tracing::debug!(?conn, user = %id.user_id, guild = %id.server_id, %channel, ssrc, "identified");

        self.send(key, self.hello(version), false);
        let ready = Ready {
            ssrc,
            ip: self.config.udp_addr.ip().to_string(),
            port: self.config.udp_addr.port(),
            modes: self.config.modes.iter().map(|m| m.as_str().to_owned()).collect(),
        };
        self.send(key, Message::Ready(ready), true);
        self.enter_room(key);
        if let Some((code, after)) = self.faults.close_each {
            self.faults.scheduled.push((self.now + after, id.user_id, code));
        }
        self.emit(ServerOutput::Event(ServerEvent::Identified {
            conn,
            user: id.user_id,
            guild: id.server_id,
            channel,
            ssrc,
        }));
    }

    /// Hello, then close 4017 (E2EE/DAVE protocol required).
    fn refuse_without_dave(&mut self, conn: ConnId, user: Snowflake) {
        self.make_room_for_user_stats(user);
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.user = Some(user);
        let version = c.version;
        let seq = (version == GatewayVersion::V8).then_some(1);
        let frame = WsFrame::Text(self.hello(version).to_json(version, seq));
        self.emit(ServerOutput::WsSend { conn, frame });
        tracing::debug!(?conn, %user, "identify without DAVE: 4017");
        self.close_conn(conn, code::E2EE_REQUIRED);
    }

    fn alloc_ssrc(&mut self) -> u32 {
        loop {
            let ssrc = self.next_ssrc;
            self.next_ssrc = self.next_ssrc.wrapping_add(1).max(1);
            if !self.by_ssrc.contains_key(&ssrc) {
                return ssrc;
            }
        }
    }

    fn resume(&mut self, conn: ConnId, r: Resume) {
        let found = self.by_session_id.get(&r.session_id).copied();
        if self.faults.refuse_resumes {
            if let Some(key) = found {
                self.destroy_session(key);
            }
            return self.close_conn(conn, code::SESSION_INVALID);
        }
        let Some(key) = found else { return self.close_conn(conn, code::SESSION_INVALID) };
        let Some(s) = self.sessions.get(&key) else { return self.close_conn(conn, code::SESSION_INVALID) };
        if s.guild != r.server_id {
            return self.close_conn(conn, code::SESSION_INVALID);
        }
        if self.config.require_token && s.token != r.token {
            return self.close_conn(conn, code::AUTH_FAILED);
        }
        let Some(version) = self.conns.get(&conn).map(|c| c.version) else { return };
        let ack = unwrap_ack(r.seq_ack.unwrap_or(0).max(0), s.last_seq);
        if version == GatewayVersion::V8 && ack < s.floor {
            // A message the client missed is no longer buffered.
            self.close_conn(conn, code::SESSION_INVALID);
            return self.destroy_session(key);
        }
        let (user, old) = (s.user, s.conn);
        if let Some(old) = old.filter(|&o| o != conn) {
            // The client abandoned its old socket; the new one takes over.
            if let Some(c) = self.conns.get_mut(&old) {
                c.session = None;
            }
            self.detach(key, old);
            self.close_conn(old, code::SESSION_INVALID);
        }
        let deadline = self.now + self.config.heartbeat_timeout();
        let Some(s) = self.sessions.get_mut(&key) else { return };
        s.conn = Some(conn);
        s.detached_since = None;
        s.known_speakers.clear();
        let pending: Vec<Outgoing> =
            std::mem::take(&mut s.buffer).into_iter().filter(|(seq, _)| *seq > ack).map(|(_, m)| m).collect();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(key);
            c.user = Some(user);
            c.deadline = deadline;
        }
        self.send(key, self.hello(version), false);
        self.send(key, Message::Resumed, false);
        if version == GatewayVersion::V8 {
            // Replayed with fresh sequence numbers, so `seq` keeps rising.
            for m in pending {
                self.send_out(key, m, true);
            }
        }
        self.emit(ServerOutput::Event(ServerEvent::Resumed { conn, user }));
    }

    fn heartbeat(&mut self, conn: ConnId, key: SessionKey, nonce: u64, seq_ack: Option<i64>) {
        let deadline = self.now + self.config.heartbeat_timeout();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.deadline = deadline;
        }
        let Some(s) = self.sessions.get_mut(&key) else { return };
        if let Some(ack) = seq_ack.map(|a| unwrap_ack(a, s.last_seq)).filter(|&a| a > 0 && a <= s.last_seq) {
            while s.buffer.front().is_some_and(|(seq, _)| *seq <= ack) {
                s.buffer.pop_front();
            }
            s.floor = s.floor.max(ack);
        }
        let user = s.user;
        if self.faults.acks_stopped(user) {
            self.stats.users.entry(user).or_default().heartbeat_acks_withheld += 1;
            return;
        }
        self.stats.users.entry(user).or_default().heartbeat_acks_sent += 1;
        self.send(key, Message::HeartbeatAck(HeartbeatAck { nonce }), false);
    }

    fn select_protocol(&mut self, conn: ConnId, key: SessionKey, sp: SelectProtocol) {
        if sp.protocol != "udp" {
            return self.close_conn(conn, code::UNKNOWN_PROTOCOL);
        }
        let Some(mode) = Mode::from_name(&sp.data.mode).filter(|m| self.config.modes.contains(m)) else {
            return self.close_conn(conn, code::UNKNOWN_MODE);
        };
        if let Ok(ip) = sp.data.address.parse::<std::net::IpAddr>()
            && self.sessions.get(&key).is_some_and(|s| s.udp.is_none())
            && sp.data.port != 0
        {
            self.learn_addr(key, (ip, sp.data.port).into());
        }
        let first_nonce = self.rng.u32(..);
        let fresh_secret = self.random_key();
        let dave = self.dave_describe(key);
        let Some(s) = self.sessions.get_mut(&key) else { return };
        if s.mode != Some(mode) {
            if s.mode.is_some() {
                // A second Select Protocol with another mode: a new sealer
                // under the old key could repeat a nonce, so the key changes.
                s.secret = fresh_secret;
            }
            s.sealer = Some(Sealer::new(Cipher::new(mode, &s.secret), first_nonce));
            s.mode = Some(mode);
        }
        let desc = SessionDescription {
            mode: mode.as_str().to_owned(),
            secret_key: s.secret.clone(),
            dave_protocol_version: dave,
        };
        let (user, first) = (s.user, !s.introduced);
        self.stats.users.entry(user).or_default().mode = Some(mode);
        self.send(key, Message::SessionDescription(desc), true);
        self.sink_touch_session(key);
        if first {
            // A DAVE session: op 4, then op 25, then who is here (step 2).
            if dave >= 1 {
                self.dave_send_external_sender(key);
            }
            self.introduce(key);
        }
        self.emit(ServerOutput::Event(ServerEvent::ProtocolSelected { user, mode }));
    }

    fn speaking(&mut self, key: SessionKey, sp: Speaking) {
        let Some(s) = self.sessions.get_mut(&key) else { return };
        s.speaking = sp.speaking;
        let msg = speaking_of(s.user, s.ssrc, sp.speaking);
        for peer in self.peers(key) {
            let Some(p) = self.sessions.get_mut(&peer).filter(|p| p.introduced) else { continue };
            p.known_speakers.insert(key);
            self.send(peer, msg.clone(), true);
        }
    }
}
