//! CPU per call of voice-audio's work, at 1, 100 and 500 calls in one
//! thread: decoding a file (MP3 at 44.1 kHz, so resampled too), mixing and
//! encoding music to Opus, and decoding received Opus through the playout
//! buffer. Printed as µs per 20 ms frame per call and the share of one core
//! a call needs (50 frames a second).
//!
//! `cargo bench -p voice-audio --bench audio`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_audio::{AudioFile, FRAME_LEN, Hearing, Mixer, OpusEncoder};
use voice_driver::{ReceivedAudio, Snowflake};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tone.mp3");
const FRAMES: usize = 50;

fn report(what: &str, calls: usize, took: Duration) {
    let per = took.as_secs_f64() * 1e6 / (calls * FRAMES) as f64;
    println!("{what:<34} {calls:>4} calls  {per:>8.1} µs/frame/call  {:>6.2} % of a core per call", per * 50.0 / 1e4);
}

fn main() {
    for calls in [1usize, 100, 500] {
        // Decode + resample + mix + encode: each call plays its own file.
        let mut mixers: Vec<Mixer> = (0..calls)
            .map(|_| {
                let mut m = Mixer::new();
                let t = m.play(AudioFile::open(FIXTURE).unwrap());
                t.set_loop(true);
                m
            })
            .collect();
        let mut encoders: Vec<OpusEncoder> = (0..calls).map(|_| OpusEncoder::new(64_000).unwrap()).collect();
        let mut frame = [0f32; FRAME_LEN];
        let mut packets: Vec<Bytes> = Vec::with_capacity(FRAMES);
        let start = Instant::now();
        for f in 0..FRAMES {
            for (m, e) in mixers.iter_mut().zip(&mut encoders) {
                m.mix(&mut frame);
                let p = e.encode(&frame).unwrap();
                if packets.len() < FRAMES && f == packets.len() {
                    packets.push(p);
                }
            }
        }
        report("play: decode+resample+mix+encode", calls, start.elapsed());

        // Receive: every call hears one user through its playout buffer.
        let mut hearings: Vec<Hearing> = (0..calls).map(|_| Hearing::new(1)).collect();
        let start = Instant::now();
        for (f, p) in packets.iter().enumerate() {
            let packet = ReceivedAudio {
                user_id: Snowflake(1),
                ssrc: 1,
                sequence: f as u16,
                timestamp: f as u32 * 960,
                opus: p.clone(),
            };
            for h in &mut hearings {
                h.push(&packet);
                std::hint::black_box(h.tick());
            }
        }
        report("hear: playout buffer + decode", calls, start.elapsed());
    }
}
