//! Telling apart what arrives on the voice UDP socket (PROTOCOL.md §3.5).

use crate::discovery::{DISCOVERY_LEN, REQUEST_TYPE, RESPONSE_TYPE};
use crate::rtp::second_byte_is_rtcp;

/// What a datagram is, judged from its first bytes and length only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatagramKind {
    /// RTP (version 2, second byte outside the RTCP range).
    Rtp,
    /// RTCP (version 2, second byte in 192..=223).
    Rtcp,
    /// An IP discovery request (what a server receives).
    DiscoveryRequest,
    /// An IP discovery response (what a client receives).
    DiscoveryResponse,
    /// Anything else: keepalives and noise.
    Other,
}

/// Classifies a datagram.
pub fn classify(buf: &[u8]) -> DatagramKind {
    if buf.len() == DISCOVERY_LEN && buf[0] == 0 {
        match u16::from_be_bytes([buf[0], buf[1]]) {
            REQUEST_TYPE => return DatagramKind::DiscoveryRequest,
            RESPONSE_TYPE => return DatagramKind::DiscoveryResponse,
            _ => {}
        }
    }
    match buf {
        [b0, b1, ..] if b0 >> 6 == 2 && second_byte_is_rtcp(*b1) => DatagramKind::Rtcp,
        [b0, _, ..] if b0 >> 6 == 2 && buf.len() >= 12 => DatagramKind::Rtp,
        _ => DatagramKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demux() {
        assert_eq!(classify(&crate::discovery::request(5)), DatagramKind::DiscoveryRequest);
        let r = crate::discovery::response(5, "1.1.1.1", 3).unwrap();
        assert_eq!(classify(&r), DatagramKind::DiscoveryResponse);
        let mut rtp = [0u8; 12];
        crate::RtpHeader::write_basic(&mut rtp, 1, 2, 3);
        assert_eq!(classify(&rtp), DatagramKind::Rtp);
        assert_eq!(classify(&[0x80, 200, 0, 1, 0, 0, 0, 0]), DatagramKind::Rtcp);
        assert_eq!(classify(&[0x81, 201, 0, 7]), DatagramKind::Rtcp);
        assert_eq!(classify(&[1, 0, 0, 0, 0, 0, 0, 0]), DatagramKind::Other);
        assert_eq!(classify(&[]), DatagramKind::Other);
    }
}
