//! Sender and receiver reports and their report blocks.

use super::{PacketType, RtcpPacket, be32};
use crate::{Error, Result};

const BLOCK_LEN: usize = 24;

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256 units.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed on the wire).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last sender report's NTP timestamp.
    pub last_sr: u32,
    /// Delay since that sender report, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8]) -> Self {
        let raw = be32(&b[4..8]);
        let lost = (raw & 0x00FF_FFFF) as i32;
        ReportBlock {
            ssrc: be32(b),
            fraction_lost: b[4],
            cumulative_lost: (lost << 8) >> 8,
            highest_sequence: be32(&b[8..]),
            jitter: be32(&b[12..]),
            last_sr: be32(&b[16..]),
            delay_since_last_sr: be32(&b[20..]),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
        out.extend_from_slice(&(u32::from(self.fraction_lost) << 24 | lost).to_be_bytes());
        for v in [self.highest_sequence, self.jitter, self.last_sr, self.delay_since_last_sr] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

fn check_blocks(body: &[u8], count: u8) -> Result<()> {
    if body.len() < usize::from(count) * BLOCK_LEN {
        return Err(Error::MalformedRtcp("report blocks run past the packet"));
    }
    Ok(())
}

/// The sender-information part of a sender report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp.
    pub ntp_timestamp: u64,
    /// RTP timestamp matching the NTP time.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
}

/// A sender report (packet type 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderReport<'a> {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// What the sender sent.
    pub info: SenderInfo,
    blocks: &'a [u8],
    count: u8,
}

impl<'a> SenderReport<'a> {
    pub(super) fn parse(p: &RtcpPacket<'a>) -> Result<Self> {
        let body = p.body()?;
        if body.len() < 24 {
            return Err(Error::MalformedRtcp("sender report shorter than its sender info"));
        }
        let info = SenderInfo {
            ntp_timestamp: u64::from(be32(&body[4..])) << 32 | u64::from(be32(&body[8..])),
            rtp_timestamp: be32(&body[12..]),
            packet_count: be32(&body[16..]),
            octet_count: be32(&body[20..]),
        };
        check_blocks(&body[24..], p.count())?;
        Ok(SenderReport { ssrc: be32(body), info, blocks: &body[24..], count: p.count() })
    }
    /// The reception report blocks.
    pub fn blocks(&self) -> impl ExactSizeIterator<Item = ReportBlock> + 'a {
        let n = usize::from(self.count) * BLOCK_LEN;
        self.blocks[..n].chunks_exact(BLOCK_LEN).map(ReportBlock::parse)
    }
}

/// A receiver report (packet type 201).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    /// The reporter's SSRC.
    pub ssrc: u32,
    blocks: &'a [u8],
    count: u8,
}

impl<'a> ReceiverReport<'a> {
    pub(super) fn parse(p: &RtcpPacket<'a>) -> Result<Self> {
        let body = p.body()?;
        if body.len() < 4 {
            return Err(Error::MalformedRtcp("receiver report without SSRC"));
        }
        check_blocks(&body[4..], p.count())?;
        Ok(ReceiverReport { ssrc: be32(body), blocks: &body[4..], count: p.count() })
    }
    /// The reception report blocks.
    pub fn blocks(&self) -> impl ExactSizeIterator<Item = ReportBlock> + 'a {
        let n = usize::from(self.count) * BLOCK_LEN;
        self.blocks[..n].chunks_exact(BLOCK_LEN).map(ReportBlock::parse)
    }
}

/// Appends a receiver report from `ssrc` with `blocks` (at most 31) to `out`.
pub fn build_receiver_report(ssrc: u32, blocks: &[ReportBlock], out: &mut Vec<u8>) -> Result<usize> {
    build_report(PacketType::ReceiverReport, ssrc, None, blocks, out)
}

/// Appends a sender report from `ssrc` with `info` and `blocks` (at most
/// 31) to `out`.
pub fn build_sender_report(ssrc: u32, info: &SenderInfo, blocks: &[ReportBlock], out: &mut Vec<u8>) -> Result<usize> {
    build_report(PacketType::SenderReport, ssrc, Some(info), blocks, out)
}

/// A report's header, its sender information if any, then its blocks.
fn build_report(
    packet_type: PacketType,
    ssrc: u32,
    info: Option<&SenderInfo>,
    blocks: &[ReportBlock],
    out: &mut Vec<u8>,
) -> Result<usize> {
    if blocks.len() > 31 {
        return Err(Error::OutOfRange("more than 31 report blocks"));
    }
    let info_words = if info.is_some() { 5 } else { 0 };
    let words = 1 + info_words + blocks.len() * BLOCK_LEN / 4;
    let start = out.len();
    out.push(0x80 | blocks.len() as u8);
    out.push(packet_type.as_u8());
    out.extend_from_slice(&(words as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    if let Some(info) = info {
        out.extend_from_slice(&info.ntp_timestamp.to_be_bytes());
        for v in [info.rtp_timestamp, info.packet_count, info.octet_count] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    for b in blocks {
        b.write(out);
    }
    Ok(out.len() - start)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::{Rtcp, compound};
    use super::*;

    #[test]
    fn a_built_sender_report_parses_back() {
        let info =
            SenderInfo { ntp_timestamp: 0xE000_0001_8000_0000, rtp_timestamp: 960, packet_count: 7, octet_count: 700 };
        let block = ReportBlock {
            ssrc: 9,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_sequence: 0x1_0005,
            jitter: 48,
            last_sr: 0x0001_8000,
            delay_since_last_sr: 65536,
        };
        let mut out = Vec::new();
        let n = build_sender_report(42, &info, &[block], &mut out).unwrap();
        assert_eq!(n, 52);
        build_receiver_report(42, &[], &mut out).unwrap();
        let packets: Vec<_> = compound(&out).collect();
        assert_eq!(packets.len(), 2);
        let Rtcp::SenderReport(sr) = packets[0].as_ref().unwrap().parse().unwrap() else { panic!("not an SR") };
        assert_eq!((sr.ssrc, sr.info), (42, info));
        assert_eq!(sr.blocks().collect::<Vec<_>>(), vec![block]);
        let Rtcp::ReceiverReport(rr) = packets[1].as_ref().unwrap().parse().unwrap() else { panic!("not an RR") };
        assert_eq!((rr.ssrc, rr.blocks().len()), (42, 0));
        assert!(build_sender_report(1, &info, &[block; 32], &mut out).is_err());
    }
}
