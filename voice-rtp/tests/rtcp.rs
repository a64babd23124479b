//! RTCP: hand-built SR, RR, SDES, BYE and compound packets, padding, the
//! RTP/RTCP split, and property tests for parsing and receiver reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use voice_rtp::rtcp::{self, PacketType, ReportBlock, Rtcp, RtcpPacket, build_receiver_report, compound, is_rtcp};
use voice_rtp::{DatagramKind, Error, RtpPacket, RtpPacketMut, classify};

fn header(count: u8, pt: u8, body_len: usize) -> Vec<u8> {
    assert_eq!(body_len % 4, 0);
    let mut v = vec![0x80 | count, pt];
    v.extend_from_slice(&((body_len / 4) as u16).to_be_bytes());
    v
}

fn block_bytes(ssrc: u32, fraction: u8, lost: [u8; 3], rest: [u32; 4]) -> Vec<u8> {
    let mut v = ssrc.to_be_bytes().to_vec();
    v.push(fraction);
    v.extend_from_slice(&lost);
    for x in rest {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v
}

fn sender_report() -> Vec<u8> {
    let mut body = 0x1111_2222u32.to_be_bytes().to_vec();
    body.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
    body.extend_from_slice(&48_000u32.to_be_bytes());
    body.extend_from_slice(&50u32.to_be_bytes());
    body.extend_from_slice(&5_000u32.to_be_bytes());
    body.extend(block_bytes(0xAAAA, 64, [0, 0, 7], [65_600, 12, 0xDEAD_BEEF, 65_536]));
    body.extend(block_bytes(0xBBBB, 0, [0xFF, 0xFF, 0xFE], [3, 4, 5, 6]));
    let mut p = header(2, 200, body.len());
    p.extend(body);
    p
}

#[test]
fn sender_report_with_blocks() {
    let sr = sender_report();
    assert_eq!(sr.len(), 4 + 24 + 48);
    assert!(is_rtcp(&sr));
    assert_eq!(classify(&sr), DatagramKind::Rtcp);
    let p = RtcpPacket::new(&sr).unwrap();
    assert_eq!(p.packet_type(), PacketType::SenderReport);
    assert_eq!((p.count(), p.ssrc()), (2, Some(0x1111_2222)));
    let Rtcp::SenderReport(r) = p.parse().unwrap() else { panic!("not an SR") };
    assert_eq!(r.ssrc, 0x1111_2222);
    assert_eq!(r.info.ntp_timestamp, 0x0102_0304_0506_0708);
    assert_eq!((r.info.rtp_timestamp, r.info.packet_count, r.info.octet_count), (48_000, 50, 5_000));
    let blocks: Vec<_> = r.blocks().collect();
    assert_eq!(
        blocks,
        vec![
            ReportBlock {
                ssrc: 0xAAAA,
                fraction_lost: 64,
                cumulative_lost: 7,
                highest_sequence: 65_600,
                jitter: 12,
                last_sr: 0xDEAD_BEEF,
                delay_since_last_sr: 65_536,
            },
            ReportBlock {
                ssrc: 0xBBBB,
                fraction_lost: 0,
                cumulative_lost: -2,
                highest_sequence: 3,
                jitter: 4,
                last_sr: 5,
                delay_since_last_sr: 6,
            },
        ]
    );
    // A count that claims a third block the packet lacks is malformed.
    let mut bad = sr.clone();
    bad[0] = 0x83;
    assert!(matches!(RtcpPacket::new(&bad).unwrap().parse(), Err(Error::MalformedRtcp(_))));
    // Too short for the sender info.
    let short = [0x80, 200, 0, 1, 0, 0, 0, 1];
    assert!(matches!(RtcpPacket::new(&short).unwrap().parse(), Err(Error::MalformedRtcp(_))));
}

#[test]
fn receiver_report_hand_built_and_built() {
    let mut body = 0x0000_0DB1u32.to_be_bytes().to_vec();
    body.extend(block_bytes(0x0DB4, 255, [0x80, 0, 0], [1, 2, 3, 4]));
    let mut rr = header(1, 201, body.len());
    rr.extend(body);
    let Rtcp::ReceiverReport(r) = RtcpPacket::new(&rr).unwrap().parse().unwrap() else { panic!("not an RR") };
    assert_eq!(r.ssrc, 0x0DB1);
    let b: Vec<_> = r.blocks().collect();
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].fraction_lost, b[0].cumulative_lost), (255, -0x80_0000));

    let mut built = Vec::new();
    assert_eq!(build_receiver_report(0x0DB1, &b, &mut built).unwrap(), 32);
    assert_eq!(built, rr);

    // An empty RR is 8 bytes; more than 31 blocks is refused.
    let mut empty = Vec::new();
    build_receiver_report(9, &[], &mut empty).unwrap();
    assert_eq!(empty, [0x80, 201, 0, 1, 0, 0, 0, 9]);
    let mut out = Vec::new();
    assert!(build_receiver_report(1, &[ReportBlock::default(); 32], &mut out).is_err());
    // Out-of-range losses are clamped to the 24-bit range.
    let big = ReportBlock { cumulative_lost: i32::MAX, ..Default::default() };
    build_receiver_report(1, &[big], &mut out).unwrap();
    assert_eq!(&out[12..16], &[0, 0x7F, 0xFF, 0xFF]);
}

