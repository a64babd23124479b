//! RTP/RTCP packet views, IP discovery and every Discord voice transport
//! encryption mode.
//!
//! This crate does no IO, reads no clock and allocates nothing on the packet
//! path: it works on bytes the caller owns. It is the bottom of the `voice-*`
//! workspace; see `voice-proto` for the connection state machine.
//!
//! ```
//! use voice_rtp::{Cipher, Mode, RtpHeader, SecretKey, Sealer};
//!
//! let key = SecretKey::new([7; 32]);
//! let mut sealer = Sealer::new(Cipher::new(Mode::Aes256GcmRtpSize, &key), 1);
//! let mut packet = vec![0u8; 12];
//! RtpHeader::write_basic((&mut packet[..12]).try_into().unwrap(), 1, 960, 42);
//! packet.extend_from_slice(&[0xF8, 0xFF, 0xFE]);
//! sealer.seal(&mut packet).unwrap();
//! assert_eq!(packet.len(), 12 + 3 + 16 + 4);
//!
//! let receiver = Cipher::new(Mode::Aes256GcmRtpSize, &key);
//! let opened = receiver.open(&mut packet).unwrap();
//! assert_eq!(opened.header.ssrc, 42);
//! assert_eq!(opened.payload, &[0xF8, 0xFF, 0xFE]);
//! ```

// Unit tests may unwrap; the packet path may not (workspace lints).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod crypto;
pub mod demux;
pub mod discovery;
mod error;
pub mod ext;
mod mode;
pub mod rtcp;
pub mod rtp;

pub use crypto::{Cipher, KEY_LEN, Opened, RTCP_CLEAR_LEN, RtpFields, Sealer, SecretKey};
pub use demux::{DatagramKind, classify};
pub use error::{Error, Result};
pub use ext::Extension;
pub use mode::Mode;
pub use rtp::{RtpHeader, RtpLayout, RtpPacket, RtpPacketMut};

/// The Opus silence frame sent five times when speech stops.
pub const OPUS_SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// Samples per channel in one 20 ms Opus frame at 48 kHz: the RTP timestamp step.
pub const SAMPLES_PER_FRAME: u32 = 960;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
