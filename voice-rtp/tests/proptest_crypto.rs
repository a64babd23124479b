//! Property tests for sealing and opening in every mode: round trips, and
//! that random or tampered input fails without panicking.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use voice_rtp::{Cipher, Error, Mode, RtpHeader, Sealer, SecretKey};

fn mode() -> impl Strategy<Value = Mode> {
    prop::sample::select(Mode::PREFERENCE.to_vec())
}

fn key() -> impl Strategy<Value = SecretKey> {
    any::<[u8; 32]>().prop_map(SecretKey::new)
}

/// Header options exercised in sealed packets.
#[derive(Debug, Clone)]
struct Shape {
    csrcs: Vec<u32>,
    extension: Option<(u16, Vec<u8>)>,
    padding: u8,
}

fn shape() -> impl Strategy<Value = Shape> {
    let ext = prop::option::of((
        prop_oneof![Just(0xBEDEu16), Just(0x1000u16)],
        (0usize..=4).prop_flat_map(|w| prop::collection::vec(any::<u8>(), 4 * w)),
    ));
    (prop::collection::vec(any::<u32>(), 0..=3), ext, prop_oneof![2 => Just(0u8), 1 => 1u8..=255])
        .prop_map(|(csrcs, extension, padding)| Shape { csrcs, extension, padding })
}

fn build(shape: &Shape, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let hdr = RtpHeader {
        marker,
        payload_type: 120,
        sequence: seq,
        timestamp: ts,
        ssrc,
        csrcs: &shape.csrcs,
        extension: shape.extension.as_ref().map(|(p, b)| (*p, b.as_slice())),
        padding: shape.padding,
    };
    let mut out = Vec::new();
    hdr.write(payload, &mut out).unwrap();
    out
}

