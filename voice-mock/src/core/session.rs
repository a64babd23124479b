//! Sessions, websockets and credentials: sending messages with `seq`, the
//! resume buffer, closing and ending sessions.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use voice_proto::wire::{ClientDisconnect, GatewayVersion, Message, Snowflake, Token, WsFrame};
use voice_rtp::{Mode, Sealer, SecretKey};

use super::{ConnId, MockServer, ServerEvent, ServerOutput};

/// Close codes remembered per user (the most recent ones).
const MAX_CLOSES_KEPT: usize = 32;

/// Internal id of a voice session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SessionKey(pub(crate) u64);

/// Credentials issued by `join`.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) guild: Snowflake,
    pub(crate) channel: Snowflake,
    pub(crate) user: Snowflake,
    pub(crate) session_id: String,
}

/// One websocket.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) version: GatewayVersion,
    pub(crate) session: Option<SessionKey>,
    pub(crate) user: Option<Snowflake>,
    /// Heartbeat (or identify) deadline: past it, 4009.
    pub(crate) deadline: Instant,
}

/// One voice session: survives websocket drops until it ends or expires.
pub(crate) struct Session {
    pub(crate) guild: Snowflake,
    pub(crate) channel: Snowflake,
    pub(crate) user: Snowflake,
    pub(crate) session_id: String,
    pub(crate) token: Token,
    pub(crate) ssrc: u32,
    pub(crate) secret: SecretKey,
    pub(crate) dave: u16,
    pub(crate) mode: Option<Mode>,
    /// Seals what is sent to this client; its cipher opens what it sends.
    pub(crate) sealer: Option<Sealer>,
    pub(crate) udp: Option<SocketAddr>,
    pub(crate) conn: Option<ConnId>,
    pub(crate) detached_since: Option<Instant>,
    /// Last `seq` assigned.
    pub(crate) last_seq: i64,
    /// Replayable messages after the last acknowledged one.
    pub(crate) buffer: VecDeque<(i64, Message)>,
    /// Messages with `seq <= floor` may be missing from the buffer.
    pub(crate) floor: i64,
    pub(crate) speaking: u32,
    /// Senders whose SSRC this client has been told (op 5).
    pub(crate) known_speakers: BTreeSet<SessionKey>,
}

/// Whether a server close code ends the session (else it stays resumable).
pub(crate) fn code_ends_session(code: u16) -> bool {
    !(code < 4000 || code == 4015 || code == 4009)
}

impl MockServer {
    /// Sends `msg` to the session's client. Every message takes the next
    /// `seq` (shown on v8 only); `buffered` messages are kept for a resume.
    /// With no websocket attached, buffered messages wait for a resume and
    /// the others are lost.
    pub(crate) fn send(&mut self, key: SessionKey, msg: Message, buffered: bool) {
        let cap = self.config.limits.resume_buffer.max(1);
        let Some(s) = self.sessions.get_mut(&key) else { return };
        s.last_seq += 1;
        let seq = s.last_seq;
        let conn = s.conn;
        let mut evicted = false;
        let frame = conn.and_then(|c| self.conns.get(&c)).map(|c| {
            let v8 = c.version == GatewayVersion::V8;
            WsFrame::Text(msg.to_json(c.version, v8.then_some(seq)))
        });
        if buffered {
            s.buffer.push_back((seq, msg));
            while s.buffer.len() > cap {
                if let Some((old, _)) = s.buffer.pop_front() {
                    s.floor = s.floor.max(old);
                    evicted = true;
                }
            }
        }
        let user = s.user;
        if evicted {
            self.stats.users.entry(user).or_default().resume_buffer_evictions += 1;
        }
        if let (Some(conn), Some(frame)) = (conn, frame) {
            self.emit(ServerOutput::WsSend { conn, frame });
        }
    }

    /// Forgets the websocket of a session (it stays resumable).
    pub(crate) fn detach(&mut self, key: SessionKey, conn: ConnId) {
        let now = self.now;
        if let Some(s) = self.sessions.get_mut(&key)
            && s.conn == Some(conn)
        {
            s.conn = None;
            s.detached_since = Some(now);
        }
    }