fn sdes() -> Vec<u8> {
    // Chunk 1: CNAME "user@host" and NAME "Al", null-terminated, padded.
    let mut body = 0x0DB4u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[1, 9]);
    body.extend_from_slice(b"user@host");
    body.extend_from_slice(&[2, 2]);
    body.extend_from_slice(b"Al");
    body.push(0);
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    // Chunk 2: CNAME "x", exactly filling a word with its terminator.
    body.extend_from_slice(&0x0DB5u32.to_be_bytes());
    body.extend_from_slice(&[1, 1, b'x', 0]);
    let mut p = header(2, 202, body.len());
    p.extend(body);
    p
}

#[test]
fn sdes_with_cname() {
    let p = sdes();
    let Rtcp::SourceDescription(s) = RtcpPacket::new(&p).unwrap().parse().unwrap() else { panic!("not SDES") };
    assert_eq!(s.chunks.len(), 2);
    assert_eq!(s.chunks[0].ssrc, 0x0DB4);
    assert_eq!(s.chunks[0].items.len(), 2);
    assert_eq!((s.chunks[0].items[0].kind, s.chunks[0].items[0].value), (1, &b"user@host"[..]));
    assert_eq!((s.chunks[0].items[1].kind, s.chunks[0].items[1].value), (2, &b"Al"[..]));
    assert_eq!(s.chunks[1].ssrc, 0x0DB5);
    assert_eq!(s.chunks[1].items[0].value, b"x");

    // An item running past the packet is malformed.
    let mut bad = header(1, 202, 8);
    bad.extend_from_slice(&[0, 0, 0, 1, 1, 200, b'a', b'b']);
    assert!(RtcpPacket::new(&bad).unwrap().parse().is_err());
}

fn bye() -> Vec<u8> {
    let mut body = 0x0DB4u32.to_be_bytes().to_vec();
    body.extend_from_slice(&0x0DB5u32.to_be_bytes());
    body.push(7);
    body.extend_from_slice(b"timeout");
    let mut p = header(2, 203, body.len());
    p.extend(body);
    p
}

#[test]
fn bye_with_reason() {
    let p = bye();
    let Rtcp::Bye(b) = RtcpPacket::new(&p).unwrap().parse().unwrap() else { panic!("not BYE") };
    assert_eq!(b.sources().collect::<Vec<_>>(), vec![0x0DB4, 0x0DB5]);
    assert_eq!(b.reason, Some(&b"timeout"[..]));

    let mut no_reason = header(1, 203, 4);
    no_reason.extend_from_slice(&1u32.to_be_bytes());
    let Rtcp::Bye(b) = RtcpPacket::new(&no_reason).unwrap().parse().unwrap() else { panic!("not BYE") };
    assert_eq!((b.sources().len(), b.reason), (1, None));

    // A reason length beyond the packet is malformed.
    let mut bad = header(1, 203, 8);
    bad.extend_from_slice(&[0, 0, 0, 1, 9, b'a', b'b', b'c']);
    assert!(RtcpPacket::new(&bad).unwrap().parse().is_err());
}

#[test]
fn compound_iteration() {
    let mut datagram = sender_report();
    datagram.extend(sdes());
    datagram.extend(bye());
    let mut app = header(3, 204, 8);
    app.extend_from_slice(b"\0\0\0\x01NAME");
    datagram.extend_from_slice(&app);
    let packets: Vec<_> = compound(&datagram).collect::<Result<_, _>>().unwrap();
    let types: Vec<_> = packets.iter().map(|p| p.packet_type()).collect();
    assert_eq!(types, [PacketType::SenderReport, PacketType::SourceDescription, PacketType::Bye, PacketType::App]);
    let total: usize = packets.iter().map(|p| p.as_bytes().len()).sum();
    assert_eq!(total, datagram.len());
    assert!(matches!(packets[3].parse().unwrap(), Rtcp::App(b) if b == b"\0\0\0\x01NAME"));
    for p in &packets {
        assert_eq!(PacketType::from_u8(p.packet_type().as_u8()), Some(p.packet_type()));
        p.parse().unwrap();
    }

    // A truncated last packet yields an error, then the iterator stops.
    let cut = &datagram[..datagram.len() - 2];
    let items: Vec<_> = compound(cut).collect();
    assert_eq!(items.len(), 4);
    assert!(items[..3].iter().all(Result::is_ok));
    assert!(matches!(items[3], Err(Error::TooShort { .. })));
    assert_eq!(compound(&[]).count(), 0);
}

