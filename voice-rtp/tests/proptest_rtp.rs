//! Property tests for RTP header building and parsing, and for the packet
//! views on arbitrary bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use voice_rtp::{DatagramKind, Error, RtpHeader, RtpPacket, RtpPacketMut, classify};

/// An extension: the one-byte (0xBEDE) or a two-byte (0x100x) profile, and a
/// body of whole words.
fn extension() -> impl Strategy<Value = Option<(u16, Vec<u8>)>> {
    let profile = prop_oneof![Just(0xBEDEu16), (0u16..16).prop_map(|a| 0x1000 | a)];
    let body = (0usize..=16).prop_flat_map(|words| prop::collection::vec(any::<u8>(), 4 * words));
    prop::option::of((profile, body))
}

fn padding() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), 1u8..=255]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn header_build_parse_round_trip(
        marker in any::<bool>(),
        payload_type in 0u8..=127,
        sequence in any::<u16>(),
        timestamp in any::<u32>(),
        ssrc in any::<u32>(),
        csrcs in prop::collection::vec(any::<u32>(), 0..=15),
        ext in extension(),
        padding in padding(),
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let hdr = RtpHeader {
            marker,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            csrcs: &csrcs,
            extension: ext.as_ref().map(|(p, b)| (*p, b.as_slice())),
            padding,
        };
        let mut out = vec![0xAA; 3]; // write appends; existing bytes stay
        let written = hdr.write(&payload, &mut out);
        let second = payload_type | u8::from(marker) << 7;
        if (192..=223).contains(&second) {
            prop_assert_eq!(written, Err(Error::OutOfRange("payload type")));
            prop_assert_eq!(out.len(), 3);
            return Ok(());
        }
        let n = written.unwrap();
        prop_assert_eq!(&out[..3], &[0xAA; 3]);
        let bytes = &out[3..];
        prop_assert_eq!(n, bytes.len());
        prop_assert_eq!(n, hdr.len() + payload.len() + usize::from(padding));
        prop_assert_eq!(classify(bytes), DatagramKind::Rtp);

        let p = RtpPacket::new(bytes).unwrap();
        prop_assert_eq!(p.version(), 2);
        prop_assert_eq!(p.marker(), marker);
        prop_assert_eq!(p.payload_type(), payload_type);
        prop_assert_eq!(p.sequence(), sequence);
        prop_assert_eq!(p.timestamp(), timestamp);
        prop_assert_eq!(p.ssrc(), ssrc);
        prop_assert_eq!(usize::from(p.csrc_count()), csrcs.len());
        prop_assert_eq!(p.csrcs().collect::<Vec<_>>(), csrcs.clone());
        prop_assert_eq!(p.csrc_end(), 12 + 4 * csrcs.len());
        prop_assert_eq!(p.has_padding(), padding > 0);
        prop_assert_eq!(p.padding_len().unwrap(), usize::from(padding));
        prop_assert_eq!(p.header_len().unwrap(), hdr.len());
        prop_assert_eq!(
            p.rtpsize_clear_len(),
            12 + 4 * csrcs.len() + if ext.is_some() { 4 } else { 0 }
        );
        prop_assert_eq!(p.has_extension(), ext.is_some());
        let got = p.extension().unwrap().map(|e| (e.profile(), e.body().to_vec()));
        prop_assert_eq!(&got, &ext);
        prop_assert_eq!(p.extension_preamble(), ext.as_ref().map(|(pr, b)| (*pr, b.len())));
        if let Some(e) = p.extension().unwrap() {
            prop_assert_eq!(e.is_one_byte(), e.profile() == 0xBEDE);
            prop_assert_eq!(e.is_two_byte(), e.profile() != 0xBEDE);
            let total: usize = e.elements().map(|el| el.data.len()).sum();
            prop_assert!(total <= e.body().len());
        }
        prop_assert_eq!(p.payload().unwrap(), payload.as_slice());

        // The mutable view reads the same and edits in place.
        let mut copy = bytes.to_vec();
        let mut m = RtpPacketMut::new(&mut copy).unwrap();
        prop_assert_eq!(m.payload_mut().unwrap().len(), payload.len());
        m.set_sequence(sequence.wrapping_add(1));
        m.set_timestamp(timestamp.wrapping_add(960));
        // With a payload type in 64..=95, setting the marker would move the
        // second byte into the RTCP range (RFC 5761): set_marker refuses.
        let flip = m.set_marker(!marker).is_ok();
        prop_assert_eq!(flip, marker || !(64..=95).contains(&payload_type));
        let p2 = RtpPacket::new(&copy).unwrap();
        prop_assert_eq!(p2.sequence(), sequence.wrapping_add(1));
        prop_assert_eq!(p2.timestamp(), timestamp.wrapping_add(960));
        prop_assert_eq!(p2.marker(), marker ^ flip);
        prop_assert_eq!(p2.payload().unwrap(), payload.as_slice());
    }

    #[test]
    fn views_never_panic_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = classify(&data);
        if let Ok(p) = RtpPacket::new(&data) {
            prop_assert!(p.csrc_end() <= data.len());
            let _ = p.csrcs().count();
            if let (Ok(h), Ok(pad), Ok(payload)) = (p.header_len(), p.padding_len(), p.payload()) {
                prop_assert_eq!(h + pad + payload.len(), data.len());
            }
            if let Ok(Some(e)) = p.extension() {
                let total: usize = e.elements().map(|el| el.data.len()).sum();
                prop_assert!(total <= e.body().len());
            }
        }
        let mut copy = data.clone();
        if let Ok(mut m) = RtpPacketMut::new(&mut copy) {
            let _ = m.payload_mut();
        }
        let _ = voice_rtp::discovery::Discovery::parse(&data);
    }

    #[test]
    fn header_with_rtp_first_bytes_parses(b0 in 0x80u8..=0xBF, b1 in any::<u8>(), rest in prop::collection::vec(any::<u8>(), 10..80)) {
        let mut data = vec![b0, b1];
        data.extend_from_slice(&rest);
        let r = RtpPacket::new(&data);
        if (192..=223).contains(&b1) {
            prop_assert_eq!(r.err(), Some(Error::IsRtcp(b1)));
            prop_assert_eq!(classify(&data), DatagramKind::Rtcp);
        } else {
            let needed = 12 + 4 * usize::from(b0 & 0x0F) + if b0 & 0x10 != 0 { 4 } else { 0 };
            prop_assert_eq!(r.is_ok(), data.len() >= needed);
        }
    }
}

#[test]
fn header_write_rejects_bad_fields() {
    let csrcs = [0u32; 16];
    let mut out = Vec::new();
    let too_many = RtpHeader { payload_type: 120, csrcs: &csrcs, ..Default::default() };
    assert!(too_many.write(&[], &mut out).is_err());
    let odd_body = RtpHeader { payload_type: 120, extension: Some((0xBEDE, &[1, 2, 3])), ..Default::default() };
    assert!(odd_body.write(&[], &mut out).is_err());
    let pt = RtpHeader { payload_type: 128, ..Default::default() };
    assert!(pt.write(&[], &mut out).is_err());
    assert!(out.is_empty());
}
