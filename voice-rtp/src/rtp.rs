//! RTP packet views over caller bytes (RFC 3550, PROTOCOL.md §3.4-3.5).
//!
//! [`RtpPacket`] reads, [`RtpPacketMut`] edits in place, and [`RtpHeader`]
//! writes a header (with CSRCs, extension and padding) into a caller's buffer.
//! Nothing here allocates except [`RtpHeader::write`], which only grows the
//! caller's `Vec` when it lacks capacity.

use crate::crypto::RtpFields;
use crate::error::need;
use crate::ext::Extension;
use crate::{Error, Result};

/// Length of the fixed RTP header.
pub const FIXED_HEADER_LEN: usize = 12;
/// The payload type Discord uses for Opus.
pub const OPUS_PAYLOAD_TYPE: u8 = 120;

/// True when a datagram's second byte puts it in the RTCP range (RFC 5761:
/// packet types 192..=223), which is how RTCP is told apart from RTP.
pub(crate) fn second_byte_is_rtcp(b1: u8) -> bool {
    (192..=223).contains(&b1)
}

/// A read-only view of an RTP packet.
///
/// Construction checks the version, that the CSRC list and the extension
/// preamble fit, and that the packet is not RTCP. The extension body and
/// padding are checked only when asked for, because in the `rtpsize` modes
/// they are still encrypted when the header is first read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    buf: &'a [u8],
}

impl core::fmt::Debug for RtpPacket<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RtpPacket")
            .field("payload_type", &self.payload_type())
            .field("sequence", &self.sequence())
            .field("timestamp", &self.timestamp())
            .field("ssrc", &self.ssrc())
            .field("len", &self.buf.len())
            .finish()
    }
}

fn check(buf: &[u8]) -> Result<()> {
    need(buf, FIXED_HEADER_LEN)?;
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(Error::UnsupportedVersion(version));
    }
    if second_byte_is_rtcp(buf[1]) {
        return Err(Error::IsRtcp(buf[1]));
    }
    let cc = usize::from(buf[0] & 0x0F);
    let extension = buf[0] & 0x10 != 0;
    need(buf, FIXED_HEADER_LEN + 4 * cc + if extension { 4 } else { 0 })
}

macro_rules! header_getters {
    () => {
        /// The version field (always 2 for a valid view).
        pub fn version(&self) -> u8 {
            self.buf[0] >> 6
        }
        /// The padding bit.
        pub fn has_padding(&self) -> bool {
            self.buf[0] & 0x20 != 0
        }
        /// The extension bit.
        pub fn has_extension(&self) -> bool {
            self.buf[0] & 0x10 != 0
        }
        /// The CSRC count.
        pub fn csrc_count(&self) -> u8 {
            self.buf[0] & 0x0F
        }
        /// The marker bit.
        pub fn marker(&self) -> bool {
            self.buf[1] & 0x80 != 0
        }
        /// The payload type (120 for Discord's Opus).
        pub fn payload_type(&self) -> u8 {
            self.buf[1] & 0x7F
        }
        /// The sequence number.
        pub fn sequence(&self) -> u16 {
            u16::from_be_bytes([self.buf[2], self.buf[3]])
        }
        /// The timestamp, in 48 kHz samples for Opus.
        pub fn timestamp(&self) -> u32 {
            u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]])
        }
        /// The synchronisation source.
        pub fn ssrc(&self) -> u32 {
            u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]])
        }
        /// The CSRC list.
        pub fn csrcs(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
            self.buf[FIXED_HEADER_LEN..FIXED_HEADER_LEN + 4 * usize::from(self.csrc_count())]
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        }
        /// Length of the fixed header plus CSRCs: `12 + 4*CC`.
        pub fn csrc_end(&self) -> usize {
            FIXED_HEADER_LEN + 4 * usize::from(self.csrc_count())
        }
        /// Length of the part that the `rtpsize` modes leave in clear (their
        /// AAD): `12 + 4*CC + (X ? 4 : 0)`.
        pub fn rtpsize_clear_len(&self) -> usize {
            self.csrc_end() + if self.has_extension() { 4 } else { 0 }
        }
        /// The extension profile and body length in bytes, from the preamble.
        pub fn extension_preamble(&self) -> Option<(u16, usize)> {
            if !self.has_extension() {
                return None;
            }
            let at = self.csrc_end();
            let profile = u16::from_be_bytes([self.buf[at], self.buf[at + 1]]);
            let words = u16::from_be_bytes([self.buf[at + 2], self.buf[at + 3]]);
            Some((profile, 4 * usize::from(words)))
        }
        /// Full header length (RFC 3550): fixed header, CSRCs, extension
        /// preamble and body. Fails if the extension body runs past the packet.
        pub fn header_len(&self) -> Result<usize> {
            let len = self.rtpsize_clear_len() + self.extension_preamble().map_or(0, |(_, n)| n);
            if len > self.buf.len() {
                return Err(Error::ExtensionOverrun);
            }
            Ok(len)
        }
        /// Number of padding bytes at the end (0 when P is clear). Fails if the
        /// count is zero or runs into the header.
        pub fn padding_len(&self) -> Result<usize> {
            if !self.has_padding() {
                return Ok(0);
            }
            let n = self.buf[self.buf.len() - 1];
            if n == 0 || usize::from(n) > self.buf.len() - self.header_len()? {
                return Err(Error::BadPadding(n));
            }
            Ok(usize::from(n))
        }
        /// The whole packet.
        pub fn as_bytes(&self) -> &[u8] {
            self.buf
        }
    };
}

