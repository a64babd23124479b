//! The SFU: IP discovery, keepalives, RTCP, and RTP forwarded from each
//! sender to the others in its room, re-encrypted under each receiver's key
//! and mode.

use std::net::SocketAddr;
use std::time::Instant;

use voice_rtp::discovery::{self, Discovery};
use voice_rtp::{DatagramKind, RtpHeader, RtpPacket, classify};

use super::super::MockServer;
use super::super::faults::Verdict;
use super::super::session::SessionKey;

impl MockServer {
    /// A datagram arrived on the UDP port from `from`.
    ///
    /// IP discovery requests for a known SSRC are answered with `from`'s
    /// address and port; RTP is decrypted with the sender's key and forwarded
    /// to every other client of the room that has selected a protocol (after
    /// telling it the sender's SSRC with op 5 if it did not know it);
    /// keepalives are counted, RTCP reports read and answered
    /// (`room/rtcp.rs`); anything else is dropped.
    pub fn handle_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        self.advance(now);
        self.stats.datagrams_in += 1;
        if data.len() > self.config.limits.max_datagram_bytes {
            self.stats.junk_datagrams += 1;
            return;
        }
        match classify(data) {
            DatagramKind::DiscoveryRequest => self.discovery(from, data),
            DatagramKind::Rtp => self.rtp(from, data),
            DatagramKind::Rtcp => self.rtcp(from, data),
            DatagramKind::Other if data.len() <= 16 && !data.is_empty() => {
                // A keepalive: discord.js sends 8 bytes, songbird its SSRC.
                self.stats.keepalives += 1;
                let by_ssrc = (data.len() == 4)
                    .then(|| u32::from_be_bytes([data[0], data[1], data[2], data[3]]))
                    .and_then(|ssrc| self.by_ssrc.get(&ssrc).copied());
                let key = self.by_addr.get(&from).copied().or(by_ssrc);
                if let Some(s) = key.and_then(|k| self.sessions.get(&k)) {
                    self.stats.users.entry(s.user).or_default().keepalives += 1;
                }
            }
            _ => self.stats.junk_datagrams += 1,
        }
    }

    fn discovery(&mut self, from: SocketAddr, data: &[u8]) {
        let Ok(req) = Discovery::parse(data) else {
            self.stats.junk_datagrams += 1;
            return;
        };
        let Some(&key) = self.by_ssrc.get(&req.ssrc) else {
            // Unknown SSRC: no reply (a server must not reflect junk).
            self.stats.junk_datagrams += 1;
            return;
        };
        if self.faults.ignore_discovery > 0 {
            // A fault: the request is lost (u32::MAX stays: all of them).
            if self.faults.ignore_discovery != u32::MAX {
                self.faults.ignore_discovery -= 1;
            }
            self.stats.discoveries_ignored += 1;
            return;
        }
        self.learn_addr(key, from);
        let Ok(reply) = discovery::response(req.ssrc, &from.ip().to_string(), from.port()) else {
            self.stats.junk_datagrams += 1;
            return;
        };
        if let Some(s) = self.sessions.get(&key) {
            self.stats.users.entry(s.user).or_default().discoveries += 1;
        }
        self.emit(super::super::ServerOutput::Transmit { to: from, bytes: reply.to_vec() });
    }

    fn rtp(&mut self, from: SocketAddr, data: &[u8]) {
        let Ok(packet) = RtpPacket::new(data) else {
            self.stats.junk_datagrams += 1;
            return;
        };
        let Some(&key) = self.by_ssrc.get(&packet.ssrc()) else {
            self.stats.junk_datagrams += 1;
            return;
        };
        let Some(sender) = self.sessions.get(&key) else { return };
        let user = sender.user;
        let Some(sealer) = sender.sealer.as_ref() else {
            self.stats.rtp_before_session += 1;
            return;
        };
        let mut buf = data.to_vec();
        let (fields, payload) = match sealer.cipher().open(&mut buf) {
            Ok(opened) => (opened.header, opened.payload.to_vec()),
            Err(_) => {
                self.stats.decrypt_failures += 1;
                self.stats.users.entry(user).or_default().decrypt_failures += 1;
                return;
            }
        };
        // Authenticated: the source address is the client's (NAT rebinds too).
        self.learn_addr(key, from);
        self.stats.users.entry(user).or_default().rtp_in += 1;
        // The payload (a DAVE frame, silence or plaintext) goes on as it
        // came; only the transport layer is redone per receiver.
        if let Some(room) = self.sessions.get(&key).map(|s| (s.guild, s.channel)) {
            self.dave_count_payload(room, &payload);
        }

        for receiver in self.peers(key) {
            let Some(r) = self.sessions.get(&receiver) else { continue };
            let (Some(to), Some(_), Some(conn)) = (r.udp, r.sealer.as_ref(), r.conn) else { continue };
            if !self.conns.contains_key(&conn) {
                continue;
            }
            // Op 5 first, so the receiver knows the SSRC before the packet.
            self.announce(receiver, key);
            let mut out = Vec::with_capacity(12 + payload.len() + 40);
            let header = RtpHeader {
                marker: fields.marker,
                payload_type: fields.payload_type,
                sequence: fields.sequence,
                timestamp: fields.timestamp,
                ssrc: fields.ssrc,
                ..RtpHeader::default()
            };
            if header.write(&payload, &mut out).is_err() {
                out.clear();
                let mut basic = [0u8; 12];
                RtpHeader::write_basic(&mut basic, fields.sequence, fields.timestamp, fields.ssrc);
                out.extend_from_slice(&basic);
                out.extend_from_slice(&payload);
            }
            let Some(sealer) = self.sessions.get_mut(&receiver).and_then(|r| r.sealer.as_mut()) else { continue };
            if sealer.seal(&mut out).is_err() {
                continue;
            }
            self.emit_media(receiver, to, out);
        }
    }

    fn emit_media(&mut self, receiver: SessionKey, to: SocketAddr, bytes: Vec<u8>) {
        let now = self.now;
        match self.faults.udp.process(to, bytes, now) {
            Verdict::Send(list) => {
                for (to, bytes) in list {
                    self.emit_transmit(to, bytes);
                }
            }
            Verdict::Dropped => {
                if let Some(r) = self.sessions.get(&receiver) {
                    self.stats.users.entry(r.user).or_default().rtp_out_dropped += 1;
                }
            }
            Verdict::Held => {}
        }
    }
}
