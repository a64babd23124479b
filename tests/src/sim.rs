//! [`Sim`]: clients and the mock server core on a simulated network, with a
//! fake clock that jumps from one event to the next.
//!
//! The simulated main gateway answers each client's op 4 the way Discord
//! does (a voice state update and a voice server update, in a chosen order),
//! using the server core's `join` for credentials.
//!
//! Each client's sender paces its queued frames with the driver layer's own
//! [`Pacer`] and late-frame policy, so a stalled sender task
//! ([`SimClient::stalled_until`]) is simulated as the adapters behave.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voice_mock::{ConnId, MockServer, ServerConfig, ServerEvent, ServerOutput};
use voice_proto::wire::{Snowflake, WsFrame};
use voice_proto::{Config, Datagram, Event, GatewayEvent, Output, UpdateVoiceState, VoiceConnection, VoiceStateUpdate};
use voice_rtp::{DatagramKind, RtpPacket, classify};

use voice_driver::pacing::{FRAME, Pacer};

use crate::netem::{Link, Netem};

/// The guild every simulated client is in.
pub const GUILD: Snowflake = Snowflake(333333333333333333);
/// The default channel.
pub const CHANNEL: Snowflake = Snowflake(444444444444444444);
/// The endpoint the server core hands out.
pub const ENDPOINT: &str = "voice-sim-1.example:443";

/// How the simulated main gateway answers op 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayBehavior {
    /// Voice state update, then voice server update.
    StateFirst,
    /// Voice server update, then voice state update.
    ServerFirst,
    /// No answer (a full channel).
    Silent,
}

/// A voice packet a client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// When.
    pub at: Instant,
    /// From whom.
    pub user: Snowflake,
    /// Sender's SSRC.
    pub ssrc: u32,
    /// RTP sequence.
    pub sequence: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// The Opus bytes.
    pub opus: Vec<u8>,
}

/// One simulated bot.
pub struct SimClient {
    /// The state machine under test.
    pub conn: VoiceConnection,
    /// Its user id.
    pub user: Snowflake,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// The server-side id of its open websocket.
    pub ws: Option<ConnId>,
    /// URLs it connected to.
    pub urls: Vec<String>,
    /// Events, with their time.
    pub events: Vec<(Instant, Event)>,
    /// Voice received.
    pub received: Vec<Received>,
    /// Op 4 payloads it sent.
    pub gateway_sent: Vec<UpdateVoiceState>,
    /// Websocket frames it sent.
    pub ws_sent: Vec<WsFrame>,
    /// Datagrams it sent, with their time.
    pub datagrams: Vec<(Instant, Vec<u8>)>,
    /// Frames waiting to be sent, paced by the driver layer's [`Pacer`]
    /// and its late-frame policy.
    pub audio: VecDeque<Vec<u8>>,
    /// The sender's task does not run until then (a stalled executor
    /// thread): on waking, the pacer sends late frames or skips slots.
    pub stalled_until: Option<Instant>,
    /// Queued frames the late-frame policy dropped after a stall.
    pub frames_dropped_late: u64,
    /// Frames refused because the session was not ready.
    pub audio_refused: u64,
    /// 20 ms ticks a frame waited because end-to-end encryption was not
    /// ready yet (the frame stays queued, as the adapters keep it).
    pub e2ee_wait_ticks: u64,
    /// Opus frames `send_opus` accepted, with their time.
    pub sent: Vec<(Instant, Vec<u8>)>,
    /// Extra delay of the websocket frames the server sends this client
    /// (a slow control path), on top of the control latency.
    pub ws_delay: Duration,
    /// When it could send audio (`can_send_audio`), as intervals: on a DAVE
    /// call, from its first transition until it left or lost its key.
    pub sendable: Vec<(Instant, Option<Instant>)>,
    /// The `seq` of the last numbered message delivered on the current
    /// websocket (what a resume must acknowledge).
    pub last_seq_delivered: Option<i64>,
    /// Websocket messages it rejected as errors.
    pub ws_errors: u64,
    /// How the main gateway answers it.
    pub gateway: GatewayBehavior,
    /// The server address it last sent a datagram to: the server answers
    /// from there.
    pub server_peer: Option<SocketAddr>,
    next_frame: Option<Instant>,
    pacer: Pacer,
    awaiting_e2ee: bool,
    deadline: Option<Instant>,
    out: Vec<u8>,
}

