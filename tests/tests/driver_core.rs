//! The driver layer's call core under fake time, against the voice-mock
//! server core with instant links: pacing on an absolute schedule, the
//! late-frame skip after a stalled task, flush, pulled sources, and frames
//! that wait for end-to-end encryption instead of going out in plaintext.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};
use voice_driver::queue;
use voice_driver::{AudioOut, CallCore, CallState, Channels, Io, Looped, ReceivedAudio};
use voice_mock::{ConnId, DavePolicy, MockServer, ServerConfig, ServerOutput};
use voice_proto::wire::Snowflake;
use voice_proto::{Config, VoiceConnection};

const GUILD: Snowflake = Snowflake(1);
const CHANNEL: Snowflake = Snowflake(2);
const STEP: Duration = Duration::from_millis(1);

struct Party {
    core: CallCore,
    user: Snowflake,
    addr: SocketAddr,
    ws: Option<ConnId>,
    frames: queue::Sender<Bytes>,
    audio: queue::Receiver<ReceivedAudio>,
    /// When each of this party's audio datagrams went out.
    sent_at: Vec<Instant>,
    /// The task is stalled: it is not polled (time goes on).
    stalled: bool,
}

struct World {
    now: Instant,
    server: MockServer,
    server_addr: SocketAddr,
    parties: Vec<Party>,
}

impl World {
    fn new(dave: DavePolicy) -> Self {
        let now = Instant::now();
        let server_addr: SocketAddr = "203.0.113.10:50000".parse().unwrap();
        let config = ServerConfig { udp_addr: server_addr, dave, ..ServerConfig::default() };
        World { now, server: MockServer::new(config, now), server_addr, parties: Vec::new() }
    }

    fn add(&mut self, user: u64) -> usize {
        self.add_listening(user, true)
    }

    /// A party; `listening`: its application takes the received audio.
    fn add_listening(&mut self, user: u64, listening: bool) -> usize {
        let i = self.parties.len();
        let user = Snowflake(user);
        let mut config = Config::new(GUILD, user);
        config.seed = user.get();
        let mut conn = VoiceConnection::new(config, self.now);
        conn.join(CHANNEL, self.now);
        let (frames_tx, frames) = queue::bounded(500);
        let (events, _events_rx) = queue::bounded(64);
        let audio = std::sync::Arc::new(AudioOut::new(2000));
        let audio_rx = if listening { audio.take_receiver().expect("first take") } else { queue::bounded(1).1 };
        let (state, _) = watch::channel(CallState::new());
        let core = CallCore::new(conn, Channels::new(frames, events, audio, state));
        let addr = SocketAddr::from(([198, 51, 100, 1 + i as u8], 40000));
        self.parties.push(Party {
            core,
            user,
            addr,
            ws: None,
            frames: frames_tx,
            audio: audio_rx,
            sent_at: Vec::new(),
            stalled: false,
        });
        i
    }

    /// What the party's task does when it runs: carry out the core's IO,
    /// take a frame, send in its slot, handle its deadline.
    fn run_party(&mut self, i: usize) {
        let now = self.now;
        if self.parties[i].stalled {
            return;
        }
        for _ in 0..4 {
            self.drain_party(i);
            let p = &mut self.parties[i];
            while p.core.pull_frame(now) {}
            if p.core.deadline().is_some_and(|d| d <= now) {
                p.core.handle_timeout(now);
                continue;
            }
            if p.core.next_slot(now).is_some_and(|s| s <= now)
                && let Some(to) = p.core.send_slot(now)
            {
                assert_eq!(to, self.server_addr);
                self.drain_party(i);
                let p = &mut self.parties[i];
                p.sent_at.push(now);
                let bytes = p.core.datagram().to_vec();
                self.server.handle_datagram(p.addr, &bytes, now);
            }
        }
        self.drain_party(i);
    }

