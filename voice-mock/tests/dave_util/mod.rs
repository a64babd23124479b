//! A room of clients around the server core, in-process under fake time.
//!
//! Each DAVE client runs a real `davey` 0.2 session and follows the client
//! flow of DAVE.md §2; a plain client speaks JSON only. Frames from the
//! server are delivered one at a time, in the order the server emitted
//! them; a client's replies go to the server at once. When the last op 22
//! of a transition has been delivered, every pair of group members
//! exchanges Opus frames and the rosters and epoch authenticators are
//! compared ([`Net::check`]).
#![allow(dead_code, missing_docs)]

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use davey::{DaveSession, MediaType, ProposalsOperationType};
use serde_json::{Value, json};
use voice_mock::{ConnId, DaveRoomInfo, Fault, JoinInfo, MockServer, ServerConfig, ServerEvent, ServerOutput};
use voice_proto::wire::{DaveBinary, GatewayVersion, Snowflake, WsFrame};

pub const G: Snowflake = Snowflake(100);
pub const CH: Snowflake = Snowflake(200);

/// A frame a client received: its `seq` (JSON) or prefix (binary), opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub seq: Option<i64>,
    pub op: u8,
    pub binary: bool,
    /// Binary frames: the bytes as received.
    pub bytes: Vec<u8>,
    /// JSON frames: the `d`.
    pub d: Value,
}

pub struct Client {
    pub user: u64,
    pub join: JoinInfo,
    pub version: GatewayVersion,
    /// Offers DAVE in Identify (a plain client does not).
    pub offers_dave: bool,
    pub conn: Option<ConnId>,
    pub close: Option<u16>,
    pub session: Option<DaveSession>,
    /// The protocol version in force (op 4, op 22).
    pub dave_version: u16,
    /// Prepared transitions: id → version.
    pub prepared: HashMap<u16, u16>,
    pub recognised: BTreeSet<u64>,
    pub seen: Vec<Seen>,
    pub last_seq: Option<i64>,
    /// What davey refused, in order.
    pub errors: Vec<String>,
    /// Test knob: ignore this many op 27 appends.
    pub ignore_proposals: usize,
    /// Test knob: answer op 4 with two key packages in a row.
    pub double_key_package: bool,
}

fn kp_frame(kp: Vec<u8>) -> WsFrame {
    let mut f = vec![26u8];
    f.extend(kp);
    WsFrame::Binary(f)
}

fn text(v: Value) -> WsFrame {
    WsFrame::Text(v.to_string())
}

impl Client {
    /// The `d` of the last JSON message with `op`.
    pub fn last(&self, op: u8) -> Option<&Value> {
        self.seen.iter().rev().find(|s| !s.binary && s.op == op).map(|s| &s.d)
    }

    fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.recognised.iter().copied().collect();
        ids.push(self.user);
        ids
    }

    /// A fresh MLS state at version `v` and its key package (op 26).
    fn fresh_key_package(&mut self, v: u16) -> Vec<WsFrame> {
        let Some(pv) = NonZeroU16::new(v) else { return Vec::new() };
        let (user, channel) = (self.user, CH.0);
        match &mut self.session {
            Some(s) => s.reinit(pv, user, channel, None).unwrap(),
            None => self.session = Some(DaveSession::new(pv, user, channel, None).unwrap()),
        }
        let s = self.session.as_mut().unwrap();
        let mut out = vec![kp_frame(s.create_key_package().unwrap())];
        if self.double_key_package {
            self.double_key_package = false;
            out.push(kp_frame(s.create_key_package().unwrap()));
        }
        out
    }

    /// Re-initialises and sends a key package, as a client that lost its
    /// state would.
    pub fn reset(&mut self) -> Vec<WsFrame> {
        let v = self.dave_version.max(1);
        self.fresh_key_package(v)
    }

    fn prepare(&mut self, tid: u16, pv: u16) -> Vec<WsFrame> {
        if let Some(s) = &mut self.session {
            s.prepare_transition(tid, pv).unwrap();
            if pv == 0 {
                s.set_passthrough_mode(true, None);
            }
        }
        if tid == 0 {
            self.dave_version = pv;
            return Vec::new();
        }
        self.prepared.insert(tid, pv);
        vec![text(json!({"op":23,"d":{"transition_id":tid}}))]
    }

    /// Recovery (DAVE.md §2): op 31, a fresh state, a new key package.
    fn recover(&mut self, tid: u16, error: String) -> Vec<WsFrame> {
        self.errors.push(error);
        let mut out = vec![text(json!({"op":31,"d":{"transition_id":tid}}))];
        out.extend(self.fresh_key_package(self.dave_version.max(1)));
        out
    }

    fn receive(&mut self, frame: &WsFrame) -> Vec<WsFrame> {
        match frame {
            WsFrame::Text(t) => {
                let v: Value = serde_json::from_str(t).unwrap();
                let seq = v["seq"].as_i64();
                if seq.is_some() {
                    self.last_seq = seq;
                }
                let op = v["op"].as_u64().unwrap() as u8;
                self.seen.push(Seen { seq, op, binary: false, bytes: Vec::new(), d: v["d"].clone() });
                self.on_json(op, &v["d"])
            }
            WsFrame::Binary(b) => {
                let (seq, msg) = DaveBinary::parse_server_for(self.version, b).unwrap();
                let seq = seq.map(i64::from);
                if seq.is_some() {
                    self.last_seq = seq;
                }
                self.seen.push(Seen { seq, op: msg.op(), binary: true, bytes: b.clone(), d: Value::Null });
                self.on_binary(msg)
            }
            _ => Vec::new(),
        }
    }

    fn on_json(&mut self, op: u8, d: &Value) -> Vec<WsFrame> {
        let tid = || d["transition_id"].as_u64().unwrap() as u16;
        match op {
            4 => {
                self.dave_version = d["dave_protocol_version"].as_u64().unwrap() as u16;
                if self.dave_version > 0 { self.fresh_key_package(self.dave_version) } else { Vec::new() }
            }
            11 => {
                for u in d["user_ids"].as_array().unwrap() {
                    self.recognised.insert(u.as_str().unwrap().parse().unwrap());
                }
                Vec::new()
            }
            13 => {
                self.recognised.remove(&d["user_id"].as_str().unwrap().parse().unwrap());
                Vec::new()
            }
            21 => self.prepare(tid(), d["protocol_version"].as_u64().unwrap() as u16),
            22 => {
                let tid = tid();
                if let Some(s) = &mut self.session {
                    s.execute_transition(tid).unwrap();
                }
                if let Some(pv) = self.prepared.remove(&tid) {
                    self.dave_version = pv;
                }
                Vec::new()
            }
            24 if d["epoch"] == 1 => {
                let pv = d["protocol_version"].as_u64().unwrap() as u16;
                self.dave_version = pv;
                self.fresh_key_package(pv)
            }
            _ => Vec::new(),
        }
    }

    fn on_binary(&mut self, msg: DaveBinary<'_>) -> Vec<WsFrame> {
        let ids = self.ids();
        let v = self.dave_version;
        let Some(s) = self.session.as_mut() else {
            self.errors.push(format!("op {} without a session", msg.op()));
            return Vec::new();
        };
        match msg {
            DaveBinary::ExternalSender(body) => {
                if let Err(e) = s.set_external_sender(body) {
                    self.errors.push(format!("op 25: {e}"));
                }
                Vec::new()
            }
            DaveBinary::Proposals { operation, body } => {
                if operation == 0 && self.ignore_proposals > 0 {
                    self.ignore_proposals -= 1;
                    return Vec::new();
                }
                let kind = if operation == 0 { ProposalsOperationType::APPEND } else { ProposalsOperationType::REVOKE };
                match s.process_proposals(kind, body, Some(&ids)) {
                    Ok(Some(cw)) => {
                        let mut f = vec![28u8];
                        f.extend(cw.commit);
                        f.extend(cw.welcome.unwrap_or_default());
                        vec![WsFrame::Binary(f)]
                    }
                    Ok(None) => Vec::new(),
                    Err(e) => {
                        self.errors.push(format!("op 27: {e}"));
                        Vec::new()
                    }
                }
            }
            DaveBinary::AnnounceCommitTransition { transition_id, commit } => match s.process_commit(commit) {
                Ok(true) => self.prepare(transition_id, v),
                Ok(false) => Vec::new(),
                Err(e) => self.recover(transition_id, format!("op 29: {e}")),
            },
            DaveBinary::Welcome { transition_id, welcome } => match s.process_welcome(welcome, Some(&ids)) {
                Ok(()) => self.prepare(transition_id, v),
                Err(e) => self.recover(transition_id, format!("op 30: {e}")),
            },
            _ => Vec::new(),
        }
    }
}

pub struct Net {
    pub s: MockServer,
    pub now: Instant,
    pub clients: Vec<Client>,
    /// To deliver, in order: a frame, or a close (`Err(code)`).
    queue: VecDeque<(ConnId, Result<WsFrame, u16>)>,
    /// Op 22s emitted and not yet delivered, by transition id.
    executes: BTreeMap<u16, usize>,
    pub events: Vec<ServerEvent>,
    /// Datagrams the server sent.
    pub transmits: Vec<(SocketAddr, Vec<u8>)>,
    /// Checks run (one per transition executed, plus explicit ones).
    pub checks: usize,
}

