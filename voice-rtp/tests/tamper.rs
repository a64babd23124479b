//! Tampering with the recorded transport vectors: every byte of the sealed
//! part, one bit each, must fail authentication; header bytes must fail in
//! the modes that authenticate the header.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TransportRecord, transport_records};
use voice_rtp::{Cipher, Error, Mode};

fn open_err(cipher: &Cipher, datagram: &[u8], at: usize, mask: u8) -> Option<Error> {
    let mut buf = datagram.to_vec();
    buf[at] ^= mask;
    cipher.open(&mut buf).err()
}

/// Whether a mode authenticates the clear RTP header.
fn header_authenticated(mode: Mode) -> bool {
    matches!(mode, Mode::Aes256GcmRtpSize | Mode::XChaCha20Poly1305RtpSize | Mode::Aes256Gcm | Mode::XSalsa20Poly1305)
}

#[test]
fn every_sealed_byte_of_every_record_is_authenticated() {
    let mut flips = 0;
    for r in transport_records() {
        let cipher = Cipher::new(r.mode(), &r.key());
        let d = r.datagram();
        for at in r.clear_len()..d.len() {
            // A different bit at each position, so all eight get exercised.
            let mask = 1 << ((at + r.index as usize) % 8);
            assert_eq!(
                open_err(&cipher, &d, at, mask),
                Some(Error::AuthenticationFailed),
                "{} call {} #{} byte {at} mask {mask:#04x}",
                r.mode,
                r.call,
                r.index
            );
            flips += 1;
        }
    }
    assert!(flips > 8000, "{flips}");
}

#[test]
fn every_bit_of_one_record_per_mode_and_stream_is_authenticated() {
    let records = transport_records();
    let picked: Vec<&TransportRecord> = records.iter().filter(|r| r.index == 3).collect();
    assert_eq!(picked.len(), 11);
    for r in picked {
        let cipher = Cipher::new(r.mode(), &r.key());
        let d = r.datagram();
        for at in r.clear_len()..d.len() {
            for bit in 0..8 {
                assert_eq!(
                    open_err(&cipher, &d, at, 1 << bit),
                    Some(Error::AuthenticationFailed),
                    "{} call {} byte {at} bit {bit}",
                    r.mode,
                    r.call
                );
            }
        }
    }
}

#[test]
fn header_bytes_are_authenticated_where_the_mode_says() {
    for r in transport_records() {
        let mode = r.mode();
        let cipher = Cipher::new(mode, &r.key());
        let d = r.datagram();
        for at in 0..r.clear_len() {
            for bit in 0..8 {
                let what = format!("{mode} call {} #{} byte {at} bit {bit}", r.call, r.index);
                let err = open_err(&cipher, &d, at, 1 << bit);
                if header_authenticated(mode) {
                    assert!(err.is_some(), "{what}");
                    // Bytes 2..12 (seq, timestamp, SSRC) keep the packet's
                    // shape, so only authentication can reject them.
                    if (2..12).contains(&at) {
                        assert_eq!(err, Some(Error::AuthenticationFailed), "{what}");
                    }
                } else if (2..12).contains(&at) {
                    // Lite and suffix do not authenticate the header: the
                    // packet opens, with the tampered field, and the payload
                    // is intact.
                    assert_eq!(err, None, "{what}");
                }
            }
        }
    }
}

#[test]
fn header_tamper_in_unauthenticated_modes_changes_only_the_field() {
    let records = transport_records();
    for r in records.iter().filter(|r| !header_authenticated(r.mode())) {
        let cipher = Cipher::new(r.mode(), &r.key());
        let mut buf = r.datagram();
        buf[11] ^= 0x01;
        let opened = cipher.open(&mut buf).unwrap();
        assert_eq!(opened.header.ssrc, r.ssrc ^ 1);
        assert_eq!(opened.payload.to_vec(), r.opus());
    }
}

/// Modes that seal a packet without CSRCs or extension identically.
fn family(mode: Mode) -> u8 {
    match mode {
        Mode::Aes256GcmRtpSize | Mode::Aes256Gcm => 0,
        Mode::XChaCha20Poly1305RtpSize => 1,
        Mode::XSalsa20Poly1305LiteRtpSize | Mode::XSalsa20Poly1305Lite => 2,
        Mode::XSalsa20Poly1305Suffix => 3,
        _ => 4,
    }
}

#[test]
fn truncation_and_wrong_key_fail() {
    for r in transport_records() {
        let mode = r.mode();
        let d = r.datagram();
        let cipher = Cipher::new(mode, &r.key());
        // Drop the last byte: the nonce or tag moves, so it never opens.
        let mut buf = d[..d.len() - 1].to_vec();
        assert!(cipher.open(&mut buf).is_err(), "{mode}");
        // Shorter than clear + tag + nonce.
        let min = r.clear_len() + 16 + cipher.suffix_len();
        let mut buf = d[..min - 1].to_vec();
        assert!(matches!(cipher.open(&mut buf), Err(Error::TooShort { .. })), "{mode}");
        // Another key.
        let mut k = *r.key().as_bytes();
        k[0] ^= 0x80;
        let other = Cipher::new(mode, &voice_rtp::SecretKey::new(k));
        let mut buf = d.clone();
        assert_eq!(other.open(&mut buf).err(), Some(Error::AuthenticationFailed));
        // Another primitive or nonce layout must not open it. (The rtpsize
        // and plain variants of one primitive agree on packets without CSRCs
        // or extension, so they are not compared here.)
        for m in Mode::PREFERENCE.into_iter().filter(|&m| family(m) != family(mode)) {
            let mut buf = d.clone();
            assert!(Cipher::new(m, &r.key()).open(&mut buf).is_err(), "{mode} as {m}");
        }
    }
}
