//! RTCP (RFC 3550 §6.4, appendix A.3 and A.8): reception statistics per
//! remote source (loss, interarrival jitter), a compound report every
//! `Config::rtcp_interval` (a sender report while we send, else a receiver
//! report, with a block per source heard since the last), and what the
//! server's reports say about our own stream (loss, jitter, round trip).
//!
//! UNCERTAIN (PROTOCOL.md §3.6): Discord does not document RTCP. Reports
//! are sealed as songbird opens the server's (8 clear bytes, the rest like
//! RTP); a server that ignores them loses nothing. `rtcp_interval = None`
//! sends none; reports from the server are read either way. The compound
//! packet carries no SDES CNAME (RFC 3550 §6.1 asks for one): Discord maps
//! SSRCs to users on the websocket, and none of its peers send one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use voice_rtp::Mode;
use voice_rtp::rtcp::{self, ReportBlock, Rtcp, SenderInfo};

use super::ssrc_users::SsrcUsers;
use crate::stats::{RemoteReport, RtcpStats, SourceStats};
use crate::wire::Snowflake;

/// RTP clock rate of Opus: timestamp units per second.
const RATE: u64 = 48_000;
/// Seconds from the NTP epoch (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// A change of transit time this large (80 ms, in timestamp units) is a
/// new talk spurt, not jitter.
const SPURT_GAP: u32 = 80 * 48;
/// RFC 3550 A.1: the largest forward gap taken as loss, and the largest
/// step back taken as a late packet; anything between is a jump.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
/// Most report blocks in one packet.
const MAX_BLOCKS: usize = 31;

/// Reception state of one remote source.
#[derive(Debug, Clone)]
struct Source {
    user: Snowflake,
    /// A packet has arrived (the fields below mean something).
    seen: bool,
    /// First sequence number seen (extended).
    base: u32,
    max_seq: u16,
    /// Sequence wraps, times 65536.
    cycles: u32,
    received: u64,
    expected_prior: u32,
    received_prior: u64,
    fraction_lost: u8,
    /// Last transit time (arrival minus RTP timestamp, in timestamp units).
    transit: Option<u32>,
    /// Interarrival jitter times 16 (RFC 3550 A.8's integer form).
    jitter_q4: u32,
    /// Middle 32 bits of the last sender report's NTP time, and when it came.
    last_sr: Option<(u32, Instant)>,
    /// A packet arrived since the last report.
    heard: bool,
    /// After a large jump in sequence: the number that would confirm it.
    bad_seq: Option<u16>,
}

impl Source {
    fn new(user: Snowflake) -> Self {
        Source {
            user,
            seen: false,
            base: 0,
            max_seq: 0,
            cycles: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            fraction_lost: 0,
            transit: None,
            jitter_q4: 0,
            last_sr: None,
            heard: false,
            bad_seq: None,
        }
    }

    fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    fn expected(&self) -> u32 {
        if !self.seen {
            return 0;
        }
        self.extended_max().wrapping_sub(self.base).wrapping_add(1)
    }

    fn lost(&self) -> i64 {
        i64::from(self.expected()) - self.received as i64
    }

    /// Starts counting afresh at `seq` (the first packet, or a sender that
    /// restarted its sequence).
    fn restart(&mut self, seq: u16) {
        *self = Source { seen: true, base: u32::from(seq), max_seq: seq, ..Source::new(self.user) };
    }