#[test]
fn padding() {
    // RR with no blocks, padded by 4 bytes (the last holds the count).
    let mut p = vec![0xA0, 201, 0, 2];
    p.extend_from_slice(&5u32.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 4]);
    let pkt = RtcpPacket::new(&p).unwrap();
    assert!(pkt.has_padding());
    assert_eq!(pkt.body().unwrap(), &5u32.to_be_bytes());
    let Rtcp::ReceiverReport(r) = pkt.parse().unwrap() else { panic!("not RR") };
    assert_eq!((r.ssrc, r.blocks().len()), (5, 0));

    for bad in [0u8, 9, 255] {
        p[11] = bad;
        assert_eq!(RtcpPacket::new(&p).unwrap().body(), Err(Error::BadPadding(bad)), "{bad}");
    }
}

#[test]
fn rtp_views_reject_rtcp_types() {
    for pt in 200u8..=204 {
        let mut p = vec![0x80, pt, 0, 6];
        p.extend_from_slice(&[0; 24]);
        assert_eq!(classify(&p), DatagramKind::Rtcp, "{pt}");
        assert!(is_rtcp(&p));
        assert_eq!(RtpPacket::new(&p).err(), Some(Error::IsRtcp(pt)));
        assert_eq!(RtpPacketMut::new(&mut p).err(), Some(Error::IsRtcp(pt)));
        assert!(RtcpPacket::new(&p).is_ok());
    }
    // And RTCP views reject RTP.
    let mut h = [0u8; 12];
    voice_rtp::RtpHeader::write_basic(&mut h, 1, 2, 3);
    assert!(!is_rtcp(&h));
    assert_eq!(RtcpPacket::new(&h).err(), Some(Error::NotRtcp(0x78)));
    assert_eq!(RtcpPacket::new(&[0x40, 200, 0, 0]).err(), Some(Error::UnsupportedVersion(1)));
    // 192..=199 and 205..=223 are RTCP-range for the demux, but no type here.
    assert_eq!(classify(&[0x80, 205, 0, 0]), DatagramKind::Rtcp);
    assert_eq!(RtcpPacket::new(&[0x80, 205, 0, 0]).err(), Some(Error::NotRtcp(205)));
}

fn block() -> impl Strategy<Value = ReportBlock> {
    (any::<u32>(), any::<u8>(), -0x80_0000i32..=0x7F_FFFF, any::<[u32; 4]>()).prop_map(
        |(ssrc, fraction_lost, cumulative_lost, r)| ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost,
            highest_sequence: r[0],
            jitter: r[1],
            last_sr: r[2],
            delay_since_last_sr: r[3],
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_never_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = is_rtcp(&data);
        let _ = classify(&data);
        let mut seen = 0;
        for p in compound(&data) {
            let Ok(p) = p else { break };
            seen += p.as_bytes().len();
            let _ = p.body();
            let _ = p.ssrc();
            match p.parse() {
                Ok(Rtcp::SenderReport(r)) => { let _ = r.blocks().count(); }
                Ok(Rtcp::ReceiverReport(r)) => { let _ = r.blocks().count(); }
                Ok(Rtcp::Bye(b)) => { let _ = b.sources().count(); }
                _ => {}
            }
        }
        prop_assert!(seen <= data.len());
    }

    #[test]
    fn parse_never_panics_on_rtcp_shaped_bytes(
        b0 in 0x80u8..=0xBF,
        pt in 200u8..=204,
        words in 0u16..40,
        rest in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut data = vec![b0, pt];
        data.extend_from_slice(&words.to_be_bytes());
        data.extend_from_slice(&rest);
        prop_assert!(is_rtcp(&data));
        if let Ok(p) = RtcpPacket::new(&data) {
            prop_assert_eq!(p.as_bytes().len(), 4 * (usize::from(words) + 1));
            let _ = p.parse();
        }
    }

    #[test]
    fn receiver_report_round_trip(
        ssrc in any::<u32>(),
        blocks in prop::collection::vec(block(), 0..=31),
    ) {
        let mut out = vec![1, 2, 3];
        let n = build_receiver_report(ssrc, &blocks, &mut out).unwrap();
        prop_assert_eq!(n, 8 + 24 * blocks.len());
        let bytes = &out[3..];
        prop_assert_eq!(classify(bytes), DatagramKind::Rtcp);
        let packets: Vec<_> = rtcp::compound(bytes).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(packets.len(), 1);
        prop_assert_eq!(packets[0].count() as usize, blocks.len());
        let Rtcp::ReceiverReport(r) = packets[0].parse().unwrap() else {
            return Err(TestCaseError::fail("not an RR"));
        };
        prop_assert_eq!(r.ssrc, ssrc);
        prop_assert_eq!(r.blocks().collect::<Vec<_>>(), blocks);
    }
}