impl SimClient {
    /// Events of the given kind.
    pub fn events_matching(&self, f: impl Fn(&Event) -> bool) -> Vec<Event> {
        self.events.iter().filter(|(_, e)| f(e)).map(|(_, e)| e.clone()).collect()
    }

    /// Whether an event matching `f` happened.
    pub fn saw(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.events.iter().any(|(_, e)| f(e))
    }

    /// Text frames it sent, parsed.
    pub fn sent_messages(&self) -> Vec<voice_proto::wire::Message> {
        self.ws_sent
            .iter()
            .filter_map(|f| f.as_text().and_then(|t| voice_proto::wire::Message::parse(t).ok()).map(|m| m.message))
            .collect()
    }

    /// Queues `n` distinct frames to send, starting at the next 20 ms tick.
    pub fn queue_frames(&mut self, n: usize, now: Instant) {
        let base = self.audio.len() + self.received.len() + self.datagrams.len();
        for i in 0..n {
            let k = base + i;
            let mut f = vec![0xFC, (k >> 8) as u8, k as u8];
            f.extend((0..(k % 40 + 8)).map(|j| (k * 31 + j * 7) as u8));
            self.audio.push_back(f);
        }
        if self.next_frame.is_none() {
            // Frames after the queue ran dry: not a stall.
            self.pacer.resume_after_idle(now);
            self.next_frame = Some(now + Duration::from_millis(20));
        }
    }
}

enum Delivery {
    WsOpen { client: usize, conn: ConnId },
    ToClient { client: usize, conn: ConnId, frame: WsFrame },
    CloseToClient { client: usize, conn: ConnId, code: Option<u16> },
    ToServer { conn: ConnId, frame: WsFrame },
    Gateway { client: usize, event: GatewayEvent },
    ServerLeave { user: Snowflake },
}

/// The simulation.
pub struct Sim {
    /// The fake clock.
    pub now: Instant,
    /// When the simulation started.
    pub t0: Instant,
    /// The server core.
    pub server: MockServer,
    /// The server's UDP address (what Readys announce).
    pub server_addr: SocketAddr,
    /// Addresses the server announced before [`Sim::move_server_udp`]: it
    /// still serves them, for the sessions that use them.
    pub old_server_addrs: Vec<SocketAddr>,
    /// The clients.
    pub clients: Vec<SimClient>,
    /// Client-to-server datagrams.
    pub up: Netem<(usize, Vec<u8>)>,
    /// Server-to-client datagrams.
    pub down: Netem<(SocketAddr, Vec<u8>)>,
    /// Websocket and main-gateway latency.
    pub control_latency: Duration,
    /// Server events, with their time.
    pub server_events: Vec<(Instant, ServerEvent)>,
    /// Drop every websocket frame clients send (a server that stopped
    /// answering).
    pub blackhole_ws_to_server: bool,
    /// Rewrites websocket frames on their way to a client (index, frame):
    /// a server that frames things differently.
    pub rewrite_to_client: Option<fn(usize, &mut WsFrame)>,
    control: BTreeMap<(Instant, u64), Delivery>,
    seq: u64,
    server_deadline: Option<Instant>,
}