/// What opening a sealed packet needs of its clear header, read once by
/// [`RtpPacket::layout`]: a receiver that has looked at the header (to
/// route by SSRC, say) hands it to [`Cipher::open_laid_out`](crate::Cipher::open_laid_out)
/// instead of having the header parsed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpLayout {
    /// The header fields.
    pub fields: RtpFields,
    pub(crate) len: usize,
    /// The fixed header as read, to refuse a layout of another packet.
    pub(crate) head: [u8; FIXED_HEADER_LEN],
    pub(crate) padded: bool,
    pub(crate) csrc_count: u8,
    pub(crate) rtpsize_clear_len: usize,
    pub(crate) extension_preamble: Option<(u16, usize)>,
}

impl<'a> RtpPacket<'a> {
    /// The header as opening needs it.
    #[inline]
    pub fn layout(&self) -> RtpLayout {
        RtpLayout {
            fields: RtpFields {
                marker: self.marker(),
                payload_type: self.payload_type(),
                sequence: self.sequence(),
                timestamp: self.timestamp(),
                ssrc: self.ssrc(),
            },
            len: self.buf.len(),
            head: self.buf.get(..FIXED_HEADER_LEN).and_then(|h| h.try_into().ok()).unwrap_or_default(),
            padded: self.has_padding(),
            csrc_count: self.csrc_count(),
            rtpsize_clear_len: self.rtpsize_clear_len(),
            extension_preamble: self.extension_preamble(),
        }
    }

    /// Views `buf` as an RTP packet.
    pub fn new(buf: &'a [u8]) -> Result<Self> {
        check(buf)?;
        Ok(RtpPacket { buf })
    }

    header_getters!();

    /// The header extension, if X is set and its body fits.
    pub fn extension(&self) -> Result<Option<Extension<'a>>> {
        let Some((profile, body_len)) = self.extension_preamble() else {
            return Ok(None);
        };
        let start = self.rtpsize_clear_len();
        let body = self.buf.get(start..start + body_len).ok_or(Error::ExtensionOverrun)?;
        Ok(Some(Extension::new(profile, body)))
    }

    /// The payload: after the full header, with padding removed.
    pub fn payload(&self) -> Result<&'a [u8]> {
        let start = self.header_len()?;
        let end = self.buf.len() - self.padding_len()?;
        Ok(&self.buf[start..end])
    }
}

/// A mutable view of an RTP packet, for editing header fields in place.
#[derive(PartialEq, Eq)]
pub struct RtpPacketMut<'a> {
    buf: &'a mut [u8],
}

