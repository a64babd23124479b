//! A seeded network emulator for datagrams: latency, jitter, loss, burst
//! loss (Gilbert-Elliott), duplication, reordering and scripted drops, in
//! the spirit of str0m's netem.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Link settings for one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Fixed one-way delay.
    pub latency: Duration,
    /// Extra delay drawn uniformly in `[0, jitter)`: packets can reorder.
    pub jitter: Duration,
    /// Share of packets lost, 0.0..=1.0.
    pub loss: f64,
}

impl Default for Link {
    fn default() -> Self {
        Link { latency: Duration::from_millis(10), jitter: Duration::ZERO, loss: 0.0 }
    }
}

/// Burst loss, Gilbert-Elliott: a good state that loses nothing and a bad
/// state that loses `loss_bad` of its packets; each packet first moves
/// good to bad with `p_enter`, bad to good with `p_leave` (mean burst
/// `1 / p_leave` packets; mean loss `loss_bad * p_enter / (p_enter + p_leave)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Chance per packet of entering the bad state.
    pub p_enter: f64,
    /// Chance per packet of leaving it.
    pub p_leave: f64,
    /// Share lost while bad.
    pub loss_bad: f64,
    /// In the bad state now.
    pub bad: bool,
}

/// Packets in flight, by delivery time (ties keep sending order).
#[derive(Debug)]
pub struct Netem<T> {
    rng: fastrand::Rng,
    /// The link settings.
    pub link: Link,
    in_flight: BTreeMap<(Instant, u64), T>,
    seq: u64,
    /// Packets dropped by loss or by `drop_next`.
    pub dropped: u64,
    /// Packets to drop unconditionally before loss applies.
    pub drop_next: u64,
    /// Packets delivered.
    pub delivered: u64,
    /// Burst loss on top of `link.loss`.
    pub burst: Option<GilbertElliott>,
    /// Share of packets delivered twice (the copy after its own jitter).
    pub duplicate: f64,
    /// Copies made by `duplicate`.
    pub duplicated: u64,
}

impl<T: Clone> Netem<T> {
    /// An emulator with `link`, seeded.
    pub fn new(link: Link, seed: u64) -> Self {
        Netem {
            rng: fastrand::Rng::with_seed(seed),
            link,
            in_flight: BTreeMap::new(),
            seq: 0,
            dropped: 0,
            drop_next: 0,
            delivered: 0,
            burst: None,
            duplicate: 0.0,
            duplicated: 0,
        }
    }

    /// Sends `packet` at `now`; it may be lost.
    pub fn send(&mut self, packet: T, now: Instant) {
        if self.drop_next > 0 {
            self.drop_next -= 1;
            self.dropped += 1;
            return;
        }
        if self.link.loss > 0.0 && self.rng.f64() < self.link.loss {
            self.dropped += 1;
            return;
        }
        if let Some(ge) = self.burst.as_mut() {
            let flip = if ge.bad { ge.p_leave } else { ge.p_enter };
            if self.rng.f64() < flip {
                ge.bad = !ge.bad;
            }
            if ge.bad && self.rng.f64() < ge.loss_bad {
                self.dropped += 1;
                return;
            }
        }
        if self.duplicate > 0.0 && self.rng.f64() < self.duplicate {
            self.duplicated += 1;
            self.enqueue(packet.clone(), now);
        }
        self.enqueue(packet, now);
    }

    fn enqueue(&mut self, packet: T, now: Instant) {
        let jitter = if self.link.jitter.is_zero() { Duration::ZERO } else { self.link.jitter.mul_f64(self.rng.f64()) };
        self.seq += 1;
        self.in_flight.insert((now + self.link.latency + jitter, self.seq), packet);
    }

    /// When the next packet arrives.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.keys().next().map(|k| k.0)
    }

    /// The next packet due at `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        let (&key, _) = self.in_flight.iter().next()?;
        if key.0 > now {
            return None;
        }
        self.delivered += 1;
        self.in_flight.remove(&key)
    }

    /// Packets in flight.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }
}