impl Sim {
    /// A simulation with a server using `config` (its `ws_endpoint` and
    /// `udp_addr` are set here) and lossless 10 ms links.
    pub fn new(mut config: ServerConfig, seed: u64) -> Self {
        let t0 = Instant::now();
        let server_addr: SocketAddr = "203.0.113.10:50000".parse().unwrap();
        config.udp_addr = server_addr;
        config.ws_endpoint = ENDPOINT.to_owned();
        config.seed = seed;
        Sim {
            now: t0,
            t0,
            server: MockServer::new(config, t0),
            server_addr,
            old_server_addrs: Vec::new(),
            clients: Vec::new(),
            up: Netem::new(Link::default(), seed ^ 1),
            down: Netem::new(Link::default(), seed ^ 2),
            control_latency: Duration::from_millis(10),
            server_events: Vec::new(),
            blackhole_ws_to_server: false,
            rewrite_to_client: None,
            control: BTreeMap::new(),
            seq: 0,
            server_deadline: None,
        }
    }

    /// A simulation with the default server configuration.
    pub fn default_server(seed: u64) -> Self {
        Sim::new(ServerConfig::default(), seed)
    }

    /// Two bots, users 111 (client 0) and 222 (client 1), connected in
    /// [`CHANNEL`] and able to send (on the default DAVE server: in one
    /// group): the starting point of most scenarios.
    pub fn call(seed: u64) -> Self {
        let mut sim = Sim::default_server(seed);
        for user in [111, 222] {
            let i = sim.add_client(user, |_| {});
            sim.connect(i, CHANNEL);
        }
        assert!(sim.run_until_sendable(&[0, 1], Duration::from_secs(10)), "the two bots cannot send");
        sim
    }

    /// Adds a client for `user`; `tweak` adjusts its config. Returns its index.
    pub fn add_client(&mut self, user: u64, tweak: impl FnOnce(&mut Config)) -> usize {
        let i = self.clients.len();
        let mut config = Config::new(GUILD, Snowflake(user));
        config.seed = user ^ 0xC0FFEE;
        tweak(&mut config);
        self.clients.push(SimClient {
            conn: VoiceConnection::new(config, self.now),
            user: Snowflake(user),
            addr: SocketAddr::from(([198, 51, 100, 1 + i as u8], 40000 + i as u16)),
            ws: None,
            urls: Vec::new(),
            events: Vec::new(),
            received: Vec::new(),
            gateway_sent: Vec::new(),
            ws_sent: Vec::new(),
            datagrams: Vec::new(),
            audio: VecDeque::new(),
            audio_refused: 0,
            e2ee_wait_ticks: 0,
            sent: Vec::new(),
            ws_delay: Duration::ZERO,
            sendable: Vec::new(),
            last_seq_delivered: None,
            ws_errors: 0,
            gateway: GatewayBehavior::StateFirst,
            server_peer: None,
            stalled_until: None,
            frames_dropped_late: 0,
            next_frame: None,
            pacer: Pacer::default(),
            awaiting_e2ee: false,
            deadline: None,
            out: Vec::with_capacity(1500),
        });
        i
    }

    /// Client `i` joins `channel`.
    pub fn join(&mut self, i: usize, channel: Snowflake) {
        let now = self.now;
        self.clients[i].conn.join(channel, now);
        self.drain_all();
    }

    fn schedule(&mut self, after: Duration, d: Delivery) {
        self.seq += 1;
        self.control.insert((self.now + after, self.seq), d);
    }

    /// Delivers a main-gateway event to client `i` after the control latency.
    pub fn gateway_event(&mut self, i: usize, event: GatewayEvent) {
        self.schedule(self.control_latency, Delivery::Gateway { client: i, event });
    }

    /// Delivers what the main gateway sends after a server-side move.
    pub fn deliver_join_info(&mut self, i: usize, info: &voice_mock::JoinInfo, state_update: bool) {
        let [state, server] = info.gateway_events();
        if state_update {
            self.gateway_event(i, state);
        }
        self.gateway_event(i, server);
    }

    /// Closes client `i`'s websocket abnormally (no close frame) on both sides.
    pub fn break_ws(&mut self, i: usize) {
        let now = self.now;
        if let Some(conn) = self.clients[i].ws.take() {
            self.server.handle_ws_close(conn, None, now);
            self.clients[i].conn.handle_ws_close(None, now);
        }
        self.drain_all();
    }

