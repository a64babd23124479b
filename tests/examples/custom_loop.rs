//! Driving [`VoiceConnection`] by hand, without an async runtime: a plain
//! loop over std sockets, a blocking websocket (tungstenite) and the
//! machine's own deadline.
//!
//! An offline voice server (voice-mock) runs in the background; two clients
//! join it, each a thread running the loop below. The listener joins first;
//! the speaker then sends 50 Opus frames on an absolute 20 ms schedule and
//! the listener counts what arrives. Exit status 0 when all of it got
//! through, 1 otherwise; it gives up after 10 s.
//!
//! The contract the loop follows:
//! 1. Every input (`join`, `handle_*`, `send_opus`, `close`) takes `now`,
//!    and right after it the driver drains `poll_output()`, carrying out
//!    each output, until `Output::Timeout { at, .. }`, which always comes
//!    last and gives the next deadline.
//! 2. Then it waits for the next input, but not past `at`; once `at` has
//!    passed it calls `handle_timeout(now)` (which is an input too).
//!
//! DAVE (end-to-end encryption) is off on both sides to keep this short. On
//! a DAVE call `send_opus` refuses audio (`E2eePending`) until the first
//! transition executes (`can_send_audio()`), and received frames whose key
//! is not installed yet come back later as `Output::Voice`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::ErrorKind::WouldBlock;
use std::net::{TcpStream, UdpSocket};
use std::process::ExitCode;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};
use voice_mock::{DavePolicy, JoinInfo, RunnerConfig, Server};
use voice_proto::wire::{Snowflake, WsFrame, WsMessage};
use voice_proto::{Config, Datagram, Event, Output, Stats, VoiceConnection, WsTarget};
use voice_rtp::OPUS_SILENCE;

const FRAMES: usize = 50;
const FRAME: Duration = Duration::from_millis(20);
const GIVE_UP: Duration = Duration::from_secs(10);
/// std has no `select`: both sockets are non-blocking and the loop naps at
/// most this long between looks (a real driver blocks in poll/epoll instead).
const TICK: Duration = Duration::from_millis(2);
const GUILD: Snowflake = Snowflake(1);
const CHANNEL: Snowflake = Snowflake(2);
const LISTENER: Snowflake = Snowflake(10);
const SPEAKER: Snowflake = Snowflake(20);

