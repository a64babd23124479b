//! Transport encryption for every mode of PROTOCOL.md §4.
//!
//! [`Cipher`] holds a mode and its key and opens packets; it is stateless, so
//! one cipher can open packets from any number of senders. [`Sealer`] wraps a
//! cipher with the sending side's nonce counter: it hands out each nonce once
//! and refuses to wrap ([`Error::NonceExhausted`]) rather than repeat one.
//!
//! The nonce rule: on send, a 32-bit counter goes big-endian into the first
//! four bytes of a zeroed nonce and the same four bytes are appended to the
//! packet; on receive the appended bytes are copied verbatim, never read as a
//! number (senders disagree on their byte order).

mod backend;
mod key;
mod nonce;

pub use key::{KEY_LEN, SecretKey};

use core::ops::Range;

use backend::{Backend, TAG_LEN};
use nonce::{NonceCounter, NonceSource};

use crate::ext::Extension;
use crate::rtcp::is_rtcp;
use crate::rtp::{FIXED_HEADER_LEN, RtpLayout, RtpPacket};
use crate::{Error, Mode, Result};

/// Length of the RTCP part left in clear: header word and sender SSRC.
pub const RTCP_CLEAR_LEN: usize = 8;

/// The header fields of an opened packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpFields {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// A packet opened in place: its header fields, its extension (decrypted),
/// and the payload with the extension body and padding removed.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// Header fields.
    pub header: RtpFields,
    /// The header extension, if the packet had one.
    pub extension: Option<Extension<'a>>,
    /// The payload (for Discord: Opus, or a DAVE frame).
    pub payload: &'a mut [u8],
}

/// A transport cipher: a mode and its key.
pub struct Cipher {
    mode: Mode,
    backend: Backend,
    nonce: NonceSource,
}