    /// Hands client `i` a websocket text frame as if from the server (if
    /// its socket is open); returns whether the client accepted it.
    pub fn client_ws_text(&mut self, i: usize, text: &str) -> bool {
        let now = self.now;
        let c = &mut self.clients[i];
        let ok = c.ws.is_some() && c.conn.handle_ws_message(voice_proto::wire::WsMessage::Text(text), now).is_ok();
        self.drain_all();
        ok
    }

    /// Hands client `i` a datagram as if from the server.
    pub fn client_datagram(&mut self, i: usize, mut bytes: Vec<u8>) {
        let (now, from) = (self.now, self.server_addr);
        let _ = self.clients[i].conn.handle_datagram(from, &mut bytes, now);
        self.drain_all();
    }

    /// The server announces `addr` for media in every Ready from now on
    /// (it keeps serving the old address for the sessions that use it).
    pub fn move_server_udp(&mut self, addr: SocketAddr) {
        self.server.set_udp_addr(addr);
        let old = std::mem::replace(&mut self.server_addr, addr);
        self.old_server_addrs.push(old);
    }

    /// A NAT rebind: client `i`'s datagrams reach the server from `addr`
    /// from now on, and what is sent to its old address is lost.
    pub fn rebind(&mut self, i: usize, addr: SocketAddr) {
        self.clients[i].addr = addr;
    }

    /// Injects a server fault now.
    pub fn inject(&mut self, fault: voice_mock::Fault) {
        let now = self.now;
        self.server.inject(fault, now);
        self.drain_all();
    }

    fn on_op4(&mut self, i: usize, p: UpdateVoiceState) {
        let c = &mut self.clients[i];
        c.gateway_sent.push(p.clone());
        let (user, behavior) = (c.user, c.gateway);
        if behavior == GatewayBehavior::Silent {
            return;
        }
        match p.channel_id {
            Some(channel) => {
                let [state, server] = self.server.join(GUILD, channel, user).gateway_events();
                let (a, b) = if behavior == GatewayBehavior::ServerFirst { (server, state) } else { (state, server) };
                self.gateway_event(i, a);
                self.schedule(
                    self.control_latency + Duration::from_millis(1),
                    Delivery::Gateway { client: i, event: b },
                );
            }
            None => {
                // The voice server hears of the leave from the main gateway,
                // one more hop away.
                self.schedule(self.control_latency * 2, Delivery::ServerLeave { user });
                let state = GatewayEvent::VoiceStateUpdate(VoiceStateUpdate {
                    guild_id: Some(GUILD),
                    channel_id: None,
                    user_id: user,
                    session_id: "gone".into(),
                });
                self.gateway_event(i, state);
            }
        }
    }

    fn drain_client(&mut self, i: usize) -> bool {
        let mut any = false;
        loop {
            let out = self.clients[i].conn.poll_output();
            let now = self.now;
            match out {
                Output::Timeout { at, .. } => {
                    assert!(at.is_none_or(|at| at >= now), "client {i}: deadline {at:?} before now");
                    self.clients[i].deadline = at;
                    return any;
                }
                Output::GatewaySend(p) => self.on_op4(i, p),
                Output::ConnectWs(target) => {
                    let conn = self.server.accept(target.version, now);
                    let url = target.url();
                    let c = &mut self.clients[i];
                    assert!(c.ws.is_none(), "client {i}: ConnectWs while a socket is open");
                    c.ws = Some(conn);
                    c.urls.push(url);
                    self.schedule(self.control_latency, Delivery::WsOpen { client: i, conn });
                }
                Output::WsSend(frame) => {
                    let c = &mut self.clients[i];
                    c.ws_sent.push(frame.clone());
                    if let Some(conn) = c.ws {
                        self.schedule(self.control_latency, Delivery::ToServer { conn, frame });
                    }
                }
                Output::CloseWs { code } => {
                    if let Some(conn) = self.clients[i].ws.take() {
                        self.server.handle_ws_close(conn, Some(code), now);
                    }
                }
                Output::Transmit { to, bytes } => {
                    assert!(
                        to == self.server_addr || self.old_server_addrs.contains(&to),
                        "client {i} sent to a stranger"
                    );
                    let c = &mut self.clients[i];
                    c.server_peer = Some(to);
                    c.datagrams.push((now, bytes.clone()));
                    self.up.send((i, bytes), now);
                }
                Output::Event(e) => self.clients[i].events.push((now, e)),
                Output::Voice(p) => self.clients[i].received.push(Received {
                    at: now,
                    user: p.user_id,
                    ssrc: p.ssrc,
                    sequence: p.sequence,
                    timestamp: p.timestamp,
                    opus: p.opus,
                }),
                _ => {}
            }
            any = true;
        }
    }