impl Net {
    pub fn new(config: ServerConfig) -> Net {
        let now = Instant::now();
        Net {
            s: MockServer::new(config, now),
            now,
            clients: Vec::new(),
            queue: VecDeque::new(),
            executes: BTreeMap::new(),
            events: Vec::new(),
            transmits: Vec::new(),
            checks: 0,
        }
    }

    pub fn idx(&self, user: u64) -> usize {
        self.clients.iter().position(|c| c.user == user).unwrap()
    }

    pub fn client(&mut self, user: u64) -> &mut Client {
        let i = self.idx(user);
        &mut self.clients[i]
    }

    pub fn info(&self) -> DaveRoomInfo {
        self.s.dave_room(G, CH).expect("the room exists")
    }

    /// A DAVE client on gateway v8, identified and selected; the room settles.
    pub fn join(&mut self, user: u64) -> usize {
        self.join_with(user, true, GatewayVersion::V8)
    }

    /// A client that offers DAVE or not, on `version`.
    pub fn join_with(&mut self, user: u64, offers_dave: bool, version: GatewayVersion) -> usize {
        let i = self.connect(user, offers_dave, version);
        if self.clients[i].conn.is_some() {
            self.select(user);
        }
        i
    }

    /// Identify only (no Select Protocol yet).
    pub fn connect(&mut self, user: u64, offers_dave: bool, version: GatewayVersion) -> usize {
        let join = self.s.join(G, CH, Snowflake(user));
        let conn = self.s.accept(version, self.now);
        let max = if offers_dave { json!(1) } else { json!(0) };
        let identify = json!({"op":0,"d":{"server_id":G.to_string(),"user_id":user.to_string(),
            "session_id":join.session_id,"token":join.token.expose(),"max_dave_protocol_version":max}});
        self.clients.push(Client {
            user,
            join,
            version,
            offers_dave,
            conn: Some(conn),
            close: None,
            session: None,
            dave_version: 0,
            prepared: HashMap::new(),
            recognised: BTreeSet::new(),
            seen: Vec::new(),
            last_seq: None,
            errors: Vec::new(),
            ignore_proposals: 0,
            double_key_package: false,
        });
        self.s.handle_ws_message(conn, text(identify).as_message(), self.now);
        self.pump();
        self.clients.len() - 1
    }

