//! PROTOCOL.md §9.5, §9.6: the DAVE vectors. The key ratchet is rebuilt
//! from the §6.7 formulas (HMAC-SHA-256, independent of davey) and the
//! media frame with davey's own truncated-tag AES-128-GCM. The layout check
//! the receive path runs on the same frame, and the ULEB128 vectors, are
//! unit tests of voice-proto (`dave/frame.rs`); §9.6 (silence passes DAVE
//! untouched) is counted by the server in `sim_dave.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use davey::aead::consts::{U8, U12};
use davey::aead::{AeadInPlace, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

/// RFC 9420 `ExpandWithLabel` for outputs up to one SHA-256 block: one
/// HMAC over `u16(L) ‖ <V>("MLS 1.0 " + label) ‖ <V>(context) ‖ 0x01`.
fn expand_with_label(secret: &[u8], label: &str, context: &[u8], len: u16) -> Vec<u8> {
    let label = format!("MLS 1.0 {label}");
    let mut info = len.to_be_bytes().to_vec();
    info.push(label.len() as u8);
    info.extend_from_slice(label.as_bytes());
    info.push(context.len() as u8);
    info.extend_from_slice(context);
    info.push(1);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
    mac.update(&info);
    mac.finalize().into_bytes()[..usize::from(len)].to_vec()
}

const BASE: &str = "CE DD 61 B1 B8 A1 CA 69 04 65 54 28 2C F7 0B 7B";

#[test]
fn hash_ratchet_generations_0_and_1() {
    let s0 = hex(BASE);
    let g0 = 0u32.to_be_bytes();
    assert_eq!(expand_with_label(&s0, "key", &g0, 16), hex("75 30 F9 A9 94 5E 2D 2E 06 D0 65 1F 7B 2A 86 4B"));
    assert_eq!(expand_with_label(&s0, "nonce", &g0, 12), hex("30 1E 5F 4B 74 09 0F 98 5E 72 6B B2"));
    let s1 = expand_with_label(&s0, "secret", &g0, 32);
    let key1 = expand_with_label(&s1, "key", &1u32.to_be_bytes(), 16);
    assert_eq!(key1, hex("CD DD 06 E0 F3 43 75 96 BA CB 9C 06 A0 32 9C 49"));
}

#[test]
fn media_frame_of_a_toy_opus_frame() {
    type Cipher = davey::AesGcm<davey::aes::Aes128, U12, U8>;
    let key = hex("75 30 F9 A9 94 5E 2D 2E 06 D0 65 1F 7B 2A 86 4B");
    let cipher = Cipher::new_from_slice(&key).unwrap();
    // 8 zero bytes, then the truncated nonce 1 little-endian.
    let mut nonce = [0u8; 12];
    nonce[8..].copy_from_slice(&1u32.to_le_bytes());
    let mut body = vec![0xFC, 0x01, 0x02];
    let tag = cipher.encrypt_in_place_detached((&nonce).into(), &[], &mut body).unwrap();
    let mut frame = body.clone();
    frame.extend_from_slice(&tag);
    frame.extend_from_slice(&[0x01, 0x0C, 0xFA, 0xFA]);
    assert_eq!(frame, hex("2D 24 A9 32 E2 DB 86 0E 3F 20 52 01 0C FA FA"));
    // And back.
    let mut ct = frame[..3].to_vec();
    cipher.decrypt_in_place_detached((&nonce).into(), &[], &mut ct, frame[3..11].into()).unwrap();
    assert_eq!(ct, [0xFC, 0x01, 0x02]);
    let mut bad = frame[..3].to_vec();
    let mut tag = frame[3..11].to_vec();
    tag[0] ^= 1;
    assert!(cipher.decrypt_in_place_detached((&nonce).into(), &[], &mut bad, tag.as_slice().into()).is_err());
}
