//! The nonce rule: where each mode's nonce comes from, and the counter
//! that makes sure no nonce repeats under one key (PROTOCOL.md §4.2).
//!
//! * The AEAD modes and the `lite` modes append a 4-byte big-endian
//!   counter to each packet; it fills the first 4 bytes of the nonce, the
//!   rest is zero. The counter starts anywhere, wraps modulo 2^32 and
//!   never comes back to its start: after 2^32 packets under one key
//!   sealing fails with [`Error::NonceExhausted`].
//! * `xsalsa20_poly1305_suffix` appends the whole 24-byte nonce (here: the
//!   same counter, zero-padded).
//! * `xsalsa20_poly1305` uses the first 12 bytes of the packet (the RTP
//!   header) and appends nothing: with sequence +1 and timestamp +960 per
//!   packet the pair repeats after 2^26 packets, so one key seals no more.

use crate::{Error, Mode, Result};

/// Packets one key may seal with an appended counter.
pub(crate) const COUNTER_SPACE: u64 = 1 << 32;

/// Packets one key may seal in `xsalsa20_poly1305`, whose nonce is the RTP
/// header (960 = 2^6 * 15, so the timestamp cycles in 2^26 packets).
const HEADER_NONCE_SPACE: u64 = 1 << 26;

/// Where a mode's nonce comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceSource {
    /// A 4-byte counter, appended; fills the first 4 bytes of the nonce.
    Counter4,
    /// The whole 24-byte nonce, appended.
    Suffix24,
    /// The first 12 packet bytes, nothing appended (`xsalsa20_poly1305`).
    Header12,
}

impl NonceSource {
    pub(crate) fn for_mode(mode: Mode) -> Self {
        match mode {
            Mode::Aes256GcmRtpSize
            | Mode::Aes256Gcm
            | Mode::XChaCha20Poly1305RtpSize
            | Mode::XSalsa20Poly1305LiteRtpSize
            | Mode::XSalsa20Poly1305Lite => NonceSource::Counter4,
            Mode::XSalsa20Poly1305Suffix => NonceSource::Suffix24,
            Mode::XSalsa20Poly1305 => NonceSource::Header12,
        }
    }

    /// Bytes appended to each packet.
    pub(crate) fn suffix_len(self) -> usize {
        match self {
            NonceSource::Counter4 => 4,
            NonceSource::Suffix24 => 24,
            NonceSource::Header12 => 0,
        }
    }

    /// Packets one key may seal.
    fn space(self) -> u64 {
        match self {
            NonceSource::Header12 => HEADER_NONCE_SPACE,
            _ => COUNTER_SPACE,
        }
    }

    /// The nonce (up to 24 bytes; the primitive takes its length) of a
    /// packet whose first `clear` bytes of `buf` are clear and which carries
    /// `suffix`.
    pub(crate) fn nonce(self, buf: &[u8], clear: usize, suffix: &[u8]) -> [u8; 24] {
        let mut nonce = [0u8; 24];
        match self {
            NonceSource::Header12 => {
                let n = clear.min(12).min(buf.len());
                nonce[..n].copy_from_slice(&buf[..n]);
            }
            _ => {
                let n = suffix.len().min(24);
                nonce[..n].copy_from_slice(&suffix[..n]);
            }
        }
        nonce
    }
}

/// The sending side's nonce counter under one key.
#[derive(Debug, Clone)]
pub(crate) struct NonceCounter {
    first: u32,
    used: u64,
}

impl NonceCounter {
    /// A counter starting at `first` with `used` values handed out already
    /// (clamped to 2^32).
    pub(crate) fn new(first: u32, used: u64) -> Self {
        NonceCounter { first, used: used.min(COUNTER_SPACE) }
    }

    /// How many more packets `source` lets this key seal.
    pub(crate) fn left(&self, source: NonceSource) -> u64 {
        source.space().saturating_sub(self.used)
    }

    /// The next packet's suffix and its length, or
    /// [`Error::NonceExhausted`] once the key's space is spent.
    pub(crate) fn next(&mut self, source: NonceSource) -> Result<([u8; 24], usize)> {
        let mut suffix = [0u8; 24];
        let len = source.suffix_len();
        if self.used >= source.space() {
            return Err(Error::NonceExhausted);
        }
        if len > 0 {
            let counter = self.first.wrapping_add(self.used as u32);
            suffix[..4].copy_from_slice(&counter.to_be_bytes());
        }
        // With the header as nonce, the packet is counted all the same.
        self.used += 1;
        Ok((suffix, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_wraps_but_never_comes_back_to_its_start() {
        let mut c = NonceCounter::new(u32::MAX, 0);
        assert_eq!(c.next(NonceSource::Counter4).map(|(s, n)| (s[..4].to_vec(), n)), Ok((vec![0xFF; 4], 4)));
        assert_eq!(c.next(NonceSource::Counter4).map(|(s, _)| s[..4].to_vec()), Ok(vec![0; 4]));
        let mut c = NonceCounter::new(5, COUNTER_SPACE - 1);
        assert_eq!(c.left(NonceSource::Counter4), 1);
        assert!(c.next(NonceSource::Counter4).is_ok());
        assert_eq!(c.next(NonceSource::Counter4), Err(Error::NonceExhausted));
        let c = NonceCounter::new(0, HEADER_NONCE_SPACE);
        assert_eq!(c.left(NonceSource::Header12), 0);
    }

    #[test]
    fn the_header_nonce_is_the_first_twelve_bytes_and_a_suffix_is_copied() {
        let buf: Vec<u8> = (1..=20).collect();
        let n = NonceSource::Header12.nonce(&buf, 12, &[]);
        assert_eq!(&n[..12], &buf[..12]);
        assert_eq!(n[12..], [0; 12]);
        let n = NonceSource::Counter4.nonce(&buf, 12, &[9, 8, 7, 6]);
        assert_eq!(n[..4], [9, 8, 7, 6]);
        assert_eq!(n[4..], [0; 20]);
    }
}