    /// The UDP address a client's Select Protocol gives.
    pub fn udp_addr(user: u64) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40_000 + (user % 20_000) as u16))
    }

    pub fn select(&mut self, user: u64) {
        let conn = self.client(user).conn.unwrap();
        let port = Self::udp_addr(user).port();
        let select = json!({"op":1,"d":{"protocol":"udp","data":{"address":"127.0.0.1","port":port,
            "mode":"aead_aes256_gcm_rtpsize"}}});
        self.s.handle_ws_message(conn, text(select).as_message(), self.now);
        self.pump();
    }

    /// Sends `frames` from `user`'s client, then settles.
    pub fn send(&mut self, user: u64, frames: Vec<WsFrame>) {
        let conn = self.client(user).conn.unwrap();
        for f in frames {
            self.s.handle_ws_message(conn, f.as_message(), self.now);
        }
        self.pump();
    }

    /// The session ends (closed with 4014): the room hears op 13.
    pub fn leave(&mut self, user: u64) {
        self.s.inject(Fault::CloseUser { user: Snowflake(user), code: 4014, after: None }, self.now);
        self.pump();
    }

    /// The websocket drops (1006); the session stays resumable.
    pub fn drop_ws(&mut self, user: u64) {
        let conn = self.client(user).conn.take().unwrap();
        self.s.handle_ws_close(conn, Some(1006), self.now);
        self.pump();
    }

    /// A new websocket and Resume with the last `seq` seen.
    pub fn resume(&mut self, user: u64) {
        let version = self.client(user).version;
        let conn = self.s.accept(version, self.now);
        let c = self.client(user);
        c.conn = Some(conn);
        let resume = json!({"op":7,"d":{"server_id":G.to_string(),"session_id":c.join.session_id,
            "token":c.join.token.expose(),"seq_ack":c.last_seq.unwrap_or(-1)}});
        self.s.handle_ws_message(conn, text(resume).as_message(), self.now);
        self.pump();
    }

    /// Fake time passes; deadlines fire; the room settles.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.s.handle_timeout(self.now);
        self.pump();
    }

    fn drain(&mut self) {
        loop {
            match self.s.poll_output() {
                ServerOutput::WsSend { conn, frame } => {
                    if let Some(t) = frame.as_text() {
                        let v: Value = serde_json::from_str(t).unwrap();
                        if v["op"] == 22 {
                            *self.executes.entry(v["d"]["transition_id"].as_u64().unwrap() as u16).or_default() += 1;
                        }
                    }
                    self.queue.push_back((conn, Ok(frame)));
                }
                ServerOutput::WsClose { conn, code } => self.queue.push_back((conn, Err(code))),
                ServerOutput::Event(e) => self.events.push(e),
                ServerOutput::Transmit { to, bytes } => self.transmits.push((to, bytes)),
                ServerOutput::Timeout(_) => return,
                _ => {}
            }
        }
    }

    /// Delivers every frame until nothing moves. Bounded.
    pub fn pump(&mut self) {
        for _ in 0..100_000 {
            self.drain();
            let Some((conn, frame)) = self.queue.pop_front() else { return };
            let frame = match frame {
                Ok(f) => f,
                Err(code) => {
                    if let Some(c) = self.clients.iter_mut().find(|c| c.conn == Some(conn)) {
                        c.conn = None;
                        c.close = Some(code);
                    }
                    continue;
                }
            };
            let execute = frame.as_text().and_then(|t| {
                let v: Value = serde_json::from_str(t).ok()?;
                (v["op"] == 22).then(|| v["d"]["transition_id"].as_u64().unwrap() as u16)
            });
            if let Some(i) = self.clients.iter().position(|c| c.conn == Some(conn)) {
                let replies = self.clients[i].receive(&frame);
                for r in replies {
                    self.s.handle_ws_message(conn, r.as_message(), self.now);
                }
            }
            if let Some(tid) = execute {
                let left = self.executes.entry(tid).or_default();
                *left = left.saturating_sub(1);
                if *left == 0 {
                    self.executes.remove(&tid);
                    self.check();
                }
            }
        }
        panic!("the room never settles");
    }

    /// Clients whose state is the group's: in the roster, not pending,
    /// connected.
    pub fn members(&self) -> Vec<usize> {
        let info = self.info();
        let pending: BTreeSet<Snowflake> = info.pending.iter().copied().collect();
        (0..self.clients.len())
            .filter(|&i| {
                let c = &self.clients[i];
                c.conn.is_some() && info.roster.contains(&Snowflake(c.user)) && !pending.contains(&Snowflake(c.user))
            })
            .collect()
    }

    /// The invariant after every op 22: every member's davey session has
    /// the server's epoch and roster, all epoch authenticators are equal,
    /// and every member decrypts every other member's Opus.
    pub fn check(&mut self) {
        self.checks += 1;
        let info = self.info();
        if info.protocol_version == 0 {
            for c in &self.clients {
                assert!(c.session.as_ref().is_none_or(|s| !s.can_encrypt()), "user {} still encrypts at v0", c.user);
            }
            return;
        }
        let roster: Vec<u64> = info.roster.iter().map(|u| u.0).collect();
        let members = self.members();
        let mut auth = None;
        for &i in &members {
            let c = &self.clients[i];
            let s = c.session.as_ref().unwrap_or_else(|| panic!("user {} has no session", c.user));
            assert_eq!(s.get_user_ids().unwrap(), roster, "user {}'s roster", c.user);
            assert_eq!(s.epoch().map(|e| e.as_u64()), Some(info.epoch), "user {}'s epoch", c.user);
            assert!(s.can_encrypt(), "user {} cannot encrypt", c.user);
            let a = s.get_epoch_authenticator().unwrap().as_slice().to_vec();
            assert_eq!(auth.get_or_insert_with(|| a.clone()), &a, "user {}'s epoch authenticator", c.user);
        }
        for &a in &members {
            for &b in &members {
                if a == b {
                    continue;
                }
                let opus = [0xFC, a as u8, b as u8, self.checks as u8, 0x55, 0xAA];
                let sender = self.clients[a].user;
                let sealed = self.clients[a].session.as_mut().unwrap().encrypt_opus(&opus).unwrap().into_owned();
                assert_ne!(sealed, opus);
                assert_eq!(sealed[sealed.len() - 2..], [0xFA, 0xFA]);
                let opened = self.clients[b].session.as_mut().unwrap().decrypt(sender, MediaType::AUDIO, &sealed);
                assert_eq!(opened.unwrap(), opus, "{} → {}", sender, self.clients[b].user);
            }
        }
    }

    /// Every davey error so far, by user.
    pub fn errors(&self) -> Vec<(u64, String)> {
        self.clients.iter().flat_map(|c| c.errors.iter().map(|e| (c.user, e.clone()))).collect()
    }

    /// The transitions executed, from the events.
    pub fn executed(&self) -> Vec<(u16, u64, u16, bool)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::DaveTransitionExecuted { transition_id, epoch, protocol_version, timed_out, .. } => {
                    Some((*transition_id, *epoch, *protocol_version, *timed_out))
                }
                _ => None,
            })
            .collect()
    }
}

/// Snowflakes of `ids`.
pub fn users(ids: &[u64]) -> Vec<Snowflake> {
    ids.iter().map(|&u| Snowflake(u)).collect()
}
