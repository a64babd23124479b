//! Voice from an SSRC the server has not named yet. Op 5 (on the
//! websocket) and the first packet (on UDP) race; PROTOCOL.md §3.7
//! recommends buffering briefly rather than dropping. A few datagrams are
//! kept, sealed as they came, and opened once op 5 names their SSRC;
//! older or excess ones are dropped (counted as `unknown_ssrc_drops`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Datagram, OwnedVoicePacket, VoiceConnection};
use crate::output::Output;

/// Datagrams kept at most, over all unknown SSRCs.
const MAX_WAITING: usize = 16;
/// How long one is kept.
const MAX_AGE: Duration = Duration::from_secs(1);

/// Datagrams waiting for their SSRC to be named.
#[derive(Debug, Default)]
pub(crate) struct Unnamed {
    waiting: VecDeque<(Instant, u32, Vec<u8>)>,
}

impl VoiceConnection {
    /// Keeps a datagram from an SSRC no op 5 named yet.
    pub(crate) fn keep_unnamed(&mut self, ssrc: u32, datagram: &[u8], now: Instant) {
        self.expire_unnamed(now);
        if self.unnamed.waiting.len() >= MAX_WAITING {
            self.unnamed.waiting.pop_front();
            self.stats.unknown_ssrc_drops += 1;
        }
        self.unnamed.waiting.push_back((now, ssrc, datagram.to_vec()));
        self.stats.unknown_ssrc_held += 1;
    }

    /// Op 5 named `ssrc`: its kept datagrams are opened and delivered as
    /// [`Output::Voice`], in the order they came.
    pub(crate) fn release_unnamed(&mut self, ssrc: u32, now: Instant) {
        self.expire_unnamed(now);
        if !self.unnamed.waiting.iter().any(|(_, s, _)| *s == ssrc) {
            return;
        }
        let (mine, others): (VecDeque<_>, VecDeque<_>) =
            std::mem::take(&mut self.unnamed.waiting).into_iter().partition(|(_, s, _)| *s == ssrc);
        self.unnamed.waiting = others;
        for (arrived, _, mut bytes) in mine {
            // Counted as arriving when it came (jitter), delivered now.
            if let Ok(Datagram::Voice(p)) = self.receive_rtp(&mut bytes, now, arrived) {
                let (ssrc, user_id, sequence, timestamp) = (p.ssrc, p.user_id, p.sequence, p.timestamp);
                let packet = OwnedVoicePacket { ssrc, user_id, sequence, timestamp, opus: p.opus.to_vec() };
                self.push(Output::Voice(packet));
            }
        }
    }

    /// The session ended: whatever waits is dropped (counted).
    pub(crate) fn clear_unnamed(&mut self) {
        self.stats.unknown_ssrc_drops += self.unnamed.waiting.len() as u64;
        self.unnamed.waiting.clear();
    }

    fn expire_unnamed(&mut self, now: Instant) {
        while let Some((at, _, _)) = self.unnamed.waiting.front() {
            if now.saturating_duration_since(*at) <= MAX_AGE {
                break;
            }
            self.unnamed.waiting.pop_front();
            self.stats.unknown_ssrc_drops += 1;
        }
    }
}