    /// Closes a websocket with `code`; the session ends unless the code is
    /// resumable (below 4000, 4009, 4015).
    pub(crate) fn close_conn(&mut self, conn: ConnId, code: u16) {
        let Some(c) = self.conns.remove(&conn) else { return };
        *self.stats.closes_sent.entry(code).or_default() += 1;
        if let Some(user) = c.user {
            let closes = &mut self.stats.users.entry(user).or_default().closes_sent;
            if closes.len() >= MAX_CLOSES_KEPT {
                closes.remove(0);
            }
            closes.push(code);
        }
        self.emit(ServerOutput::WsClose { conn, code });
        self.emit(ServerOutput::Event(ServerEvent::Closed { conn, user: c.user, code: Some(code), by_server: true }));
        if let Some(key) = c.session {
            self.detach(key, conn);
            if code_ends_session(code) {
                self.destroy_session(key);
            }
        }
    }

    /// Ends a session, closing its websocket (if any) with `code` first.
    pub(crate) fn end_session_with_close(&mut self, key: SessionKey, code: u16) {
        match self.sessions.get(&key).and_then(|s| s.conn) {
            Some(conn) if self.conns.contains_key(&conn) => {
                self.close_conn(conn, code);
                self.destroy_session(key);
            }
            _ => self.destroy_session(key),
        }
    }

    /// Removes a session everywhere and tells its room (op 13).
    pub(crate) fn destroy_session(&mut self, key: SessionKey) {
        let Some(s) = self.sessions.remove(&key) else { return };
        if let Some(conn) = s.conn
            && let Some(c) = self.conns.get_mut(&conn)
        {
            c.session = None;
        }
        if self.by_ssrc.get(&s.ssrc) == Some(&key) {
            self.by_ssrc.remove(&s.ssrc);
        }
        if let Some(addr) = s.udp
            && self.by_addr.get(&addr) == Some(&key)
        {
            self.by_addr.remove(&addr);
        }
        if self.by_session_id.get(&s.session_id) == Some(&key) {
            self.by_session_id.remove(&s.session_id);
        }
        if self.by_user.get(&(s.guild, s.user)) == Some(&key) {
            self.by_user.remove(&(s.guild, s.user));
        }
        let peers = self.rooms.leave((s.guild, s.channel), key);
        let bye = Message::ClientDisconnect(ClientDisconnect { user_id: s.user });
        for peer in peers {
            if let Some(p) = self.sessions.get_mut(&peer) {
                p.known_speakers.remove(&key);
            }
            self.send(peer, bye.clone(), true);
        }
        self.emit(ServerOutput::Event(ServerEvent::SessionEnded { user: s.user, guild: s.guild }));
    }

    /// Records the UDP address of a session.
    pub(crate) fn learn_addr(&mut self, key: SessionKey, addr: SocketAddr) {
        let Some(s) = self.sessions.get_mut(&key) else { return };
        if s.udp == Some(addr) {
            return;
        }
        if let Some(old) = s.udp.replace(addr)
            && self.by_addr.get(&old) == Some(&key)
        {
            self.by_addr.remove(&old);
        }
        self.by_addr.insert(addr, key);
    }

    /// Emits a datagram and counts it for its receiver.
    pub(crate) fn emit_transmit(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        if let Some(user) = self.by_addr.get(&to).and_then(|k| self.sessions.get(k)).map(|s| s.user) {
            self.stats.users.entry(user).or_default().rtp_out += 1;
        }
        self.stats.rtp_forwarded += 1;
        self.emit(ServerOutput::Transmit { to, bytes });
    }

    /// Keeps a copy of a client's frame for `received_frames`.
    pub(crate) fn record(&mut self, user: Snowflake, conn: ConnId, op: Option<u8>, frame: WsFrame) {
        let cap = self.config.limits.received_frames;
        let users_cap = self.config.limits.max_sessions.saturating_mul(4).max(16);
        if !self.received.contains_key(&user) && self.received.len() >= users_cap {
            self.stats.users.entry(user).or_default().frames_not_kept += 1;
            return;
        }
        let list = self.received.entry(user).or_default();
        if list.len() >= cap {
            self.stats.users.entry(user).or_default().frames_not_kept += 1;
            return;
        }
        list.push(super::ReceivedFrame { at: self.now, conn, op, frame });
    }
}
