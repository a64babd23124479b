//! The shape of a DAVE media frame (PROTOCOL.md §6.8): what the receive
//! path checks before it asks davey to decrypt, so that plaintext is told
//! apart from ciphertext without trial decryption.
//!
//! ```text
//! ciphertext ‖ tag[8] ‖ ULEB128(nonce) ‖ ULEB128 ranges ‖ supplemental_size u8 ‖ FA FA
//! ```

/// Opus silence, never DAVE-encrypted and always accepted.
pub(crate) use voice_rtp::OPUS_SILENCE;

/// The magic marker that ends every DAVE frame.
const MARKER: [u8; 2] = [0xFA, 0xFA];
/// Tag, supplemental size byte and marker: the smallest supplemental section.
const MIN_SUPPLEMENTAL: usize = 8 + 1 + 2;

/// Reads one ULEB128 value of at most 10 bytes: `(value, bytes read)`.
fn read_uleb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let part = u64::from(b & 0x7F);
        if i == 9 && part > 1 {
            return None;
        }
        value |= part << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The protocol frame check (PROTOCOL.md §6.8, receiver side): whether
/// `frame` has the layout of a DAVE media frame (the `FA FA` marker, a
/// supplemental size that fits, a 32-bit nonce and well-formed unencrypted
/// ranges inside it). It says nothing about authenticity: the receive path
/// runs it to tell plaintext from ciphertext, and a server can run it to
/// see whether forwarded media is end-to-end encrypted.
pub fn is_dave_frame(frame: &[u8]) -> bool {
    let len = frame.len();
    if len < MIN_SUPPLEMENTAL || frame[len - 2..] != MARKER {
        return false;
    }
    let supplemental = usize::from(frame[len - 3]);
    if !(MIN_SUPPLEMENTAL..=len).contains(&supplemental) {
        return false;
    }
    // Nonce and ranges sit between the tag and the size byte.
    let mut rest = &frame[len - supplemental + 8..len - 3];
    let Some((_, n)) = read_uleb128(rest).filter(|&(nonce, _)| nonce <= u64::from(u32::MAX)) else { return false };
    rest = &rest[n..];
    let (body, mut last_end) = (len - supplemental, 0u64);
    while !rest.is_empty() {
        let Some((offset, a)) = read_uleb128(rest) else { return false };
        let Some((size, b)) = rest.get(a..).and_then(read_uleb128) else { return false };
        rest = &rest[a + b..];
        let Some(end) = offset.checked_add(size) else { return false };
        if offset < last_end || end > body as u64 {
            return false;
        }
        last_end = end;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PROTOCOL.md §9.5: the 15-byte frame of `FC 01 02` under the
    /// generation-0 key with nonce 1.
    const VECTOR: [u8; 15] = [0x2D, 0x24, 0xA9, 0x32, 0xE2, 0xDB, 0x86, 0x0E, 0x3F, 0x20, 0x52, 0x01, 0x0C, 0xFA, 0xFA];

    #[test]
    fn the_vector_frame_passes_the_check() {
        assert!(is_dave_frame(&VECTOR));
        assert_eq!(read_uleb128(&VECTOR[11..12]), Some((1, 1)));
    }

    #[test]
    fn uleb128_vectors() {
        let cases: [(&[u8], u64); 6] = [
            (&[0x01], 1),
            (&[0x7F], 127),
            (&[0x80, 0x01], 128),
            (&[0xAC, 0x02], 300),
            (&[0x80, 0x80, 0x80, 0x08], 1 << 24),
            (&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F], u64::from(u32::MAX)),
        ];
        for (bytes, value) in cases {
            assert_eq!(read_uleb128(bytes), Some((value, bytes.len())), "{bytes:02X?}");
        }
        assert_eq!(read_uleb128(&[0x80]), None, "unterminated");
        assert_eq!(read_uleb128(&[0xFF; 10]), None, "overflows 64 bits");
    }

    #[test]
    fn plaintext_and_damaged_frames_fail_the_check() {
        assert!(!is_dave_frame(&OPUS_SILENCE));
        assert!(!is_dave_frame(&[0xFC; 120]), "plain Opus");
        let mut no_marker = VECTOR;
        no_marker[14] = 0;
        assert!(!is_dave_frame(&no_marker));
        let mut small = VECTOR;
        small[12] = 10;
        assert!(!is_dave_frame(&small), "supplemental size below 11");
        let mut large = VECTOR;
        large[12] = 16;
        assert!(!is_dave_frame(&large), "supplemental size beyond the frame");
        let mut open_nonce = VECTOR;
        open_nonce[11] = 0x81;
        assert!(!is_dave_frame(&open_nonce), "nonce runs into the size byte");
        // A nonce past 32 bits: ct(1) ‖ tag(8) ‖ 5-byte nonce ‖ supp 16 ‖ FA FA.
        let mut wide = vec![0u8; 9];
        wide.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 16, 0xFA, 0xFA]);
        assert!(!is_dave_frame(&wide), "nonce beyond u32");
        wide[13] = 0x0F;
        assert!(is_dave_frame(&wide), "u32::MAX itself is a nonce");
    }

    #[test]
    fn unencrypted_ranges_must_ascend_and_fit() {
        // ct(4) ‖ tag(8) ‖ nonce 01 ‖ range (0, 2) ‖ supp ‖ FA FA
        let frame = |ranges: &[u8]| {
            let mut f = vec![0u8; 4 + 8];
            f.push(0x01);
            f.extend_from_slice(ranges);
            f.push((8 + 1 + ranges.len() + 1 + 2) as u8);
            f.extend_from_slice(&MARKER);
            f
        };
        assert!(is_dave_frame(&frame(&[0x00, 0x02])));
        assert!(is_dave_frame(&frame(&[0x00, 0x01, 0x02, 0x02])));
        assert!(!is_dave_frame(&frame(&[0x02, 0x01, 0x00, 0x01])), "descending");
        assert!(!is_dave_frame(&frame(&[0x00, 0x05])), "past the frame body");
        assert!(!is_dave_frame(&frame(&[0x00])), "half a range");
    }
}