fn main() -> ExitCode {
    // The voice server, on the one worker thread of its own tokio runtime;
    // the clients below use none.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let mut config = RunnerConfig { tls: false, ..RunnerConfig::default() }; // ws:// only
    config.server.dave = DavePolicy::Off;
    config.server.heartbeat_interval_ms = 1000.0; // heartbeat deadlines come due during the run
    let server = rt.block_on(Server::start(config)).expect("voice-mock");

    let (started, (ready, is_ready)) = (Instant::now(), mpsc::channel());
    let give_up = started + GIVE_UP;
    let info = server.join(GUILD, CHANNEL, LISTENER);
    let listener = std::thread::spawn(move || Client::new("listener", info, 0, FRAMES, Some(ready)).run(give_up));
    // The speaker joins once the listener is in, so that it hears every frame
    // (a listener that failed has dropped `ready`: no wait then).
    let _ = is_ready.recv_timeout(GIVE_UP);
    let info = server.join(GUILD, CHANNEL, SPEAKER);
    let speaker = std::thread::spawn(move || Client::new("speaker", info, FRAMES, 0, None).run(give_up));
    let ((speaker, _), (_, heard)) = (speaker.join().expect("speaker"), listener.join().expect("listener"));

    let sent = speaker.packets_sent - speaker.silence_frames_sent;
    let rtp_in = server.stats().users.get(&SPEAKER).map_or(0, |u| u.rtp_in);
    rt.block_on(server.shutdown());
    let ok = sent == FRAMES as u64 && heard == FRAMES;
    println!(
        "summary: {}: speaker sent {sent}/{FRAMES} audio frames + {} silence (heartbeats: {}), server got {rtp_in} \
         RTP packets, listener heard {heard} audio frames, in {:.2?}",
        if ok { "ok" } else { "FAILED" },
        speaker.silence_frames_sent,
        speaker.heartbeats_sent,
        started.elapsed()
    );
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// One voice client: the machine, the sockets it asked for, and its audio.
struct Client {
    name: &'static str,
    conn: VoiceConnection,
    /// What the bot's main gateway dispatches after op 4 (this example plays
    /// that gateway).
    info: JoinInfo,
    ws: Option<WebSocket<TcpStream>>,
    udp: UdpSocket,
    /// The machine's next deadline, from the last `Output::Timeout`.
    deadline: Option<Instant>,
    /// Frame `n` is due at `audio_start + n * 20 ms`; `slot` is the next `n`.
    audio_start: Option<Instant>,
    slot: usize,
    to_send: usize,
    /// Audio frames heard, and how many to wait for before leaving.
    heard: usize,
    to_hear: usize,
    ready: Option<Sender<()>>,
}

impl Client {
    fn new(name: &'static str, info: JoinInfo, to_send: usize, to_hear: usize, ready: Option<Sender<()>>) -> Self {
        let mut config = Config::new(info.guild_id, info.user_id);
        config.plain_ws = true; // the mock's ws:// endpoint
        config.max_dave_protocol_version = 0; // no DAVE, as on the server
        let conn = VoiceConnection::new(config, Instant::now());
        let udp = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        udp.set_nonblocking(true).expect("non-blocking udp");
        let (ws, deadline, audio_start, slot, heard) = (None, None, None, 0, 0);
        Client { name, conn, info, ws, udp, deadline, audio_start, slot, to_send, heard, to_hear, ready }
    }

    /// The loop. Returns the machine's counters and the audio frames heard.
    fn run(mut self, give_up: Instant) -> (Stats, usize) {
        let (mut buf, mut out) = ([0u8; 2048], Vec::with_capacity(2048));
        let now = Instant::now();
        self.conn.join(self.info.channel_id, now); // the first input: op 4 comes out of the drain
        self.drain(now);
        let mut leaving = false;
        while !self.conn.is_closed() && Instant::now() < give_up {
            // Inputs, each followed by a drain: websocket messages, datagrams,
            // the machine's deadline, audio due, and our own decision to leave.
            let now = Instant::now();
            self.read_ws(now);
            self.read_udp(now, &mut buf);
            if self.deadline.is_some_and(|at| now >= at) {
                self.conn.handle_timeout(now);
                self.drain(now);
            }
            self.send_audio(now, &mut out);
            if !leaving && self.slot == self.to_send && self.heard >= self.to_hear {
                // Silence trailer, op 4 without a channel, close 1000, then Event::Closed.
                leaving = true;
                self.conn.close(now);
                self.drain(now);
            }
            // Wait until the machine's deadline or the next frame is due, napping at most TICK.
            let wake = [self.deadline, self.next_slot()].into_iter().flatten().fold(now + TICK, Instant::min);
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        }
        (self.conn.stats().clone(), self.heard)
    }

    /// Carries out everything the machine asks, up to the `Timeout` that ends the drain.
    fn drain(&mut self, mut now: Instant) {
        loop {
            match self.conn.poll_output() {
                // For the main gateway, played here: a join is answered with the mock's voice
                // state and voice server updates (inputs too: this drain goes on with what they
                // produce). A leave needs no answer.
                Output::GatewaySend(op4) if op4.channel_id.is_some() => {
                    for event in self.info.gateway_events() {
                        self.conn.handle_gateway_event(event, now);
                    }
                }
                Output::ConnectWs(target) => {
                    self.ws = connect_ws(&target).inspect_err(|e| eprintln!("[{}] {target}: {e}", self.name)).ok();
                    now = Instant::now(); // connecting blocked for a while
                    match self.ws {
                        Some(_) => self.conn.handle_ws_open(now),
                        None => self.conn.handle_ws_close(None, now), // the machine retries
                    }
                }
                Output::WsSend(frame) => {
                    let message = match frame {
                        WsFrame::Text(text) => Message::text(text),
                        WsFrame::Binary(bin) => Message::binary(bin),
                        _ => continue, // WsFrame is non-exhaustive
                    };
                    // WouldBlock: the frame is buffered and goes out with the next read or send.
                    if let Some(ws) = self.ws.as_mut()
                        && let Err(e) = ws.send(message)
                        && !would_block(&e)
                    {
                        eprintln!("[{}] websocket send failed: {e}", self.name);
                        self.ws_closed(None, now);
                    }
                }
                Output::CloseWs { code } => {
                    if let Some(mut ws) = self.ws.take() {
                        let _ = ws.close(Some(CloseFrame { code: code.into(), reason: "".into() }));
                        let _ = ws.flush();
                    } // dropped: nothing more is reported from this socket
                }
                Output::Transmit { to, bytes } => {
                    let _ = self.udp.send_to(&bytes, to); // UDP may lose it; the machine retries discovery
                }
                Output::Event(event) => {
                    println!("[{}] {event:?}", self.name);
                    match event {
                        // Audio may flow now (no DAVE): frame 0 is due one frame from now.
                        Event::Connected { .. } => {
                            self.audio_start = Some(now + FRAME);
                            let _ = self.ready.take().map(|ready| ready.send(()));
                        }
                        // Down for good, unless the application joins again: close, which ends the loop.
                        Event::Disconnected { .. } => self.conn.close(now),
                        _ => {}
                    }
                }
                // A frame held for its DAVE key, now opened (not on this call).
                Output::Voice(p) => self.heard += usize::from(p.opus != OPUS_SILENCE),
                Output::Timeout { at, .. } => {
                    self.deadline = at;
                    return;
                }
                _ => {} // a leave's op 4; Output is non-exhaustive
            }
        }
    }

    fn read_ws(&mut self, now: Instant) {
        while let Some(ws) = self.ws.as_mut() {
            match ws.read() {
                Ok(Message::Text(text)) => self.ws_message(WsMessage::Text(&text), now),
                Ok(Message::Binary(bin)) => self.ws_message(WsMessage::Binary(&bin), now),
                Ok(Message::Close(frame)) => self.ws_closed(frame.map(|f| f.code.into()), now),
                Ok(_) => {} // ping, pong: tungstenite answers pings itself
                Err(e) if would_block(&e) => return,
                Err(_) => self.ws_closed(None, now), // gone without a close frame
            }
            self.drain(now);
        }
    }

    fn ws_message(&mut self, message: WsMessage<'_>, now: Instant) {
        if let Err(e) = self.conn.handle_ws_message(message, now) {
            eprintln!("[{}] websocket message ignored: {e}", self.name); // that message only
        }
    }

    /// The server closed the websocket, or it broke.
    fn ws_closed(&mut self, code: Option<u16>, now: Instant) {
        self.ws = None;
        self.conn.handle_ws_close(code, now);
    }

    fn read_udp(&mut self, now: Instant, buf: &mut [u8]) {
        // Until WouldBlock: nothing more for now.
        while let Ok((len, from)) = self.udp.recv_from(buf) {
            // Opened in place; discovery answers and keepalive echoes are consumed inside.
            match self.conn.handle_datagram(from, &mut buf[..len], now) {
                Ok(Datagram::Voice(p)) => self.heard += usize::from(p.opus != OPUS_SILENCE),
                Ok(_) => {}
                Err(e) => eprintln!("[{}] datagram dropped: {e}", self.name), // that datagram only
            }
            self.drain(now);
        }
    }

    fn next_slot(&self) -> Option<Instant> {
        let start = self.audio_start.filter(|_| self.slot < self.to_send)?;
        Some(start + FRAME * self.slot as u32)
    }

    /// Sends every frame that is due: after a late wake-up several at once,
    /// since the schedule is absolute and lateness does not accumulate.
    fn send_audio(&mut self, now: Instant, out: &mut Vec<u8>) {
        while self.next_slot().is_some_and(|due| now >= due) {
            let frame = [0xFC, self.slot as u8, 0x0A, 0x55]; // a stand-in for a 20 ms Opus frame
            self.slot += 1;
            match self.conn.send_opus(&frame, now, out) {
                Ok(t) => {
                    self.drain(now); // the first frame queues op 5 Speaking, to go out before it
                    let _ = self.udp.send_to(&out[..t.len], t.to);
                }
                // Refused, not queued (NotReady: no session right now): this frame is lost.
                Err(e) => eprintln!("[{}] frame {} not sent: {e}", self.name, self.slot - 1),
            }
        }
    }
}

fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e) if e.kind() == WouldBlock)
}

/// `ConnectWs`: TCP to `host:port`, then the upgrade to `target.url()`.
/// Blocking, a shortcut on loopback; a driver that opens it in the
/// background calls `handle_ws_open` later (`Config::ws_open_timeout` bounds it).
fn connect_ws(target: &WsTarget) -> Result<WebSocket<TcpStream>, Box<dyn std::error::Error>> {
    if target.tls {
        return Err("this example speaks ws:// only (set Config::plain_ws)".into());
    }
    let tcp = TcpStream::connect((target.host.as_str(), target.port))?;
    tcp.set_nodelay(true)?;
    let (ws, _response) = tungstenite::client(target.url(), tcp)?;
    ws.get_ref().set_nonblocking(true)?;
    Ok(ws)
}
