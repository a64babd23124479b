//! Stereo resampling to 48 kHz (rubato's FFT resampler: a fixed ratio,
//! band-limited, no aliasing of what a 48 kHz stream cannot carry).

use std::collections::VecDeque;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

use crate::AudioError;

/// Input frames per resampler call.
const CHUNK: usize = 1024;

/// A stereo stream at `rate` in, 48 kHz out.
pub(crate) struct Resampler {
    inner: Fft<f32>,
    rate: u32,
    /// Input waiting for a whole chunk, interleaved stereo.
    pending: Vec<f32>,
    out: Vec<f32>,
}

impl Resampler {
    pub(crate) fn new(rate: u32) -> Result<Self, AudioError> {
        let inner = Fft::<f32>::new(rate as usize, 48_000, CHUNK, 2, FixedSync::Input)
            .map_err(|e| AudioError::Encode(e.to_string()))?;
        let out = vec![0.0; inner.output_frames_max() * 2];
        Ok(Resampler { inner, rate, pending: Vec::new(), out })
    }

    /// Takes interleaved stereo input; appends what is ready to `ready`.
    pub(crate) fn push(&mut self, input: &[f32], ready: &mut VecDeque<f32>) -> Result<(), AudioError> {
        self.pending.extend_from_slice(input);
        while self.pending.len() >= self.inner.input_frames_next() * 2 {
            self.run(ready)?;
        }
        Ok(())
    }

    /// The stream ended: what is left goes through, padded with silence.
    pub(crate) fn flush(&mut self, ready: &mut VecDeque<f32>) -> Result<(), AudioError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let real = self.pending.len() / 2;
        let need = self.inner.input_frames_next() * 2;
        self.pending.resize(need, 0.0);
        let before = ready.len();
        self.run(ready)?;
        // Keep only the output that the real input accounts for.
        let keep = (real as u64 * 48_000 / u64::from(self.rate)) as usize * 2;
        ready.truncate(before + keep.min(ready.len() - before));
        Ok(())
    }

    pub(crate) fn reset(&mut self) {
        self.inner.reset();
        self.pending.clear();
    }

    fn run(&mut self, ready: &mut VecDeque<f32>) -> Result<(), AudioError> {
        let frames_in = self.inner.input_frames_next();
        let frames_out = self.inner.output_frames_max();
        let input = InterleavedSlice::new(&self.pending[..frames_in * 2], 2, frames_in)
            .map_err(|e| AudioError::Encode(e.to_string()))?;
        let mut output = InterleavedSlice::new_mut(&mut self.out[..], 2, frames_out)
            .map_err(|e| AudioError::Encode(e.to_string()))?;
        let (used, written) =
            self.inner.process_into_buffer(&input, &mut output, None).map_err(|e| AudioError::Encode(e.to_string()))?;
        ready.extend(&self.out[..written * 2]);
        self.pending.drain(..used * 2);
        Ok(())
    }
}
