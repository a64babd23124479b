//! RTCP (RFC 3550 §6): compound packet iteration, sender and receiver
//! reports, SDES and BYE, and building a receiver report.
//!
//! RTCP is recognised by its packet type (200..=204) in the second byte and
//! is never confused with RTP, whose payload type stays outside 192..=223.

mod report;
mod sdes_bye;

pub use report::{ReceiverReport, ReportBlock, SenderInfo, SenderReport, build_receiver_report, build_sender_report};
pub use sdes_bye::{Bye, Sdes, SdesChunk, SdesItem};

use crate::error::need;
use crate::{Error, Result};

/// RTCP packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketType {
    /// 200: sender report.
    SenderReport,
    /// 201: receiver report.
    ReceiverReport,
    /// 202: source description.
    SourceDescription,
    /// 203: goodbye.
    Bye,
    /// 204: application-defined.
    App,
}

impl PacketType {
    /// The type for a wire value in 200..=204.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            200 => PacketType::SenderReport,
            201 => PacketType::ReceiverReport,
            202 => PacketType::SourceDescription,
            203 => PacketType::Bye,
            204 => PacketType::App,
            _ => return None,
        })
    }
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            PacketType::SenderReport => 200,
            PacketType::ReceiverReport => 201,
            PacketType::SourceDescription => 202,
            PacketType::Bye => 203,
            PacketType::App => 204,
        }
    }
}

/// Whether `buf` looks like RTCP: version 2 and packet type 200..=204.
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 4 && buf[0] >> 6 == 2 && PacketType::from_u8(buf[1]).is_some()
}

/// One RTCP packet out of a compound datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpPacket<'a> {
    buf: &'a [u8],
    packet_type: PacketType,
}

impl<'a> RtcpPacket<'a> {
    /// Parses the first packet of `buf`; its length field must fit.
    pub fn new(buf: &'a [u8]) -> Result<Self> {
        need(buf, 4)?;
        let version = buf[0] >> 6;
        if version != 2 {
            return Err(Error::UnsupportedVersion(version));
        }
        let packet_type = PacketType::from_u8(buf[1]).ok_or(Error::NotRtcp(buf[1]))?;
        let len = 4 * (usize::from(u16::from_be_bytes([buf[2], buf[3]])) + 1);
        need(buf, len)?;
        Ok(RtcpPacket { buf: &buf[..len], packet_type })
    }

    /// The packet type.
    pub fn packet_type(&self) -> PacketType {
        self.packet_type
    }
    /// The 5-bit count field (reports, chunks or sources, by type).
    pub fn count(&self) -> u8 {
        self.buf[0] & 0x1F
    }
    /// The padding bit.
    pub fn has_padding(&self) -> bool {
        self.buf[0] & 0x20 != 0
    }
    /// The whole packet, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
    /// The body after the 4-byte header, padding removed.
    pub fn body(&self) -> Result<&'a [u8]> {
        let mut end = self.buf.len();
        if self.has_padding() {
            let n = usize::from(self.buf[end - 1]);
            if n == 0 || n > end - 4 {
                return Err(Error::BadPadding(self.buf[end - 1]));
            }
            end -= n;
        }
        Ok(&self.buf[4..end])
    }
    /// The packet's first SSRC (sender's for SR/RR, first source otherwise).
    pub fn ssrc(&self) -> Option<u32> {
        self.buf.get(4..8).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Typed view of the packet.
    pub fn parse(&self) -> Result<Rtcp<'a>> {
        Ok(match self.packet_type {
            PacketType::SenderReport => Rtcp::SenderReport(SenderReport::parse(self)?),
            PacketType::ReceiverReport => Rtcp::ReceiverReport(ReceiverReport::parse(self)?),
            PacketType::SourceDescription => Rtcp::SourceDescription(Sdes::parse(self)?),
            PacketType::Bye => Rtcp::Bye(Bye::parse(self)?),
            PacketType::App => Rtcp::App(self.body()?),
        })
    }
}

/// A typed RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rtcp<'a> {
    /// A sender report.
    SenderReport(SenderReport<'a>),
    /// A receiver report.
    ReceiverReport(ReceiverReport<'a>),
    /// A source description.
    SourceDescription(Sdes<'a>),
    /// A goodbye.
    Bye(Bye<'a>),
    /// An application-defined packet (its body, uninterpreted).
    App(&'a [u8]),
}

/// Iterates the packets of a compound RTCP datagram; stops after the first error.
#[derive(Debug, Clone)]
pub struct Compound<'a> {
    rest: &'a [u8],
}

/// Iterates the packets of a compound RTCP datagram.
pub fn compound(buf: &[u8]) -> Compound<'_> {
    Compound { rest: buf }
}

impl<'a> Iterator for Compound<'a> {
    type Item = Result<RtcpPacket<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match RtcpPacket::new(self.rest) {
            Ok(p) => {
                self.rest = &self.rest[p.as_bytes().len()..];
                Some(Ok(p))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