    fn drain_server(&mut self) -> bool {
        let mut any = false;
        loop {
            match self.server.poll_output() {
                ServerOutput::Timeout(at) => {
                    self.server_deadline = at;
                    return any;
                }
                ServerOutput::WsSend { conn, frame } => {
                    if let Some(client) = self.clients.iter().position(|c| c.ws == Some(conn)) {
                        let delay = self.control_latency + self.clients[client].ws_delay;
                        self.schedule(delay, Delivery::ToClient { client, conn, frame });
                    }
                }
                ServerOutput::WsClose { conn, code } => {
                    if let Some(client) = self.clients.iter().position(|c| c.ws == Some(conn)) {
                        let delay = self.control_latency + self.clients[client].ws_delay;
                        self.schedule(delay, Delivery::CloseToClient { client, conn, code: Some(code) });
                    }
                }
                ServerOutput::WsCut { conn } => {
                    // No close frame: the client learns of it from the
                    // broken connection, a moment later.
                    if let Some(client) = self.clients.iter().position(|c| c.ws == Some(conn)) {
                        let delay = self.control_latency + self.clients[client].ws_delay;
                        self.schedule(delay, Delivery::CloseToClient { client, conn, code: None });
                    }
                }
                ServerOutput::Transmit { to, bytes } => self.down.send((to, bytes), self.now),
                ServerOutput::Event(e) => self.server_events.push((self.now, e)),
                _ => {}
            }
            any = true;
        }
    }

    /// Drains every party until nobody has output left.
    pub fn drain_all(&mut self) {
        for _ in 0..1000 {
            let mut any = self.drain_server();
            for i in 0..self.clients.len() {
                any |= self.drain_client(i);
            }
            if !any {
                return;
            }
        }
        panic!("outputs never ran dry");
    }

    fn next_time(&self) -> Option<Instant> {
        let mut t = [
            self.control.keys().next().map(|k| k.0),
            self.up.next_delivery(),
            self.down.next_delivery(),
            self.server_deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        for c in &self.clients {
            for d in [c.deadline, c.next_frame.filter(|_| !c.audio.is_empty())].into_iter().flatten() {
                t = Some(t.map_or(d, |t| t.min(d)));
            }
        }
        t
    }

    /// Advances to the next event and processes everything due then.
    /// Returns false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.drain_all();
        let Some(next) = self.next_time() else { return false };
        self.now = self.now.max(next);
        let now = self.now;
        while let Some((&key, _)) = self.control.iter().next() {
            if key.0 > now {
                break;
            }
            let Some(d) = self.control.remove(&key) else { break };
            self.deliver(d);
            // The contract: drain after every input (voice a message
            // released comes out before the next datagram's).
            self.drain_all();
        }
        while let Some((i, bytes)) = self.up.poll(now) {
            let from = self.clients[i].addr;
            self.server.handle_datagram(from, &bytes, now);
        }
        while let Some((to, mut bytes)) = self.down.poll(now) {
            if let Some(c) = self.clients.iter_mut().find(|c| c.addr == to)
                && let Ok(Datagram::Voice(p)) =
                    c.conn.handle_datagram(c.server_peer.unwrap_or(self.server_addr), &mut bytes, now)
            {
                c.received.push(Received {
                    at: now,
                    user: p.user_id,
                    ssrc: p.ssrc,
                    sequence: p.sequence,
                    timestamp: p.timestamp,
                    opus: p.opus.to_vec(),
                });
            }
            self.drain_all();
        }
        if self.server_deadline.is_some_and(|d| d <= now) {
            self.server.handle_timeout(now);
        }
        for i in 0..self.clients.len() {
            if self.clients[i].deadline.is_some_and(|d| d <= now) {
                self.clients[i].conn.handle_timeout(now);
            }
            self.audio_tick(i);
        }
        self.drain_all();
        for c in &mut self.clients {
            let open = c.sendable.last().is_some_and(|(_, end)| end.is_none());
            match (c.conn.can_send_audio(), open) {
                (true, false) => c.sendable.push((now, None)),
                (false, true) => {
                    if let Some(last) = c.sendable.last_mut() {
                        last.1 = Some(now);
                    }
                }
                _ => {}
            }
        }
        true
    }