    fn drain_party(&mut self, i: usize) {
        let now = self.now;
        while let Some(io) = self.parties[i].core.poll_io() {
            let p = &mut self.parties[i];
            match io {
                Io::Gateway(op4) => {
                    assert_eq!(op4.channel_id, Some(CHANNEL));
                    for e in self.server.join(GUILD, CHANNEL, p.user).gateway_events() {
                        p.core.handle_gateway_event(e, now);
                    }
                }
                Io::ConnectWs(target) => {
                    p.ws = Some(self.server.accept(target.version, now));
                    p.core.handle_ws_open(now);
                }
                Io::WsSend(frame) => {
                    if let Some(conn) = p.ws {
                        self.server.handle_ws_message(conn, frame.as_message(), now);
                    }
                }
                Io::CloseWs(code) => {
                    if let Some(conn) = p.ws.take() {
                        self.server.handle_ws_close(conn, Some(code), now);
                    }
                }
                Io::Transmit { to, bytes } => {
                    assert_eq!(to, self.server_addr);
                    self.server.handle_datagram(p.addr, &bytes, now);
                }
                _ => {}
            }
        }
    }

    fn run_server(&mut self) {
        let now = self.now;
        // Told the time every step; the core acts on what is due.
        self.server.handle_timeout(now);
        loop {
            match self.server.poll_output() {
                ServerOutput::Timeout(_) => return,
                ServerOutput::WsSend { conn, frame } => {
                    if let Some(p) = self.parties.iter_mut().find(|p| p.ws == Some(conn)) {
                        p.core.handle_ws_message(frame.as_message(), now);
                    }
                }
                ServerOutput::WsClose { conn, code } => {
                    if let Some(p) = self.parties.iter_mut().find(|p| p.ws == Some(conn)) {
                        p.ws = None;
                        p.core.handle_ws_close(Some(code), now);
                    }
                }
                ServerOutput::Transmit { to, mut bytes } => {
                    if let Some(p) = self.parties.iter_mut().find(|p| p.addr == to) {
                        p.core.handle_datagram(self.server_addr, &mut bytes, now);
                    }
                }
                _ => {}
            }
        }
    }

    /// One millisecond of the world.
    fn step(&mut self) {
        for _ in 0..3 {
            self.run_server();
            for i in 0..self.parties.len() {
                self.run_party(i);
            }
        }
        self.now += STEP;
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut World) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    /// Runs until every party is connected and able to send.
    fn connect_all(&mut self) {
        let ready =
            self.run_until(Duration::from_secs(5), |w| w.parties.iter().all(|p| p.core.connection().can_send_audio()));
        assert!(ready, "all connected and able to send");
    }

    /// Runs until party `i`'s flush is answered (everything it had to send
    /// went out), for at most `limit`; whether it was.
    fn run_until_flushed(&mut self, i: usize, limit: Duration) -> bool {
        let (tx, mut flushed) = oneshot::channel();
        self.parties[i].core.add_flush_waiter(tx);
        self.run_until(limit, |_| flushed.try_recv().is_ok())
    }

    fn connected_pair(dave: DavePolicy) -> (World, usize, usize) {
        let mut w = World::new(dave);
        let (a, b) = (w.add(10), w.add(20));
        w.connect_all();
        (w, a, b)
    }
}

/// Distinct frames that look like Opus.
fn frame(i: usize) -> Bytes {
    let mut f = vec![0xFC, (i >> 8) as u8, i as u8];
    f.extend((0..(i % 40 + 8)).map(|j| (i * 7 + j) as u8));
    Bytes::from(f)
}

fn received(p: &mut Party) -> Vec<Bytes> {
    std::iter::from_fn(|| p.audio.try_recv().ok())
        .map(|a| a.opus)
        .filter(|o| o.as_ref() != voice_rtp::OPUS_SILENCE)
        .collect()
}

