//! What the SFU sees of a forwarded payload: a DAVE frame (its trailer), the
//! Opus silence frame, or plaintext. It never decrypts a DAVE frame.

/// The 3-byte Opus silence frame, never DAVE-encrypted.
pub(crate) use voice_rtp::OPUS_SILENCE;

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

/// Sorts a payload with voice-proto's protocol frame check (PROTOCOL.md
/// §6.8), the one its receive path runs.
pub(crate) fn classify(payload: &[u8]) -> PayloadKind {
    if payload == OPUS_SILENCE {
        return PayloadKind::Silence;
    }
    if voice_proto::is_dave_frame(payload) { PayloadKind::Dave } else { PayloadKind::Plaintext }
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