    fn on_packet(&mut self, seq: u16, timestamp: u32, arrival: u32) {
        if !self.seen {
            self.restart(seq);
        }
        // RFC 3550 A.1: in order (with a gap of fewer than MAX_DROPOUT), a
        // duplicate or a late packet (within MAX_MISORDER), or a jump; a
        // jump counts only once the packet after it confirms it.
        let delta = seq.wrapping_sub(self.max_seq);
        if delta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(1 << 16);
            }
            self.max_seq = seq;
        } else if delta <= u16::MAX - MAX_MISORDER {
            if self.bad_seq == Some(seq) {
                self.restart(seq);
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                return;
            }
        }
        self.received += 1;
        self.heard = true;
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            // A pause that the sender's timestamps did not count (they run
            // per frame sent, so a talk spurt after silence arrives "late")
            // starts a new spurt rather than counting as jitter.
            if d < SPURT_GAP {
                // J += (|D| - J) / 16, kept times 16.
                self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
            }
        }
        self.transit = Some(transit);
    }

    /// The block for a report now; starts the next interval.
    fn block(&mut self, ssrc: u32, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let interval_expected = expected.wrapping_sub(self.expected_prior);
        let interval_received = self.received - self.received_prior;
        let interval_lost = i64::from(interval_expected) - interval_received as i64;
        self.fraction_lost = if interval_expected == 0 || interval_lost <= 0 {
            0
        } else {
            ((interval_lost << 8) / i64::from(interval_expected)).min(255) as u8
        };
        self.expected_prior = expected;
        self.received_prior = self.received;
        self.heard = false;
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => (lsr, to_q16(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost: self.fraction_lost,
            cumulative_lost: self.lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_sequence: self.extended_max(),
            jitter: self.jitter_q4 >> 4,
            last_sr,
            delay_since_last_sr,
        }
    }

    fn stats(&self, ssrc: u32) -> SourceStats {
        SourceStats {
            ssrc,
            user_id: self.user,
            received: self.received,
            lost: self.lost(),
            fraction_lost: self.fraction_lost,
            jitter: units_to_duration(u64::from(self.jitter_q4 >> 4)),
            highest_sequence: self.extended_max(),
        }
    }
}

/// Reception statistics and report state of one voice session.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reception {
    sources: HashMap<u32, Source>,
    /// Packets and bytes sent when the session began and at the last report.
    sent_at_start: (u64, u64),
    sent_at_report: u64,
    /// The SSRC the next report's blocks start from.
    next_block: u32,
}

impl Reception {
    /// A new session: nothing heard (sources named already stay, fresh),
    /// counting our packets from `sent`.
    pub(crate) fn reset(&mut self, sent: (u64, u64), users: &SsrcUsers) {
        self.sources.retain(|ssrc, _| users.contains_key(ssrc));
        for s in self.sources.values_mut() {
            *s = Source::new(s.user);
        }
        self.sent_at_start = sent;
        self.sent_at_report = sent.0;
    }
}

impl Reception {
    /// Reception statistics of every source still named in `users`.
    pub(crate) fn sources<'a>(&'a self, users: &'a SsrcUsers) -> impl Iterator<Item = SourceStats> + 'a {
        self.sources.iter().filter(|(ssrc, _)| users.contains_key(ssrc)).map(|(&ssrc, s)| s.stats(ssrc))
    }

    /// The server named `user`'s SSRC (op 5): its entry is made now, off
    /// the audio path, so that the first packet allocates nothing.
    pub(crate) fn expect_source(&mut self, ssrc: u32, user: Snowflake, max_users: usize) {
        if self.sources.contains_key(&ssrc) || self.sources.len() < max_users {
            self.sources.entry(ssrc).or_insert_with(|| Source::new(user)).user = user;
        }
    }

    /// Forgets the sources of users no longer in the call.
    pub(crate) fn prune(&mut self, users: &SsrcUsers) {
        self.sources.retain(|ssrc, _| users.contains_key(ssrc));
    }

    /// An authenticated voice packet from `user`'s `ssrc` arrived at
    /// `arrived` (`start`: the connection's first instant).
    pub(crate) fn count_received(
        &mut self,
        (ssrc, user, seq, timestamp): (u32, Snowflake, u16, u32),
        start: Instant,
        arrived: Instant,
        max_users: usize,
        users: &SsrcUsers,
    ) {
        let arrival = (arrived.saturating_duration_since(start).as_nanos() * u128::from(RATE) / 1_000_000_000) as u32;
        if !self.sources.contains_key(&ssrc) && self.sources.len() >= max_users {
            self.prune(users);
            if self.sources.len() >= max_users {
                return;
            }
        }
        let source = self.sources.entry(ssrc).or_insert_with(|| Source::new(user));
        source.user = user;
        source.on_packet(seq, timestamp, arrival);
    }

