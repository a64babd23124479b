//! Sink mode: RTP from a session alone in its room is opened (to verify it)
//! and counted in the UDP receiver, then dropped, instead of going to the
//! core; RTP from a session with someone to hear it still goes to the core
//! to be forwarded, after being counted here too.
//!
//! The receiver keeps one table, SSRC to cipher and counters, behind a
//! mutex that only it takes per datagram; the driver updates the table when
//! the core says a route changed (a session got its key, a room gained or
//! lost its second member, a session ended), before the frames that tell
//! the client about it are written. No allocation per datagram.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use voice_rtp::{Cipher, DatagramKind, RtpPacket, classify};

use crate::core::SinkRoute;

/// Gaps shorter than this are counted in 0.1 ms buckets.
const FINE_END_US: u64 = 50_000;
/// Gaps from `FINE_END_US` up to this are counted in 1 ms buckets; longer
/// ones in the overflow bucket.
const COARSE_END_US: u64 = 200_000;
const FINE_BUCKETS: usize = (FINE_END_US / 100) as usize;
const COARSE_BUCKETS: usize = ((COARSE_END_US - FINE_END_US) / 1000) as usize;
/// Buckets of a [`GapHistogram`], the overflow bucket included.
const BUCKETS: usize = FINE_BUCKETS + COARSE_BUCKETS + 1;

/// A histogram of the time between consecutive packets of one SSRC (or of
/// many, merged), in fixed memory: 0.1 ms buckets below 50 ms, 1 ms buckets
/// from 50 ms to 200 ms, and one bucket for longer gaps (whose longest
/// value is kept exactly in [`GapHistogram::max`]).
#[derive(Clone, PartialEq, Eq)]
pub struct GapHistogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max_us: u64,
}

impl Default for GapHistogram {
    fn default() -> Self {
        GapHistogram { counts: Box::new([0; BUCKETS]), total: 0, max_us: 0 }
    }
}

impl core::fmt::Debug for GapHistogram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GapHistogram")
            .field("count", &self.total)
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max())
            .finish()
    }
}

fn bucket_of(us: u64) -> usize {
    if us < FINE_END_US {
        (us / 100) as usize
    } else if us < COARSE_END_US {
        FINE_BUCKETS + ((us - FINE_END_US) / 1000) as usize
    } else {
        BUCKETS - 1
    }
}

/// The range of bucket `i` in microseconds; the overflow bucket ends at `max_us`.
fn bucket_range(i: usize, max_us: u64) -> (u64, u64) {
    if i < FINE_BUCKETS {
        (i as u64 * 100, (i as u64 + 1) * 100)
    } else if i < BUCKETS - 1 {
        let j = (i - FINE_BUCKETS) as u64;
        (FINE_END_US + j * 1000, FINE_END_US + (j + 1) * 1000)
    } else {
        (COARSE_END_US, max_us.max(COARSE_END_US))
    }
}

impl GapHistogram {
    /// Counts one gap.
    pub fn record(&mut self, gap: Duration) {
        let us = u64::try_from(gap.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket_of(us)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Adds every gap counted in `other`.
    pub fn merge(&mut self, other: &GapHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Gaps counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The longest gap counted.
    pub fn max(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_micros(self.max_us))
    }

    /// The gap below which a share `q` (0 to 1) of the gaps fall, to the
    /// bucket: the upper end of the bucket that holds it (0.1 ms or 1 ms
    /// resolution; in the overflow bucket, the longest gap). `None` when
    /// nothing was counted.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (_, hi) = bucket_range(i, self.max_us);
                return Some(Duration::from_micros(hi.min(self.max_us.max(1))));
            }
        }
        self.max()
    }

    /// Gaps of at least `gap`, to the bucket: the count of every bucket
    /// that starts at or above it.
    pub fn count_at_least(&self, gap: Duration) -> u64 {
        let us = u64::try_from(gap.as_micros()).unwrap_or(u64::MAX);
        (0..BUCKETS).filter(|&i| bucket_range(i, self.max_us).0 >= us).map(|i| self.counts[i]).sum()
    }

    /// The buckets that counted something: (from, to, count), shortest
    /// first. The overflow bucket runs from 200 ms to the longest gap.
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, Duration, u64)> + '_ {
        self.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, &c)| {
            let (lo, hi) = bucket_range(i, self.max_us);
            (Duration::from_micros(lo), Duration::from_micros(hi), c)
        })
    }
}