    /// The sender, as the driver layer's call core sends: the frame at
    /// hand goes in the slot its [`Pacer`] gives, and after a stall the
    /// pacer's late-frame policy drops queued frames.
    fn audio_tick(&mut self, i: usize) {
        let now = self.now;
        let c = &mut self.clients[i];
        let Some(due) = c.next_frame.filter(|d| *d <= now) else { return };
        if c.audio.is_empty() {
            c.next_frame = None;
            return;
        }
        if let Some(until) = c.stalled_until.filter(|t| now < *t) {
            // The task is not running: it looks again when it wakes.
            c.next_frame = Some(until);
            return;
        }
        if c.conn.is_ready() && !c.conn.can_send_audio() {
            // A DAVE call before its first transition: the frame waits.
            c.e2ee_wait_ticks += 1;
            c.awaiting_e2ee = true;
            c.next_frame = Some(due + FRAME);
            return;
        }
        if std::mem::take(&mut c.awaiting_e2ee) {
            // Keyed at last: the stream starts afresh, not late.
            c.pacer.reset();
        }
        let slot = c.pacer.slot(now);
        if slot > now {
            c.next_frame = Some(slot);
            return;
        }
        let Some(frame) = c.audio.pop_front() else { return };
        c.pacer.sent(now);
        let audio = &mut c.audio;
        c.frames_dropped_late += c.pacer.drop_missed(|| audio.pop_front().is_some());
        c.next_frame = Some(c.pacer.upcoming().unwrap_or(now + FRAME));
        let mut out = std::mem::take(&mut c.out);
        match c.conn.send_opus(&frame, now, &mut out) {
            Ok(t) => {
                c.sent.push((now, frame));
                // Speaking (op 5) goes out before the datagram.
                self.drain_client(i);
                let c = &mut self.clients[i];
                c.datagrams.push((now, out[..t.len].to_vec()));
                self.up.send((i, out[..t.len].to_vec()), now);
            }
            Err(_) => self.clients[i].audio_refused += 1,
        }
        self.clients[i].out = out;
    }

