//! The sealer's nonce counter: one value per packet, wrapping modulo 2^32
//! but refusing (Error::NonceExhausted) once every value has been used.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use voice_rtp::{Cipher, Error, Mode, RtpHeader, Sealer, SecretKey};

const SPACE: u64 = 1 << 32;

fn packet(seq: u16) -> Vec<u8> {
    let mut h = [0u8; 12];
    RtpHeader::write_basic(&mut h, seq, 960 * u32::from(seq), 1);
    let mut p = h.to_vec();
    p.extend_from_slice(&voice_rtp::OPUS_SILENCE);
    p
}

fn counter_of(sealed: &[u8], suffix_len: usize) -> [u8; 4] {
    let s = &sealed[sealed.len() - suffix_len..];
    [s[0], s[1], s[2], s[3]]
}

fn counter_modes() -> impl Iterator<Item = Mode> {
    Mode::PREFERENCE.into_iter().filter(|&m| m != Mode::XSalsa20Poly1305)
}

#[test]
fn nonces_left_counts_down_from_2_pow_32() {
    let key = SecretKey::new([3; 32]);
    for mode in counter_modes() {
        let mut s = Sealer::new(Cipher::new(mode, &key), 1);
        assert_eq!(s.nonces_left(), SPACE, "{mode}");
        for i in 1..=5u32 {
            let mut p = packet(i as u16);
            s.seal(&mut p).unwrap();
            assert_eq!(counter_of(&p, s.cipher().suffix_len()), i.to_be_bytes());
            assert_eq!(s.nonces_left(), SPACE - u64::from(i), "{mode}");
        }
    }
}

#[test]
fn exhaustion_after_2_pow_32_packets() {
    let key = SecretKey::new([4; 32]);
    for mode in counter_modes() {
        for first in [0u32, 1, 5, 0x8000_0000, u32::MAX] {
            let mut s = Sealer::with_nonces_used(Cipher::new(mode, &key), first, SPACE - 2);
            assert_eq!(s.nonces_left(), 2, "{mode}");
            let suffix = s.cipher().suffix_len();

            let mut p = packet(1);
            s.seal(&mut p).unwrap();
            assert_eq!(counter_of(&p, suffix), first.wrapping_sub(2).to_be_bytes());
            assert_eq!(s.nonces_left(), 1);

            // The last nonce is first - 1 (wrapped): the value just before
            // the start, never the start again.
            let mut p = packet(2);
            s.seal(&mut p).unwrap();
            assert_eq!(counter_of(&p, suffix), first.wrapping_sub(1).to_be_bytes(), "{mode} first {first}");
            assert_eq!(s.nonces_left(), 0);
            // The last packet still opens.
            let opened = s.cipher().open(&mut p).unwrap();
            assert_eq!(opened.payload, &voice_rtp::OPUS_SILENCE);

            // Every further call refuses, leaving the packet as it was.
            for _ in 0..3 {
                let mut p = packet(3);
                assert_eq!(s.seal(&mut p), Err(Error::NonceExhausted), "{mode}");
                assert_eq!(p, packet(3));
                let len = p.len();
                p.resize(len + mode.overhead(), 0);
                assert_eq!(s.seal_in_place(&mut p, len), Err(Error::NonceExhausted));
                let mut rtcp = vec![0x80, 201, 0, 1, 0, 0, 0, 1];
                assert_eq!(s.seal_rtcp(&mut rtcp), Err(Error::NonceExhausted));
                assert_eq!(rtcp, [0x80, 201, 0, 1, 0, 0, 0, 1]);
                assert_eq!(s.nonces_left(), 0);
            }
        }
    }
}

#[test]
fn counter_wraps_through_zero_before_exhaustion() {
    let key = SecretKey::new([5; 32]);
    let mode = Mode::Aes256GcmRtpSize;
    let mut s = Sealer::new(Cipher::new(mode, &key), u32::MAX);
    let mut p = packet(1);
    s.seal(&mut p).unwrap();
    assert_eq!(counter_of(&p, 4), u32::MAX.to_be_bytes());
    let mut p = packet(2);
    s.seal(&mut p).unwrap();
    assert_eq!(counter_of(&p, 4), [0, 0, 0, 0]);
    assert_eq!(s.nonces_left(), SPACE - 2);
}

#[test]
fn fully_used_sealer_refuses_at_once() {
    let key = SecretKey::new([6; 32]);
    let mut s = Sealer::with_nonces_used(Cipher::new(Mode::XChaCha20Poly1305RtpSize, &key), 1, SPACE);
    assert_eq!(s.nonces_left(), 0);
    assert_eq!(s.seal(&mut packet(1)), Err(Error::NonceExhausted));
    // More than the space is clamped, not wrapped back into use.
    let mut s = Sealer::with_nonces_used(Cipher::new(Mode::Aes256GcmRtpSize, &key), 1, u64::MAX);
    assert_eq!(s.nonces_left(), 0);
    assert_eq!(s.seal(&mut packet(1)), Err(Error::NonceExhausted));
}

#[test]
fn header_nonce_mode_exhausts_when_the_header_would_repeat() {
    // xsalsa20_poly1305 takes its nonce from the RTP header; with sequence
    // +1 and timestamp +960 per packet that header repeats after 2^26
    // packets, so a key seals at most that many.
    const HEADER_SPACE: u64 = 1 << 26;
    let key = SecretKey::new([7; 32]);
    let mut s = Sealer::with_nonces_used(Cipher::new(Mode::XSalsa20Poly1305, &key), 0, HEADER_SPACE - 1);
    assert_eq!(s.nonces_left(), 1);
    let mut p = packet(9);
    s.seal(&mut p).unwrap();
    assert_eq!(p.len(), 12 + 3 + 16, "nothing appended in this mode");
    assert_eq!(s.nonces_left(), 0);
    assert_eq!(s.seal(&mut packet(10)), Err(Error::NonceExhausted));
    // The header really does repeat at 2^26 packets of a normal stream.
    let (seq0, ts0) = (0u16, 0u32);
    let n = HEADER_SPACE;
    assert_eq!((seq0.wrapping_add(n as u16), ts0.wrapping_add((960 * n) as u32)), (seq0, ts0));
    let half = n / 2;
    assert_ne!((seq0.wrapping_add(half as u16), ts0.wrapping_add((960 * half) as u32)), (seq0, ts0));
}
