//! A seeded network emulator for datagrams: latency, jitter, loss, burst
//! loss (Gilbert-Elliott), duplication, reordering (by jitter, or held back
//! behind a number of later packets), a path MTU and scripted drops, in the
//! spirit of str0m's netem.

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

/// Reordering as its own knob: a share of packets is held back and
/// delivered right after the `window`-th packet sent after it (or, if the
/// stream pauses first, `max_hold` after it was sent).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reorder {
    /// Share of packets held back, 0.0..=1.0.
    pub share: f64,
    /// How many later packets overtake a held one.
    pub window: usize,
    /// Longest a held packet waits for them.
    pub max_hold: Duration,
}

/// What a packet weighs on the wire, for the path MTU.
pub trait WireSize {
    /// Bytes of the datagram.
    fn wire_size(&self) -> usize;
}

impl<A> WireSize for (A, Vec<u8>) {
    fn wire_size(&self) -> usize {
        self.1.len()
    }
}

/// A packet held back by [`Reorder`].
#[derive(Debug)]
struct Held<T> {
    packet: T,
    /// Later packets still to overtake it.
    left: usize,
    /// Released by then at the latest.
    until: Instant,
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
    /// Reordering by holding packets back, on top of jitter.
    pub reorder: Option<Reorder>,
    /// Packets held back so far.
    pub reordered: u64,
    held: Vec<Held<T>>,
    /// Datagrams larger than this are dropped (a path MTU, the IP and UDP
    /// headers already taken off).
    pub mtu: Option<usize>,
    /// Datagrams dropped for being over [`Netem::mtu`] (not in `dropped`).
    pub over_mtu: u64,
}

impl<T: Clone + WireSize> Netem<T> {
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
            reorder: None,
            reordered: 0,
            held: Vec::new(),
            mtu: None,
            over_mtu: 0,
        }
    }

    /// Sends `packet` at `now`; it may be lost.
    pub fn send(&mut self, packet: T, now: Instant) {
        if self.mtu.is_some_and(|mtu| packet.wire_size() > mtu) {
            self.over_mtu += 1;
            return;
        }
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
        if let Some(r) = self.reorder
            && r.window > 0
            && self.rng.f64() < r.share
        {
            self.reordered += 1;
            self.held.push(Held { packet, left: r.window, until: now + self.link.latency + r.max_hold });
            return;
        }
        let at = self.enqueue(packet, now);
        // Held packets that this one was the last to overtake go right
        // behind it.
        for h in &mut self.held {
            h.left -= 1;
        }
        while let Some(i) = self.held.iter().position(|h| h.left == 0) {
            let h = self.held.remove(i);
            self.put(at, h.packet);
        }
    }

    /// Puts a packet in flight after the link's delay; returns when it
    /// arrives.
    fn enqueue(&mut self, packet: T, now: Instant) -> Instant {
        let jitter = if self.link.jitter.is_zero() { Duration::ZERO } else { self.link.jitter.mul_f64(self.rng.f64()) };
        let at = now + self.link.latency + jitter;
        self.put(at, packet);
        at
    }

    /// Puts a packet in flight, arriving at `at` after those already due
    /// then.
    fn put(&mut self, at: Instant, packet: T) {
        self.seq += 1;
        self.in_flight.insert((at, self.seq), packet);
    }

    /// When the next packet arrives.
    pub fn next_delivery(&self) -> Option<Instant> {
        let held = self.held.iter().map(|h| h.until).min();
        self.in_flight.keys().next().map(|k| k.0).into_iter().chain(held).min()
    }

    /// The next packet due at `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        // Held packets whose wait ran out go in flight, due now.
        while let Some(i) = self.held.iter().position(|h| h.until <= now) {
            let h = self.held.remove(i);
            self.put(h.until, h.packet);
        }
        let (&key, _) = self.in_flight.iter().next()?;
        if key.0 > now {
            return None;
        }
        self.delivered += 1;
        self.in_flight.remove(&key)
    }

    /// Packets in flight, those held back included.
    pub fn len(&self) -> usize {
        self.in_flight.len() + self.held.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty() && self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(net: &mut Netem<(u32, Vec<u8>)>, sizes: &[usize], start: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        let mut now = start;
        for (i, &size) in sizes.iter().enumerate() {
            net.send((i as u32, vec![0; size]), now);
            now += Duration::from_millis(20);
            while let Some((n, _)) = net.poll(now) {
                out.push(n);
            }
        }
        now += Duration::from_secs(1);
        while let Some((n, _)) = net.poll(now) {
            out.push(n);
        }
        out
    }

    #[test]
    fn a_held_packet_arrives_right_after_the_window_of_later_ones() {
        let mut net = Netem::new(Link::default(), 1);
        net.reorder = Some(Reorder { share: 0.2, window: 3, max_hold: Duration::from_millis(500) });
        let got = run(&mut net, &[100; 200], Instant::now());
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..200).collect::<Vec<_>>(), "every packet once");
        assert!(net.reordered > 20, "{} held", net.reordered);
        assert!(net.is_empty());
        // A held packet is overtaken by the next three that were not held
        // (fewer only at the end of the stream); no other is overtaken.
        let overtaken: Vec<usize> =
            got.iter().enumerate().map(|(pos, &n)| got[..pos].iter().filter(|&&m| m > n).count()).collect();
        assert!(overtaken.iter().all(|&o| o <= 3), "{overtaken:?}");
        let by_three = overtaken.iter().filter(|&&o| o == 3).count() as u64;
        assert!(by_three + 3 >= net.reordered && by_three <= net.reordered, "{by_three} of {}", net.reordered);
    }

    #[test]
    fn a_held_packet_is_released_when_the_stream_pauses() {
        let mut net = Netem::new(Link::default(), 2);
        net.reorder = Some(Reorder { share: 1.0, window: 5, max_hold: Duration::from_millis(100) });
        let start = Instant::now();
        net.send((7, vec![1]), start);
        assert_eq!(net.len(), 1);
        assert_eq!(net.next_delivery(), Some(start + Link::default().latency + Duration::from_millis(100)));
        assert_eq!(net.poll(start + Duration::from_millis(50)), None);
        assert_eq!(net.poll(start + Duration::from_millis(110)).map(|p| p.0), Some(7));
    }

    #[test]
    fn datagrams_over_the_mtu_are_dropped_and_counted() {
        let mut net = Netem::new(Link::default(), 3);
        net.mtu = Some(1200);
        let got = run(&mut net, &[1200, 1201, 80, 1500], Instant::now());
        assert_eq!(got, [0, 2]);
        assert_eq!((net.over_mtu, net.dropped), (2, 0));
    }
}