impl core::fmt::Debug for RtpPacketMut<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.as_packet().fmt(f)
    }
}

impl<'a> RtpPacketMut<'a> {
    /// Views `buf` as an RTP packet, with the same checks as [`RtpPacket::new`].
    pub fn new(buf: &'a mut [u8]) -> Result<Self> {
        check(buf)?;
        Ok(RtpPacketMut { buf })
    }

    header_getters!();

    /// A read-only view of the same bytes.
    pub fn as_packet(&self) -> RtpPacket<'_> {
        RtpPacket { buf: self.buf }
    }

    /// Sets the marker bit. Refused when the result would read as RTCP
    /// (marker set with a payload type in 64..=95, RFC 5761).
    pub fn set_marker(&mut self, marker: bool) -> Result<()> {
        let b1 = (self.buf[1] & 0x7F) | if marker { 0x80 } else { 0 };
        if second_byte_is_rtcp(b1) {
            return Err(Error::OutOfRange("marker with this payload type reads as RTCP"));
        }
        self.buf[1] = b1;
        Ok(())
    }
    /// Sets the payload type; values above 127 are an error.
    pub fn set_payload_type(&mut self, pt: u8) -> Result<()> {
        if pt > 0x7F || second_byte_is_rtcp(pt | (self.buf[1] & 0x80)) {
            return Err(Error::OutOfRange("payload type"));
        }
        self.buf[1] = (self.buf[1] & 0x80) | pt;
        Ok(())
    }
    /// Sets the sequence number.
    pub fn set_sequence(&mut self, seq: u16) {
        self.buf[2..4].copy_from_slice(&seq.to_be_bytes());
    }
    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        self.buf[4..8].copy_from_slice(&ts.to_be_bytes());
    }
    /// Sets the SSRC.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }
    /// The payload, mutable: after the full header, padding removed.
    pub fn payload_mut(&mut self) -> Result<&mut [u8]> {
        let start = self.header_len()?;
        let end = self.buf.len() - self.padding_len()?;
        Ok(&mut self.buf[start..end])
    }
}

/// The fields of an RTP header to write, for [`RtpHeader::write`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtpHeader<'a> {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (0..=127, outside the RTCP range).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Contributing sources (at most 15).
    pub csrcs: &'a [u32],
    /// Extension profile and body; the body length must be a multiple of 4
    /// and at most 4 * 65535 bytes.
    pub extension: Option<(u16, &'a [u8])>,
    /// Padding bytes to append after the payload (0 for none).
    pub padding: u8,
}