fn header_authenticated(mode: Mode) -> bool {
    matches!(mode, Mode::Aes256GcmRtpSize | Mode::XChaCha20Poly1305RtpSize | Mode::Aes256Gcm | Mode::XSalsa20Poly1305)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn plain_seal_open_round_trip_every_mode(
        key in key(),
        first in any::<u32>(),
        seq in any::<u16>(),
        ts in any::<u32>(),
        ssrc in any::<u32>(),
        marker in any::<bool>(),
        payload in prop::collection::vec(any::<u8>(), 0..=1400),
    ) {
        for mode in Mode::PREFERENCE {
            let mut h = [0u8; 12];
            RtpHeader::write_basic(&mut h, seq, ts, ssrc);
            if marker {
                h[1] |= 0x80;
            }
            let mut packet = h.to_vec();
            packet.extend_from_slice(&payload);
            let mut sealer = Sealer::new(Cipher::new(mode, &key), first);
            sealer.seal(&mut packet).unwrap();
            prop_assert_eq!(packet.len(), 12 + payload.len() + mode.overhead());
            prop_assert_eq!(&packet[..12], &h[..]);
            let s = sealer.cipher().suffix_len();
            if s > 0 {
                prop_assert_eq!(&packet[packet.len() - s..][..4], &first.to_be_bytes()[..]);
            }
            let opened = sealer.cipher().open(&mut packet).unwrap();
            prop_assert_eq!(&*opened.payload, payload.as_slice());
            prop_assert_eq!(opened.header.sequence, seq);
            prop_assert_eq!(opened.header.timestamp, ts);
            prop_assert_eq!(opened.header.ssrc, ssrc);
            prop_assert_eq!(opened.header.marker, marker);
            prop_assert_eq!(opened.header.payload_type, 120);
            prop_assert_eq!(opened.extension, None);
        }
    }

    #[test]
    fn shaped_seal_open_round_trip_every_mode(
        key in key(),
        mode in mode(),
        shape in shape(),
        first in any::<u32>(),
        payload in prop::collection::vec(any::<u8>(), 0..=1400),
    ) {
        let plain = build(&shape, 7, 960, 42, false, &payload);
        let len = plain.len();
        let mut packet = plain.clone();
        let mut sealer = Sealer::new(Cipher::new(mode, &key), first);
        sealer.seal(&mut packet).unwrap();
        prop_assert_eq!(packet.len(), len + mode.overhead());

        // The cleartext part is exactly what the mode leaves in clear.
        let clear = if mode.is_rtpsize() {
            12 + 4 * shape.csrcs.len() + if shape.extension.is_some() { 4 } else { 0 }
        } else {
            12
        };
        prop_assert_eq!(&packet[..clear], &plain[..clear]);

        // seal_with_nonce with the same suffix gives the same bytes.
        let cipher = Cipher::new(mode, &key);
        let mut again = plain.clone();
        again.resize(len + mode.overhead(), 0);
        let suffix = packet[packet.len() - cipher.suffix_len()..].to_vec();
        let n = cipher.seal_with_nonce(&mut again, len, &suffix).unwrap();
        prop_assert_eq!(&again[..n], packet.as_slice());

        let opened = cipher.open(&mut packet).unwrap();
        prop_assert_eq!(&*opened.payload, payload.as_slice());
        prop_assert_eq!(opened.header.ssrc, 42);
        let ext = opened.extension.map(|e| (e.profile(), e.body().to_vec()));
        prop_assert_eq!(ext, shape.extension.clone());
    }

    #[test]
    fn seal_in_place_checks_capacity(
        key in key(),
        mode in mode(),
        payload in prop::collection::vec(any::<u8>(), 0..64),
        short in 1usize..=40,
    ) {
        let plain = build(&Shape { csrcs: vec![], extension: None, padding: 0 }, 1, 2, 3, false, &payload);
        let len = plain.len();
        let mut sealer = Sealer::new(Cipher::new(mode, &key), 9);
        let mut buf = plain.clone();
        buf.resize(len + mode.overhead() - short.min(mode.overhead()), 0);
        let before = sealer.nonces_left();
        let r = sealer.seal_in_place(&mut buf, len);
        let is_too_small = matches!(r, Err(Error::BufferTooSmall { .. }));
        prop_assert!(is_too_small, "{:?}", r);
        // A refused packet does not use up a nonce.
        prop_assert_eq!(sealer.nonces_left(), before);
        prop_assert!(sealer.seal_in_place(&mut buf, len + 1000).is_err());
    }

    #[test]
    fn random_bytes_never_open(key in key(), data in prop::collection::vec(any::<u8>(), 0..200)) {
        for mode in Mode::PREFERENCE {
            let cipher = Cipher::new(mode, &key);
            let mut buf = data.clone();
            prop_assert!(cipher.open(&mut buf).is_err(), "{}", mode);
            let mut buf = data.clone();
            prop_assert!(cipher.open_rtcp(&mut buf).is_err(), "{}", mode);
        }
    }

    #[test]
    fn random_rtp_shaped_bytes_never_open(
        key in key(),
        b0 in 0x80u8..=0xBF,
        rest in prop::collection::vec(any::<u8>(), 11..300),
    ) {
        let mut data = vec![b0, 0x78];
        data.extend_from_slice(&rest);
        for mode in Mode::PREFERENCE {
            let mut buf = data.clone();
            prop_assert!(Cipher::new(mode, &key).open(&mut buf).is_err(), "{}", mode);
        }
    }

    #[test]
    fn bit_flips_fail_and_never_panic(
        key in key(),
        mode in mode(),
        shape in shape(),
        payload in prop::collection::vec(any::<u8>(), 0..200),
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut packet = build(&shape, 100, 96000, 5, true, &payload);
        let mut sealer = Sealer::new(Cipher::new(mode, &key), 77);
        sealer.seal(&mut packet).unwrap();
        let clear = if mode.is_rtpsize() {
            12 + 4 * shape.csrcs.len() + if shape.extension.is_some() { 4 } else { 0 }
        } else {
            12
        };
        let at = pos.index(packet.len());
        packet[at] ^= 1 << bit;
        let r = sealer.cipher().open(&mut packet).map(|o| o.payload.len());
        if at >= clear {
            prop_assert_eq!(r, Err(Error::AuthenticationFailed));
        } else if header_authenticated(mode) {
            prop_assert!(r.is_err(), "{} byte {} bit {}", mode, at, bit);
        }
        // Otherwise (lite/suffix header): anything but a panic is fine.
    }

    #[test]
    fn wrong_key_never_opens(
        key in key(),
        other in key(),
        mode in mode(),
        payload in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        prop_assume!(key != other);
        let mut packet = build(&Shape { csrcs: vec![], extension: None, padding: 0 }, 1, 2, 3, false, &payload);
        Sealer::new(Cipher::new(mode, &key), 0).seal(&mut packet).unwrap();
        prop_assert_eq!(
            Cipher::new(mode, &other).open(&mut packet).err(),
            Some(Error::AuthenticationFailed)
        );
    }

    #[test]
    fn rtcp_seal_open_round_trip(
        key in key(),
        mode in mode(),
        ssrc in any::<u32>(),
        body in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let words = (4 + body.len()).div_ceil(4);
        let mut packet = vec![0x80, 201];
        packet.extend_from_slice(&(words as u16).to_be_bytes());
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend_from_slice(&body);
        let plain = packet.clone();
        let mut sealer = Sealer::new(Cipher::new(mode, &key), 3);
        if mode == Mode::XSalsa20Poly1305 {
            // Its nonce would be the repeating RTCP header: refused.
            prop_assert!(sealer.seal_rtcp(&mut packet).is_err());
            prop_assert_eq!(&packet, &plain);
            return Ok(());
        }
        sealer.seal_rtcp(&mut packet).unwrap();
        prop_assert_eq!(packet.len(), plain.len() + mode.overhead());
        prop_assert_eq!(&packet[..8], &plain[..8]);
        let n = sealer.cipher().open_rtcp(&mut packet).unwrap().len();
        prop_assert_eq!(n, body.len());
        // Header and body side by side: the whole packet in the clear.
        prop_assert_eq!(&packet[..8 + n], plain.as_slice());
    }
}

#[test]
fn empty_and_tiny_inputs_are_errors_in_every_mode() {
    let key = SecretKey::new([1; 32]);
    for mode in Mode::PREFERENCE {
        let cipher = Cipher::new(mode, &key);
        for len in 0..40 {
            let mut buf = vec![0x80; len];
            if len > 1 {
                buf[1] = 0x78;
            }
            assert!(cipher.open(&mut buf).is_err(), "{mode} len {len}");
        }
        // Not RTCP: refused before any crypto.
        let mut sealer = Sealer::new(Cipher::new(mode, &key), 0);
        let mut not_rtcp = vec![0x80, 0x78, 0, 1, 0, 0, 0, 0];
        assert!(matches!(sealer.seal_rtcp(&mut not_rtcp), Err(Error::NotRtcp(0x78))));
        assert_eq!(not_rtcp.len(), 8);
    }
}
