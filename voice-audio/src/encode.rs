//! Opus encoding of 20 ms frames of 48 kHz stereo PCM (ropus: a pure-Rust
//! port of libopus, no C library).

use bytes::Bytes;
use ropus::{Application, Bitrate, Channels, Encoder};

use crate::AudioError;

/// Samples per channel in one 20 ms frame at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;
/// Interleaved stereo samples in one frame.
pub const FRAME_LEN: usize = FRAME_SAMPLES * 2;

/// One 20 ms frame of interleaved stereo PCM, samples in `-1.0..=1.0`.
pub type Frame = [f32; FRAME_LEN];

/// An Opus encoder for music at a fixed bitrate, 20 ms frames.
pub struct OpusEncoder {
    encoder: Encoder,
    out: Vec<u8>,
}

impl core::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpusEncoder").finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// An encoder at `bitrate` bits per second (Discord's channels allow
    /// 64 000 by default, up to 384 000 with boosts).
    pub fn new(bitrate: u32) -> Result<Self, AudioError> {
        let encoder = Encoder::builder(48_000, Channels::Stereo, Application::Audio)
            .bitrate(Bitrate::Bits(bitrate))
            .build()
            .map_err(|e| AudioError::Encode(format!("{e:?}")))?;
        Ok(OpusEncoder { encoder, out: vec![0; 1500] })
    }

    /// Encodes one frame into an Opus packet.
    pub fn encode(&mut self, frame: &Frame) -> Result<Bytes, AudioError> {
        let n = self.encoder.encode_float(frame, &mut self.out).map_err(|e| AudioError::Encode(format!("{e:?}")))?;
        Ok(Bytes::copy_from_slice(&self.out[..n]))
    }
}
