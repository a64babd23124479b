//! Fuzz target bodies, compiled into the crate so that stable CI replays the
//! committed corpus through the same code the fuzzer runs.

use crate::{Cipher, Mode, Sealer, SecretKey};

/// Parses `data` as RTP, RTCP, discovery and extensions; checks that the
/// reported lengths add up.
pub fn packet_views(data: &[u8]) {
    let _ = crate::classify(data);
    if let Ok(p) = crate::RtpPacket::new(data) {
        let _ = p.csrcs().count();
        if let (Ok(h), Ok(pad)) = (p.header_len(), p.padding_len()) {
            let payload = p.payload().map(|x| x.len()).unwrap_or(0);
            assert!(h + pad + payload <= data.len());
        }
        if let Ok(Some(e)) = p.extension() {
            assert!(e.elements().map(|el| el.data.len()).sum::<usize>() <= e.body().len());
        }
    }
    for pkt in crate::rtcp::compound(data).flatten() {
        let _ = pkt.parse();
    }
    let _ = crate::discovery::Discovery::parse(data);
}

/// `payload` behind a basic RTP header (sequence, timestamp, SSRC), sealed
/// by a new sealer over `cipher` whose nonces start at `first_nonce`;
/// `None` if it does not seal.
pub fn sealed_packet(cipher: Cipher, first_nonce: u32, header: (u16, u32, u32), payload: &[u8]) -> Option<Vec<u8>> {
    let mut basic = [0u8; 12];
    crate::RtpHeader::write_basic(&mut basic, header.0, header.1, header.2);
    let mut packet = basic.to_vec();
    packet.extend_from_slice(payload);
    Sealer::new(cipher, first_nonce).seal(&mut packet).ok()?;
    Some(packet)
}

/// Opens `data` under every mode with a fixed key, then checks that sealing
/// an arbitrary payload and opening it gives the payload back.
pub fn open_and_round_trip(data: &[u8]) {
    let key = SecretKey::new([0x42; 32]);
    for mode in Mode::PREFERENCE {
        let cipher = Cipher::new(mode, &key);
        let mut buf = data.to_vec();
        let _ = cipher.open(&mut buf);
        let mut buf = data.to_vec();
        let _ = cipher.open_rtcp(&mut buf);

        let first = u32::from(data.first().copied().unwrap_or(0));
        if let Some(mut packet) = sealed_packet(Cipher::new(mode, &key), first, (1, 2, 3), data) {
            let opened = cipher.open(&mut packet).map(|o| o.payload.to_vec());
            assert_eq!(opened.as_deref(), Ok(data), "{mode}");
        }
    }
}

/// Opens `data` under every mode's framing with the null cipher (any tag
/// opens), so that the nonce, the clear header, the extension and padding
/// rules are all reached; whatever opens seals again under the same
/// framing and opens to the same payload. RTCP is opened and parsed too.
pub fn open_null(data: &[u8]) {
    for mode in Mode::PREFERENCE {
        let cipher = Cipher::null(mode);
        let mut buf = data.to_vec();
        if let Ok(opened) = cipher.open(&mut buf) {
            let (fields, payload) = (opened.header, opened.payload.to_vec());
            assert!(payload.len() <= data.len());
            let header = (fields.sequence, fields.timestamp, fields.ssrc);
            if let Some(mut packet) = sealed_packet(Cipher::null(mode), fields.sequence.into(), header, &payload) {
                let again = cipher
                    .open(&mut packet)
                    .ok()
                    .map(|o| (o.header.sequence, o.header.timestamp, o.header.ssrc, o.payload.to_vec()));
                assert_eq!(again, Some((fields.sequence, fields.timestamp, fields.ssrc, payload)), "{mode}");
            }
        }
        let mut buf = data.to_vec();
        if let Ok(plain) = cipher.open_rtcp(&mut buf) {
            for pkt in crate::rtcp::compound(plain).flatten() {
                let _ = pkt.parse();
            }
        }
    }
}

/// Parses `data` as compound RTCP; every sender or receiver report parsed
/// is built again from its fields and parses back to the same fields.
pub fn rtcp_reports(data: &[u8]) {
    use crate::rtcp::{Rtcp, RtcpPacket, build_receiver_report, build_sender_report};
    for pkt in crate::rtcp::compound(data) {
        let Ok(pkt) = pkt else { break };
        let mut out = Vec::new();
        match pkt.parse() {
            Ok(Rtcp::SenderReport(sr)) => {
                let blocks: Vec<_> = sr.blocks().collect();
                if build_sender_report(sr.ssrc, &sr.info, &blocks, &mut out).is_ok() {
                    match RtcpPacket::new(&out).and_then(|p| p.parse()) {
                        Ok(Rtcp::SenderReport(again)) => {
                            assert_eq!((again.ssrc, again.info), (sr.ssrc, sr.info));
                            assert_eq!(again.blocks().collect::<Vec<_>>(), blocks);
                        }
                        other => panic!("a built sender report parsed as {other:?}"),
                    }
                }
            }
            Ok(Rtcp::ReceiverReport(rr)) => {
                let blocks: Vec<_> = rr.blocks().collect();
                if build_receiver_report(rr.ssrc, &blocks, &mut out).is_ok() {
                    match RtcpPacket::new(&out).and_then(|p| p.parse()) {
                        Ok(Rtcp::ReceiverReport(again)) => {
                            assert_eq!(again.ssrc, rr.ssrc);
                            assert_eq!(again.blocks().collect::<Vec<_>>(), blocks);
                        }
                        other => panic!("a built receiver report parsed as {other:?}"),
                    }
                }
            }
            _ => {}
        }
    }
}
