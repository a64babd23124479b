//! The connection's UDP side (PROTOCOL.md §3): datagrams in (IP discovery
//! answers, RTCP, voice: demultiplexed here, opened by the session's
//! cipher, named by the SSRC map, passed through the frame transform),
//! and the datagrams the UDP path and the reports ask to send.

use std::net::SocketAddr;
use std::time::Instant;

use voice_rtp::discovery::Discovery;
use voice_rtp::{DatagramKind, Mode, classify};

use super::reconnect::Pending;
use super::rtcp::{self, Us};
use super::{State, VoiceConnection};
use crate::error::{DatagramError, Misuse};
use crate::output::{Output, ReconnectReason};
use crate::stats::SourceStats;
use crate::timer::Timer;
use crate::transform::{FrameMeta, Opened};
use crate::wire::Snowflake;

/// A voice packet received and opened in place.
#[derive(Debug, PartialEq, Eq)]
pub struct VoicePacket<'a> {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// The sender, from the SSRC map.
    pub user_id: Snowflake,
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp (48 kHz).
    pub timestamp: u32,
    /// The Opus frame (extension body and padding removed, E2EE undone).
    pub opus: &'a [u8],
}

/// A voice packet delivered late, owning its Opus frame: one that was
/// held until its end-to-end key arrived ([`Output::Voice`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedVoicePacket {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// The sender.
    pub user_id: Snowflake,
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp (48 kHz).
    pub timestamp: u32,
    /// The Opus frame.
    pub opus: Vec<u8>,
}

impl OwnedVoicePacket {
    /// A borrowed view, the shape [`Datagram::Voice`] carries.
    pub fn as_packet(&self) -> VoicePacket<'_> {
        let OwnedVoicePacket { ssrc, user_id, sequence, timestamp, ref opus } = *self;
        VoicePacket { ssrc, user_id, sequence, timestamp, opus }
    }
}

/// What a datagram turned out to be.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Datagram<'a> {
    /// Voice for the application.
    Voice(VoicePacket<'a>),
    /// Handled inside (IP discovery answer, RTCP, keepalive echo).
    Consumed,
    /// Voice that cannot be delivered yet: its end-to-end key is not
    /// installed (a DAVE transition this client has not processed), or the
    /// server has not named its SSRC (op 5 is on its way). Kept, and
    /// delivered as [`Output::Voice`] once the key or the name arrives, or
    /// dropped (counted) after `Config::dave_hold_age` or a second.
    Held,
}

impl VoiceConnection {
    pub(crate) fn send_discovery(&mut self, now: Instant) {
        let Some(path) = self.path.as_mut() else {
            return;
        };
        let (to, bytes) = (path.server(), path.discovery_request());
        self.stats.discovery_attempts += 1;
        self.transmit(to, bytes);
        self.timers.set(Timer::Discovery, now + self.config.discovery_interval);
    }

    pub(crate) fn on_discovery_timer(&mut self, now: Instant) {
        if self.state != State::Discovering {
            return;
        }
        if self.path.as_ref().is_none_or(|p| p.discovery_spent(self.config.discovery_attempts)) {
            self.fail(now, ReconnectReason::DiscoveryTimeout, Pending::Reidentify);
        } else {
            self.send_discovery(now);
        }
    }

    /// A keepalive every `Config::keepalive_interval`.
    pub(crate) fn send_keepalive(&mut self, now: Instant) {
        let Some(path) = self.path.as_mut() else {
            return;
        };
        let (to, bytes) = (path.server(), path.keepalive());
        self.stats.keepalives_sent += 1;
        self.transmit(to, bytes);
        self.timers.set(Timer::Keepalive, now + self.config.keepalive_interval);
    }

