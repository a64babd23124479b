//! Decode, resample, mix and encode, checked against generated tones:
//! frequency and level survive within stated tolerances, tracks mix, and
//! their handles and the queue do what they say.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::f32::consts::TAU;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::level;
use voice_audio::{AudioFile, FRAME_LEN, FrameOut, Mixer, OpusEncoder, PlayState, Player, PlayerPool, TrackEvent};

/// A 16-bit PCM WAV file in memory: `tones` of (frequency, seconds) one
/// after another, at `amplitude`.
fn wav(rate: u32, channels: u16, amplitude: f32, tones: &[(f32, f32)]) -> Vec<u8> {
    let mut samples = Vec::new();
    for &(freq, secs) in tones {
        let n = (rate as f32 * secs) as usize;
        for i in 0..n {
            let v = (amplitude * (TAU * freq * i as f32 / rate as f32).sin() * 32767.0) as i16;
            for _ in 0..channels {
                samples.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    w.extend_from_slice(&(channels * 2).to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    w.extend_from_slice(&samples);
    w
}

fn file(rate: u32, channels: u16, amplitude: f32, tones: &[(f32, f32)]) -> AudioFile {
    AudioFile::from_bytes(wav(rate, channels, amplitude, tones)).unwrap()
}

/// Every frame of a file, left channel and right channel apart.
fn decode_all(mut f: AudioFile) -> (Vec<f32>, Vec<f32>, usize) {
    let (mut l, mut r, mut frames) = (Vec::new(), Vec::new(), 0);
    let mut frame = [0f32; FRAME_LEN];
    while f.next_frame(&mut frame).unwrap() {
        frames += 1;
        for s in frame.chunks_exact(2) {
            l.push(s[0]);
            r.push(s[1]);
        }
    }
    (l, r, frames)
}

#[test]
fn a_44k1_mono_file_becomes_48k_stereo_with_its_tone_and_level() {
    let (l, r, frames) = decode_all(file(44_100, 1, 0.5, &[(440.0, 1.0)]));
    // One second: 50 frames (the last padded).
    assert!((50..=51).contains(&frames), "{frames}");
    assert_eq!(l, r, "mono goes to both channels");
    let middle = &l[4_800..43_200];
    let a = level(middle, 440.0);
    assert!((a - 0.5).abs() < 0.02, "440 Hz at {a}");
    assert!(level(middle, 1000.0) < 0.01, "nothing at 1 kHz");
    // The same at 48 kHz stereo needs no resampling and matches too.
    let (l48, _, frames48) = decode_all(file(48_000, 2, 0.5, &[(440.0, 1.0)]));
    assert_eq!(frames48, 50);
    assert!((level(&l48[4_800..43_200], 440.0) - 0.5).abs() < 0.01);
}

#[test]
fn opus_encoding_keeps_the_tone_and_its_level() {
    let mut f = file(48_000, 2, 0.4, &[(1000.0, 1.0)]);
    let mut enc = OpusEncoder::new(128_000).unwrap();
    let mut dec = ropus::Decoder::new(48_000, ropus::Channels::Stereo).unwrap();
    let mut frame = [0f32; FRAME_LEN];
    let mut out = vec![0f32; 5760 * 2];
    let mut decoded = Vec::new();
    while f.next_frame(&mut frame).unwrap() {
        let packet = enc.encode(&frame).unwrap();
        assert!(packet.len() < 1400 && !packet.is_empty());
        let n = dec.decode_float(&packet, &mut out, ropus::DecodeMode::Normal).unwrap();
        assert_eq!(n, 960);
        decoded.extend(out[..n * 2].chunks_exact(2).map(|s| s[0]));
    }
    let middle = &decoded[9_600..38_400];
    let a = level(middle, 1000.0);
    assert!((a - 0.4).abs() < 0.04, "1 kHz at {a} after Opus");
    assert!(level(middle, 3000.0) < 0.02);
}

#[test]
fn two_tracks_mix_and_volume_scales_one() {
    let mut m = Mixer::new();
    m.play(file(48_000, 1, 0.3, &[(440.0, 1.0)]));
    let b = m.play(file(48_000, 1, 0.3, &[(1000.0, 1.0)]));
    b.set_volume(0.5);
    let mut frame = [0f32; FRAME_LEN];
    let mut left = Vec::new();
    for _ in 0..20 {
        assert!(m.mix(&mut frame));
        left.extend(frame.chunks_exact(2).map(|s| s[0]));
    }
    assert!((level(&left, 440.0) - 0.3).abs() < 0.02, "{}", level(&left, 440.0));
    assert!((level(&left, 1000.0) - 0.15).abs() < 0.02, "{}", level(&left, 1000.0));
}

#[test]
fn pause_resume_stop_and_position_do_what_they_say() {
    let mut m = Mixer::new();
    let t = m.play(file(48_000, 2, 0.3, &[(440.0, 2.0)]));
    let mut frame = [0f32; FRAME_LEN];
    for _ in 0..10 {
        assert!(m.mix(&mut frame));
    }
    assert_eq!(t.position(), Duration::from_millis(200));
    t.pause();
    assert!(!m.mix(&mut frame), "a paused track plays nothing");
    assert!(frame.iter().all(|&s| s == 0.0));
    assert_eq!((t.state(), t.position()), (PlayState::Paused, Duration::from_millis(200)));
    t.resume();
    assert!(m.mix(&mut frame));
    t.stop();
    assert!(!m.mix(&mut frame));
    assert!(m.is_empty());
    let id = t.id();
    assert_eq!(
        m.take_events(),
        vec![TrackEvent::Started(id), TrackEvent::Paused(id), TrackEvent::Resumed(id), TrackEvent::Ended(id)]
    );
}

#[test]
fn seek_jumps_and_a_loop_goes_round() {
    let mut m = Mixer::new();
    // 440 Hz for a second, then 1 kHz for a second.
    let t = m.play(file(48_000, 2, 0.3, &[(440.0, 1.0), (1000.0, 1.0)]));
    t.seek(Duration::from_millis(1200));
    let mut frame = [0f32; FRAME_LEN];
    let mut left = Vec::new();
    for _ in 0..10 {
        assert!(m.mix(&mut frame));
        left.extend(frame.chunks_exact(2).map(|s| s[0]));
    }
    assert!(level(&left, 1000.0) > 0.25 && level(&left, 440.0) < 0.03, "after the seek: the second tone");
    assert_eq!(t.position(), Duration::from_millis(1400));

    let short = m.play(file(48_000, 2, 0.3, &[(440.0, 0.1)]));
    short.set_loop(true);
    for _ in 0..30 {
        m.mix(&mut frame);
    }
    assert_eq!(short.state(), PlayState::Playing, "still going after 6 rounds of 100 ms");
    assert!(m.take_events().iter().filter(|e| **e == TrackEvent::Looped(short.id())).count() >= 5);
}

#[test]
fn a_queue_plays_in_order_and_a_stop_skips() {
    let mut m = Mixer::new();
    let a = m.enqueue(file(48_000, 2, 0.3, &[(440.0, 0.1)]));
    let b = m.enqueue(file(48_000, 2, 0.3, &[(1000.0, 1.0)]));
    let c = m.enqueue(file(48_000, 2, 0.3, &[(2000.0, 0.1)]));
    assert_eq!((a.state(), b.state()), (PlayState::Playing, PlayState::Queued));
    let mut frame = [0f32; FRAME_LEN];
    for _ in 0..8 {
        m.mix(&mut frame);
    }
    assert_eq!((a.state(), b.state()), (PlayState::Ended, PlayState::Playing));
    b.stop();
    let mut left = Vec::new();
    for _ in 0..4 {
        m.mix(&mut frame);
        left.extend(frame.chunks_exact(2).map(|s| s[0]));
    }
    assert!(level(&left[960..], 2000.0) > 0.2, "the skip went on to the third");
    for _ in 0..10 {
        m.mix(&mut frame);
    }
    let (a, b, c) = (a.id(), b.id(), c.id());
    assert_eq!(
        m.take_events(),
        vec![
            TrackEvent::Started(a),
            TrackEvent::Ended(a),
            TrackEvent::Started(b),
            TrackEvent::Ended(b),
            TrackEvent::Started(c),
            TrackEvent::Ended(c)
        ]
    );
}

#[test]
fn a_player_encodes_what_plays_and_then_nothing() {
    let out = Paced::start(60);
    let player = Player::start(out.clone(), 64_000).unwrap();
    let mut events = player.take_events().unwrap();
    let t = player.play(file(44_100, 2, 0.3, &[(440.0, 0.5)])).unwrap();
    wait_until(Duration::from_secs(10), || t.state() == PlayState::Ended);
    std::thread::sleep(Duration::from_millis(150));
    let frames = out.taken.lock().unwrap().len();
    assert!((25..=26).contains(&frames), "half a second is 25 frames: {frames}");
    assert_eq!(player.stats().frames_encoded as usize, frames);
    assert_eq!(player.stats().underruns, 0);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(out.taken.lock().unwrap().len(), frames, "nothing is encoded once nothing plays");
    assert_eq!(events.try_recv().unwrap(), TrackEvent::Started(t.id()));
    assert_eq!(events.try_recv().unwrap(), TrackEvent::Ended(t.id()));
}

/// One second of 440 Hz at 0.4 in each format (`scripts/make-audio-fixtures`).
#[test]
fn every_supported_format_decodes_to_its_tone() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    for name in ["tone.mp3", "tone.flac", "tone.m4a", "tone.webm", "tone.opus", "tone.ogg"] {
        let f = AudioFile::open(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (l, r, frames) = decode_all(f);
        // Codec delay and padding add a frame or three.
        assert!((49..=54).contains(&frames), "{name}: {frames} frames");
        let middle = &l[9_600..38_400];
        let a = level(middle, 440.0);
        assert!((a - 0.4).abs() < 0.05, "{name}: 440 Hz at {a}");
        assert!(level(middle, 1000.0) < 0.02, "{name}: energy at 1 kHz");
        assert!((level(&r[9_600..38_400], 440.0) - a).abs() < 0.02, "{name}: both channels");
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bytes in [Vec::new(), vec![0u8; 100], b"RIFF\x10\x00\x00\x00WAVEfmt ".to_vec(), (0..=255).collect()] {
        if let Ok(mut f) = AudioFile::from_bytes(bytes) {
            let mut frame = [0f32; FRAME_LEN];
            for _ in 0..10 {
                if !matches!(f.next_frame(&mut frame), Ok(true)) {
                    break;
                }
            }
        }
    }
}

#[cfg(unix)]
#[test]
fn a_programs_output_is_a_source() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tone.mp3");
    let f = AudioFile::from_command(std::process::Command::new("cat").arg(path)).unwrap();
    let (l, _, frames) = decode_all(f);
    assert!((49..=54).contains(&frames), "{frames}");
    assert!((level(&l[9_600..38_400], 440.0) - 0.4).abs() < 0.05);
}

/// Polls `done` every 10 ms until it holds or `limit` has passed (the
/// assertions after it say which).
fn wait_until(limit: Duration, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A call's frame queue as the driver drains it: one frame per 20 ms.
#[derive(Clone)]
struct Paced {
    queue: Arc<Mutex<std::collections::VecDeque<Bytes>>>,
    taken: Arc<Mutex<Vec<Bytes>>>,
}

impl Paced {
    fn start(frames: usize) -> Self {
        let p = Paced { queue: Arc::default(), taken: Arc::default() };
        let (queue, taken) = (p.queue.clone(), p.taken.clone());
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            for i in 1..=frames as u32 {
                let due = start + Duration::from_millis(20) * i;
                std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
                if let Some(f) = queue.lock().unwrap().pop_front() {
                    taken.lock().unwrap().push(f);
                }
            }
        });
        p
    }
}

impl FrameOut for Paced {
    fn send(&self, frame: Bytes) -> bool {
        self.queue.lock().unwrap().push_back(frame);
        true
    }
    fn queued(&self) -> usize {
        self.queue.lock().unwrap().len()
    }
}

/// A reader that stops for `stall` once `after` bytes have been read.
struct Stalling {
    inner: std::io::Cursor<Vec<u8>>,
    after: u64,
    stall: Duration,
    stalled: bool,
}

impl std::io::Read for Stalling {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.stalled && self.inner.position() >= self.after {
            self.stalled = true;
            std::thread::sleep(self.stall);
        }
        let n = buf.len().min(4096);
        self.inner.read(&mut buf[..n])
    }
}

#[test]
fn a_stalling_source_underruns_into_silence_without_a_burst_or_a_stall_elsewhere() {
    // 2 s of 440 Hz whose reader stops for 600 ms after 0.4 s of audio,
    // mixed with a steady 1 kHz track; the consumer takes a frame per 20 ms.
    let bytes = wav(48_000, 2, 0.3, &[(440.0, 2.0)]);
    let slow = Stalling {
        inner: std::io::Cursor::new(bytes),
        after: 77_000,
        stall: Duration::from_millis(600),
        stalled: false,
    };
    let out = Paced::start(150);
    let player = Player::start(out.clone(), 64_000).unwrap();
    let steady = player.play(file(48_000, 2, 0.3, &[(1000.0, 6.0)])).unwrap();
    let t = player.play(AudioFile::from_reader(slow).unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(3_100));
    let stats = player.stats();
    // The stall outlasts the 500 ms decoded ahead: some 5 frames of it at
    // least went out as silence for that track, and only for that track.
    assert!(stats.underruns >= 3, "{stats:?}");
    assert_eq!(t.state(), PlayState::Ended, "the slow track still played to its end");
    assert_eq!(steady.state(), PlayState::Playing);
    // No burst: the queue never held more than the player's few frames.
    assert!(out.queue.lock().unwrap().len() <= 3);
    let taken = out.taken.lock().unwrap().len();
    assert!(taken >= 140, "the consumer found a frame nearly every time: {taken} of 150");
}

#[test]
fn an_opus_file_alone_at_full_volume_goes_out_as_it_is() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tone.opus");
    let packets = voice_driver::ogg::read_ogg_opus(&std::fs::read(path).unwrap()).unwrap();
    let play = |volume: f32| {
        let out = Paced::start(80);
        let player = Player::start(out.clone(), 64_000).unwrap();
        let t = player.play(AudioFile::open(path).unwrap()).unwrap();
        t.set_volume(volume);
        wait_until(Duration::from_secs(10), || t.state() == PlayState::Ended);
        std::thread::sleep(Duration::from_millis(150));
        let sent = out.taken.lock().unwrap().clone();
        (sent, player.stats())
    };
    let (sent, stats) = play(1.0);
    assert_eq!(sent.len(), packets.len(), "{stats:?}");
    assert!(sent.iter().zip(&packets).all(|(a, b)| a[..] == b[..]), "packet for packet");
    assert_eq!((stats.frames_passed_through, stats.frames_encoded), (packets.len() as u64, 0));
    // At another volume it is decoded, scaled and encoded.
    let (sent, stats) = play(0.5);
    assert_eq!(stats.frames_passed_through, 0);
    assert_eq!(stats.frames_encoded as usize, sent.len());
    assert!(sent.iter().zip(&packets).any(|(a, b)| a[..] != b[..]));
}

#[test]
fn a_pool_runs_many_players_on_few_threads_each_with_its_own_audio() {
    let pool = PlayerPool::new(2).unwrap();
    let freqs: Vec<f32> = (0..12).map(|k| 300.0 + 100.0 * k as f32).collect();
    let outs: Vec<Paced> = freqs.iter().map(|_| Paced::start(60)).collect();
    let players: Vec<Player> = outs.iter().map(|o| pool.start(o.clone(), 64_000).unwrap()).collect();
    assert_eq!(pool.load(), vec![6, 6], "placed on the least loaded thread");
    let tracks: Vec<_> =
        players.iter().zip(&freqs).map(|(p, &f)| p.play(file(48_000, 2, 0.3, &[(f, 0.5)])).unwrap()).collect();
    wait_until(Duration::from_secs(10), || tracks.iter().all(|t| t.state() == PlayState::Ended));
    std::thread::sleep(Duration::from_millis(150));
    for (k, (out, p)) in outs.iter().zip(&players).enumerate() {
        let taken = out.taken.lock().unwrap().clone();
        assert!((25..=26).contains(&taken.len()), "player {k}: {} frames", taken.len());
        assert_eq!(p.stats().underruns, 0);
        // Its own tone, and not its neighbour's.
        let mut dec = ropus::Decoder::new(48_000, ropus::Channels::Stereo).unwrap();
        let mut left = Vec::new();
        for packet in &taken {
            let mut pcm = [0f32; FRAME_LEN];
            dec.decode_float(packet, &mut pcm, ropus::DecodeMode::Normal).unwrap();
            left.extend(pcm.chunks_exact(2).map(|s| s[0]));
        }
        let middle = &left[4_800..19_200];
        let own = level(middle, freqs[k]);
        let other = level(middle, freqs[(k + 1) % freqs.len()]);
        assert!((own - 0.3).abs() < 0.06 && other < 0.02, "player {k}: {own} own, {other} other");
    }
    drop(players);
    wait_until(Duration::from_secs(2), || pool.load() == vec![0, 0]);
    assert_eq!(pool.load(), vec![0, 0], "dropped players leave their thread");
}

#[test]
fn a_looping_track_goes_round_without_a_gap() {
    // 100 ms of tone, looped: the decoding thread goes round by itself,
    // ahead of the mixer, so no slot is silent.
    let out = Paced::start(40);
    let player = Player::start(out.clone(), 64_000).unwrap();
    let mut events = player.take_events().unwrap();
    let t = player.play(file(48_000, 2, 0.3, &[(440.0, 0.1)])).unwrap();
    t.set_loop(true);
    std::thread::sleep(Duration::from_millis(700));
    let loops = std::iter::from_fn(|| events.try_recv().ok()).filter(|e| *e == TrackEvent::Looped(t.id())).count();
    assert!(loops >= 4, "{loops} loops");
    assert_eq!(player.stats().underruns, 0, "{:?}", player.stats());
    assert!(out.taken.lock().unwrap().len() >= 30);
    assert_eq!(t.state(), PlayState::Playing);
}