/// What the sink counted for one SSRC (or for many, summed), over the
/// current window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkCounters {
    /// RTP packets that opened under the session's key.
    pub packets: u64,
    /// Their datagram sizes, summed.
    pub bytes: u64,
    /// Of those, packets handed on to the core to be forwarded (the room
    /// had another member); the rest were dropped after counting.
    pub forwarded: u64,
    /// Packets the sender numbered in the window, by RTP sequence number:
    /// the highest (extended) sequence number seen minus the highest seen
    /// before the window (for a new SSRC, its first packet counts from one
    /// before it). `expected - packets` is the loss ([`SinkCounters::lost`]).
    pub expected: u64,
    /// RTP packets with the session's SSRC that failed to open (dropped
    /// when sunk; handed to the core, which counts them too, when
    /// forwarded).
    pub decrypt_failures: u64,
    /// Time between consecutive packets that opened, measured at receive.
    /// The first gap of a window runs from the last packet before it.
    pub gaps: GapHistogram,
}

impl SinkCounters {
    /// Packets numbered but not received (duplicates can hide losses, as
    /// in RFC 3550's count).
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.packets)
    }

    /// Adds `other` into these counters.
    pub fn merge(&mut self, other: &SinkCounters) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.forwarded += other.forwarded;
        self.expected += other.expected;
        self.decrypt_failures += other.decrypt_failures;
        self.gaps.merge(&other.gaps);
    }
}

/// The sink's counters since the window began (the server's start or the
/// last [`crate::Server::take_sink_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// How long the window has run.
    pub window: Duration,
    /// Every SSRC's counters summed, those of sessions that ended during
    /// the window included.
    pub total: SinkCounters,
    /// Per SSRC of a live session.
    pub ssrcs: BTreeMap<u32, SinkCounters>,
    /// RTP datagrams whose SSRC belongs to no session, dropped (without
    /// sink mode the core counts these in `ServerStats::junk_datagrams`).
    pub unknown_ssrc: u64,
}

/// RTP sequence numbers of one SSRC, extended past 16 bits.
#[derive(Debug, Default, Clone, Copy)]
struct Sequence {
    /// Highest extended sequence number seen.
    highest: Option<u64>,
    /// The highest before the window began.
    base: Option<u64>,
}

impl Sequence {
    /// Counts `seq` (read as the extended value nearest the highest).
    fn see(&mut self, seq: u16) {
        let ext = match self.highest {
            // Room below the first value for packets that come reordered.
            None => u64::from(seq) + (1 << 16),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                h.saturating_add_signed(delta)
            }
        };
        if self.base.is_none() {
            self.base = Some(ext.saturating_sub(1));
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
    }

    /// Packets numbered in the window.
    fn expected(&self) -> u64 {
        match (self.highest, self.base) {
            (Some(h), Some(b)) => h.saturating_sub(b),
            _ => 0,
        }
    }

    /// A new window starts after the highest seen.
    fn restart(&mut self) {
        self.base = self.highest;
    }
}

/// One SSRC in the table.
struct Entry {
    cipher: Option<Cipher>,
    forward: bool,
    last: Option<Instant>,
    sequence: Sequence,
    counters: SinkCounters,
}

impl Entry {
    /// The counters, with `expected` from the sequence numbers.
    fn counters(&self) -> SinkCounters {
        SinkCounters { expected: self.sequence.expected(), ..self.counters.clone() }
    }
}

/// What the receiver does with a datagram after the sink saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Counted and dropped here.
    Done,
    /// Hand it to the core as without sink mode.
    Core,
}

/// The receiver's table: SSRC to cipher and counters.
pub(crate) struct SinkTable {
    entries: HashMap<u32, Entry>,
    /// Counters of sessions that ended in this window.
    ended: SinkCounters,
    unknown_ssrc: u64,
    since: Instant,
    scratch: Box<[u8]>,
}

impl SinkTable {
    pub(crate) fn new(now: Instant, max_datagram: usize) -> Self {
        SinkTable {
            entries: HashMap::new(),
            ended: SinkCounters::default(),
            unknown_ssrc: 0,
            since: now,
            scratch: vec![0; max_datagram].into_boxed_slice(),
        }
    }

    /// A route from the core: a new or changed session, or (`None`) one
    /// that ended, whose counters stay in the window's total.
    pub(crate) fn apply(&mut self, ssrc: u32, route: Option<SinkRoute>) {
        match route {
            Some(r) => {
                let e = self.entries.entry(ssrc).or_insert_with(|| Entry {
                    cipher: None,
                    forward: false,
                    last: None,
                    sequence: Sequence::default(),
                    counters: SinkCounters::default(),
                });
                e.cipher = r.cipher;
                e.forward = r.forward;
            }
            None => {
                if let Some(e) = self.entries.remove(&ssrc) {
                    self.ended.merge(&e.counters());
                }
            }
        }
    }

