//! What the SFU sees of a forwarded payload: a DAVE frame (its trailer), the
//! Opus silence frame, or plaintext. It never decrypts a DAVE frame.

/// The 3-byte Opus silence frame, never DAVE-encrypted.
pub(crate) const OPUS_SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// The kind of a media payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayloadKind {
    /// Ends with a plausible DAVE trailer.
    Dave,
    /// Exactly `F8 FF FE`.
    Silence,
    /// Neither.
    Plaintext,
}

/// The protocol frame check of PROTOCOL.md §6.8: `… ‖ tag[8] ‖
/// ULEB128(nonce) ‖ ranges ‖ supp u8 ‖ FA FA`, with `supp` between 11 and
/// the frame length, a nonce that parses, and ranges (ULEB128 offset/size
/// pairs) ascending, apart and inside the frame.
pub(crate) fn classify(payload: &[u8]) -> PayloadKind {
    if payload == OPUS_SILENCE {
        return PayloadKind::Silence;
    }
    if is_dave_frame(payload) { PayloadKind::Dave } else { PayloadKind::Plaintext }
}

fn is_dave_frame(p: &[u8]) -> bool {
    let len = p.len();
    if len < 11 || p[len - 2..] != [0xFA, 0xFA] {
        return false;
    }
    let supp = usize::from(p[len - 3]);
    if !(11..=len).contains(&supp) {
        return false;
    }
    // After the 8-byte tag: the nonce, then the ranges, up to `supp`.
    let mut field = &p[len - supp + 8..len - 3];
    let Some(_nonce) = uleb128(&mut field).filter(|&n| n <= u64::from(u32::MAX)) else { return false };
    let body = len - supp;
    let mut end = 0u64;
    while !field.is_empty() {
        let (Some(offset), Some(size)) = (uleb128(&mut field), uleb128(&mut field)) else { return false };
        let Some(stop) = offset.checked_add(size) else { return false };
        if offset < end || stop > body as u64 {
            return false;
        }
        end = stop;
    }
    true
}

/// Reads one ULEB128 value (at most 10 bytes), advancing `b`.
fn uleb128(b: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            *b = &b[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_protocol_md_vector_silence_and_opus() {
        // PROTOCOL.md §9.5: ct(3) tag(8) nonce=1 supp=12 FA FA.
        let frame = [0x2D, 0x24, 0xA9, 0x32, 0xE2, 0xDB, 0x86, 0x0E, 0x3F, 0x20, 0x52, 0x01, 0x0C, 0xFA, 0xFA];
        assert_eq!(classify(&frame), PayloadKind::Dave);
        assert_eq!(classify(&OPUS_SILENCE), PayloadKind::Silence);
        assert_eq!(classify(&[0xFC, 1, 2, 3]), PayloadKind::Plaintext);
        // FA FA at the end of plaintext with an impossible size byte.
        let mut fake = vec![0xFC; 20];
        fake.extend_from_slice(&[0x05, 0xFA, 0xFA]);
        assert_eq!(classify(&fake), PayloadKind::Plaintext);
        // An unterminated nonce (supp 12: tag, one nonce byte with the
        // continuation bit, supp, marker).
        let bad = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x0C, 0xFA, 0xFA];
        assert_eq!(classify(&bad), PayloadKind::Plaintext);
    }
}