impl core::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cipher").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl Cipher {
    /// A cipher for `mode` under `key`.
    pub fn new(mode: Mode, key: &SecretKey) -> Self {
        let k = key.as_bytes();
        let backend = match mode {
            Mode::Aes256GcmRtpSize | Mode::Aes256Gcm => Backend::aes(k),
            Mode::XChaCha20Poly1305RtpSize => Backend::xchacha(k),
            Mode::XSalsa20Poly1305LiteRtpSize
            | Mode::XSalsa20Poly1305Lite
            | Mode::XSalsa20Poly1305Suffix
            | Mode::XSalsa20Poly1305 => Backend::xsalsa(k),
        };
        let nonce = NonceSource::for_mode(mode);
        Cipher { mode, backend, nonce }
    }

    /// Fuzzing only: `mode`'s framing (nonce, clear header, tag place)
    /// with no encryption, where any tag opens; what a fuzzer needs to get
    /// past authentication into the parsing behind it.
    #[cfg(feature = "fuzzing")]
    pub fn null(mode: Mode) -> Self {
        let real = Cipher::new(mode, &SecretKey::new([0; 32]));
        let nonce_len = real.backend.nonce_len();
        Cipher { mode, backend: Backend::Null { nonce_len }, nonce: real.nonce }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Length of the nonce bytes that [`Cipher::seal_with_nonce`] takes and a
    /// sealed packet carries at its end: 4, 24, or 0 (`xsalsa20_poly1305`).
    pub fn suffix_len(&self) -> usize {
        self.nonce.suffix_len()
    }

    fn tag_in_front(&self) -> bool {
        // The XSalsa20 modes (secretbox) put the tag before the ciphertext.
        matches!(
            self.mode,
            Mode::XSalsa20Poly1305LiteRtpSize
                | Mode::XSalsa20Poly1305Lite
                | Mode::XSalsa20Poly1305Suffix
                | Mode::XSalsa20Poly1305
        )
    }

    /// The clear part of an RTP packet whose `rtpsize` clear part (fixed
    /// header, CSRCs, extension preamble) is `rtpsize_clear_len` bytes.
    #[inline]
    fn rtp_clear_len(&self, rtpsize_clear_len: usize) -> usize {
        // UNCERTAIN (PROTOCOL.md §4.3): for the non-rtpsize modes discord.js
        // 0.16 keeps exactly the 12-byte fixed header in clear, and its
        // recorded vectors agree; NetCord's `aead_aes256_gcm` adds the CSRCs.
        // We follow discord.js; no known server sends CSRCs to clients.
        if self.mode.is_rtpsize() { rtpsize_clear_len } else { FIXED_HEADER_LEN }
    }

    /// Seals `buf[..len]` (clear part `buf[..clear]`) into `buf`, appending tag
    /// and `suffix`; returns the sealed length.
    fn seal_raw(&self, buf: &mut [u8], len: usize, clear: usize, suffix: &[u8]) -> Result<usize> {
        let total = len + TAG_LEN + suffix.len();
        if buf.len() < total {
            return Err(Error::BufferTooSmall { needed: total, have: buf.len() });
        }
        let nonce = self.nonce.nonce(buf, clear, suffix);
        let nonce = &nonce[..self.backend.nonce_len()];
        let body = len - clear;
        if self.tag_in_front() {
            buf.copy_within(clear..len, clear + TAG_LEN);
            let (_, rest) = buf.split_at_mut(clear);
            let tag = self.backend.seal(nonce, &[], &mut rest[TAG_LEN..TAG_LEN + body])?;
            rest[..TAG_LEN].copy_from_slice(&tag);
        } else {
            let (aad, rest) = buf.split_at_mut(clear);
            let tag = self.backend.seal(nonce, aad, &mut rest[..body])?;
            rest[body..body + TAG_LEN].copy_from_slice(&tag);
        }
        buf[len + TAG_LEN..total].copy_from_slice(suffix);
        Ok(total)
    }

    /// Opens `buf` whose first `clear` bytes are clear; returns the range of
    /// the plaintext within `buf`.
    fn open_raw(&self, buf: &mut [u8], clear: usize) -> Result<Range<usize>> {
        let suffix = self.nonce.suffix_len();
        let min = clear + TAG_LEN + suffix;
        if buf.len() < min {
            return Err(Error::TooShort { needed: min, got: buf.len() });
        }
        let end = buf.len() - suffix;
        let nonce = self.nonce.nonce(buf, clear, &buf[end..]);
        let nonce = &nonce[..self.backend.nonce_len()];
        if self.tag_in_front() {
            let (head, rest) = buf.split_at_mut(clear + TAG_LEN);
            self.backend.open(nonce, &[], &mut rest[..end - clear - TAG_LEN], &head[clear..])?;
            Ok(clear + TAG_LEN..end)
        } else {
            let (aad, rest) = buf.split_at_mut(clear);
            let (ct, tail) = rest.split_at_mut(end - TAG_LEN - clear);
            self.backend.open(nonce, aad, ct, &tail[..TAG_LEN])?;
            Ok(clear..end - TAG_LEN)
        }
    }

    /// Seals the RTP packet `buf[..len]` with an explicit nonce suffix; the
    /// result (up to `len + mode.overhead()` bytes) is written into `buf`.
    ///
    /// Low level: the caller promises never to pass the same `nonce` twice
    /// under one key. Prefer [`Sealer`], which keeps that promise for you.
    /// `nonce` is [`Cipher::suffix_len`] bytes long.
    pub fn seal_with_nonce(&self, buf: &mut [u8], len: usize, nonce: &[u8]) -> Result<usize> {
        let expected = self.suffix_len();
        if nonce.len() != expected {
            return Err(Error::BadNonceLength { expected, got: nonce.len() });
        }
        let packet = RtpPacket::new(buf.get(..len).ok_or(Error::OutOfRange("len beyond buffer"))?)?;
        let clear = self.rtp_clear_len(packet.rtpsize_clear_len());
        self.seal_raw(buf, len, clear, nonce)
    }

    /// Opens a sealed RTP packet in place.
    ///
    /// Returns the header fields, the extension and the payload with the
    /// extension body and padding stripped. Bytes outside the payload are
    /// left as they are (decrypted where they were encrypted).
    pub fn open<'a>(&self, buf: &'a mut [u8]) -> Result<Opened<'a>> {
        let layout = RtpPacket::new(buf)?.layout();
        self.open_laid_out(buf, &layout)
    }

    /// [`Cipher::open`] for a packet whose header was read already
    /// ([`RtpPacket::layout`] of this very `buf`; a layout of a packet of
    /// another length or fixed header is refused).
    #[inline]
    pub fn open_laid_out<'a>(&self, buf: &'a mut [u8], layout: &RtpLayout) -> Result<Opened<'a>> {
        if layout.len != buf.len() || buf.get(..FIXED_HEADER_LEN) != Some(&layout.head[..]) {
            return Err(Error::OutOfRange("layout of another packet"));
        }
        let header = layout.fields;
        let (padded, csrc_bytes) = (layout.padded, 4 * usize::from(layout.csrc_count));
        let clear = self.rtp_clear_len(layout.rtpsize_clear_len);
        let clear_preamble = if self.mode.is_rtpsize() { layout.extension_preamble } else { None };
        let has_ext = layout.extension_preamble.is_some();

        let plain = self.open_raw(buf, clear)?;
        let (mut start, mut end) = (plain.start, plain.end);
        if !self.mode.is_rtpsize() {
            // The CSRCs are part of the encrypted region in legacy modes.
            start += csrc_bytes;
        }
        let mut ext = None;
        if has_ext {
            let (profile, body_len) = match clear_preamble {
                Some(p) => p,
                None => {
                    // Legacy modes: the preamble was encrypted too.
                    let pre = buf.get(start..start + 4).filter(|_| start + 4 <= end);
                    let pre = pre.ok_or(Error::ExtensionOverrun)?;
                    let words = u16::from_be_bytes([pre[2], pre[3]]);
                    start += 4;
                    (u16::from_be_bytes([pre[0], pre[1]]), 4 * usize::from(words))
                }
            };
            if start + body_len > end {
                return Err(Error::ExtensionOverrun);
            }
            ext = Some((profile, start..start + body_len));
            start += body_len;
        }
        if start > end {
            return Err(Error::TooShort { needed: start, got: end });
        }
        if padded {
            let n = buf[end - 1];
            if end == start || n == 0 || usize::from(n) > end - start {
                return Err(Error::BadPadding(if end == start { 0 } else { n }));
            }
            end -= usize::from(n);
        }
        let (head, tail) = buf.split_at_mut(start);
        let head: &'a [u8] = head;
        let extension = ext.map(|(profile, r)| Extension::new(profile, &head[r]));
        Ok(Opened { header, extension, payload: &mut tail[..end - start] })
    }

    /// Opens a sealed RTCP packet in place and returns its decrypted body
    /// (what follows the 8 clear bytes: header word and sender SSRC). The
    /// body is left right after those 8 bytes in every mode, so
    /// `buf[..8 + body.len()]` is the whole compound packet in the clear.
    ///
    /// UNCERTAIN (PROTOCOL.md §3.6): Discord does not document RTCP; this is
    /// songbird's layout, the same as RTP with an 8-byte clear part.
    pub fn open_rtcp<'a>(&self, buf: &'a mut [u8]) -> Result<&'a mut [u8]> {
        if !is_rtcp(buf) {
            return Err(Error::NotRtcp(buf.get(1).copied().unwrap_or(0)));
        }
        let r = self.open_raw(buf, RTCP_CLEAR_LEN)?;
        let n = r.len();
        // Tag-in-front modes leave the plaintext after the tag: close the gap.
        buf.copy_within(r, RTCP_CLEAR_LEN);
        Ok(&mut buf[RTCP_CLEAR_LEN..RTCP_CLEAR_LEN + n])
    }
}

