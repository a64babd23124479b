//! The transport encryption modes (PROTOCOL.md §4) and how to choose one.

use core::fmt;
use core::str::FromStr;

use crate::Error;

/// A Discord transport encryption mode.
///
/// The two `*_rtpsize` AEAD modes are the live ones; the other five were
/// discontinued by Discord on 2024-11-18 and remain for other servers, old
/// captures and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Mode {
    /// `aead_aes256_gcm_rtpsize`: AES-256-GCM, preferred by Discord.
    Aes256GcmRtpSize,
    /// `aead_xchacha20_poly1305_rtpsize`: XChaCha20-Poly1305, always offered.
    XChaCha20Poly1305RtpSize,
    /// `xsalsa20_poly1305_lite_rtpsize` (discontinued).
    XSalsa20Poly1305LiteRtpSize,
    /// `aead_aes256_gcm` (discontinued).
    Aes256Gcm,
    /// `xsalsa20_poly1305_lite` (discontinued).
    XSalsa20Poly1305Lite,
    /// `xsalsa20_poly1305_suffix` (discontinued).
    XSalsa20Poly1305Suffix,
    /// `xsalsa20_poly1305` (discontinued).
    XSalsa20Poly1305,
}

impl Mode {
    /// Every mode, best first.
    pub const PREFERENCE: [Mode; 7] = [
        Mode::Aes256GcmRtpSize,
        Mode::XChaCha20Poly1305RtpSize,
        Mode::XSalsa20Poly1305LiteRtpSize,
        Mode::Aes256Gcm,
        Mode::XSalsa20Poly1305Lite,
        Mode::XSalsa20Poly1305Suffix,
        Mode::XSalsa20Poly1305,
    ];

    /// The two modes Discord still accepts, best first.
    pub const LIVE: [Mode; 2] = [Mode::Aes256GcmRtpSize, Mode::XChaCha20Poly1305RtpSize];

    /// Discord's name for the mode, as sent in Select Protocol.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Aes256GcmRtpSize => "aead_aes256_gcm_rtpsize",
            Mode::XChaCha20Poly1305RtpSize => "aead_xchacha20_poly1305_rtpsize",
            Mode::XSalsa20Poly1305LiteRtpSize => "xsalsa20_poly1305_lite_rtpsize",
            Mode::Aes256Gcm => "aead_aes256_gcm",
            Mode::XSalsa20Poly1305Lite => "xsalsa20_poly1305_lite",
            Mode::XSalsa20Poly1305Suffix => "xsalsa20_poly1305_suffix",
            Mode::XSalsa20Poly1305 => "xsalsa20_poly1305",
        }
    }

    /// Parses Discord's name; `None` for names this crate does not know.
    pub fn from_name(name: &str) -> Option<Mode> {
        Mode::PREFERENCE.into_iter().find(|m| m.as_str() == name)
    }

    /// Whether Discord still accepts the mode.
    pub const fn is_live(self) -> bool {
        matches!(self, Mode::Aes256GcmRtpSize | Mode::XChaCha20Poly1305RtpSize)
    }

    /// Whether the RTP extension preamble (and CSRCs) stay cleartext.
    ///
    /// True for the `rtpsize` modes, where the cleartext part is
    /// `12 + 4*CC + (X ? 4 : 0)` bytes; false for the legacy modes, where it
    /// is the 12-byte fixed header (the CSRCs and preamble are encrypted).
    pub const fn is_rtpsize(self) -> bool {
        matches!(self, Mode::Aes256GcmRtpSize | Mode::XChaCha20Poly1305RtpSize | Mode::XSalsa20Poly1305LiteRtpSize)
    }

    /// Bytes a sealed packet adds to the plaintext packet (tag + nonce suffix).
    pub const fn overhead(self) -> usize {
        match self {
            Mode::XSalsa20Poly1305 => 16,
            Mode::XSalsa20Poly1305Suffix => 16 + 24,
            _ => 16 + 4,
        }
    }

    /// Picks the first mode of `allowed` that the server offers: the
    /// caller's order decides (pass [`Mode::PREFERENCE`] or [`Mode::LIVE`]
    /// for this crate's order, best first). Unknown names in `offered` are
    /// ignored. This is the rule the voice connection applies to its
    /// configured modes.
    pub fn select<'a, I>(offered: I, allowed: &[Mode]) -> Option<Mode>
    where
        I: IntoIterator<Item = &'a str>,
    {
        // The earliest position in `allowed` of any offered name.
        let best = offered.into_iter().filter_map(|o| allowed.iter().position(|m| m.as_str() == o)).min()?;
        allowed.get(best).copied()
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Mode::from_name(s).ok_or_else(|| Error::UnknownMode(s.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Mode::PREFERENCE {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
            assert_eq!(m.to_string(), m.as_str());
        }
        assert!("aead_aes256".parse::<Mode>().is_err());
    }

    #[test]
    fn selects_aes_when_offered_else_xchacha() {
        let both = ["aead_xchacha20_poly1305_rtpsize", "aead_aes256_gcm_rtpsize", "xsalsa20_poly1305"];
        assert_eq!(Mode::select(both, &Mode::LIVE), Some(Mode::Aes256GcmRtpSize));
        let xc = ["xsalsa20_poly1305_lite", "aead_xchacha20_poly1305_rtpsize"];
        assert_eq!(Mode::select(xc, &Mode::LIVE), Some(Mode::XChaCha20Poly1305RtpSize));
        assert_eq!(Mode::select(["xsalsa20_poly1305"], &Mode::LIVE), None);
        assert_eq!(Mode::select(["xsalsa20_poly1305", "bogus"], &Mode::PREFERENCE), Some(Mode::XSalsa20Poly1305));
        assert_eq!(Mode::select(["bogus"], &Mode::PREFERENCE), None);
    }

    #[test]
    fn the_callers_order_decides() {
        let both = ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize"];
        let xchacha_first = [Mode::XChaCha20Poly1305RtpSize, Mode::Aes256GcmRtpSize];
        assert_eq!(Mode::select(both, &xchacha_first), Some(Mode::XChaCha20Poly1305RtpSize));
        assert_eq!(Mode::select(both, &Mode::LIVE), Some(Mode::Aes256GcmRtpSize));
        assert_eq!(Mode::select(both, &[]), None);
    }
}
