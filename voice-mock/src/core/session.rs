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
    /// Its Identify offered DAVE and the policy is not Off.
    pub(crate) dave_capable: bool,
    /// It has been told who is in the room (op 11, op 5), and hears about
    /// arrivals, departures and speakers from now on. A DAVE session is
    /// told after its Session Description and op 25 (DAVE.md §5 step 2),
    /// any other at Identify.
    pub(crate) introduced: bool,
    pub(crate) mode: Option<Mode>,
    /// Seals what is sent to this client; its cipher opens what it sends.
    pub(crate) sealer: Option<Sealer>,
    pub(crate) udp: Option<SocketAddr>,
    pub(crate) conn: Option<ConnId>,
    pub(crate) detached_since: Option<Instant>,
    /// Last `seq` assigned.
    pub(crate) last_seq: i64,
    /// Replayable messages after the last acknowledged one.
    pub(crate) buffer: VecDeque<(i64, Outgoing)>,
    /// Messages with `seq <= floor` may be missing from the buffer.
    pub(crate) floor: i64,
    pub(crate) speaking: u32,
    /// Senders whose SSRC this client has been told (op 5).
    pub(crate) known_speakers: BTreeSet<SessionKey>,
}

/// A message to a client: JSON, or a binary DAVE message (opcode and body;
/// the sequence prefix is added per send).
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    Json(Message),
    Binary(Vec<u8>),
}

impl Outgoing {
    /// The frame as sent with sequence number `seq` on `version`: v8 puts
    /// `seq` in JSON and its low 16 bits before a binary frame; v4 neither.
    fn frame(&self, version: GatewayVersion, seq: i64) -> WsFrame {
        let v8 = version == GatewayVersion::V8;
        match self {
            Outgoing::Json(m) => WsFrame::Text(m.to_json(version, v8.then_some(seq))),
            Outgoing::Binary(body) if v8 => {
                let mut out = Vec::with_capacity(2 + body.len());
                out.extend_from_slice(&((seq & 0xFFFF) as u16).to_be_bytes());
                out.extend_from_slice(body);
                WsFrame::Binary(out)
            }
            Outgoing::Binary(body) => WsFrame::Binary(body.clone()),
        }
    }
}

/// The `seq` a client acknowledged. A client that last saw a binary frame
/// may acknowledge its 16-bit prefix: past 65535 such a value is read as
/// the latest `seq` not above `last` with those low 16 bits.
pub(crate) fn unwrap_ack(ack: i64, last: i64) -> i64 {
    if !(0..=0xFFFF).contains(&ack) || last <= 0xFFFF {
        return ack;
    }
    let candidate = (last & !0xFFFF) | ack;
    if candidate > last { candidate - 0x1_0000 } else { candidate }
}

/// Whether a server close code ends the session (else it stays resumable).
pub(crate) fn code_ends_session(code: u16) -> bool {
    !(code < 4000 || code == 4015 || code == 4009)
}

impl MockServer {
    /// Sends `msg` to the session's client (see [`MockServer::send_out`]).
    pub(crate) fn send(&mut self, key: SessionKey, msg: Message, buffered: bool) {
        self.send_out(key, Outgoing::Json(msg), buffered);
    }

    /// Sends a message to the session's client. Every message, JSON or
    /// binary, takes the next `seq` (shown on v8 only); `buffered` messages
    /// are kept for a resume. With no websocket attached, buffered messages
    /// wait for a resume and the others are lost.
    pub(crate) fn send_out(&mut self, key: SessionKey, msg: Outgoing, buffered: bool) {
        let cap = self.config.limits.resume_buffer.max(1);
        let Some(s) = self.sessions.get_mut(&key) else { return };
        s.last_seq += 1;
        let seq = s.last_seq;
        let conn = s.conn;
        let mut evicted = false;
        let frame = conn.and_then(|c| self.conns.get(&c)).map(|c| msg.frame(c.version, seq));
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
            if self.faults.stalled(conn, self.now) {
                // A stalled path: the frame never leaves (a buffered one is
                // replayed on a resume).
                self.stats.ws_frames_stalled += 1;
            } else {
                self.emit(ServerOutput::WsSend { conn, frame });
            }
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
        if let Some(c) = s.conn.and_then(|conn| self.conns.get_mut(&conn)) {
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
        let room = (s.guild, s.channel);
        let peers = self.rooms.leave(room, key);
        self.sink_touch(s.ssrc);
        if let [alone] = peers[..] {
            // Left alone: its packets no longer have a listener.
            self.sink_touch_session(alone);
        }
        let bye = Message::ClientDisconnect(ClientDisconnect { user_id: s.user });
        for peer in peers {
            let Some(p) = self.sessions.get_mut(&peer) else { continue };
            p.known_speakers.remove(&key);
            if p.introduced {
                self.send(peer, bye.clone(), true);
            }
        }
        self.dave_leave(key, room);
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

#[cfg(test)]
mod tests {
    use super::unwrap_ack;

    #[test]
    fn a_16_bit_ack_is_read_against_the_last_seq() {
        assert_eq!(unwrap_ack(5, 9), 5);
        assert_eq!(unwrap_ack(-1, 70_000), -1);
        assert_eq!(unwrap_ack(70_000, 70_000), 70_000);
        // 65541 went out with prefix 5.
        assert_eq!(unwrap_ack(5, 70_000), 65_541);
        // Prefix 4465 last matched 4465: 70001 is not sent yet.
        assert_eq!(unwrap_ack(4465, 70_000), 4465);
        assert_eq!(unwrap_ack(0xFFFF, 0x2_0005), 0x1_FFFF);
    }
}