    fn deliver(&mut self, d: Delivery) {
        let now = self.now;
        match d {
            Delivery::WsOpen { client, conn } => {
                if self.clients[client].ws == Some(conn) {
                    self.clients[client].conn.handle_ws_open(now);
                }
            }
            Delivery::ToClient { client, conn, mut frame } => {
                if let Some(rewrite) = self.rewrite_to_client {
                    rewrite(client, &mut frame);
                }
                let c = &mut self.clients[client];
                if c.ws != Some(conn) {
                    return;
                }
                let seq = match &frame {
                    WsFrame::Binary(b) if b.len() >= 2 => Some(i64::from(u16::from_be_bytes([b[0], b[1]]))),
                    f => f.as_text().and_then(|t| voice_proto::wire::Message::parse(t).ok()).and_then(|m| m.seq),
                };
                if seq.is_some() {
                    c.last_seq_delivered = seq;
                }
                if c.conn.handle_ws_message(frame.as_message(), now).is_err() {
                    c.ws_errors += 1;
                }
            }
            Delivery::CloseToClient { client, conn, code } => {
                let c = &mut self.clients[client];
                if c.ws == Some(conn) {
                    c.ws = None;
                    c.conn.handle_ws_close(code, now);
                }
            }
            Delivery::ToServer { .. } if self.blackhole_ws_to_server => {}
            Delivery::ToServer { conn, frame } => self.server.handle_ws_message(conn, frame.as_message(), now),
            Delivery::Gateway { client, event } => self.clients[client].conn.handle_gateway_event(event, now),
            Delivery::ServerLeave { user } => self.server.leave(GUILD, user, now),
        }
    }

    /// Steps until `done` holds or `limit` of simulated time passes; returns
    /// whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        for _ in 0..2_000_000 {
            self.drain_all();
            if done(self) {
                return true;
            }
            if self.next_time().is_none_or(|t| t > end) {
                self.now = self.now.max(end);
                return done(self);
            }
            self.step();
        }
        panic!("simulation did not settle (livelock?)");
    }

    /// Steps for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Drops every client's queued audio (what was sent stays counted).
    pub fn stop_audio(&mut self) {
        for c in &mut self.clients {
            c.audio.clear();
        }
    }

    /// Client `i` leaves its channel now; it can no longer send from now.
    pub fn leave(&mut self, i: usize) {
        let now = self.now;
        self.clients[i].conn.leave(now);
        if let Some(last) = self.clients[i].sendable.last_mut().filter(|l| l.1.is_none()) {
            last.1 = Some(now);
        }
        self.drain_all();
    }

    /// Runs until every client in `clients` can send audio (on a DAVE call:
    /// its first transition executed) or `limit` passes; returns whether
    /// they all can.
    pub fn run_until_sendable(&mut self, clients: &[usize], limit: Duration) -> bool {
        self.run_until(limit, |s| clients.iter().all(|&i| s.clients[i].conn.can_send_audio()))
    }

    /// Joins client `i` to `channel` and runs until it is connected.
    pub fn connect(&mut self, i: usize, channel: Snowflake) {
        self.join(i, channel);
        let ok =
            self.run_until(Duration::from_secs(10), |s| s.clients[i].saw(|e| matches!(e, Event::Connected { .. })));
        assert!(ok, "client {i} did not connect: {:?}", self.clients[i].events);
    }
}

/// Checks client `i`'s invariants (the property tests' and the server
/// fuzz target's): no output dropped, no voice datagram before its
/// session's description, no nonce twice under one session's key.
pub fn check_client_invariants(sim: &Sim, i: usize) {
    let c = &sim.clients[i];
    assert_eq!(c.conn.stats().outputs_dropped, 0, "client {i}: an output queue overflowed");
    let sessions: HashMap<u32, std::time::Instant> = c
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::Connected { ssrc, .. } => Some((*ssrc, *t)),
            _ => None,
        })
        .collect();
    let mut nonces: HashMap<u32, HashSet<[u8; 4]>> = HashMap::new();
    for (t, d) in &c.datagrams {
        if classify(d) != DatagramKind::Rtp {
            continue;
        }
        let Ok(p) = RtpPacket::new(d) else { panic!("client {i}: its own RTP does not parse") };
        let ssrc = p.ssrc();
        assert!(sessions.get(&ssrc).is_some_and(|c| c <= t), "client {i}: voice before its session's description");
        let Some(suffix) = d.len().checked_sub(4).and_then(|s| <[u8; 4]>::try_from(&d[s..]).ok()) else {
            panic!("client {i}: its own RTP has no nonce suffix")
        };
        assert!(nonces.entry(ssrc).or_default().insert(suffix), "client {i}: nonce repeated under one key");
    }
}
