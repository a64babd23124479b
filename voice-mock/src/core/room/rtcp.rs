//! RTCP from clients: opened with the sender's session key, read, and
//! answered as Discord's voice server answers reports (PROTOCOL.md §3.6):
//! a receiver report whose block about the client's stream echoes its last
//! sender report (so the client can measure the round trip), and a sender
//! report for every other member whose audio the room forwards.

use std::net::SocketAddr;
use std::time::Instant;

use voice_rtp::rtcp::{self, ReportBlock, Rtcp, SenderInfo};

use super::super::MockServer;

/// The SSRC the server reports as (no client has it: SSRCs start at 1).
const SERVER_SSRC: u32 = 0;
/// Most sender reports in one answer.
const MAX_SENDERS: usize = 8;

impl MockServer {
    pub(crate) fn rtcp(&mut self, from: SocketAddr, data: &[u8]) {
        self.stats.rtcp_in += 1;
        let Some(key) = self.by_addr.get(&from).copied() else {
            self.stats.junk_datagrams += 1;
            return;
        };
        let Some(s) = self.sessions.get(&key) else { return };
        let (user, ssrc) = (s.user, s.ssrc);
        self.stats.users.entry(user).or_default().rtcp_in += 1;
        let Some(sealer) = s.sealer.as_ref() else { return };
        let mut buf = data.to_vec();
        let body = match sealer.cipher().open_rtcp(&mut buf) {
            Ok(body) => body.len(),
            Err(_) => {
                self.stats.rtcp_decrypt_failures += 1;
                return;
            }
        };
        let plain = &buf[..voice_rtp::RTCP_CLEAR_LEN + body];
        // The client's sender report, if it sent one: its NTP time is
        // echoed (middle 32 bits) in the block about its stream.
        let mut echo = None;
        for packet in rtcp::compound(plain) {
            match packet.and_then(|p| p.parse()) {
                Ok(Rtcp::SenderReport(sr)) if sr.ssrc == ssrc => echo = Some((sr.info.ntp_timestamp >> 16) as u32),
                Ok(Rtcp::ReceiverReport(rr)) if rr.ssrc == ssrc => {}
                _ => {
                    self.stats.rtcp_malformed += 1;
                    return;
                }
            }
        }
        self.stats.users.entry(user).or_default().rtcp_reports += 1;
        self.answer_rtcp(key, from, ssrc, echo);
    }

    fn answer_rtcp(&mut self, key: super::super::session::SessionKey, to: SocketAddr, ssrc: u32, echo: Option<u32>) {
        let rtp_in = self.stats.users.get(&self.sessions[&key].user).map_or(0, |u| u.rtp_in);
        let block = ReportBlock {
            ssrc,
            highest_sequence: rtp_in as u32,
            last_sr: echo.unwrap_or(0),
            // Answered at once: no delay since the sender report.
            delay_since_last_sr: 0,
            ..ReportBlock::default()
        };
        let mut out = Vec::with_capacity(200);
        if rtcp::build_receiver_report(SERVER_SSRC, &[block], &mut out).is_err() {
            return;
        }
        let ntp = self.ntp(self.now);
        for peer in self.peers(key).into_iter().take(MAX_SENDERS) {
            let Some(p) = self.sessions.get(&peer) else { continue };
            let sent = self.stats.users.get(&p.user).map_or(0, |u| u.rtp_in);
            if sent == 0 {
                continue;
            }
            let info = SenderInfo { ntp_timestamp: ntp, rtp_timestamp: 0, packet_count: sent as u32, octet_count: 0 };
            if rtcp::build_sender_report(p.ssrc, &info, &[], &mut out).is_err() {
                return;
            }
        }
        let Some(sealer) = self.sessions.get_mut(&key).and_then(|s| s.sealer.as_mut()) else { return };
        if sealer.seal_rtcp(&mut out).is_ok() {
            self.stats.rtcp_out += 1;
            self.emit(super::super::ServerOutput::Transmit { to, bytes: out });
        }
    }

    /// The server's NTP time at `now`, from its start.
    fn ntp(&self, now: Instant) -> u64 {
        let d = now.saturating_duration_since(self.epoch);
        (d.as_secs() << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
    }
}