#[test]
fn frames_leave_one_per_slot_on_an_absolute_schedule() {
    let (mut w, a, b) = World::connected_pair(DavePolicy::Off);
    let sent: Vec<Bytes> = (0..200).map(frame).collect();
    for f in &sent {
        w.parties[a].frames.try_send(f.clone()).unwrap();
    }
    assert!(w.run_until_flushed(a, Duration::from_secs(10)), "flush answered");
    let times = &w.parties[a].sent_at;
    assert_eq!(times.len(), 200);
    let gaps: Vec<Duration> = times.windows(2).map(|t| t[1] - t[0]).collect();
    assert!(gaps.iter().all(|g| *g == Duration::from_millis(20)), "exactly 20 ms apart: {gaps:?}");
    assert_eq!(times[199] - times[0], Duration::from_millis(20 * 199), "no drift");
    w.run_until(Duration::from_millis(200), |_| false);
    assert_eq!(received(&mut w.parties[b]), sent, "every frame, in order");
    let s = w.parties[a].core.stats();
    assert_eq!((s.frames_sent, s.frames_dropped_late, s.frames_dropped_not_ready), (200, 0, 0));
}

#[test]
fn a_stalled_task_skips_the_missed_slots_instead_of_bursting() {
    let (mut w, a, b) = World::connected_pair(DavePolicy::Off);
    for i in 0..100 {
        w.parties[a].frames.try_send(frame(i)).unwrap();
    }
    w.run_until(Duration::from_secs(5), |w| w.parties[a].sent_at.len() == 40);
    // The task stalls for 105 ms: five slots and a bit.
    let stall_start = w.now;
    w.parties[a].stalled = true;
    w.run_until(Duration::from_millis(105), |_| false);
    w.parties[a].stalled = false;
    w.run_until(Duration::from_secs(5), |w| w.parties[a].core.stats().frames_sent + 4 >= 100);
    w.run_until(Duration::from_millis(200), |_| false);
    let s = w.parties[a].core.stats();
    // Resumed 105 ms after the last send: the slots at +20..+80 were
    // missed, the frame of the current slot (+100) goes at once.
    assert_eq!(s.frames_dropped_late, 4, "as many queued frames dropped as slots were missed");
    assert_eq!(s.slots_skipped, 4);
    assert_eq!(s.frames_sent, 96);
    let after: Vec<Instant> = w.parties[a].sent_at.iter().copied().filter(|t| *t > stall_start).collect();
    let gaps: Vec<u128> = after.windows(2).map(|t| (t[1] - t[0]).as_millis()).collect();
    // The late frame goes at once (6 ms into its slot), then the original
    // phase again: one frame per slot, no burst.
    assert_eq!(gaps[0], 14, "{gaps:?}");
    assert!(gaps[1..].iter().all(|g| *g == 20), "no burst after the stall: {gaps:?}");
    assert_eq!(received(&mut w.parties[b]).len(), 96, "what was sent arrived");
}

#[test]
fn a_task_late_by_less_than_three_slots_sends_every_frame_without_a_burst() {
    let (mut w, a, b) = World::connected_pair(DavePolicy::Off);
    let sent: Vec<Bytes> = (0..60).map(frame).collect();
    for f in &sent {
        w.parties[a].frames.try_send(f.clone()).unwrap();
    }
    w.run_until(Duration::from_secs(5), |w| w.parties[a].sent_at.len() == 20);
    // The task stalls for 50 ms: the slot after the last send is 30 ms
    // behind when it runs again, within the limit.
    let stall_start = w.now;
    w.parties[a].stalled = true;
    w.run_until(Duration::from_millis(50), |_| false);
    w.parties[a].stalled = false;
    w.run_until(Duration::from_secs(5), |w| w.parties[a].sent_at.len() == 60);
    w.run_until(Duration::from_millis(200), |_| false);
    let s = w.parties[a].core.stats();
    assert_eq!((s.frames_sent, s.frames_dropped_late, s.slots_skipped), (60, 0, 0), "nothing dropped");
    let after: Vec<Instant> = w.parties[a].sent_at.iter().copied().filter(|t| *t > stall_start).collect();
    let gaps: Vec<u128> = after.windows(2).map(|t| (t[1] - t[0]).as_millis()).collect();
    // The late frames go half a slot apart until the schedule is met, then
    // one per slot on the original phase.
    assert!(gaps.iter().all(|g| *g >= 10), "no burst: {gaps:?}");
    assert!(gaps[..3].iter().all(|g| *g < 20), "catching up: {gaps:?}");
    assert!(gaps[gaps.len() - 10..].iter().all(|g| *g == 20), "back on schedule: {gaps:?}");
    let first = w.parties[a].sent_at[0];
    let last = *w.parties[a].sent_at.last().unwrap();
    assert_eq!(last - first, Duration::from_millis(20 * 59), "the original phase, no drift");
    assert_eq!(received(&mut w.parties[b]), sent, "every frame, in order");
}