    /// Looks at one datagram received at `now`.
    pub(crate) fn receive(&mut self, data: &[u8], now: Instant) -> Verdict {
        if data.len() > self.scratch.len() || classify(data) != DatagramKind::Rtp {
            return Verdict::Core;
        }
        let Ok(packet) = RtpPacket::new(data) else { return Verdict::Core };
        let sequence = packet.sequence();
        let Some(e) = self.entries.get_mut(&packet.ssrc()) else {
            self.unknown_ssrc += 1;
            return Verdict::Done;
        };
        // Before Select Protocol: the core counts it.
        let Some(cipher) = &e.cipher else { return Verdict::Core };
        let buf = &mut self.scratch[..data.len()];
        buf.copy_from_slice(data);
        if cipher.open(buf).is_ok() {
            let c = &mut e.counters;
            c.packets += 1;
            c.bytes += data.len() as u64;
            if let Some(last) = e.last {
                c.gaps.record(now.saturating_duration_since(last));
            }
            e.last = Some(now);
            e.sequence.see(sequence);
            if e.forward {
                c.forwarded += 1;
            }
        } else {
            e.counters.decrypt_failures += 1;
        }
        if e.forward { Verdict::Core } else { Verdict::Done }
    }

    /// The counters of the window so far.
    pub(crate) fn snapshot(&self, now: Instant) -> SinkStats {
        let mut total = self.ended.clone();
        let mut ssrcs = BTreeMap::new();
        for (&ssrc, e) in &self.entries {
            let counters = e.counters();
            total.merge(&counters);
            ssrcs.insert(ssrc, counters);
        }
        SinkStats { window: now.saturating_duration_since(self.since), total, ssrcs, unknown_ssrc: self.unknown_ssrc }
    }

    /// The counters of the window so far; a new window starts at `now`.
    /// The time of each SSRC's last packet is kept, so the first gap of the
    /// new window is measured too.
    pub(crate) fn take(&mut self, now: Instant) -> SinkStats {
        let stats = self.snapshot(now);
        for e in self.entries.values_mut() {
            e.counters = SinkCounters::default();
            e.sequence.restart();
        }
        self.ended = SinkCounters::default();
        self.unknown_ssrc = 0;
        self.since = now;
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> Duration {
        Duration::from_micros((x * 1000.0).round() as u64)
    }

    #[test]
    fn buckets_cover_fine_coarse_and_overflow() {
        let mut h = GapHistogram::default();
        assert_eq!((h.count(), h.quantile(0.5), h.max()), (0, None, None));
        for _ in 0..98 {
            h.record(ms(20.03));
        }
        h.record(ms(75.5));
        h.record(Duration::from_secs(3));
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), Some(ms(20.1)));
        assert_eq!(h.quantile(0.98), Some(ms(20.1)));
        assert_eq!(h.quantile(0.99), Some(ms(76.0)));
        assert_eq!(h.quantile(1.0), Some(Duration::from_secs(3)));
        assert_eq!(h.max(), Some(Duration::from_secs(3)));
        assert_eq!(h.count_at_least(ms(30.0)), 2);
        assert_eq!(h.count_at_least(ms(200.0)), 1);
        let b: Vec<_> = h.buckets().collect();
        assert_eq!(b, vec![(ms(20.0), ms(20.1), 98), (ms(75.0), ms(76.0), 1), (ms(200.0), ms(3000.0), 1)]);
        let mut m = GapHistogram::default();
        m.record(ms(0.05));
        m.merge(&h);
        assert_eq!((m.count(), m.quantile(0.0)), (101, Some(ms(0.1))));
    }

    #[test]
    fn sequence_numbers_count_what_was_sent_across_wrap_and_windows() {
        let mut s = Sequence::default();
        for seq in [65_530u16, 65_531, 65_533, 65_532, 65_535, 0, 2] {
            s.see(seq);
        }
        // 65530..=2 is 9 numbers; 7 arrived.
        assert_eq!(s.expected(), 9);
        s.restart();
        assert_eq!(s.expected(), 0);
        s.see(1); // late, from before the window
        s.see(4);
        assert_eq!(s.expected(), 2);
    }
}
