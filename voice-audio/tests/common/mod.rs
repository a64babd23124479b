//! What the audio tests share.

use std::f32::consts::TAU;

/// The amplitude of `freq` in `x` (48 kHz), by the Goertzel algorithm.
pub fn level(x: &[f32], freq: f32) -> f32 {
    let w = TAU * freq / 48_000.0;
    let (mut s1, mut s2) = (0f32, 0f32);
    for &v in x {
        let s = v + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    2.0 * power.max(0.0).sqrt() / x.len() as f32
}
