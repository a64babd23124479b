//! The Opus codec this crate uses (ropus, pure Rust) on a file, timed:
//! encodes a 48 kHz WAV to Ogg Opus at 64 kbit/s in 20 ms frames and
//! decodes it back to WAV, printing the CPU per frame of each; decodes
//! other encoders' packets to WAV too (Ogg Opus, or `.pkt`: each packet
//! after its length as two little-endian bytes), so that another decoder's
//! output of the same packets can be compared with ours.
//! `scripts/compare-opus-codecs` runs it beside libopus.
//!
//! ```text
//! cargo run --release -p voice-audio --example opus_codec -- IN.wav OUT.opus OUT.wav [OTHER.opus|.pkt OTHER.wav]...
//! ```

#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use voice_audio::{AudioFile, FRAME_LEN, OpusEncoder, WavWriter};
use voice_driver::ogg::{OggOpusWriter, read_ogg_opus};

type BoxError = Box<dyn std::error::Error>;

/// Packets each after its length (two bytes, little-endian).
fn read_pkt(bytes: &[u8]) -> Result<Vec<Vec<u8>>, BoxError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let [a, b, tail @ ..] = rest {
        let n = usize::from(u16::from_le_bytes([*a, *b]));
        let packet = tail.get(..n).ok_or("a truncated .pkt file")?;
        out.push(packet.to_vec());
        rest = &tail[n..];
    }
    Ok(out)
}

/// Decodes an Ogg Opus or `.pkt` file with ropus into a WAV (pre-skip
/// included); returns the frames and the time spent decoding.
fn decode(opus: &str, wav: &str) -> Result<(usize, Duration), BoxError> {
    let bytes = std::fs::read(opus)?;
    let packets = if opus.ends_with(".pkt") { read_pkt(&bytes)? } else { read_ogg_opus(&bytes)? };
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
        return Err("usage: opus_codec IN.wav OUT.opus OUT.wav [OTHER.opus|.pkt OTHER.wav]...".into());
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
        let [other, out] = pair else { return Err("OTHER.opus needs an OTHER.wav".into()) };
        let (n, spent) = decode(other, out)?;
        println!("ropus decode of {other}: {n} frames, {:.1} µs/frame", spent.as_secs_f64() * 1e6 / n as f64);
    }
    Ok(())
}