/// The sending side: a cipher and its nonce counter.
///
/// Each sealed packet takes the next counter value; after 2^32 packets under
/// one key [`Sealer::seal`] returns [`Error::NonceExhausted`] instead of
/// wrapping, and the connection must get a new key.
#[derive(Debug)]
pub struct Sealer {
    cipher: Cipher,
    counter: NonceCounter,
}

impl Sealer {
    /// A sealer whose first nonce counter value is `first_nonce`.
    ///
    /// Any start works; the counter wraps modulo 2^32 but never reaches its
    /// start again.
    pub fn new(cipher: Cipher, first_nonce: u32) -> Self {
        Sealer { cipher, counter: NonceCounter::new(first_nonce, 0) }
    }

    /// A sealer whose first nonce was `first_nonce` and which has already
    /// handed out `used` nonces (clamped to 2^32), so that tests can reach
    /// the end of the counter space without sealing 2^32 packets.
    #[doc(hidden)]
    pub fn with_nonces_used(cipher: Cipher, first_nonce: u32, used: u64) -> Self {
        Sealer { cipher, counter: NonceCounter::new(first_nonce, used) }
    }

    /// The cipher, for opening received packets.
    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.cipher.mode
    }

    /// How many more packets this sealer can seal under its key.
    pub fn nonces_left(&self) -> u64 {
        self.counter.left(self.cipher.nonce)
    }

    fn next_suffix(&mut self) -> Result<([u8; 24], usize)> {
        self.counter.next(self.cipher.nonce)
    }

    /// Seals the RTP packet `buf[..len]` in place, returning the sealed length.
    /// `buf` needs `mode().overhead()` spare bytes after `len`.
    pub fn seal_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize> {
        let packet = RtpPacket::new(buf.get(..len).ok_or(Error::OutOfRange("len beyond buffer"))?)?;
        let clear = self.cipher.rtp_clear_len(packet.rtpsize_clear_len());
        let total = len + self.mode().overhead();
        if buf.len() < total {
            return Err(Error::BufferTooSmall { needed: total, have: buf.len() });
        }
        let (suffix, n) = self.next_suffix()?;
        self.cipher.seal_raw(buf, len, clear, &suffix[..n])
    }

    /// Seals the RTP packet held in `packet`, growing it by the overhead.
    /// Allocates only if `packet` lacks the capacity.
    pub fn seal(&mut self, packet: &mut Vec<u8>) -> Result<()> {
        let len = packet.len();
        packet.resize(len + self.mode().overhead(), 0);
        match self.seal_in_place(packet, len) {
            Ok(n) => {
                packet.truncate(n);
                Ok(())
            }
            Err(e) => {
                packet.truncate(len);
                Err(e)
            }
        }
    }

    /// Seals the RTCP packet held in `packet` (8 clear bytes, rest sealed).
    ///
    /// Refused in `xsalsa20_poly1305`, whose nonce is the first clear bytes:
    /// the 8 bytes of an RTCP header (type, length, SSRC) repeat from report
    /// to report, and a repeated nonce would break the cipher.
    pub fn seal_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<()> {
        if !is_rtcp(packet) || packet.len() < RTCP_CLEAR_LEN {
            return Err(Error::NotRtcp(packet.get(1).copied().unwrap_or(0)));
        }
        if self.cipher.nonce == NonceSource::Header12 {
            return Err(Error::OutOfRange("RTCP cannot be sealed in xsalsa20_poly1305 (header nonce)"));
        }
        let len = packet.len();
        let (suffix, n) = self.next_suffix()?;
        packet.resize(len + self.mode().overhead(), 0);
        let r = self.cipher.seal_raw(packet, len, RTCP_CLEAR_LEN, &suffix[..n]);
        packet.truncate(*r.as_ref().unwrap_or(&len));
        r.map(|_| ())
    }
}