    /// Builds the next compound report into `out` (unsealed), when there is
    /// anything to report (something sent or heard since the last);
    /// returns whether it did. `sent` is our packets and bytes so far,
    /// `rtp_timestamp` the next one we send.
    pub(crate) fn build_report(&mut self, now: Instant, ntp: u64, sent: (u64, u64), us: Us, out: &mut Vec<u8>) -> bool {
        let (packets, bytes) = sent;
        let sending = packets > self.sent_at_report;
        // Sources heard since the last report, in SSRC order from where the
        // last report stopped: past 31 of them, each gets its turn.
        let mut heard: Vec<u32> = self.sources.iter().filter(|(_, s)| s.heard).map(|(&ssrc, _)| ssrc).collect();
        heard.sort_unstable();
        let start = heard.partition_point(|&ssrc| ssrc < self.next_block);
        heard.rotate_left(start);
        heard.truncate(MAX_BLOCKS);
        let mut blocks: Vec<ReportBlock> = Vec::with_capacity(heard.len());
        for &ssrc in &heard {
            if let Some(s) = self.sources.get_mut(&ssrc) {
                blocks.push(s.block(ssrc, now));
            }
        }
        self.next_block = heard.last().map_or(0, |&last| last.wrapping_add(1));
        if !sending && blocks.is_empty() {
            return false;
        }
        self.sent_at_report = packets;
        out.clear();
        out.reserve(8 + 24 + 24 * blocks.len() + 40);
        let built = if sending {
            let sent_here = packets.wrapping_sub(self.sent_at_start.0);
            let info = SenderInfo {
                ntp_timestamp: ntp,
                rtp_timestamp: us.rtp_timestamp,
                packet_count: sent_here as u32,
                // Payload octets: datagram bytes less RTP header and
                // transport overhead.
                octet_count: bytes
                    .wrapping_sub(self.sent_at_start.1)
                    .saturating_sub(sent_here * (12 + us.mode.overhead() as u64)) as u32,
            };
            rtcp::build_sender_report(us.ssrc, &info, &blocks, out)
        } else {
            rtcp::build_receiver_report(us.ssrc, &blocks, out)
        };
        built.is_ok()
    }

    /// A report from the server, opened (`plain`: the whole compound
    /// packet in the clear): sender reports are remembered for the blocks
    /// we send back; blocks about our stream (`own`) tell our loss and
    /// round trip. `ntp` is the NTP time now.
    pub(crate) fn read_report(
        &mut self,
        plain: &[u8],
        now: Instant,
        ntp: u64,
        own: Option<u32>,
        stats: &mut RtcpStats,
    ) {
        let ntp_mid = ((ntp >> 16) & 0xFFFF_FFFF) as u32;
        for packet in rtcp::compound(plain) {
            let Ok(packet) = packet.and_then(|p| p.parse()) else {
                stats.malformed += 1;
                return;
            };
            let blocks: Vec<ReportBlock> = match packet {
                Rtcp::SenderReport(sr) => {
                    stats.sender_reports_read += 1;
                    if let Some(s) = self.sources.get_mut(&sr.ssrc) {
                        s.last_sr = Some((((sr.info.ntp_timestamp >> 16) & 0xFFFF_FFFF) as u32, now));
                    }
                    sr.blocks().collect()
                }
                Rtcp::ReceiverReport(rr) => {
                    stats.receiver_reports_read += 1;
                    rr.blocks().collect()
                }
                _ => continue,
            };
            for b in blocks.into_iter().filter(|b| Some(b.ssrc) == own) {
                let rtt = (b.last_sr != 0)
                    .then(|| ntp_mid.wrapping_sub(b.last_sr).wrapping_sub(b.delay_since_last_sr))
                    .filter(|&q16| q16 < 0x8000_0000)
                    .map(|q16| Duration::from_nanos(u64::from(q16) * 1_000_000_000 / 65_536));
                stats.remote = Some(RemoteReport {
                    fraction_lost: b.fraction_lost,
                    cumulative_lost: b.cumulative_lost,
                    jitter: units_to_duration(u64::from(b.jitter)),
                    rtt,
                });
            }
        }
    }
}

/// Who the reports are from: our SSRC, mode and next RTP timestamp.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Us {
    pub(crate) ssrc: u32,
    pub(crate) mode: Mode,
    pub(crate) rtp_timestamp: u32,
}

