//! The UDP side: IP discovery with retries, keepalives, and receiving voice
//! (PROTOCOL.md §3).

use std::net::SocketAddr;
use std::time::Instant;

use voice_rtp::discovery::{self, Discovery};
use voice_rtp::{DatagramKind, classify};

use super::{State, VoiceConnection};
use crate::error::DatagramError;
use crate::output::{Output, ReconnectReason};
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
        let Some(link) = self.link.as_mut() else {
            return;
        };
        link.discovery_attempts += 1;
        let (to, bytes) = (link.server, discovery::request(link.ssrc).to_vec());
        self.stats.discovery_attempts += 1;
        self.push(Output::Transmit { to, bytes });
        self.timers.set(Timer::Discovery, now + self.config.discovery_interval);
    }

    pub(crate) fn on_discovery_timer(&mut self, now: Instant) {
        if self.state != State::Discovering {
            return;
        }
        let attempts = self.link.as_ref().map_or(0, |l| l.discovery_attempts);
        if attempts >= self.config.discovery_attempts {
            self.fail(now, ReconnectReason::DiscoveryTimeout, super::Pending::Reidentify);
        } else {
            self.send_discovery(now);
        }
    }

    /// discord.js's keepalive: a u32 little-endian counter and four zeros,
    /// every 5 s; the server need not answer.
    pub(crate) fn send_keepalive(&mut self, now: Instant) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let mut bytes = Vec::with_capacity(8);
        bytes.extend_from_slice(&link.keepalive_counter.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        link.keepalive_counter = link.keepalive_counter.wrapping_add(1);
        let to = link.server;
        self.stats.keepalives_sent += 1;
        self.push(Output::Transmit { to, bytes });
        self.timers.set(Timer::Keepalive, now + self.config.keepalive_interval);
    }

    pub(crate) fn on_keepalive_timer(&mut self, now: Instant) {
        self.send_keepalive(now);
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
        let Some(link) = self.link.as_ref() else {
            self.stats.not_ready_drops += 1;
            return Err(DatagramError::NotReady);
        };
        if from != link.server {
            self.stats.foreign_source_drops += 1;
            return Err(DatagramError::ForeignSource);
        }
        match classify(buf) {
            DatagramKind::DiscoveryResponse => {
                let d = Discovery::parse_response(buf).inspect_err(|_| self.stats.unrecognised_datagrams += 1)?;
                if self.state == State::Discovering && d.ssrc == link.ssrc {
                    let (address, port) = (d.address.to_owned(), d.port);
                    self.select_protocol(address, port);
                }
                Ok(Datagram::Consumed)
            }
            DatagramKind::Rtcp => {
                let Some(sender) = link.sender.as_ref() else {
                    self.stats.not_ready_drops += 1;
                    return Err(DatagramError::NotReady);
                };
                // Authenticated, then read (PROTOCOL.md §3.6).
                let body = sender.cipher().open_rtcp(buf).inspect_err(|_| self.stats.decrypt_failures += 1)?.len();
                self.stats.rtcp_received += 1;
                let plain = voice_rtp::RTCP_CLEAR_LEN + body;
                self.read_rtcp(&buf[..plain], now);
                Ok(Datagram::Consumed)
            }
            DatagramKind::Rtp => self.receive_rtp(buf, now, now),
            _ => {
                self.stats.unrecognised_datagrams += 1;
                Err(DatagramError::Unrecognised)
            }
        }
    }

    pub(super) fn receive_rtp<'a>(
        &mut self,
        buf: &'a mut [u8],
        now: Instant,
        arrived: Instant,
    ) -> Result<Datagram<'a>, DatagramError> {
        let len = buf.len();
        let Some(sender) = self.link.as_ref().and_then(|l| l.sender.as_ref()) else {
            self.stats.not_ready_drops += 1;
            return Err(DatagramError::NotReady);
        };
        let packet = voice_rtp::RtpPacket::new(buf).inspect_err(|_| self.stats.decrypt_failures += 1)?;
        let (ssrc, payload_type) = (packet.ssrc(), packet.payload_type());
        if payload_type != voice_rtp::rtp::OPUS_PAYLOAD_TYPE {
            // Not audio (PROTOCOL.md §3.5: receivers drop other types).
            self.stats.non_opus_drops += 1;
            return Err(DatagramError::NotOpus(payload_type));
        }
        let Some(user_id) = self.users.get(ssrc) else {
            self.keep_unnamed(ssrc, buf, now);
            return Ok(Datagram::Held);
        };
        let opened = sender.cipher().open(buf).inspect_err(|_| self.stats.decrypt_failures += 1)?;
        self.stats.bytes_received += len as u64;
        let h = opened.header;
        self.count_received(ssrc, user_id, h.sequence, h.timestamp, arrived);
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
}