impl RtpHeader<'_> {
    /// The plain 12-byte header Discord clients send: no CSRC, no extension.
    pub fn write_basic(out: &mut [u8; FIXED_HEADER_LEN], sequence: u16, timestamp: u32, ssrc: u32) {
        out[0] = 0x80;
        out[1] = OPUS_PAYLOAD_TYPE;
        out[2..4].copy_from_slice(&sequence.to_be_bytes());
        out[4..8].copy_from_slice(&timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }

    /// Length of the header (without payload or padding).
    pub fn len(&self) -> usize {
        FIXED_HEADER_LEN + 4 * self.csrcs.len() + self.extension.map_or(0, |(_, b)| 4 + b.len())
    }

    /// Whether the header is empty (never: it has at least 12 bytes).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends header, `payload` and padding to `out`; returns the bytes written.
    pub fn write(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<usize> {
        if self.csrcs.len() > 15 {
            return Err(Error::OutOfRange("more than 15 CSRCs"));
        }
        if self.payload_type > 0x7F || second_byte_is_rtcp(self.payload_type | u8::from(self.marker) << 7) {
            return Err(Error::OutOfRange("payload type"));
        }
        if let Some((_, body)) = self.extension
            && (body.len() % 4 != 0 || body.len() / 4 > usize::from(u16::MAX))
        {
            return Err(Error::OutOfRange("extension body length"));
        }
        let start = out.len();
        let mut b0 = 0x80 | self.csrcs.len() as u8;
        if self.padding > 0 {
            b0 |= 0x20;
        }
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        out.push(b0);
        out.push(self.payload_type | u8::from(self.marker) << 7);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in self.csrcs {
            out.extend_from_slice(&c.to_be_bytes());
        }
        if let Some((profile, body)) = self.extension {
            out.extend_from_slice(&profile.to_be_bytes());
            out.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
            out.extend_from_slice(body);
        }
        out.extend_from_slice(payload);
        if self.padding > 0 {
            out.resize(out.len() + usize::from(self.padding) - 1, 0);
            out.push(self.padding);
        }
        Ok(out.len() - start)
    }
}

/// `a` is newer than `b` in RFC 1982 serial-number arithmetic on `u16`.
pub fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// `a` is newer than `b` in RFC 1982 serial-number arithmetic on `u32`.
pub fn timestamp_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_matches_vector_9_3() {
        let mut h = [0u8; 12];
        RtpHeader::write_basic(&mut h, 1, 960, 1);
        assert_eq!(h, [0x80, 0x78, 0, 1, 0, 0, 3, 0xC0, 0, 0, 0, 1]);
        let p = RtpPacket::new(&h).unwrap();
        assert_eq!((p.sequence(), p.timestamp(), p.ssrc(), p.payload_type()), (1, 960, 1, 120));
        assert_eq!(p.payload().unwrap(), &[] as &[u8]);
    }

    #[test]
    fn rejects_bad_versions_and_rtcp() {
        assert_eq!(RtpPacket::new(&[0x80; 4]).unwrap_err(), Error::TooShort { needed: 12, got: 4 });
        let mut h = [0u8; 12];
        RtpHeader::write_basic(&mut h, 1, 2, 3);
        h[0] = 0x40;
        assert_eq!(RtpPacket::new(&h).unwrap_err(), Error::UnsupportedVersion(1));
        h[0] = 0x80;
        h[1] = 200;
        assert_eq!(RtpPacket::new(&h).unwrap_err(), Error::IsRtcp(200));
        h[1] = 0x78;
        h[0] = 0x83; // 3 CSRCs declared, none present
        assert!(matches!(RtpPacket::new(&h), Err(Error::TooShort { .. })));
    }

    #[test]
    fn padding_and_extension_are_checked() {
        let mut out = Vec::new();
        let hdr = RtpHeader {
            payload_type: 120,
            extension: Some((0xBEDE, &[0x10, 0x55, 0, 0])),
            padding: 3,
            ..Default::default()
        };
        hdr.write(&[1, 2, 3], &mut out).unwrap();
        let p = RtpPacket::new(&out).unwrap();
        assert_eq!(p.payload().unwrap(), &[1, 2, 3]);
        assert_eq!(p.header_len().unwrap(), 20);
        let last = out.len() - 1;
        out[last] = 0;
        assert_eq!(RtpPacket::new(&out).unwrap().payload(), Err(Error::BadPadding(0)));
        out[last] = 200;
        assert_eq!(RtpPacket::new(&out).unwrap().payload(), Err(Error::BadPadding(200)));
    }

    #[test]
    fn mutable_view_edits_in_place() {
        let mut h = [0u8; 12];
        RtpHeader::write_basic(&mut h, 1, 2, 3);
        let mut m = RtpPacketMut::new(&mut h).unwrap();
        m.set_sequence(65535);
        m.set_timestamp(u32::MAX);
        m.set_ssrc(7);
        m.set_marker(true).unwrap();
        assert!(m.set_payload_type(200).is_err());
        assert!(m.set_payload_type(72).is_err(), "marker + 72 reads as RTCP 200");
        m.set_payload_type(111).unwrap();
        let p = RtpPacket::new(&h).unwrap();
        assert_eq!(
            (p.sequence(), p.timestamp(), p.ssrc(), p.marker(), p.payload_type()),
            (65535, u32::MAX, 7, true, 111)
        );
    }

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(seq_newer(0, 65535));
        assert!(!seq_newer(65535, 0));
        assert!(timestamp_newer(100, u32::MAX - 100));
        assert!(!seq_newer(5, 5));
    }
}