/// The NTP time at `now` (64-bit, 32.32 fixed point), from the wall clock
/// at `start`.
pub(crate) fn ntp(start: Instant, unix_ms_at_start: u64, now: Instant) -> u64 {
    let since = now.saturating_duration_since(start);
    let unix = Duration::from_millis(unix_ms_at_start).saturating_add(since);
    let secs = unix.as_secs().wrapping_add(NTP_UNIX_OFFSET);
    let frac = (u64::from(unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// A duration in 1/65536 s (the DLSR unit).
fn to_q16(d: Duration) -> u32 {
    u32::try_from(d.as_nanos() * 65_536 / 1_000_000_000).unwrap_or(u32::MAX)
}

/// Timestamp units (48 kHz) as a duration.
fn units_to_duration(units: u64) -> Duration {
    Duration::from_nanos(units.saturating_mul(1_000_000_000) / RATE)
}

#[cfg(test)]
mod tests {
    // A fixed point in time for the tests; the code under test reads no clock.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    #[test]
    fn loss_counts_gaps_across_a_sequence_wrap_and_duplicates_offset_it() {
        let mut s = Source::new(Snowflake(1));
        for seq in [65_530u16, 65_531, 65_533, 65_534, 65_535, 0, 1, 4] {
            s.on_packet(seq, u32::from(seq) * 960, u32::from(seq) * 960);
        }
        // 65530..=65535 and 0..=4: 11 expected, 8 received.
        assert_eq!(s.expected(), 11);
        assert_eq!(s.extended_max(), (1 << 16) + 4);
        assert_eq!(s.lost(), 3);
        let now = Instant::now();
        let b = s.block(7, now);
        assert_eq!((b.cumulative_lost, b.fraction_lost, b.highest_sequence), (3, (3 * 256 / 11) as u8, (1 << 16) + 4));
        // A duplicate and a late packet: received grows, expected does not.
        s.on_packet(1, 960, 960);
        s.on_packet(3, 3 * 960, 3 * 960);
        assert_eq!(s.lost(), 1);
        assert_eq!(s.block(7, now).fraction_lost, 0, "more arrived than expected this interval");
    }

    #[test]
    fn a_sequence_jump_is_loss_only_until_the_next_packet_confirms_a_restart() {
        let mut s = Source::new(Snowflake(1));
        for seq in 100..200u16 {
            s.on_packet(seq, 0, 0);
        }
        // One stray packet far ahead: not counted, nothing lost.
        s.on_packet(40_000, 0, 0);
        assert_eq!((s.received, s.lost(), s.extended_max()), (100, 0, 199));
        s.on_packet(200, 0, 0);
        // The sender restarted at 9_000: the second packet confirms it.
        s.on_packet(9_000, 0, 0);
        s.on_packet(9_001, 0, 0);
        assert_eq!((s.received, s.lost(), s.base, s.extended_max()), (1, 0, 9_001, 9_001));
        // A gap under MAX_DROPOUT is loss.
        s.on_packet(9_011, 0, 0);
        assert_eq!(s.lost(), 9);
    }

    #[test]
    fn jitter_is_zero_for_steady_arrivals_and_follows_rfc3550_for_varying_ones() {
        let mut steady = Source::new(Snowflake(1));
        for i in 0..100u16 {
            steady.on_packet(i, u32::from(i) * 960, 5_000 + u32::from(i) * 960);
        }
        assert_eq!(steady.jitter_q4, 0);
        // Arrivals alternately 48 units (1 ms) late: |D| = 48 each time, so
        // J converges on 48 (J += (48 - J) / 16).
        let mut varying = Source::new(Snowflake(1));
        let mut j = 0f64;
        for i in 0..200u16 {
            let late = if i % 2 == 1 { 48 } else { 0 };
            varying.on_packet(i, u32::from(i) * 960, u32::from(i) * 960 + late);
            if i > 0 {
                j += (48.0 - j) / 16.0;
            }
        }
        assert!(((varying.jitter_q4 >> 4) as f64 - j).abs() <= 1.0, "{} vs {j}", varying.jitter_q4 >> 4);
        assert_eq!(varying.stats(1).jitter.as_micros(), u128::from(varying.jitter_q4 >> 4) * 1000 / 48);
        // A talk spurt after two seconds of silence is not jitter.
        let before = varying.jitter_q4;
        varying.on_packet(200, 200 * 960, 200 * 960 + 96_000);
        varying.on_packet(201, 201 * 960, 201 * 960 + 96_000);
        assert!(varying.jitter_q4 <= before);
    }
}
