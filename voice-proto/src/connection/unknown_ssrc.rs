//! Voice from an SSRC the server has not named yet. Op 5 (on the
//! websocket) and the first packet (on UDP) race; PROTOCOL.md §3.7
//! recommends buffering briefly rather than dropping. A few datagrams are
//! kept, sealed as they came, and opened once op 5 names their SSRC;
//! older or excess ones are dropped (counted as `unknown_ssrc_drops`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::stats::Stats;

/// Datagrams kept at most, over all unknown SSRCs.
const MAX_WAITING: usize = 16;
/// How long one is kept.
const MAX_AGE: Duration = Duration::from_secs(1);

/// Datagrams waiting for their SSRC to be named.
#[derive(Debug, Default)]
pub(crate) struct Unnamed {
    waiting: VecDeque<(Instant, u32, Vec<u8>)>,
}

impl Unnamed {
    /// Keeps a datagram from an SSRC no op 5 named yet.
    pub(crate) fn keep(&mut self, ssrc: u32, datagram: &[u8], now: Instant, stats: &mut Stats) {
        self.expire(now, stats);
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front();
            stats.unknown_ssrc_drops += 1;
        }
        self.waiting.push_back((now, ssrc, datagram.to_vec()));
        stats.unknown_ssrc_held += 1;
    }

    /// Op 5 named `ssrc`: its kept datagrams, each with the time it came,
    /// in the order they came (for the connection to open and deliver).
    pub(crate) fn take_named(&mut self, ssrc: u32, now: Instant, stats: &mut Stats) -> Vec<(Instant, Vec<u8>)> {
        self.expire(now, stats);
        if !self.waiting.iter().any(|(_, s, _)| *s == ssrc) {
            return Vec::new();
        }
        let (mine, others): (VecDeque<_>, VecDeque<_>) =
            std::mem::take(&mut self.waiting).into_iter().partition(|(_, s, _)| *s == ssrc);
        self.waiting = others;
        mine.into_iter().map(|(arrived, _, bytes)| (arrived, bytes)).collect()
    }

    /// The session ended: whatever waits is dropped (counted).
    pub(crate) fn clear(&mut self, stats: &mut Stats) {
        stats.unknown_ssrc_drops += self.waiting.len() as u64;
        self.waiting.clear();
    }

    fn expire(&mut self, now: Instant, stats: &mut Stats) {
        while let Some((at, _, _)) = self.waiting.front() {
            if now.saturating_duration_since(*at) <= MAX_AGE {
                break;
            }
            self.waiting.pop_front();
            stats.unknown_ssrc_drops += 1;
        }
    }
}
