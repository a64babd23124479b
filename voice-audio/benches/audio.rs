//! CPU per call of voice-audio's work, at 1, 100 and 500 calls in one
//! thread: decoding a file (MP3 at 44.1 kHz, so resampled too), mixing and
//! encoding music to Opus, and decoding received Opus through the playout
//! buffer. Then the same play work run as it runs for real: players on a
//! two-thread `PlayerPool`, each track decoded ahead on its own thread,
//! whole-process CPU (Linux: /proc/self/stat) against the one-thread loop.
//! Printed as µs per 20 ms frame per call and the share of one core a call
//! needs (50 frames a second).
//!
//! `cargo bench -p voice-audio --bench audio`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_audio::{AudioFile, FRAME_LEN, FrameOut, Hearing, Mixer, OpusEncoder, PlayerPool};
use voice_driver::{ReceivedAudio, Snowflake};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tone.mp3");
const FRAMES: usize = 50;

fn report(what: &str, calls: usize, took: Duration) {
    report_frames(what, calls, FRAMES, took);
}

fn report_frames(what: &str, calls: usize, frames: usize, took: Duration) {
    let per = took.as_secs_f64() * 1e6 / (calls * frames) as f64;
    println!("{what:<34} {calls:>4} calls  {per:>8.1} µs/frame/call  {:>6.2} % of a core per call", per * 50.0 / 1e4);
}

/// Frames each pooled player sends: 8 s, so the 0.5 s each track decodes
/// ahead and never plays adds about 6 %, and the CPU clock's 10 ms ticks
/// stay small beside the total.
const POOL_FRAMES: usize = 400;

/// Takes `POOL_FRAMES` frames as fast as they come, then no more.
struct Counting(Arc<AtomicUsize>);

impl FrameOut for Counting {
    fn send(&self, _frame: Bytes) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed) + 1 < POOL_FRAMES
    }
    fn queued(&self) -> usize {
        0
    }
}

/// The process's CPU time so far (user + system), from /proc/self/stat.
fn cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// `calls` players on a two-thread pool until each has sent `POOL_FRAMES`.
fn pooled(calls: usize) -> Option<Duration> {
    let pool = PlayerPool::new(2).unwrap();
    let counts: Vec<Arc<AtomicUsize>> = (0..calls).map(|_| Arc::default()).collect();
    let before = cpu()?;
    let players: Vec<_> = counts
        .iter()
        .map(|c| {
            let p = pool.start(Counting(c.clone()), 64_000).unwrap();
            p.play(AudioFile::open(FIXTURE).unwrap()).unwrap().set_loop(true);
            p
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while counts.iter().any(|c| c.load(Ordering::Relaxed) < POOL_FRAMES) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = cpu()? - before;
    drop(players);
    Some(took)
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
        let direct = start.elapsed();
        report("play: decode+resample+mix+encode", calls, direct);
        if let Some(cpu) = pooled(calls) {
            report_frames("play: the same, players on a pool", calls, POOL_FRAMES, cpu);
            let ratio = (cpu.as_secs_f64() / POOL_FRAMES as f64) / (direct.as_secs_f64() / FRAMES as f64);
            println!("{:<34} {calls:>4} calls  {ratio:>8.2}x the one-thread loop", "");
        }

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
