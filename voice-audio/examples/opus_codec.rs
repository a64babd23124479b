//! The Opus codec this crate uses (ropus, pure Rust) on a file, timed:
//! encodes a 48 kHz WAV to Ogg Opus at 64 kbit/s in 20 ms frames and
//! decodes it back to WAV, printing the CPU per frame of each; decodes
//! other Ogg Opus files to WAV too, so that another decoder's output of
//! the same file can be compared with ours. `scripts/compare-opus-codecs`
//! runs it beside libopus's `opusenc` and `opusdec`.
//!
//! ```text
//! cargo run --release -p voice-audio --example opus_codec -- IN.wav OUT.opus OUT.wav [OTHER.opus OTHER.wav]...
//! ```

#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use voice_audio::{AudioFile, FRAME_LEN, OpusEncoder, WavWriter};
use voice_driver::ogg::{OggOpusWriter, read_ogg_opus};

type BoxError = Box<dyn std::error::Error>;

/// Decodes an Ogg Opus file with ropus into a WAV (pre-skip included);
/// returns the frames and the time spent decoding.
fn decode(opus: &str, wav: &str) -> Result<(usize, Duration), BoxError> {
    let packets = read_ogg_opus(&std::fs::read(opus)?)?;
    let mut decoder = ropus::Decoder::new(48_000, ropus::Channels::Stereo).map_err(|e| format!("{e:?}"))?;
    let mut out = WavWriter::create(wav)?;
    let mut spent = Duration::ZERO;
    let mut pcm = [0f32; FRAME_LEN];
    for p in &packets {
        let t = Instant::now();
        let n = decoder.decode_float(p, &mut pcm, ropus::DecodeMode::Normal).map_err(|e| format!("{e:?}"))?;
        spent += t.elapsed();
        if n * 2 != FRAME_LEN {
            return Err(format!("{opus}: a packet of {n} samples, not 20 ms").into());
        }
        out.write_frame(&pcm)?;
    }
    out.finish()?;
    Ok((packets.len(), spent))
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, opus, wav, others @ ..] = args.as_slice() else {
        return Err("usage: opus_codec IN.wav OUT.opus OUT.wav [OTHER.opus OTHER.wav]...".into());
    };
    let mut file = AudioFile::open(input)?;
    let mut encoder = OpusEncoder::new(64_000)?;
    let mut writer = OggOpusWriter::new(std::io::BufWriter::new(std::fs::File::create(opus)?), 1)?;
    let mut frame = [0f32; FRAME_LEN];
    let (mut frames, mut spent) = (0usize, Duration::ZERO);
    while file.next_frame(&mut frame)? {
        let t = Instant::now();
        let packet = encoder.encode(&frame)?;
        spent += t.elapsed();
        writer.write_packet(&packet)?;
        frames += 1;
    }
    writer.finish()?;
    println!("ropus encode: {frames} frames, {:.1} µs/frame", spent.as_secs_f64() * 1e6 / frames as f64);
    let (n, spent) = decode(opus, wav)?;
    println!("ropus decode: {n} frames, {:.1} µs/frame", spent.as_secs_f64() * 1e6 / n as f64);
    for pair in others.chunks(2) {
        let [other, out] = pair else { return Err("OTHER.opus needs an OUT.wav".into()) };
        let (n, spent) = decode(other, out)?;
        println!("ropus decode of {other}: {n} frames, {:.1} µs/frame", spent.as_secs_f64() * 1e6 / n as f64);
    }
    Ok(())
}