    /// A datagram arrived on the voice socket from `from`. It is opened in
    /// place in `buf`; voice comes back as [`Datagram::Voice`] borrowing
    /// `buf`. A bad datagram is an error for it alone (and counted).
    pub fn handle_datagram<'a>(
        &mut self,
        from: SocketAddr,
        buf: &'a mut [u8],
        now: Instant,
    ) -> Result<Datagram<'a>, DatagramError> {
        let now = self.advance(now);
        if self.state == State::Closed {
            return Err(Misuse::Closed.into());
        }
        let Some(path) = self.path.as_ref() else {
            self.stats.not_ready_drops += 1;
            return Err(DatagramError::NotReady);
        };
        if from != path.server() {
            self.stats.foreign_source_drops += 1;
            return Err(DatagramError::ForeignSource);
        }
        match classify(buf) {
            DatagramKind::DiscoveryResponse => {
                let d = Discovery::parse_response(buf).inspect_err(|_| self.stats.unrecognised_datagrams += 1)?;
                if self.state == State::Discovering && path.answers(&d) {
                    let (address, port) = (d.address.to_owned(), d.port);
                    self.select_protocol(address, port);
                }
                Ok(Datagram::Consumed)
            }
            DatagramKind::Rtcp => {
                let Some(sender) = self.sender.as_ref() else {
                    self.stats.not_ready_drops += 1;
                    return Err(DatagramError::NotReady);
                };
                // Authenticated, then read (PROTOCOL.md §3.6).
                let body = sender.cipher().open_rtcp(buf).inspect_err(|_| self.stats.decrypt_failures += 1)?.len();
                self.stats.rtcp_received += 1;
                let plain = voice_rtp::RTCP_CLEAR_LEN + body;
                let (own, ntp) = (path.ssrc(), self.ntp(now));
                self.reception.read_report(&buf[..plain], now, ntp, Some(own), &mut self.stats.rtcp);
                Ok(Datagram::Consumed)
            }
            DatagramKind::Rtp => self.receive_rtp(buf, now, now),
            _ => {
                self.stats.unrecognised_datagrams += 1;
                Err(DatagramError::Unrecognised)
            }
        }
    }

    /// An RTP datagram from the server that arrived at `arrived`: its
    /// header is read once, here, and the cipher opens it by that reading.
    fn receive_rtp<'a>(
        &mut self,
        buf: &'a mut [u8],
        now: Instant,
        arrived: Instant,
    ) -> Result<Datagram<'a>, DatagramError> {
        let len = buf.len();
        let Some(sender) = self.sender.as_ref() else {
            self.stats.not_ready_drops += 1;
            return Err(DatagramError::NotReady);
        };
        let layout = voice_rtp::RtpPacket::new(buf).inspect_err(|_| self.stats.decrypt_failures += 1)?.layout();
        let (ssrc, payload_type) = (layout.fields.ssrc, layout.fields.payload_type);
        if payload_type != voice_rtp::rtp::OPUS_PAYLOAD_TYPE {
            // Not audio (PROTOCOL.md §3.5: receivers drop other types).
            self.stats.non_opus_drops += 1;
            return Err(DatagramError::NotOpus(payload_type));
        }
        let Some(user_id) = self.users.get(ssrc) else {
            self.unnamed.keep(ssrc, buf, now, &mut self.stats);
            return Ok(Datagram::Held);
        };
        let opened = sender.cipher().open_laid_out(buf, &layout).inspect_err(|_| self.stats.decrypt_failures += 1)?;
        self.stats.bytes_received += len as u64;
        let h = opened.header;
        let (start, max) = (self.start, self.config.max_users);
        self.reception.count_received((ssrc, user_id, h.sequence, h.timestamp), start, arrived, max, &self.users);
        // Transport decryption removed the extension body and the padding:
        // what is left is the (DAVE) frame.
        let meta = FrameMeta { ssrc, user: user_id, sequence: h.sequence, timestamp: h.timestamp };
        let payload = opened.payload;
        match self.transform.decrypt(meta, payload, now, &mut self.stats.dave)? {
            Opened::Frame(n) => {
                self.stats.packets_received += 1;
                let opus = &payload[..n];
                if opus == voice_rtp::OPUS_SILENCE {
                    self.stats.silence_frames_received += 1;
                }
                Ok(Datagram::Voice(VoicePacket { ssrc, user_id, sequence: h.sequence, timestamp: h.timestamp, opus }))
            }
            Opened::Held => {
                self.arm_hold_timer();
                Ok(Datagram::Held)
            }
        }
    }

    /// Op 5 named `ssrc`: the datagrams kept for it are opened and
    /// delivered as [`Output::Voice`], in the order they came.
    pub(crate) fn release_unnamed(&mut self, ssrc: u32, now: Instant) {
        for (arrived, mut bytes) in self.unnamed.take_named(ssrc, now, &mut self.stats) {
            // Counted as arriving when it came (jitter), delivered now.
            if let Ok(Datagram::Voice(p)) = self.receive_rtp(&mut bytes, now, arrived) {
                let (ssrc, user_id, sequence, timestamp) = (p.ssrc, p.user_id, p.sequence, p.timestamp);
                let packet = OwnedVoicePacket { ssrc, user_id, sequence, timestamp, opus: p.opus.to_vec() };
                self.push(Output::Voice(packet));
            }
        }
    }

    /// Reception statistics of every remote source of the current session
    /// (RFC 3550: cumulative loss, the fraction lost in the last report
    /// interval, interarrival jitter).
    pub fn sources(&self) -> impl Iterator<Item = SourceStats> + '_ {
        self.reception.sources(&self.users)
    }

    /// The NTP time at `now`.
    fn ntp(&self, now: Instant) -> u64 {
        rtcp::ntp(self.start, self.config.unix_ms_at_start, now)
    }

    /// A session began: reports start one interval from now.
    pub(crate) fn start_reports(&mut self, now: Instant) {
        let sent = (self.stats.packets_sent, self.stats.bytes_sent);
        self.reception.reset(sent, &self.users);
        if let Some(every) = self.config.rtcp_interval {
            self.timers.set(Timer::RtcpReport, now + every);
        }
    }

    /// The report timer: one compound report, when there is anything to
    /// report (something sent or heard since the last).
    pub(crate) fn on_rtcp_timer(&mut self, now: Instant) {
        let Some(every) = self.config.rtcp_interval else { return };
        self.timers.set(Timer::RtcpReport, now + every);
        self.reception.prune(&self.users);
        let ntp = self.ntp(now);
        let sent = (self.stats.packets_sent, self.stats.bytes_sent);
        let (Some(path), Some(sender)) = (self.path.as_ref(), self.sender.as_mut()) else { return };
        // That mode's nonce is the clear header, which repeats from report
        // to report: it gets no reports (the server's are still read).
        if path.mode() == Mode::XSalsa20Poly1305 {
            return;
        }
        let us = Us { ssrc: path.ssrc(), mode: path.mode(), rtp_timestamp: sender.next_position().1 };
        let mut out = Vec::new();
        if !self.reception.build_report(now, ntp, sent, us, &mut out) {
            return;
        }
        if sender.seal_rtcp(&mut out).is_err() {
            tracing::debug!("RTCP report not built");
            return;
        }
        let to = path.server();
        self.stats.rtcp.reports_sent += 1;
        self.transmit(to, out);
    }
}