#[test]
fn audio_nobody_listens_to_is_counted_dropped_and_the_listener_hears_it_all() {
    let mut w = World::new(DavePolicy::Off);
    let (a, b, c) = (w.add(10), w.add(20), w.add_listening(30, false));
    w.connect_all();
    let sent: Vec<Bytes> = (0..50).map(frame).collect();
    w.parties[a].core.play_source(Box::new(Looped::times(sent.clone(), 1)));
    assert!(w.run_until_flushed(a, Duration::from_secs(5)), "played");
    w.run_until(Duration::from_millis(200), |_| false);
    assert_eq!(received(&mut w.parties[b]), sent);
    assert_eq!(w.parties[b].core.stats().audio_dropped, 0);
    // Every packet the unheard party got (the frames and the silence after
    // them) was counted, none kept.
    assert!(w.parties[c].core.stats().audio_dropped >= sent.len() as u64);
}

#[test]
fn a_pulled_source_plays_without_the_queue() {
    let (mut w, a, b) = World::connected_pair(DavePolicy::Off);
    let frames: Vec<Bytes> = (0..10).map(frame).collect();
    w.parties[a].core.play_source(Box::new(Looped::times(frames.clone(), 3)));
    assert!(w.run_until_flushed(a, Duration::from_secs(5)), "flush waits for the source");
    w.run_until(Duration::from_millis(200), |_| false);
    let expected: Vec<Bytes> = frames.iter().cycle().take(30).cloned().collect();
    assert_eq!(received(&mut w.parties[b]), expected);
    let gaps = w.parties[a].sent_at.windows(2).map(|t| t[1] - t[0]);
    assert!(gaps.into_iter().all(|g| g == Duration::from_millis(20)));
}

#[test]
fn frames_wait_for_end_to_end_encryption_and_never_go_in_plaintext() {
    let mut w = World::new(DavePolicy::Required);
    let a = w.add(10);
    assert!(w.run_until(Duration::from_secs(2), |w| w.parties[a].core.connection().is_ready()), "connected");
    // Frames queued before anyone else joined: the bot alone has no group.
    for i in 0..20 {
        w.parties[a].frames.try_send(frame(i)).unwrap();
    }
    w.run_until(Duration::from_secs(1), |_| false);
    assert_eq!(w.parties[a].sent_at.len(), 0, "nothing sent while no key is installed");
    assert!(w.parties[a].core.stats().e2ee_waits >= 1);
    let b = w.add(20);
    let sent = w.run_until(Duration::from_secs(10), |w| w.parties[a].sent_at.len() == 20);
    let c = w.parties[a].core.connection();
    let (s, ready, can) = (w.parties[a].core.stats(), c.is_ready(), c.can_send_audio());
    let can_b = w.parties[b].core.connection().can_send_audio();
    assert!(sent, "sent once keyed: {ready} {can} {can_b} {s:?}");
    w.run_until(Duration::from_millis(300), |_| false);
    let s = w.parties[a].core.stats();
    assert_eq!(s.proto.dave.frames_encrypted, 20, "every frame end-to-end encrypted");
    assert_eq!((s.frames_dropped_late, s.frames_dropped_not_ready), (0, 0));
    let got = received(&mut w.parties[b]);
    assert_eq!(got, (0..20).map(frame).collect::<Vec<_>>(), "decrypted by the member who joined");
}
