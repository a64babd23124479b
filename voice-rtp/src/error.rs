//! Typed errors for every packet operation.

/// Why a packet could not be parsed, built, sealed or opened.
///
/// Every variant describes one input; none of them poisons any state, so the
/// caller drops the packet and carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The buffer is shorter than the structure it should hold.
    #[error("packet too short: need {needed} bytes, got {got}")]
    TooShort {
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// The first two bits are not those of an RTP/RTCP packet.
    #[error("not an RTP packet")]
    NotRtp,
    /// The RTP/RTCP version field is not 2.
    #[error("unsupported RTP version {0}")]
    UnsupportedVersion(u8),
    /// The payload type is in the RTCP range (RFC 5761); it is not RTP.
    #[error("payload type {0} is RTCP, not RTP")]
    IsRtcp(u8),
    /// The packet type is not RTCP (200..=204).
    #[error("packet type {0} is not RTCP")]
    NotRtcp(u8),
    /// The header extension's declared length runs past the packet.
    #[error("header extension length runs past the packet")]
    ExtensionOverrun,
    /// The padding length is zero or larger than the payload.
    #[error("invalid padding length {0}")]
    BadPadding(u8),
    /// A length field in an RTCP packet disagrees with the bytes present.
    #[error("malformed RTCP packet: {0}")]
    MalformedRtcp(&'static str),
    /// An IP discovery datagram has the wrong type, length or address.
    #[error("malformed IP discovery packet: {0}")]
    MalformedDiscovery(&'static str),
    /// A value does not fit the field it is written to.
    #[error("field out of range: {0}")]
    OutOfRange(&'static str),
    /// The output buffer cannot hold the result.
    #[error("output buffer too small: need {needed} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes the result needs.
        needed: usize,
        /// Bytes the buffer has.
        have: usize,
    },
    /// The packet failed authentication (wrong key, tampered or truncated).
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The sender used every nonce once under this key; a new key is needed.
    #[error("nonce space exhausted under this key")]
    NonceExhausted,
    /// A nonce of the wrong length was given for the mode.
    #[error("nonce must be {expected} bytes for this mode, got {got}")]
    BadNonceLength {
        /// Length the mode uses.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The mode name is not one this crate knows.
    #[error("unknown encryption mode {0:?}")]
    UnknownMode(String),
}

/// Shorthand for `Result<T, voice_rtp::Error>`.
pub type Result<T, E = Error> = core::result::Result<T, E>;

pub(crate) fn need(buf: &[u8], needed: usize) -> Result<()> {
    if buf.len() < needed { Err(Error::TooShort { needed, got: buf.len() }) } else { Ok(()) }
}
