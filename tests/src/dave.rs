//! Counting frames across DAVE transitions: what a sender sent while it and
//! a receiver were both in the group (both could send audio), and what of
//! that the receiver got.

use std::collections::HashSet;
use std::time::Instant;

use crate::sim::{Sim, SimClient};

/// One direction of audio between two clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Frames the sender sent while both were in the group.
    pub expected: usize,
    /// Of those, frames the receiver got.
    pub received: usize,
    /// When the frames that never arrived were sent.
    pub lost_at: Vec<Instant>,
}

fn within(intervals: &[(Instant, Option<Instant>)], t: Instant) -> bool {
    intervals.iter().any(|&(from, to)| from <= t && to.is_none_or(|to| t < to))
}

/// The flow from `from` to `to`.
pub fn flow(from: &SimClient, to: &SimClient) -> Flow {
    let got: HashSet<&[u8]> = to.received.iter().filter(|r| r.user == from.user).map(|r| r.opus.as_slice()).collect();
    let mut f = Flow { expected: 0, received: 0, lost_at: Vec::new() };
    for (t, frame) in &from.sent {
        if !(within(&from.sendable, *t) && within(&to.sendable, *t)) {
            continue;
        }
        f.expected += 1;
        if got.contains(frame.as_slice()) {
            f.received += 1;
        } else {
            f.lost_at.push(*t);
        }
    }
    f
}

/// Every flow between distinct clients of `clients`.
pub fn flows(sim: &Sim, clients: &[usize]) -> Vec<((usize, usize), Flow)> {
    let mut out = Vec::new();
    for &a in clients {
        for &b in clients {
            if a != b {
                out.push(((a, b), flow(&sim.clients[a], &sim.clients[b])));
            }
        }
    }
    out
}

/// Two clients (0 and 1) in one DAVE group on a simulation, for the audio
/// hot path: client 0's `send_opus` and `handle_datagram` with DAVE on,
/// fed by client 1 through the server core.
pub struct DavePair {
    /// The simulation; both clients can send audio.
    pub sim: Sim,
    out: Vec<u8>,
}

impl DavePair {
    /// Builds the pair and runs until both can send and each has heard the
    /// other (so every SSRC is known).
    pub fn new(seed: u64) -> Self {
        let mut sim = Sim::call(seed);
        let now = sim.now;
        sim.clients[0].queue_frames(1, now);
        sim.clients[1].queue_frames(1, now);
        sim.run_for(std::time::Duration::from_secs(1));
        let voice = |c: &SimClient| c.received.iter().filter(|r| r.opus != voice_rtp::OPUS_SILENCE).count();
        assert!(sim.clients.iter().all(|c| voice(c) == 1), "the pair did not hear each other");
        assert!(sim.clients[0].conn.stats().dave.frames_decrypted == 1);
        DavePair { sim, out: Vec::with_capacity(1500) }
    }

    /// A datagram from client 1 carrying `opus`, DAVE-encrypted, as the
    /// server forwards it to client 0 (re-sealed under client 0's key).
    pub fn forwarded(&mut self, opus: &[u8]) -> Vec<u8> {
        let now = self.sim.now;
        let t = self.sim.clients[1].conn.send_opus(opus, now, &mut self.out).expect("client 1 sends");
        while !matches!(self.sim.clients[1].conn.poll_output(), voice_proto::Output::Timeout { .. }) {}
        let (from, to) = (self.sim.clients[1].addr, self.sim.clients[0].addr);
        self.sim.server.handle_datagram(from, &self.out[..t.len], now);
        let mut forwarded = None;
        loop {
            match self.sim.server.poll_output() {
                voice_mock::ServerOutput::Transmit { to: dest, bytes } if dest == to => forwarded = Some(bytes),
                voice_mock::ServerOutput::Timeout(_) => break,
                _ => {}
            }
        }
        forwarded.expect("the server forwarded the packet")
    }
}
